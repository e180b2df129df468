//! OpenID Connect discovery: `{issuer}/.well-known/openid-configuration`,
//! whose `issuer` must be the configured one exactly, and whose endpoints
//! pass the same outbound check as the issuer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use serde::Deserialize;

use super::{IdentityError, CALL_TIMEOUT};
use ccag_outbound::client::{self, Overflow};
use ccag_outbound::{idp_target, Policy};

/// Discovery documents and key sets are read whole up to this size.
pub const DOCUMENT_LIMIT: usize = 256 * 1024;
const FRESH_FOR: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    #[serde(default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

pub struct Cached {
    pub metadata: Arc<Metadata>,
    at: Instant,
}

impl Cached {
    pub fn new(metadata: Arc<Metadata>) -> Self {
        Cached { metadata, at: Instant::now() }
    }

    pub fn fresh(&self) -> bool {
        self.at.elapsed() < FRESH_FOR
    }
}

/// GETs a JSON document through the outbound check.
pub async fn get_json(policy: &Policy, url: &str) -> Result<Bytes, IdentityError> {
    get_json_as(policy, url, None).await
}

/// The same, with a bearer token (UserInfo).
pub async fn get_json_as(policy: &Policy, url: &str, bearer: Option<&str>) -> Result<Bytes, IdentityError> {
    let target = idp_target(url)?;
    let mut req = http::Request::get("/").header(http::header::ACCEPT, "application/json");
    if let Some(t) = bearer {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = req.body(Full::new(Bytes::new())).map_err(|e| IdentityError::ProviderInvalid(e.to_string()))?;
    let a = tokio::time::timeout(CALL_TIMEOUT, client::call(policy, &target, req, DOCUMENT_LIMIT, Overflow::Fail))
        .await
        .map_err(|_| {
            IdentityError::ProviderUnavailable(format!("{url}: no answer within {} s", CALL_TIMEOUT.as_secs()))
        })??;
    if a.status != 200 {
        // Never the query: the URL is the provider's, but keep answers short.
        return Err(IdentityError::ProviderUnavailable(format!("{url} answered {}", a.status)));
    }
    Ok(a.body)
}

pub async fn fetch(policy: &Policy, issuer: &str) -> Result<Metadata, IdentityError> {
    let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
    let body = get_json(policy, &url).await?;
    let m: Metadata = serde_json::from_slice(&body)
        .map_err(|e| IdentityError::ProviderInvalid(format!("{url} is not a discovery document: {e}")))?;
    check(&m, issuer)?;
    Ok(m)
}

/// What a usable document must say.
pub fn check(m: &Metadata, issuer: &str) -> Result<(), IdentityError> {
    if m.issuer != issuer {
        return Err(IdentityError::ProviderInvalid(format!(
            "the discovery document names the issuer {:?}, not {issuer:?}; set the issuer exactly as the provider states it",
            m.issuer
        )));
    }
    for (what, url) in [
        ("authorization_endpoint", &m.authorization_endpoint),
        ("token_endpoint", &m.token_endpoint),
        ("jwks_uri", &m.jwks_uri),
    ] {
        idp_target(url).map_err(|e| IdentityError::ProviderInvalid(format!("{what}: {e}")))?;
    }
    if let Some(methods) = &m.code_challenge_methods_supported {
        if !methods.iter().any(|x| x == "S256") {
            return Err(IdentityError::ProviderInvalid("the provider does not support PKCE with S256".into()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(issuer: &str) -> Metadata {
        Metadata {
            issuer: issuer.into(),
            authorization_endpoint: format!("{issuer}/auth"),
            token_endpoint: format!("{issuer}/token"),
            jwks_uri: format!("{issuer}/jwks"),
            userinfo_endpoint: None,
            code_challenge_methods_supported: Some(vec!["S256".into()]),
            token_endpoint_auth_methods_supported: None,
        }
    }

    #[test]
    fn the_issuer_must_match_exactly() {
        assert!(check(&doc("https://idp.example.com"), "https://idp.example.com").is_ok());
        let e = check(&doc("https://idp.example.com/"), "https://idp.example.com").unwrap_err();
        assert!(e.to_string().contains("names the issuer"), "{e}");
    }

    #[test]
    fn a_provider_without_s256_is_refused() {
        let mut d = doc("https://idp.example.com");
        d.code_challenge_methods_supported = Some(vec!["plain".into()]);
        assert!(check(&d, "https://idp.example.com").unwrap_err().to_string().contains("S256"));
    }

    #[test]
    fn plain_http_endpoints_off_loopback_are_refused() {
        let mut d = doc("https://idp.example.com");
        d.token_endpoint = "http://idp.example.com/token".into();
        assert!(check(&d, "https://idp.example.com").unwrap_err().to_string().contains("token_endpoint"));
    }
}
