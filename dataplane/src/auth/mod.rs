//! Credential checks. A credential arrives as `x-api-key` or
//! `Authorization: Bearer` (Claude Code's apiKeyHelper sends both). It is a
//! virtual key, of which only the SHA-256 is compared, or a gateway access
//! token from Claude Code's gateway sign-in: a JWT the control plane signed
//! (EdDSA) that names its user and key. A token is verified once, then
//! remembered by its hash until it expires, so the request path pays one
//! hash lookup either way.

use std::sync::Arc;

use dashmap::DashMap;
use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::config::{KeyEntry, KeyHash, RuntimeConfig};
use crate::http::error::ApiError;

/// What a verified gateway access token said.
#[derive(Debug)]
struct Verified {
    key_id: Box<str>,
    user_id: Box<str>,
    kid: Box<str>,
    exp: i64,
}

/// Gateway access tokens verified so far, by hash. Bounded: past
/// `MAX_TOKENS`, expired ones go, and if that is not enough, all of them
/// (they verify again on their next use).
#[derive(Default)]
pub struct TokenCache {
    // Arc: a hit is a reference-count bump, not three string copies.
    verified: DashMap<KeyHash, Arc<Verified>>,
}

const MAX_TOKENS: usize = 100_000;
/// Clock skew tolerated on a token's expiry.
const LEEWAY_SECS: i64 = 30;

#[derive(serde::Deserialize)]
struct Claims {
    sub: String,
    key: String,
    exp: i64,
}

impl TokenCache {
    fn remember(&self, hash: KeyHash, v: Arc<Verified>, now: i64) {
        if self.verified.len() >= MAX_TOKENS {
            self.verified.retain(|_, t| t.exp + LEEWAY_SECS > now);
            if self.verified.len() >= MAX_TOKENS {
                self.verified.clear();
            }
        }
        self.verified.insert(hash, v);
    }

    fn verify(&self, cfg: &RuntimeConfig, token: &[u8], hash: &KeyHash, now: i64) -> Result<Arc<Verified>, ApiError> {
        let bad = |why: &str| ApiError::Authentication(format!("invalid gateway token: {why}"));
        if let Some(v) = self.verified.get(hash) {
            return Ok(v.clone());
        }
        let token = std::str::from_utf8(token).map_err(|_| bad("not text"))?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| bad("not a token"))?;
        if header.alg != jsonwebtoken::Algorithm::EdDSA {
            return Err(bad("not signed by this gateway"));
        }
        let kid = header.kid.ok_or_else(|| bad("no key id"))?;
        let signing = cfg.signing_key(&kid).ok_or_else(|| bad("signed with a key this gateway does not hold"))?;
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
        v.set_issuer(&["ccag"]);
        v.set_audience(&["ccag-gateway"]);
        v.leeway = LEEWAY_SECS as u64;
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let c = jsonwebtoken::decode::<Claims>(token, &signing.key, &v).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                ApiError::Authentication("the gateway token has expired; sign in again".into())
            }
            _ => bad("its signature or claims do not verify"),
        })?;
        let verified = Arc::new(Verified {
            key_id: c.claims.key.into(),
            user_id: c.claims.sub.into(),
            kid: kid.into(),
            exp: c.claims.exp,
        });
        self.remember(*hash, verified.clone(), now);
        Ok(verified)
    }
}

/// The presented key, borrowed from the request headers.
fn presented(headers: &HeaderMap) -> Option<&[u8]> {
    if let Some(v) = headers.get("x-api-key") {
        let v = v.as_bytes().trim_ascii();
        if !v.is_empty() {
            return Some(v);
        }
    }
    let auth = headers.get(http::header::AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = auth.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let rest = rest.trim_ascii();
    (!rest.is_empty()).then_some(rest)
}

pub fn hash_key(key: &[u8]) -> KeyHash {
    KeyHash(Sha256::digest(key).into())
}

/// A JWT's first segment is base64url of `{"…`.
fn looks_like_jwt(t: &[u8]) -> bool {
    t.starts_with(b"eyJ") && t.iter().filter(|b| **b == b'.').count() == 2
}

/// Finds the active key for a request, or the 401 to answer with. The error
/// texts never echo the presented credential.
pub fn authenticate(
    cfg: &RuntimeConfig,
    tokens: &TokenCache,
    headers: &HeaderMap,
    now_unix: i64,
) -> Result<Arc<KeyEntry>, ApiError> {
    let key = presented(headers).ok_or_else(|| {
        ApiError::Authentication("missing API key: send it as x-api-key or Authorization: Bearer".into())
    })?;
    let hash = hash_key(key);
    let entry = match cfg.key(&hash) {
        Some(e) => e,
        None if looks_like_jwt(key) => {
            let v = tokens.verify(cfg, key, &hash, now_unix)?;
            // Still signed by a published key, still within its time.
            if cfg.signing_key(&v.kid).is_none() {
                return Err(ApiError::Authentication("invalid gateway token: its signing key was retired".into()));
            }
            if v.exp + LEEWAY_SECS <= now_unix {
                return Err(ApiError::Authentication("the gateway token has expired; sign in again".into()));
            }
            let e = cfg
                .key_by_id(&v.key_id)
                .filter(|e| *e.user_id == *v.user_id)
                .ok_or_else(|| ApiError::Authentication("this sign-in was ended; sign in again".into()))?;
            e
        }
        None => return Err(ApiError::Authentication("invalid x-api-key".into())),
    };
    if !entry.active {
        return Err(ApiError::Authentication("this API key is disabled or revoked".into()));
    }
    if entry.expires_at.is_some_and(|t| t <= now_unix) {
        return Err(ApiError::Authentication("this API key has expired".into()));
    }
    Ok(entry.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn cfg(status: &str, expires: i64) -> RuntimeConfig {
        let h = hex::encode(hash_key(b"sk-good").0);
        RuntimeConfig::from_json(
            format!(r#"{{"keys":[{{"id":"k1","sha256":"{h}","status":"{status}","expiresAt":"{expires}"}}]}}"#)
                .as_bytes(),
        )
        .unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn x_api_key_is_accepted() {
        let c = cfg("KEY_STATUS_ACTIVE", 0);
        assert_eq!(
            authenticate(&c, &TokenCache::default(), &headers(&[("x-api-key", "sk-good")]), 0).unwrap().id,
            "k1"
        );
    }

    #[test]
    fn bearer_token_is_accepted_case_insensitively() {
        let c = cfg("KEY_STATUS_ACTIVE", 0);
        assert!(authenticate(&c, &TokenCache::default(), &headers(&[("authorization", "bearer sk-good")]), 0).is_ok());
    }

    #[test]
    fn both_headers_together_are_accepted() {
        let c = cfg("KEY_STATUS_ACTIVE", 0);
        let h = headers(&[("x-api-key", "sk-good"), ("authorization", "Bearer sk-good")]);
        assert!(authenticate(&c, &TokenCache::default(), &h, 0).is_ok());
    }

    #[test]
    fn unknown_key_is_refused() {
        let c = cfg("KEY_STATUS_ACTIVE", 0);
        assert!(matches!(
            authenticate(&c, &TokenCache::default(), &headers(&[("x-api-key", "sk-bad")]), 0),
            Err(ApiError::Authentication(_))
        ));
    }

    #[test]
    fn missing_key_is_refused() {
        let c = cfg("KEY_STATUS_ACTIVE", 0);
        assert!(authenticate(&c, &TokenCache::default(), &headers(&[("authorization", "Basic abc")]), 0).is_err());
    }

    #[test]
    fn disabled_key_is_refused() {
        let c = cfg("KEY_STATUS_DISABLED", 0);
        assert!(authenticate(&c, &TokenCache::default(), &headers(&[("x-api-key", "sk-good")]), 0).is_err());
    }

    /// A test Ed25519 key pair (PKCS#8, and the public key as published),
    /// and another public key that did not sign anything here.
    const SIGNER_PKCS8: &str = "MC4CAQAwBQYDK2VwBCIEIEyZsbT2hyOxRNOtGlVS4fjSszKMQaaUMFIXp2Ie2Zyx";
    const SIGNER_PUBLIC: &str = "8cDBZAZROjANgoWkZNOvWUas9zWdtvuOr1niSZMSIZQ";
    const OTHER_PUBLIC: &str = "mh5AtT3O_KEnRzMlhgT5m4jLbxnMDSPAPvt6BsQj5Nw";

    fn gateway_cfg(public: &str, user: &str, status: &str) -> RuntimeConfig {
        let h = hex::encode(hash_key(b"sk-unknown-secret").0);
        RuntimeConfig::from_json(
            format!(
                r#"{{"keys":[{{"id":"k-signin","sha256":"{h}","status":"{status}","userId":"{user}"}}],
                    "identity":{{"signingKeys":[{{"kid":"gk1","publicKey":"{public}"}}]}}}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    }

    fn token(sub: &str, key: &str, exp: i64) -> String {
        use base64::Engine;
        let der = base64::engine::general_purpose::STANDARD.decode(SIGNER_PKCS8).unwrap();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some("gk1".into());
        let claims = serde_json::json!({"iss": "ccag", "aud": "ccag-gateway", "sub": sub, "key": key, "exp": exp,
                                        "iat": 0, "jti": "j", "sid": "fam"});
        jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ed_der(&der)).unwrap()
    }

    fn now() -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
    }

    fn bearer(t: &str) -> HeaderMap {
        headers(&[("authorization", &format!("Bearer {t}"))])
    }

    #[test]
    fn a_gateway_token_spends_under_the_key_it_names() {
        let c = gateway_cfg(SIGNER_PUBLIC, "u1", "KEY_STATUS_ACTIVE");
        let cache = TokenCache::default();
        let t = token("u1", "k-signin", now() + 600);
        assert_eq!(authenticate(&c, &cache, &bearer(&t), now()).unwrap().id, "k-signin");
        // Verified once, then known by its hash.
        assert_eq!(cache.verified.len(), 1);
        assert_eq!(authenticate(&c, &cache, &bearer(&t), now()).unwrap().id, "k-signin");
    }

    #[test]
    fn a_gateway_token_signed_by_a_key_not_published_is_refused() {
        let c = gateway_cfg(OTHER_PUBLIC, "u1", "KEY_STATUS_ACTIVE");
        let t = token("u1", "k-signin", now() + 600);
        assert!(authenticate(&c, &TokenCache::default(), &bearer(&t), now()).is_err());
    }

    #[test]
    fn an_expired_gateway_token_is_refused_even_once_cached() {
        let c = gateway_cfg(SIGNER_PUBLIC, "u1", "KEY_STATUS_ACTIVE");
        let cache = TokenCache::default();
        let t = token("u1", "k-signin", now() + 60);
        assert!(authenticate(&c, &cache, &bearer(&t), now()).is_ok());
        let later = now() + 60 + LEEWAY_SECS + 1;
        let e = authenticate(&c, &cache, &bearer(&t), later).unwrap_err();
        assert!(e.to_string().contains("expired"), "{e}");
        let stale = token("u1", "k-signin", now() - 3600);
        assert!(authenticate(&c, &TokenCache::default(), &bearer(&stale), now()).is_err());
    }

    #[test]
    fn a_gateway_token_naming_another_users_key_is_refused() {
        let c = gateway_cfg(SIGNER_PUBLIC, "u1", "KEY_STATUS_ACTIVE");
        let t = token("u2", "k-signin", now() + 600);
        assert!(authenticate(&c, &TokenCache::default(), &bearer(&t), now()).is_err());
    }

    #[test]
    fn a_gateway_token_whose_key_was_disabled_is_refused_at_once() {
        let cache = TokenCache::default();
        let t = token("u1", "k-signin", now() + 600);
        assert!(
            authenticate(&gateway_cfg(SIGNER_PUBLIC, "u1", "KEY_STATUS_ACTIVE"), &cache, &bearer(&t), now()).is_ok()
        );
        let disabled = gateway_cfg(SIGNER_PUBLIC, "u1", "KEY_STATUS_DISABLED");
        assert!(authenticate(&disabled, &cache, &bearer(&t), now()).is_err(), "the cache does not outlive the key");
    }

    #[test]
    fn a_gateway_token_from_a_retired_signing_key_is_refused_even_once_cached() {
        let cache = TokenCache::default();
        let t = token("u1", "k-signin", now() + 600);
        assert!(
            authenticate(&gateway_cfg(SIGNER_PUBLIC, "u1", "KEY_STATUS_ACTIVE"), &cache, &bearer(&t), now()).is_ok()
        );
        let h = hex::encode(hash_key(b"sk-unknown-secret").0);
        let retired = RuntimeConfig::from_json(
            format!(r#"{{"keys":[{{"id":"k-signin","sha256":"{h}","status":"KEY_STATUS_ACTIVE","userId":"u1"}}]}}"#)
                .as_bytes(),
        )
        .unwrap();
        let e = authenticate(&retired, &cache, &bearer(&t), now()).unwrap_err();
        assert!(e.to_string().contains("retired"), "{e}");
    }

    #[test]
    fn expired_key_is_refused() {
        let c = cfg("KEY_STATUS_ACTIVE", 100);
        assert!(authenticate(&c, &TokenCache::default(), &headers(&[("x-api-key", "sk-good")]), 99).is_ok());
        assert!(authenticate(&c, &TokenCache::default(), &headers(&[("x-api-key", "sk-good")]), 100).is_err());
    }
}
