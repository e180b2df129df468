//! A budget of requests per minute per address, for the unauthenticated
//! routes that write to the database (starting a sign-in), or per
//! credential (a SCIM client's token).

use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use dashmap::DashMap;

pub struct PerKey<K: Hash + Eq> {
    per_minute: u32,
    windows: DashMap<K, (Instant, u32)>,
}

pub type PerIp = PerKey<IpAddr>;

const WINDOW: Duration = Duration::from_secs(60);
/// Past this many tracked addresses, stale windows are dropped.
const TRACKED: usize = 10_000;

impl<K: Hash + Eq> PerKey<K> {
    pub fn new(per_minute: u32) -> Self {
        PerKey { per_minute, windows: DashMap::new() }
    }

    /// Ok, or the seconds until the key may try again.
    pub fn check(&self, ip: K, now: Instant) -> Result<(), u64> {
        if self.windows.len() > TRACKED {
            self.windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let mut w = self.windows.entry(ip).or_insert((now, 0));
        if now.duration_since(w.0) >= WINDOW {
            *w = (now, 0);
        }
        if w.1 >= self.per_minute {
            return Err((WINDOW - now.duration_since(w.0)).as_secs().max(1));
        }
        w.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_over_its_budget_waits_for_the_next_minute() {
        let l = PerIp::new(2);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t = Instant::now();
        assert!(l.check(ip, t).is_ok());
        assert!(l.check(ip, t).is_ok());
        assert!(l.check(ip, t + Duration::from_secs(10)).unwrap_err() >= 49);
        assert!(l.check("192.0.2.2".parse().unwrap(), t).is_ok(), "other addresses are not affected");
        assert!(l.check(ip, t + Duration::from_secs(61)).is_ok());
    }
}
