//! `POST /v1/messages`: resolve the model, adapt the body, call Bedrock
//! (streamed or not) on the first endpoint of the request's plan, failing
//! over to the next before the first byte, and answer in the Anthropic
//! format.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;

use super::{read_body, Admitted, AppState, Caller};
use crate::http::body::{full, ResBody};
use crate::http::error::ApiError;
use crate::http::ratelimit_headers::add_headers;
use crate::models::Resolved;
use crate::routing::{Attempted, Route};
use crate::stream::{rewrite_message, sse_body, EventTranslator, StreamRun, Usage};
use crate::translate::betas;
use crate::translate::{parse_messages_request, MessagesRequest};
use crate::upstream::{Failover, Principal, UpstreamError};
use crate::usage::{Meter, Outcome};
use crate::websearch::{self, Runner};

pub async fn handle(
    state: &Arc<AppState>,
    caller: Caller,
    req: Request<Incoming>,
    rid: &str,
) -> Result<Response<ResBody>, ApiError> {
    let Admitted { mut meter, limits: admitted, budget } = caller.admit_spending(state, rid, "messages")?;
    let cfg = &caller.cfg;
    let key = &caller.key;
    if state.observer.traces() {
        meter.record.trace = crate::observe::TraceParent::from_headers(req.headers());
    }

    let result = async {
        let (parts, bytes) = read_body(state, req, cfg.limits.max_body_bytes).await?;
        let mut request = parse_messages_request(&bytes, true)?;
        drop(bytes);
        let search = crate::websearch::prepare(&mut request.body, &cfg.web_search, &key.user_id)?;
        tracing::Span::current().record("model", request.model.as_str());
        meter.record.model.clone_from(&request.model);
        meter.record.stream = request.stream;
        let plan = state.router.plan(cfg, &state.bedrock, &key.team_id, &key.user_id, &request.model)?;
        // Every endpoint resolves a name the same way up to its prefix: the
        // first one says whether a Claude model goes by it at all.
        if plan[0].spec.resolve(&request.model, &cfg.mappings, cfg.geo.as_deref()).is_none() {
            return Err(ApiError::NotFound(format!("model: {}", request.model)));
        }
        // Owned: the body they partly come from is adapted per endpoint.
        // Only the ones Bedrock may take are kept.
        let requested =
            betas::select(&betas::requested(&parts.headers, request.body.get("betas")), false, &cfg.extra_betas, &[]);
        Ok::<_, ApiError>((request, plan, requested, search))
    }
    .await;
    let (mut request, plan, requested, search) = match result {
        Ok(r) => r,
        Err(e) => {
            state.usage.record(meter.finish(e.status().as_u16(), Outcome::Error, Usage::default()));
            return Err(e);
        }
    };

    let mut search = search.map(|plan| Runner::new(state.searcher.clone(), plan));
    let who = Principal { user_id: &key.user_id, email: &key.user_email };
    let policy = &cfg.routing;
    let total = if request.stream { cfg.limits.first_byte_timeout } else { cfg.limits.request_timeout };
    let deadline = Instant::now() + total;
    let mut failed: Option<(UpstreamError, Usage)> = None;
    let mut attempts = 0u32;
    for (i, route) in plan.iter().enumerate() {
        let now = Instant::now();
        if attempts > 0 && now >= deadline {
            break;
        }
        // An endpoint whose probe another request holds is passed over,
        // unless nothing else is left to try.
        let last_chance = attempts == 0 && i + 1 == plan.len();
        if !route.claim(now) && !last_chance {
            continue;
        }
        let Some(resolved) = route.spec.resolve(&request.model, &cfg.mappings, cfg.geo.as_deref()) else { continue };
        attempts += 1;
        meter.record.bedrock_model.clone_from(&resolved.bedrock_id);
        meter.record.endpoint_id.clone_from(&route.spec.id);
        meter.record.attempts = attempts;
        let budget_left = deadline.saturating_duration_since(now);
        let first_byte = policy.attempt_timeout.map_or(budget_left, |t| t.min(budget_left));
        let call = Call { route, resolved: &resolved, requested: &requested, who, first_byte, rid };
        match attempt(state, cfg, &mut request, &call, &mut search, meter).await {
            Ok(mut res) => {
                route.record(Attempted::Answered(now.elapsed()), policy);
                add_headers(res.headers_mut(), &admitted);
                if let Some(b) = &budget {
                    crate::http::budget_headers::add(res.headers_mut(), b);
                }
                return Ok(res);
            }
            Err((err, m, charged)) => {
                meter = m;
                let kind = err.failover();
                route.record(
                    match kind {
                        Failover::Throttled => Attempted::Throttled,
                        Failover::Failure => Attempted::Failed,
                        Failover::Elsewhere | Failover::No => Attempted::Neutral,
                    },
                    policy,
                );
                // Once anything was charged (a web search's earlier calls),
                // the answer has begun: no other endpoint can take over.
                let movable = kind != Failover::No && charged == Usage::default();
                if movable {
                    tracing::info!(endpoint = %route.spec.name, error = %err, "Bedrock call failed; trying the next endpoint");
                }
                // A throttle is the error to report if every endpoint fails:
                // the client then backs off instead of giving up.
                let keep_previous = failed.as_ref().is_some_and(|(e, _)| e.failover() == Failover::Throttled)
                    && kind != Failover::Throttled;
                if !keep_previous {
                    failed = Some((err, charged));
                }
                if !movable {
                    break;
                }
            }
        }
    }
    let (err, charged) =
        failed.unwrap_or((UpstreamError::Unreachable("no endpoint could be tried".into()), Usage::default()));
    let api = client_error(&err, &request);
    state.usage.record(meter.finish(api.status().as_u16(), Outcome::Error, charged));
    Err(api)
}

/// One attempt's target.
struct Call<'a> {
    route: &'a Route,
    resolved: &'a Resolved,
    requested: &'a [String],
    who: Principal<'a>,
    /// How long this attempt may wait for its first byte (non-streaming:
    /// for the answer).
    first_byte: Duration,
    rid: &'a str,
}

/// A call on one endpoint, retried once there when Bedrock refuses a beta
/// it had not refused before.
async fn attempt(
    state: &Arc<AppState>,
    cfg: &crate::config::RuntimeConfig,
    request: &mut MessagesRequest,
    call: &Call<'_>,
    search: &mut Option<Runner>,
    mut meter: Meter,
) -> Attempt {
    let resolved = call.resolved;
    let rejected = state.betas.rejected(&resolved.bedrock_id);
    let mut sent = betas::select(call.requested, resolved.context_1m, &cfg.extra_betas, &rejected);
    request.adapt(&resolved.caps, &sent);
    let mut retried = false;
    let client = &call.route.client;
    let id = &resolved.bedrock_id;
    loop {
        let outcome = match (search.as_mut(), request.stream) {
            // Boxed: their state (a search loop) would otherwise enlarge
            // the future of every request, searching or not.
            (Some(_), true) => {
                let limits = &cfg.limits;
                let s = websearch::Start {
                    client,
                    who: call.who,
                    bedrock_id: id,
                    betas: &sent,
                    first_byte: call.first_byte,
                };
                Box::pin(websearch::start(state, request, s, search, limits, call.rid, meter)).await
            }
            (Some(runner), false) => {
                let timeout = call.first_byte;
                Box::pin(websearch::respond(state, request, client, call.who, id, &sent, runner, timeout, meter)).await
            }
            (None, true) => {
                let body = request.bedrock_body(&sent);
                let mut limits = cfg.limits;
                limits.first_byte_timeout = call.first_byte;
                start_stream(state, request, call, body, &limits, meter).await
            }
            (None, false) => {
                let body = request.bedrock_body(&sent);
                invoke(state, request, call, body, meter).await
            }
        };
        match outcome {
            Ok(res) => return Ok(res),
            Err((err, m, charged)) => {
                if let Some(msg) = err.validation_message().filter(|_| charged == Usage::default()) {
                    if !retried && state.betas.learn(&resolved.bedrock_id, msg, &sent) {
                        sent.retain(|b| !msg.contains(b.as_str()));
                        // Fields that need a refused beta (effort on Opus
                        // 4.5, context_management) must go with it.
                        request.adapt(&resolved.caps, &sent);
                        retried = true;
                        meter = m;
                        continue;
                    }
                }
                return Err((err, m, charged));
            }
        }
    }
}

/// The client's view of a failed call. A refused `{"role":"system"}` message
/// becomes the token Claude Code recognises and heals from.
fn client_error(err: &UpstreamError, request: &MessagesRequest) -> ApiError {
    if request.has_system_messages && err.validation_message().is_some_and(|m| m.contains("system")) {
        return ApiError::InvalidRequest("capability_rejected: mid_conv_system".into());
    }
    if !matches!(err, UpstreamError::Service { .. }) {
        tracing::warn!(error = %err, "Bedrock call failed");
    }
    err.to_api(false)
}

/// A failed call carries the usage already spent (by earlier calls of a
/// web search), which is charged.
type Attempt = Result<Response<ResBody>, websearch::Failure>;

async fn invoke(
    state: &Arc<AppState>,
    request: &MessagesRequest,
    call: &Call<'_>,
    body: Vec<u8>,
    meter: Meter,
) -> Attempt {
    let id = &call.resolved.bedrock_id;
    let answer = match tokio::time::timeout(call.first_byte, call.route.client.invoke(id, body, call.who)).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return Err((e, meter, Usage::default())),
        Err(_) => return Err((UpstreamError::Timeout, meter, Usage::default())),
    };
    let (body, usage) = match rewrite_message(&answer, &request.model) {
        Ok(x) => x,
        Err(e) => return Err((UpstreamError::Protocol(e.to_string()), meter, Usage::default())),
    };
    state.usage.record(meter.finish(200, Outcome::Ok, usage));
    let mut res = Response::new(full(body));
    res.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(res)
}

/// Holds the response status until Bedrock's first frame, so that an
/// exception before any content still becomes a real HTTP status.
async fn start_stream(
    state: &Arc<AppState>,
    request: &MessagesRequest,
    call: &Call<'_>,
    body: Vec<u8>,
    limits: &crate::config::Limits,
    meter: Meter,
) -> Attempt {
    let id = &call.resolved.bedrock_id;
    let (rx, first) = match call.route.client.open_stream(id, body, limits.first_byte_timeout, call.who).await {
        Ok(x) => x,
        Err(e) => return Err((e, meter, Usage::default())),
    };
    let run = StreamRun {
        rx,
        first: Some(first),
        translator: EventTranslator::new(request.model.clone()),
        limits: *limits,
        request_id: call.rid.to_owned(),
        meter: Some(meter),
        sink: state.usage.clone(),
    };
    Ok(crate::stream::sse_response(sse_body(run)))
}
