//! The configuration as typed resources, held in memory by each replica,
//! with the revision at which each last changed.
//!
//! Deltas are read off an index ordered by version, so a data plane that
//! is one change behind costs the resources of that change, whatever the
//! size of the whole state. Removed resources leave a tombstone carrying the
//! revision of their removal; tombstones are kept up to a bound, and a data
//! plane that is further behind than the oldest one kept (`horizon`) is sent
//! the full state instead.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use ccag_proto::config::v1::{resource::Kind, Resource, ResourceRef, ResourceType};

/// Tombstones kept; past this, the oldest half goes and the horizon moves.
const MAX_TOMBSTONES: usize = 10_000;

pub type Name = (ResourceType, String);

/// A resource's type and name, from its content.
pub fn name_of(r: &Resource) -> Option<Name> {
    Some(match r.kind.as_ref()? {
        Kind::Key(k) => (ResourceType::Key, k.id.clone()),
        Kind::UserLimit(l) => (ResourceType::UserLimit, l.id.clone()),
        Kind::TeamLimit(l) => (ResourceType::TeamLimit, l.id.clone()),
        Kind::Model(m) => (ResourceType::Model, m.anthropic_id.clone()),
        Kind::Endpoint(e) => (ResourceType::Endpoint, e.id.clone()),
        Kind::Settings(_) => (ResourceType::Settings, String::new()),
        Kind::Shares(_) => (ResourceType::Shares, String::new()),
        Kind::UserBudget(v) => (ResourceType::UserBudget, v.id.clone()),
        Kind::TeamBudget(v) => (ResourceType::TeamBudget, v.id.clone()),
        Kind::Prices(_) => (ResourceType::Prices, String::new()),
        Kind::Identity(_) => (ResourceType::Identity, String::new()),
        Kind::WebSearch(_) => (ResourceType::WebSearch, String::new()),
        Kind::UserSearchProvider(p) => (ResourceType::UserSearchProvider, p.id.clone()),
        Kind::TeamRouting(t) => (ResourceType::TeamRouting, t.id.clone()),
    })
}

struct Entry {
    version: u64,
    /// `None`: removed at `version` (a tombstone).
    resource: Option<Arc<Resource>>,
}

/// What a data plane lacks.
pub struct Delta {
    pub resources: Vec<Arc<Resource>>,
    pub removed: Vec<ResourceRef>,
}

impl Delta {
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty() && self.removed.is_empty()
    }
}

#[derive(Default)]
pub struct State {
    pub epoch: String,
    pub revision: u64,
    entries: HashMap<Name, Entry>,
    /// (version, type, name) of every entry, live or tombstone.
    by_version: BTreeSet<(u64, i32, String)>,
    tombstones: usize,
    /// Deltas from any revision at or after this one are complete.
    horizon: u64,
}

impl State {
    pub fn new(epoch: String, revision: u64) -> Self {
        State { epoch, revision, horizon: revision, ..Default::default() }
    }

    pub fn get(&self, t: ResourceType, name: &str) -> Option<&Arc<Resource>> {
        // The owned key is needed by HashMap's tuple key; lookups are rare
        // (the share computation), not per data plane.
        self.entries.get(&(t, name.to_owned())).and_then(|e| e.resource.as_ref())
    }

    pub fn live(&self) -> impl Iterator<Item = &Arc<Resource>> {
        self.entries.values().filter_map(|e| e.resource.as_ref())
    }

    pub fn len(&self) -> usize {
        self.entries.len() - self.tombstones
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn set(&mut self, name: Name, version: u64, resource: Option<Arc<Resource>>) {
        let ty = name.0 as i32;
        if let Some(old) = self.entries.get(&name) {
            self.by_version.remove(&(old.version, ty, name.1.clone()));
            if old.resource.is_none() {
                self.tombstones -= 1;
            }
        }
        if resource.is_none() {
            self.tombstones += 1;
        }
        self.by_version.insert((version, ty, name.1.clone()));
        self.entries.insert(name, Entry { version, resource });
    }

    /// Applies the resources loaded at `revision` for the names in
    /// `touched`: a touched name with no resource is removed. Unchanged
    /// resources keep their version. Returns how many changed.
    pub fn apply(&mut self, revision: u64, touched: Vec<Name>, mut loaded: HashMap<Name, Resource>) -> usize {
        let mut changed = 0;
        let mut seen = std::collections::HashSet::with_capacity(touched.len());
        for name in touched {
            if !seen.insert(name.clone()) {
                continue;
            }
            let next = loaded.remove(&name);
            let current = self.entries.get(&name).and_then(|e| e.resource.as_deref());
            match (current, next) {
                (Some(c), Some(n)) if *c == n => {}
                (None, None) => {}
                (_, Some(n)) => {
                    self.set(name, revision, Some(Arc::new(n)));
                    changed += 1;
                }
                (Some(_), None) => {
                    self.set(name, revision, None);
                    changed += 1;
                }
            }
        }
        self.revision = self.revision.max(revision);
        self.prune();
        changed
    }

    /// Replaces the whole state with `all`, as loaded at `revision`:
    /// anything not in it is removed. Returns how many changed.
    pub fn replace(&mut self, revision: u64, all: HashMap<Name, Resource>) -> usize {
        let mut touched: Vec<Name> =
            self.entries.iter().filter(|(_, e)| e.resource.is_some()).map(|(n, _)| n.clone()).collect();
        touched.extend(all.keys().filter(|n| self.entries.get(*n).is_none_or(|e| e.resource.is_none())).cloned());
        let changed = self.apply(revision, touched, all);
        self.revision = revision;
        changed
    }

    /// Starts a new epoch: nothing of the old one carries over, so every
    /// data plane of the old epoch gets the full state.
    pub fn reset(&mut self, epoch: String, revision: u64, all: HashMap<Name, Resource>) {
        *self = State::new(epoch, revision);
        for (name, r) in all {
            self.set(name, revision, Some(Arc::new(r)));
        }
    }

    /// What changed after `from`, or `None` when that is beyond what the
    /// kept tombstones can tell (send the full state).
    pub fn delta_since(&self, from: u64) -> Option<Delta> {
        if from < self.horizon {
            return None;
        }
        let mut d = Delta { resources: Vec::new(), removed: Vec::new() };
        for (_, ty, name) in self.by_version.range((from + 1, i32::MIN, String::new())..) {
            let t = ResourceType::try_from(*ty).unwrap_or(ResourceType::Unspecified);
            match self.entries.get(&(t, name.clone())).and_then(|e| e.resource.clone()) {
                Some(r) => d.resources.push(r),
                None => d.removed.push(ResourceRef { r#type: *ty, name: name.clone() }),
            }
        }
        Some(d)
    }

    pub fn full(&self) -> Vec<Arc<Resource>> {
        self.live().cloned().collect()
    }

    fn prune(&mut self) {
        if self.tombstones <= MAX_TOMBSTONES {
            return;
        }
        let mut drop = self.tombstones / 2;
        let mut dead = Vec::new();
        for (v, ty, name) in &self.by_version {
            if drop == 0 {
                break;
            }
            let t = ResourceType::try_from(*ty).unwrap_or(ResourceType::Unspecified);
            if self.entries.get(&(t, name.clone())).is_some_and(|e| e.resource.is_none()) {
                dead.push((*v, *ty, name.clone()));
                drop -= 1;
            }
        }
        for (v, ty, name) in dead {
            self.horizon = self.horizon.max(v);
            self.by_version.remove(&(v, ty, name.clone()));
            let t = ResourceType::try_from(ty).unwrap_or(ResourceType::Unspecified);
            self.entries.remove(&(t, name));
            self.tombstones -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccag_proto::config::v1::ApiKey;

    fn key(id: &str, name: &str) -> Resource {
        Resource {
            version: 0,
            kind: Some(Kind::Key(ApiKey { id: id.into(), name: name.into(), ..Default::default() })),
        }
    }

    fn named(rs: Vec<Resource>) -> HashMap<Name, Resource> {
        rs.into_iter().map(|r| (name_of(&r).unwrap(), r)).collect()
    }

    fn kname(id: &str) -> Name {
        (ResourceType::Key, id.into())
    }

    fn ids(d: &Delta) -> Vec<String> {
        let mut v: Vec<String> = d.resources.iter().map(|r| name_of(r).unwrap().1).collect();
        v.sort();
        v
    }

    #[test]
    fn a_delta_holds_only_what_changed_after_the_given_revision() {
        let mut s = State::new("e".into(), 0);
        s.replace(1, named(vec![key("a", "a"), key("b", "b")]));
        s.apply(2, vec![kname("b")], named(vec![key("b", "b2")]));
        assert_eq!(ids(&s.delta_since(1).unwrap()), vec!["b"]);
        assert_eq!(ids(&s.delta_since(0).unwrap()), vec!["a", "b"]);
        assert!(s.delta_since(2).unwrap().is_empty());
    }

    #[test]
    fn a_name_touched_twice_is_applied_once() {
        let mut s = State::new("e".into(), 0);
        assert_eq!(s.apply(1, vec![kname("a"), kname("a")], named(vec![key("a", "a")])), 1);
        assert_eq!(ids(&s.delta_since(0).unwrap()), vec!["a"]);
    }

    #[test]
    fn an_unchanged_resource_keeps_its_version() {
        let mut s = State::new("e".into(), 0);
        s.replace(1, named(vec![key("a", "a")]));
        assert_eq!(s.apply(2, vec![kname("a")], named(vec![key("a", "a")])), 0);
        assert!(s.delta_since(1).unwrap().is_empty());
        assert_eq!(s.revision, 2);
    }

    #[test]
    fn a_removal_is_sent_as_a_tombstone() {
        let mut s = State::new("e".into(), 0);
        s.replace(1, named(vec![key("a", "a"), key("b", "b")]));
        s.apply(2, vec![kname("a")], HashMap::new());
        let d = s.delta_since(1).unwrap();
        assert!(d.resources.is_empty());
        assert_eq!(d.removed, vec![ResourceRef { r#type: ResourceType::Key as i32, name: "a".into() }]);
        assert_eq!(s.len(), 1);
        assert_eq!(s.full().len(), 1);
    }

    #[test]
    fn replace_removes_what_is_gone_and_adds_what_is_new() {
        let mut s = State::new("e".into(), 0);
        s.replace(1, named(vec![key("a", "a"), key("b", "b")]));
        s.replace(2, named(vec![key("b", "b"), key("c", "c")]));
        let d = s.delta_since(1).unwrap();
        assert_eq!(ids(&d), vec!["c"]);
        assert_eq!(d.removed.len(), 1);
    }

    #[test]
    fn beyond_the_kept_tombstones_only_a_full_state_will_do() {
        let mut s = State::new("e".into(), 0);
        let n = MAX_TOMBSTONES + 1;
        s.replace(1, named((0..n).map(|i| key(&i.to_string(), "k")).collect()));
        for i in 0..n {
            s.apply(2 + i as u64, vec![kname(&i.to_string())], HashMap::new());
        }
        assert!(s.delta_since(1).is_none(), "the oldest tombstones are gone");
        assert!(s.delta_since(s.revision - 10).is_some());
    }

    #[test]
    fn reset_starts_an_epoch_from_which_no_old_revision_can_catch_up() {
        let mut s = State::new("e1".into(), 0);
        s.replace(5, named(vec![key("a", "a")]));
        s.reset("e2".into(), 3, named(vec![key("b", "b")]));
        assert_eq!((s.epoch.as_str(), s.revision), ("e2", 3));
        assert!(s.delta_since(1).is_none());
        assert_eq!(s.full().len(), 1);
    }
}
