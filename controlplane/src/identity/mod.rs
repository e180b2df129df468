//! Single sign-on through OpenID Connect providers: their typed settings
//! (`provider`), discovery and signing keys fetched through the outbound
//! check and cached (`discovery`, `jwks`), the authorization-code flow with
//! PKCE kept in the database so any replica can finish it (`flow`), the
//! id_token checks (`verify`), and what a verified identity becomes: a
//! user, their role and teams (`provision`).

pub mod device;
pub mod discovery;
pub mod flow;
pub mod jwks;
pub mod managed;
pub mod provider;
pub mod provision;
pub mod tokens;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;

use crate::secrets::{Keyring, SecretError};
use ccag_outbound::client::CallError;
use ccag_outbound::{OutboundError, Policy};

pub use provider::Provider;

/// Why a sign-in failed. The text is shown to the person signing in, so it
/// says what to do and never carries a token.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("no identity provider named {0:?} is enabled")]
    UnknownProvider(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("this sign-in link has expired or was already used; start again")]
    FlowGone,
    #[error("this sign-in was started in another browser; start again from this one")]
    WrongBrowser,
    #[error("the identity provider refused the sign-in: {0}")]
    ProviderRefused(String),
    #[error("the identity provider cannot be reached: {0}")]
    ProviderUnavailable(String),
    #[error("the identity provider's answer is not usable: {0}")]
    ProviderInvalid(String),
    #[error("the identity token was refused: {0}")]
    TokenRejected(String),
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Database(#[from] sea_orm::DbErr),
}

impl IdentityError {
    pub fn status(&self) -> u16 {
        match self {
            IdentityError::UnknownProvider(_) => 404,
            IdentityError::BadRequest(_) | IdentityError::FlowGone | IdentityError::WrongBrowser => 400,
            IdentityError::ProviderRefused(_) | IdentityError::TokenRejected(_) | IdentityError::Forbidden(_) => 403,
            IdentityError::ProviderUnavailable(_) | IdentityError::ProviderInvalid(_) => 502,
            IdentityError::Secret(_) | IdentityError::Database(_) => 500,
        }
    }
}

impl From<CallError> for IdentityError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Outbound(o @ OutboundError::Forbidden { .. }) => {
                IdentityError::ProviderUnavailable(o.to_string())
            }
            other => IdentityError::ProviderUnavailable(other.to_string()),
        }
    }
}

impl From<OutboundError> for IdentityError {
    fn from(e: OutboundError) -> Self {
        IdentityError::ProviderInvalid(e.to_string())
    }
}

/// Every outbound call to a provider is bounded by this.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// What sign-in needs, shared by the HTTP routes and the admin API.
pub struct Identity {
    pub policy: Policy,
    pub keyring: Arc<Keyring>,
    /// `CCAG_PUBLIC_URL` without a trailing slash: the origin browsers and
    /// providers see; the redirect URI is built from it, never from `Host`.
    pub public_url: String,
    /// Subjects or emails that are always admins (`ADMIN_USERS`).
    pub admin_users: Vec<String>,
    pub session_ttl: Duration,
    /// Lifetime of gateway access tokens (`CCAG_GATEWAY_TOKEN_TTL_SECS`).
    pub access_ttl: Duration,
    /// Lifetime of a gateway sign-in without renewal: refresh tokens.
    pub refresh_ttl: Duration,
    metadata: DashMap<String, Arc<discovery::Cached>>,
    keys: DashMap<String, Arc<jwks::KeySet>>,
}

impl Identity {
    pub fn new(
        policy: Policy,
        keyring: Arc<Keyring>,
        public_url: &str,
        admin_users: Vec<String>,
        session_ttl: Duration,
    ) -> Self {
        Identity {
            policy,
            keyring,
            public_url: public_url.trim_end_matches('/').to_owned(),
            admin_users,
            session_ttl,
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(14 * 24 * 3600),
            metadata: DashMap::new(),
            keys: DashMap::new(),
        }
    }

    pub fn redirect_uri(&self) -> String {
        format!("{}/auth/oidc/callback", self.public_url)
    }

    pub fn login_url(&self, idp_name: &str) -> String {
        format!("{}/auth/oidc/login?idp={}", self.public_url, flow::form_encode(idp_name))
    }

    /// The provider's discovery document, fetched at most once an hour.
    pub async fn metadata(&self, p: &Provider) -> Result<Arc<discovery::Metadata>, IdentityError> {
        if let Some(c) = self.metadata.get(&p.issuer) {
            if c.fresh() {
                return Ok(c.metadata.clone());
            }
        }
        let m = Arc::new(discovery::fetch(&self.policy, &p.issuer).await?);
        self.metadata.insert(p.issuer.clone(), Arc::new(discovery::Cached::new(m.clone())));
        Ok(m)
    }

    /// The key set published at `jwks_uri`, one per URI.
    pub fn key_set(&self, jwks_uri: &str) -> Arc<jwks::KeySet> {
        self.keys.entry(jwks_uri.to_owned()).or_insert_with(|| Arc::new(jwks::KeySet::new(jwks_uri))).clone()
    }

    /// Forgets what was fetched for a provider whose settings changed.
    pub fn forget(&self, issuer: &str) {
        if let Some((_, c)) = self.metadata.remove(issuer) {
            self.keys.remove(&c.metadata.jwks_uri);
        }
    }
}
