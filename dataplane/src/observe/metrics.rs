//! The data plane's Prometheus metrics: the OpenTelemetry GenAI server
//! metrics and the gateway's own, in a registry of their own.
//!
//! Nearly everything is derived off the request path. Usage records are
//! observed by the usage writer after the request has finished
//! ([`Metrics::observe`]); gauges and per-endpoint counts are read from the
//! state that already holds them when `/metrics` is scraped
//! ([`Metrics::refresh`]). The request path itself only bumps a
//! preallocated counter for its status and, on a refusal, the refusal's.
//!
//! Labels are bounded: model names (the one client-chosen value) are capped
//! at [`MAX_MODELS`] per process, endpoints are the operator's, the rest are
//! fixed sets.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::usage::{Outcome, UsageRecord};

/// Distinct `gen_ai_request_model` values kept; later ones are `other`.
pub const MAX_MODELS: usize = 64;
/// The value of `gen_ai.provider.name` for Bedrock.
pub const PROVIDER: &str = "aws.bedrock";

/// `gen_ai.server.request.duration`: the GenAI conventions' advised buckets.
pub(super) const DURATION_BUCKETS: &[f64] =
    &[0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92];
pub(super) const TTFT_BUCKETS: &[f64] =
    &[0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];
pub(super) const TPOT_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5];
pub(super) const TOKEN_BUCKETS: &[f64] = &[
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
    67108864.0,
];

/// The request routes the status counter tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteLabel {
    Messages = 0,
    CountTokens,
    Models,
    Telemetry,
    Signin,
    Health,
    Ready,
    Other,
}

impl RouteLabel {
    const ALL: [RouteLabel; 8] = [
        RouteLabel::Messages,
        RouteLabel::CountTokens,
        RouteLabel::Models,
        RouteLabel::Telemetry,
        RouteLabel::Signin,
        RouteLabel::Health,
        RouteLabel::Ready,
        RouteLabel::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RouteLabel::Messages => "messages",
            RouteLabel::CountTokens => "count_tokens",
            RouteLabel::Models => "models",
            RouteLabel::Telemetry => "telemetry",
            RouteLabel::Signin => "signin",
            RouteLabel::Health => "health",
            RouteLabel::Ready => "ready",
            RouteLabel::Other => "other",
        }
    }
}

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn status_class(status: u16) -> usize {
    usize::from(status / 100).clamp(1, 5) - 1
}

/// Values read when `/metrics` is scraped, from the state that holds them.
#[derive(Debug, Default, Clone, Copy)]
pub struct Snapshot {
    pub in_flight: i64,
    pub connections: i64,
    pub streams: i64,
    pub config_revision: Option<u64>,
    pub config_age_secs: Option<f64>,
    pub control_connected: bool,
    pub draining: bool,
}

/// What the usage writer knows of undelivered records.
#[derive(Debug, Default)]
pub struct SpoolStatus {
    pub bytes: AtomicU64,
    /// Unix ms at which the oldest undelivered record started; 0: none.
    pub oldest_ms: AtomicU64,
    /// Times the writer has read the spool: a reading after a given moment
    /// is one that began after it once this has moved by two.
    pub peeks: AtomicU64,
}

pub struct Metrics {
    registry: Registry,
    duration: HistogramVec,
    ttft: HistogramVec,
    tpot: HistogramVec,
    tokens: HistogramVec,
    inference: IntCounterVec,
    http: IntCounterVec,
    /// `http` for each route and status class without an error type, made
    /// on first use, so that a request's count is one atomic add.
    http_plain: [[OnceLock<IntCounter>; 5]; RouteLabel::ALL.len()],
    rate_limited: IntCounterVec,
    budget_refused: IntCounterVec,
    attempts: IntCounterVec,
    circuit_open: IntGaugeVec,
    in_flight: IntGauge,
    connections: IntGauge,
    streams: IntGauge,
    config_revision: IntGauge,
    config_age: Gauge,
    control_connected: IntGauge,
    spool_bytes: IntGauge,
    spool_age: Gauge,
    dropped: IntCounter,
    draining: IntGauge,
    pub spool: SpoolStatus,
    models: Mutex<HashSet<Box<str>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: &[f64], labels: &[&str]) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels)
        .expect("histogram options are valid");
    registry.register(Box::new(h.clone())).expect("metric names are unique");
    h
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("counter options are valid");
    registry.register(Box::new(c.clone())).expect("metric names are unique");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("gauge options are valid");
    registry.register(Box::new(g.clone())).expect("metric names are unique");
    g
}

fn float_gauge(registry: &Registry, name: &str, help: &str) -> Gauge {
    let g = Gauge::new(name, help).expect("gauge options are valid");
    registry.register(Box::new(g.clone())).expect("metric names are unique");
    g
}

const GENAI: &[&str] = &["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "endpoint"];

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))
            .expect("process metrics register once");
        let build = IntGaugeVec::new(Opts::new("ccag_build_info", "The running build."), &["version", "plane"])
            .expect("gauge options are valid");
        build.with_label_values(&[env!("CARGO_PKG_VERSION"), "dataplane"]).set(1);
        registry.register(Box::new(build)).expect("metric names are unique");

        let duration = histogram(
            &registry,
            "gen_ai_server_request_duration_seconds",
            "GenAI operation duration, from the request's arrival to its last byte.",
            DURATION_BUCKETS,
            &["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "endpoint", "error_type"],
        );
        let ttft = histogram(
            &registry,
            "gen_ai_server_time_to_first_token_seconds",
            "Time from the request's arrival to its first content, for streamed responses.",
            TTFT_BUCKETS,
            GENAI,
        );
        let tpot = histogram(
            &registry,
            "gen_ai_server_time_per_output_token_seconds",
            "Time per output token after the first, for streamed responses.",
            TPOT_BUCKETS,
            GENAI,
        );
        let tokens = histogram(
            &registry,
            "gen_ai_client_token_usage",
            "Tokens per request, by type (input, output, cache_read, cache_creation).",
            TOKEN_BUCKETS,
            &["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_token_type"],
        );
        let inference = counter_vec(
            &registry,
            "ccag_inference_requests_total",
            "Inference requests finished, by model, endpoint and outcome.",
            &["gen_ai_request_model", "endpoint", "outcome"],
        );
        let http = counter_vec(
            &registry,
            "ccag_http_requests_total",
            "Requests answered on the public listener, by route, status class and Anthropic error type.",
            &["route", "status_class", "error_type"],
        );
        let http_plain = Default::default();
        let rate_limited = counter_vec(
            &registry,
            "ccag_rate_limit_refusals_total",
            "Requests refused by a gateway rate limit, by the limit's scope.",
            &["scope"],
        );
        let budget_refused = counter_vec(
            &registry,
            "ccag_budget_refusals_total",
            "Requests refused because a budget is spent, held or shaping, by reason.",
            &["reason"],
        );
        let attempts = counter_vec(
            &registry,
            "ccag_bedrock_attempts_total",
            "Bedrock calls by endpoint and result (ok, throttled, failed, refused).",
            &["endpoint", "result"],
        );
        let circuit_open = IntGaugeVec::new(
            Opts::new("ccag_endpoint_circuit_open", "1 while an endpoint's circuit is open."),
            &["endpoint"],
        )
        .expect("gauge options are valid");
        registry.register(Box::new(circuit_open.clone())).expect("metric names are unique");
        Metrics {
            duration,
            ttft,
            tpot,
            tokens,
            inference,
            http,
            http_plain,
            rate_limited,
            budget_refused,
            attempts,
            circuit_open,
            in_flight: gauge(&registry, "ccag_requests_in_flight", "Requests being handled, streams included."),
            connections: gauge(&registry, "ccag_connections_open", "Open client connections."),
            streams: gauge(&registry, "ccag_streams_open", "Streamed responses being sent."),
            config_revision: gauge(&registry, "ccag_config_revision", "The configuration revision held."),
            config_age: float_gauge(
                &registry,
                "ccag_config_age_seconds",
                "Seconds since the configuration was last received or confirmed.",
            ),
            control_connected: gauge(
                &registry,
                "ccag_control_plane_connected",
                "1 while the configuration watch stream is connected.",
            ),
            spool_bytes: gauge(&registry, "ccag_usage_spool_bytes", "Bytes of usage records not yet delivered."),
            spool_age: float_gauge(
                &registry,
                "ccag_usage_spool_oldest_age_seconds",
                "Age of the oldest usage record not yet delivered (0: none).",
            ),
            dropped: {
                let c = IntCounter::new("ccag_usage_records_dropped_total", "Usage records lost (channel full).")
                    .expect("counter options are valid");
                registry.register(Box::new(c.clone())).expect("metric names are unique");
                c
            },
            draining: gauge(&registry, "ccag_draining", "1 once shutdown began: in-flight requests are finishing."),
            spool: SpoolStatus::default(),
            models: Mutex::new(HashSet::new()),
            registry,
        }
    }

    /// Counts a finished request of the public listener. One atomic add
    /// unless it failed.
    pub fn http_request(&self, route: RouteLabel, status: u16, error_type: Option<&'static str>) {
        let class = status_class(status);
        match error_type {
            None => self.http_plain[route as usize][class]
                .get_or_init(|| self.http.with_label_values(&[route.as_str(), STATUS_CLASSES[class], ""]))
                .inc(),
            Some(kind) => self.http.with_label_values(&[route.as_str(), STATUS_CLASSES[class], kind]).inc(),
        }
    }

    pub fn rate_limited(&self, scope: &'static str) {
        self.rate_limited.with_label_values(&[scope]).inc();
    }

    /// `reason`: `exhausted`, `held` (awaiting the control plane's count)
    /// or `shaped`.
    pub fn budget_refused(&self, reason: &'static str) {
        self.budget_refused.with_label_values(&[reason]).inc();
    }

    /// The counter of usage records lost, for the usage sink.
    pub fn dropped_counter(&self) -> IntCounter {
        self.dropped.clone()
    }

    /// The model label for `model`: itself while fewer than
    /// [`MAX_MODELS`] are known, else `other`.
    fn model_label<'a>(&self, model: &'a str) -> &'a str {
        if model.is_empty() {
            return "unknown";
        }
        let mut known = self.models.lock().unwrap_or_else(|e| e.into_inner());
        if known.contains(model) {
            return model;
        }
        if known.len() < MAX_MODELS {
            known.insert(model.into());
            return model;
        }
        "other"
    }

    /// Observes a finished request's usage record. `endpoint` is the name
    /// of the endpoint that answered (see [`endpoint_label`]).
    pub fn observe<'r>(&self, r: &'r UsageRecord, endpoint: &str) -> &'r str {
        let model = self.model_label(&r.model);
        let op = operation_name(&r.operation);
        let err = error_type(r.outcome, r.status);
        let secs = r.duration_ms as f64 / 1000.0;
        self.duration.with_label_values(&[op, PROVIDER, model, endpoint, err]).observe(secs);
        self.inference.with_label_values(&[model, endpoint, r.outcome.as_str()]).inc();
        if let (true, Some(ttft)) = (r.stream, r.ttft_ms) {
            self.ttft.with_label_values(&[op, PROVIDER, model, endpoint]).observe(ttft as f64 / 1000.0);
            if let Some(per) = time_per_output_token(r) {
                self.tpot.with_label_values(&[op, PROVIDER, model, endpoint]).observe(per);
            }
        }
        let u = &r.usage;
        let called = !r.bedrock_model.is_empty() && (r.outcome == Outcome::Ok || u.input_tokens + u.output_tokens > 0);
        if called {
            for (kind, n, always) in [
                ("input", u.input_tokens, true),
                ("output", u.output_tokens, true),
                ("cache_read", u.cache_read_input_tokens, false),
                ("cache_creation", u.cache_creation_input_tokens, false),
            ] {
                if always || n > 0 {
                    self.tokens.with_label_values(&[op, PROVIDER, model, kind]).observe(n as f64);
                }
            }
        }
        model
    }

    /// Sets the gauges and per-endpoint counts from their sources.
    pub fn refresh(&self, s: &Snapshot, routes: &[crate::routing::Route], now_ms: u64) {
        self.in_flight.set(s.in_flight);
        self.connections.set(s.connections);
        self.streams.set(s.streams);
        self.config_revision.set(s.config_revision.map_or(0, |v| i64::try_from(v).unwrap_or(i64::MAX)));
        self.config_age.set(s.config_age_secs.unwrap_or(0.0));
        self.control_connected.set(i64::from(s.control_connected));
        self.draining.set(i64::from(s.draining));
        self.spool_bytes.set(i64::try_from(self.spool.bytes.load(Ordering::Relaxed)).unwrap_or(i64::MAX));
        let oldest = self.spool.oldest_ms.load(Ordering::Relaxed);
        self.spool_age.set(if oldest == 0 { 0.0 } else { now_ms.saturating_sub(oldest) as f64 / 1000.0 });
        for route in routes {
            let name = endpoint_name(&route.spec);
            let totals = route.health.totals();
            for result in crate::routing::AttemptResult::ALL {
                // The endpoint's own count is the truth; the counter is
                // brought up to it (only this scrape writes it).
                let c = self.attempts.with_label_values(&[name, result.as_str()]);
                let total = totals[result as usize];
                let seen = c.get();
                if total > seen {
                    c.inc_by(total - seen);
                }
            }
            let open = !matches!(route.health.circuit(), crate::routing::Circuit::Closed { .. });
            self.circuit_open.with_label_values(&[name]).set(i64::from(open));
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::with_capacity(16 * 1024);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "metrics did not encode");
        }
        String::from_utf8(buf).unwrap_or_default()
    }

    /// The registry's families, for the OTLP bridge.
    pub(crate) fn http_counter(&self) -> &IntCounterVec {
        &self.http
    }
}

/// The name an endpoint goes by in labels.
pub fn endpoint_name(spec: &crate::routing::EndpointSpec) -> &str {
    if spec.id.is_empty() {
        "default"
    } else {
        &spec.name
    }
}

/// The endpoint label of a record: the name of its endpoint among
/// `endpoints` (the configuration's), `none` when no endpoint was called,
/// `other` for one deleted since.
pub fn endpoint_label<'a>(r: &UsageRecord, endpoints: &'a [std::sync::Arc<crate::routing::EndpointSpec>]) -> &'a str {
    if r.attempts == 0 {
        return "none";
    }
    if r.endpoint_id.is_empty() {
        return "default";
    }
    endpoints.iter().find(|x| x.id == r.endpoint_id).map_or("other", |x| endpoint_name(x))
}

/// `gen_ai.operation.name`: a Messages call is a chat.
pub fn operation_name(operation: &str) -> &'static str {
    match operation {
        "messages" => "chat",
        "count_tokens" => "count_tokens",
        _ => "other",
    }
}

/// `error.type`: empty for success, else the Anthropic error type of the
/// status, or what went wrong mid-stream.
pub fn error_type(outcome: Outcome, status: u16) -> &'static str {
    match outcome {
        Outcome::Ok => "",
        Outcome::StreamError => "stream_error",
        Outcome::ClientClosed => "client_closed",
        Outcome::RateLimited | Outcome::BudgetBlocked => "rate_limit_error",
        Outcome::Error => match status {
            400 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            504 => "timeout_error",
            529 => "overloaded_error",
            _ => "api_error",
        },
    }
}

/// Seconds per output token after the first: a stream's pace.
fn time_per_output_token(r: &UsageRecord) -> Option<f64> {
    let ttft = r.ttft_ms?;
    let n = r.usage.output_tokens;
    (n > 1 && r.duration_ms >= ttft).then(|| (r.duration_ms - ttft) as f64 / 1000.0 / (n - 1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::Meter;

    fn record(model: &str, outcome: Outcome, status: u16) -> UsageRecord {
        let mut m = Meter::start("req_x", "messages");
        m.record.model = model.into();
        m.record.bedrock_model = "us.anthropic.claude".into();
        m.record.attempts = 1;
        let usage = crate::usage::Usage { input_tokens: 10, output_tokens: 5, ..Default::default() };
        m.finish(status, outcome, usage)
    }

    #[test]
    fn the_exposition_names_every_family_with_help() {
        let m = Metrics::new();
        m.observe(&record("claude-sonnet-4-5", Outcome::Ok, 200), "east");
        m.http_request(RouteLabel::Messages, 200, None);
        let text = m.render();
        for name in [
            "gen_ai_server_request_duration_seconds_bucket",
            "gen_ai_client_token_usage_sum",
            "ccag_http_requests_total",
            "ccag_inference_requests_total",
            "ccag_build_info",
        ] {
            assert!(text.contains(name), "{name} missing:\n{text}");
        }
        assert!(text.contains("# HELP gen_ai_server_request_duration_seconds "));
    }

    #[test]
    fn model_labels_stop_growing_at_the_cap() {
        let m = Metrics::new();
        for i in 0..MAX_MODELS + 10 {
            m.observe(&record(&format!("model-{i}"), Outcome::Ok, 200), "east");
        }
        let text = m.render();
        let models: HashSet<&str> = text
            .lines()
            .filter(|l| l.starts_with("ccag_inference_requests_total{"))
            .filter_map(|l| l.split("gen_ai_request_model=\"").nth(1)?.split('"').next())
            .collect();
        assert_eq!(models.len(), MAX_MODELS + 1, "the cap plus `other`");
        assert!(models.contains("other"));
    }

    #[test]
    fn a_known_model_keeps_its_label_after_the_cap() {
        let m = Metrics::new();
        m.observe(&record("first", Outcome::Ok, 200), "east");
        for i in 0..MAX_MODELS + 1 {
            m.observe(&record(&format!("model-{i}"), Outcome::Ok, 200), "east");
        }
        m.observe(&record("first", Outcome::Ok, 200), "east");
        assert!(m.render().contains(r#"gen_ai_request_model="first",outcome="ok"} 2"#));
    }

    #[test]
    fn failures_carry_their_error_type() {
        assert_eq!(error_type(Outcome::Error, 529), "overloaded_error");
        assert_eq!(error_type(Outcome::Error, 401), "authentication_error");
        assert_eq!(error_type(Outcome::StreamError, 200), "stream_error");
        assert_eq!(error_type(Outcome::Ok, 200), "");
    }

    #[test]
    fn a_plain_status_and_an_error_land_in_the_same_family() {
        let m = Metrics::new();
        m.http_request(RouteLabel::Messages, 200, None);
        m.http_request(RouteLabel::Messages, 401, Some("authentication_error"));
        let text = m.render();
        assert!(text.contains(r#"ccag_http_requests_total{error_type="",route="messages",status_class="2xx"} 1"#));
        assert!(text.contains(
            r#"ccag_http_requests_total{error_type="authentication_error",route="messages",status_class="4xx"} 1"#
        ));
    }

    #[test]
    fn time_per_output_token_is_the_pace_after_the_first() {
        let mut r = record("m", Outcome::Ok, 200);
        r.stream = true;
        r.ttft_ms = Some(100);
        r.duration_ms = 1100;
        r.usage.output_tokens = 11;
        assert_eq!(time_per_output_token(&r), Some(0.1));
        r.usage.output_tokens = 1;
        assert_eq!(time_per_output_token(&r), None);
    }
}
