//! The endpoints' counters that data planes send with their usage
//! (`EndpointReport`), kept per endpoint, data plane and minute in
//! `endpoint_stats` for `ccag endpoints list`, and pruned after a week.

use std::collections::{HashMap, HashSet};

use ccag_proto::config::v1::{CircuitState, EndpointReport};
use ccag_proto::routing::add_buckets;
use chrono::{DateTime, TimeZone, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect, Set, TryInsertResult,
};

use crate::store::entities::{endpoint_stats as rows, endpoints};
use crate::store::Circuit;

/// How long the counters are kept.
pub const KEEP_DAYS: i64 = 7;
/// Buckets a row keeps: the histogram's own, with room for bounds a later
/// version adds; a report's extra buckets beyond this are dropped.
const MAX_BUCKETS: usize = 64;
/// Reports in one ReportUsage.
pub const MAX_REPORTS: usize = 1000;

fn circuit(v: i32) -> Circuit {
    match CircuitState::try_from(v) {
        Ok(CircuitState::Closed) => Circuit::Closed,
        Ok(CircuitState::Open) => Circuit::Open,
        Ok(CircuitState::HalfOpen) => Circuit::HalfOpen,
        _ => Circuit::Unknown,
    }
}

/// One (endpoint, minute) of a report, the batch's own reports of it merged.
#[derive(Debug, PartialEq)]
pub struct Minute {
    pub requests: u64,
    pub throttles: u64,
    pub errors: u64,
    pub buckets: Vec<u64>,
    /// The last report's (in the order they came).
    pub circuit: Circuit,
    pub until: Option<DateTime<Utc>>,
}

/// The reports of a batch by (endpoint, minute of their `until_ms`); a
/// report without a time, or from further than five minutes ahead, counts
/// at `now`.
pub fn merge(reports: &[EndpointReport], now: DateTime<Utc>) -> HashMap<(String, i64), Minute> {
    let mut out: HashMap<(String, i64), Minute> = HashMap::new();
    for r in reports.iter().filter(|r| !r.endpoint_id.is_empty()) {
        let at = i64::try_from(r.until_ms)
            .ok()
            .filter(|ms| *ms > 0 && *ms <= now.timestamp_millis() + 300_000)
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
            .unwrap_or(now);
        let m = out.entry((r.endpoint_id.clone(), at.timestamp().div_euclid(60))).or_insert_with(|| Minute {
            requests: 0,
            throttles: 0,
            errors: 0,
            buckets: Vec::new(),
            circuit: Circuit::Unknown,
            until: None,
        });
        m.requests = m.requests.saturating_add(r.requests);
        m.throttles = m.throttles.saturating_add(r.throttles);
        m.errors = m.errors.saturating_add(r.errors);
        add_buckets(&mut m.buckets, &r.latency_buckets[..r.latency_buckets.len().min(MAX_BUCKETS)]);
        m.circuit = circuit(r.circuit);
        m.until = m.until.max(Some(at));
    }
    out
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Adds a data plane's reports to their rows: counters and buckets add up,
/// the circuit is the newest report's. Endpoints that no longer exist are
/// skipped (a data plane may still count calls to one just deleted).
pub async fn record<C: ConnectionTrait>(
    c: &C,
    dataplane_id: &str,
    reports: &[EndpointReport],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let merged = merge(reports, now);
    if merged.is_empty() {
        return Ok(());
    }
    let ids: HashSet<String> = merged.keys().map(|(id, _)| id.clone()).collect();
    let known: HashSet<String> = endpoints::Entity::find()
        .select_only()
        .column(endpoints::Column::Id)
        .filter(endpoints::Column::Id.is_in(ids))
        .into_tuple::<String>()
        .all(c)
        .await?
        .into_iter()
        .collect();
    for ((endpoint_id, minute), m) in merged {
        if !known.contains(&endpoint_id) {
            continue;
        }
        let until = m.until.unwrap_or(now);
        let fresh = rows::ActiveModel {
            endpoint_id: Set(endpoint_id.clone()),
            dataplane_id: Set(dataplane_id.to_owned()),
            minute: Set(minute),
            requests: Set(clamp(m.requests)),
            throttles: Set(clamp(m.throttles)),
            errors: Set(clamp(m.errors)),
            latency_buckets: Set(serde_json::to_string(&m.buckets).unwrap_or_else(|_| "[]".into())),
            circuit: Set(m.circuit.as_str().to_owned()),
            reported_at: Set(until),
        };
        let inserted = rows::Entity::insert(fresh)
            .on_conflict(
                OnConflict::columns([rows::Column::EndpointId, rows::Column::DataplaneId, rows::Column::Minute])
                    .do_nothing()
                    .to_owned(),
            )
            .do_nothing()
            .exec_without_returning(c)
            .await?;
        if matches!(inserted, TryInsertResult::Inserted(n) if n > 0) {
            continue;
        }
        // The row exists: add to it, holding it against a concurrent report
        // (FOR UPDATE on PostgreSQL; SQLite has one writer).
        let Some(row) =
            rows::Entity::find_by_id((endpoint_id, dataplane_id.to_owned(), minute)).lock_exclusive().one(c).await?
        else {
            continue;
        };
        let mut buckets: Vec<u64> = serde_json::from_str(&row.latency_buckets).unwrap_or_default();
        add_buckets(&mut buckets, &m.buckets);
        buckets.truncate(MAX_BUCKETS);
        let newer = until >= row.reported_at;
        let mut am: rows::ActiveModel = row.clone().into();
        am.requests = Set(row.requests.saturating_add(clamp(m.requests)));
        am.throttles = Set(row.throttles.saturating_add(clamp(m.throttles)));
        am.errors = Set(row.errors.saturating_add(clamp(m.errors)));
        am.latency_buckets = Set(serde_json::to_string(&buckets).unwrap_or_else(|_| "[]".into()));
        if newer {
            am.circuit = Set(m.circuit.as_str().to_owned());
            am.reported_at = Set(until);
        }
        am.update(c).await?;
    }
    Ok(())
}

/// Rows older than `KEEP_DAYS`.
pub async fn prune<C: ConnectionTrait>(c: &C, now: DateTime<Utc>) -> Result<u64, DbErr> {
    let before = (now - chrono::Duration::days(KEEP_DAYS)).timestamp().div_euclid(60);
    Ok(rows::Entity::delete_many().filter(rows::Column::Minute.lt(before)).exec(c).await?.rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str, until_ms: u64, requests: u64, buckets: Vec<u64>, circuit: CircuitState) -> EndpointReport {
        EndpointReport {
            endpoint_id: id.into(),
            requests,
            throttles: 1,
            errors: 0,
            latency_buckets: buckets,
            circuit: circuit as i32,
            until_ms,
        }
    }

    #[test]
    fn reports_of_one_minute_add_up_and_the_last_circuit_stands() {
        let now = Utc.timestamp_opt(6_000, 0).unwrap();
        let m = merge(
            &[
                report("ep", 6_000_000, 3, vec![1, 2], CircuitState::Open),
                report("ep", 6_010_000, 2, vec![0, 1, 1], CircuitState::Closed),
                report("ep", 6_060_000, 1, vec![], CircuitState::Closed),
                report("", 6_000_000, 9, vec![], CircuitState::Closed),
            ],
            now,
        );
        assert_eq!(m.len(), 2, "{m:?}");
        let first = &m[&("ep".to_string(), 100)];
        assert_eq!((first.requests, first.throttles, first.buckets.clone()), (5, 2, vec![1, 3, 1]));
        assert_eq!(first.circuit, Circuit::Closed);
        assert_eq!(first.until, Utc.timestamp_millis_opt(6_010_000).single());
        assert_eq!(m[&("ep".to_string(), 101)].requests, 1);
    }

    #[test]
    fn a_report_without_a_time_or_from_the_future_counts_now() {
        let now = Utc.timestamp_opt(600, 0).unwrap();
        let m = merge(
            &[
                report("a", 0, 1, vec![], CircuitState::Unspecified),
                report("b", 10_000_000_000, 1, vec![], CircuitState::Unspecified),
            ],
            now,
        );
        assert!(m.contains_key(&("a".to_string(), 10)) && m.contains_key(&("b".to_string(), 10)), "{m:?}");
        assert_eq!(m[&("a".to_string(), 10)].circuit, Circuit::Unknown);
    }

    #[test]
    fn oversized_histograms_are_cut() {
        let m = merge(&[report("a", 60_000, 1, vec![1; 500], CircuitState::Closed)], Utc::now());
        assert_eq!(m[&("a".to_string(), 1)].buckets.len(), MAX_BUCKETS);
    }
}
