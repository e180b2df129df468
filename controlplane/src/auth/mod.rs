//! Who is calling: server-side sessions (from Login or a single sign-on),
//! API tokens for automation, passwords, and the bootstrap admin.

mod bootstrap;
mod password;
pub mod session;
mod throttle;

pub use bootstrap::ensure_admin;
pub use password::{hash_password, verify_password};
pub use throttle::LoginThrottle;

use std::time::Duration;

use ccag_proto::admin::v1::Role;
use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use subtle::ConstantTimeEq;

use crate::store::entities::{api_tokens, system_secrets, users};
use crate::store::ids;

/// Why a caller was not let in, or could not be told apart. The admin API
/// turns each into its status (`api::ApiError`).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Database(#[from] sea_orm::DbErr),
}

/// The data planes' bearer token when `CCAG_DATAPLANE_TOKEN` is not set:
/// generated once, kept in the database (so every replica agrees) and
/// written to `DATA_DIR/dataplane-token` (mode 0600) for local data planes.
pub async fn dataplane_token(db: &DatabaseConnection, data_dir: &std::path::Path) -> Result<String, AuthError> {
    const NAME: &str = "dataplane_token";
    let token = match system_secrets::Entity::find_by_id(NAME).one(db).await? {
        Some(s) => s.value,
        None => {
            let value = format!("ccag_dp_{}", ids::random_base62(40));
            system_secrets::ActiveModel {
                name: Set(NAME.into()),
                value: Set(value.clone()),
                created_at: Set(Utc::now()),
            }
            .insert(db)
            .await?;
            value
        }
    };
    let path = data_dir.join("dataplane-token");
    if !path.exists() {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::create_dir_all(data_dir);
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(token.as_bytes()));
        match written {
            Ok(()) => tracing::info!(path = %path.display(), "wrote the data-plane token"),
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "could not write the data-plane token file"),
        }
    }
    Ok(token)
}

/// `ADMIN_USERS` who already have an account (by email or subject) are
/// admins from start-up; the others become admins when they first sign in.
pub async fn promote_admin_users(db: &DatabaseConnection, names: &[String]) -> Result<u64, AuthError> {
    use sea_orm::Condition;
    let r = users::Entity::update_many()
        .col_expr(users::Column::Role, sea_orm::sea_query::Expr::value(crate::store::Role::Admin.as_str()))
        .filter(
            Condition::any()
                .add(users::Column::Email.is_in(names.to_vec()))
                .add(users::Column::Subject.is_in(names.to_vec())),
        )
        .filter(users::Column::Role.ne(crate::store::Role::Admin.as_str()))
        .exec(db)
        .await?;
    if r.rows_affected > 0 {
        tracing::info!(users = r.rows_affected, "ADMIN_USERS made admins");
    }
    Ok(r.rows_affected)
}

#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: String,
    pub email: String,
    pub role: Role,
    pub via: &'static str,
    /// The session the call is made with, when it is one.
    pub session_id: Option<String>,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    pub fn require_admin(&self) -> Result<(), AuthError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(AuthError::PermissionDenied("this needs the admin role".into()))
        }
    }

    /// Admins may act on anyone; members only on themselves.
    pub fn require_self_or_admin(&self, user_id: &str) -> Result<(), AuthError> {
        if self.is_admin() || self.user_id == user_id {
            Ok(())
        } else {
            Err(AuthError::PermissionDenied("members may only act on their own resources".into()))
        }
    }
}

pub struct Auth {
    pub session_ttl: Duration,
}

impl Auth {
    pub fn new(session_ttl: Duration) -> Self {
        Auth { session_ttl }
    }

    /// The caller named by `authorization: Bearer …`.
    pub async fn principal(
        &self,
        db: &DatabaseConnection,
        meta: &tonic::metadata::MetadataMap,
    ) -> Result<Principal, AuthError> {
        let raw = meta
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| AuthError::Unauthenticated("missing authorization metadata; run `ccag login`".into()))?;
        let token = raw
            .strip_prefix("Bearer ")
            .or_else(|| raw.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(|| AuthError::Unauthenticated("authorization must be `Bearer <token>`".into()))?;
        self.resolve(db, token).await
    }

    /// The user a session or API token belongs to, if it is live and the
    /// user active: checked on every call, so ending a session or disabling
    /// a user takes effect at once.
    pub async fn resolve(&self, db: &DatabaseConnection, token: &str) -> Result<Principal, AuthError> {
        let bad = || AuthError::Unauthenticated("invalid or expired token; sign in again".into());
        let hash = ids::sha256_hex(token);
        let (user_id, via, session_id) = if token.starts_with(ids::TOKEN_PREFIX) {
            let row = api_tokens::Entity::find()
                .filter(api_tokens::Column::TokenHash.eq(hash.clone()))
                .one(db)
                .await?
                .ok_or_else(bad)?;
            let same: bool = row.token_hash.as_bytes().ct_eq(hash.as_bytes()).into();
            if !same || row.revoked || row.expires_at.is_some_and(|t| t <= Utc::now()) {
                return Err(bad());
            }
            (row.user_id, "api_token", None)
        } else if token.starts_with(ids::SESSION_PREFIX) {
            let row = session::live(db, &hash).await?.ok_or_else(bad)?;
            (row.user_id, "session", Some(row.id))
        } else {
            return Err(bad());
        };
        let user = users::Entity::find_by_id(user_id).one(db).await?.ok_or_else(bad)?;
        if crate::store::UserStatus::parse(&user.status) != crate::store::UserStatus::Active {
            return Err(AuthError::Unauthenticated("this user is disabled".into()));
        }
        Ok(Principal {
            role: match crate::store::Role::parse(&user.role) {
                crate::store::Role::Admin => Role::Admin,
                crate::store::Role::Member => Role::Member,
            },
            email: user.email.clone().unwrap_or_default(),
            user_id: user.id,
            via,
            session_id,
        })
    }
}
