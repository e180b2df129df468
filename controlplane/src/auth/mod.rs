//! Who is calling: session tokens (from Login), API tokens for automation,
//! passwords, and the bootstrap admin.

mod bootstrap;
mod password;
mod throttle;

pub use bootstrap::ensure_admin;
pub use password::{hash_password, verify_password};
pub use throttle::LoginThrottle;

use std::time::Duration;

use ccag_proto::admin::v1::Role;
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::store::entities::{api_tokens, system_secrets, users};
use crate::store::ids;

const ISSUER: &str = "ccag-controlplane";

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

#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: String,
    pub email: String,
    pub role: Role,
    pub via: &'static str,
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

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iss: String,
    iat: i64,
    exp: i64,
}

pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    pub session_ttl: Duration,
}

impl Auth {
    /// Loads the session signing key, creating it on first start. It lives in
    /// the database so that every control-plane replica signs alike.
    pub async fn load(db: &DatabaseConnection, session_ttl: Duration) -> Result<Self, AuthError> {
        const NAME: &str = "session_signing_key";
        let secret = match system_secrets::Entity::find_by_id(NAME).one(db).await? {
            Some(s) => s.value,
            None => {
                let value = ids::random_base62(64);
                let row = system_secrets::ActiveModel {
                    name: Set(NAME.into()),
                    value: Set(value.clone()),
                    created_at: Set(Utc::now()),
                };
                match row.insert(db).await {
                    Ok(_) => value,
                    // Another replica won the race: use its key.
                    Err(_) => {
                        system_secrets::Entity::find_by_id(NAME)
                            .one(db)
                            .await?
                            .ok_or_else(|| AuthError::Internal("session signing key vanished".into()))?
                            .value
                    }
                }
            }
        };
        Ok(Auth {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            session_ttl,
        })
    }

    pub fn issue_session(&self, user_id: &str) -> Result<(String, chrono::DateTime<Utc>), AuthError> {
        let now = Utc::now();
        let exp = now + chrono::Duration::from_std(self.session_ttl).unwrap_or(chrono::Duration::hours(12));
        let claims = Claims { sub: user_id.into(), iss: ISSUER.into(), iat: now.timestamp(), exp: exp.timestamp() };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AuthError::Internal(format!("signing a session token: {e}")))?;
        Ok((token, exp))
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
        let bad = || AuthError::Unauthenticated("invalid or expired token".into());
        let (user_id, via) = if token.starts_with(ids::TOKEN_PREFIX) {
            let hash = ids::sha256_hex(token);
            let row = api_tokens::Entity::find()
                .filter(api_tokens::Column::TokenHash.eq(hash.clone()))
                .one(db)
                .await?
                .ok_or_else(bad)?;
            let same: bool = row.token_hash.as_bytes().ct_eq(hash.as_bytes()).into();
            if !same || row.revoked || row.expires_at.is_some_and(|t| t <= Utc::now()) {
                return Err(bad());
            }
            (row.user_id, "api_token")
        } else {
            let mut v = Validation::new(Algorithm::HS256);
            v.set_issuer(&[ISSUER]);
            v.leeway = 5;
            let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &v).map_err(|_| bad())?;
            (data.claims.sub, "session")
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
        })
    }
}
