//! The authorization-code flow with PKCE (S256). Starting a sign-in
//! stores, under the hash of its `state`, the nonce, the sealed PKCE
//! verifier, where to return, and the hash of a cookie given to the browser
//! that started it. Finishing consumes the row (once: a replayed callback
//! finds nothing), checks that cookie (a callback link planted in another
//! browser does not sign that browser in), exchanges the code and verifies
//! the id_token. Any replica can finish what another started.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use chrono::Utc;
use http_body_util::Full;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::verify::{self, Verified};
use super::{discovery, Identity, IdentityError, Provider, CALL_TIMEOUT};
use crate::store::entities::{identity_providers, login_flows};
use crate::store::ids;
use ccag_outbound::client::{self, Overflow};
use ccag_outbound::idp_target;

/// How long a started sign-in may take.
pub const FLOW_TTL: Duration = Duration::from_secs(600);

pub fn form_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn verifier_aad(flow_id: &str) -> String {
    format!("login_flow:{flow_id}:verifier")
}

/// A path on this gateway to return to after signing in: relative, so a
/// sign-in link cannot send the browser to another site.
pub fn safe_return_to(r: &str) -> Result<String, IdentityError> {
    let r = r.trim();
    if r.is_empty() {
        return Ok("/auth/signed-in".into());
    }
    let ok = r.starts_with('/')
        && !r.starts_with("//")
        && !r.starts_with("/\\")
        && r.len() <= 512
        && !r.chars().any(|c| c.is_control() || c == '\\');
    if ok {
        Ok(r.to_owned())
    } else {
        Err(IdentityError::BadRequest("return_to must be a path on this gateway, such as /portal".into()))
    }
}

pub struct Started {
    /// The provider's authorization URL with this flow's parameters.
    pub redirect: String,
    /// The value of the cookie that binds the flow to this browser.
    pub browser: String,
}

pub async fn start(
    id: &Identity,
    db: &DatabaseConnection,
    p: &Provider,
    return_to: &str,
) -> Result<Started, IdentityError> {
    let return_to = safe_return_to(return_to)?;
    let m = id.metadata(p).await?;
    let state = ids::random_base62(43);
    let nonce = ids::random_base62(32);
    let verifier = ids::random_base62(64);
    let browser = ids::random_base62(40);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let flow_id = ids::sha256_hex(&state);
    let now = Utc::now();
    login_flows::ActiveModel {
        id: Set(flow_id.clone()),
        idp_id: Set(p.id.clone()),
        nonce: Set(nonce.clone()),
        verifier_enc: Set(id.keyring.seal(&verifier, &verifier_aad(&flow_id))?),
        browser_hash: Set(ids::sha256_hex(&browser)),
        return_to: Set(return_to),
        created_at: Set(now),
        expires_at: Set(now + chrono::Duration::from_std(FLOW_TTL).expect("small")),
    }
    .insert(db)
    .await?;
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &p.client_id)
        .append_pair("redirect_uri", &id.redirect_uri())
        .append_pair("scope", &p.scopes.join(" "))
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    let sep = if m.authorization_endpoint.contains('?') { '&' } else { '?' };
    Ok(Started { redirect: format!("{}{sep}{query}", m.authorization_endpoint), browser })
}

pub struct Finished {
    pub provider: Provider,
    pub verified: Verified,
    pub return_to: String,
}

/// Takes the flow named by `state` out of the database: only one caller
/// ever gets it.
async fn take(db: &DatabaseConnection, state: &str) -> Result<login_flows::Model, IdentityError> {
    let flow_id = ids::sha256_hex(state);
    let row = login_flows::Entity::find_by_id(flow_id.clone()).one(db).await?.ok_or(IdentityError::FlowGone)?;
    let gone = login_flows::Entity::delete_many().filter(login_flows::Column::Id.eq(flow_id)).exec(db).await?;
    if gone.rows_affected != 1 || row.expires_at <= Utc::now() {
        return Err(IdentityError::FlowGone);
    }
    Ok(row)
}

pub async fn finish(
    id: &Identity,
    db: &DatabaseConnection,
    state: &str,
    code: &str,
    browser: Option<&str>,
) -> Result<Finished, IdentityError> {
    if state.is_empty() || state.len() > 256 {
        return Err(IdentityError::FlowGone);
    }
    let flow = take(db, state).await?;
    let presented = ids::sha256_hex(browser.unwrap_or_default());
    let same: bool = presented.as_bytes().ct_eq(flow.browser_hash.as_bytes()).into();
    if browser.is_none() || !same {
        return Err(IdentityError::WrongBrowser);
    }
    let row = identity_providers::Entity::find_by_id(flow.idp_id.clone()).one(db).await?;
    let row = row.filter(|r| r.enabled).ok_or_else(|| IdentityError::UnknownProvider(flow.idp_id.clone()))?;
    let p = Provider::from_row(&row, &id.keyring)?;
    let verifier = id.keyring.open(&flow.verifier_enc, &verifier_aad(&flow.id))?;
    let m = id.metadata(&p).await?;
    let tokens = exchange(id, &p, &m, code, &verifier).await?;
    let (alg, kid) = verify::algorithm(&tokens.id_token)?;
    let key = id.key_set(&m.jwks_uri).key(&id.policy, kid.as_deref(), alg).await?;
    let mut claims = verify::decode_claims(&tokens.id_token, &key.decoding, alg, &p)?;
    if let (true, Some(url), Some(access)) =
        (verify::wants_userinfo(&claims, &p), m.userinfo_endpoint.as_deref(), tokens.access_token.as_deref())
    {
        let body = discovery::get_json_as(&id.policy, url, Some(access)).await?;
        let info: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| IdentityError::ProviderInvalid(format!("the UserInfo answer: {e}")))?;
        verify::merge_userinfo(&mut claims, &info)?;
    }
    let verified = verify::claims(&claims, &p, &flow.nonce)?;
    Ok(Finished { provider: p, verified, return_to: flow.return_to })
}

struct Tokens {
    id_token: String,
    access_token: Option<String>,
}

/// The token request: the code, the PKCE verifier and the client's
/// credentials (HTTP Basic unless the provider supports only the form).
async fn exchange(
    id: &Identity,
    p: &Provider,
    m: &discovery::Metadata,
    code: &str,
    verifier: &str,
) -> Result<Tokens, IdentityError> {
    let target = idp_target(&m.token_endpoint)?;
    let methods = m.token_endpoint_auth_methods_supported.as_deref().unwrap_or_default();
    let basic = p.client_secret.is_some()
        && (methods.is_empty()
            || methods.iter().any(|x| x == "client_secret_basic")
            || !methods.iter().any(|x| x == "client_secret_post"));
    let mut req = http::Request::post("/")
        .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(http::header::ACCEPT, "application/json");
    // The serializer is not Send: it must be gone before the first await.
    let form = {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", &id.redirect_uri())
            .append_pair("code_verifier", verifier);
        match (&p.client_secret, basic) {
            (Some(secret), true) => {
                // RFC 6749 §2.3.1: both parts form-encoded before Basic.
                let pair = format!("{}:{}", form_encode(&p.client_id), form_encode(secret));
                req = req.header(
                    http::header::AUTHORIZATION,
                    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)),
                );
            }
            (Some(secret), false) => {
                form.append_pair("client_id", &p.client_id).append_pair("client_secret", secret);
            }
            (None, _) => {
                form.append_pair("client_id", &p.client_id);
            }
        }
        form.finish()
    };
    let req = req.body(Full::new(Bytes::from(form))).map_err(|e| IdentityError::ProviderInvalid(e.to_string()))?;
    let a = tokio::time::timeout(
        CALL_TIMEOUT,
        client::call(&id.policy, &target, req, discovery::DOCUMENT_LIMIT, Overflow::Fail),
    )
    .await
    .map_err(|_| {
        IdentityError::ProviderUnavailable(format!(
            "the token endpoint gave no answer within {} s",
            CALL_TIMEOUT.as_secs()
        ))
    })??;
    let body: serde_json::Value = serde_json::from_slice(&a.body).unwrap_or_default();
    if a.status != 200 {
        let error = body.get("error").and_then(|v| v.as_str()).unwrap_or("no error code");
        let text = body.get("error_description").and_then(|v| v.as_str()).unwrap_or_default();
        let text: String = text.chars().take(200).collect();
        return Err(IdentityError::ProviderRefused(format!(
            "the token endpoint answered {}: {error} {text}",
            a.status
        )));
    }
    let id_token = body.get("id_token").and_then(|v| v.as_str()).map(str::to_owned).ok_or_else(|| {
        IdentityError::ProviderInvalid("the token endpoint returned no id_token (is `openid` among the scopes?)".into())
    })?;
    Ok(Tokens { id_token, access_token: body.get("access_token").and_then(|v| v.as_str()).map(str::to_owned) })
}

/// Housekeeping: flows nobody finished.
pub async fn prune<C: ConnectionTrait>(c: &C, now: chrono::DateTime<Utc>) -> Result<u64, sea_orm::DbErr> {
    let r = login_flows::Entity::delete_many().filter(login_flows::Column::ExpiresAt.lt(now)).exec(c).await?;
    Ok(r.rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_on_this_gateway_are_returned_to() {
        assert_eq!(safe_return_to("").unwrap(), "/auth/signed-in");
        assert_eq!(safe_return_to("/portal/#/usage").unwrap(), "/portal/#/usage");
        for bad in ["https://evil.example", "//evil.example/x", "/\\evil.example", "portal", "/a\r\nSet-Cookie: x"] {
            assert!(safe_return_to(bad).is_err(), "{bad:?}");
        }
    }
}
