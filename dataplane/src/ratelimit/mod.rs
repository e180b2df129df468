//! Requests-per-minute (RPM) and tokens-per-minute (TPM) limits per key, per
//! user and per team, enforced on the hot path.
//!
//! # Algorithm
//!
//! A "sliding window counter": each subject keeps the counts of the current
//! fixed one-minute window and of the one before it, and estimates the last
//! 60 seconds as `prev * (1 - elapsed_fraction) + cur`. Windows are minute
//! indices counted from a fixed `Instant` (the limiter's epoch), so they need
//! no timer. A window that ends with no traffic in the next one is forgotten
//! entirely (after 120 s of silence the estimate is zero).
//!
//! * Requests: [`Limiter::admit`] refuses when `estimate + 1 > rpm`; the check
//!   and the count are one `compare_exchange`, so concurrent callers never
//!   admit more than the limit within a window.
//! * Tokens: usage is only known after the response, so [`Limiter::charge`]
//!   adds it afterwards and `admit` refuses when `estimate >= tpm`. A request
//!   is admitted while any budget is left; its own tokens may overshoot.
//!
//! A request is admitted only if every subject (key, user, team) allows it;
//! when one refuses, the requests already counted against the others are
//! taken back, so a refused request costs nobody anything.
//!
//! # Concurrency and memory
//!
//! Counters live in one `DashMap` per scope (so ids never collide across
//! scopes), keyed by `Box<str>` and looked up by `&str`: an existing counter
//! costs a hash and a shard read lock, no allocation; only a subject's first
//! request allocates its key. A shard guard is never held while another
//! lookup is made, and the API is synchronous, so nothing is held across an
//! `await`. Inside a counter everything is an atomic; the window roll-over
//! is won by one `compare_exchange` on the window index and the losers just
//! proceed. Races at the roll-over err towards refusing, except right after
//! an idle gap of two windows or more, where a request racing the reset may
//! go uncounted (at most one per concurrent caller, at that instant only).
//!
//! Memory is bounded by the subjects active in the last two minutes:
//! [`Limiter::sweep`], run every minute, drops counters idle for longer.
//! Subjects with no limit at all get no counter.
//!
//! Cost, without a benchmark (none is included): per limited subject, one
//! `SipHash` of the id, one shard read lock, a handful of atomic loads and one
//! successful `compare_exchange` for the request; a refusal additionally
//! re-reads each subject to report the longest wait and the budgets.
//!
//! # Splitting limits between data planes
//!
//! Limits are fleet-wide, but data planes do not talk to each other on the
//! hot path. The caller passes each subject's limits as this data plane
//! enforces them: its share, which the control plane sets by demand (see
//! `RuntimeConfig::plane_limits` and the control plane's `fleet::shares`).
//! When a share changes, counts already made are kept.

mod counter;

use std::fmt;
use std::time::Instant;

use dashmap::mapref::one::Ref;
use dashmap::DashMap;

use counter::{Counter, Snapshot};

/// Whose limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    Key,
    User,
    Team,
    /// A budget past its `shape` threshold: the reduced rate of a user or a
    /// team (ids of the two never collide: they carry their kind's prefix).
    Shape,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Key => "key",
            Scope::User => "user",
            Scope::Team => "team",
            Scope::Shape => "budget",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which limit: requests per minute or tokens per minute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dimension {
    Requests,
    Tokens,
}

impl Dimension {
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Requests => "requests",
            Dimension::Tokens => "tokens",
        }
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A subject's configured limits, per minute, across all data planes.
/// 0 means unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub rpm: u64,
    pub tpm: u64,
}

impl Limits {
    pub const UNLIMITED: Limits = Limits { rpm: 0, tpm: 0 };

    pub fn is_unlimited(&self) -> bool {
        self.rpm == 0 && self.tpm == 0
    }
}

/// One request's subjects and their configured limits (already resolved by the caller).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subject<'a> {
    pub scope: Scope,
    pub id: &'a str,
    pub limits: Limits,
}

/// One dimension's standing for the response headers, as this data plane
/// enforces it (its share of the fleet-wide limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// The limit this data plane enforces: its share of the configured one.
    pub limit: u64,
    /// Whole units left now (for requests: after counting this one).
    pub remaining: u64,
    /// Seconds until the budget is fully replenished if nothing more is
    /// counted (up to 120: the current window's counts still weigh on the
    /// next one).
    pub reset_secs: u64,
}

/// An admitted request: the tightest limited subject for each dimension
/// (least remaining, then smallest limit); `None` when nothing is limited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Admitted {
    pub requests: Option<Budget>,
    pub tokens: Option<Budget>,
}

/// A refused request. Nothing was counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The subject that refused (when several do, the one that frees up last).
    pub scope: Scope,
    pub dimension: Dimension,
    /// The limit this data plane enforces: its share of the configured one.
    pub limit: u64,
    /// Whole seconds, 1 to 60, after which that subject would allow the request.
    pub retry_after_secs: u64,
    /// The tightest budgets as they stand (nothing counted for this request).
    pub requests: Option<Budget>,
    pub tokens: Option<Budget>,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} rate limit of {} {} per minute reached; retry after {} s",
            self.scope, self.limit, self.dimension, self.retry_after_secs
        )
    }
}

impl std::error::Error for Refused {}

/// The per-subject counters of one data plane. `Send + Sync`; share it in an `Arc`.
pub struct Limiter {
    /// Minute 0 starts here.
    epoch: Instant,
    keys: DashMap<Box<str>, Counter>,
    users: DashMap<Box<str>, Counter>,
    teams: DashMap<Box<str>, Counter>,
    shaped: DashMap<Box<str>, Counter>,
}

impl Default for Limiter {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("keys", &self.keys.len())
            .field("users", &self.users.len())
            .field("teams", &self.teams.len())
            .finish()
    }
}

/// Keeps the tighter of two budgets: less remaining, then a smaller limit.
fn tighter(best: &mut Option<Budget>, candidate: Budget) {
    match best {
        Some(b) if (b.remaining, b.limit) <= (candidate.remaining, candidate.limit) => {}
        _ => *best = Some(candidate),
    }
}

fn budget(snap: &Snapshot, limit: u64) -> Budget {
    Budget { limit, remaining: snap.remaining(limit), reset_secs: snap.reset_secs() }
}

/// The first refusal found while admitting: which subject and dimension.
struct Refusal {
    scope: Scope,
    dimension: Dimension,
    limit: u64,
    retry_after_secs: u64,
}

impl Limiter {
    pub fn new() -> Self {
        Limiter {
            epoch: Instant::now(),
            keys: DashMap::new(),
            users: DashMap::new(),
            teams: DashMap::new(),
            shaped: DashMap::new(),
        }
    }

    fn map(&self, scope: Scope) -> &DashMap<Box<str>, Counter> {
        match scope {
            Scope::Key => &self.keys,
            Scope::User => &self.users,
            Scope::Team => &self.teams,
            Scope::Shape => &self.shaped,
        }
    }

    /// Milliseconds since the epoch (0 for an instant before it).
    fn millis(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// The subject's counter, created on first use. The guard holds a shard
    /// read lock: drop it before looking anything else up.
    fn counter(&self, scope: Scope, id: &str, at_ms: u64) -> Ref<'_, Box<str>, Counter> {
        let map = self.map(scope);
        if let Some(c) = map.get(id) {
            return c;
        }
        map.entry(Box::from(id)).or_insert_with(|| Counter::new(at_ms)).downgrade()
    }

    /// Checks every subject against the limits given (this data plane's
    /// share); if all
    /// allow, counts one request against each and returns `Ok(Admitted)`
    /// (which carries what the response headers need); if any refuses,
    /// counts nothing and returns `Err(Refused)`.
    pub fn admit(&self, subjects: &[Subject<'_>], now: Instant) -> Result<Admitted, Refused> {
        let at = self.millis(now);
        let mut admitted = Admitted::default();
        for (i, s) in subjects.iter().enumerate() {
            if s.limits.is_unlimited() {
                continue;
            }
            let (rpm, tpm) = (s.limits.rpm, s.limits.tpm);
            let counter = self.counter(s.scope, s.id, at);
            counter.touch(at);
            let pos = counter.sync(at);
            let mut refusal = None;
            if tpm > 0 {
                let tokens = counter.tokens(pos);
                if tokens.allows(Dimension::Tokens, tpm) {
                    tighter(&mut admitted.tokens, budget(&tokens, tpm));
                } else {
                    refusal = Some(Refusal {
                        scope: s.scope,
                        dimension: Dimension::Tokens,
                        limit: tpm,
                        retry_after_secs: tokens.retry_after_secs(Dimension::Tokens, tpm),
                    });
                }
            }
            if refusal.is_none() && rpm > 0 {
                match counter.try_reserve(pos, rpm) {
                    Ok(after) => tighter(&mut admitted.requests, budget(&after, rpm)),
                    Err(before) => {
                        refusal = Some(Refusal {
                            scope: s.scope,
                            dimension: Dimension::Requests,
                            limit: rpm,
                            retry_after_secs: before.retry_after_secs(Dimension::Requests, rpm),
                        })
                    }
                }
            }
            drop(counter);
            if let Some(first) = refusal {
                self.take_back(&subjects[..i], at);
                return Err(self.refused(subjects, at, first));
            }
        }
        Ok(admitted)
    }

    /// Uncounts the request just counted against each of `subjects` at `at`.
    fn take_back(&self, subjects: &[Subject<'_>], at: u64) {
        for s in subjects.iter().filter(|s| s.limits.rpm > 0) {
            if let Some(c) = self.map(s.scope).get(s.id) {
                c.unreserve(at);
            }
        }
    }

    /// Builds the refusal after everything was taken back: re-reads every
    /// subject (without counting) for the tightest budgets, and names the
    /// refusing subject that frees up last, so that a client retrying after
    /// `retry_after_secs` is not refused again by another subject.
    fn refused(&self, subjects: &[Subject<'_>], at: u64, first: Refusal) -> Refused {
        let mut worst = first;
        let mut requests = None;
        let mut tokens = None;
        for s in subjects.iter().filter(|s| !s.limits.is_unlimited()) {
            let (rpm, tpm) = (s.limits.rpm, s.limits.tpm);
            let zero = Snapshot { elapsed: 0, prev: 0, cur: 0 };
            let (req, tok) = match self.map(s.scope).get(s.id) {
                Some(c) => {
                    let pos = c.sync(at);
                    (c.requests(pos), c.tokens(pos))
                }
                None => (zero, zero),
            };
            for (dimension, limit, snap) in [(Dimension::Requests, rpm, req), (Dimension::Tokens, tpm, tok)] {
                if limit == 0 {
                    continue;
                }
                let slot = match dimension {
                    Dimension::Requests => &mut requests,
                    Dimension::Tokens => &mut tokens,
                };
                tighter(slot, budget(&snap, limit));
                if !snap.allows(dimension, limit) {
                    let retry_after_secs = snap.retry_after_secs(dimension, limit);
                    if retry_after_secs > worst.retry_after_secs {
                        worst = Refusal { scope: s.scope, dimension, limit, retry_after_secs };
                    }
                }
            }
        }
        Refused {
            scope: worst.scope,
            dimension: worst.dimension,
            limit: worst.limit,
            retry_after_secs: worst.retry_after_secs,
            requests,
            tokens,
        }
    }

    /// Charges tokens (input + output) once usage is known, to every subject
    /// with a token limit (others are not tracked).
    pub fn charge(&self, subjects: &[Subject<'_>], tokens: u64, now: Instant) {
        if tokens == 0 {
            return;
        }
        let at = self.millis(now);
        for s in subjects.iter().filter(|s| s.limits.tpm > 0) {
            let counter = self.counter(s.scope, s.id, at);
            counter.touch(at);
            counter.sync(at);
            counter.charge(tokens);
        }
    }

    /// Drops counters idle for more than two windows (call from a background
    /// task every minute) — bounded memory. Their estimate is zero by then,
    /// so nothing is forgotten.
    pub fn sweep(&self, now: Instant) {
        let at = self.millis(now);
        for map in [&self.keys, &self.users, &self.teams, &self.shaped] {
            map.retain(|_, c| c.idle_ms(at) <= 2 * counter::WINDOW_MS);
        }
    }

    /// How many counters are held, across scopes.
    pub fn len(&self) -> usize {
        self.keys.len() + self.users.len() + self.teams.len() + self.shaped.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use super::*;

    /// The instant `ms` milliseconds after the limiter's epoch (minute 0 starts there).
    fn at(l: &Limiter, ms: u64) -> Instant {
        l.epoch + Duration::from_millis(ms)
    }

    fn subject(scope: Scope, id: &str, rpm: u64, tpm: u64) -> Subject<'_> {
        Subject { scope, id, limits: Limits { rpm, tpm } }
    }

    /// Admits `n` requests for `subjects` at `now`, asserting each is admitted.
    fn admit_n(l: &Limiter, subjects: &[Subject<'_>], now: Instant, n: usize) {
        for i in 0..n {
            if let Err(r) = l.admit(subjects, now) {
                panic!("request {i} refused: {r}");
            }
        }
    }

    /// How many of `n` attempts are admitted.
    fn count_admitted(l: &Limiter, subjects: &[Subject<'_>], now: Instant, n: usize) -> usize {
        (0..n).filter(|_| l.admit(subjects, now).is_ok()).count()
    }

    #[test]
    fn allows_up_to_the_limit_then_refuses() {
        let l = Limiter::new();
        let s = [subject(Scope::Key, "k", 5, 0)];
        let now = at(&l, 10_000);
        for expected_remaining in (0..5).rev() {
            let a = l.admit(&s, now).expect("within the limit");
            assert_eq!(a.requests.unwrap().remaining, expected_remaining);
            assert_eq!(a.tokens, None);
        }
        assert!(l.admit(&s, now).is_err());
        assert!(l.admit(&s, now).is_err());
    }

    #[test]
    fn unlimited_never_refuses() {
        let l = Limiter::new();
        let s = [subject(Scope::Key, "k", 0, 0), subject(Scope::User, "u", 0, 0), subject(Scope::Team, "t", 0, 0)];
        for i in 0..10_000 {
            let now = at(&l, i);
            assert_eq!(l.admit(&s, now), Ok(Admitted::default()));
            l.charge(&s, 1_000_000, now);
        }
        assert!(l.is_empty(), "unlimited subjects are not tracked");
    }

    #[test]
    fn refusal_names_scope_dimension_and_a_sensible_retry_after() {
        let l = Limiter::new();
        let s = [subject(Scope::Key, "k", 100, 0), subject(Scope::User, "u", 3, 0)];
        admit_n(&l, &s, at(&l, 10_000), 3);

        // Same window: the 3 requests weigh fully until the window ends, and
        // then decay too slowly for 60 s to be enough: capped at 60.
        let r = l.admit(&s, at(&l, 10_000)).unwrap_err();
        assert_eq!((r.scope, r.dimension, r.limit), (Scope::User, Dimension::Requests, 3));
        assert_eq!(r.retry_after_secs, 60);

        // 10 s into the next window the estimate is 3 * 50/60 = 2.5: refused
        // until it reaches 2, at 20 s into the window, i.e. in 10 s.
        let r = l.admit(&s, at(&l, 70_000)).unwrap_err();
        assert_eq!((r.scope, r.dimension, r.limit), (Scope::User, Dimension::Requests, 3));
        assert_eq!(r.retry_after_secs, 10);
        assert_eq!(r.requests, Some(Budget { limit: 3, remaining: 0, reset_secs: 50 }));
        assert_eq!(r.tokens, None);
        assert_eq!(r.to_string(), "user rate limit of 3 requests per minute reached; retry after 10 s");
        assert!(l.admit(&s, at(&l, 79_999)).is_err());
        assert!(l.admit(&s, at(&l, 80_000)).is_ok(), "allowed after retry_after");
    }

    #[test]
    fn after_60_s_the_previous_minute_only_partly_counts() {
        let l = Limiter::new();
        let s = [subject(Scope::Key, "k", 10, 0)];
        admit_n(&l, &s, at(&l, 1_000), 10);
        // 1 s into the next window: 10 * 59/60 = 9.83 still leaves no room.
        let r = l.admit(&s, at(&l, 61_000)).unwrap_err();
        assert_eq!(r.retry_after_secs, 5);
        // Halfway through it: 10 * 1/2 = 5, so five more fit.
        assert_eq!(count_admitted(&l, &s, at(&l, 90_000), 20), 5);
    }

    #[test]
    fn after_120_s_the_window_is_fully_reset() {
        let l = Limiter::new();
        let s = [subject(Scope::Key, "k", 10, 0)];
        admit_n(&l, &s, at(&l, 1_000), 10);
        assert!(l.admit(&s, at(&l, 59_999)).is_err());
        let a = l.admit(&s, at(&l, 121_000)).unwrap();
        assert_eq!(a.requests.unwrap().remaining, 9);
        assert_eq!(count_admitted(&l, &s, at(&l, 121_000), 20), 9);
    }

    #[test]
    fn charged_tokens_push_a_subject_over_its_tpm() {
        let l = Limiter::new();
        let s = [subject(Scope::Key, "k", 0, 1_000)];
        let a = l.admit(&s, at(&l, 1_000)).unwrap();
        assert_eq!(a.tokens, Some(Budget { limit: 1_000, remaining: 1_000, reset_secs: 0 }));
        assert_eq!(a.requests, None);
        l.charge(&s, 600, at(&l, 2_000));
        let a = l.admit(&s, at(&l, 3_000)).unwrap();
        assert_eq!(a.tokens.unwrap().remaining, 400, "admitted while budget is left");
        l.charge(&s, 500, at(&l, 4_000));

        let r = l.admit(&s, at(&l, 5_000)).unwrap_err();
        assert_eq!((r.scope, r.dimension, r.limit), (Scope::Key, Dimension::Tokens, 1_000));
        assert_eq!(r.retry_after_secs, 60);
        assert_eq!(r.tokens, Some(Budget { limit: 1_000, remaining: 0, reset_secs: 115 }));
    }

    #[test]
    fn a_refused_request_counts_nothing_against_other_subjects() {
        let l = Limiter::new();
        let now = at(&l, 1_000);
        let key = subject(Scope::Key, "k", 10, 0);
        let user = subject(Scope::User, "u", 10, 0);
        let team = subject(Scope::Team, "t", 1, 0);
        l.admit(&[key, team, user], now).unwrap();
        for _ in 0..5 {
            // The key is counted before the team refuses, the user never is.
            let r = l.admit(&[key, team, user], now).unwrap_err();
            assert_eq!(r.scope, Scope::Team);
        }
        assert_eq!(l.admit(&[key], now).unwrap().requests.unwrap().remaining, 8);
        assert_eq!(l.admit(&[user], now).unwrap().requests.unwrap().remaining, 8);

        // Same when the refusal is on tokens.
        let tokens = subject(Scope::Team, "t2", 0, 100);
        l.charge(&[tokens], 100, now);
        let r = l.admit(&[key, tokens], now).unwrap_err();
        assert_eq!((r.scope, r.dimension), (Scope::Team, Dimension::Tokens));
        assert_eq!(l.admit(&[key], now).unwrap().requests.unwrap().remaining, 7);
    }

    #[test]
    fn concurrent_admits_never_exceed_the_limit_in_a_window() {
        let l = Limiter::new();
        let now = at(&l, 30_000);
        let key = subject(Scope::Key, "k", 1_000, 0);
        let team = subject(Scope::Team, "t", 60, 0);
        let admitted = AtomicU64::new(0);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..100 {
                        if l.admit(&[key, team], now).is_ok() {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(admitted.load(Ordering::Relaxed), 60);
        // Every request the team refused was taken back from the key.
        let a = l.admit(&[key], now).unwrap();
        assert_eq!(a.requests.unwrap().remaining, 1_000 - 61);
    }

    #[test]
    fn sweep_drops_idle_counters() {
        let l = Limiter::new();
        l.admit(&[subject(Scope::Key, "old", 10, 0)], at(&l, 0)).unwrap();
        l.admit(&[subject(Scope::User, "recent", 10, 0)], at(&l, 50_000)).unwrap();
        l.charge(&[subject(Scope::Team, "charged", 0, 10)], 5, at(&l, 100_000));
        assert_eq!(l.len(), 3);

        l.sweep(at(&l, 120_000));
        assert_eq!(l.len(), 3, "idle for exactly two windows: kept");
        l.sweep(at(&l, 120_001));
        assert_eq!(l.len(), 2);
        l.sweep(at(&l, 200_000));
        assert_eq!(l.len(), 1);
        l.sweep(at(&l, 220_001));
        assert!(l.is_empty());
    }

    #[test]
    fn admitted_reports_the_tightest_remaining_budget() {
        let l = Limiter::new();
        let now = at(&l, 10_000);
        let key = subject(Scope::Key, "k", 10, 1_000);
        let user = subject(Scope::User, "u", 5, 0);
        let team = subject(Scope::Team, "t", 100, 500);

        // The user has the smallest limit, so it is the tightest at first...
        let a = l.admit(&[key, user, team], now).unwrap();
        assert_eq!(a.requests, Some(Budget { limit: 5, remaining: 4, reset_secs: 110 }));
        assert_eq!(a.tokens, Some(Budget { limit: 500, remaining: 500, reset_secs: 0 }));

        // ...until the key has less left than the user.
        admit_n(&l, &[key], now, 7);
        let a = l.admit(&[key, user, team], now).unwrap();
        assert_eq!(a.requests, Some(Budget { limit: 10, remaining: 1, reset_secs: 110 }));

        l.charge(&[key, user, team], 400, now);
        let a = l.admit(&[key, user, team], now).unwrap();
        assert_eq!(a.requests.unwrap().remaining, 0);
        assert_eq!(a.tokens, Some(Budget { limit: 500, remaining: 100, reset_secs: 110 }));
    }

    #[test]
    fn window_arithmetic() {
        let s = Snapshot { elapsed: 15_000, prev: 8, cur: 2 };
        // 8 * 45/60 + 2 = 8
        assert_eq!(s.remaining(10), 2);
        assert!(s.allows(Dimension::Requests, 9));
        assert!(!s.allows(Dimension::Requests, 8));
        assert!(!s.allows(Dimension::Tokens, 8));
        assert_eq!(s.reset_secs(), 105);
        assert_eq!(s.advanced(50_000), Snapshot { elapsed: 5_000, prev: 2, cur: 0 });
        assert_eq!(s.advanced(120_000), Snapshot { elapsed: 15_000, prev: 0, cur: 0 });
        // Needs 8 * (60 - e)/60 + 2 <= 7, i.e. e >= 22.5 s: 7.5 s from now.
        assert_eq!(s.retry_after_secs(Dimension::Requests, 8), 8);
    }
}
