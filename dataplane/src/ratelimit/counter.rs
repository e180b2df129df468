//! One subject's counter (atomics only) and the sliding-window arithmetic.
//!
//! Time is a count of milliseconds since the limiter's epoch; window `w`
//! covers `[w * WINDOW_MS, (w + 1) * WINDOW_MS)`. Estimates are kept scaled by
//! `WINDOW_MS` so that all comparisons are exact integer arithmetic:
//! `scaled = prev * (WINDOW_MS - elapsed) + cur * WINDOW_MS`.

use std::sync::atomic::{AtomicU64, Ordering::*};

use super::Dimension;

/// Length of one fixed window, in milliseconds.
pub(super) const WINDOW_MS: u64 = 60_000;
/// Longest `retry_after_secs` reported.
const MAX_RETRY_SECS: u64 = 60;

/// Counts for one (scope, id). Every field is an atomic: no lock is taken to
/// count, and the window roll-over is won by a single `compare_exchange`.
#[derive(Debug)]
pub(super) struct Counter {
    /// Index of the current window (milliseconds since epoch / `WINDOW_MS`).
    window: AtomicU64,
    cur_requests: AtomicU64,
    prev_requests: AtomicU64,
    cur_tokens: AtomicU64,
    prev_tokens: AtomicU64,
    /// Milliseconds since epoch of the latest admit or charge.
    touched: AtomicU64,
}

/// Where a counter stands at one instant: what one dimension's estimate is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Snapshot {
    /// Milliseconds elapsed in the current window, `< WINDOW_MS`.
    pub elapsed: u64,
    pub prev: u64,
    pub cur: u64,
}

/// How far into the window in force a caller is, in milliseconds.
#[derive(Clone, Copy, Debug)]
pub(super) struct Position {
    pub elapsed: u64,
}

impl Counter {
    pub fn new(at_ms: u64) -> Self {
        Counter {
            window: AtomicU64::new(at_ms / WINDOW_MS),
            cur_requests: AtomicU64::new(0),
            prev_requests: AtomicU64::new(0),
            cur_tokens: AtomicU64::new(0),
            prev_tokens: AtomicU64::new(0),
            touched: AtomicU64::new(at_ms),
        }
    }

    pub fn touch(&self, at_ms: u64) {
        self.touched.fetch_max(at_ms, Relaxed);
    }

    pub fn idle_ms(&self, at_ms: u64) -> u64 {
        at_ms.saturating_sub(self.touched.load(Relaxed))
    }

    /// Brings the counter to the window containing `at_ms` (rolling it over if
    /// needed) and returns the caller's position in the window now in force.
    ///
    /// Exactly one caller wins the `compare_exchange` on the window index and
    /// moves the counts; the others proceed at once. While the winner moves
    /// them a reader may see the old `prev` beside the old `cur`, or the new
    /// `prev` beside a not-yet-cleared `cur`: both over-estimate, so a race at
    /// the boundary can refuse a request early but never admits one too many.
    /// A caller whose `now` lags a window that another caller already opened
    /// counts against that newer window, as if it were at its start.
    pub fn sync(&self, at_ms: u64) -> Position {
        let target = at_ms / WINDOW_MS;
        loop {
            let seen = self.window.load(Acquire);
            if seen > target {
                return Position { elapsed: 0 };
            }
            if seen == target {
                return Position { elapsed: at_ms % WINDOW_MS };
            }
            if self.window.compare_exchange(seen, target, AcqRel, Acquire).is_ok() {
                let adjacent = target == seen + 1;
                roll(&self.prev_requests, &self.cur_requests, adjacent);
                roll(&self.prev_tokens, &self.cur_tokens, adjacent);
                return Position { elapsed: at_ms % WINDOW_MS };
            }
            // Lost the race: someone else rolled (maybe to an earlier window
            // than ours); look again.
        }
    }

    fn snapshot(&self, prev: &AtomicU64, cur: &AtomicU64, pos: Position) -> Snapshot {
        Snapshot { elapsed: pos.elapsed, prev: prev.load(Acquire), cur: cur.load(Acquire) }
    }

    pub fn requests(&self, pos: Position) -> Snapshot {
        self.snapshot(&self.prev_requests, &self.cur_requests, pos)
    }

    pub fn tokens(&self, pos: Position) -> Snapshot {
        self.snapshot(&self.prev_tokens, &self.cur_tokens, pos)
    }

    /// Counts one request if the estimate allows it under `limit`: `Ok` with
    /// the state after counting it, or `Err` with the state that refused it.
    /// The check and the count are one `compare_exchange`, so concurrent
    /// callers never count more than the limit allows.
    pub fn try_reserve(&self, pos: Position, limit: u64) -> Result<Snapshot, Snapshot> {
        let mut cur = self.cur_requests.load(Acquire);
        loop {
            let snap = Snapshot { elapsed: pos.elapsed, prev: self.prev_requests.load(Acquire), cur };
            if !snap.allows(Dimension::Requests, limit) {
                return Err(snap);
            }
            match self.cur_requests.compare_exchange_weak(cur, cur + 1, AcqRel, Acquire) {
                Ok(_) => return Ok(Snapshot { cur: cur + 1, ..snap }),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Takes back a request counted by `try_reserve` at `at_ms`. Only when
    /// the counter is still in that instant's window: if it has moved on
    /// since, the count went with it and is left alone (which errs towards
    /// refusing).
    pub fn unreserve(&self, at_ms: u64) {
        if self.window.load(Acquire) == at_ms / WINDOW_MS {
            let _ = self.cur_requests.fetch_update(AcqRel, Acquire, |n| n.checked_sub(1));
        }
    }

    pub fn charge(&self, tokens: u64) {
        self.cur_tokens.fetch_add(tokens, AcqRel);
    }
}

/// Moves `cur` into `prev` (or clears both when a window was skipped). `prev`
/// is written before `cur` is cleared and corrected after, so a concurrent
/// reader sees at worst too much, never too little.
fn roll(prev: &AtomicU64, cur: &AtomicU64, adjacent: bool) {
    if !adjacent {
        cur.store(0, Release);
        prev.store(0, Release);
        return;
    }
    let before = cur.load(Acquire);
    prev.store(before, Release);
    let moved = cur.swap(0, AcqRel);
    // Requests or tokens counted between the load and the swap belong to the
    // window that just ended; a take-back (`unreserve`) may have lowered it.
    if moved > before {
        prev.fetch_add(moved - before, AcqRel);
    } else if moved < before {
        let _ = prev.fetch_update(AcqRel, Acquire, |n| Some(n.saturating_sub(before - moved)));
    }
}

impl Snapshot {
    /// The sliding estimate, multiplied by `WINDOW_MS`.
    pub fn scaled(&self) -> u128 {
        let w = u128::from(WINDOW_MS);
        u128::from(self.prev) * (w - u128::from(self.elapsed)) + u128::from(self.cur) * w
    }

    /// Requests: one more fits (`estimate + 1 <= limit`). Tokens: some budget
    /// is left (`estimate < limit`); tokens are charged after the fact.
    pub fn allows(&self, dimension: Dimension, limit: u64) -> bool {
        let w = u128::from(WINDOW_MS);
        let limit = u128::from(limit) * w;
        match dimension {
            Dimension::Requests => self.scaled() + w <= limit,
            Dimension::Tokens => self.scaled() < limit,
        }
    }

    /// What is left under `limit`, in whole units: `limit - ceil(estimate)`.
    /// For requests this is how many more would be admitted now.
    pub fn remaining(&self, limit: u64) -> u64 {
        let w = u128::from(WINDOW_MS);
        let used = self.scaled().div_ceil(w);
        u128::from(limit).saturating_sub(used) as u64
    }

    /// Whole seconds until the estimate is back to zero if nothing more is
    /// counted: the end of the next window while the current one has counts,
    /// else the end of this one while the previous one has, else 0.
    pub fn reset_secs(&self) -> u64 {
        let ms = if self.cur > 0 {
            2 * WINDOW_MS - self.elapsed
        } else if self.prev > 0 {
            WINDOW_MS - self.elapsed
        } else {
            0
        };
        ms.div_ceil(1000)
    }

    /// The state `ms` milliseconds later, if nothing more is counted.
    pub fn advanced(&self, ms: u64) -> Snapshot {
        let pos = self.elapsed + ms;
        match pos / WINDOW_MS {
            0 => Snapshot { elapsed: pos, ..*self },
            1 => Snapshot { elapsed: pos - WINDOW_MS, prev: self.cur, cur: 0 },
            _ => Snapshot { elapsed: pos % WINDOW_MS, prev: 0, cur: 0 },
        }
    }

    /// The smallest whole number of seconds after which the estimate would
    /// allow the request, between 1 and 60 (60 also when even that is not
    /// enough, e.g. when the current window alone exceeds the limit).
    pub fn retry_after_secs(&self, dimension: Dimension, limit: u64) -> u64 {
        (1..=MAX_RETRY_SECS).find(|&s| self.advanced(s * 1000).allows(dimension, limit)).unwrap_or(MAX_RETRY_SECS)
    }
}
