//! Credentials of an IAM role, assumed with STS from the data plane's own
//! credentials: an endpoint's shared session, or one session per user whose
//! source identity and session name name the user, so that CloudTrail
//! attributes each Bedrock call to a person.

use std::sync::Arc;
use std::time::Duration;

use aws_credential_types::provider::{self, error::CredentialsError, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use dashmap::DashMap;

use super::credentials::CredentialCache;

/// A per-user session unused this long is dropped (its refresher stops).
const USER_SESSION_IDLE: Duration = Duration::from_secs(3600);
/// At most this many per-user sessions per role; past it, users without one
/// sign with the role's shared session.
const MAX_USER_SESSIONS: usize = 10_000;

/// The STS client every assumed role is requested through: the data
/// plane's default credentials, region and `AWS_ENDPOINT_URL_STS`.
#[derive(Clone, Debug)]
pub struct Sts(aws_sdk_sts::Client);

impl Sts {
    pub fn new(conf: &aws_types::SdkConfig) -> Self {
        let conf = aws_sdk_sts::config::Builder::from(conf)
            // Bedrock calls are not retried below the client; STS calls are
            // off the request path, and a transient failure is worth a retry.
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(3))
            .build();
        Sts(aws_sdk_sts::Client::from_conf(conf))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoleKey {
    pub role_arn: String,
    pub external_id: String,
}

#[derive(Debug)]
struct AssumeRole {
    sts: Sts,
    key: RoleKey,
    session_name: String,
    source_identity: Option<String>,
}

impl AssumeRole {
    async fn assume(&self) -> Result<Credentials, CredentialsError> {
        let mut call = self.sts.0.assume_role().role_arn(&self.key.role_arn).role_session_name(&self.session_name);
        if !self.key.external_id.is_empty() {
            call = call.external_id(&self.key.external_id);
        }
        if let Some(s) = &self.source_identity {
            call = call.source_identity(s);
        }
        let out = call.send().await.map_err(|e| {
            CredentialsError::provider_error(format!(
                "STS AssumeRole {}: {}",
                self.key.role_arn,
                aws_sdk_sts::error::DisplayErrorContext(&e)
            ))
        })?;
        let c = out.credentials.ok_or_else(|| CredentialsError::unhandled("STS AssumeRole returned no credentials"))?;
        let expiry = std::time::SystemTime::try_from(c.expiration).ok();
        Ok(Credentials::new(c.access_key_id, c.secret_access_key, Some(c.session_token), expiry, "ccag-assume-role"))
    }
}

impl ProvideCredentials for AssumeRole {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(self.assume())
    }
}

/// STS names: `[\w+=,.@-]`, 2 to 64 characters.
pub fn sts_name(raw: &str) -> String {
    let mut out: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) { c } else { '-' })
        .take(64)
        .collect();
    while out.len() < 2 {
        out.push('-');
    }
    out
}

/// One role's credentials: the shared session, and the per-user ones.
pub struct RoleSessions {
    sts: Sts,
    key: RoleKey,
    pub shared: Arc<CredentialCache>,
    users: Arc<DashMap<Box<str>, Arc<CredentialCache>>>,
}

impl RoleSessions {
    /// Starts resolving the shared session at once, so that the first
    /// request finds it ready.
    pub fn new(sts: Sts, key: RoleKey, shared_session: &str) -> Arc<Self> {
        let provider = AssumeRole {
            sts: sts.clone(),
            key: key.clone(),
            session_name: sts_name(&format!("ccag-{shared_session}")),
            source_identity: None,
        };
        let shared = Arc::new(CredentialCache::new(Some(SharedCredentialsProvider::new(provider))));
        shared.spawn_refresher(None, || {});
        Arc::new(RoleSessions { sts, key, shared, users: Arc::new(DashMap::new()) })
    }

    /// The session of one user (`email` names them where it is known),
    /// created on first use and refreshed in the background while in use.
    pub fn user(&self, user_id: &str, email: &str) -> Arc<CredentialCache> {
        if let Some(c) = self.users.get(user_id) {
            return c.clone();
        }
        if self.users.len() >= MAX_USER_SESSIONS {
            return self.shared.clone();
        }
        let who = if email.is_empty() { user_id } else { email };
        let provider = AssumeRole {
            sts: self.sts.clone(),
            key: self.key.clone(),
            session_name: sts_name(&format!("ccag-{who}")),
            source_identity: Some(sts_name(who)),
        };
        let cache = Arc::new(CredentialCache::new(Some(SharedCredentialsProvider::new(provider))));
        let entry = self.users.entry(user_id.into()).or_insert_with(|| cache.clone()).clone();
        if Arc::ptr_eq(&entry, &cache) {
            let users = self.users.clone();
            let id: Box<str> = user_id.into();
            entry.spawn_refresher(Some(USER_SESSION_IDLE), move || {
                users.remove(&id);
            });
        }
        entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sts_names_keep_their_allowed_characters_only() {
        assert_eq!(sts_name("ccag-ann@example.com"), "ccag-ann@example.com");
        assert_eq!(sts_name("ccag-a b/c"), "ccag-a-b-c");
        assert_eq!(sts_name("x"), "x-");
        assert_eq!(sts_name(&"a".repeat(100)).len(), 64);
    }
}
