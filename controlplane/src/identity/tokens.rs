//! Gateway access tokens: what Claude Code's gateway sign-in (and the
//! setup script's credential helper) present to the data planes. Each is a
//! short-lived JWT signed with Ed25519 by the control plane; the data
//! planes verify it with the public keys they receive in the configuration
//! stream, without calling back. It names the user and the key whose
//! limits, budgets and spend log it uses: the user's sign-in key, made on
//! their first gateway sign-in.
//!
//! Refresh tokens are opaque, stored hashed, single use and rotated; every
//! rotation of one sign-in shares a family, which revocation ends.

use std::time::Duration;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, Set};
use serde::{Deserialize, Serialize};

use super::IdentityError;
use crate::secrets::Keyring;
use crate::store::entities::{api_keys, refresh_tokens, signing_keys, team_members, users};
use crate::store::{ids, KeyStatus, UserStatus};

pub const ISSUER: &str = "ccag";
pub const AUDIENCE: &str = "ccag-gateway";
/// A new signing key is made when the newest is this old.
const ROTATE_AFTER: chrono::Duration = chrono::Duration::days(30);
/// Older keys stay published this long after a newer one exists, longer
/// than any access token they signed lives.
const RETIRED_FOR: chrono::Duration = chrono::Duration::days(1);
/// The name of each user's gateway sign-in key.
pub const SIGNIN_KEY_NAME: &str = "claude-code-sign-in";
pub const REFRESH_PREFIX: &str = "ccag_rt_";

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    /// The key the token spends under.
    pub key: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// The refresh-token family of the sign-in, so that revoking the access
    /// token can end the sign-in.
    pub sid: String,
}

fn private_aad(kid: &str) -> String {
    format!("signing_key:{kid}")
}

fn generate(keyring: &Keyring, now: DateTime<Utc>) -> Result<signing_keys::Model, IdentityError> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| IdentityError::Forbidden("key generation".into()))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| IdentityError::Forbidden("key parse".into()))?;
    let kid = format!("gk_{}", ids::random_base62(12));
    Ok(signing_keys::Model {
        public_key: URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
        private_enc: keyring.seal(&URL_SAFE_NO_PAD.encode(pkcs8.as_ref()), &private_aad(&kid))?,
        kid,
        created_at: now,
    })
}

/// Makes a signing key when there is none or the newest is due for
/// rotation, and drops retired ones. True when the published set changed
/// (the caller bumps the revision).
pub async fn maintain<C: ConnectionTrait>(c: &C, keyring: &Keyring, now: DateTime<Utc>) -> Result<bool, IdentityError> {
    let keys = signing_keys::Entity::find().order_by_desc(signing_keys::Column::CreatedAt).all(c).await?;
    let mut changed = false;
    let newest = match keys.first() {
        Some(k) if now - k.created_at < ROTATE_AFTER => k.created_at,
        _ => {
            let k = generate(keyring, now)?;
            signing_keys::ActiveModel::from(k).reset_all().insert(c).await?;
            changed = true;
            now
        }
    };
    for old in keys.iter().filter(|k| k.created_at < newest && now - newest > RETIRED_FOR) {
        signing_keys::Entity::delete_by_id(old.kid.clone()).exec(c).await?;
        changed = true;
    }
    Ok(changed)
}

/// The public halves, as the data planes receive them.
pub async fn published<C: ConnectionTrait>(c: &C) -> Result<ccag_proto::config::v1::GatewayIdentity, DbErr> {
    let keys = signing_keys::Entity::find().order_by_asc(signing_keys::Column::Kid).all(c).await?;
    Ok(ccag_proto::config::v1::GatewayIdentity {
        signing_keys: keys
            .into_iter()
            .map(|k| ccag_proto::config::v1::SigningKey { kid: k.kid, public_key: k.public_key })
            .collect(),
    })
}

/// Signs an access token with the newest key.
pub async fn access_token<C: ConnectionTrait>(
    c: &C,
    keyring: &Keyring,
    user_id: &str,
    key_id: &str,
    family: &str,
    ttl: Duration,
) -> Result<(String, i64), IdentityError> {
    let key = signing_keys::Entity::find()
        .order_by_desc(signing_keys::Column::CreatedAt)
        .one(c)
        .await?
        .ok_or_else(|| IdentityError::ProviderUnavailable("no signing key yet; try again in a moment".into()))?;
    let der = URL_SAFE_NO_PAD
        .decode(keyring.open(&key.private_enc, &private_aad(&key.kid))?)
        .map_err(|_| IdentityError::ProviderInvalid("a stored signing key is damaged".into()))?;
    let now = Utc::now().timestamp();
    let exp = now + ttl.as_secs() as i64;
    let claims = Claims {
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        sub: user_id.into(),
        key: key_id.into(),
        iat: now,
        exp,
        jti: ids::random_base62(16),
        sid: family.into(),
    };
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key.kid);
    let token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(&der))
        .map_err(|e| IdentityError::ProviderInvalid(format!("signing: {e}")))?;
    Ok((token, exp))
}

/// Verifies an access token here (for the control plane's own routes, such
/// as managed settings); the data planes do the same with their copy of the
/// public keys.
pub async fn verify<C: ConnectionTrait>(c: &C, token: &str) -> Result<Claims, IdentityError> {
    let bad = |why: &str| IdentityError::TokenRejected(why.into());
    let header = jsonwebtoken::decode_header(token).map_err(|_| bad("not a gateway token"))?;
    if header.alg != Algorithm::EdDSA {
        return Err(bad("not a gateway token"));
    }
    let kid = header.kid.ok_or_else(|| bad("no key id"))?;
    let key = signing_keys::Entity::find_by_id(kid).one(c).await?.ok_or_else(|| bad("signed by an unknown key"))?;
    let decoding = DecodingKey::from_ed_components(&key.public_key).map_err(|_| bad("a stored key is damaged"))?;
    let mut v = Validation::new(Algorithm::EdDSA);
    v.set_issuer(&[ISSUER]);
    v.set_audience(&[AUDIENCE]);
    v.leeway = 30;
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let data = jsonwebtoken::decode::<Claims>(token, &decoding, &v).map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::ExpiredSignature => bad("expired"),
        _ => bad("invalid"),
    })?;
    let user = users::Entity::find_by_id(data.claims.sub.clone()).one(c).await?;
    if !user.is_some_and(|u| UserStatus::parse(&u.status) == UserStatus::Active) {
        return Err(bad("the user is disabled"));
    }
    Ok(data.claims)
}

/// The user's sign-in key, made on first use: a key no one holds the
/// secret of, so it works only through access tokens. It is made under the
/// user's team when they are in exactly one (so a team pool counts it).
pub async fn signin_key<C: ConnectionTrait>(c: &C, user: &users::Model) -> Result<(api_keys::Model, bool), DbErr> {
    let existing = api_keys::Entity::find()
        .filter(api_keys::Column::UserId.eq(user.id.clone()))
        .filter(api_keys::Column::Name.eq(SIGNIN_KEY_NAME))
        .filter(api_keys::Column::Status.eq(KeyStatus::Active.as_str()))
        .one(c)
        .await?;
    if let Some(k) = existing {
        return Ok((k, false));
    }
    let teams = team_members::Entity::find().filter(team_members::Column::UserId.eq(user.id.clone())).all(c).await?;
    let team_id = match teams.as_slice() {
        [one] => Some(one.team_id.clone()),
        _ => None,
    };
    let secret = format!("{}{}", ids::KEY_PREFIX, ids::random_base62(40));
    let now = Utc::now();
    let row = api_keys::ActiveModel {
        id: Set(ids::new_id("key")),
        name: Set(SIGNIN_KEY_NAME.into()),
        prefix: Set("(sign-in)".into()),
        key_hash: Set(ids::sha256_hex(&secret)),
        user_id: Set(user.id.clone()),
        team_id: Set(team_id),
        status: Set(KeyStatus::Active.as_str().into()),
        rpm: Set(0),
        tpm: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
        last_used_at: Set(None),
        expires_at: Set(None),
    }
    .insert(c)
    .await?;
    Ok((row, true))
}

/// A new refresh token in `family`.
pub async fn new_refresh<C: ConnectionTrait>(
    c: &C,
    family: &str,
    user_id: &str,
    key_id: &str,
    ttl: Duration,
) -> Result<String, DbErr> {
    let token = format!("{REFRESH_PREFIX}{}", ids::random_base62(40));
    let now = Utc::now();
    refresh_tokens::ActiveModel {
        id: Set(ids::new_id("rt")),
        token_hash: Set(ids::sha256_hex(&token)),
        family_id: Set(family.to_owned()),
        user_id: Set(user_id.to_owned()),
        key_id: Set(key_id.to_owned()),
        created_at: Set(now),
        expires_at: Set(now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::days(14))),
        used_at: Set(None),
        revoked_at: Set(None),
    }
    .insert(c)
    .await?;
    Ok(token)
}

/// Why a refresh token was refused (each an `invalid_grant`).
#[derive(Debug, PartialEq, Eq)]
pub enum RefreshRefused {
    Unknown,
    AlreadyUsed,
    Revoked,
    Expired,
    UserDisabled,
    KeyRevoked,
}

impl RefreshRefused {
    pub fn text(&self) -> &'static str {
        match self {
            RefreshRefused::Unknown => "the refresh token is not one this gateway issued",
            RefreshRefused::AlreadyUsed => "the refresh token was already used",
            RefreshRefused::Revoked => "the sign-in was ended; sign in again",
            RefreshRefused::Expired => "the refresh token has expired; sign in again",
            RefreshRefused::UserDisabled => "the account is deactivated",
            RefreshRefused::KeyRevoked => "the sign-in key was revoked; sign in again",
        }
    }
}

/// Takes a refresh token, once: the row is marked used in the same
/// statement that checks it was not, so two concurrent refreshes cannot
/// both succeed.
pub async fn take_refresh<C: ConnectionTrait>(
    c: &C,
    token: &str,
) -> Result<Result<refresh_tokens::Model, RefreshRefused>, DbErr> {
    let hash = ids::sha256_hex(token);
    let Some(row) = refresh_tokens::Entity::find().filter(refresh_tokens::Column::TokenHash.eq(hash)).one(c).await?
    else {
        return Ok(Err(RefreshRefused::Unknown));
    };
    let now = Utc::now();
    if row.revoked_at.is_some() {
        return Ok(Err(RefreshRefused::Revoked));
    }
    if row.used_at.is_some() {
        return Ok(Err(RefreshRefused::AlreadyUsed));
    }
    if row.expires_at <= now {
        return Ok(Err(RefreshRefused::Expired));
    }
    let took = refresh_tokens::Entity::update_many()
        .col_expr(refresh_tokens::Column::UsedAt, sea_orm::sea_query::Expr::value(Some(now)))
        .filter(refresh_tokens::Column::Id.eq(row.id.clone()))
        .filter(refresh_tokens::Column::UsedAt.is_null())
        .exec(c)
        .await?;
    if took.rows_affected != 1 {
        return Ok(Err(RefreshRefused::AlreadyUsed));
    }
    let user = users::Entity::find_by_id(row.user_id.clone()).one(c).await?;
    if !user.is_some_and(|u| UserStatus::parse(&u.status) == UserStatus::Active) {
        return Ok(Err(RefreshRefused::UserDisabled));
    }
    let key = api_keys::Entity::find_by_id(row.key_id.clone()).one(c).await?;
    if !key.is_some_and(|k| KeyStatus::parse(&k.status) == KeyStatus::Active) {
        return Ok(Err(RefreshRefused::KeyRevoked));
    }
    Ok(Ok(row))
}

/// Ends the sign-in a refresh token belongs to.
pub async fn revoke_family_of<C: ConnectionTrait>(c: &C, token: &str) -> Result<bool, DbErr> {
    let hash = ids::sha256_hex(token);
    let Some(row) = refresh_tokens::Entity::find().filter(refresh_tokens::Column::TokenHash.eq(hash)).one(c).await?
    else {
        return Ok(false);
    };
    revoke_family(c, &row.family_id).await?;
    Ok(true)
}

pub async fn revoke_family<C: ConnectionTrait>(c: &C, family: &str) -> Result<(), DbErr> {
    refresh_tokens::Entity::update_many()
        .col_expr(refresh_tokens::Column::RevokedAt, sea_orm::sea_query::Expr::value(Some(Utc::now())))
        .filter(refresh_tokens::Column::FamilyId.eq(family))
        .filter(refresh_tokens::Column::RevokedAt.is_null())
        .exec(c)
        .await?;
    Ok(())
}

/// Housekeeping: refresh tokens long expired or ended.
pub async fn prune<C: ConnectionTrait>(c: &C, now: DateTime<Utc>) -> Result<u64, DbErr> {
    let before = now - chrono::Duration::days(7);
    let r = refresh_tokens::Entity::delete_many()
        .filter(
            sea_orm::Condition::any()
                .add(refresh_tokens::Column::ExpiresAt.lt(before))
                .add(refresh_tokens::Column::RevokedAt.lt(before))
                .add(refresh_tokens::Column::UsedAt.lt(before)),
        )
        .exec(c)
        .await?;
    Ok(r.rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_access_token_verifies_with_its_published_key_only() {
        let keyring = Keyring::for_tests();
        let k = generate(&keyring, Utc::now()).unwrap();
        let der = URL_SAFE_NO_PAD.decode(keyring.open(&k.private_enc, &private_aad(&k.kid)).unwrap()).unwrap();
        let now = Utc::now().timestamp();
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: "usr_1".into(),
            key: "key_1".into(),
            iat: now,
            exp: now + 60,
            jti: "j".into(),
            sid: "fam".into(),
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &EncodingKey::from_ed_der(&der)).unwrap();
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_issuer(&[ISSUER]);
        v.set_audience(&[AUDIENCE]);
        let ok = DecodingKey::from_ed_components(&k.public_key).unwrap();
        assert_eq!(jsonwebtoken::decode::<Claims>(&token, &ok, &v).unwrap().claims.key, "key_1");
        let other = generate(&keyring, Utc::now()).unwrap();
        let wrong = DecodingKey::from_ed_components(&other.public_key).unwrap();
        assert!(jsonwebtoken::decode::<Claims>(&token, &wrong, &v).is_err());
    }
}
