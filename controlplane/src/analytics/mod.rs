//! Analytics: hourly roll-ups of the spend log, kept as usage arrives
//! (`rollup`), the dashboards read from them (`dashboard`), and the CSV
//! export of the records themselves (`export`).

pub mod dashboard;
pub mod export;
pub mod rollup;

/// Upper bounds, in milliseconds, of the latency and time-to-first-token
/// histograms; one more bucket holds what is above the last. Fine enough
/// below a second for time to first token, and up to the ten minutes a
/// long generation can take. `migrations` keeps a copy for its backfill.
pub const LATENCY_BOUNDS_MS: [i64; 37] = [
    10, 20, 30, 50, 75, 100, 150, 200, 300, 400, 500, 650, 800, 1_000, 1_250, 1_500, 2_000, 2_500, 3_000, 4_000, 5_000,
    6_500, 8_000, 10_000, 12_500, 15_000, 20_000, 25_000, 30_000, 40_000, 50_000, 60_000, 90_000, 120_000, 180_000,
    300_000, 600_000,
];

/// The sums every usage roll-up row holds, in this order.
pub const SUMS: [&str; 11] = [
    "requests",
    "errors",
    "throttled",
    "input_tokens",
    "output_tokens",
    "cache_write_tokens",
    "cache_read_tokens",
    "cost_micro_usd",
    "savings_micro_usd",
    "unpriced",
    "web_searches",
];

/// Requests per hour by team, model and endpoint.
pub const TEAMS_TABLE: &str = "usage_hourly_teams";

/// The roll-ups' periods: UTC hours and UTC days, each with its tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grain {
    Hour,
    Day,
}

impl Grain {
    pub fn seconds(self) -> i64 {
        match self {
            Grain::Hour => 3_600,
            Grain::Day => 86_400,
        }
    }

    /// The start of the period a time falls in (Unix seconds, UTC).
    pub fn start(self, secs: i64) -> i64 {
        secs.div_euclid(self.seconds()) * self.seconds()
    }

    pub fn usage_table(self) -> &'static str {
        match self {
            Grain::Hour => "usage_hourly",
            Grain::Day => "usage_daily",
        }
    }

    pub fn latency_table(self) -> &'static str {
        match self {
            Grain::Hour => "usage_latency_hourly",
            Grain::Day => "usage_latency_daily",
        }
    }
}

/// What a latency histogram measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Metric {
    /// From the request's arrival to its last byte.
    Duration = 0,
    /// From the request's arrival to the first token.
    Ttft = 1,
}

/// The bucket a latency falls in.
pub fn bucket_of(ms: i64) -> i16 {
    LATENCY_BOUNDS_MS.partition_point(|b| *b < ms) as i16
}

/// The `q` quantile of a histogram (counts per bucket), interpolated
/// linearly inside the bucket it falls in, as Prometheus'
/// `histogram_quantile` does; the overflow bucket reads as the last bound.
/// 0 without counts.
pub fn quantile(counts: &[u64], q: f64) -> u32 {
    let n: u64 = counts.iter().sum();
    if n == 0 {
        return 0;
    }
    let rank = q * n as f64;
    let mut seen = 0u64;
    for (i, c) in counts.iter().enumerate() {
        if *c == 0 {
            continue;
        }
        if (seen + c) as f64 >= rank {
            let Some(&hi) = LATENCY_BOUNDS_MS.get(i) else {
                return LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.len() - 1] as u32;
            };
            let lo = if i == 0 { 0 } else { LATENCY_BOUNDS_MS[i - 1] };
            let within = ((rank - seen as f64) / *c as f64).clamp(0.0, 1.0);
            return (lo as f64 + (hi - lo) as f64 * within).round() as u32;
        }
        seen += c;
    }
    LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.len() - 1] as u32
}

/// How a record counts on the dashboards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Answered,
    /// Failed by Bedrock or the gateway (a 5xx, or a stream cut short).
    Error,
    /// Refused by a rate limit, the gateway's or Bedrock's.
    Throttled,
    /// Refused for the client's own reasons (a bad request, a spent budget,
    /// the client going away): neither answered nor an error of ours.
    Other,
}

pub fn kind(outcome: &str, status: i32) -> Kind {
    match outcome {
        "budget_blocked" => Kind::Other,
        _ if outcome == "rate_limited" || status == 429 => Kind::Throttled,
        "ok" => Kind::Answered,
        "stream_error" => Kind::Error,
        "error" if status >= 500 => Kind::Error,
        _ => Kind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_fall_in_the_bucket_of_their_upper_bound() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(10), 0);
        assert_eq!(bucket_of(11), 1);
        assert_eq!(bucket_of(1_000), 13);
        assert_eq!(bucket_of(10_000_000), LATENCY_BOUNDS_MS.len() as i16);
    }

    #[test]
    fn a_quantile_is_interpolated_inside_its_bucket() {
        let mut counts = vec![0u64; LATENCY_BOUNDS_MS.len() + 1];
        // 100 requests between 800 and 1000 ms.
        counts[13] = 100;
        assert_eq!(quantile(&counts, 0.5), 900);
        assert_eq!(quantile(&counts, 0.99), 998);
        assert_eq!(quantile(&[], 0.5), 0);
    }

    #[test]
    fn the_overflow_bucket_reads_as_the_last_bound() {
        let mut counts = vec![0u64; LATENCY_BOUNDS_MS.len() + 1];
        counts[LATENCY_BOUNDS_MS.len()] = 3;
        assert_eq!(quantile(&counts, 0.5), 600_000);
    }

    #[test]
    fn refusals_and_failures_are_told_apart() {
        assert_eq!(kind("ok", 200), Kind::Answered);
        assert_eq!(kind("rate_limited", 429), Kind::Throttled);
        assert_eq!(kind("error", 429), Kind::Throttled);
        assert_eq!(kind("error", 502), Kind::Error);
        assert_eq!(kind("stream_error", 200), Kind::Error);
        assert_eq!(kind("error", 400), Kind::Other);
        assert_eq!(kind("budget_blocked", 429), Kind::Other);
        assert_eq!(kind("client_closed", 200), Kind::Other);
    }
}
