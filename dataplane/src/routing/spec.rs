//! Endpoints, team routing and the routing policy, parsed once from the
//! configuration into the typed form the request path reads.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use ccag_proto::config::v1 as pb;

use crate::models::{resolve, Resolved};

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("endpoint {0:?}: {1}")]
    Endpoint(String, String),
    #[error("team routing {0:?}: {1}")]
    Team(String, String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// The data plane's default AWS chain.
    Default,
    AssumeRole {
        role_arn: String,
        external_id: String,
        per_user_sessions: bool,
    },
    ApiKey(String),
    /// The control plane could not open the stored key: the endpoint is
    /// left out (never called with the data plane's own credentials).
    MissingKey,
}

/// Which inference profiles an endpoint's model ids name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The organisation's forced geo, else the region's.
    Region,
    /// A fixed prefix (`global`, `eu`, …).
    Prefix(String),
    /// Foundation-model ids, in the region itself.
    InRegion,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    /// Empty for the implicit endpoint of a configuration that names none.
    pub id: String,
    pub name: String,
    pub region: String,
    pub priority: i32,
    pub weight: u32,
    pub url: Option<String>,
    pub credentials: Credentials,
    pub scope: Scope,
    /// Keyed by Anthropic model id.
    pub profile_arns: HashMap<String, String>,
    /// Empty: every model.
    pub models: HashSet<String>,
}

impl EndpointSpec {
    /// The endpoint of a configuration without any: the AWS environment's.
    pub fn implicit(region: &str) -> Self {
        EndpointSpec {
            id: String::new(),
            name: "default".into(),
            region: region.to_owned(),
            priority: 0,
            weight: 1,
            url: None,
            credentials: Credentials::Default,
            scope: Scope::Region,
            profile_arns: HashMap::new(),
            models: HashSet::new(),
        }
    }

    /// `None` for a disabled endpoint (it takes no traffic).
    pub fn from_pb(e: &pb::Endpoint) -> Result<Option<Self>, SpecError> {
        if !e.enabled {
            return Ok(None);
        }
        let bad = |why: String| SpecError::Endpoint(e.id.clone(), why);
        let region = e.region.trim();
        if region.is_empty() || !region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err(bad(format!("region {region:?} is not an AWS region")));
        }
        let url = match e.endpoint_url.trim() {
            "" => None,
            u => {
                ccag_outbound::bedrock_target(u).map_err(|err| bad(format!("endpoint_url: {err}")))?;
                Some(u.trim_end_matches('/').to_owned())
            }
        };
        let c = e.credentials.clone().unwrap_or_default();
        let credentials = match pb::CredentialSource::try_from(c.source) {
            Ok(pb::CredentialSource::Unspecified) => Credentials::Default,
            Ok(pb::CredentialSource::AssumeRole) if c.role_arn.starts_with("arn:") => Credentials::AssumeRole {
                role_arn: c.role_arn.clone(),
                external_id: c.external_id.clone(),
                per_user_sessions: c.per_user_sessions,
            },
            Ok(pb::CredentialSource::AssumeRole) => return Err(bad("an assumed role needs its ARN".into())),
            Ok(pb::CredentialSource::ApiKey) if !c.api_key.is_empty() => Credentials::ApiKey(c.api_key.clone()),
            Ok(pb::CredentialSource::ApiKey) => Credentials::MissingKey,
            Err(_) => return Err(bad(format!("unknown credential source {}", c.source))),
        };
        let scope = match pb::InferenceScope::try_from(e.scope) {
            Ok(pb::InferenceScope::Unspecified) => Scope::Region,
            Ok(pb::InferenceScope::Global) => Scope::Prefix("global".into()),
            Ok(pb::InferenceScope::Explicit) if !e.scope_prefix.trim().is_empty() => {
                Scope::Prefix(e.scope_prefix.trim().to_owned())
            }
            Ok(pb::InferenceScope::Explicit) => return Err(bad("an explicit scope needs its prefix".into())),
            Ok(pb::InferenceScope::Regional) => Scope::InRegion,
            Err(_) => return Err(bad(format!("unknown inference scope {}", e.scope))),
        };
        Ok(Some(EndpointSpec {
            id: e.id.clone(),
            name: e.name.clone(),
            region: region.to_owned(),
            priority: e.priority,
            weight: e.weight.max(1),
            url,
            credentials,
            scope,
            profile_arns: e.profile_arns.iter().map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect(),
            models: e.models.iter().map(|m| m.trim().to_owned()).filter(|m| !m.is_empty()).collect(),
        }))
    }

    /// Whether the endpoint serves a model the client named (its base name,
    /// without `[1m]`), by that name or its catalogue id.
    pub fn serves(&self, base: &str) -> bool {
        if self.models.is_empty() || self.models.contains(base) {
            return true;
        }
        ccag_proto::models::find(base).is_some_and(|m| self.models.contains(m.id))
    }

    /// The model as this endpoint calls it: its Application Inference
    /// Profile when it has one for the model, else the organisation's
    /// mapping or the built-in rules, with this endpoint's profile prefix.
    pub fn resolve(
        &self,
        name: &str,
        mappings: &HashMap<String, String>,
        forced_geo: Option<&str>,
    ) -> Option<Resolved> {
        let base = base_name(name);
        let arn = self
            .profile_arns
            .get(base)
            .or_else(|| ccag_proto::models::find(base).and_then(|m| self.profile_arns.get(m.id)));
        if let Some(arn) = arn {
            // The profile runs the model the name resolves to: the request is
            // adapted to that model's capabilities, which the ARN does not tell.
            let mut r = resolve(name, &HashMap::new(), "")?;
            r.bedrock_id.clone_from(arn);
            return Some(r);
        }
        let geo = match &self.scope {
            Scope::Region => forced_geo.unwrap_or_else(|| ccag_proto::models::geo_for_region(&self.region)),
            Scope::Prefix(p) => p.as_str(),
            Scope::InRegion => "",
        };
        let mut r = resolve(name, mappings, geo)?;
        reprefix(&mut r.bedrock_id, geo);
        Some(r)
    }
}

/// A mapping to one geo's profile (`us.anthropic.…`) names the model, not
/// the geo: on an endpoint of another geo it runs on that geo's profile.
fn reprefix(id: &mut String, geo: &str) {
    const PREFIXES: &[&str] = &["us-gov.", "us.", "eu.", "apac.", "jp.", "au.", "global."];
    if id.starts_with("arn:") {
        return;
    }
    let bare = PREFIXES.iter().find_map(|p| id.strip_prefix(p)).unwrap_or(id);
    if !bare.starts_with("anthropic.") {
        return;
    }
    let want = if geo.is_empty() { bare.to_owned() } else { format!("{geo}.{bare}") };
    if *id != want {
        *id = want;
    }
}

/// The name without Claude Code's `[1m]` suffix.
pub fn base_name(name: &str) -> &str {
    let name = name.trim();
    match name.len().checked_sub(4) {
        Some(i) if name.is_char_boundary(i) && name[i..].eq_ignore_ascii_case("[1m]") => &name[..i],
        _ => name,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Fallback,
    RoundRobin,
    Sticky,
    Adaptive,
}

impl Strategy {
    fn from_pb(v: i32) -> Option<Strategy> {
        match pb::RoutingStrategy::try_from(v).ok()? {
            pb::RoutingStrategy::Unspecified => None,
            pb::RoutingStrategy::Fallback => Some(Strategy::Fallback),
            pb::RoutingStrategy::RoundRobin => Some(Strategy::RoundRobin),
            pb::RoutingStrategy::Sticky => Some(Strategy::Sticky),
            pb::RoutingStrategy::Adaptive => Some(Strategy::Adaptive),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TeamRoute {
    /// `None`: the organisation's.
    pub strategy: Option<Strategy>,
    /// In the team's order; empty: every enabled endpoint.
    pub endpoint_ids: Vec<String>,
}

impl TeamRoute {
    pub fn from_pb(t: &pb::TeamRouting) -> Result<Self, SpecError> {
        if pb::RoutingStrategy::try_from(t.strategy).is_err() {
            return Err(SpecError::Team(t.id.clone(), format!("unknown strategy {}", t.strategy)));
        }
        Ok(TeamRoute { strategy: Strategy::from_pb(t.strategy), endpoint_ids: t.endpoint_ids.clone() })
    }
}

/// The organisation's routing, every default filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub strategy: Strategy,
    pub max_attempts: usize,
    /// `None`: an attempt may take the whole first-byte (or request) timeout.
    pub attempt_timeout: Option<Duration>,
    pub breaker_failures: u32,
    pub breaker_cooldown: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            strategy: Strategy::Sticky,
            max_attempts: 3,
            attempt_timeout: None,
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(30),
        }
    }
}

impl Policy {
    pub fn from_pb(p: Option<&pb::RoutingPolicy>) -> Self {
        let d = Policy::default();
        let Some(p) = p else { return d };
        Policy {
            strategy: Strategy::from_pb(p.strategy).unwrap_or(d.strategy),
            max_attempts: if p.max_attempts == 0 { d.max_attempts } else { p.max_attempts.min(10) as usize },
            attempt_timeout: (p.attempt_timeout_ms > 0).then(|| Duration::from_millis(p.attempt_timeout_ms.into())),
            breaker_failures: if p.breaker_failures == 0 { d.breaker_failures } else { p.breaker_failures },
            breaker_cooldown: if p.breaker_cooldown_ms == 0 {
                d.breaker_cooldown
            } else {
                Duration::from_millis(p.breaker_cooldown_ms.into())
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(f: impl FnOnce(&mut pb::Endpoint)) -> EndpointSpec {
        let mut e = pb::Endpoint {
            id: "ep1".into(),
            name: "a".into(),
            region: "eu-west-1".into(),
            enabled: true,
            ..Default::default()
        };
        f(&mut e);
        EndpointSpec::from_pb(&e).unwrap().unwrap()
    }

    #[test]
    fn a_model_runs_on_the_profile_of_its_endpoints_region() {
        let e = endpoint(|_| {});
        let r = e.resolve("claude-sonnet-4-5", &HashMap::new(), None).unwrap();
        assert_eq!(r.bedrock_id, "eu.anthropic.claude-sonnet-4-5-20250929-v1:0");
    }

    #[test]
    fn a_mapping_to_another_geos_profile_is_moved_to_the_endpoints_geo() {
        let e = endpoint(|_| {});
        let m = HashMap::from([("fast".to_owned(), "us.anthropic.claude-haiku-4-5-20251001-v1:0".to_owned())]);
        assert_eq!(e.resolve("fast", &m, None).unwrap().bedrock_id, "eu.anthropic.claude-haiku-4-5-20251001-v1:0");
    }

    #[test]
    fn an_in_region_endpoint_calls_foundation_ids() {
        let e = endpoint(|e| e.scope = pb::InferenceScope::Regional as i32);
        let r = e.resolve("claude-sonnet-4-5", &HashMap::new(), Some("global")).unwrap();
        assert_eq!(r.bedrock_id, "anthropic.claude-sonnet-4-5-20250929-v1:0");
    }

    #[test]
    fn an_application_profile_replaces_the_model_id_and_keeps_its_capabilities() {
        let arn = "arn:aws:bedrock:eu-west-1:111111111111:application-inference-profile/abc";
        let e = endpoint(|e| {
            e.profile_arns.insert("claude-sonnet-4-5-20250929".into(), arn.into());
        });
        let r = e.resolve("claude-sonnet-4-5[1m]", &HashMap::new(), None).unwrap();
        assert_eq!(r.bedrock_id, arn);
        assert!(r.context_1m);
        assert!(r.caps.version.is_some());
    }

    #[test]
    fn an_endpoint_serves_the_models_it_lists_by_name_or_alias() {
        let e = endpoint(|e| e.models = vec!["claude-sonnet-4-5-20250929".into()]);
        assert!(e.serves("claude-sonnet-4-5"));
        assert!(e.serves("claude-sonnet-4-5-20250929"));
        assert!(!e.serves("claude-haiku-4-5"));
        assert!(endpoint(|_| {}).serves("anything"));
    }

    #[test]
    fn a_disabled_endpoint_takes_no_traffic_and_a_bad_one_is_refused() {
        let off = pb::Endpoint { id: "x".into(), region: "us-east-1".into(), ..Default::default() };
        assert!(EndpointSpec::from_pb(&off).unwrap().is_none());
        let bad = pb::Endpoint { endpoint_url: "ftp://x".into(), ..off.clone() };
        assert!(EndpointSpec::from_pb(&pb::Endpoint { enabled: true, ..bad }).is_err());
        let role = pb::Endpoint {
            enabled: true,
            credentials: Some(pb::EndpointCredentials {
                source: pb::CredentialSource::AssumeRole as i32,
                ..Default::default()
            }),
            ..off
        };
        assert!(EndpointSpec::from_pb(&role).is_err());
    }

    #[test]
    fn zero_policy_fields_take_their_defaults() {
        let p = Policy::from_pb(Some(&pb::RoutingPolicy { max_attempts: 2, ..Default::default() }));
        assert_eq!(p.max_attempts, 2);
        assert_eq!(p.strategy, Strategy::Sticky);
        assert_eq!(p.breaker_cooldown, Duration::from_secs(30));
        assert_eq!(p.attempt_timeout, None);
    }
}
