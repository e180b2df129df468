//! Server-side sessions. The token is 238 random bits shown once (to the
//! CLI, or in an HttpOnly cookie); the database keeps its hash, so a
//! session can be listed, ended by its user or an admin, and ends with the
//! user. Every replica sees the same sessions.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};
use subtle::ConstantTimeEq;

use crate::store::entities::sessions;
use crate::store::ids;

/// How a session was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Password,
    Oidc,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Password => "password",
            Via::Oidc => "oidc",
        }
    }
}

/// Who opened it, as far as the server can tell; shown to the user and
/// admins so a stray session can be recognised.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub user_agent: String,
    pub ip: String,
}

/// Writes of `last_seen_at` are at most this frequent per session.
const SEEN_GRANULARITY: chrono::Duration = chrono::Duration::seconds(60);

pub async fn open<C: ConnectionTrait>(
    c: &C,
    user_id: &str,
    via: Via,
    idp_id: &str,
    ttl: Duration,
    origin: &Origin,
) -> Result<(String, sessions::Model), DbErr> {
    let token = format!("{}{}", ids::SESSION_PREFIX, ids::random_base62(40));
    let now = Utc::now();
    let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(12));
    let clip = |s: &str, n: usize| s.chars().filter(|c| !c.is_control()).take(n).collect::<String>();
    let row = sessions::ActiveModel {
        id: Set(ids::new_id("ses")),
        token_hash: Set(ids::sha256_hex(&token)),
        user_id: Set(user_id.to_owned()),
        via: Set(via.as_str().to_owned()),
        idp_id: Set(idp_id.to_owned()),
        user_agent: Set(clip(&origin.user_agent, 200)),
        ip: Set(clip(&origin.ip, 64)),
        created_at: Set(now),
        expires_at: Set(now + ttl),
        last_seen_at: Set(now),
        revoked_at: Set(None),
    }
    .insert(c)
    .await?;
    Ok((token, row))
}

/// The live session whose token hashes to `hash`.
pub async fn live<C: ConnectionTrait>(c: &C, hash: &str) -> Result<Option<sessions::Model>, DbErr> {
    let Some(row) = sessions::Entity::find().filter(sessions::Column::TokenHash.eq(hash)).one(c).await? else {
        return Ok(None);
    };
    let same: bool = row.token_hash.as_bytes().ct_eq(hash.as_bytes()).into();
    let now = Utc::now();
    if !same || row.revoked_at.is_some() || row.expires_at <= now {
        return Ok(None);
    }
    if now - row.last_seen_at >= SEEN_GRANULARITY {
        // Best effort: a failed write must not fail the call it rides on.
        let _ = sessions::Entity::update_many()
            .col_expr(sessions::Column::LastSeenAt, sea_orm::sea_query::Expr::value(now))
            .filter(sessions::Column::Id.eq(row.id.clone()))
            .exec(c)
            .await;
    }
    Ok(Some(row))
}

pub fn is_live(row: &sessions::Model, now: DateTime<Utc>) -> bool {
    row.revoked_at.is_none() && row.expires_at > now
}

/// Ends one session; ending an ended one changes nothing.
pub async fn revoke<C: ConnectionTrait>(c: &C, id: &str) -> Result<(), DbErr> {
    sessions::Entity::update_many()
        .col_expr(sessions::Column::RevokedAt, sea_orm::sea_query::Expr::value(Some(Utc::now())))
        .filter(sessions::Column::Id.eq(id))
        .filter(sessions::Column::RevokedAt.is_null())
        .exec(c)
        .await?;
    Ok(())
}

/// Ends every live session of a user (deactivation, deletion).
pub async fn revoke_all<C: ConnectionTrait>(c: &C, user_id: &str) -> Result<u64, DbErr> {
    let r = sessions::Entity::update_many()
        .col_expr(sessions::Column::RevokedAt, sea_orm::sea_query::Expr::value(Some(Utc::now())))
        .filter(sessions::Column::UserId.eq(user_id))
        .filter(sessions::Column::RevokedAt.is_null())
        .exec(c)
        .await?;
    Ok(r.rows_affected)
}

/// Housekeeping: sessions that ended more than a week ago.
pub async fn prune<C: ConnectionTrait>(c: &C, now: DateTime<Utc>) -> Result<u64, DbErr> {
    let before = now - chrono::Duration::days(7);
    let r = sessions::Entity::delete_many()
        .filter(
            sea_orm::Condition::any()
                .add(sessions::Column::ExpiresAt.lt(before))
                .add(sessions::Column::RevokedAt.lt(before)),
        )
        .exec(c)
        .await?;
    Ok(r.rows_affected)
}
