//! The OAuth side of Claude Code's gateway sign-in: the RFC 8414 metadata,
//! device authorization (RFC 8628), the token endpoint for the device-code
//! and refresh grants, revocation (RFC 7009), and the managed settings a
//! signed-in Claude Code fetches. Errors are the RFCs' JSON, status 400.

use std::net::SocketAddr;
use std::time::Instant;

use chrono::Utc;
use sea_orm::{EntityTrait, TransactionTrait};
use serde_json::json;

use super::{form, json, Response};
use crate::api::Ctx;
use crate::fleet::Touched;
use crate::identity::device::{self, Client, Poll};
use crate::identity::tokens;
use crate::store::entities::users;
use crate::store::{ids, AuditAction};

const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

fn oauth_error(code: &str, description: &str) -> Response {
    json(400, json!({"error": code, "error_description": description}).to_string())
}

fn no_store(mut res: Response) -> Response {
    res.headers_mut().insert(http::header::PRAGMA, http::HeaderValue::from_static("no-cache"));
    res
}

pub fn metadata(ctx: &Ctx) -> Response {
    let base = &ctx.identity.public_url;
    json(
        200,
        json!({
            "issuer": base,
            "device_authorization_endpoint": format!("{base}/oauth/device_authorization"),
            "token_endpoint": format!("{base}/oauth/token"),
            "revocation_endpoint": format!("{base}/oauth/revoke"),
            "grant_types_supported": [DEVICE_CODE_GRANT, "refresh_token"],
            "response_types_supported": [],
            "token_endpoint_auth_methods_supported": ["none"],
            "revocation_endpoint_auth_methods_supported": ["none"],
        })
        .to_string(),
    )
}

pub async fn device_authorization(ctx: &Ctx, ip: SocketAddr, req: http::Request<hyper::body::Incoming>) -> Response {
    if let Err(wait) = ctx.device_limit.check(ip.ip(), Instant::now()) {
        let mut res = json(429, json!({"error": "slow_down", "error_description": format!("too many sign-ins from this address; try again in {wait} s")}).to_string());
        res.headers_mut().insert(http::header::RETRY_AFTER, wait.into());
        return res;
    }
    if let Err(e) = form(req).await {
        return oauth_error("invalid_request", &e);
    }
    let started = match device::start(&ctx.db, Client::Gateway, &ip.ip().to_string()).await {
        Ok(s) => s,
        Err(_) => return json(503, r#"{"error":"temporarily_unavailable"}"#.into()),
    };
    let base = &ctx.identity.public_url;
    no_store(json(
        200,
        json!({
            "device_code": started.device_code,
            "user_code": started.user_code,
            "verification_uri": format!("{base}/device"),
            "verification_uri_complete": format!("{base}/device?user_code={}", started.user_code),
            "expires_in": device::EXPIRES_IN_SECS,
            "interval": device::INTERVAL_SECS,
        })
        .to_string(),
    ))
}

/// Access and refresh tokens for a user, the refresh token in `family`.
async fn grant(ctx: &Ctx, user_id: &str, family: &str, key_id: Option<String>) -> Result<Response, Response> {
    let unavailable = |_| json(503, r#"{"error":"temporarily_unavailable"}"#.into());
    let key_id = match key_id {
        Some(k) => k,
        None => {
            let txn = ctx.db.begin().await.map_err(unavailable)?;
            let user = users::Entity::find_by_id(user_id.to_owned())
                .one(&txn)
                .await
                .map_err(unavailable)?
                .ok_or_else(|| oauth_error("invalid_grant", "the account no longer exists"))?;
            let (key, made) = tokens::signin_key(&txn, &user).await.map_err(unavailable)?;
            if made {
                crate::store::audit::append(&txn, &user.id, AuditAction::KeyCreate, "key", &key.id, None, Some(&key))
                    .await
                    .map_err(unavailable)?;
                crate::fleet::revision::bump(&txn, &[Touched::Key(key.id.clone())]).await.map_err(unavailable)?;
            }
            txn.commit().await.map_err(unavailable)?;
            if made {
                ctx.publisher.notify();
            }
            key.id
        }
    };
    let id = &ctx.identity;
    let (access, exp) =
        tokens::access_token(&ctx.db, &id.keyring, user_id, &key_id, family, id.access_ttl).await.map_err(|e| {
            json(503, json!({"error": "temporarily_unavailable", "error_description": e.to_string()}).to_string())
        })?;
    let refresh = tokens::new_refresh(&ctx.db, family, user_id, &key_id, id.refresh_ttl).await.map_err(unavailable)?;
    Ok(no_store(json(
        200,
        json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": exp - Utc::now().timestamp(),
            "refresh_token": refresh,
            "user_id": user_id,
        })
        .to_string(),
    )))
}

pub async fn token(ctx: &Ctx, req: http::Request<hyper::body::Incoming>) -> Response {
    let f = match form(req).await {
        Ok(f) => f,
        Err(e) => return oauth_error("invalid_request", &e),
    };
    let out = match f.get("grant_type").map(String::as_str) {
        Some(DEVICE_CODE_GRANT) => {
            let Some(code) = f.get("device_code").filter(|c| !c.is_empty() && c.len() <= 256) else {
                return oauth_error("invalid_request", "device_code is missing");
            };
            match device::poll(&ctx.db, Client::Gateway, code, Utc::now()).await {
                Ok(Poll::Pending) => Err(oauth_error("authorization_pending", "waiting for approval in the browser")),
                Ok(Poll::SlowDown) => Err(oauth_error("slow_down", "polled faster than the interval")),
                Ok(Poll::Denied) => Err(oauth_error("access_denied", "the sign-in was denied in the browser")),
                Ok(Poll::Expired) => Err(oauth_error("expired_token", "the device code is unknown, expired or used")),
                Ok(Poll::Approved { user_id }) => {
                    tracing::info!(user = %user_id, "gateway sign-in approved");
                    grant(ctx, &user_id, &ids::new_id("fam"), None).await
                }
                Err(_) => Err(json(503, r#"{"error":"temporarily_unavailable"}"#.into())),
            }
        }
        Some("refresh_token") => {
            let Some(rt) = f.get("refresh_token").filter(|c| !c.is_empty() && c.len() <= 256) else {
                return oauth_error("invalid_request", "refresh_token is missing");
            };
            match tokens::take_refresh(&ctx.db, rt).await {
                Ok(Ok(row)) => grant(ctx, &row.user_id, &row.family_id, Some(row.key_id)).await,
                Ok(Err(why)) => Err(oauth_error("invalid_grant", why.text())),
                Err(_) => Err(json(503, r#"{"error":"temporarily_unavailable"}"#.into())),
            }
        }
        Some(other) => Err(oauth_error(
            "unsupported_grant_type",
            &format!("{:?} is not a grant this gateway issues tokens for", other.chars().take(80).collect::<String>()),
        )),
        None => Err(oauth_error("invalid_request", "grant_type is missing")),
    };
    out.unwrap_or_else(|e| e)
}

/// RFC 7009: always 200, whether or not the token was known. A refresh
/// token, or an access token (by the sign-in it names), ends its sign-in;
/// an access token already issued lives out its few minutes.
pub async fn revoke(ctx: &Ctx, req: http::Request<hyper::body::Incoming>) -> Response {
    let f = match form(req).await {
        Ok(f) => f,
        Err(e) => return oauth_error("invalid_request", &e),
    };
    let token = f.get("token").map(String::as_str).unwrap_or_default();
    if token.starts_with(tokens::REFRESH_PREFIX) {
        let _ = tokens::revoke_family_of(&ctx.db, token).await;
    } else if let Ok(c) = tokens::verify(&ctx.db, token).await {
        let _ = tokens::revoke_family(&ctx.db, &c.sid).await;
    }
    json(200, "{}".into())
}

/// The managed settings for the signed-in user: the organisation's, with
/// those of the user's teams laid over them (in team-name order); `ETag`
/// and `If-None-Match`; 404 when there are none.
pub async fn managed_settings(ctx: &Ctx, req: &http::Request<hyper::body::Incoming>) -> Response {
    let token = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .unwrap_or_default();
    let claims = match tokens::verify(&ctx.db, token).await {
        Ok(c) => c,
        Err(e) => {
            return json(401, json!({"error": "invalid_token", "error_description": e.to_string()}).to_string());
        }
    };
    let merged = match crate::identity::managed::for_user(&ctx.db, &claims.sub).await {
        Ok(m) => m,
        Err(_) => return json(503, r#"{"error":"temporarily_unavailable"}"#.into()),
    };
    let Some(settings) = merged else {
        return json(404, r#"{"error":"no managed settings"}"#.into());
    };
    let body = serde_json::to_string(&settings).expect("a JSON value");
    let sum = format!("sha256:{}", ids::sha256_hex(&body));
    let etag = format!("\"{sum}\"");
    let matches = req
        .headers()
        .get(http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut res = if matches {
        let mut r = json(304, String::new());
        r.headers_mut().remove(http::header::CONTENT_TYPE);
        r
    } else {
        json(200, json!({"uuid": sum, "checksum": sum, "settings": settings}).to_string())
    };
    res.headers_mut().insert(http::header::ETAG, http::HeaderValue::from_str(&etag).expect("hex"));
    res.headers_mut().insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("private, no-cache"));
    res
}
