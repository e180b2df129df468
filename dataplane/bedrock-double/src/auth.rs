//! Which credentials the double accepts, and who a request turned out to be.
//!
//! One of three modes, chosen by [`DoubleConfig`]:
//! - a Bedrock API key (`DOUBLE_API_KEY`): `Authorization: Bearer <key>` and
//!   nothing else;
//! - an IAM role (`DOUBLE_ROLE_ARN`): SigV4 with temporary credentials moto's
//!   STS issued for that role, looked up in moto's state;
//! - otherwise the one static access key (`DOUBLE_ACCESS_KEY_ID`).
//!
//! With `DOUBLE_REGION` set, a SigV4 scope must name that region in every mode.

use serde::Serialize;
use subtle::ConstantTimeEq;

use crate::sigv4::{self, AuthError, AuthorizationHeader, RequestParts};
use crate::sts::{AssumedRole, RoleStore};
use crate::DoubleConfig;

/// The SigV4 service name of both Bedrock Runtime and Bedrock.
pub const SERVICE: &str = "bedrock";

/// How the request authenticated, as `GET /_double/requests` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Sigv4,
    Bearer,
}

impl Scheme {
    /// `sigv4` or `bearer`, as serialised.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Sigv4 => "sigv4",
            Scheme::Bearer => "bearer",
        }
    }
}

/// What a request claimed to be, filled in as far as it could be read even
/// when authentication then failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    pub scheme: Option<Scheme>,
    pub access_key_id: Option<String>,
    /// The region of the SigV4 credential scope.
    pub region: Option<String>,
    /// For moto-issued credentials: the role and session they belong to.
    pub role_arn: Option<String>,
    pub session_name: Option<String>,
}

/// The accepted credentials.
pub struct Policy {
    cfg: DoubleConfig,
    /// Present when `DOUBLE_ROLE_ARN` and `DOUBLE_STS_STATE_URL` are set.
    roles: Option<RoleStore>,
}

fn scheme_of(headers: &http::HeaderMap) -> Option<Scheme> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?.trim_start();
    if value.len() >= 7 && value[..7].eq_ignore_ascii_case("bearer ") {
        Some(Scheme::Bearer)
    } else if value.starts_with(sigv4::ALGORITHM) {
        Some(Scheme::Sigv4)
    } else {
        None
    }
}

fn secure_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Policy {
    pub fn new(cfg: &DoubleConfig) -> Self {
        let roles = match (&cfg.role_arn, &cfg.sts_state_url) {
            (Some(_), Some(url)) => Some(RoleStore::new(url.clone())),
            _ => None,
        };
        Policy { cfg: cfg.clone(), roles }
    }

    /// Checks a request for IAM action `action` (e.g. `bedrock:InvokeModel`).
    pub async fn authenticate(&self, req: &RequestParts<'_>, action: &str) -> (Caller, Result<(), AuthError>) {
        let mut caller = Caller { scheme: scheme_of(req.headers), ..Caller::default() };
        let outcome = match &self.cfg.api_key {
            Some(key) => self.check_api_key(req, key, caller.scheme),
            None => self.check_sigv4(req, action, &mut caller).await,
        };
        (caller, outcome)
    }

    fn check_api_key(&self, req: &RequestParts<'_>, key: &str, scheme: Option<Scheme>) -> Result<(), AuthError> {
        let value = req.headers.get(http::header::AUTHORIZATION).ok_or(AuthError::MissingAuthorization)?;
        if scheme != Some(Scheme::Bearer) {
            return Err(AuthError::ApiKeyRequired);
        }
        let value = value.to_str().map_err(|_| AuthError::InvalidApiKey)?.trim_start();
        let given = value.get("bearer ".len()..).unwrap_or_default().trim();
        if secure_eq(given, key) {
            Ok(())
        } else {
            Err(AuthError::InvalidApiKey)
        }
    }

    async fn check_sigv4(&self, req: &RequestParts<'_>, action: &str, caller: &mut Caller) -> Result<(), AuthError> {
        let auth = sigv4::authorization_of(req.headers)?;
        caller.access_key_id = Some(auth.access_key_id.clone());
        caller.region = Some(auth.region.clone());
        let Some(role_arn) = &self.cfg.role_arn else {
            let (key, secret) = (&self.cfg.access_key_id, &self.cfg.secret_access_key);
            return self.verify_with(key, secret, auth, req);
        };
        let session = self.session_of(&auth.access_key_id).await?;
        caller.role_arn = Some(session.role_arn.clone());
        caller.session_name = Some(session.session_name.clone());
        check_session_token(req.headers, &session.session_token)?;
        self.verify_with(&session.access_key_id, &session.secret_access_key, auth, req)?;
        // Authorisation after authentication, as AWS does it: only a caller
        // who proved the session is told that its role is the wrong one.
        if session.role_arn != *role_arn {
            return Err(AuthError::AccessDenied {
                caller: session.caller_arn(),
                action: action.to_string(),
                allowed: role_arn.clone(),
            });
        }
        Ok(())
    }

    async fn session_of(&self, access_key_id: &str) -> Result<AssumedRole, AuthError> {
        let store = self.roles.as_ref().ok_or_else(|| {
            AuthError::StateUnavailable("DOUBLE_ROLE_ARN is set but DOUBLE_STS_STATE_URL is not".into())
        })?;
        match store.lookup(access_key_id).await {
            Ok(Some(session)) => Ok(session),
            Ok(None) => Err(AuthError::UnknownAccessKey(access_key_id.to_string())),
            Err(why) => Err(AuthError::StateUnavailable(why)),
        }
    }

    fn verify_with(
        &self,
        key: &str,
        secret: &str,
        auth: AuthorizationHeader,
        req: &RequestParts<'_>,
    ) -> Result<(), AuthError> {
        let verifier = sigv4::Verifier {
            access_key_id: key,
            secret_access_key: secret,
            service: SERVICE,
            region: self.cfg.region.as_deref(),
        };
        sigv4::verify_parsed(&verifier, auth, req).map(|_| ())
    }
}

fn check_session_token(headers: &http::HeaderMap, expected: &str) -> Result<(), AuthError> {
    let given = headers.get("x-amz-security-token").and_then(|v| v.to_str().ok()).map(str::trim);
    match given {
        Some(token) if secure_eq(token, expected) => Ok(()),
        _ => Err(AuthError::InvalidSecurityToken),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    fn bearer(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("authorization", value.parse().unwrap());
        h
    }

    fn parts(headers: &HeaderMap) -> RequestParts<'_> {
        RequestParts { method: "POST", raw_path: "/", raw_query: None, headers, body: b"" }
    }

    fn api_key_policy() -> Policy {
        Policy::new(&DoubleConfig { api_key: Some("k-123".into()), ..DoubleConfig::default() })
    }

    #[test]
    fn schemes_are_told_apart() {
        assert_eq!(scheme_of(&bearer("Bearer abc")), Some(Scheme::Bearer));
        assert_eq!(scheme_of(&bearer("bearer abc")), Some(Scheme::Bearer));
        assert_eq!(scheme_of(&bearer("AWS4-HMAC-SHA256 Credential=x")), Some(Scheme::Sigv4));
        assert_eq!(scheme_of(&bearer("Basic abc")), None);
        assert_eq!(scheme_of(&HeaderMap::new()), None);
    }

    #[tokio::test]
    async fn api_key_must_match_exactly() {
        let p = api_key_policy();
        let ok = bearer("Bearer k-123");
        assert_eq!(p.authenticate(&parts(&ok), "bedrock:InvokeModel").await.1, Ok(()));
        for wrong in ["Bearer k-12", "Bearer k-1234", "Bearer "] {
            let h = bearer(wrong);
            assert_eq!(p.authenticate(&parts(&h), "bedrock:InvokeModel").await.1, Err(AuthError::InvalidApiKey));
        }
    }

    #[tokio::test]
    async fn api_key_mode_refuses_sigv4() {
        let p = api_key_policy();
        let h = bearer("AWS4-HMAC-SHA256 Credential=AKIDCCAGDOUBLE/20250101/us-east-1/bedrock/aws4_request");
        let (caller, outcome) = p.authenticate(&parts(&h), "bedrock:InvokeModel").await;
        assert_eq!(outcome, Err(AuthError::ApiKeyRequired));
        assert_eq!(caller.scheme, Some(Scheme::Sigv4));
        let none = HeaderMap::new();
        assert_eq!(p.authenticate(&parts(&none), "x").await.1, Err(AuthError::MissingAuthorization));
    }

    #[tokio::test]
    async fn role_mode_without_state_url_is_a_set_up_error() {
        let cfg = DoubleConfig { role_arn: Some("arn:aws:iam::1:role/x".into()), ..DoubleConfig::default() };
        let mut h = HeaderMap::new();
        h.insert("host", "localhost".parse().unwrap());
        sigv4::sign(
            &mut h,
            "POST",
            "/",
            None,
            b"",
            &sigv4::SigningParams {
                access_key_id: "ASIAX",
                secret_access_key: "s",
                region: "us-east-1",
                service: SERVICE,
                amz_date: "20250101T000000Z",
            },
        );
        let (caller, outcome) = Policy::new(&cfg).authenticate(&parts(&h), "x").await;
        let err = outcome.unwrap_err();
        assert_eq!((err.status(), err.error_type()), (500, "InternalServerException"));
        assert_eq!(caller.access_key_id.as_deref(), Some("ASIAX"));
    }

    #[test]
    fn session_token_must_be_the_sessions() {
        let mut h = HeaderMap::new();
        assert_eq!(check_session_token(&h, "tok"), Err(AuthError::InvalidSecurityToken));
        h.insert("x-amz-security-token", "tok2".parse().unwrap());
        assert_eq!(check_session_token(&h, "tok"), Err(AuthError::InvalidSecurityToken));
        h.insert("x-amz-security-token", "tok".parse().unwrap());
        assert_eq!(check_session_token(&h, "tok"), Ok(()));
    }
}
