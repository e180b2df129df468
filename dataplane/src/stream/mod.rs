//! Bedrock event stream → Anthropic server-sent events, one event written the
//! moment its frame arrives.

mod events;
mod pump;

pub use events::{rewrite_message, sse, EventTranslator, Usage};
pub use pump::{sse_body, StreamRun, PING};

use http::{HeaderValue, Response, StatusCode};

use crate::http::body::ResBody;

/// A 200 event stream with the headers that keep proxies from buffering it.
pub fn sse_response(body: ResBody) -> Response<ResBody> {
    let mut res = Response::new(body);
    *res.status_mut() = StatusCode::OK;
    let h = res.headers_mut();
    h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream; charset=utf-8"));
    h.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Tells nginx-style proxies in front of the gateway not to buffer events.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    res
}
