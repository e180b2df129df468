//! The control plane's HTTP listener (`CCAG_HTTP_ADDR`): probes, metrics,
//! the browser side of sign-in, onboarding, SCIM provisioning
//! (`crate::scim`, which authenticates its own bearer tokens), the portal
//! (`portal`) and the admin API as gRPC-Web for it (`web_api`, which turns
//! the session cookie into the API's bearer once the CSRF token checks).
//! Every route is listed in `route` (the gRPC-Web calls in `serve`), and
//! named for the metrics in `route_name`; the ones that need a session get
//! it from `session::from_cookie`, and every state-changing one also checks
//! the CSRF token and the Origin.

mod cookies;
mod device;
mod limit;
mod oauth;
mod oidc;
mod page;
mod password;
mod portal;
mod setup;
mod web_api;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sea_orm::ConnectionTrait;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::Ctx;

pub use limit::{PerIp, PerKey};

pub type Response = http::Response<Full<Bytes>>;

pub async fn serve(listener: TcpListener, ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    let web = web_api::WebApi::new(&ctx);
    loop {
        let (stream, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let ctx = ctx.clone();
        let web = web.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let ctx = ctx.clone();
                let web = web.clone();
                async move {
                    let name = route_name(req.uri().path());
                    let res = if name == "admin_api" {
                        let ip = client_ip(&ctx, peer, req.headers());
                        secure_headers(web_api::call(&ctx, &web, ip, req).await)
                    } else {
                        secure_headers(route(&ctx, peer, req).await).map(|b| b.map_err(|e| match e {}).boxed_unsync())
                    };
                    ctx.metrics.http_request(name, res.status());
                    Ok::<_, Infallible>(res)
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn route(ctx: &Ctx, peer: SocketAddr, req: http::Request<hyper::body::Incoming>) -> Response {
    use http::Method;
    let path = req.uri().path().to_owned();
    let ip = client_ip(ctx, peer, req.headers());
    match (req.method().clone(), path.as_str()) {
        // Public: probes, metrics (operators keep them from the outside
        // with their network policy or ingress rules), the list of
        // providers, the two legs of browser sign-in, and the OAuth
        // endpoints of the gateway sign-in (which authenticate by what they
        // are sent).
        (Method::GET, "/health") => json(200, r#"{"status":"ok"}"#.into()),
        (Method::GET, "/metrics") => metrics(ctx),
        (Method::GET, "/ready") => match ctx.db.execute_unprepared("SELECT 1").await {
            Ok(_) => json(200, r#"{"status":"ready"}"#.into()),
            Err(_) => json(503, r#"{"status":"database unavailable"}"#.into()),
        },
        (Method::GET, "/auth/providers") => oidc::providers(ctx).await,
        (Method::POST, "/auth/login") => password::login(ctx, ip, req).await,
        // The portal's pages and assets (its data comes from the admin API,
        // which authenticates every call).
        (Method::GET, "/") | (Method::GET, "/portal") => redirect(portal::PREFIX),
        (Method::GET, p) if p.starts_with(portal::PREFIX) => portal::serve(p, req.headers()),
        (Method::GET, "/auth/oidc/login") => oidc::login(ctx, ip, &req).await,
        (Method::GET, "/auth/oidc/callback") => oidc::callback(ctx, ip, &req).await,
        (Method::GET, "/.well-known/oauth-authorization-server") => oauth::metadata(ctx),
        (Method::POST, "/oauth/device_authorization") => oauth::device_authorization(ctx, ip, req).await,
        (Method::POST, "/oauth/token") => oauth::token(ctx, req).await,
        (Method::POST, "/oauth/revoke") => oauth::revoke(ctx, req).await,
        (Method::GET, "/setup") => setup::script(ctx, &req).await,
        (Method::POST, "/setup/credential") => setup::credential(ctx, req).await,
        // With a session cookie (the device page asks for one).
        (Method::GET, "/device") => device::page(ctx, &req).await,
        (Method::POST, "/device") => device::decide(ctx, ip, req).await,
        (Method::GET, "/auth/session") => oidc::current(ctx, &req).await,
        (Method::GET, "/auth/signed-in") => oidc::signed_in(ctx, &req).await,
        (Method::POST, "/auth/logout") => oidc::logout(ctx, &req).await,
        // With a gateway access token.
        (Method::GET, "/managed/settings") => oauth::managed_settings(ctx, &req).await,
        // With a SCIM token (its discovery documents are public).
        (_, p) if route_name(p) == "scim" => crate::scim::handle(ctx, req).await,
        (_, p) if route_name(p) != OTHER => json(405, r#"{"error":"method not allowed"}"#.into()),
        _ => json(404, r#"{"error":"not found"}"#.into()),
    }
}

/// The route name of a path that is no route.
const OTHER: &str = "other";

/// Every route of `route`, as the fixed names `ccag_http_requests_total`
/// counts it by (a path that is none is `other`); a known path asked with
/// another method is answered 405.
pub fn route_name(path: &str) -> &'static str {
    match path {
        "/health" => "health",
        "/ready" => "ready",
        "/metrics" => "metrics",
        "/auth/providers" | "/auth/oidc/login" | "/auth/oidc/callback" => "oidc",
        "/auth/session" | "/auth/signed-in" | "/auth/logout" | "/auth/login" => "session",
        "/" | "/portal" => "portal",
        p if p.starts_with(portal::PREFIX) => "portal",
        p if p.starts_with(web_api::PREFIX) => "admin_api",
        "/.well-known/oauth-authorization-server"
        | "/oauth/device_authorization"
        | "/oauth/token"
        | "/oauth/revoke" => "oauth",
        "/device" => "device",
        "/managed/settings" => "managed_settings",
        "/setup" | "/setup/credential" => "setup",
        p if p == crate::scim::PREFIX || p.starts_with("/scim/v2/") => "scim",
        _ => OTHER,
    }
}

/// `GET /metrics`: this replica's metrics, the scrape-time gauges read now.
fn metrics(ctx: &Ctx) -> Response {
    let body = ctx.metrics.render(&crate::metrics::snapshot(ctx));
    let mut res = http::Response::new(Full::new(Bytes::from(body)));
    res.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(crate::metrics::CONTENT_TYPE));
    res
}

/// The client's address: the peer's, or, when a data plane forwards the
/// request and proves it with the data-plane token, the one it names.
fn client_ip(ctx: &Ctx, peer: SocketAddr, headers: &http::HeaderMap) -> SocketAddr {
    use subtle::ConstantTimeEq;
    let by_dataplane = headers
        .get("x-ccag-dataplane-token")
        .is_some_and(|t| bool::from(t.as_bytes().ct_eq(ctx.dataplane_token.as_bytes())));
    let named = headers.get("x-ccag-client-ip").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    match (by_dataplane, named) {
        (true, Some(ip)) => SocketAddr::new(ip, 0),
        _ => peer,
    }
}

/// A form body (`application/x-www-form-urlencoded`), at most 16 KiB.
pub async fn form(
    req: http::Request<hyper::body::Incoming>,
) -> Result<std::collections::HashMap<String, String>, String> {
    use http_body_util::BodyExt;
    let ct = req.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !ct.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded") {
        return Err("the body must be application/x-www-form-urlencoded".into());
    }
    let body = http_body_util::Limited::new(req.into_body(), 16 * 1024)
        .collect()
        .await
        .map_err(|_| "the body is larger than 16 KiB or was cut".to_owned())?
        .to_bytes();
    Ok(form_urlencoded::parse(&body).into_owned().collect())
}

/// A 302 to a path or URL (an invalid one sends no Location, never a panic).
pub fn redirect(to: &str) -> Response {
    let mut res = http::Response::new(Default::default());
    *res.status_mut() = http::StatusCode::FOUND;
    if let Ok(v) = http::HeaderValue::from_str(to) {
        res.headers_mut().insert(http::header::LOCATION, v);
    }
    res
}

pub fn json(status: u16, body: String) -> Response {
    let mut res = http::Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = http::StatusCode::from_u16(status).expect("valid status");
    res.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    res
}

/// On every answer: nothing here is to be framed, sniffed, cached, or
/// leak its URL (which may hold an authorization code) as a referrer.
fn secure_headers<B>(mut res: http::Response<B>) -> http::Response<B> {
    let h = res.headers_mut();
    h.insert("x-content-type-options", http::HeaderValue::from_static("nosniff"));
    h.insert("x-frame-options", http::HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", http::HeaderValue::from_static("no-referrer"));
    h.entry(http::header::CACHE_CONTROL).or_insert(http::HeaderValue::from_static("no-store"));
    h.entry("content-security-policy").or_insert(http::HeaderValue::from_static(
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ));
    res
}

#[cfg(test)]
mod tests {
    use super::route_name;

    #[test]
    fn every_route_has_a_fixed_name() {
        for (path, name) in [
            ("/health", "health"),
            ("/ready", "ready"),
            ("/metrics", "metrics"),
            ("/auth/oidc/callback", "oidc"),
            ("/auth/session", "session"),
            ("/oauth/token", "oauth"),
            ("/device", "device"),
            ("/managed/settings", "managed_settings"),
            ("/setup/credential", "setup"),
            ("/scim/v2", "scim"),
            ("/scim/v2/Users/u_123", "scim"),
            ("/auth/login", "session"),
            ("/portal", "portal"),
            ("/portal/admin/users", "portal"),
            ("/ccag.admin.v1.KeyService/ListKeys", "admin_api"),
        ] {
            assert_eq!(route_name(path), name, "{path}");
        }
    }

    #[test]
    fn a_path_that_is_no_route_is_other() {
        for path in [
            "/nope",
            "/metrics/",
            "/scim/v2x",
            "/health?x",
            "/auth",
            "/portalx",
            "/ccag.config.v1.DataPlaneService/Watch",
        ] {
            assert_eq!(route_name(path), "other", "{path}");
        }
    }
}
