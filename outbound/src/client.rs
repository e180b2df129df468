//! One HTTP/1.1 exchange with a checked target: resolve and check every
//! address, connect to one that passed, TLS with the system's roots (and
//! `SSL_CERT_FILE`), send, read a bounded answer. Redirects are never
//! followed: the caller sees the 3xx.

use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::{OutboundError, Policy, Target};

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Outbound(#[from] OutboundError),
    #[error("{0}")]
    Config(String),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
}

/// What to do with an answer longer than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Keep the first `limit` bytes (a receiver's answer, kept for a log).
    Truncate,
    /// Refuse it (a document that must be read whole).
    Fail,
}

#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// `Host` (from the target) is set here, and `User-Agent` unless the
/// request has one; the request's URI is the target's path.
pub async fn call(
    policy: &Policy,
    target: &Target,
    mut req: http::Request<Full<Bytes>>,
    limit: usize,
    overflow: Overflow,
) -> Result<Answer, CallError> {
    let addrs = policy.resolve(&target.host, target.port).await?;
    let mut last = None;
    let mut tcp = None;
    for a in &addrs {
        match TcpStream::connect(a).await {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = Some(format!("{a}: {e}")),
        }
    }
    let tcp = tcp.ok_or_else(|| CallError::Connect(last.unwrap_or_default()))?;
    let _ = tcp.set_nodelay(true);
    let authority = if (target.https && target.port == 443) || (!target.https && target.port == 80) {
        target.host.clone()
    } else {
        format!("{}:{}", target.host, target.port)
    };
    *req.uri_mut() = target.path.parse().map_err(|e| CallError::Config(format!("path: {e}")))?;
    let h = req.headers_mut();
    h.insert(http::header::HOST, authority.parse().map_err(|_| CallError::Config("bad host".into()))?);
    // A caller may name itself otherwise: some services (DuckDuckGo's HTML
    // endpoint) answer only clients that look like a browser.
    h.entry(http::header::USER_AGENT)
        .or_insert(http::HeaderValue::from_static(concat!("ccag/", env!("CARGO_PKG_VERSION"))));
    if target.https {
        let name = rustls::pki_types::ServerName::try_from(target.host.trim_matches(['[', ']']).to_owned())
            .map_err(|_| CallError::Config(format!("{} is not a valid TLS server name", target.host)))?;
        let tls = tokio_rustls::TlsConnector::from(tls_config())
            .connect(name, tcp)
            .await
            .map_err(|e| CallError::Tls(e.to_string()))?;
        exchange(TokioIo::new(tls), req, limit, overflow).await
    } else {
        exchange(TokioIo::new(tcp), req, limit, overflow).await
    }
}

async fn exchange<I>(
    io: I,
    req: http::Request<Full<Bytes>>,
    limit: usize,
    overflow: Overflow,
) -> Result<Answer, CallError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(io).await.map_err(|e| CallError::Http(e.to_string()))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let out = async {
        let res = send.send_request(req).await.map_err(|e| CallError::Http(e.to_string()))?;
        let status = res.status().as_u16();
        let (parts, mut body) = res.into_parts();
        let mut kept = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = match frame {
                Ok(f) => f,
                // A receiver's answer is kept for a log: what arrived before
                // the connection broke (TLS closed without close_notify, say)
                // will do. A document that must be whole fails instead.
                Err(_) if overflow == Overflow::Truncate => break,
                Err(e) => return Err(CallError::Http(e.to_string())),
            };
            if let Some(d) = frame.data_ref() {
                if kept.len() + d.len() > limit {
                    if overflow == Overflow::Fail {
                        return Err(CallError::TooLarge(limit));
                    }
                    kept.extend_from_slice(&d[..limit - kept.len()]);
                    break;
                }
                kept.extend_from_slice(d);
            }
        }
        Ok(Answer { status, headers: parts.headers, body: kept.freeze() })
    }
    .await;
    driver.abort();
    out
}

/// The system's trust store (and `SSL_CERT_FILE` when set), loaded once.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                tracing::warn!("no trusted root certificates found: outbound HTTPS calls will fail");
            }
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("the default protocol versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(cfg)
        })
        .clone()
}
