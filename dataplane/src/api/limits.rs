//! Which subjects a request counts against, with the limits this data plane
//! enforces for each (the headers are `http::ratelimit_headers`).

use crate::config::{KeyEntry, RuntimeConfig};
use crate::ratelimit::{Limits, Scope, Subject};

/// A request counts against its key, its user and its team, and a shaped
/// budget's reduced rate: at most four subjects, held without allocating.
pub struct Subjects<'a> {
    items: [Subject<'a>; 4],
    len: usize,
}

impl<'a> Subjects<'a> {
    /// Each subject with the limits this data plane enforces (its share).
    pub fn of(cfg: &'a RuntimeConfig, key: &'a KeyEntry) -> Self {
        let none = Subject { scope: Scope::Key, id: "", limits: Limits::UNLIMITED };
        let mut s = Subjects { items: [none; 4], len: 0 };
        s.push(cfg, Scope::Key, &key.id, key.limits);
        if let Some(l) = cfg.user_limits.get(&key.user_id) {
            s.push(cfg, Scope::User, &key.user_id, *l);
        }
        if !key.team_id.is_empty() {
            if let Some(l) = cfg.team_limits.get(&key.team_id) {
                s.push(cfg, Scope::Team, &key.team_id, *l);
            }
        }
        s
    }

    fn push(&mut self, cfg: &RuntimeConfig, scope: Scope, id: &'a str, limits: Limits) {
        if !limits.is_unlimited() {
            self.items[self.len] = Subject { scope, id, limits: cfg.plane_limits(scope, id, limits) };
            self.len += 1;
        }
    }

    /// A budget past its shaping threshold: `rpm` across the fleet for the
    /// subject `id` (a user's or a team's), split evenly between data planes.
    pub fn shape(&mut self, id: &'a str, rpm: u64) {
        self.items[self.len] = Subject { scope: Scope::Shape, id, limits: Limits { rpm, tpm: 0 } };
        self.len += 1;
    }

    pub fn as_slice(&self) -> &[Subject<'a>] {
        &self.items[..self.len]
    }

    /// Token limits of key, user and team, carried by the usage record so
    /// that its tokens are charged once they are known.
    pub fn tpm(&self) -> [u64; 3] {
        let mut out = [0; 3];
        for s in self.as_slice() {
            let i = match s.scope {
                Scope::Key => 0,
                Scope::User => 1,
                Scope::Team => 2,
                Scope::Shape => continue,
            };
            out[i] = s.limits.tpm;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_limited_subjects_are_counted() {
        let cfg = RuntimeConfig::from_json(
            br#"{"userLimits":[{"id":"u1","rpm":"5"}],"teamLimits":[{"id":"t9","tpm":"100"}]}"#,
        )
        .unwrap();
        let key = KeyEntry {
            id: "k1".into(),
            name: String::new(),
            user_id: "u1".into(),
            user_email: String::new(),
            team_id: "t1".into(),
            active: true,
            expires_at: None,
            limits: Limits::UNLIMITED,
        };
        let s = Subjects::of(&cfg, &key);
        assert_eq!(s.as_slice().len(), 1);
        assert_eq!(s.as_slice()[0].scope, Scope::User);
        assert_eq!(s.tpm(), [0, 0, 0]);
    }
}
