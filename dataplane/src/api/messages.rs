//! `POST /v1/messages`: resolve the model, adapt the body, call Bedrock
//! (streamed or not), and answer in the Anthropic format.

use std::sync::Arc;

use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;

use super::{read_body, Admitted, AppState, Caller};
use crate::http::body::{full, ResBody};
use crate::http::error::ApiError;
use crate::http::ratelimit_headers::add_headers;
use crate::models::{resolve, Resolved};
use crate::stream::{rewrite_message, sse_body, EventTranslator, StreamRun, Usage};
use crate::translate::betas;
use crate::translate::{parse_messages_request, MessagesRequest};
use crate::upstream::UpstreamError;
use crate::usage::{Meter, Outcome};
use crate::websearch::{self, Runner};

pub async fn handle(
    state: &Arc<AppState>,
    caller: Caller,
    req: Request<Incoming>,
    rid: &str,
) -> Result<Response<ResBody>, ApiError> {
    let Admitted { mut meter, limits: admitted, budget } = caller.admit_spending(state, rid, "messages")?;
    let cfg = caller.cfg;

    let result = async {
        let (parts, bytes) = read_body(state, req, cfg.limits.max_body_bytes).await?;
        let mut request = parse_messages_request(&bytes, true)?;
        drop(bytes);
        let search = crate::websearch::prepare(&mut request.body, &cfg.web_search, &caller.key.user_id)?;
        tracing::Span::current().record("model", request.model.as_str());
        meter.record.model.clone_from(&request.model);
        meter.record.stream = request.stream;
        let resolved = resolve(&request.model, &cfg.mappings, state.geo(&cfg))
            .ok_or_else(|| ApiError::NotFound(format!("model: {}", request.model)))?;
        meter.record.bedrock_model.clone_from(&resolved.bedrock_id);

        let rejected = state.betas.rejected(&resolved.bedrock_id);
        let sent = {
            let requested = betas::requested(&parts.headers, request.body.get("betas"));
            betas::select(&requested, resolved.context_1m, &cfg.extra_betas, &rejected)
        };
        request.adapt(&resolved.caps, &sent);
        Ok::<_, ApiError>((request, resolved, sent, search))
    }
    .await;
    let (mut request, resolved, mut sent, search) = match result {
        Ok(r) => r,
        Err(e) => {
            state.usage.record(meter.finish(e.status().as_u16(), Outcome::Error, Usage::default()));
            return Err(e);
        }
    };

    let mut search = search.map(|plan| Runner::new(state.searcher.clone(), plan));

    // One retry, when Bedrock refuses a beta it had not refused before.
    let mut retried = false;
    loop {
        let id = &resolved.bedrock_id;
        let outcome = match (search.as_mut(), request.stream) {
            // Boxed: their state (a search loop) would otherwise enlarge
            // the future of every request, searching or not.
            (Some(_), true) => {
                Box::pin(websearch::start(state, &mut request, id, &sent, &mut search, &cfg.limits, rid, meter)).await
            }
            (Some(runner), false) => {
                let timeout = cfg.limits.request_timeout;
                Box::pin(websearch::respond(state, &mut request, id, &sent, runner, timeout, meter)).await
            }
            (None, true) => {
                let body = request.bedrock_body(&sent);
                start_stream(state, &request, &resolved, body, &cfg.limits, rid, meter).await
            }
            (None, false) => {
                let body = request.bedrock_body(&sent);
                invoke(state, &request, &resolved, body, cfg.limits.request_timeout, meter).await
            }
        };
        match outcome {
            Ok(mut res) => {
                add_headers(res.headers_mut(), &admitted);
                if let Some(b) = &budget {
                    crate::http::budget_headers::add(res.headers_mut(), b);
                }
                return Ok(res);
            }
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
                let api = client_error(&err, &request);
                state.usage.record(m.finish(api.status().as_u16(), Outcome::Error, charged));
                return Err(api);
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
    resolved: &Resolved,
    body: Vec<u8>,
    timeout: std::time::Duration,
    meter: Meter,
) -> Attempt {
    let answer = match tokio::time::timeout(timeout, state.bedrock.invoke(&resolved.bedrock_id, body)).await {
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
    resolved: &Resolved,
    body: Vec<u8>,
    limits: &crate::config::Limits,
    rid: &str,
    meter: Meter,
) -> Attempt {
    let (rx, first) = match state.bedrock.open_stream(&resolved.bedrock_id, body, limits.first_byte_timeout).await {
        Ok(x) => x,
        Err(e) => return Err((e, meter, Usage::default())),
    };
    let run = StreamRun {
        rx,
        first: Some(first),
        translator: EventTranslator::new(request.model.clone()),
        limits: *limits,
        request_id: rid.to_owned(),
        meter: Some(meter),
        sink: state.usage.clone(),
    };
    Ok(crate::stream::sse_response(sse_body(run)))
}
