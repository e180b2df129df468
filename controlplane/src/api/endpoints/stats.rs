//! An endpoint's recent calls, from what the data planes reported per
//! minute (`endpoint_stats`): sums, percentiles from the summed latency
//! histograms, and the worst circuit among each data plane's latest report.

use std::collections::HashMap;

use ccag_proto::admin::v1::EndpointStats;
use ccag_proto::routing::{add_buckets, quantile_ms};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use super::fields::circuit_pb;
use crate::api::{ts, ApiError};
use crate::store::entities::endpoint_stats as rows;
use crate::store::Circuit;

pub const DEFAULT_WINDOW_SECS: u32 = 900;
pub const MAX_WINDOW_SECS: u32 = 86_400;

/// The window a request asks for; 0 is the default.
pub fn window(v: u32) -> Result<u32, ApiError> {
    match v {
        0 => Ok(DEFAULT_WINDOW_SECS),
        v if v > MAX_WINDOW_SECS => Err(ApiError::InvalidArgument(format!(
            "stats_window_secs: at most {MAX_WINDOW_SECS} (0: {DEFAULT_WINDOW_SECS})"
        ))),
        v => Ok(v),
    }
}

/// How bad a circuit state is: open is worst.
fn severity(c: Circuit) -> u8 {
    match c {
        Circuit::Unknown => 0,
        Circuit::Closed => 1,
        Circuit::HalfOpen => 2,
        Circuit::Open => 3,
    }
}

/// The stats of one endpoint from its rows of the window.
pub fn aggregate<'a>(rows: impl IntoIterator<Item = &'a rows::Model>, window_secs: u32) -> EndpointStats {
    let mut s = EndpointStats { window_secs, ..Default::default() };
    let mut buckets: Vec<u64> = Vec::new();
    let mut latest: HashMap<&str, &rows::Model> = HashMap::new();
    let mut reported: Option<DateTime<Utc>> = None;
    let count = |v: i64| u64::try_from(v).unwrap_or(0);
    for r in rows {
        s.requests = s.requests.saturating_add(count(r.requests));
        s.throttles = s.throttles.saturating_add(count(r.throttles));
        s.errors = s.errors.saturating_add(count(r.errors));
        let b: Vec<u64> = serde_json::from_str(&r.latency_buckets).unwrap_or_default();
        add_buckets(&mut buckets, &b);
        let newer = |o: &&rows::Model| (r.minute, r.reported_at) > (o.minute, o.reported_at);
        match latest.get(r.dataplane_id.as_str()) {
            Some(o) if !newer(o) => {}
            _ => {
                latest.insert(&r.dataplane_id, r);
            }
        }
        reported = reported.max(Some(r.reported_at));
    }
    s.p50_ms = quantile_ms(&buckets, 0.5);
    s.p99_ms = quantile_ms(&buckets, 0.99);
    let worst = latest.values().map(|r| Circuit::parse(&r.circuit)).max_by_key(|c| severity(*c));
    s.circuit = circuit_pb(worst.unwrap_or(Circuit::Unknown)) as i32;
    s.reported_at = reported.map(ts).unwrap_or_default();
    s
}

/// The stats of each of `ids` over the `window_secs` before `now` (the
/// minutes that overlap it); an endpoint without reports has zeros.
pub async fn load<C: ConnectionTrait>(
    c: &C,
    ids: &[String],
    window_secs: u32,
    now: DateTime<Utc>,
) -> Result<HashMap<String, EndpointStats>, DbErr> {
    let mut by: HashMap<String, Vec<rows::Model>> = HashMap::new();
    if !ids.is_empty() {
        let since = (now.timestamp() - i64::from(window_secs)).div_euclid(60);
        for r in rows::Entity::find()
            .filter(rows::Column::EndpointId.is_in(ids.to_vec()))
            .filter(rows::Column::Minute.gte(since))
            .all(c)
            .await?
        {
            by.entry(r.endpoint_id.clone()).or_default().push(r);
        }
    }
    Ok(ids.iter().map(|id| (id.clone(), aggregate(by.get(id).into_iter().flatten(), window_secs))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccag_proto::admin::v1::CircuitState;
    use ccag_proto::routing::{bucket_of, LATENCY_BUCKETS};
    use chrono::TimeZone;

    fn row(dp: &str, minute: i64, n: (i64, i64, i64), latencies: &[(u64, u64)], circuit: Circuit) -> rows::Model {
        let mut b = vec![0u64; LATENCY_BUCKETS];
        for (ms, count) in latencies {
            b[bucket_of(*ms)] += count;
        }
        rows::Model {
            endpoint_id: "ep".into(),
            dataplane_id: dp.into(),
            minute,
            requests: n.0,
            throttles: n.1,
            errors: n.2,
            latency_buckets: serde_json::to_string(&b).unwrap(),
            circuit: circuit.as_str().into(),
            reported_at: Utc.timestamp_opt(minute * 60 + 30, 0).unwrap(),
        }
    }

    #[test]
    fn counters_add_up_and_percentiles_come_from_the_summed_histograms() {
        let rows = [
            row("dp1", 100, (60, 2, 1), &[(40, 59)], Circuit::Closed),
            row("dp2", 100, (40, 0, 0), &[(40, 39), (900, 1)], Circuit::Closed),
            row("dp1", 101, (10, 1, 0), &[(3000, 1)], Circuit::Closed),
        ];
        let s = aggregate(&rows, 900);
        assert_eq!((s.window_secs, s.requests, s.throttles, s.errors), (900, 110, 3, 1));
        // 98 calls at 40 ms, one at 900 ms, one at 3 s.
        assert_eq!((s.p50_ms, s.p99_ms), (50, 1_000));
        assert_eq!(s.circuit, CircuitState::Closed as i32);
        assert_eq!(s.reported_at, ts(Utc.timestamp_opt(101 * 60 + 30, 0).unwrap()));
    }

    #[test]
    fn the_circuit_is_the_worst_of_each_data_planes_latest_report() {
        // dp1 was open and closed again; dp2 is half-open now.
        let rows = [
            row("dp1", 100, (1, 0, 1), &[], Circuit::Open),
            row("dp1", 102, (1, 0, 0), &[], Circuit::Closed),
            row("dp2", 101, (1, 0, 0), &[], Circuit::HalfOpen),
        ];
        assert_eq!(aggregate(&rows, 900).circuit, CircuitState::HalfOpen as i32);
        let open_now =
            [row("dp1", 100, (1, 0, 0), &[], Circuit::Closed), row("dp2", 100, (1, 0, 1), &[], Circuit::Open)];
        assert_eq!(aggregate(&open_now, 900).circuit, CircuitState::Open as i32);
    }

    #[test]
    fn no_reports_are_zeros_and_no_circuit() {
        let s = aggregate(&[], 60);
        assert_eq!(s, EndpointStats { window_secs: 60, ..Default::default() });
        assert_eq!(s.circuit, CircuitState::Unspecified as i32);
    }

    #[test]
    fn windows_default_to_15_minutes_and_stop_at_a_day() {
        assert_eq!(window(0).unwrap(), 900);
        assert_eq!(window(60).unwrap(), 60);
        assert!(window(86_401).unwrap_err().to_string().starts_with("stats_window_secs: "));
    }
}
