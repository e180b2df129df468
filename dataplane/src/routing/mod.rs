//! Where a request runs: the team's eligible endpoints, ordered by its
//! strategy, open circuits last, at most `max_attempts` of them. The
//! handlers try them in order and fail over before the first byte
//! (`api::messages`).
//!
//! Endpoint clients and health outlive configuration changes: a change that
//! does not touch an endpoint keeps its client (credentials, connections)
//! and its circuit; a removed endpoint's in-flight requests finish on the
//! client they hold.

mod health;
mod order;
mod spec;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use ccag_proto::config::v1 as pb;
use dashmap::DashMap;
use smallvec::SmallVec;

pub use health::{Admission, AttemptResult, Attempted, Circuit, Health};
pub use spec::{base_name, Credentials, EndpointSpec, Policy, Scope, SpecError, Strategy, TeamRoute};

use crate::config::RuntimeConfig;
use crate::http::error::ApiError;
use crate::upstream::{Bedrock, Endpoint};

/// How often an endpoint's models are listed again.
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(600);

/// One endpoint as requests use it.
#[derive(Clone)]
pub struct Route {
    pub spec: Arc<EndpointSpec>,
    pub client: Arc<Endpoint>,
    pub health: Arc<Health>,
    /// The foundation models the endpoint's account has inference profiles
    /// for, where ListInferenceProfiles could tell; `None`: not known.
    discovered: Arc<ArcSwapOption<HashSet<String>>>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route").field("id", &self.spec.id).field("name", &self.spec.name).finish_non_exhaustive()
    }
}

impl Route {
    /// Whether to call it now: a closed circuit yes; an open one whose
    /// cooldown is over only as its single probe; one still open only
    /// because everything before it failed (yes, as the last resort).
    pub fn claim(&self, now: Instant) -> bool {
        match self.health.admission(now) {
            Admission::Yes | Admission::Last => true,
            Admission::Probe => self.health.begin_probe(now),
        }
    }

    /// Whether the endpoint serves a model (its base name): its own list
    /// when it has one, else what discovery found, else every model.
    pub fn serves(&self, base: &str) -> bool {
        if !self.spec.models.is_empty() {
            return self.spec.serves(base);
        }
        match (self.discovered.load().as_ref(), ccag_proto::models::find(base)) {
            (Some(found), Some(m)) => found.contains(m.foundation),
            // Names the catalogue does not know (mappings, newer models)
            // are left to Bedrock to judge.
            _ => true,
        }
    }

    fn new(spec: Arc<EndpointSpec>, client: Arc<Endpoint>, health: Arc<Health>) -> Route {
        let route = Route { spec, client, health, discovered: Arc::default() };
        // The implicit endpoint has nowhere else to send a model: Bedrock
        // judges.
        if route.spec.id.is_empty() {
            return route;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(discover(Arc::downgrade(&route.client), route.discovered.clone(), route.spec.name.clone()));
        }
        route
    }

    pub fn record(&self, outcome: Attempted, policy: &Policy) {
        self.health.record(outcome, policy.breaker_failures, policy.breaker_cooldown, Instant::now());
    }

    #[cfg(test)]
    pub fn for_tests(spec: EndpointSpec, health: Arc<Health>) -> Route {
        Route { spec: Arc::new(spec), client: crate::upstream::test_endpoint(), health, discovered: Arc::default() }
    }
}

/// Lists the endpoint's models now and every `DISCOVERY_INTERVAL`, until
/// the endpoint is gone. A failure keeps what was known (nothing, at first:
/// every model is then tried).
async fn discover(client: Weak<Endpoint>, into: Arc<ArcSwapOption<HashSet<String>>>, name: String) {
    let mut logged = false;
    loop {
        let Some(c) = client.upgrade() else { return };
        match c.list_profiles().await {
            Ok(models) => {
                tracing::debug!(endpoint = %name, models = models.len(), "endpoint models discovered");
                into.store(Some(Arc::new(models.into_iter().collect())));
            }
            Err(e) if !logged => {
                logged = true;
                tracing::info!(endpoint = %name, error = %e, "cannot list the endpoint's inference profiles; it is sent every model");
            }
            Err(_) => {}
        }
        drop(c);
        tokio::time::sleep(DISCOVERY_INTERVAL).await;
    }
}

pub struct Router {
    /// The routes last built, whose clients and health a new revision
    /// reuses (only rebuilds take it).
    previous: Mutex<Vec<Route>>,
    health: DashMap<String, Arc<Health>>,
    /// Round-robin counters, one per team ("" for keys without one).
    turns: DashMap<Box<str>, AtomicU64>,
}

/// A request's endpoints, in the order to try them, borrowed from the
/// configuration the request holds: no reference count is touched.
pub type Plan<'a> = SmallVec<[&'a Route; 4]>;

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("model {model} is not served by any endpoint available to team {team}")]
    NotServed { model: String, team: String },
    #[error("no enabled Bedrock endpoint is available to team {team}")]
    NoEndpoint { team: String },
}

impl From<RouteError> for ApiError {
    fn from(e: RouteError) -> ApiError {
        ApiError::InvalidRequest(e.to_string())
    }
}

impl Default for Router {
    fn default() -> Self {
        Router { previous: Mutex::new(Vec::new()), health: DashMap::new(), turns: DashMap::new() }
    }
}

impl Router {
    /// The endpoints of `cfg` (enabled ones, by priority then name), built
    /// once per revision and kept with it.
    fn routes<'c>(&self, cfg: &'c RuntimeConfig, bedrock: &Bedrock) -> &'c [Route] {
        cfg.routes.get_or_init(|| self.build(cfg, bedrock))
    }

    fn build(&self, cfg: &RuntimeConfig, bedrock: &Bedrock) -> Vec<Route> {
        let mut previous = self.previous.lock().unwrap_or_else(|e| e.into_inner());
        let reuse: HashMap<&str, &Route> = previous.iter().map(|r| (r.spec.id.as_str(), r)).collect();
        let mut routes = Vec::with_capacity(cfg.endpoints.len().max(1));
        if cfg.endpoints.is_empty() {
            match reuse.get("") {
                Some(r) => routes.push((*r).clone()),
                None => {
                    let spec = EndpointSpec::implicit(bedrock.region());
                    let health = self.health.entry(String::new()).or_default().clone();
                    routes.push(Route::new(Arc::new(spec), bedrock.default_endpoint().clone(), health));
                }
            }
        }
        for spec in &cfg.endpoints {
            if let Some(r) = reuse.get(spec.id.as_str()).filter(|r| *r.spec == **spec) {
                routes.push((*r).clone());
                continue;
            }
            match bedrock.build(spec) {
                Ok(client) => {
                    let health = self.health.entry(spec.id.clone()).or_default().clone();
                    routes.push(Route::new(spec.clone(), Arc::new(client), health));
                }
                // Checked when the configuration was accepted; kept out
                // rather than failing every request.
                Err(e) => tracing::error!(endpoint = %spec.name, error = %e, "endpoint left out"),
            }
        }
        let live: Vec<&EndpointSpec> = cfg.endpoints.iter().map(|s| &**s).collect();
        bedrock.retain(&live);
        self.health.retain(|id, _| routes.iter().any(|r| r.spec.id == *id));
        previous.clone_from(&routes);
        routes
    }

    /// Builds the endpoints of a new configuration ahead of its first
    /// request (their assumed roles start resolving).
    pub fn prepare(&self, cfg: &RuntimeConfig, bedrock: &Bedrock) {
        self.routes(cfg, bedrock);
    }

    /// The endpoints a request for `model` by `user_id` of `team_id` tries.
    pub fn plan<'c>(
        &self,
        cfg: &'c RuntimeConfig,
        bedrock: &Bedrock,
        team_id: &str,
        user_id: &str,
        model: &str,
    ) -> Result<Plan<'c>, RouteError> {
        let routes = self.routes(cfg, bedrock);
        let team = cfg.team_routes.get(team_id);
        let base = base_name(model);
        let mut plan = Plan::new();
        let mut any = false;
        match team.filter(|t| !t.endpoint_ids.is_empty()) {
            Some(t) => {
                for id in &t.endpoint_ids {
                    if let Some(r) = routes.iter().find(|r| r.spec.id == *id) {
                        any = true;
                        if r.serves(base) {
                            plan.push(r);
                        }
                    }
                }
            }
            None => {
                for r in routes {
                    any = true;
                    if r.serves(base) {
                        plan.push(r);
                    }
                }
            }
        }
        if plan.is_empty() {
            let team = if team_id.is_empty() { "(none)".to_owned() } else { team_id.to_owned() };
            return Err(if any {
                RouteError::NotServed { model: model.to_owned(), team }
            } else {
                RouteError::NoEndpoint { team }
            });
        }
        if plan.len() > 1 {
            let now = Instant::now();
            match team.and_then(|t| t.strategy).unwrap_or(cfg.routing.strategy) {
                Strategy::Fallback => {}
                Strategy::Sticky => order::sticky(&mut plan, user_id),
                Strategy::RoundRobin => {
                    let n = match self.turns.get(team_id) {
                        Some(c) => c.fetch_add(1, Ordering::Relaxed),
                        None => self.turns.entry(team_id.into()).or_default().fetch_add(1, Ordering::Relaxed),
                    };
                    order::round_robin(&mut plan, n);
                }
                Strategy::Adaptive => order::adaptive(&mut plan, now),
            }
            // Open circuits last, in the strategy's order: tried only when
            // everything else has failed, never refused outright.
            let open: Plan = plan.iter().copied().filter(|r| r.health.admission(now) == Admission::Last).collect();
            if !open.is_empty() {
                plan.retain(|r| r.health.admission(now) != Admission::Last);
                plan.extend(open);
            }
            plan.truncate(cfg.routing.max_attempts.max(1));
        }
        Ok(plan)
    }

    /// Each endpoint's counters since the last report.
    pub fn take_reports(&self) -> Vec<pb::EndpointReport> {
        let until_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        // The implicit endpoint (id "") is no row of the control plane's.
        self.health
            .iter()
            .filter(|e| !e.key().is_empty())
            .filter_map(|e| e.value().take_report(e.key(), until_ms))
            .collect()
    }

    /// Puts back counters whose report did not arrive.
    pub fn restore_reports(&self, reports: &[pb::EndpointReport]) {
        for r in reports {
            if let Some(h) = self.health.get(&r.endpoint_id) {
                h.restore(r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> RuntimeConfig {
        RuntimeConfig::from_json(json.as_bytes()).unwrap()
    }

    async fn bedrock() -> Bedrock {
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        Bedrock::from_env().await.unwrap()
    }

    const TWO: &str = r#"{"version":"1","endpoints":[
        {"id":"a","name":"a","region":"us-east-1","enabled":true,"priority":2},
        {"id":"b","name":"b","region":"eu-west-1","enabled":true,"priority":1,
         "models":["claude-sonnet-4-5-20250929"]},
        {"id":"c","name":"c","region":"us-west-2","enabled":false}],
      "routing":{"policy":{"strategy":"ROUTING_STRATEGY_FALLBACK"}},
      "teamRouting":[{"id":"t1","endpointIds":["a","b"]}]}"#;

    fn ids<'a>(p: &'a Plan<'_>) -> Vec<&'a str> {
        p.iter().map(|r| r.spec.id.as_str()).collect()
    }

    #[tokio::test]
    async fn fallback_follows_priority_and_skips_disabled_endpoints() {
        let (r, b, c) = (Router::default(), bedrock().await, cfg(TWO));
        assert_eq!(ids(&r.plan(&c, &b, "", "u", "claude-sonnet-4-5").unwrap()), ["b", "a"]);
    }

    #[tokio::test]
    async fn a_teams_own_list_sets_its_order() {
        let (r, b, c) = (Router::default(), bedrock().await, cfg(TWO));
        assert_eq!(ids(&r.plan(&c, &b, "t1", "u", "claude-sonnet-4-5").unwrap()), ["a", "b"]);
    }

    #[tokio::test]
    async fn only_endpoints_serving_the_model_are_eligible() {
        let (r, b, c) = (Router::default(), bedrock().await, cfg(TWO));
        assert_eq!(ids(&r.plan(&c, &b, "", "u", "claude-haiku-4-5").unwrap()), ["a"]);
        let one = cfg(
            r#"{"endpoints":[{"id":"b","name":"b","region":"eu-west-1","enabled":true,"models":["claude-sonnet-4-5-20250929"]}]}"#,
        );
        let e = r.plan(&one, &b, "t9", "u", "claude-haiku-4-5").err().unwrap();
        assert_eq!(e.to_string(), "model claude-haiku-4-5 is not served by any endpoint available to team t9");
    }

    #[tokio::test]
    async fn open_circuits_go_last() {
        let (r, b, c) = (Router::default(), bedrock().await, cfg(TWO));
        let first = r.plan(&c, &b, "", "u", "claude-sonnet-4-5").unwrap();
        first[0].health.record(Attempted::Failed, 1, Duration::from_secs(60), Instant::now());
        assert_eq!(ids(&r.plan(&c, &b, "", "u", "claude-sonnet-4-5").unwrap()), ["a", "b"]);
    }

    #[tokio::test]
    async fn an_unchanged_endpoint_keeps_its_client_and_health_across_revisions() {
        let (r, b) = (Router::default(), bedrock().await);
        let first = cfg(TWO);
        let before = r.plan(&first, &b, "", "u", "claude-sonnet-4-5").unwrap();
        let next =
            cfg(&TWO.replace(r#""version":"1""#, r#""version":"2""#).replace(r#""priority":2"#, r#""priority":3"#));
        let after = r.plan(&next, &b, "", "u", "claude-sonnet-4-5").unwrap();
        assert!(Arc::ptr_eq(&before[0].client, &after[0].client), "b did not change");
        assert!(Arc::ptr_eq(&before[0].health, &after[0].health));
        assert!(!Arc::ptr_eq(&before[1].client, &after[1].client), "a's priority changed: a new client");
        assert!(Arc::ptr_eq(&before[1].health, &after[1].health), "but the same health");
    }

    #[tokio::test]
    async fn without_endpoints_the_environments_endpoint_serves_everything() {
        let (r, b) = (Router::default(), bedrock().await);
        let empty = cfg("{}");
        let p = r.plan(&empty, &b, "", "u", "claude-anything-9").unwrap();
        assert_eq!(ids(&p), [""]);
        assert!(Arc::ptr_eq(&p[0].client, b.default_endpoint()));
    }

    #[tokio::test]
    async fn max_attempts_bounds_the_plan() {
        let (r, b) = (Router::default(), bedrock().await);
        let c = cfg(&TWO.replace(
            r#""strategy":"ROUTING_STRATEGY_FALLBACK""#,
            r#""strategy":"ROUTING_STRATEGY_FALLBACK","maxAttempts":1"#,
        ));
        assert_eq!(r.plan(&c, &b, "", "u", "claude-sonnet-4-5").unwrap().len(), 1);
    }
}
