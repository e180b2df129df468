//! The order a request tries its eligible endpoints in, per strategy. Every
//! strategy puts its choice first and keeps the others behind it for
//! failover; the caller then moves open circuits to the end.

use std::time::Instant;

use super::Route;

/// Weighted rendezvous hashing: each endpoint scores `weight / -ln(u)`,
/// with `u` a hash of the user and the endpoint mapped into (0, 1); the
/// highest score wins. Every data plane computes the same order without
/// sharing state, a user moves only when their endpoint leaves, and users
/// spread in proportion to the weights.
pub fn sticky(routes: &mut [&Route], user_id: &str) {
    routes.sort_by(|a, b| {
        let (sa, sb) = (rendezvous(user_id, a), rendezvous(user_id, b));
        sb.total_cmp(&sa).then_with(|| a.spec.id.cmp(&b.spec.id))
    });
}

fn rendezvous(user_id: &str, r: &Route) -> f64 {
    let h = mix(fnv1a(fnv1a(FNV_OFFSET, user_id.as_bytes()) ^ 0xff, r.spec.id.as_bytes()));
    // 53 random bits into (0, 1).
    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    f64::from(r.spec.weight) / -u.ln()
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a: fixed, so that every replica and every version hashes alike (the
/// standard library's hasher may change between Rust releases).
fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// SplitMix64's finaliser, so that similar inputs land far apart.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Weighted round robin on the team's counter: the `n`th request goes to
/// the endpoint whose share of the total weight holds `n`.
pub fn round_robin(routes: &mut [&Route], n: u64) {
    let total: u64 = routes.iter().map(|r| u64::from(r.spec.weight)).sum();
    if total == 0 || routes.len() < 2 {
        return;
    }
    let pick = weighted_index(routes, n % total);
    routes[..=pick].rotate_right(1);
}

/// The endpoint whose share of the summed weights holds `at` (below the
/// sum).
fn weighted_index(routes: &[&Route], mut at: u64) -> usize {
    routes
        .iter()
        .position(|r| {
            let w = u64::from(r.spec.weight);
            if at < w {
                true
            } else {
                at -= w;
                false
            }
        })
        .unwrap_or(0)
}

/// Two random choices (weighted), the cheaper first; the rest by cost. Two
/// choices rather than the cheapest: every data plane sending everything to
/// the one that looked fastest a moment ago would make it the slowest.
pub fn adaptive(routes: &mut [&Route], now: Instant) {
    if routes.len() < 2 {
        return;
    }
    let cost = |r: &Route| r.health.cost(now) / f64::from(r.spec.weight);
    let total: u64 = routes.iter().map(|r| u64::from(r.spec.weight)).sum();
    let draw = |routes: &[&Route]| weighted_index(routes, fastrand::u64(..total.max(1)));
    let (a, mut b) = (draw(routes), draw(routes));
    if a == b {
        b = (a + 1) % routes.len();
    }
    let first = if cost(routes[a]) <= cost(routes[b]) { a } else { b };
    routes.swap(0, first);
    routes[1..].sort_by(|x, y| cost(x).total_cmp(&cost(y)));
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::time::Duration;

    use super::super::health::{Attempted, Health};
    use super::super::spec::EndpointSpec;
    use super::*;

    fn routes(weights: &[u32]) -> Vec<Route> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let mut spec = EndpointSpec::implicit("us-east-1");
                spec.id = format!("ep{i}");
                spec.weight = *w;
                Route::for_tests(spec, Arc::new(Health::default()))
            })
            .collect()
    }

    fn ids<'a>(r: &[&'a Route]) -> Vec<&'a str> {
        r.iter().map(|r| r.spec.id.as_str()).collect()
    }

    #[test]
    fn sticky_users_keep_their_endpoint_and_spread_by_weight() {
        let mut count: HashMap<String, usize> = HashMap::new();
        for u in 0..3000 {
            let user = format!("user-{u}");
            let all = routes(&[1, 1, 2]);
            let mut a: Vec<&Route> = all.iter().collect();
            sticky(&mut a, &user);
            let mut b: Vec<&Route> = all.iter().rev().collect();
            sticky(&mut b, &user);
            assert_eq!(ids(&a), ids(&b), "the order does not depend on the input order");
            *count.entry(a[0].spec.id.clone()).or_default() += 1;
        }
        let share = |id: &str| count[id] as f64 / 3000.0;
        assert!((share("ep0") - 0.25).abs() < 0.04, "{count:?}");
        assert!((share("ep1") - 0.25).abs() < 0.04, "{count:?}");
        assert!((share("ep2") - 0.5).abs() < 0.04, "{count:?}");
    }

    #[test]
    fn removing_an_endpoint_moves_only_its_own_sticky_users() {
        let mut moved = 0;
        for u in 0..1000 {
            let user = format!("u{u}");
            let three = routes(&[1, 1, 1]);
            let mut all: Vec<&Route> = three.iter().collect();
            sticky(&mut all, &user);
            let mut fewer: Vec<&Route> = three.iter().filter(|r| r.spec.id != "ep2").collect();
            sticky(&mut fewer, &user);
            if all[0].spec.id != "ep2" {
                assert_eq!(all[0].spec.id, fewer[0].spec.id);
            } else {
                moved += 1;
            }
        }
        assert!(moved > 250 && moved < 420, "{moved}");
    }

    #[test]
    fn round_robin_follows_the_weights() {
        let picks: Vec<String> = (0..8)
            .map(|n| {
                let two = routes(&[1, 3]);
                let mut r: Vec<&Route> = two.iter().collect();
                round_robin(&mut r, n);
                r[0].spec.id.clone()
            })
            .collect();
        assert_eq!(picks.iter().filter(|p| *p == "ep1").count(), 6);
        let two = routes(&[1, 3]);
        let mut r: Vec<&Route> = two.iter().collect();
        round_robin(&mut r, 2);
        assert_eq!(ids(&r), ["ep1", "ep0"], "the others follow for failover");
    }

    #[test]
    fn adaptive_avoids_a_throttled_endpoint() {
        let t = Instant::now();
        let mut firsts = 0;
        for _ in 0..200 {
            let two = routes(&[1, 1]);
            let mut r: Vec<&Route> = two.iter().collect();
            for x in &r {
                x.health.record(Attempted::Answered(Duration::from_millis(100)), 5, Duration::from_secs(30), t);
            }
            r[0].health.record(Attempted::Throttled, 5, Duration::from_secs(30), t);
            adaptive(&mut r, t);
            if r[0].spec.id == "ep0" {
                firsts += 1;
            }
        }
        assert_eq!(firsts, 0, "two choices among two always see the throttled one's cost");
    }
}
