//! The resources a data plane holds, and applying the control plane's
//! responses to them.
//!
//! A response is checked whole before anything changes: a delta for another
//! epoch or to an older revision, a resource of a type this build does not
//! know, or one without its name is refused, and the set stays as it was.
//! What can only be judged on the whole set (two keys with one hash) is
//! judged when the runtime configuration is built from it; the caller then
//! takes the change back with the `Undo` that `apply` returned.

use std::collections::HashMap;

use ccag_proto::config::v1::{self as pb, resource::Kind, PersistedState, Resource, ResourceType, WatchResponse};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeltaError {
    #[error("delta for epoch {offered:?}, but the data plane holds epoch {held:?}; a full state is needed")]
    OtherEpoch { offered: String, held: String },
    #[error("revision went backwards: offered {offered}, held {held}")]
    Backwards { offered: u64, held: u64 },
    #[error("delta applies on top of revision {base}, but the data plane holds {held}; a full state is needed")]
    OtherBase { base: u64, held: u64 },
    #[error("resource {index}: of a type this data plane does not know")]
    UnknownType { index: usize },
    #[error("removal {index}: of a type this data plane does not know ({ty})")]
    UnknownRemoval { index: usize, ty: i32 },
    #[error("resource {index}: {ty:?} without a name")]
    Unnamed { index: usize, ty: ResourceType },
}

/// (resource type, name).
pub type Name = (i32, String);

pub fn name_of(kind: &Kind) -> (ResourceType, &str) {
    match kind {
        Kind::Key(k) => (ResourceType::Key, &k.id),
        Kind::UserLimit(l) => (ResourceType::UserLimit, &l.id),
        Kind::TeamLimit(l) => (ResourceType::TeamLimit, &l.id),
        Kind::Model(m) => (ResourceType::Model, &m.anthropic_id),
        Kind::Endpoint(e) => (ResourceType::Endpoint, &e.id),
        Kind::Settings(_) => (ResourceType::Settings, ""),
        Kind::Shares(_) => (ResourceType::Shares, ""),
        Kind::UserBudget(v) => (ResourceType::UserBudget, &v.id),
        Kind::TeamBudget(v) => (ResourceType::TeamBudget, &v.id),
        Kind::Prices(_) => (ResourceType::Prices, ""),
        Kind::Identity(_) => (ResourceType::Identity, ""),
        Kind::WebSearch(_) => (ResourceType::WebSearch, ""),
        Kind::UserSearchProvider(p) => (ResourceType::UserSearchProvider, &p.id),
        Kind::TeamRouting(t) => (ResourceType::TeamRouting, &t.id),
    }
}

fn singleton(t: ResourceType) -> bool {
    matches!(
        t,
        ResourceType::Settings
            | ResourceType::Shares
            | ResourceType::Prices
            | ResourceType::Identity
            | ResourceType::WebSearch
    )
}

#[derive(Debug, Default, Clone)]
pub struct ResourceSet {
    pub epoch: String,
    pub revision: u64,
    items: HashMap<Name, Kind>,
}

/// Takes an applied response back.
#[derive(Debug)]
pub enum Undo {
    Full(Box<ResourceSet>),
    Delta { epoch: String, revision: u64, previous: Vec<(Name, Option<Kind>)> },
}

impl ResourceSet {
    pub fn kinds(&self) -> impl Iterator<Item = &Kind> {
        self.items.values()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Checks `r` whole, then applies it.
    pub fn apply(&mut self, r: WatchResponse) -> Result<Undo, DeltaError> {
        if !r.full_state {
            if r.epoch != self.epoch {
                return Err(DeltaError::OtherEpoch { offered: r.epoch, held: self.epoch.clone() });
            }
            if r.revision < self.revision {
                return Err(DeltaError::Backwards { offered: r.revision, held: self.revision });
            }
            if r.base_revision != self.revision {
                return Err(DeltaError::OtherBase { base: r.base_revision, held: self.revision });
            }
        }
        let mut upserts = Vec::with_capacity(r.resources.len());
        for (index, res) in r.resources.into_iter().enumerate() {
            let kind = res.kind.ok_or(DeltaError::UnknownType { index })?;
            let (ty, name) = name_of(&kind);
            if name.is_empty() && !singleton(ty) {
                return Err(DeltaError::Unnamed { index, ty });
            }
            upserts.push(((ty as i32, name.to_owned()), kind));
        }
        let mut removals = Vec::with_capacity(r.removed.len());
        for (index, rm) in r.removed.into_iter().enumerate() {
            match ResourceType::try_from(rm.r#type) {
                Ok(ResourceType::Unspecified) | Err(_) => {
                    return Err(DeltaError::UnknownRemoval { index, ty: rm.r#type })
                }
                Ok(t) => removals.push((t as i32, rm.name)),
            }
        }
        if r.full_state {
            let next = ResourceSet { epoch: r.epoch, revision: r.revision, items: upserts.into_iter().collect() };
            return Ok(Undo::Full(Box::new(std::mem::replace(self, next))));
        }
        let mut previous = Vec::with_capacity(upserts.len() + removals.len());
        for (name, kind) in upserts {
            let old = self.items.insert(name.clone(), kind);
            previous.push((name, old));
        }
        for name in removals {
            let old = self.items.remove(&name);
            previous.push((name, old));
        }
        let undo = Undo::Delta { epoch: self.epoch.clone(), revision: self.revision, previous };
        self.revision = r.revision;
        Ok(undo)
    }

    pub fn undo(&mut self, u: Undo) {
        match u {
            Undo::Full(old) => *self = *old,
            Undo::Delta { epoch, revision, previous } => {
                for (name, old) in previous.into_iter().rev() {
                    match old {
                        Some(k) => self.items.insert(name, k),
                        None => self.items.remove(&name),
                    };
                }
                self.epoch = epoch;
                self.revision = revision;
            }
        }
    }

    pub fn to_persisted(&self) -> PersistedState {
        PersistedState {
            epoch: self.epoch.clone(),
            revision: self.revision,
            resources: self.items.values().map(|k| Resource { version: 0, kind: Some(k.clone()) }).collect(),
        }
    }

    pub fn from_persisted(p: PersistedState) -> Result<Self, DeltaError> {
        let mut set = ResourceSet::default();
        set.apply(WatchResponse {
            nonce: String::new(),
            epoch: p.epoch,
            revision: p.revision,
            full_state: true,
            resources: p.resources,
            removed: Vec::new(),
            base_revision: 0,
        })?;
        Ok(set)
    }

    /// A whole snapshot (the file format) as resources.
    pub fn from_snapshot(s: pb::Snapshot) -> Self {
        let mut items: HashMap<Name, Kind> = HashMap::new();
        let mut put = |k: Kind| {
            let (ty, name) = name_of(&k);
            items.insert((ty as i32, name.to_owned()), k);
        };
        for k in s.keys {
            put(Kind::Key(k));
        }
        if let Some(i) = s.identity {
            put(Kind::Identity(i));
        }
        if let Some(w) = s.web_search {
            put(Kind::WebSearch(w));
        }
        for p in s.user_search_providers {
            put(Kind::UserSearchProvider(p));
        }
        for l in s.user_limits {
            put(Kind::UserLimit(l));
        }
        for l in s.team_limits {
            put(Kind::TeamLimit(l));
        }
        let mut models: HashMap<String, pb::ModelEntry> = HashMap::new();
        for m in s.model_mappings {
            let e = models.entry(m.anthropic_id.clone()).or_default();
            e.anthropic_id = m.anthropic_id;
            e.bedrock_id = m.bedrock_id;
        }
        for m in s.models {
            let e = models.entry(m.id.clone()).or_default();
            e.anthropic_id = m.id;
            e.listed = true;
            e.display_name = m.display_name;
            e.created_at = m.created_at;
            e.description = m.description;
        }
        for m in models.into_values() {
            put(Kind::Model(m));
        }
        let routing = s.routing.unwrap_or_default();
        if s.endpoints.is_empty() && !routing.region.trim().is_empty() {
            put(Kind::Endpoint(pb::Endpoint {
                id: "snapshot".into(),
                name: "snapshot".into(),
                region: routing.region,
                enabled: true,
                ..Default::default()
            }));
        }
        for e in s.endpoints {
            put(Kind::Endpoint(e));
        }
        for t in s.team_routing {
            put(Kind::TeamRouting(t));
        }
        put(Kind::Settings(pb::GatewaySettings {
            geo: routing.geo,
            limits: s.limits,
            extra_betas: s.extra_betas,
            routing: routing.policy,
        }));
        put(Kind::Shares(pb::LimitShares { dataplane_count: s.dataplane_count, shares: Vec::new() }));
        ResourceSet { epoch: String::new(), revision: s.version, items }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccag_proto::config::v1::{ApiKey, ResourceRef};

    fn key(id: &str) -> Resource {
        Resource { version: 1, kind: Some(Kind::Key(ApiKey { id: id.into(), ..Default::default() })) }
    }

    fn resp(
        epoch: &str,
        revision: u64,
        full: bool,
        resources: Vec<Resource>,
        removed: Vec<ResourceRef>,
    ) -> WatchResponse {
        // Deltas are based on revision 5, what `held` holds.
        WatchResponse {
            nonce: "1".into(),
            epoch: epoch.into(),
            revision,
            full_state: full,
            resources,
            removed,
            base_revision: 5,
        }
    }

    fn ids(s: &ResourceSet) -> Vec<String> {
        let mut v: Vec<String> = s.items.keys().map(|(_, n)| n.clone()).collect();
        v.sort();
        v
    }

    fn held(keys: &[&str]) -> ResourceSet {
        let mut s = ResourceSet::default();
        s.apply(resp("e", 5, true, keys.iter().map(|k| key(k)).collect(), vec![])).unwrap();
        s
    }

    #[test]
    fn a_full_state_replaces_everything() {
        let mut s = held(&["a", "b"]);
        s.apply(resp("e2", 1, true, vec![key("c")], vec![])).unwrap();
        assert_eq!(ids(&s), vec!["c"]);
        assert_eq!((s.epoch.as_str(), s.revision), ("e2", 1));
    }

    #[test]
    fn a_delta_adds_replaces_and_removes() {
        let mut s = held(&["a", "b"]);
        let rm = ResourceRef { r#type: ResourceType::Key as i32, name: "a".into() };
        s.apply(resp("e", 6, false, vec![key("c")], vec![rm])).unwrap();
        assert_eq!(ids(&s), vec!["b", "c"]);
        assert_eq!(s.revision, 6);
    }

    #[test]
    fn a_delta_to_an_older_revision_is_refused_and_changes_nothing() {
        let mut s = held(&["a"]);
        let e = s.apply(resp("e", 4, false, vec![key("z")], vec![])).unwrap_err();
        assert_eq!(e, DeltaError::Backwards { offered: 4, held: 5 });
        assert_eq!((ids(&s), s.revision), (vec!["a".to_string()], 5));
    }

    #[test]
    fn a_delta_on_top_of_another_revision_is_refused() {
        let mut s = held(&["a"]);
        let mut r = resp("e", 7, false, vec![key("b")], vec![]);
        r.base_revision = 6;
        assert_eq!(s.apply(r).unwrap_err(), DeltaError::OtherBase { base: 6, held: 5 });
        assert_eq!(ids(&s), vec!["a"]);
    }

    #[test]
    fn a_delta_of_another_epoch_is_refused() {
        let mut s = held(&["a"]);
        assert!(matches!(s.apply(resp("other", 9, false, vec![], vec![])), Err(DeltaError::OtherEpoch { .. })));
    }

    #[test]
    fn an_unknown_resource_type_refuses_the_whole_response() {
        let mut s = held(&["a"]);
        let unknown = Resource { version: 1, kind: None };
        let e = s.apply(resp("e", 6, false, vec![key("b"), unknown], vec![])).unwrap_err();
        assert_eq!(e, DeltaError::UnknownType { index: 1 });
        assert_eq!(ids(&s), vec!["a"]);
        let rm = ResourceRef { r#type: 99, name: "a".into() };
        assert!(matches!(s.apply(resp("e", 6, false, vec![], vec![rm])), Err(DeltaError::UnknownRemoval { .. })));
    }

    #[test]
    fn a_key_without_a_name_is_refused() {
        let mut s = held(&[]);
        assert!(matches!(s.apply(resp("e", 6, false, vec![key("")], vec![])), Err(DeltaError::Unnamed { .. })));
    }

    #[test]
    fn undo_restores_what_a_delta_changed() {
        let mut s = held(&["a", "b"]);
        let rm = ResourceRef { r#type: ResourceType::Key as i32, name: "a".into() };
        let u = s.apply(resp("e", 6, false, vec![key("c")], vec![rm])).unwrap();
        s.undo(u);
        assert_eq!((ids(&s), s.revision), (vec!["a".to_string(), "b".to_string()], 5));
        let u = s.apply(resp("x", 1, true, vec![], vec![])).unwrap();
        s.undo(u);
        assert_eq!((ids(&s), s.epoch.as_str()), (vec!["a".to_string(), "b".to_string()], "e"));
    }

    #[test]
    fn the_persisted_form_round_trips() {
        let s = held(&["a", "b"]);
        let back = ResourceSet::from_persisted(s.to_persisted()).unwrap();
        assert_eq!((ids(&back), back.revision, back.epoch.as_str()), (ids(&s), 5, "e"));
    }
}
