//! Live counts for `GET /health`: open client connections, requests being
//! handled (a streamed response counts until its last byte is sent or its
//! client leaves), and the runtime's alive tasks. A soak test reads them to
//! prove that nothing leaks once traffic stops.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use super::body::ResBody;

#[derive(Debug, Default)]
pub struct Gauges {
    inner: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    connections: AtomicI64,
    requests: AtomicI64,
    /// Of the requests, those whose response is an event stream.
    streams: AtomicI64,
    /// Set once shutdown began: `/ready` then says so.
    draining: AtomicBool,
    /// OTLP exports from signed-in Claude Code sessions, accepted and
    /// counted (not yet forwarded anywhere), and their bytes.
    telemetry_exports: AtomicI64,
    telemetry_bytes: AtomicI64,
    /// The request cores' runtimes (per-core threading), whose tasks
    /// `/health` adds up; without them, the current runtime's.
    runtimes: std::sync::OnceLock<Vec<tokio::runtime::Handle>>,
}

impl Gauges {
    /// Counts a connection until the returned guard is dropped.
    pub fn connection_opened(&self) -> ConnectionGuard {
        self.inner.connections.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self.inner.clone())
    }

    /// Counts a request until the returned guard, or the response body it
    /// is moved into, is dropped.
    pub fn request_started(&self) -> RequestGuard {
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
        RequestGuard { counts: self.inner.clone(), stream: false }
    }

    pub fn connections(&self) -> i64 {
        self.inner.connections.load(Ordering::Relaxed)
    }

    pub fn requests(&self) -> i64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    pub fn streams(&self) -> i64 {
        self.inner.streams.load(Ordering::Relaxed)
    }

    /// Counts the tasks of these runtimes in `/health` (set once).
    pub fn count_tasks_of(&self, runtimes: Vec<tokio::runtime::Handle>) {
        let _ = self.inner.runtimes.set(runtimes);
    }

    pub fn set_draining(&self) {
        self.inner.draining.store(true, Ordering::Relaxed);
    }

    pub fn draining(&self) -> bool {
        self.inner.draining.load(Ordering::Relaxed)
    }

    pub fn telemetry_received(&self, bytes: usize) {
        self.inner.telemetry_exports.fetch_add(1, Ordering::Relaxed);
        self.inner.telemetry_bytes.fetch_add(bytes as i64, Ordering::Relaxed);
    }

    /// The body of `GET /health`.
    pub fn health_json(&self) -> String {
        let tasks = match self.inner.runtimes.get() {
            Some(all) => all.iter().map(|h| h.metrics().num_alive_tasks()).sum(),
            None => tokio::runtime::Handle::try_current().map(|h| h.metrics().num_alive_tasks()).unwrap_or(0),
        };
        format!(
            r#"{{"status":"ok","connections":{},"requests_in_flight":{},"tasks":{},"telemetry_exports":{},"telemetry_bytes":{}}}"#,
            self.connections(),
            self.requests(),
            tasks,
            self.inner.telemetry_exports.load(Ordering::Relaxed),
            self.inner.telemetry_bytes.load(Ordering::Relaxed),
        )
    }
}

pub struct ConnectionGuard(Arc<Counts>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

pub struct RequestGuard {
    counts: Arc<Counts>,
    /// Also counted as an open stream.
    stream: bool,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.counts.requests.fetch_sub(1, Ordering::Relaxed);
        if self.stream {
            self.counts.streams.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl RequestGuard {
    /// Keeps counting the request until the response body is dropped; an
    /// event stream is counted as an open stream too.
    pub fn hold_until_sent(mut self, res: Response<ResBody>) -> Response<ResBody> {
        self.stream = res
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        if self.stream {
            self.counts.streams.fetch_add(1, Ordering::Relaxed);
        }
        res.map(|inner| Counted { inner, _guard: self }.boxed())
    }
}

struct Counted {
    inner: ResBody,
    _guard: RequestGuard,
}

impl Body for Counted {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::body::full;

    #[test]
    fn guards_count_until_dropped() {
        let g = Gauges::default();
        let c = g.connection_opened();
        let r = g.request_started();
        assert_eq!((g.connections(), g.requests()), (1, 1));
        let res = r.hold_until_sent(Response::new(full("x")));
        assert_eq!(g.requests(), 1, "the body holds the request");
        drop(res);
        drop(c);
        assert_eq!((g.connections(), g.requests()), (0, 0));
    }

    #[test]
    fn an_event_stream_counts_as_an_open_stream_until_its_body_is_dropped() {
        let g = Gauges::default();
        let mut res = Response::new(full("event: ping\n\n"));
        res.headers_mut().insert(http::header::CONTENT_TYPE, "text/event-stream; charset=utf-8".parse().unwrap());
        let res = g.request_started().hold_until_sent(res);
        let plain = g.request_started().hold_until_sent(Response::new(full("{}")));
        assert_eq!((g.requests(), g.streams()), (2, 1));
        drop(res);
        assert_eq!((g.requests(), g.streams()), (1, 0));
        drop(plain);
        assert_eq!(g.requests(), 0);
    }

    #[tokio::test]
    async fn the_counted_body_is_the_same_body() {
        let g = Gauges::default();
        let res = g.request_started().hold_until_sent(Response::new(full("hello")));
        assert_eq!(res.body().size_hint().exact(), Some(5));
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"hello");
        assert_eq!(g.requests(), 0, "a body read to its end is dropped by collect");
    }
}
