//! What both planes agree on about endpoint statistics: the latency buckets
//! data planes count calls in, and how the control plane reads percentiles
//! back out of them.

/// Upper bounds (inclusive, milliseconds) of the time-to-first-byte buckets
/// of `EndpointReport.latency_buckets`; one more bucket counts everything
/// above the last bound.
pub const LATENCY_BOUNDS_MS: [u32; 16] =
    [5, 10, 25, 50, 100, 250, 500, 1_000, 2_000, 4_000, 8_000, 15_000, 30_000, 60_000, 120_000, 300_000];

/// The number of buckets: the bounds and the overflow bucket.
pub const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;

/// The bucket a latency falls in.
pub fn bucket_of(ms: u64) -> usize {
    LATENCY_BOUNDS_MS.partition_point(|b| u64::from(*b) < ms)
}

/// The `q` quantile (0 < q ≤ 1) of the counts, as the upper bound of the
/// bucket it falls in (the overflow bucket reads as the last bound); 0
/// without counts. Histograms of different lengths add up bucket by bucket.
pub fn quantile_ms(buckets: &[u64], q: f64) -> u32 {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return 0;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return LATENCY_BOUNDS_MS.get(i).copied().unwrap_or(LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.len() - 1]);
        }
    }
    LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.len() - 1]
}

/// Adds `more` into `into`, bucket by bucket, growing it as needed.
pub fn add_buckets(into: &mut Vec<u64>, more: &[u64]) {
    if into.len() < more.len() {
        into.resize(more.len(), 0);
    }
    for (a, b) in into.iter_mut().zip(more) {
        *a = a.saturating_add(*b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_latency_falls_in_the_first_bucket_whose_bound_holds_it() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(5), 0);
        assert_eq!(bucket_of(6), 1);
        assert_eq!(bucket_of(300_000), LATENCY_BOUNDS_MS.len() - 1);
        assert_eq!(bucket_of(300_001), LATENCY_BOUNDS_MS.len());
    }

    #[test]
    fn quantiles_read_the_bound_of_their_bucket() {
        let mut b = vec![0u64; LATENCY_BUCKETS];
        b[bucket_of(40)] = 98;
        b[bucket_of(900)] = 2;
        assert_eq!(quantile_ms(&b, 0.5), 50);
        assert_eq!(quantile_ms(&b, 0.98), 50);
        assert_eq!(quantile_ms(&b, 0.99), 1_000);
        assert_eq!(quantile_ms(&[], 0.5), 0);
    }

    #[test]
    fn histograms_add_bucket_by_bucket() {
        let mut a = vec![1, 2];
        add_buckets(&mut a, &[1, 1, 5]);
        assert_eq!(a, vec![2, 3, 5]);
    }
}
