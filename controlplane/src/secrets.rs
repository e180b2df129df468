//! Secrets the gateway must read back (webhook signing secrets now, IdP
//! client secrets later) are stored encrypted with AES-256-GCM under one
//! key: `CCAG_ENCRYPTION_KEY` (base64 of 32 bytes), or a key generated into
//! the data directory on first start. Every replica of one database needs
//! the same key; a check value in the database tells a replica whose key
//! differs, which then refuses to decrypt rather than failing obscurely.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::Utc;
use hmac::{Hmac, Mac};
use sea_orm::sea_query::OnConflict;
use sea_orm::{DatabaseConnection, EntityTrait, Set};
use sha2::Sha256;

use crate::store::entities::system_secrets;

const CHECK_NAME: &str = "encryption_key_check";
const KEY_FILE: &str = "encryption-key";
/// Stored ciphertexts start with this, so a later key scheme can be told apart.
const PREFIX: &str = "v1:";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "this replica has no encryption key, but the database's secrets were encrypted with one: \
         set CCAG_ENCRYPTION_KEY to the key the other replicas use"
    )]
    NoKey,
    #[error(
        "this replica's encryption key is not the one the database's secrets were encrypted with: \
         set CCAG_ENCRYPTION_KEY to the key the other replicas use"
    )]
    WrongKey,
    #[error("a stored secret cannot be decrypted (corrupt, or encrypted under another key)")]
    Corrupt,
}

pub struct Keyring {
    state: Result<LessSafeKey, SecretErrorKind>,
}

#[derive(Debug, Clone, Copy)]
enum SecretErrorKind {
    NoKey,
    WrongKey,
}

impl Keyring {
    /// The key from `env_key` (already read from `CCAG_ENCRYPTION_KEY`), or
    /// the data directory's file, or a new one when the database has never
    /// seen a key.
    pub async fn load(
        db: &DatabaseConnection,
        env_key: Option<&str>,
        data_dir: &std::path::Path,
    ) -> Result<Keyring, String> {
        let check = system_secrets::Entity::find_by_id(CHECK_NAME)
            .one(db)
            .await
            .map_err(|e| format!("reading the encryption key check: {e}"))?
            .map(|r| r.value);
        let path = data_dir.join(KEY_FILE);
        let raw: Option<Vec<u8>> = match env_key {
            Some(k) => Some(decode_key(k).map_err(|e| format!("CCAG_ENCRYPTION_KEY: {e}"))?),
            None => match std::fs::read_to_string(&path) {
                Ok(s) => Some(decode_key(&s).map_err(|e| format!("{}: {e}", path.display()))?),
                Err(_) if check.is_none() => {
                    let mut k = [0u8; 32];
                    getrandom::fill(&mut k).map_err(|e| e.to_string())?;
                    write_private(&path, &B64.encode(k))?;
                    tracing::info!(path = %path.display(), "generated the encryption key for stored secrets");
                    Some(k.to_vec())
                }
                Err(_) => None,
            },
        };
        let Some(raw) = raw else {
            tracing::error!("{}", SecretError::NoKey);
            return Ok(Keyring { state: Err(SecretErrorKind::NoKey) });
        };
        let mine = check_value(&raw);
        let check = match check {
            Some(c) => c,
            None => {
                // Two replicas starting together: the first check written wins.
                system_secrets::Entity::insert(system_secrets::ActiveModel {
                    name: Set(CHECK_NAME.into()),
                    value: Set(mine.clone()),
                    created_at: Set(Utc::now()),
                })
                .on_conflict(OnConflict::column(system_secrets::Column::Name).do_nothing().to_owned())
                .do_nothing()
                .exec_without_returning(db)
                .await
                .map_err(|e| format!("storing the encryption key check: {e}"))?;
                system_secrets::Entity::find_by_id(CHECK_NAME)
                    .one(db)
                    .await
                    .map_err(|e| format!("reading the encryption key check: {e}"))?
                    .map(|r| r.value)
                    .unwrap_or_default()
            }
        };
        if !bool::from(subtle::ConstantTimeEq::ct_eq(check.as_bytes(), mine.as_bytes())) {
            tracing::error!("{}", SecretError::WrongKey);
            return Ok(Keyring { state: Err(SecretErrorKind::WrongKey) });
        }
        Ok(Keyring::from_raw(&raw))
    }

    fn from_raw(raw: &[u8]) -> Keyring {
        let key = UnboundKey::new(&AES_256_GCM, raw).map(LessSafeKey::new).expect("a 32-byte key");
        Keyring { state: Ok(key) }
    }

    #[cfg(test)]
    pub fn for_tests() -> Keyring {
        Keyring::from_raw(&[7u8; 32])
    }

    pub fn usable(&self) -> Result<(), SecretError> {
        self.key().map(|_| ())
    }

    fn key(&self) -> Result<&LessSafeKey, SecretError> {
        self.state.as_ref().map_err(|k| match k {
            SecretErrorKind::NoKey => SecretError::NoKey,
            SecretErrorKind::WrongKey => SecretError::WrongKey,
        })
    }

    /// `aad` binds the ciphertext to its row (a secret moved to another
    /// destination does not decrypt).
    pub fn seal(&self, plaintext: &str, aad: &str) -> Result<String, SecretError> {
        let key = self.key()?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| SecretError::Corrupt)?;
        let mut buf = plaintext.as_bytes().to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad.as_bytes()), &mut buf)
            .map_err(|_| SecretError::Corrupt)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(format!("{PREFIX}{}", B64.encode(out)))
    }

    pub fn open(&self, stored: &str, aad: &str) -> Result<String, SecretError> {
        let key = self.key()?;
        let bytes = stored.strip_prefix(PREFIX).and_then(|b| B64.decode(b).ok()).ok_or(SecretError::Corrupt)?;
        if bytes.len() < NONCE_LEN {
            return Err(SecretError::Corrupt);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SecretError::Corrupt)?;
        let mut buf = sealed.to_vec();
        let plain = key.open_in_place(nonce, Aad::from(aad.as_bytes()), &mut buf).map_err(|_| SecretError::Corrupt)?;
        String::from_utf8(plain.to_vec()).map_err(|_| SecretError::Corrupt)
    }
}

fn decode_key(s: &str) -> Result<Vec<u8>, String> {
    let raw = B64.decode(s.trim()).map_err(|_| "not base64 (make one with: openssl rand -base64 32)".to_string())?;
    if raw.len() != 32 {
        return Err(format!("{} bytes; it must be 32 (make one with: openssl rand -base64 32)", raw.len()));
    }
    Ok(raw)
}

fn check_value(raw: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(raw).expect("any key length");
    mac.update(b"ccag encryption key check");
    hex::encode(mac.finalize().into_bytes())
}

fn write_private(path: &std::path::Path, content: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(content.as_bytes()))
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_with_its_row_only() {
        let k = Keyring::for_tests();
        let s = k.seal("whsec_abc", "dst_1").unwrap();
        assert!(s.starts_with("v1:") && !s.contains("whsec"));
        assert_eq!(k.open(&s, "dst_1").unwrap(), "whsec_abc");
        assert!(matches!(k.open(&s, "dst_2"), Err(SecretError::Corrupt)));
    }

    #[test]
    fn sealing_twice_gives_two_ciphertexts() {
        let k = Keyring::for_tests();
        assert_ne!(k.seal("x", "a").unwrap(), k.seal("x", "a").unwrap());
    }

    #[test]
    fn another_key_cannot_open_a_secret() {
        let s = Keyring::for_tests().seal("x", "a").unwrap();
        assert!(matches!(Keyring::from_raw(&[8u8; 32]).open(&s, "a"), Err(SecretError::Corrupt)));
    }

    #[test]
    fn a_key_of_the_wrong_length_is_refused_with_how_to_make_one() {
        let e = decode_key(&B64.encode([1u8; 16])).unwrap_err();
        assert!(e.contains("16 bytes") && e.contains("openssl rand"), "{e}");
        assert!(decode_key("not base64!").is_err());
    }
}
