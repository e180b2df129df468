//! API-key checks. Keys arrive as `x-api-key` or `Authorization: Bearer`
//! (Claude Code's apiKeyHelper sends both); only their SHA-256 is compared.

use std::sync::Arc;

use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::config::{KeyEntry, KeyHash, RuntimeConfig};
use crate::http::error::ApiError;

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

/// Finds the active key for a request, or the 401 to answer with. The error
/// texts never echo the presented key.
pub fn authenticate<'c>(
    cfg: &'c RuntimeConfig,
    headers: &HeaderMap,
    now_unix: i64,
) -> Result<&'c Arc<KeyEntry>, ApiError> {
    let key = presented(headers).ok_or_else(|| {
        ApiError::Authentication("missing API key: send it as x-api-key or Authorization: Bearer".into())
    })?;
    let entry = cfg.key(&hash_key(key)).ok_or_else(|| ApiError::Authentication("invalid x-api-key".into()))?;
    if !entry.active {
        return Err(ApiError::Authentication("this API key is disabled or revoked".into()));
    }
    if entry.expires_at.is_some_and(|t| t <= now_unix) {
        return Err(ApiError::Authentication("this API key has expired".into()));
    }
    Ok(entry)
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
        assert_eq!(authenticate(&c, &headers(&[("x-api-key", "sk-good")]), 0).unwrap().id, "k1");
    }

    #[test]
    fn bearer_token_is_accepted_case_insensitively() {
        let c = cfg("KEY_STATUS_ACTIVE", 0);
        assert!(authenticate(&c, &headers(&[("authorization", "bearer sk-good")]), 0).is_ok());
    }

    #[test]
    fn both_headers_together_are_accepted() {
        let c = cfg("KEY_STATUS_ACTIVE", 0);
        let h = headers(&[("x-api-key", "sk-good"), ("authorization", "Bearer sk-good")]);
        assert!(authenticate(&c, &h, 0).is_ok());
    }

    #[test]
    fn unknown_key_is_refused() {
        let c = cfg("KEY_STATUS_ACTIVE", 0);
        assert!(matches!(authenticate(&c, &headers(&[("x-api-key", "sk-bad")]), 0), Err(ApiError::Authentication(_))));
    }

    #[test]
    fn missing_key_is_refused() {
        let c = cfg("KEY_STATUS_ACTIVE", 0);
        assert!(authenticate(&c, &headers(&[("authorization", "Basic abc")]), 0).is_err());
    }

    #[test]
    fn disabled_key_is_refused() {
        let c = cfg("KEY_STATUS_DISABLED", 0);
        assert!(authenticate(&c, &headers(&[("x-api-key", "sk-good")]), 0).is_err());
    }

    #[test]
    fn expired_key_is_refused() {
        let c = cfg("KEY_STATUS_ACTIVE", 100);
        assert!(authenticate(&c, &headers(&[("x-api-key", "sk-good")]), 99).is_ok());
        assert!(authenticate(&c, &headers(&[("x-api-key", "sk-good")]), 100).is_err());
    }
}
