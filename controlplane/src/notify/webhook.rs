//! Webhooks as the Standard Webhooks specification has them: the headers
//! `webhook-id` (the event id, stable across retries), `webhook-timestamp`
//! (Unix seconds) and `webhook-signature` (`v1,` and the base64 HMAC-SHA256
//! of `id.timestamp.body` under the destination's secret; two of them,
//! space-separated, while a rotated-out secret still signs), POSTed over a
//! connection to the address the outbound check passed, never following a
//! redirect.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::Full;
use sha2::Sha256;

use super::SendError;
use ccag_outbound::client::{self, CallError};
use ccag_outbound::{Policy, Target};

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
    let req = http::Request::post("/")
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signatures.join(" "))
        .body(Full::new(body))
        .map_err(|e| SendError::Config(e.to_string()))?;
    let a = client::call(policy, target, req, ANSWER_LIMIT, client::Overflow::Truncate).await.map_err(|e| match e {
        CallError::Outbound(o) => SendError::Outbound(o),
        CallError::Config(m) => SendError::Config(m),
        CallError::Connect(m) => SendError::Connect(m),
        CallError::Tls(m) => SendError::Tls(m),
        CallError::Http(m) => SendError::Http(m),
        CallError::TooLarge(_) => SendError::Http(e.to_string()),
    })?;
    let answer = Answer { status: a.status, body: String::from_utf8_lossy(&a.body).into_owned() };
    if (200..300).contains(&a.status) {
        Ok(answer)
    } else {
        Err(SendError::Status(answer))
    }
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
