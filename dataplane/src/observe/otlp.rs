//! OTLP export of traces and metrics, when the standard `OTEL_*` variables
//! ask for it (`OTEL_EXPORTER_OTLP_ENDPOINT` or the per-signal endpoints;
//! `OTEL_EXPORTER_OTLP_PROTOCOL` `grpc` or `http/protobuf`).
//!
//! A request's span is made from its usage record once the request has
//! finished, with the request's own start and end times: nothing on the
//! request path creates, holds or ends a span, and a streamed response's
//! span covers its last byte. The client's W3C `traceparent`, parsed on the
//! way in ([`TraceParent`]), is the span's parent.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::BodyExt;
use opentelemetry::metrics::{Histogram, MeterProvider as _};
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer as _,
    TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{WithHttpConfig as _, WithTonicConfig as _};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;

use super::metrics::{error_type, operation_name, Metrics, PROVIDER};
use crate::usage::UsageRecord;

/// A W3C trace context from the `traceparent` header: 28 bytes, no heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub flags: u8,
}

impl TraceParent {
    /// Parses `00-<32 hex>-<16 hex>-<2 hex>` (later versions: the same
    /// prefix, as the specification asks). All-zero ids are invalid.
    pub fn parse(v: &[u8]) -> Option<TraceParent> {
        if v.len() < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
            return None;
        }
        let version = hex_byte(&v[0..2])?;
        if version == 0xff || (version == 0 && v.len() != 55) || (version > 0 && v.len() > 55 && v[55] != b'-') {
            return None;
        }
        let mut tp = TraceParent { trace_id: [0; 16], span_id: [0; 8], flags: hex_byte(&v[53..55])? };
        for (i, b) in tp.trace_id.iter_mut().enumerate() {
            *b = hex_byte(&v[3 + 2 * i..5 + 2 * i])?;
        }
        for (i, b) in tp.span_id.iter_mut().enumerate() {
            *b = hex_byte(&v[36 + 2 * i..38 + 2 * i])?;
        }
        (tp.trace_id != [0; 16] && tp.span_id != [0; 8]).then_some(tp)
    }

    pub fn from_headers(h: &http::HeaderMap) -> Option<TraceParent> {
        TraceParent::parse(h.get("traceparent")?.as_bytes())
    }
}

fn hex_byte(two: &[u8]) -> Option<u8> {
    let d = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    Some(d(two[0])? << 4 | d(two[1])?)
}

#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error("{var}={value:?}: the data plane exports OTLP as `grpc` or `http/protobuf`")]
    Protocol { var: &'static str, value: String },
    #[error("OTLP {signal} exporter: {source}")]
    Exporter {
        signal: &'static str,
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
    #[error("OTLP HTTP client: {0}")]
    Client(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Grpc,
    HttpProtobuf,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// The protocol of one signal: its own variable, else the general one,
/// else `http/protobuf` (the specification's default).
fn protocol(signal_var: &'static str) -> Result<Protocol, OtlpError> {
    let (name, value) = match var(signal_var) {
        Some(v) => (signal_var, v),
        None => match var("OTEL_EXPORTER_OTLP_PROTOCOL") {
            Some(v) => ("OTEL_EXPORTER_OTLP_PROTOCOL", v),
            None => return Ok(Protocol::HttpProtobuf),
        },
    };
    match value.as_str() {
        "grpc" => Ok(Protocol::Grpc),
        "http/protobuf" => Ok(Protocol::HttpProtobuf),
        _ => Err(OtlpError::Protocol { var: name, value }),
    }
}

/// Whether a signal is exported: an endpoint names where, and its
/// `OTEL_<SIGNAL>_EXPORTER` is not `none`.
fn wanted(endpoint_var: &str, exporter_var: &str) -> bool {
    if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return false;
    }
    let endpoint = var("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() || var(endpoint_var).is_some();
    endpoint && var(exporter_var).is_none_or(|v| v != "none")
}

/// The exporters, and the instruments records are observed into.
pub struct Otlp {
    traces: Option<(SdkTracerProvider, SdkTracer)>,
    metrics: Option<(SdkMeterProvider, Instruments)>,
}

struct Instruments {
    duration: Histogram<f64>,
    ttft: Histogram<f64>,
    tpot: Histogram<f64>,
    tokens: Histogram<u64>,
}

impl Otlp {
    /// `None` when no OTLP endpoint is configured. Must run inside the
    /// tokio runtime: the exporters run as its tasks.
    pub fn from_env(metrics: &std::sync::Arc<Metrics>, instance: &str) -> Result<Option<Otlp>, OtlpError> {
        let traces = wanted("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER");
        let exported_metrics = wanted("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_METRICS_EXPORTER");
        if !traces && !exported_metrics {
            return Ok(None);
        }
        let resource = Resource::builder()
            .with_service_name(var("OTEL_SERVICE_NAME").unwrap_or_else(|| "ccag-dataplane".into()))
            .with_attributes([
                KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
                KeyValue::new("service.instance.id", instance.to_owned()),
            ])
            .build();
        let traces = if traces { Some(tracing_pipeline(resource.clone())?) } else { None };
        let metrics = if exported_metrics { Some(metrics_pipeline(resource, metrics)?) } else { None };
        Ok(Some(Otlp { traces, metrics }))
    }

    pub fn traces(&self) -> bool {
        self.traces.is_some()
    }

    /// Exports a finished request: its span, and its GenAI measurements.
    pub fn observe(&self, r: &UsageRecord, endpoint: &str, model_label: &str) {
        let op = operation_name(&r.operation);
        let err = error_type(r.outcome, r.status);
        if let Some((_, tracer)) = &self.traces {
            span(tracer, r, op, err, endpoint);
        }
        if let Some((_, i)) = &self.metrics {
            let mut attrs = vec![
                KeyValue::new("gen_ai.operation.name", op),
                KeyValue::new("gen_ai.provider.name", PROVIDER),
                KeyValue::new("gen_ai.request.model", model_label.to_owned()),
                KeyValue::new("ccag.endpoint", endpoint.to_owned()),
            ];
            let common = attrs.len();
            if !err.is_empty() {
                attrs.push(KeyValue::new("error.type", err));
            }
            i.duration.record(r.duration_ms as f64 / 1000.0, &attrs);
            attrs.truncate(common);
            if let (true, Some(ttft)) = (r.stream, r.ttft_ms) {
                i.ttft.record(ttft as f64 / 1000.0, &attrs);
                let n = r.usage.output_tokens;
                if n > 1 && r.duration_ms >= ttft {
                    i.tpot.record((r.duration_ms - ttft) as f64 / 1000.0 / (n - 1) as f64, &attrs);
                }
            }
            if !r.bedrock_model.is_empty() {
                attrs.truncate(3);
                let u = &r.usage;
                for (kind, n) in [
                    ("input", u.input_tokens),
                    ("output", u.output_tokens),
                    ("cache_read", u.cache_read_input_tokens),
                    ("cache_creation", u.cache_creation_input_tokens),
                ] {
                    if n > 0 || kind == "input" || kind == "output" {
                        attrs.push(KeyValue::new("gen_ai.token.type", kind));
                        i.tokens.record(n, &attrs);
                        attrs.pop();
                    }
                }
            }
        }
    }

    /// Sends what is buffered and stops the exporters. Blocking: call it
    /// off the async workers.
    pub fn shutdown(&self) {
        if let Some((p, _)) = &self.traces {
            if let Err(e) = p.shutdown_with_timeout(Duration::from_secs(5)) {
                tracing::warn!(error = %e, "OTLP traces did not flush");
            }
        }
        if let Some((p, _)) = &self.metrics {
            if let Err(e) = p.shutdown_with_timeout(Duration::from_secs(5)) {
                tracing::warn!(error = %e, "OTLP metrics did not flush");
            }
        }
    }
}

fn span(tracer: &SdkTracer, r: &UsageRecord, op: &'static str, err: &'static str, endpoint: &str) {
    let start = UNIX_EPOCH + Duration::from_millis(r.started_at_ms);
    let end = start + Duration::from_millis(r.duration_ms);
    let u = &r.usage;
    let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let mut attrs = vec![
        KeyValue::new("gen_ai.operation.name", op),
        KeyValue::new("gen_ai.provider.name", PROVIDER),
        KeyValue::new("gen_ai.request.model", r.model.clone()),
        KeyValue::new("http.response.status_code", i64::from(r.status)),
        KeyValue::new("ccag.request_id", r.request_id.clone()),
        KeyValue::new("ccag.endpoint", endpoint.to_owned()),
        KeyValue::new("ccag.outcome", r.outcome.as_str()),
        KeyValue::new("ccag.stream", r.stream),
        KeyValue::new("ccag.attempts", i64::from(r.attempts)),
        KeyValue::new("gen_ai.usage.input_tokens", int(u.input_tokens)),
        KeyValue::new("gen_ai.usage.output_tokens", int(u.output_tokens)),
        KeyValue::new("gen_ai.usage.cache_read.input_tokens", int(u.cache_read_input_tokens)),
        KeyValue::new("gen_ai.usage.cache_creation.input_tokens", int(u.cache_creation_input_tokens)),
    ];
    if !r.bedrock_model.is_empty() {
        attrs.push(KeyValue::new("ccag.bedrock_model", r.bedrock_model.clone()));
    }
    if let Some(t) = r.ttft_ms {
        attrs.push(KeyValue::new("ccag.ttft_ms", int(t)));
    }
    if !err.is_empty() {
        attrs.push(KeyValue::new("error.type", err));
    }
    let model: String = r.model.chars().take(128).collect();
    let name = if model.is_empty() { Cow::Borrowed(op) } else { Cow::Owned(format!("{op} {model}")) };
    let parent = match r.trace {
        Some(tp) => Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from_bytes(tp.trace_id),
            SpanId::from_bytes(tp.span_id),
            TraceFlags::new(tp.flags),
            true,
            TraceState::default(),
        )),
        None => Context::new(),
    };
    let mut span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Server)
        .with_start_time(start)
        .with_attributes(attrs)
        .start_with_context(tracer, &parent);
    // As the HTTP conventions say for a server: a 4xx is the client's
    // affair (its error.type is kept), a 5xx or a broken stream is an error.
    if r.status >= 500 || r.outcome == crate::usage::Outcome::StreamError {
        span.set_status(Status::error(err));
    }
    span.end_with_timestamp(end);
}

/// Whether a signal's gRPC endpoint is `https://`: it then trusts the
/// system's roots (tonic's own default trusts none).
fn grpc_tls(signal_endpoint_var: &str) -> bool {
    var(signal_endpoint_var).or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT")).is_some_and(|u| u.starts_with("https://"))
}

fn native_roots() -> tonic::transport::ClientTlsConfig {
    tonic::transport::ClientTlsConfig::new().with_native_roots()
}

fn tracing_pipeline(resource: Resource) -> Result<(SdkTracerProvider, SdkTracer), OtlpError> {
    use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
    let builder = opentelemetry_otlp::SpanExporter::builder();
    let exporter = match protocol("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")? {
        Protocol::Grpc if grpc_tls("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") => {
            builder.with_tonic().with_tls_config(native_roots()).build()
        }
        Protocol::Grpc => builder.with_tonic().build(),
        Protocol::HttpProtobuf => builder.with_http().with_http_client(HttpClient::new()?).build(),
    }
    .map_err(|source| OtlpError::Exporter { signal: "traces", source })?;
    // The batch settings come from OTEL_BSP_* (schedule delay, queue size).
    let processor = BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
    let provider = SdkTracerProvider::builder().with_span_processor(processor).with_resource(resource).build();
    let tracer = provider.tracer("ccag-dataplane");
    Ok((provider, tracer))
}

fn metrics_pipeline(
    resource: Resource,
    metrics: &std::sync::Arc<Metrics>,
) -> Result<(SdkMeterProvider, Instruments), OtlpError> {
    use opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader;
    let builder = opentelemetry_otlp::MetricExporter::builder();
    let exporter = match protocol("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")? {
        Protocol::Grpc if grpc_tls("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") => {
            builder.with_tonic().with_tls_config(native_roots()).build()
        }
        Protocol::Grpc => builder.with_tonic().build(),
        Protocol::HttpProtobuf => builder.with_http().with_http_client(HttpClient::new()?).build(),
    }
    .map_err(|source| OtlpError::Exporter { signal: "metrics", source })?;
    // The interval comes from OTEL_METRIC_EXPORT_INTERVAL (default 60 s).
    let reader = PeriodicReader::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
    let provider = SdkMeterProvider::builder().with_reader(reader).with_resource(resource).build();
    let meter = provider.meter("ccag-dataplane");
    let bounds = |b: &[f64]| b.to_vec();
    let i = Instruments {
        duration: meter
            .f64_histogram("gen_ai.server.request.duration")
            .with_unit("s")
            .with_description("GenAI operation duration.")
            .with_boundaries(bounds(super::metrics::DURATION_BUCKETS))
            .build(),
        ttft: meter
            .f64_histogram("gen_ai.server.time_to_first_token")
            .with_unit("s")
            .with_description("Time to the first content of a streamed response.")
            .with_boundaries(bounds(super::metrics::TTFT_BUCKETS))
            .build(),
        tpot: meter
            .f64_histogram("gen_ai.server.time_per_output_token")
            .with_unit("s")
            .with_description("Time per output token after the first.")
            .with_boundaries(bounds(super::metrics::TPOT_BUCKETS))
            .build(),
        tokens: meter
            .u64_histogram("gen_ai.client.token.usage")
            .with_unit("{token}")
            .with_description("Tokens per request, by type.")
            .with_boundaries(bounds(super::metrics::TOKEN_BUCKETS))
            .build(),
    };
    // The status counter is read from the Prometheus registry at each
    // export, so the request path counts once for both.
    let http = metrics.http_counter().clone();
    let _requests = meter
        .u64_observable_counter("ccag.http.requests")
        .with_description("Requests answered on the public listener.")
        .with_callback(move |obs| {
            use prometheus::core::Collector as _;
            for family in http.collect() {
                for m in family.get_metric() {
                    // The Prometheus labels under the OTel attribute names.
                    let attrs: Vec<KeyValue> = m
                        .get_label()
                        .iter()
                        .filter(|l| !(l.name() == "error_type" && l.value().is_empty()))
                        .map(|l| {
                            let key = match l.name() {
                                "route" => "http.route",
                                "status_class" => "ccag.status_class",
                                "error_type" => "error.type",
                                _ => "ccag.label",
                            };
                            KeyValue::new(key, l.value().to_owned())
                        })
                        .collect();
                    obs.observe(m.get_counter().get_value() as u64, &attrs);
                }
            }
        })
        .build();
    Ok((provider, i))
}

/// OTLP/HTTP over the data plane's own hyper and rustls (native roots), so
/// no second HTTP stack is linked in.
#[derive(Clone)]
struct HttpClient {
    inner: hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        http_body_util::Full<Bytes>,
    >,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OtlpHttpClient")
    }
}

/// An export's response larger than this is cut short (collectors answer
/// with a few bytes).
const MAX_RESPONSE_BYTES: usize = 1 << 20;
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

impl HttpClient {
    fn new() -> Result<Self, OtlpError> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| OtlpError::Client(e.to_string()))?
            .https_or_http()
            .enable_http1()
            .build();
        let inner = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https);
        Ok(HttpClient { inner })
    }
}

impl opentelemetry_http::HttpClient for HttpClient {
    fn send_bytes<'life0, 'async_trait>(
        &'life0 self,
        request: http::Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Result<http::Response<Bytes>, opentelemetry_http::HttpError>> + Send + 'async_trait>>
    where
        Self: 'async_trait,
        'life0: 'async_trait,
    {
        Box::pin(async move {
            let request = request.map(http_body_util::Full::new);
            let call = async {
                let res = self.inner.request(request).await?;
                let (parts, body) = res.into_parts();
                let body = http_body_util::Limited::new(body, MAX_RESPONSE_BYTES).collect().await?.to_bytes();
                Ok::<_, opentelemetry_http::HttpError>(http::Response::from_parts(parts, body))
            };
            match tokio::time::timeout(EXPORT_TIMEOUT, call).await {
                Ok(r) => r,
                Err(_) => Err("OTLP export timed out".into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_is_parsed() {
        let tp = TraceParent::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(tp.trace_id[0], 0x4b);
        assert_eq!(tp.span_id[7], 0xb7);
        assert_eq!(tp.flags, 1);
    }

    #[test]
    fn malformed_traceparents_are_ignored() {
        for bad in [
            &b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"[..],
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn a_later_version_with_more_fields_is_read_by_its_prefix() {
        let tp = TraceParent::parse(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next");
        assert!(tp.is_some());
    }
}
