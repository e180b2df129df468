//! The data plane's link to the control plane: the configuration watch
//! stream (with ACK/NACK, reconnection and a persisted last-known-good
//! snapshot) and the usage reporter.

mod watch;

pub use watch::{load_persisted, spawn_watch};

use std::path::PathBuf;
use std::time::Duration;

use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// How a data plane reaches its control plane, from the environment.
#[derive(Clone)]
pub struct ControlSettings {
    pub url: String,
    pub token: String,
    pub id: String,
    pub state_dir: PathBuf,
    /// Where this data plane serves clients, reported for `ccag status`.
    pub address: String,
    /// Extra CA certificate (PEM) to trust for an https control plane.
    pub ca_pem: Option<Vec<u8>>,
}

pub async fn connect(s: &ControlSettings) -> Result<Channel, String> {
    let mut ep = Endpoint::from_shared(s.url.clone())
        .map_err(|e| format!("CCAG_CONTROLPLANE_URL: {e}"))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(15))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    if s.url.starts_with("https://") {
        let mut tls = ClientTlsConfig::new().with_native_roots();
        if let Some(pem) = &s.ca_pem {
            tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
        }
        ep = ep.tls_config(tls).map_err(|e| format!("TLS: {e}"))?;
    }
    ep.connect().await.map_err(|e| format!("connecting to {}: {e}", s.url))
}

/// Adds the data plane's bearer token to every call.
#[derive(Clone)]
pub struct Bearer(pub tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

impl Bearer {
    pub fn new(token: &str) -> Result<Self, String> {
        format!("Bearer {token}")
            .parse()
            .map(Bearer)
            .map_err(|_| "CCAG_DATAPLANE_TOKEN: not a valid header value".to_owned())
    }
}

/// Exponential backoff with full jitter, so that a fleet of data planes does
/// not reconnect in lock-step after a control-plane restart.
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    const MIN: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(10);

    pub fn new() -> Self {
        Backoff { next: Self::MIN }
    }
    pub fn reset(&mut self) {
        self.next = Self::MIN;
    }
    pub fn delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        Duration::from_millis(fastrand::u64(d.as_millis() as u64 / 2..=d.as_millis() as u64))
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_ceiling_and_resets() {
        let mut b = Backoff::new();
        let first = b.delay();
        assert!(first <= Backoff::MIN);
        for _ in 0..20 {
            assert!(b.delay() <= Backoff::MAX);
        }
        assert!(b.delay() >= Backoff::MAX / 2);
        b.reset();
        assert!(b.delay() <= Backoff::MIN);
    }
}
