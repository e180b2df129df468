//! `POST /v1/metrics|logs|traces`: the OTLP/HTTP exports Claude Code sends
//! its gateway when signed in through it. They are accepted (so Claude Code
//! does not retry or complain) and counted in `/health`; forwarding them to
//! the gateway's own telemetry pipeline is the observability work's.

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::{read_body, AppState};
use crate::http::body::{full, ResBody};
use crate::http::error::ApiError;

/// An OTLP export larger than this is refused (413).
const MAX_EXPORT_BYTES: u64 = 4 * 1024 * 1024;

pub async fn accept(state: &AppState, req: Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let protobuf = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-protobuf"));
    let (_, body) = read_body(state, req, MAX_EXPORT_BYTES).await?;
    state.gauges.telemetry_received(body.len());
    // The Export*ServiceResponse with nothing rejected: empty in protobuf, {} in JSON.
    let (ct, answer) = if protobuf {
        ("application/x-protobuf", Bytes::new())
    } else {
        ("application/json", Bytes::from_static(b"{}"))
    };
    let mut res = Response::new(full(answer));
    *res.status_mut() = StatusCode::OK;
    res.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
    Ok(res)
}
