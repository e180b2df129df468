//! The admin listener (`CCAG_DATAPLANE_ADMIN_ADDR`, default
//! `127.0.0.1:9464`): `GET /metrics` for Prometheus, and `/health` and
//! `/ready` as on the public listener. Kept off the public port so that
//! clients of the gateway never see its metrics.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::AppState;

/// Where the admin listener binds unless told: loopback, so that a default
/// start exposes nothing; containers set `0.0.0.0:9464`.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9464";

/// `CCAG_DATAPLANE_ADMIN_ADDR`: an address, or `off`.
pub fn addr_from_env() -> Result<Option<SocketAddr>, String> {
    let v = std::env::var("CCAG_DATAPLANE_ADMIN_ADDR").ok().filter(|v| !v.trim().is_empty());
    match v.as_deref().map(str::trim) {
        Some("off") => Ok(None),
        Some(a) => a.parse().map(Some).map_err(|e| format!("CCAG_DATAPLANE_ADMIN_ADDR={a:?}: {e}")),
        None => Ok(Some(DEFAULT_ADDR.parse().expect("the default address parses"))),
    }
}

pub async fn serve(listener: TcpListener, state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(std::time::Duration::from_secs(10)).keep_alive(true);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            // Stops with the process's shutdown: the drain is watched
            // through /ready on the public listener and here until then.
            _ = stopped(&mut stop) => break,
        };
        let state = state.clone();
        let http = http.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(answer(&state, &req)) }
            });
            let conn = http.serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stopped(&mut stop) => {}
            }
        });
    }
}

fn answer(state: &AppState, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, ctype: &'static str, body: String| {
        let mut res = Response::new(Full::new(Bytes::from(body)));
        *res.status_mut() = status;
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
        res
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n".into());
    }
    match req.uri().path() {
        "/metrics" => {
            let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
            let cfg = state.config.get();
            let routes = cfg.as_ref().and_then(|c| c.routes.get()).map_or(&[][..], |r| &r[..]);
            state.observer.metrics.refresh(&state.snapshot(now_ms), routes, now_ms);
            text(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", state.observer.metrics.render())
        }
        "/health" => text(StatusCode::OK, "application/json", state.gauges.health_json()),
        "/ready" => {
            let (status, body) = crate::api::readiness(state);
            text(status, "application/json", body)
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: the admin listener serves /metrics, /health and /ready\n".into(),
        ),
    }
}

/// Resolves once `flag` is set (at once if it already is).
pub async fn stopped(flag: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: dropped here, not held
    // by the caller's `select!`.
    let _ = flag.wait_for(|s| *s).await;
}
