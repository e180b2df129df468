//! Identifiers and secrets, all drawn from the operating system's CSPRNG.

use sha2::{Digest, Sha256};

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `n` uniformly distributed base-62 characters.
pub fn random_base62(n: usize) -> String {
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        getrandom::fill(&mut buf).expect("the OS random source is available");
        for b in buf {
            // 248 = 4 * 62: rejecting the rest keeps every character equally likely.
            if b < 248 && out.len() < n {
                out.push(BASE62[(b % 62) as usize] as char);
            }
        }
    }
    out
}

/// A record id such as `usr_3kTMd…`.
pub fn new_id(kind: &str) -> String {
    format!("{kind}_{}", random_base62(20))
}

pub const KEY_PREFIX: &str = "sk-ccag-";
pub const TOKEN_PREFIX: &str = "ccag_at_";
pub const SESSION_PREFIX: &str = "ccag_ses_";
/// How much of a key or token is kept in clear to recognise it.
pub const VISIBLE_CHARS: usize = 12;

/// A new virtual API key: 40 base-62 characters (238 bits) after the prefix.
pub fn new_key() -> String {
    format!("{KEY_PREFIX}{}", random_base62(40))
}

pub fn new_api_token() -> String {
    format!("{TOKEN_PREFIX}{}", random_base62(40))
}

/// Keys and tokens are stored only as this hash. They carry 238 bits of
/// entropy, so a fast hash is enough; the data plane uses the same one.
pub fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub fn visible_prefix(secret: &str) -> String {
    secret.chars().take(VISIBLE_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_prefix_and_enough_randomness() {
        let k = new_key();
        assert!(k.starts_with("sk-ccag-"));
        assert_eq!(k.len(), 8 + 40);
        assert_ne!(new_key(), k);
    }

    #[test]
    fn hash_is_lowercase_hex_sha256() {
        assert_eq!(sha256_hex("test"), "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
    }

    #[test]
    fn ids_name_their_kind() {
        assert!(new_id("usr").starts_with("usr_"));
    }
}
