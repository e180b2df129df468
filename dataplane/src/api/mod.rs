//! Where a request goes in: routing on the path (the query, e.g. Claude
//! Code's `?beta=true`, is ignored), then the explicit list of public
//! routes, and for every other route authentication and admission
//! (`admission`) before its handler; body limits, and the `request-id`
//! every response carries.

mod admission;
mod count_tokens;
pub mod limits;
mod messages;
mod models;
mod passthrough;
mod telemetry;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tracing::Instrument;

use crate::config::ConfigStore;
use crate::http::body::{full, ResBody};
use crate::http::error::ApiError;
use crate::observe::RouteLabel;
use crate::translate::betas::BetaMemory;
use crate::upstream::Bedrock;
use crate::usage::UsageSink;

pub use admission::{authenticate, Admitted, Caller};
pub use passthrough::ControlPlaneHttp;

pub struct AppState {
    pub config: Arc<ConfigStore>,
    /// The AWS environment the endpoints' clients are built from.
    pub bedrock: Bedrock,
    /// Each request's endpoints, and what is known of their health.
    pub router: Arc<crate::routing::Router>,
    pub betas: BetaMemory,
    pub usage: Arc<UsageSink>,
    pub limiter: Arc<crate::ratelimit::Limiter>,
    pub timeouts: crate::http::Timeouts,
    /// Open connections and requests, shown by `GET /health`.
    pub gauges: crate::http::Gauges,
    /// Gateway access tokens already verified.
    pub tokens: crate::auth::TokenCache,
    /// Where the sign-in routes go (`CCAG_CONTROLPLANE_HTTP_URL`).
    pub signin: Option<passthrough::ControlPlaneHttp>,
    /// Runs web searches (`CCAG_OUTBOUND_ALLOW_CIDRS` applies).
    pub searcher: Arc<ccag_websearch::Searcher>,
    /// Metrics and OTLP export.
    pub observer: Arc<crate::observe::Observer>,
}

impl AppState {
    /// The gauges a scrape reports, read from where they are kept.
    pub fn snapshot(&self, now_ms: u64) -> crate::observe::metrics::Snapshot {
        crate::observe::metrics::Snapshot {
            in_flight: self.gauges.requests(),
            connections: self.gauges.connections(),
            streams: self.gauges.streams(),
            config_revision: self.config.get().map(|c| c.version),
            config_age_secs: self.config.updated_ms().map(|t| now_ms.saturating_sub(t) as f64 / 1000.0),
            control_connected: self.config.connected(),
            draining: self.gauges.draining(),
        }
    }
}

/// `GET /ready`: ready once a configuration is held, and no longer once
/// shutdown began (a load balancer then stops sending new requests).
pub fn readiness(state: &AppState) -> (StatusCode, String) {
    if state.gauges.draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"draining"}"#.into());
    }
    match state.config.get() {
        Some(c) => (StatusCode::OK, format!(r#"{{"status":"ready","config_version":{}}}"#, c.version)),
        None => (StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"waiting for configuration"}"#.into()),
    }
}

impl crate::http::App for AppState {
    fn gauges(&self) -> &crate::http::Gauges {
        &self.gauges
    }

    fn timeouts(&self) -> crate::http::Timeouts {
        self.timeouts
    }

    fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: std::net::SocketAddr,
    ) -> impl std::future::Future<Output = Result<Response<ResBody>, Infallible>> + Send {
        handle(self, req, peer)
    }
}

pub async fn handle(
    state: Arc<AppState>,
    req: Request<Incoming>,
    peer: std::net::SocketAddr,
) -> Result<Response<ResBody>, Infallible> {
    let rid = request_id();
    let span = tracing::info_span!(
        "request",
        request_id = %rid,
        method = %req.method(),
        path = req.uri().path(),
        key_id = tracing::field::Empty,
        model = tracing::field::Empty,
    );
    // Counts the request until its response body is dropped (sent, or the
    // client left), or until this future is dropped.
    let in_flight = state.gauges.request_started();
    let path = req.uri().path();
    let path = if path.len() > 1 { path.trim_end_matches('/') } else { path };
    let classified = classify(req.method(), path);
    let label = classified.as_ref().map_or(RouteLabel::Other, Route::label);
    let result = match classified {
        Ok(r) => route(&state, req, r, &rid, peer).instrument(span.clone()).await,
        Err(e) => Err(e),
    };
    let (mut res, error_type) = match result {
        Ok(res) => (res, None),
        Err(e) => {
            span.in_scope(|| tracing::info!(status = e.status().as_u16(), error = %e, "request refused"));
            let kind = e.kind();
            (e.into_response(&rid), Some(kind))
        }
    };
    state.observer.metrics.http_request(label, res.status().as_u16(), error_type);
    res.headers_mut().insert("request-id", HeaderValue::from_str(&rid).expect("request ids are ASCII"));
    Ok(in_flight.hold_until_sent(res))
}

/// What a request asks for, from its method and path.
#[derive(Clone, Copy)]
enum Route {
    /// Needs no key. Nothing else is public.
    Public(Public),
    /// Authenticated (and the inference routes admitted) before its handler.
    Protected(Protected),
}

#[derive(Clone, Copy)]
enum Public {
    Hello,
    Health,
    Ready,
    /// Sign-in and onboarding, served by the control plane.
    ControlPlane,
}

#[derive(Clone, Copy)]
enum Protected {
    Messages,
    CountTokens,
    ListModels,
    /// The model id starts at this byte of the path.
    GetModel(usize),
    /// OTLP/HTTP from signed-in Claude Code sessions.
    Telemetry,
}

impl Route {
    fn label(&self) -> RouteLabel {
        match self {
            Route::Public(Public::Hello) | Route::Public(Public::ControlPlane) => RouteLabel::Signin,
            Route::Public(Public::Health) => RouteLabel::Health,
            Route::Public(Public::Ready) => RouteLabel::Ready,
            Route::Protected(Protected::Messages) => RouteLabel::Messages,
            Route::Protected(Protected::CountTokens) => RouteLabel::CountTokens,
            Route::Protected(Protected::ListModels | Protected::GetModel(_)) => RouteLabel::Models,
            Route::Protected(Protected::Telemetry) => RouteLabel::Telemetry,
        }
    }
}

fn classify(method: &Method, path: &str) -> Result<Route, ApiError> {
    Ok(match (method, path) {
        (&Method::POST, "/v1/messages") => Route::Protected(Protected::Messages),
        (&Method::POST, "/v1/messages/count_tokens") => Route::Protected(Protected::CountTokens),
        (&Method::GET, "/v1/models") => Route::Protected(Protected::ListModels),
        (&Method::GET, p) if p.starts_with("/v1/models/") => Route::Protected(Protected::GetModel("/v1/models/".len())),
        (&Method::GET | &Method::HEAD, "/api/hello") => Route::Public(Public::Hello),
        (&Method::GET, "/health") => Route::Public(Public::Health),
        (&Method::GET, "/ready") => Route::Public(Public::Ready),
        (&Method::POST, "/v1/metrics" | "/v1/logs" | "/v1/traces") => Route::Protected(Protected::Telemetry),
        (_, p) if passthrough::is_signin_path(p) => Route::Public(Public::ControlPlane),
        (
            _,
            "/v1/messages"
            | "/v1/messages/count_tokens"
            | "/v1/models"
            | "/api/hello"
            | "/health"
            | "/ready"
            | "/v1/metrics"
            | "/v1/logs"
            | "/v1/traces",
        ) => return Err(ApiError::MethodNotAllowed(format!("{method} is not allowed on {path}"))),
        _ => return Err(ApiError::NotFound(format!("no endpoint at {path}"))),
    })
}

async fn route(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    classified: Route,
    rid: &str,
    peer: std::net::SocketAddr,
) -> Result<Response<ResBody>, ApiError> {
    let protected = match classified {
        Route::Public(Public::Hello) => return Ok(json(StatusCode::OK, "{}")),
        Route::Public(Public::Health) => return Ok(json(StatusCode::OK, state.gauges.health_json())),
        Route::Public(Public::Ready) => {
            let (status, body) = readiness(state);
            return Ok(json(status, body));
        }
        Route::Public(Public::ControlPlane) => {
            return match &state.signin {
                Some(cp) => Box::pin(cp.forward(state, req, peer)).await,
                None => Err(ApiError::NotFound(
                    "sign-in is not served by this data plane (CCAG_CONTROLPLANE_HTTP_URL)".into(),
                )),
            }
        }
        Route::Protected(p) => p,
    };
    let caller = authenticate(state, &req)?;
    match protected {
        // Boxed: hyper keeps the allocation of a connection's service future for
        // the connection's whole life, so an unboxed Bedrock call (several KiB
        // of future state) would stay resident for every open stream and idle
        // keep-alive connection. Boxed, it is freed when the call completes.
        Protected::Messages => Box::pin(messages::handle(state, caller, req, rid)).await,
        Protected::CountTokens => Box::pin(count_tokens::handle(state, caller, req, rid)).await,
        Protected::ListModels => models::list(&caller, &req),
        Protected::GetModel(at) => {
            let path = req.uri().path();
            let path = if path.len() > 1 { path.trim_end_matches('/') } else { path };
            let id = path[at..].to_owned();
            models::get(&caller, &id)
        }
        Protected::Telemetry => Box::pin(telemetry::accept(state, req)).await,
    }
}

/// Reads the whole body, refusing more than `limit` bytes (before reading,
/// when Content-Length already says so) and slow senders.
async fn read_body(
    state: &AppState,
    req: Request<Incoming>,
    limit: u64,
) -> Result<(http::request::Parts, Bytes), ApiError> {
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > limit) {
        return Err(ApiError::RequestTooLarge(n, limit));
    }
    let (parts, body) = req.into_parts();
    let limited = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    let collected = tokio::time::timeout(state.timeouts.body_read, limited.collect())
        .await
        .map_err(|_| ApiError::InvalidRequest("timed out reading the request body".into()))?;
    match collected {
        Ok(c) => Ok((parts, c.to_bytes())),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::RequestTooLarge(limit + 1, limit)),
        Err(e) => Err(ApiError::InvalidRequest(format!("could not read the request body: {e}"))),
    }
}

fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<ResBody> {
    let mut res = Response::new(full(body));
    *res.status_mut() = status;
    res.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// `req_` and 24 random base-62 characters, like Anthropic's ids.
fn request_id() -> String {
    random_id("req_", 24)
}

/// `prefix` and `n` random base-62 characters.
pub fn random_id(prefix: &str, n: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut id = String::with_capacity(prefix.len() + n);
    id.push_str(prefix);
    for _ in 0..n {
        id.push(ALPHABET[fastrand::usize(..ALPHABET.len())] as char);
    }
    id
}
