//! AWS credentials for signing, resolved once and reused until shortly before
//! they expire. The standard chain (environment, profiles, SSO, web identity,
//! ECS, IMDS) is slow and some of its sources are rate limited, so it must
//! never run per request.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_smithy_runtime_api::client::identity::Identity;

use super::UpstreamError;

/// Temporary credentials are replaced this long before they expire, so that a
/// request signed at the last moment does not arrive at AWS already stale.
const REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);

struct Cached {
    identity: Identity,
    expiry: Option<SystemTime>,
}

impl Cached {
    fn usable_until(&self, now: SystemTime, margin: Duration) -> bool {
        self.expiry.is_none_or(|e| e.duration_since(now).is_ok_and(|left| left > margin))
    }
}

pub struct CredentialCache {
    provider: Option<SharedCredentialsProvider>,
    current: ArcSwapOption<Cached>,
    /// Single flight: only one resolution at a time; the hot path never takes it.
    refresh: tokio::sync::Mutex<()>,
}

impl CredentialCache {
    pub fn new(provider: Option<SharedCredentialsProvider>) -> Self {
        CredentialCache { provider, current: ArcSwapOption::empty(), refresh: tokio::sync::Mutex::new(()) }
    }

    /// The identity to sign with: from the cache, or resolved now when the
    /// cached one is missing or about to expire.
    pub async fn identity(&self) -> Result<Identity, UpstreamError> {
        if let Some(c) = self.current.load().as_ref() {
            if c.usable_until(SystemTime::now(), REFRESH_BEFORE) {
                return Ok(c.identity.clone());
            }
        }
        self.resolve().await
    }

    async fn resolve(&self) -> Result<Identity, UpstreamError> {
        let _single = self.refresh.lock().await;
        let now = SystemTime::now();
        let old = self.current.load_full();
        if let Some(c) = old.as_ref().filter(|c| c.usable_until(now, REFRESH_BEFORE)) {
            return Ok(c.identity.clone());
        }
        let Some(provider) = &self.provider else {
            return Err(UpstreamError::Credentials("no AWS credentials are configured".into()));
        };
        match provider.provide_credentials().await {
            Ok(creds) => {
                let expiry = creds.expiry();
                let identity = Identity::from(creds);
                self.current.store(Some(Arc::new(Cached { identity: identity.clone(), expiry })));
                Ok(identity)
            }
            // Credentials that are close to expiry but still valid beat none:
            // the source may be briefly unreachable (IMDS, SSO).
            Err(e) => match old.as_ref().filter(|c| c.usable_until(now, Duration::ZERO)) {
                Some(c) => {
                    tracing::warn!(error = %e, "could not refresh AWS credentials; using the current ones until they expire");
                    Ok(c.identity.clone())
                }
                None => Err(UpstreamError::Credentials(e.to_string())),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use aws_credential_types::provider::future::ProvideCredentials as CredsFuture;
    use aws_credential_types::Credentials;

    use super::*;

    #[derive(Debug)]
    struct Counting {
        calls: Arc<AtomicUsize>,
        lifetime: Option<Duration>,
        fail_after: usize,
    }

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(&'a self) -> CredsFuture<'a>
        where
            Self: 'a,
        {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if n >= self.fail_after {
                return CredsFuture::ready(Err(aws_credential_types::provider::error::CredentialsError::not_loaded(
                    "source unreachable",
                )));
            }
            let expiry = self.lifetime.map(|l| SystemTime::now() + l);
            CredsFuture::ready(Ok(Credentials::new("AKID", "secret", None, expiry, "test")))
        }
    }

    fn cache(lifetime: Option<Duration>, fail_after: usize) -> (CredentialCache, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let p = Counting { calls: calls.clone(), lifetime, fail_after };
        (CredentialCache::new(Some(SharedCredentialsProvider::new(p))), calls)
    }

    #[tokio::test]
    async fn long_lived_credentials_are_resolved_once() {
        let (c, calls) = cache(None, usize::MAX);
        for _ in 0..5 {
            c.identity().await.unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn credentials_close_to_expiry_are_refreshed() {
        let (c, calls) = cache(Some(Duration::from_secs(60)), usize::MAX);
        c.identity().await.unwrap();
        c.identity().await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2, "a 60 s lifetime is inside the refresh margin");
    }

    #[tokio::test]
    async fn still_valid_credentials_are_used_when_a_refresh_fails() {
        let (c, _) = cache(Some(Duration::from_secs(120)), 1);
        c.identity().await.unwrap();
        assert!(c.identity().await.is_ok());
    }

    #[tokio::test]
    async fn no_provider_is_a_credentials_error() {
        let c = CredentialCache::new(None);
        assert!(matches!(c.identity().await, Err(UpstreamError::Credentials(_))));
    }
}
