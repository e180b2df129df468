//! `POST /v1/messages/count_tokens` through Bedrock CountTokens. Clients
//! treat the endpoint as optional: whenever Bedrock cannot count, the answer
//! is 501 `not_supported`, and Claude Code estimates locally. Like every
//! inference route it is admitted under the rate limits and leaves a usage
//! record (with no tokens: counting consumes none).

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::{json, read_body, Admitted, AppState, Caller};
use crate::http::body::ResBody;
use crate::http::error::ApiError;
use crate::stream::Usage;
use crate::translate::{count_tokens_body, parse_messages_request};
use crate::usage::{Meter, Outcome};

pub async fn handle(
    state: &Arc<AppState>,
    caller: Caller,
    req: Request<Incoming>,
    rid: &str,
) -> Result<Response<ResBody>, ApiError> {
    let Admitted { mut meter, .. } = caller.admit(state, rid, "count_tokens")?;
    if state.observer.traces() {
        meter.record.trace = crate::observe::TraceParent::from_headers(req.headers());
    }
    let result = count(state, &caller, req, &mut meter).await;
    // Counting consumes no tokens: the record carries none, only the outcome.
    let status = match &result {
        Ok(_) => 200,
        Err(e) => e.status().as_u16(),
    };
    let outcome = if result.is_ok() { Outcome::Ok } else { Outcome::Error };
    state.usage.record(meter.finish(status, outcome, Usage::default()));
    result
}

async fn count(
    state: &Arc<AppState>,
    caller: &Caller,
    req: Request<Incoming>,
    meter: &mut Meter,
) -> Result<Response<ResBody>, ApiError> {
    let cfg = &caller.cfg;
    let (_parts, bytes) = read_body(state, req, cfg.limits.max_body_bytes).await?;
    let mut request = parse_messages_request(&bytes, false)?;
    tracing::Span::current().record("model", request.model.as_str());
    meter.record.model.clone_from(&request.model);
    let key = &caller.key;
    let plan = state.router.plan(cfg, &state.bedrock, &key.team_id, &key.user_id, &request.model)?;
    // Counting is cheap and optional for clients: the first endpoint that
    // takes traffic counts, without failover.
    let now = std::time::Instant::now();
    let route = plan.iter().find(|r| r.claim(now)).unwrap_or(&plan[0]);
    let resolved = route
        .spec
        .resolve(&request.model, &cfg.mappings, cfg.geo.as_deref())
        .ok_or_else(|| ApiError::NotFound(format!("model: {}", request.model)))?;
    meter.record.bedrock_model.clone_from(&resolved.bedrock_id);
    meter.record.endpoint_id.clone_from(&route.spec.id);
    meter.record.attempts = 1;
    // CountTokens takes foundation-model ids only.
    let Some(foundation) = resolved.foundation_id.as_deref() else {
        return Err(ApiError::NotSupported(format!(
            "count_tokens is not available for {}: it does not name a Bedrock foundation model",
            request.model
        )));
    };
    let body = count_tokens_body(&mut request, &resolved.caps);
    let who = crate::upstream::Principal { user_id: &key.user_id, email: &key.user_email };
    let counted =
        tokio::time::timeout(cfg.limits.request_timeout, route.client.count_tokens(foundation, &body, who)).await;
    match counted {
        Ok(Ok(n)) => Ok(json(StatusCode::OK, format!(r#"{{"input_tokens":{}}}"#, n.max(0)))),
        Ok(Err(e)) => {
            tracing::info!(error = %e, "Bedrock CountTokens failed; answering not_supported");
            Err(ApiError::NotSupported(format!("count_tokens is not available for {} on Bedrock", request.model)))
        }
        Err(_) => Err(ApiError::NotSupported("count_tokens timed out on Bedrock".into())),
    }
}
