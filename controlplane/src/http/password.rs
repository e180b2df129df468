//! `POST /auth/login`: the portal's password sign-in. The same check as
//! `AuthService.Login` (throttled per username), but the session token
//! goes into the HttpOnly session cookie, never to the page's script.
//! A JSON body only: a form on another site cannot send one without the
//! browser asking first, and the Origin must be this gateway's.

use std::net::SocketAddr;

use http_body_util::BodyExt;

use super::cookies::{self, Jar};
use super::{json, Response};
use crate::api::{ApiError, Ctx};
use crate::auth::session;
use crate::store::ids;

#[derive(serde::Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

fn refused(status: u16, message: &str) -> Response {
    json(status, serde_json::json!({ "error": message }).to_string())
}

pub async fn login(ctx: &Ctx, peer: SocketAddr, req: http::Request<hyper::body::Incoming>) -> Response {
    let ct = req.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !ct.to_ascii_lowercase().starts_with("application/json") {
        return refused(415, "the body must be application/json: {\"username\": …, \"password\": …}");
    }
    if !super::oidc::same_origin(ctx, &req) && !super::web_api::from_this_origin(ctx, req.headers()) {
        return refused(403, "a sign-in from another origin");
    }
    let origin = session::Origin {
        user_agent: req.headers().get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").into(),
        ip: peer.ip().to_string(),
    };
    let old = cookies::get(req.headers(), cookies::SESSION).map(str::to_owned);
    let body = match http_body_util::Limited::new(req.into_body(), 16 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return refused(413, "the body is larger than 16 KiB or was cut"),
    };
    let Ok(c) = serde_json::from_slice::<Credentials>(&body) else {
        return refused(400, "the body must be {\"username\": \"…\", \"password\": \"…\"}");
    };
    let (token, row) = match crate::api::sign_in_with_password(ctx, &c.username, &c.password, &origin).await {
        Ok((token, row, _)) => (token, row),
        Err(ApiError::Unauthenticated(m)) => return refused(401, &m),
        Err(ApiError::ResourceExhausted(m)) => return refused(429, &m),
        Err(ApiError::Unavailable(m)) => return refused(503, &m),
        Err(e) => return refused(500, &e.to_string()),
    };
    // A new session every time; the one the browser held ends (no fixation).
    if let Some(old) = old {
        if let Ok(Some(s)) = session::live(&ctx.db, &ids::sha256_hex(&old)).await {
            let _ = session::revoke(&ctx.db, &s.id).await;
        }
    }
    let jar = Jar { secure: ctx.identity.public_url.starts_with("https://") };
    let ttl = (row.expires_at - chrono::Utc::now()).num_seconds().max(0) as u64;
    let mut res =
        json(200, serde_json::json!({ "signed_in": true, "expires_at": crate::api::ts(row.expires_at) }).to_string());
    res.headers_mut().append(http::header::SET_COOKIE, jar.set(cookies::SESSION, &token, "/", ttl));
    res
}
