//! A provider's signing keys, cached per `jwks_uri`. A token signed with a
//! key the cache does not hold triggers one refetch (the provider rotated),
//! at most once per `REFETCH_GAP`, so tokens with made-up key ids cannot
//! turn the gateway into a flood of requests to the provider.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::{discovery, IdentityError};
use ccag_outbound::Policy;

/// Keys are refreshed this often even when none is missing.
const REFRESH: Duration = Duration::from_secs(3600);
/// The least time between two refetches caused by an unknown key id.
pub const REFETCH_GAP: Duration = Duration::from_secs(30);

/// The key type, which decides the algorithms a key may verify: the
/// token's header never chooses a family on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl Family {
    pub fn allows(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            Family::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            Family::P256 => alg == ES256,
            Family::P384 => alg == ES384,
            Family::Ed25519 => alg == EdDSA,
        }
    }
}

#[derive(Clone)]
pub struct Key {
    pub decoding: DecodingKey,
    pub family: Family,
}

#[derive(Default)]
struct State {
    by_kid: HashMap<String, Key>,
    without_kid: Vec<Key>,
    fetched: Option<Instant>,
    forced: Option<Instant>,
}

pub struct KeySet {
    uri: String,
    state: RwLock<State>,
    /// One fetch at a time; the others wait for its result.
    fetching: tokio::sync::Mutex<()>,
}

/// The usable signing keys of a JWKS document: symmetric keys, encryption
/// keys and key types this gateway does not verify are left out.
pub fn parse(doc: &[u8]) -> Result<(HashMap<String, Key>, Vec<Key>), IdentityError> {
    #[derive(serde::Deserialize)]
    struct Doc {
        keys: Vec<serde_json::Value>,
    }
    let d: Doc =
        serde_json::from_slice(doc).map_err(|e| IdentityError::ProviderInvalid(format!("the key set (JWKS): {e}")))?;
    let mut by_kid = HashMap::new();
    let mut without_kid = Vec::new();
    for v in d.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(v) else { continue };
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        let family = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Family::Rsa,
            AlgorithmParameters::EllipticCurve(p) => match p.curve {
                EllipticCurve::P256 => Family::P256,
                EllipticCurve::P384 => Family::P384,
                _ => continue,
            },
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => Family::Ed25519,
            _ => continue,
        };
        let Ok(decoding) = DecodingKey::from_jwk(&jwk) else { continue };
        let key = Key { decoding, family };
        match jwk.common.key_id {
            Some(kid) => {
                by_kid.insert(kid, key);
            }
            None => without_kid.push(key),
        }
    }
    Ok((by_kid, without_kid))
}

impl KeySet {
    pub fn new(uri: &str) -> Self {
        KeySet { uri: uri.to_owned(), state: RwLock::new(State::default()), fetching: tokio::sync::Mutex::new(()) }
    }

    fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Option<Key> {
        let s = self.state.read().expect("key set lock");
        match kid {
            Some(k) => s.by_kid.get(k).filter(|k| k.family.allows(alg)).cloned(),
            None => {
                let mut fitting = s.without_kid.iter().chain(s.by_kid.values()).filter(|k| k.family.allows(alg));
                let one = fitting.next().cloned();
                // Without a key id, only an unambiguous key will do.
                if fitting.next().is_some() {
                    None
                } else {
                    one
                }
            }
        }
    }

    async fn refetch(&self, policy: &Policy, forced: bool) -> Result<(), IdentityError> {
        let _one = self.fetching.lock().await;
        {
            let s = self.state.read().expect("key set lock");
            let recent = |t: Option<Instant>, gap: Duration| t.is_some_and(|t| t.elapsed() < gap);
            // Someone else fetched while this call waited.
            if (!forced && recent(s.fetched, REFRESH)) || (forced && recent(s.forced, REFETCH_GAP)) {
                return Ok(());
            }
        }
        let body = discovery::get_json(policy, &self.uri).await;
        let mut s = self.state.write().expect("key set lock");
        if forced {
            s.forced = Some(Instant::now());
        }
        let (by_kid, without_kid) = parse(&body?)?;
        s.by_kid = by_kid;
        s.without_kid = without_kid;
        s.fetched = Some(Instant::now());
        Ok(())
    }

    /// The key that verifies a token with this header.
    pub async fn key(&self, policy: &Policy, kid: Option<&str>, alg: Algorithm) -> Result<Key, IdentityError> {
        let stale = self.state.read().expect("key set lock").fetched.is_none_or(|t| t.elapsed() >= REFRESH);
        if stale {
            self.refetch(policy, false).await?;
        }
        if let Some(k) = self.lookup(kid, alg) {
            return Ok(k);
        }
        let may_force = self.state.read().expect("key set lock").forced.is_none_or(|t| t.elapsed() >= REFETCH_GAP);
        if may_force {
            self.refetch(policy, true).await?;
            if let Some(k) = self.lookup(kid, alg) {
                return Ok(k);
            }
        }
        Err(IdentityError::TokenRejected(match kid {
            Some(k) => {
                format!("it is signed with key {k:?} and algorithm {alg:?}, which the provider does not publish")
            }
            None => format!("it names no key and the provider has no single {alg:?} key"),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_and_encryption_keys_are_left_out() {
        let doc = br#"{"keys":[
            {"kty":"oct","kid":"h","k":"c2VjcmV0"},
            {"kty":"RSA","kid":"enc","use":"enc","n":"sXch","e":"AQAB"},
            {"kty":"RSA","kid":"sig","use":"sig","n":"sXch","e":"AQAB"},
            {"kty":"OKP","crv":"Ed25519","kid":"ed","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty":"EC","crv":"P-256","kid":"ec","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty":"weird","kid":"w"}
        ]}"#;
        let (by_kid, none) = parse(doc).unwrap();
        let mut kids: Vec<_> = by_kid.keys().cloned().collect();
        kids.sort();
        assert_eq!(kids, ["ec", "ed", "sig"]);
        assert!(none.is_empty());
        assert_eq!(by_kid["ec"].family, Family::P256);
    }

    #[test]
    fn a_key_verifies_only_its_own_family_of_algorithms() {
        assert!(Family::Rsa.allows(Algorithm::RS256));
        assert!(!Family::Rsa.allows(Algorithm::HS256));
        assert!(!Family::P256.allows(Algorithm::RS256));
        assert!(Family::Ed25519.allows(Algorithm::EdDSA));
        assert!(!Family::Ed25519.allows(Algorithm::ES256));
    }
}
