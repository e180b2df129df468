//! The `anthropic-ratelimit-*` response headers: the tightest budgets of
//! an admitted request, and those of a refused one on its 429.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue};

use crate::ratelimit::{Admitted, Budget};

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
    rfc3339_unix(t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0))
}

/// The same, from Unix seconds (0 for anything before 1970).
pub fn rfc3339_unix(secs: i64) -> String {
    let secs = secs.max(0) as u64;
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
}
