//! Prometheus metrics of this replica, served at `GET /metrics` on the HTTP
//! listener (`crate::http`) in the text format 0.0.4.
//!
//! `Metrics` owns its own registry (never the process-global one), with the
//! process collector and `ccag_build_info`. Counters and histograms are
//! moved where things happen: the admin API by the tower layer in `grpc`,
//! the HTTP listener by its router, the fleet by the watch stream and the
//! usage reports, notifications by the delivery worker. Gauges that are a
//! view of state (data planes connected, the revision, the database pool,
//! the lease) are read at scrape time (`Snapshot`).
//!
//! Every label is bounded: a fixed list, or a name from this code base
//! (gRPC services and methods of the descriptor sets, see `grpc`); never a
//! key, user, team or request id, nor a raw string a client sent.

pub mod grpc;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// What `GET /metrics` answers with.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Admin API calls: a millisecond to a minute.
const CALL_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// A revision reaching a data plane: milliseconds normally, seconds when
/// something is slow.
const PUSH_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// Usage arriving: seconds (the data planes' flush interval) to an hour
/// (a data plane that was cut off and sends its spool).
const LAG_BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0];

/// The outcomes of one notification delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The destination took it.
    Delivered,
    /// It failed and will be tried again.
    Retrying,
    /// It failed and the retry window is over: it is dead.
    Dead,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Delivered => "delivered",
            Delivery::Retrying => "retrying",
            Delivery::Dead => "dead",
        }
    }
}

pub struct Metrics {
    registry: Registry,
    /// {service, method, code}.
    pub admin_requests: IntCounterVec,
    /// {service, method}.
    pub admin_duration: HistogramVec,
    /// {route, status_class}.
    http_requests: IntCounterVec,
    dataplanes_connected: IntGauge,
    config_revision: IntGauge,
    config_push: Histogram,
    config_nacks: IntCounter,
    /// {result}.
    usage_ingested: IntCounterVec,
    usage_lag: Histogram,
    /// {channel, outcome}.
    deliveries: IntCounterVec,
    /// {state}.
    db_pool: IntGaugeVec,
    db_pool_max: IntGauge,
    leader_gauge: IntGauge,
    /// Set by the `housekeeping` lease while this replica holds it.
    pub leader: Arc<AtomicBool>,
}

/// The state the scrape-time gauges show.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Data planes streaming from this replica.
    pub dataplanes: usize,
    /// The revision this replica publishes.
    pub revision: u64,
    /// (idle, in use, max) of the database pool.
    pub pool: Option<(u64, u64, u64)>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        fn reg<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
            r.register(Box::new(c.clone())).expect("metric names are unique");
            c
        }
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))
            .expect("process metrics register once");
        let build = reg(
            &registry,
            IntGaugeVec::new(
                Opts::new("ccag_build_info", "The running build: always 1, with its version as a label."),
                &["version", "plane"],
            )
            .expect("valid metric"),
        );
        build.with_label_values(&[env!("CARGO_PKG_VERSION"), "controlplane"]).set(1);
        let counter = |name: &str, help: &str, labels: &[&str]| {
            reg(&registry, IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
        };
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            reg(
                &registry,
                Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec())).expect("valid metric"),
            )
        };
        let gauge = |name: &str, help: &str| reg(&registry, IntGauge::new(name, help).expect("valid metric"));
        let m = Metrics {
            admin_requests: counter(
                "ccag_admin_api_requests_total",
                "gRPC calls answered, by fully qualified service, method and gRPC status code.",
                &["service", "method", "code"],
            ),
            admin_duration: reg(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "ccag_admin_api_request_duration_seconds",
                        "Time from a gRPC call's arrival to its status (for streams: the stream's life).",
                    )
                    .buckets(CALL_BUCKETS.to_vec()),
                    &["service", "method"],
                )
                .expect("valid metric"),
            ),
            http_requests: counter(
                "ccag_http_requests_total",
                "HTTP listener requests answered, by route and status class.",
                &["route", "status_class"],
            ),
            dataplanes_connected: gauge(
                "ccag_dataplanes_connected",
                "Data planes whose configuration stream is open on this replica.",
            ),
            config_revision: gauge("ccag_config_revision", "The configuration revision this replica publishes."),
            config_push: histogram(
                "ccag_config_push_duration_seconds",
                "Time from a revision's commit on this replica (or when this replica first learnt of it) \
                 to a data plane's acknowledgement of it.",
                PUSH_BUCKETS,
            ),
            config_nacks: reg(
                &registry,
                IntCounter::new("ccag_config_nacks_total", "Configuration responses data planes refused (NACK).")
                    .expect("valid metric"),
            ),
            usage_ingested: counter(
                "ccag_usage_records_ingested_total",
                "Usage records received from data planes: stored, or a duplicate of one stored before.",
                &["result"],
            ),
            usage_lag: histogram(
                "ccag_usage_ingest_lag_seconds",
                "Time from a request's end (its start plus its duration) to its usage record being stored.",
                LAG_BUCKETS,
            ),
            deliveries: counter(
                "ccag_notification_deliveries_total",
                "Notification delivery attempts, by destination kind and outcome.",
                &["channel", "outcome"],
            ),
            db_pool: reg(
                &registry,
                IntGaugeVec::new(
                    Opts::new("ccag_db_pool_connections", "Database connections of this replica's pool, by state."),
                    &["state"],
                )
                .expect("valid metric"),
            ),
            db_pool_max: gauge("ccag_db_pool_max_connections", "The most connections this replica's pool opens."),
            leader_gauge: gauge(
                "ccag_leader",
                "1 while this replica holds the housekeeping lease (the singleton jobs), else 0.",
            ),
            leader: Arc::new(AtomicBool::new(false)),
            registry,
        };
        // Series that exist from the start, so rates and alerts see zeros.
        for result in ["stored", "duplicate"] {
            m.usage_ingested.with_label_values(&[result]);
        }
        for kind in [
            crate::store::DestinationKind::Webhook,
            crate::store::DestinationKind::Sns,
            crate::store::DestinationKind::EventBridge,
        ] {
            for outcome in [Delivery::Delivered, Delivery::Retrying, Delivery::Dead] {
                m.deliveries.with_label_values(&[kind.as_str(), outcome.as_str()]);
            }
        }
        m
    }

    /// One answered request of the HTTP listener; `route` is the router's
    /// name for it (`crate::http`), never the path.
    pub fn http_request(&self, route: &'static str, status: http::StatusCode) {
        self.http_requests.with_label_values(&[route, status_class(status)]).inc();
    }

    /// A data plane acknowledged a revision `since` after it was published.
    pub fn config_pushed(&self, since: Duration) {
        self.config_push.observe(since.as_secs_f64());
    }

    pub fn config_refused(&self) {
        self.config_nacks.inc();
    }

    /// A usage report was stored: `stored` new records, `duplicates` seen
    /// before, and how long after their end each record arrived.
    pub fn usage_ingested(&self, stored: u64, duplicates: u64, lags: impl IntoIterator<Item = Duration>) {
        self.usage_ingested.with_label_values(&["stored"]).inc_by(stored);
        self.usage_ingested.with_label_values(&["duplicate"]).inc_by(duplicates);
        for lag in lags {
            self.usage_lag.observe(lag.as_secs_f64());
        }
    }

    pub fn delivery(&self, channel: crate::store::DestinationKind, outcome: Delivery) {
        self.deliveries.with_label_values(&[channel.as_str(), outcome.as_str()]).inc();
    }

    /// The text exposition, with the gauges set from `now` first.
    pub fn render(&self, now: &Snapshot) -> String {
        self.dataplanes_connected.set(i64::try_from(now.dataplanes).unwrap_or(i64::MAX));
        self.config_revision.set(i64::try_from(now.revision).unwrap_or(i64::MAX));
        if let Some((idle, in_use, max)) = now.pool {
            let g = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            self.db_pool.with_label_values(&["idle"]).set(g(idle));
            self.db_pool.with_label_values(&["in_use"]).set(g(in_use));
            self.db_pool_max.set(g(max));
        }
        self.leader_gauge.set(i64::from(self.leader.load(Ordering::Relaxed)));
        prometheus::TextEncoder::new().encode_to_string(&self.registry.gather()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot encode the metrics");
            String::new()
        })
    }
}

/// `2xx` for 200..=299, and so on.
pub fn status_class(status: http::StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// How long after a request's end (`started_at_ms + duration_ms`, in Unix
/// milliseconds) `now_ms` is; zero for a clock ahead of ours.
pub fn ingest_lag(now_ms: i64, started_at_ms: u64, duration_ms: u64) -> Duration {
    let ended = i64::try_from(started_at_ms.saturating_add(duration_ms)).unwrap_or(i64::MAX);
    Duration::from_millis(u64::try_from(now_ms.saturating_sub(ended)).unwrap_or(0))
}

/// The scrape-time view of this replica.
pub fn snapshot(ctx: &crate::api::Ctx) -> Snapshot {
    Snapshot {
        dataplanes: ctx.registry.local_count(),
        revision: ctx.publisher.committed().revision,
        pool: Some(pool(&ctx.db, ctx.backend)),
    }
}

/// (idle, in use, max) of the database pool.
fn pool(db: &sea_orm::DatabaseConnection, backend: crate::store::Backend) -> (u64, u64, u64) {
    fn of<DB: sea_orm::sqlx::Database>(p: &sea_orm::sqlx::Pool<DB>) -> (u64, u64, u64) {
        let size = u64::from(p.size());
        let idle = (p.num_idle() as u64).min(size);
        (idle, size - idle, u64::from(p.options().get_max_connections()))
    }
    match backend {
        crate::store::Backend::Postgres => of(db.get_postgres_connection_pool()),
        crate::store::Backend::Sqlite => of(db.get_sqlite_connection_pool()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes_are_the_hundreds() {
        assert_eq!(status_class(http::StatusCode::OK), "2xx");
        assert_eq!(status_class(http::StatusCode::FOUND), "3xx");
        assert_eq!(status_class(http::StatusCode::NOT_FOUND), "4xx");
        assert_eq!(status_class(http::StatusCode::SERVICE_UNAVAILABLE), "5xx");
    }

    #[test]
    fn ingest_lag_runs_from_the_end_of_the_request() {
        assert_eq!(ingest_lag(10_000, 4_000, 1_000), Duration::from_secs(5));
    }

    #[test]
    fn ingest_lag_of_a_record_from_the_future_is_zero() {
        assert_eq!(ingest_lag(10_000, 9_500, 1_000), Duration::ZERO);
    }

    #[test]
    fn the_exposition_has_build_info_and_every_family() {
        let m = Metrics::new();
        let text = m.render(&Snapshot { dataplanes: 2, revision: 7, pool: Some((1, 2, 5)) });
        assert!(text.contains(&format!(
            "ccag_build_info{{plane=\"controlplane\",version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
        for line in [
            "ccag_dataplanes_connected 2",
            "ccag_config_revision 7",
            "ccag_db_pool_connections{state=\"idle\"} 1",
            "ccag_db_pool_connections{state=\"in_use\"} 2",
            "ccag_db_pool_max_connections 5",
            "ccag_leader 0",
            "ccag_usage_records_ingested_total{result=\"stored\"} 0",
            "ccag_notification_deliveries_total{channel=\"eventbridge\",outcome=\"dead\"} 0",
            "ccag_config_nacks_total 0",
            "ccag_config_push_duration_seconds_count 0",
            "ccag_usage_ingest_lag_seconds_count 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
        }
    }

    #[test]
    fn the_leader_gauge_follows_the_lease_flag() {
        let m = Metrics::new();
        m.leader.store(true, Ordering::Relaxed);
        assert!(m.render(&Snapshot::default()).lines().any(|l| l == "ccag_leader 1"));
    }

    #[test]
    fn usage_counts_and_lags_are_recorded() {
        let m = Metrics::new();
        m.usage_ingested(2, 1, [Duration::from_millis(300), Duration::from_secs(4000)]);
        let text = m.render(&Snapshot::default());
        for line in [
            "ccag_usage_records_ingested_total{result=\"stored\"} 2",
            "ccag_usage_records_ingested_total{result=\"duplicate\"} 1",
            "ccag_usage_ingest_lag_seconds_bucket{le=\"0.5\"} 1",
            "ccag_usage_ingest_lag_seconds_bucket{le=\"3600\"} 1",
            "ccag_usage_ingest_lag_seconds_count 2",
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
        }
    }
}
