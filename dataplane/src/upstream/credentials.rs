//! AWS credentials for signing, resolved once and reused until shortly before
//! they expire. The standard chain (environment, profiles, SSO, web identity,
//! ECS, IMDS) and STS are slow and rate limited, so they never run per
//! request, and a request never waits for a refresh: temporary credentials
//! are replaced in the background before they expire, and a request that
//! finds them inside the refresh margin signs with them while the refresh
//! runs beside it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// Credentials this close to expiry are no longer signed with: a request
/// could reach AWS after they lapse.
const LAST_USE_BEFORE: Duration = Duration::from_secs(30);
/// After a failed resolution with nothing usable held, requests fail at
/// once for this long instead of each asking the source again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

pub struct CredentialCache {
    provider: Option<SharedCredentialsProvider>,
    current: ArcSwapOption<Cached>,
    /// Single flight: only one resolution at a time; the hot path never takes it.
    refresh: tokio::sync::Mutex<()>,
    /// Unix seconds of the last signature, so an idle per-user session can
    /// stop being refreshed.
    last_used: AtomicU64,
    /// The last failure to resolve, while nothing usable is held.
    failed: std::sync::Mutex<Option<(Instant, String)>>,
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl CredentialCache {
    pub fn new(provider: Option<SharedCredentialsProvider>) -> Self {
        CredentialCache {
            provider,
            current: ArcSwapOption::empty(),
            refresh: tokio::sync::Mutex::new(()),
            last_used: AtomicU64::new(unix_secs(SystemTime::now())),
            failed: std::sync::Mutex::new(None),
        }
    }

    /// The identity to sign with: the cached one, refreshed in the background
    /// when it is inside the refresh margin; resolved now only when there is
    /// none or it is about to lapse.
    pub async fn identity(self: &Arc<Self>) -> Result<Identity, UpstreamError> {
        let now = SystemTime::now();
        if let Some(c) = self.current.load().as_ref() {
            if c.usable_until(now, REFRESH_BEFORE) {
                self.touch(now);
                return Ok(c.identity.clone());
            }
            if c.usable_until(now, LAST_USE_BEFORE) {
                self.touch(now);
                if self.refresh.try_lock().is_ok() {
                    let me = self.clone();
                    tokio::spawn(async move {
                        let _ = me.resolve().await;
                    });
                }
                return Ok(c.identity.clone());
            }
        }
        self.touch(now);
        self.resolve().await
    }

    fn touch(&self, now: SystemTime) {
        let secs = unix_secs(now);
        // Written at most once a second, so concurrent requests rarely
        // contend for the cache line.
        if self.last_used.load(Ordering::Relaxed) != secs {
            self.last_used.store(secs, Ordering::Relaxed);
        }
    }

    /// Seconds since a request last signed with these credentials.
    pub fn idle_secs(&self) -> u64 {
        unix_secs(SystemTime::now()).saturating_sub(self.last_used.load(Ordering::Relaxed))
    }

    /// When the held credentials should be replaced; `None` when they never
    /// expire (or none are held yet).
    pub fn refresh_due(&self) -> Option<SystemTime> {
        let c = self.current.load();
        let expiry = c.as_ref()?.expiry?;
        Some(expiry.checked_sub(REFRESH_BEFORE).unwrap_or(expiry))
    }

    /// Resolves the credentials now and then keeps them fresh, until they
    /// have gone unused for `idle_limit` (then `on_idle` runs and the task
    /// ends). A failed refresh is retried after a short pause; the current
    /// credentials stay in use meanwhile.
    pub fn spawn_refresher(self: &Arc<Self>, idle_limit: Option<Duration>, on_idle: impl FnOnce() + Send + 'static) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut failures = 0u32;
            loop {
                let sleep = match me.resolve_forced().await {
                    Ok(()) => {
                        failures = 0;
                        match me.refresh_due() {
                            None => return,
                            Some(at) => at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO),
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(error = %e, "could not refresh AWS credentials; retrying");
                        Duration::from_secs(u64::from(failures.min(6)) * 5)
                    }
                };
                tokio::time::sleep(sleep.max(Duration::from_secs(1))).await;
                if idle_limit.is_some_and(|l| me.idle_secs() > l.as_secs()) {
                    on_idle();
                    return;
                }
            }
        });
    }

    /// Resolves even when the held credentials are still inside their
    /// lifetime (the refresher calls it at the refresh margin).
    async fn resolve_forced(&self) -> Result<(), UpstreamError> {
        let _single = self.refresh.lock().await;
        let Some(provider) = &self.provider else {
            return Err(UpstreamError::Credentials("no AWS credentials are configured".into()));
        };
        // Credentials a request resolved a moment ago (or that never
        // expire) are not replaced: the refresher runs at the margin.
        if let Some(c) = self.current.load().as_ref() {
            if c.usable_until(SystemTime::now(), REFRESH_BEFORE) {
                return Ok(());
            }
        }
        match provider.provide_credentials().await {
            Ok(creds) => {
                let expiry = creds.expiry();
                self.current.store(Some(Arc::new(Cached { identity: Identity::from(creds), expiry })));
                Ok(())
            }
            Err(e) => Err(UpstreamError::Credentials(e.to_string())),
        }
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
        // A source that just failed is not asked again by every request
        // behind it (STS refusing a role would otherwise be called per
        // request); the refresher keeps retrying on its own schedule.
        if let Some((at, why)) = self.failed.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            if at.elapsed() < RETRY_AFTER_FAILURE && old.as_ref().is_none_or(|c| !c.usable_until(now, Duration::ZERO)) {
                return Err(UpstreamError::Credentials(why.clone()));
            }
        }
        match provider.provide_credentials().await {
            Ok(creds) => {
                let expiry = creds.expiry();
                let identity = Identity::from(creds);
                self.current.store(Some(Arc::new(Cached { identity: identity.clone(), expiry })));
                *self.failed.lock().unwrap_or_else(|e| e.into_inner()) = None;
                Ok(identity)
            }
            // Credentials that are close to expiry but still valid beat none:
            // the source may be briefly unreachable (IMDS, SSO).
            Err(e) => match old.as_ref().filter(|c| c.usable_until(now, Duration::ZERO)) {
                Some(c) => {
                    tracing::warn!(error = %e, "could not refresh AWS credentials; using the current ones until they expire");
                    Ok(c.identity.clone())
                }
                None => {
                    *self.failed.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), e.to_string()));
                    Err(UpstreamError::Credentials(e.to_string()))
                }
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

    fn cache(lifetime: Option<Duration>, fail_after: usize) -> (Arc<CredentialCache>, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let p = Counting { calls: calls.clone(), lifetime, fail_after };
        (Arc::new(CredentialCache::new(Some(SharedCredentialsProvider::new(p)))), calls)
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
    async fn credentials_close_to_expiry_are_refreshed_beside_the_request() {
        let (c, calls) = cache(Some(Duration::from_secs(60)), usize::MAX);
        c.identity().await.unwrap();
        c.identity().await.unwrap();
        // The second request signed with the held credentials; the refresh
        // ran in a task of its own.
        for _ in 0..100 {
            if calls.load(Ordering::SeqCst) == 2 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2, "a 60 s lifetime is inside the refresh margin");
    }

    #[tokio::test]
    async fn credentials_about_to_lapse_are_resolved_before_signing() {
        let (c, calls) = cache(Some(Duration::from_secs(10)), usize::MAX);
        c.identity().await.unwrap();
        c.identity().await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_refresher_started_beside_the_first_request_does_not_resolve_again() {
        let (c, calls) = cache(Some(Duration::from_secs(3600)), usize::MAX);
        c.identity().await.unwrap();
        c.spawn_refresher(None, || {});
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        c.identity().await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one session per user, not two");
    }

    #[tokio::test]
    async fn the_refresher_resolves_ahead_of_the_first_request() {
        let (c, calls) = cache(None, usize::MAX);
        c.spawn_refresher(None, || {});
        for _ in 0..100 {
            if calls.load(Ordering::SeqCst) == 1 {
                break;
            }
            tokio::task::yield_now().await;
        }
        c.identity().await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1, "long-lived credentials are resolved once, by the refresher");
    }

    #[tokio::test]
    async fn still_valid_credentials_are_used_when_a_refresh_fails() {
        let (c, _) = cache(Some(Duration::from_secs(120)), 1);
        c.identity().await.unwrap();
        assert!(c.identity().await.is_ok());
    }

    #[tokio::test]
    async fn a_failing_source_is_not_asked_again_by_every_request() {
        let (c, calls) = cache(None, 0);
        assert!(c.identity().await.is_err());
        assert!(c.identity().await.is_err());
        assert!(c.identity().await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn no_provider_is_a_credentials_error() {
        let c = Arc::new(CredentialCache::new(None));
        assert!(matches!(c.identity().await, Err(UpstreamError::Credentials(_))));
    }
}
