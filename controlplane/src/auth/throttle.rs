//! Slows password guessing: after a few failed sign-ins for a username, each
//! further attempt must wait, twice as long after every failure (up to five
//! minutes). Kept in memory per replica; a success clears it.

use std::time::{Duration, Instant};

use dashmap::DashMap;

const FREE_ATTEMPTS: u32 = 5;
const MAX_WAIT: Duration = Duration::from_secs(300);
/// Bounded memory: past this many tracked names, stale ones are dropped.
const MAX_TRACKED: usize = 10_000;

#[derive(Default)]
pub struct LoginThrottle {
    failures: DashMap<String, (u32, Instant)>,
}

fn wait_after(failures: u32) -> Duration {
    if failures < FREE_ATTEMPTS {
        return Duration::ZERO;
    }
    let exp = (failures - FREE_ATTEMPTS).min(16);
    Duration::from_secs(1u64 << exp).min(MAX_WAIT)
}

impl LoginThrottle {
    /// `Err(wait)` while `username` must wait before its next attempt.
    pub fn check(&self, username: &str, now: Instant) -> Result<(), Duration> {
        match self.failures.get(&username.to_lowercase()) {
            Some(e) => {
                let (n, last) = *e;
                let until = last + wait_after(n);
                if now < until {
                    Err(until - now)
                } else {
                    Ok(())
                }
            }
            None => Ok(()),
        }
    }

    pub fn failed(&self, username: &str, now: Instant) {
        if self.failures.len() >= MAX_TRACKED {
            self.failures.retain(|_, (_, last)| now.duration_since(*last) < MAX_WAIT);
        }
        let mut e = self.failures.entry(username.to_lowercase()).or_insert((0, now));
        e.0 = e.0.saturating_add(1);
        e.1 = now;
    }

    pub fn succeeded(&self, username: &str) {
        self.failures.remove(&username.to_lowercase());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failures_cost_nothing() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for _ in 0..FREE_ATTEMPTS - 1 {
            t.failed("a", now);
        }
        assert!(t.check("a", now).is_ok());
    }

    #[test]
    fn further_failures_must_wait_twice_as_long_each_time() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for _ in 0..FREE_ATTEMPTS {
            t.failed("a", now);
        }
        assert_eq!(t.check("a", now), Err(Duration::from_secs(1)));
        t.failed("a", now);
        assert_eq!(t.check("a", now), Err(Duration::from_secs(2)));
        assert!(t.check("a", now + Duration::from_secs(2)).is_ok());
    }

    #[test]
    fn the_wait_is_capped() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for _ in 0..100 {
            t.failed("a", now);
        }
        assert_eq!(t.check("a", now), Err(MAX_WAIT));
    }

    #[test]
    fn success_clears_and_names_are_independent_and_case_insensitive() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for _ in 0..10 {
            t.failed("Admin", now);
        }
        assert!(t.check("admin", now).is_err());
        assert!(t.check("bob", now).is_ok());
        t.succeeded("ADMIN");
        assert!(t.check("admin", now).is_ok());
    }
}
