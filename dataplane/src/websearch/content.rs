//! `encrypted_content`: what a search result holds for the model, sealed
//! (AES-256-GCM) so that a client sees an opaque value, cannot alter what
//! the model will read in a later turn, and any data plane of the fleet
//! opens it again (the key comes with the configuration).

use std::sync::{Arc, OnceLock};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// Binds the ciphertext to its use.
const AAD: &[u8] = b"ccag web_search_result v1";

#[derive(Clone)]
pub struct ContentKey(Arc<LessSafeKey>);

impl std::fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContentKey(..)")
    }
}

/// What the model reads of one result in a later turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    #[serde(rename = "u")]
    pub url: String,
    #[serde(rename = "t")]
    pub title: String,
    #[serde(rename = "s")]
    pub snippet: String,
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    pub page_age: Option<String>,
}

impl ContentKey {
    pub fn new(raw: &[u8]) -> Option<ContentKey> {
        let key = UnboundKey::new(&AES_256_GCM, raw).ok()?;
        Some(ContentKey(Arc::new(LessSafeKey::new(key))))
    }

    /// Used when the configuration carries no key (a static file): one per
    /// process, so results still open within it.
    pub fn process_default() -> ContentKey {
        static KEY: OnceLock<ContentKey> = OnceLock::new();
        KEY.get_or_init(|| {
            let raw: [u8; 32] = std::array::from_fn(|_| fastrand::u8(..));
            ContentKey::new(&raw).expect("32 bytes make an AES-256 key")
        })
        .clone()
    }

    pub fn seal(&self, content: &Sealed) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).expect("the system's random source");
        let mut buf = serde_json::to_vec(content).expect("plain strings serialise");
        self.0
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(AAD), &mut buf)
            .expect("sealing a small buffer cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        B64.encode(out)
    }

    /// `None` for anything this fleet did not seal, or that was altered.
    pub fn open(&self, text: &str) -> Option<Sealed> {
        let bytes = B64.decode(text).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = sealed.to_vec();
        let plain = self.0.open_in_place(nonce, Aad::from(AAD), &mut buf).ok()?;
        serde_json::from_slice(plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Sealed {
        Sealed { url: "https://a.example/".into(), title: "A".into(), snippet: "text".into(), page_age: None }
    }

    #[test]
    fn sealed_content_opens_with_the_same_key_only() {
        let k = ContentKey::new(&[7u8; 32]).unwrap();
        let s = k.seal(&sample());
        assert_eq!(k.open(&s), Some(sample()));
        assert!(ContentKey::new(&[8u8; 32]).unwrap().open(&s).is_none());
        assert!(!s.contains("text"), "the snippet is not readable in the sealed form");
    }

    #[test]
    fn altered_content_does_not_open() {
        let k = ContentKey::new(&[7u8; 32]).unwrap();
        let mut raw = B64.decode(k.seal(&sample())).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert!(k.open(&B64.encode(raw)).is_none());
        assert!(k.open("not base64!").is_none());
    }
}
