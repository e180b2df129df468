//! Browser sign-in through an identity provider, and the session cookie it
//! ends in. The provider's tokens never leave the server: the browser only
//! ever holds an opaque, HttpOnly session cookie.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::cookies::{self, Jar};
use super::{json, page, redirect, Response};
use crate::api::Ctx;
use crate::auth::{session, Principal};
use crate::identity::{flow, provision, IdentityError, Provider};
use crate::store::entities::{identity_providers, sessions};
use crate::store::ids;

fn query(req: &http::Request<hyper::body::Incoming>) -> HashMap<String, String> {
    form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes()).into_owned().collect()
}

fn jar(ctx: &Ctx) -> Jar {
    Jar { secure: ctx.identity.public_url.starts_with("https://") }
}

fn origin(req: &http::Request<hyper::body::Incoming>, peer: SocketAddr) -> session::Origin {
    session::Origin {
        user_agent: req.headers().get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").into(),
        ip: peer.ip().to_string(),
    }
}

fn refused(e: &IdentityError) -> Response {
    page::error(e.status(), &e.to_string())
}

/// The CSRF token of a session: derived from its secret token, so only the
/// page that can read `/auth/session` (same origin) learns it, and every
/// replica computes the same one.
pub fn csrf_token(session_token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"ccag-csrf\0");
    h.update(session_token.as_bytes());
    hex::encode(h.finalize())
}

async fn enabled_providers(ctx: &Ctx) -> Result<Vec<identity_providers::Model>, sea_orm::DbErr> {
    identity_providers::Entity::find()
        .filter(identity_providers::Column::Enabled.eq(true))
        .order_by_asc(identity_providers::Column::Name)
        .all(&ctx.db)
        .await
}

pub async fn providers(ctx: &Ctx) -> Response {
    match enabled_providers(ctx).await {
        Ok(rows) => {
            let list: Vec<_> = rows
                .iter()
                .map(|r| serde_json::json!({"name": r.name, "login_url": ctx.identity.login_url(&r.name)}))
                .collect();
            json(200, serde_json::json!({ "providers": list }).to_string())
        }
        Err(_) => json(503, r#"{"error":"the database is unavailable"}"#.into()),
    }
}

pub async fn login(ctx: &Ctx, peer: SocketAddr, req: &http::Request<hyper::body::Incoming>) -> Response {
    if let Err(wait) = ctx.login_limit.check(peer.ip(), Instant::now()) {
        let mut res = page::error(429, &format!("Too many sign-ins from this address; try again in {wait} s."));
        res.headers_mut().insert(http::header::RETRY_AFTER, wait.into());
        return res;
    }
    let q = query(req);
    let rows = match enabled_providers(ctx).await {
        Ok(r) => r,
        Err(e) => return refused(&IdentityError::Database(e)),
    };
    let name = q.get("idp").map(|s| s.trim()).unwrap_or_default();
    let row = if name.is_empty() && rows.len() == 1 { rows.first() } else { rows.iter().find(|r| r.name == name) };
    let Some(row) = row else {
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        let msg = if rows.is_empty() {
            "No identity provider is set up on this gateway; an admin adds one with `ccag idps create`.".to_owned()
        } else if name.is_empty() {
            format!("Choose an identity provider: ?idp= one of {}.", names.join(", "))
        } else {
            format!("No identity provider named {name:?} is enabled; the enabled ones are: {}.", names.join(", "))
        };
        return page::error(if rows.is_empty() || !name.is_empty() { 404 } else { 400 }, &msg);
    };
    let started = async {
        let p = Provider::from_row(row, &ctx.identity.keyring)?;
        flow::start(&ctx.identity, &ctx.db, &p, q.get("return_to").map(String::as_str).unwrap_or_default()).await
    };
    match started.await {
        Ok(s) => {
            let mut res = redirect(&s.redirect);
            let max_age = flow::FLOW_TTL.as_secs();
            res.headers_mut()
                .append(http::header::SET_COOKIE, jar(ctx).set(cookies::FLOW, &s.browser, "/auth/oidc", max_age));
            res
        }
        Err(e) => {
            tracing::warn!(idp = %row.name, error = %e, "could not start a sign-in");
            refused(&e)
        }
    }
}

pub async fn callback(ctx: &Ctx, peer: SocketAddr, req: &http::Request<hyper::body::Incoming>) -> Response {
    let q = query(req);
    let state = q.get("state").map(String::as_str).unwrap_or_default();
    let browser = cookies::get(req.headers(), cookies::FLOW);
    let j = jar(ctx);
    if let Some(error) = q.get("error") {
        // The flow is spent either way.
        let _ = flow::finish(&ctx.identity, &ctx.db, state, "", None).await;
        let text: String =
            q.get("error_description").map(String::as_str).unwrap_or_default().chars().take(200).collect();
        let e = IdentityError::ProviderRefused(format!("{} {text}", error.chars().take(64).collect::<String>()));
        tracing::warn!(reason = %e, "sign-in refused by the provider");
        return refused(&e);
    }
    let Some(code) = q.get("code").filter(|c| !c.is_empty() && c.len() <= 2048) else {
        return refused(&IdentityError::BadRequest("the provider's answer has no authorization code".into()));
    };
    let result = async {
        let done = flow::finish(&ctx.identity, &ctx.db, state, code, browser).await?;
        let user = provision::sign_in(ctx, &ctx.identity.admin_users, &done.provider, &done.verified).await?;
        Ok::<_, IdentityError>((done, user))
    };
    let (done, user) = match result.await {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(reason = %e, "sign-in refused");
            let mut res = refused(&e);
            res.headers_mut().append(http::header::SET_COOKIE, j.clear(cookies::FLOW, "/auth/oidc"));
            return res;
        }
    };
    // A new session every time: a session id planted before sign-in is
    // never promoted (no fixation), and the one it replaces ends.
    if let Some(old) = cookies::get(req.headers(), cookies::SESSION) {
        if let Ok(Some(s)) = session::live(&ctx.db, &ids::sha256_hex(old)).await {
            let _ = session::revoke(&ctx.db, &s.id).await;
        }
    }
    let ttl = ctx.identity.session_ttl;
    let opened = session::open(&ctx.db, &user.id, session::Via::Oidc, &done.provider.id, ttl, &origin(req, peer)).await;
    let (token, _) = match opened {
        Ok(x) => x,
        Err(e) => return refused(&IdentityError::Database(e)),
    };
    tracing::info!(user = %user.id, idp = %done.provider.name, "signed in");
    let mut res = redirect(&done.return_to);
    let h = res.headers_mut();
    h.append(http::header::SET_COOKIE, j.set(cookies::SESSION, &token, "/", ttl.as_secs()));
    h.append(http::header::SET_COOKIE, j.clear(cookies::FLOW, "/auth/oidc"));
    res
}

/// The session the request's cookie names, with its token.
pub(super) async fn from_cookie<'r>(
    ctx: &Ctx,
    req: &'r http::Request<hyper::body::Incoming>,
) -> Option<(Principal, sessions::Model, &'r str)> {
    let token = cookies::get(req.headers(), cookies::SESSION).filter(|t| t.starts_with(ids::SESSION_PREFIX))?;
    let who = ctx.auth.resolve(&ctx.db, token).await.ok()?;
    let row = sessions::Entity::find_by_id(who.session_id.clone()?).one(&ctx.db).await.ok()??;
    Some((who, row, token))
}

pub async fn current(ctx: &Ctx, req: &http::Request<hyper::body::Incoming>) -> Response {
    let Some((who, row, token)) = from_cookie(ctx, req).await else {
        return json(401, r#"{"error":"not signed in"}"#.into());
    };
    json(
        200,
        serde_json::json!({
            "user_id": who.user_id,
            "email": who.email,
            "role": if who.is_admin() { "admin" } else { "member" },
            "via": row.via,
            "expires_at": crate::api::ts(row.expires_at),
            "csrf_token": csrf_token(token),
        })
        .to_string(),
    )
}

pub async fn signed_in(ctx: &Ctx, req: &http::Request<hyper::body::Incoming>) -> Response {
    match from_cookie(ctx, req).await {
        Some((who, _, _)) => page::html(
            200,
            "Signed in",
            &format!(
                "<p id=\"who\">Signed in as {} ({}).</p>\n<p>You can close this page.</p>",
                page::escape(if who.email.is_empty() { &who.user_id } else { &who.email }),
                if who.is_admin() { "admin" } else { "member" }
            ),
        ),
        None => page::error(401, "You are not signed in."),
    }
}

pub(super) fn same_origin(ctx: &Ctx, req: &http::Request<hyper::body::Incoming>) -> bool {
    match req.headers().get(http::header::ORIGIN).and_then(|v| v.to_str().ok()) {
        // A browser always sends Origin on a cross-site POST; other clients
        // may not, and still need the CSRF header.
        None => true,
        Some(o) => {
            ctx.identity.public_url.starts_with(o) && {
                let rest = &ctx.identity.public_url[o.len()..];
                rest.is_empty() || rest.starts_with('/')
            }
        }
    }
}

pub async fn logout(ctx: &Ctx, req: &http::Request<hyper::body::Incoming>) -> Response {
    let Some((_, row, token)) = from_cookie(ctx, req).await else {
        return json(401, r#"{"error":"not signed in"}"#.into());
    };
    let sent = req.headers().get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let good: bool = sent.as_bytes().ct_eq(csrf_token(token).as_bytes()).into();
    if !good || !same_origin(ctx, req) {
        return json(403, r#"{"error":"missing or wrong x-csrf-token, or a request from another origin"}"#.into());
    }
    if session::revoke(&ctx.db, &row.id).await.is_err() {
        return json(503, r#"{"error":"the database is unavailable"}"#.into());
    }
    let mut res = json(200, r#"{"signed_out":true}"#.into());
    res.headers_mut().append(http::header::SET_COOKIE, jar(ctx).clear(cookies::SESSION, "/"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_token_is_tied_to_its_session() {
        assert_eq!(csrf_token("ccag_ses_a"), csrf_token("ccag_ses_a"));
        assert_ne!(csrf_token("ccag_ses_a"), csrf_token("ccag_ses_b"));
        assert!(!csrf_token("ccag_ses_a").contains("ccag_ses_a"));
    }
}
