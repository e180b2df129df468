//! One-command onboarding: `GET /setup` returns the POSIX shell script a
//! developer pipes to `sh` (see `setup.sh`), with the gateway's public URL
//! (never the request's Host) filled in; `POST /setup/credential` trades a
//! one-time setup token for a new key, once.

use bytes::Bytes;
use chrono::Utc;
use http_body_util::Full;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set, TransactionTrait};
use serde_json::json;

use super::{form, json, Response};
use crate::api::Ctx;
use crate::fleet::Touched;
use crate::store::entities::{api_keys, setup_tokens, users};
use crate::store::{ids, AuditAction, KeyStatus, UserStatus};

const SCRIPT: &str = include_str!("setup.sh");
/// Claude Code runs the credential helper again after this long; gateway
/// access tokens live 15 minutes, the helper renews them 2 minutes early.
const HELPER_TTL_MS: &str = "300000";

fn text(status: u16, body: String) -> Response {
    let mut res = http::Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = http::StatusCode::from_u16(status).expect("valid status");
    res.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    res
}

/// A shell comment line that fails loudly if piped to `sh` by mistake.
fn refusal(status: u16, message: &str) -> Response {
    text(status, format!("echo 'ccag setup: {}' >&2; exit 1\n", message.replace('\'', "")))
}

pub async fn script(ctx: &Ctx, req: &http::Request<hyper::body::Incoming>) -> Response {
    let q: std::collections::HashMap<String, String> =
        form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes()).into_owned().collect();
    if q.get("platform").is_some_and(|p| p.eq_ignore_ascii_case("windows")) {
        return refusal(501, "there is no PowerShell setup yet; on Windows run this script in WSL");
    }
    let scope = match q.get("scope").map(String::as_str) {
        None | Some("user") => "user",
        Some("project") => "project",
        Some(_) => return refusal(400, "scope is user or project"),
    };
    let token = q.get("token").map(String::as_str).unwrap_or_default();
    let well_formed =
        |t: &str| t.starts_with("st_") && t.len() <= 64 && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !token.is_empty() && !well_formed(token) {
        return refusal(400, "that is not a setup token");
    }
    // A database that cannot answer leaves the setting alone rather than
    // failing the setup.
    let web_search_off = crate::websearch::mode(&ctx.db).await.is_ok_and(|m| m == crate::websearch::Mode::Disabled);
    // The public URL was checked at start-up (an origin, no quotes).
    let url = ctx.identity.public_url.replace('\'', "");
    let desc = if scope == "project" { "./.claude/settings.json" } else { "~/.claude/settings.json" };
    let body = SCRIPT
        .replace("@URL@", &url)
        .replace("@SCOPE@", scope)
        .replace("@TOKEN@", token)
        .replace("@SETTINGS_DESC@", desc)
        .replace("@HELPER_TTL_MS@", HELPER_TTL_MS)
        .replace("@DENY_WEBSEARCH@", if web_search_off { "1" } else { "" });
    text(200, body)
}

pub async fn credential(ctx: &Ctx, req: http::Request<hyper::body::Incoming>) -> Response {
    let refused = || json(400, r#"{"error":"the setup token is unknown, expired or already used"}"#.into());
    let unavailable = |_| json(503, r#"{"error":"the gateway's database is unavailable"}"#.into());
    let f = match form(req).await {
        Ok(f) => f,
        Err(e) => return json(400, json!({ "error": e }).to_string()),
    };
    let token = f.get("token").map(String::as_str).unwrap_or_default();
    let run = async {
        let txn = ctx.db.begin().await.map_err(unavailable)?;
        let now = Utc::now();
        let row = setup_tokens::Entity::find()
            .filter(setup_tokens::Column::TokenHash.eq(ids::sha256_hex(token)))
            .one(&txn)
            .await
            .map_err(unavailable)?
            .filter(|r| r.used_at.is_none() && r.expires_at > now)
            .ok_or_else(refused)?;
        // Used once: the mark and the check are one statement.
        let took = setup_tokens::Entity::update_many()
            .col_expr(setup_tokens::Column::UsedAt, sea_orm::sea_query::Expr::value(Some(now)))
            .filter(setup_tokens::Column::Id.eq(row.id.clone()))
            .filter(setup_tokens::Column::UsedAt.is_null())
            .exec(&txn)
            .await
            .map_err(unavailable)?;
        if took.rows_affected != 1 {
            return Err(refused());
        }
        let user = users::Entity::find_by_id(row.user_id.clone()).one(&txn).await.map_err(unavailable)?;
        if !user.is_some_and(|u| UserStatus::parse(&u.status) == UserStatus::Active) {
            return Err(refused());
        }
        let key = ids::new_key();
        let made = api_keys::ActiveModel {
            id: Set(ids::new_id("key")),
            name: Set(row.key_name.clone()),
            prefix: Set(ids::visible_prefix(&key)),
            key_hash: Set(ids::sha256_hex(&key)),
            user_id: Set(row.user_id.clone()),
            team_id: Set(row.team_id.clone()),
            status: Set(KeyStatus::Active.as_str().into()),
            rpm: Set(0),
            tpm: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
            last_used_at: Set(None),
            expires_at: Set(None),
        }
        .insert(&txn)
        .await
        .map_err(unavailable)?;
        let actor = format!("setup_token:{}", row.id);
        crate::store::audit::append(&txn, &actor, AuditAction::SetupTokenUse, "setup_token", &row.id, None, Some(&row))
            .await
            .map_err(unavailable)?;
        crate::store::audit::append(&txn, &actor, AuditAction::KeyCreate, "key", &made.id, None, Some(&made))
            .await
            .map_err(unavailable)?;
        crate::fleet::revision::bump(&txn, &[Touched::Key(made.id.clone())]).await.map_err(unavailable)?;
        txn.commit().await.map_err(unavailable)?;
        ctx.publisher.notify();
        Ok::<_, Response>(json(200, json!({ "key": key, "key_id": made.id }).to_string()))
    };
    run.await.unwrap_or_else(|e| e)
}
