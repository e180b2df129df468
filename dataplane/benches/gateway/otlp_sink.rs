//! `--otlp`: an OTLP/HTTP collector stand-in that takes every export and
//! counts it, so that the data planes run with trace and metric export on
//! and the figures include its cost.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

#[derive(Default)]
pub struct Received {
    pub traces: AtomicU64,
    pub metrics: AtomicU64,
    pub bytes: AtomicU64,
}

/// Listens on an OS-chosen port; returns its base URL (for
/// `OTEL_EXPORTER_OTLP_ENDPOINT`) and the counts.
pub async fn start() -> Result<(String, Arc<Received>), String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let url = format!("http://{}", listener.local_addr().map_err(|e| e.to_string())?);
    let received = Arc::new(Received::default());
    let counts = received.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counts = counts.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let counts = counts.clone();
                    async move {
                        let kind = if req.uri().path().ends_with("/traces") { &counts.traces } else { &counts.metrics };
                        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        kind.fetch_add(1, Ordering::Relaxed);
                        counts.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                        let mut res = hyper::Response::new(Full::new(Bytes::new()));
                        res.headers_mut().insert("content-type", "application/x-protobuf".parse().expect("a header"));
                        Ok::<_, Infallible>(res)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    Ok((url, received))
}
