//! Turning a wire snapshot into the indexed form the request path uses.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use ccag_proto::config::v1::{self as pb, resource::Kind};

use super::resources::ResourceSet;
use subtle::ConstantTimeEq;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot is not valid proto3 JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("key {id:?}: sha256 must be 64 lowercase hex characters")]
    BadKeyHash { id: String },
    #[error("key {id:?}: the same hash appears twice")]
    DuplicateKey { id: String },
    #[error("model {0:?}: anthropic_id must be set")]
    BadMapping(String),
    #[error("signing key {0:?}: not a base64url Ed25519 public key")]
    BadSigningKey(String),
    #[error("search provider {0:?}: {1}")]
    BadSearchProvider(String, String),
    #[error(transparent)]
    Routing(#[from] crate::routing::SpecError),
    #[error("snapshot version {offered} is older than the held version {held}")]
    Stale { offered: u64, held: u64 },
}

/// SHA-256 of an API key. Equality is constant-time so that a lookup never
/// leaks how much of a stored hash a guess matched.
#[derive(Clone, Copy, Debug)]
pub struct KeyHash(pub [u8; 32]);

impl PartialEq for KeyHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}
impl Eq for KeyHash {}
impl Hash for KeyHash {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The digest is already uniformly distributed.
        state.write(&self.0[..8]);
    }
}

#[derive(Debug, Clone)]
pub struct KeyEntry {
    pub id: String,
    pub name: String,
    pub user_id: String,
    /// The owner's email (per-user STS sessions name it); may be empty.
    pub user_email: String,
    pub team_id: String,
    pub active: bool,
    /// Unix seconds; `None` when the key never expires.
    pub expires_at: Option<i64>,
    pub limits: crate::ratelimit::Limits,
}

/// Limits with every default filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_body_bytes: u64,
    pub first_byte_timeout: Duration,
    pub stream_idle_timeout: Duration,
    pub max_stream_duration: Duration,
    pub ping_interval: Duration,
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // Bedrock refuses bodies above 25,000,000 bytes; refusing earlier
            // gives the client a clear 413 instead of an upstream 400.
            max_body_bytes: 25_000_000,
            first_byte_timeout: Duration::from_secs(120),
            stream_idle_timeout: Duration::from_secs(300),
            max_stream_duration: Duration::from_secs(3600),
            ping_interval: Duration::from_secs(10),
            request_timeout: Duration::from_secs(600),
        }
    }
}

impl Limits {
    fn from_pb(l: Option<&pb::Limits>) -> Self {
        let d = Limits::default();
        let Some(l) = l else { return d };
        let ms = |v: u32, dflt: Duration| {
            if v == 0 {
                dflt
            } else {
                Duration::from_millis(v.into())
            }
        };
        Limits {
            max_body_bytes: if l.max_body_bytes == 0 { d.max_body_bytes } else { l.max_body_bytes },
            first_byte_timeout: ms(l.first_byte_timeout_ms, d.first_byte_timeout),
            stream_idle_timeout: ms(l.stream_idle_timeout_ms, d.stream_idle_timeout),
            max_stream_duration: ms(l.max_stream_duration_ms, d.max_stream_duration),
            ping_interval: ms(l.ping_interval_ms, d.ping_interval),
            request_timeout: ms(l.request_timeout_ms, d.request_timeout),
        }
    }
}

/// A key gateway access tokens may be signed with.
pub struct SigningKey {
    pub kid: String,
    pub key: jsonwebtoken::DecodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub struct RuntimeConfig {
    pub version: u64,
    keys: HashMap<KeyHash, Arc<KeyEntry>>,
    /// The same keys by id, for gateway access tokens (which name their key).
    keys_by_id: HashMap<String, Arc<KeyEntry>>,
    /// Empty: gateway access tokens are refused.
    pub signing_keys: Vec<SigningKey>,
    pub mappings: HashMap<String, String>,
    pub catalogue: Vec<pb::ModelInfo>,
    /// Enabled endpoints by priority, then name; none: the AWS environment's.
    pub endpoints: Vec<Arc<crate::routing::EndpointSpec>>,
    pub team_routes: HashMap<String, crate::routing::TeamRoute>,
    pub routing: crate::routing::Policy,
    /// The endpoints' clients, built by the router on first use.
    pub routes: std::sync::OnceLock<Vec<crate::routing::Route>>,
    /// The organisation's forced inference-profile geo (`routing.geo`).
    pub geo: Option<String>,
    pub limits: Limits,
    pub extra_betas: HashSet<String>,
    pub user_limits: HashMap<String, crate::ratelimit::Limits>,
    pub team_limits: HashMap<String, crate::ratelimit::Limits>,
    /// How many data planes share each limit (at least 1).
    pub dataplane_count: u32,
    /// This data plane's explicit shares, per scope; a subject without one
    /// gets `ceil(limit / dataplane_count)`.
    shares: [HashMap<Box<str>, crate::ratelimit::Limits>; 3],
    pub web_search: crate::websearch::Settings,
}

/// Shaped budgets have no explicit shares: they split evenly.
fn scope_index(scope: crate::ratelimit::Scope) -> Option<usize> {
    match scope {
        crate::ratelimit::Scope::Key => Some(0),
        crate::ratelimit::Scope::User => Some(1),
        crate::ratelimit::Scope::Team => Some(2),
        crate::ratelimit::Scope::Shape => None,
    }
}

impl RuntimeConfig {
    /// The static file format (proto3 JSON `Snapshot`).
    pub fn from_json(text: &[u8]) -> Result<Self, SnapshotError> {
        let snap: pb::Snapshot = serde_json::from_slice(text)?;
        Self::from_snapshot(snap)
    }

    pub fn from_snapshot(s: pb::Snapshot) -> Result<Self, SnapshotError> {
        Self::from_resources(&ResourceSet::from_snapshot(s))
    }

    pub fn from_resources(set: &ResourceSet) -> Result<Self, SnapshotError> {
        let mut keys = HashMap::new();
        let mut keys_by_id = HashMap::new();
        let mut signing_keys = Vec::new();
        let mut mappings = HashMap::new();
        let mut catalogue = Vec::new();
        let mut user_limits = HashMap::new();
        let mut team_limits = HashMap::new();
        let mut endpoints = Vec::new();
        let mut team_routes = HashMap::new();
        let mut settings = None;
        let mut shares = None;
        let mut web_search = None;
        let mut user_search = HashMap::new();
        let limits = |l: &pb::SubjectLimit| crate::ratelimit::Limits { rpm: l.rpm, tpm: l.tpm };
        for kind in set.kinds() {
            match kind {
                Kind::Key(k) => {
                    let hash = parse_hash(&k.sha256).ok_or_else(|| SnapshotError::BadKeyHash { id: k.id.clone() })?;
                    let entry = KeyEntry {
                        id: k.id.clone(),
                        name: k.name.clone(),
                        user_id: k.user_id.clone(),
                        user_email: k.user_email.clone(),
                        team_id: k.team_id.clone(),
                        active: k.status == pb::KeyStatus::Active as i32,
                        expires_at: (k.expires_at > 0).then_some(k.expires_at),
                        limits: crate::ratelimit::Limits { rpm: k.rpm, tpm: k.tpm },
                    };
                    let entry = Arc::new(entry);
                    keys_by_id.insert(k.id.clone(), entry.clone());
                    if keys.insert(KeyHash(hash), entry).is_some() {
                        return Err(SnapshotError::DuplicateKey { id: k.id.clone() });
                    }
                }
                Kind::UserLimit(l) => {
                    user_limits.insert(l.id.clone(), limits(l));
                }
                Kind::TeamLimit(l) => {
                    team_limits.insert(l.id.clone(), limits(l));
                }
                Kind::Model(m) => {
                    let id = m.anthropic_id.trim();
                    if id.is_empty() {
                        return Err(SnapshotError::BadMapping(m.anthropic_id.clone()));
                    }
                    if !m.bedrock_id.trim().is_empty() {
                        mappings.insert(id.to_owned(), m.bedrock_id.trim().to_owned());
                    }
                    if m.listed {
                        catalogue.push(pb::ModelInfo {
                            id: id.to_owned(),
                            display_name: m.display_name.clone(),
                            created_at: m.created_at.clone(),
                            description: m.description.clone(),
                        });
                    }
                }
                Kind::Endpoint(e) => {
                    if let Some(spec) = crate::routing::EndpointSpec::from_pb(e)? {
                        endpoints.push(Arc::new(spec));
                    }
                }
                Kind::TeamRouting(t) => {
                    team_routes.insert(t.id.clone(), crate::routing::TeamRoute::from_pb(t)?);
                }
                // Held by the budgets (`crate::budget::Book`).
                Kind::UserBudget(_) | Kind::TeamBudget(_) | Kind::Prices(_) => {}
                Kind::Settings(s) => settings = Some(s),
                Kind::Shares(s) => shares = Some(s),
                Kind::WebSearch(w) => web_search = Some(w),
                Kind::UserSearchProvider(p) => {
                    let provider = crate::websearch::Settings::provider(p)
                        .map_err(|e| SnapshotError::BadSearchProvider(p.id.clone(), e))?;
                    user_search.insert(p.id.clone(), provider);
                }
                Kind::Identity(i) => {
                    for k in &i.signing_keys {
                        let key = jsonwebtoken::DecodingKey::from_ed_components(&k.public_key)
                            .map_err(|_| SnapshotError::BadSigningKey(k.kid.clone()))?;
                        signing_keys.push(SigningKey { kid: k.kid.clone(), key });
                    }
                }
            }
        }
        catalogue.sort_by(|a, b| a.id.cmp(&b.id));
        endpoints.sort_by(|a, b| (a.priority, &a.name, &a.id).cmp(&(b.priority, &b.name, &b.id)));
        let nonempty = |v: &str| (!v.trim().is_empty()).then(|| v.trim().to_owned());
        let default_settings = pb::GatewaySettings::default();
        let settings = settings.unwrap_or(&default_settings);
        let mut by_scope: [HashMap<Box<str>, crate::ratelimit::Limits>; 3] = Default::default();
        let mut dataplane_count = 1;
        if let Some(s) = shares {
            dataplane_count = s.dataplane_count.max(1);
            for sh in &s.shares {
                let index = match pb::LimitScope::try_from(sh.scope) {
                    Ok(pb::LimitScope::Key) => 0,
                    Ok(pb::LimitScope::User) => 1,
                    Ok(pb::LimitScope::Team) => 2,
                    _ => continue,
                };
                by_scope[index].insert(sh.id.as_str().into(), crate::ratelimit::Limits { rpm: sh.rpm, tpm: sh.tpm });
            }
        }
        Ok(RuntimeConfig {
            version: set.revision,
            keys,
            keys_by_id,
            signing_keys,
            mappings,
            catalogue,
            endpoints,
            team_routes,
            routing: crate::routing::Policy::from_pb(settings.routing.as_ref()),
            routes: std::sync::OnceLock::new(),
            geo: nonempty(&settings.geo),
            limits: Limits::from_pb(settings.limits.as_ref()),
            extra_betas: settings.extra_betas.iter().map(|b| b.trim().to_owned()).filter(|b| !b.is_empty()).collect(),
            user_limits,
            team_limits,
            dataplane_count,
            shares: by_scope,
            web_search: crate::websearch::Settings::from_pb(web_search, user_search)
                .map_err(|e| SnapshotError::BadSearchProvider(String::new(), e))?,
        })
    }

    pub fn key(&self, hash: &KeyHash) -> Option<&Arc<KeyEntry>> {
        self.keys.get(hash)
    }

    pub fn key_by_id(&self, id: &str) -> Option<&Arc<KeyEntry>> {
        self.keys_by_id.get(id)
    }

    pub fn signing_key(&self, kid: &str) -> Option<&SigningKey> {
        self.signing_keys.iter().find(|k| k.kid == kid)
    }

    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// What this data plane enforces of a subject's fleet-wide `limits`:
    /// its explicit share, else `ceil(limit / dataplane_count)`; 0 stays 0
    /// (unlimited).
    pub fn plane_limits(
        &self,
        scope: crate::ratelimit::Scope,
        id: &str,
        limits: crate::ratelimit::Limits,
    ) -> crate::ratelimit::Limits {
        let n = u64::from(self.dataplane_count.max(1));
        let mut out = crate::ratelimit::Limits { rpm: limits.rpm.div_ceil(n), tpm: limits.tpm.div_ceil(n) };
        let Some(index) = scope_index(scope) else { return out };
        let map = &self.shares[index];
        if !map.is_empty() {
            if let Some(share) = map.get(id) {
                if limits.rpm > 0 && share.rpm > 0 {
                    out.rpm = share.rpm;
                }
                if limits.tpm > 0 && share.tpm > 0 {
                    out.tpm = share.tpm;
                }
            }
        }
        out
    }
}

fn parse_hash(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn snapshot(json: &str) -> Result<RuntimeConfig, SnapshotError> {
        RuntimeConfig::from_json(json.as_bytes())
    }

    #[test]
    fn proto3_json_snapshot_is_indexed_by_key_hash() {
        let cfg = snapshot(&format!(
            r#"{{"version":"7","keys":[{{"id":"k1","sha256":"{HASH}","status":"KEY_STATUS_ACTIVE","userId":"u1"}}]}}"#
        ))
        .unwrap();
        assert_eq!(cfg.version, 7);
        let mut h = [0u8; 32];
        hex::decode_to_slice(HASH, &mut h).unwrap();
        let k = cfg.key(&KeyHash(h)).unwrap();
        assert!(k.active);
        assert_eq!(k.user_id, "u1");
    }

    #[test]
    fn key_without_active_status_is_inactive() {
        let cfg = snapshot(&format!(r#"{{"keys":[{{"id":"k1","sha256":"{HASH}","status":"KEY_STATUS_REVOKED"}}]}}"#))
            .unwrap();
        let mut h = [0u8; 32];
        hex::decode_to_slice(HASH, &mut h).unwrap();
        assert!(!cfg.key(&KeyHash(h)).unwrap().active);
    }

    #[test]
    fn malformed_key_hash_is_rejected() {
        let err = snapshot(r#"{"keys":[{"id":"k1","sha256":"abc"}]}"#).unwrap_err();
        assert!(matches!(err, SnapshotError::BadKeyHash { .. }));
    }

    #[test]
    fn duplicate_key_hash_is_rejected() {
        let err = snapshot(&format!(r#"{{"keys":[{{"id":"a","sha256":"{HASH}"}},{{"id":"b","sha256":"{HASH}"}}]}}"#))
            .unwrap_err();
        assert!(matches!(err, SnapshotError::DuplicateKey { .. }));
    }

    #[test]
    fn zero_limits_fall_back_to_defaults() {
        let cfg = snapshot(r#"{"limits":{"pingIntervalMs":250}}"#).unwrap();
        assert_eq!(cfg.limits.ping_interval, Duration::from_millis(250));
        assert_eq!(cfg.limits.max_body_bytes, Limits::default().max_body_bytes);
    }

    #[test]
    fn stale_snapshot_is_refused_by_the_store() {
        let store = super::super::ConfigStore::default();
        store.install(snapshot(r#"{"version":"5"}"#).unwrap()).unwrap();
        let err = store.install(snapshot(r#"{"version":"4"}"#).unwrap()).unwrap_err();
        assert!(matches!(err, SnapshotError::Stale { offered: 4, held: 5 }));
        assert_eq!(store.get().unwrap().version, 5);
    }
}
