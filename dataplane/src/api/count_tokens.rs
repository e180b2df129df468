//! `POST /v1/messages/count_tokens` through Bedrock CountTokens. Clients
//! treat the endpoint as optional: whenever Bedrock cannot count, the answer
//! is 501 `not_supported`, and Claude Code estimates locally.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::{authenticate, json, read_body, AppState};
use crate::http::body::ResBody;
use crate::http::error::ApiError;
use crate::models::resolve;
use crate::translate::{count_tokens_body, parse_messages_request};

pub async fn handle(state: &Arc<AppState>, req: Request<Incoming>, _rid: &str) -> Result<Response<ResBody>, ApiError> {
    let (cfg, _key) = authenticate(state, &req)?;
    let (_parts, bytes) = read_body(state, req, cfg.limits.max_body_bytes).await?;
    let mut request = parse_messages_request(&bytes, false)?;
    tracing::Span::current().record("model", request.model.as_str());
    let resolved = resolve(&request.model, &cfg.mappings, state.geo(&cfg))
        .ok_or_else(|| ApiError::NotFound(format!("model: {}", request.model)))?;
    // CountTokens takes foundation-model ids only.
    let Some(foundation) = resolved.foundation_id.as_deref() else {
        return Err(ApiError::NotSupported(format!(
            "count_tokens is not available for {}: it does not name a Bedrock foundation model",
            request.model
        )));
    };
    let body = count_tokens_body(&mut request, &resolved.caps);
    let counted = tokio::time::timeout(cfg.limits.request_timeout, state.bedrock.count_tokens(foundation, body)).await;
    match counted {
        Ok(Ok(n)) => Ok(json(StatusCode::OK, format!(r#"{{"input_tokens":{}}}"#, n.max(0)))),
        Ok(Err(e)) => {
            tracing::info!(error = %e, "Bedrock CountTokens failed; answering not_supported");
            Err(ApiError::NotSupported(format!("count_tokens is not available for {} on Bedrock", request.model)))
        }
        Err(_) => Err(ApiError::NotSupported("count_tokens timed out on Bedrock".into())),
    }
}
