//! The data plane's link to the control plane: the configuration watch
//! stream (resources and deltas with ACK/NACK, reconnection and a persisted
//! last-known-good state) and the connection both it and the usage reporter
//! use, which fails over between control-plane replicas.

mod watch;

pub use watch::{load_persisted, spawn_watch};

use std::path::PathBuf;
use std::time::Duration;

use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// How a data plane reaches its control plane, from the environment.
#[derive(Clone)]
pub struct ControlSettings {
    /// Control-plane replicas (`CCAG_CONTROLPLANE_URL`, comma-separated); a
    /// host name with several addresses counts as one replica per address.
    pub urls: Vec<String>,
    pub token: String,
    pub id: String,
    pub state_dir: PathBuf,
    /// Where this data plane serves clients, reported for `ccag status`.
    pub address: String,
    /// Extra CA certificate (PEM) to trust for an https control plane.
    pub ca_pem: Option<Vec<u8>>,
}

/// Parses `CCAG_CONTROLPLANE_URL`: one or more http(s) URLs, comma-separated.
pub fn parse_urls(v: &str) -> Result<Vec<String>, String> {
    let urls: Vec<String> = v.split(',').map(str::trim).filter(|u| !u.is_empty()).map(str::to_owned).collect();
    if urls.is_empty() {
        return Err("CCAG_CONTROLPLANE_URL: no URL given".into());
    }
    for u in &urls {
        let uri: http::Uri = u.parse().map_err(|e| format!("CCAG_CONTROLPLANE_URL: {u:?}: {e}"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(format!("CCAG_CONTROLPLANE_URL: {u:?} is not an http:// or https:// URL"));
        }
    }
    Ok(urls)
}

/// One address to try: the URL as configured, and the address it resolved to.
struct Target {
    url: String,
    endpoint: Endpoint,
}

/// Every address of every configured URL, each resolved now (a DNS name
/// behind which several replicas stand gives one target per address).
async fn targets(s: &ControlSettings) -> Vec<Target> {
    let mut out = Vec::new();
    for url in &s.urls {
        let Ok(uri) = url.parse::<http::Uri>() else { continue };
        let https = uri.scheme_str() == Some("https");
        let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let addrs: Vec<std::net::SocketAddr> = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => vec![(ip, port).into()],
            Err(_) => match tokio::net::lookup_host((host.as_str(), port)).await {
                Ok(a) => a.collect(),
                Err(e) => {
                    tracing::warn!(url = %url, error = %e, "cannot resolve a control-plane address");
                    continue;
                }
            },
        };
        for addr in addrs {
            let scheme = if https { "https" } else { "http" };
            let Ok(mut ep) = Endpoint::from_shared(format!("{scheme}://{addr}")) else { continue };
            ep = ep
                .connect_timeout(Duration::from_secs(5))
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(15))
                .keep_alive_timeout(Duration::from_secs(10))
                .keep_alive_while_idle(true);
            if https {
                // The certificate names the host, not the address dialled.
                let mut tls = ClientTlsConfig::new().with_native_roots().domain_name(host.clone());
                if let Some(pem) = &s.ca_pem {
                    tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
                }
                match ep.tls_config(tls) {
                    Ok(e) => ep = e,
                    Err(e) => {
                        tracing::warn!(url = %url, error = %e, "TLS settings refused");
                        continue;
                    }
                }
            }
            out.push(Target { url: url.clone(), endpoint: ep });
        }
    }
    out
}

/// Connects to the first control-plane replica that answers, trying them
/// in turn from `*next`; on return `*next` points past the one used, so the
/// caller's next attempt (after that replica failed it) starts elsewhere.
pub async fn connect(s: &ControlSettings, next: &mut usize) -> Result<(Channel, String), String> {
    let targets = targets(s).await;
    if targets.is_empty() {
        return Err(format!("no control-plane address could be resolved from {:?}", s.urls.join(",")));
    }
    let mut errors = Vec::new();
    for i in 0..targets.len() {
        let at = (*next + i) % targets.len();
        let t = &targets[at];
        match t.endpoint.connect().await {
            Ok(ch) => {
                *next = at + 1;
                return Ok((ch, t.url.clone()));
            }
            Err(e) => errors.push(format!("{} ({}): {e}", t.url, t.endpoint.uri())),
        }
    }
    *next = next.wrapping_add(1);
    Err(format!("no control plane answered: {}", errors.join("; ")))
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
