//! Applying the rate limiter to a request: which subjects it counts against,
//! the 429 when one is exhausted, and the `anthropic-ratelimit-*` headers.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue};

use crate::config::{KeyEntry, RuntimeConfig};
use crate::ratelimit::{Admitted, Budget, Limits, Scope, Subject};

/// A request counts against its key, its user and its team: at most three
/// subjects, held without allocating.
pub struct Subjects<'a> {
    items: [Subject<'a>; 3],
    len: usize,
}

impl<'a> Subjects<'a> {
    /// Each subject with the limits this data plane enforces (its share).
    pub fn of(cfg: &'a RuntimeConfig, key: &'a KeyEntry) -> Self {
        let none = Subject { scope: Scope::Key, id: "", limits: Limits::UNLIMITED };
        let mut s = Subjects { items: [none; 3], len: 0 };
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
            };
            out[i] = s.limits.tpm;
        }
        out
    }
}

pub fn add_headers(h: &mut HeaderMap, a: &Admitted) {
    budget_headers(h, "requests", a.requests.as_ref());
    budget_headers(h, "tokens", a.tokens.as_ref());
}

pub fn budget_headers(h: &mut HeaderMap, dim: &'static str, b: Option<&Budget>) {
    let Some(b) = b else { return };
    let (limit, remaining, reset) = match dim {
        "requests" => (
            "anthropic-ratelimit-requests-limit",
            "anthropic-ratelimit-requests-remaining",
            "anthropic-ratelimit-requests-reset",
        ),
        _ => (
            "anthropic-ratelimit-tokens-limit",
            "anthropic-ratelimit-tokens-remaining",
            "anthropic-ratelimit-tokens-reset",
        ),
    };
    h.insert(limit, HeaderValue::from(b.limit));
    h.insert(remaining, HeaderValue::from(b.remaining));
    let at = SystemTime::now() + Duration::from_secs(b.reset_secs);
    if let Ok(v) = HeaderValue::from_str(&rfc3339(at)) {
        h.insert(reset, v);
    }
}

/// `2026-11-27T09:00:00Z`, the form Anthropic uses for `*-reset`.
fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_770_000);
        assert_eq!(rfc3339(t), "2026-11-27T09:00:00Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }

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
