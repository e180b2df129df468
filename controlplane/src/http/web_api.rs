//! The admin API as gRPC-Web, for the portal: the same services, the same
//! authorization, on the HTTP address. A browser authenticates with its
//! HttpOnly session cookie, so a call that relies on the cookie must also
//! carry the session's CSRF token (`x-csrf-token`, which only a page of
//! this origin can learn) and come from this origin; the cookie then
//! stands in for `authorization: Bearer`. A call that brings its own
//! `authorization` header (automation) is passed on as it is.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::BodyExt;
use subtle::ConstantTimeEq;
use tower::ServiceExt;

use super::cookies;
use super::oidc::csrf_token;
use crate::api::Ctx;
use crate::store::ids;

pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// The admin API's package: its services' paths start with this.
pub const PREFIX: &str = "/ccag.admin.v1.";

/// Calls that hand out a session token: the web signs in through
/// `POST /auth/login`, which keeps the token in a cookie instead.
const NOT_ON_THE_WEB: &[&str] = &[
    "/ccag.admin.v1.AuthService/Login",
    "/ccag.admin.v1.AuthService/StartDeviceLogin",
    "/ccag.admin.v1.AuthService/PollDeviceLogin",
];

#[derive(Clone)]
pub struct WebApi {
    svc: tonic_web::GrpcWebService<tonic::service::Routes>,
}

impl WebApi {
    pub fn new(ctx: &crate::api::Shared) -> Self {
        use tower_layer::Layer;
        WebApi { svc: tonic_web::GrpcWebLayer::new().layer(crate::server::admin_routes(ctx).prepare()) }
    }
}

/// A gRPC answer with no message: only the status, in the headers
/// (a "trailers-only" response, which gRPC-Web clients read as the call's
/// outcome).
fn refusal(code: tonic::Code, message: &str) -> http::Response<Body> {
    let mut res = http::Response::new(http_body_util::Empty::new().map_err(|e| match e {}).boxed_unsync());
    let h = res.headers_mut();
    h.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/grpc-web+proto"));
    h.insert("grpc-status", http::HeaderValue::from(code as i32));
    let encoded = percent_encoding::utf8_percent_encode(message, percent_encoding::NON_ALPHANUMERIC).to_string();
    if let Ok(v) = http::HeaderValue::from_str(&encoded) {
        h.insert("grpc-message", v);
    }
    res
}

/// The request comes from a page of this gateway: its Origin (browsers
/// send one on every cross-origin and every POST request) is the public
/// URL's or the very host it was sent to.
pub(super) fn from_this_origin(ctx: &Ctx, headers: &http::HeaderMap) -> bool {
    let Some(origin) = headers.get(http::header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    if origin == ctx.identity.public_url {
        return true;
    }
    let host = headers.get(http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let bare = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
    !host.is_empty() && bare == Some(host)
}

pub async fn call(
    ctx: &Ctx,
    web: &WebApi,
    peer: SocketAddr,
    mut req: http::Request<hyper::body::Incoming>,
) -> http::Response<Body> {
    let path = req.uri().path();
    if NOT_ON_THE_WEB.contains(&path) {
        return refusal(
            tonic::Code::FailedPrecondition,
            "on the web, sign in through POST /auth/login (a session cookie)",
        );
    }
    let grpc_web = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/grpc-web"));
    if !grpc_web {
        let mut res = http::Response::new(
            http_body_util::Full::new(Bytes::from_static(b"{\"error\":\"the admin API here speaks gRPC-Web (application/grpc-web+proto); gRPC clients use the gRPC address\"}"))
                .map_err(|e| match e {})
                .boxed_unsync(),
        );
        *res.status_mut() = http::StatusCode::UNSUPPORTED_MEDIA_TYPE;
        res.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
        return res;
    }
    if !req.headers().contains_key(http::header::AUTHORIZATION) {
        if let Some(token) =
            cookies::get(req.headers(), cookies::SESSION).filter(|t| t.starts_with(ids::SESSION_PREFIX))
        {
            let sent = req.headers().get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or_default();
            let good: bool = sent.as_bytes().ct_eq(csrf_token(token).as_bytes()).into();
            if !good || !from_this_origin(ctx, req.headers()) {
                return refusal(
                    tonic::Code::PermissionDenied,
                    "missing or wrong x-csrf-token, or a request from another origin",
                );
            }
            let Ok(bearer) = http::HeaderValue::from_str(&format!("Bearer {token}")) else {
                return refusal(tonic::Code::Unauthenticated, "the session cookie is malformed; sign in again");
            };
            req.headers_mut().insert(http::header::AUTHORIZATION, bearer);
        }
    }
    // The caller's address, for sessions and audit, as the gRPC listener
    // would give it.
    req.extensions_mut().insert(tonic::transport::server::TcpConnectInfo { local_addr: None, remote_addr: Some(peer) });
    match web.svc.clone().oneshot(req).await {
        Ok(res) => res.map(|b| b.map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>).boxed_unsync()),
        Err(never) => match never {},
    }
}
