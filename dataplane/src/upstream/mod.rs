//! Calls to Bedrock Runtime, and the mapping of every Bedrock failure onto the
//! Anthropic error a client expects. Every call goes through the data plane's
//! own signed client (`client`), one per endpoint (`bedrock` builds them from
//! the AWS environment), with credentials cached and refreshed ahead of
//! expiry (`credentials`, `sts` for assumed roles).

mod bedrock;
mod client;
mod credentials;
mod errors;
pub mod eventstream;
mod h2pool;
mod sts;

pub use bedrock::Bedrock;
pub use client::{EventStream, Principal, Runtime as Endpoint};
pub use errors::{Failover, UpstreamError};

/// An endpoint client for unit tests (it is never called).
#[cfg(test)]
pub fn test_endpoint() -> std::sync::Arc<Endpoint> {
    // One for every test: building a client loads the system's roots.
    static ONE: std::sync::OnceLock<std::sync::Arc<Endpoint>> = std::sync::OnceLock::new();
    ONE.get_or_init(|| {
        let auth = client::Auth::Bearer(http::HeaderValue::from_static("Bearer x"));
        let http = client::http_client(&client::tls_config(None).unwrap());
        std::sync::Arc::new(Endpoint::new(http, None, "http://127.0.0.1:9", "us-east-1".into(), auth).unwrap())
    })
    .clone()
}
