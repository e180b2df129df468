//! Webhooks as the Standard Webhooks specification has them: the headers
//! `webhook-id` (the event id, stable across retries), `webhook-timestamp`
//! (Unix seconds) and `webhook-signature` (`v1,` and the base64 HMAC-SHA256
//! of `id.timestamp.body` under the destination's secret; two of them,
//! space-separated, while a rotated-out secret still signs), POSTed over a
//! connection to the address the outbound check passed, never following a
//! redirect.

use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use sha2::Sha256;
use tokio::net::TcpStream;

use super::SendError;
use crate::outbound::{Policy, Target};

pub const SECRET_PREFIX: &str = "whsec_";
/// How much of a receiver's answer is kept, for `ccag notifications test`
/// and the delivery log.
const ANSWER_LIMIT: usize = 2048;

/// A new signing secret: `whsec_` and 32 random bytes in base64.
pub fn new_secret() -> String {
    let mut k = [0u8; 32];
    getrandom::fill(&mut k).expect("the OS random source");
    format!("{SECRET_PREFIX}{}", B64.encode(k))
}

/// `v1,<signature>` of one message under one secret.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, SendError> {
    let key = secret
        .strip_prefix(SECRET_PREFIX)
        .and_then(|k| B64.decode(k).ok())
        .ok_or_else(|| SendError::Config("the signing secret is not a whsec_ secret".into()))?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!("v1,{}", B64.encode(mac.finalize().into_bytes())))
}

/// What the receiver answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// POSTs `body` to `target`, signed with each of `secrets`; Ok only for a
/// 2xx answer. The caller bounds the whole call with its timeout.
pub async fn post(
    policy: &Policy,
    target: &Target,
    secrets: &[String],
    id: &str,
    timestamp: i64,
    body: Bytes,
) -> Result<Answer, SendError> {
    let mut signatures = Vec::with_capacity(secrets.len());
    for s in secrets {
        signatures.push(sign(s, id, timestamp, &body)?);
    }
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
    let tcp = tcp.ok_or_else(|| SendError::Connect(last.unwrap_or_default()))?;
    let _ = tcp.set_nodelay(true);
    let authority = if (target.https && target.port == 443) || (!target.https && target.port == 80) {
        target.host.clone()
    } else {
        format!("{}:{}", target.host, target.port)
    };
    let req = http::Request::post(target.path.as_str())
        .header(http::header::HOST, authority)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, concat!("ccag/", env!("CARGO_PKG_VERSION")))
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signatures.join(" "))
        .body(Full::new(body))
        .map_err(|e| SendError::Config(e.to_string()))?;
    if target.https {
        let name = rustls::pki_types::ServerName::try_from(target.host.trim_matches(['[', ']']).to_owned())
            .map_err(|_| SendError::Config(format!("{} is not a valid TLS server name", target.host)))?;
        let tls = tokio_rustls::TlsConnector::from(tls_config())
            .connect(name, tcp)
            .await
            .map_err(|e| SendError::Tls(e.to_string()))?;
        exchange(TokioIo::new(tls), req).await
    } else {
        exchange(TokioIo::new(tcp), req).await
    }
}

async fn exchange<I>(io: I, req: http::Request<Full<Bytes>>) -> Result<Answer, SendError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(io).await.map_err(|e| SendError::Http(e.to_string()))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let res = send.send_request(req).await.map_err(|e| SendError::Http(e.to_string()));
    let out = match res {
        Ok(res) => {
            let status = res.status().as_u16();
            let mut body = res.into_body();
            let mut kept = Vec::new();
            while kept.len() < ANSWER_LIMIT {
                match body.frame().await {
                    Some(Ok(f)) => {
                        if let Some(d) = f.data_ref() {
                            kept.extend_from_slice(&d[..d.len().min(ANSWER_LIMIT - kept.len())]);
                        }
                    }
                    _ => break,
                }
            }
            let answer = Answer { status, body: String::from_utf8_lossy(&kept).into_owned() };
            if (200..300).contains(&status) {
                Ok(answer)
            } else {
                Err(SendError::Status(answer))
            }
        }
        Err(e) => Err(e),
    };
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
                tracing::warn!("no trusted root certificates found: HTTPS webhooks will fail");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_standard_webhooks_one() {
        // The example of the Standard Webhooks specification's reference libraries.
        let sig = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_new_secret_is_a_whsec_secret_of_32_bytes() {
        let s = new_secret();
        let raw = B64.decode(s.strip_prefix(SECRET_PREFIX).unwrap()).unwrap();
        assert_eq!(raw.len(), 32);
        assert_ne!(s, new_secret());
    }

    #[test]
    fn a_secret_without_its_prefix_does_not_sign() {
        assert!(matches!(sign("MfKQ9r8G", "m", 1, b"x"), Err(SendError::Config(_))));
    }
}
