//! The HTTP/1.1 server: routing, auth, operations and the test endpoints.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::behaviour::{self, Directives, Reply};
use crate::frames;
use crate::models::{self, ModelInfo};
use crate::sigv4;
use crate::validate;
use crate::DoubleConfig;

/// Largest request body accepted (Bedrock's limit).
pub const MAX_BODY_BYTES: usize = 25_000_000;
/// How many requests `GET /_double/requests` remembers.
pub const REQUEST_LOG_LEN: usize = 100;

const BEDROCK_NS: &str = "http://internal.amazon.com/coral/com.amazon.bedrock/";
const CORAL_NS: &str = "http://internal.amazon.com/coral/com.amazon.coral.service/";
const TOO_LONG: &str = "Input is too long for requested model.";

/// A body error makes hyper drop the connection mid-response, which is how
/// `[double:cut_after=N]` cuts a stream.
type ResBody = BoxBody<Bytes, std::io::Error>;

/// Counters exposed at `GET /_double/stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Every request under `/model/`.
    pub requests: u64,
    /// InvokeModel and InvokeModelWithResponseStream requests that passed auth.
    pub invocations: u64,
    /// Streams answered with 200.
    pub streams_started: u64,
    /// Streams whose every frame was handed to the connection.
    pub streams_completed: u64,
    /// Streams whose client went away before the end.
    pub streams_cancelled: u64,
    /// Streams ended by a `[double:stream_error=…]` exception frame.
    pub streams_errored: u64,
    /// Streams whose connection was dropped by `[double:cut_after=N]`.
    #[serde(default)]
    pub streams_cut: u64,
    /// Requests refused by the SigV4 check.
    pub auth_failures: u64,
    /// 400 ValidationExceptions caused by the request itself (body, model id,
    /// `[double:too_long]`), not by `[double:error=…]`.
    pub validation_failures: u64,
    /// CountTokens requests that passed auth.
    pub count_tokens: u64,
    /// Client connections open now, this request's own included (a gauge:
    /// `/_double/reset` leaves it alone). What a client keeps in its pool
    /// shows here.
    #[serde(default)]
    pub connections_open: u64,
}

#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    invocations: AtomicU64,
    streams_started: AtomicU64,
    streams_completed: AtomicU64,
    streams_cancelled: AtomicU64,
    streams_errored: AtomicU64,
    streams_cut: AtomicU64,
    auth_failures: AtomicU64,
    validation_failures: AtomicU64,
    count_tokens: AtomicU64,
    connections_open: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Stats {
    fn snapshot(&self) -> StatsSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            requests: g(&self.requests),
            invocations: g(&self.invocations),
            streams_started: g(&self.streams_started),
            streams_completed: g(&self.streams_completed),
            streams_cancelled: g(&self.streams_cancelled),
            streams_errored: g(&self.streams_errored),
            streams_cut: g(&self.streams_cut),
            auth_failures: g(&self.auth_failures),
            validation_failures: g(&self.validation_failures),
            count_tokens: g(&self.count_tokens),
            connections_open: g(&self.connections_open),
        }
    }

    fn reset(&self) {
        for c in [
            &self.requests,
            &self.invocations,
            &self.streams_started,
            &self.streams_completed,
            &self.streams_cancelled,
            &self.streams_errored,
            &self.streams_cut,
            &self.auth_failures,
            &self.validation_failures,
            &self.count_tokens,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// One entry of `GET /_double/requests`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RecordedRequest {
    /// `InvokeModel`, `InvokeModelWithResponseStream`, `CountTokens` or
    /// `Unknown`.
    pub operation: String,
    /// The decoded model label.
    pub model: String,
    /// The body parsed as JSON (a string if it was not JSON).
    pub body: Value,
    /// Lowercase header name → value (repeated headers joined with ", ").
    pub headers: serde_json::Map<String, Value>,
}

struct Shared {
    cfg: DoubleConfig,
    stats: Stats,
    log: Mutex<VecDeque<RecordedRequest>>,
    cache: crate::cache::PromptCache,
}

impl Shared {
    fn record(&self, r: RecordedRequest) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if log.len() == REQUEST_LOG_LEN {
            log.pop_front();
        }
        log.push_back(r);
    }

    fn recorded(&self) -> Vec<RecordedRequest> {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.iter().cloned().collect()
    }

    fn reset(&self) {
        self.stats.reset();
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.cache.clear();
    }
}

/// A running double. Dropping it stops the server.
pub struct Double {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Double {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Current counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// The last requests under `/model/`, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.recorded()
    }

    /// Clears counters and the request log.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// The configuration in force.
    pub fn config(&self) -> &DoubleConfig {
        &self.shared.cfg
    }
}

impl Drop for Double {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        self.task.abort();
    }
}

/// Binds `addr` and serves in the background until the [`Double`] is dropped.
pub async fn spawn(addr: SocketAddr, cfg: DoubleConfig) -> std::io::Result<Double> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared {
        cfg,
        stats: Stats::default(),
        log: Mutex::new(VecDeque::with_capacity(REQUEST_LOG_LEN)),
        cache: Default::default(),
    });
    let (shutdown, shutdown_rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, shared.clone(), shutdown_rx));
    Ok(Double { addr, shared, shutdown, task })
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (stream, _peer) = match accepted {
            Ok(s) => s,
            Err(e) => {
                eprintln!("ccag-bedrock-double: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let mut conn_shutdown = shutdown.clone();
        bump(&shared.stats.connections_open);
        tokio::spawn(async move {
            let _open = OpenConnection(shared.clone());
            let svc = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(shared, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = conn_shutdown.changed() => {}
            }
        });
    }
}

/// Counts a connection in `connections_open` until dropped.
struct OpenConnection(Arc<Shared>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.stats.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body fed by a channel: each frame is written as it is produced.
/// When the client goes away hyper drops the body, the receiver with it, and
/// the producer's next send fails. An `Err` item aborts the connection.
struct ChannelBody {
    rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.rx.poll_recv(cx).map(|item| item.map(|r| r.map(Frame::data)))
    }
}

type FrameSender = mpsc::Sender<Result<Bytes, std::io::Error>>;

fn full(body: impl Into<Bytes>) -> ResBody {
    Full::new(body.into()).map_err(|never| match never {}).boxed()
}

fn request_id() -> String {
    let hex: String = std::iter::repeat_with(|| format!("{:x}", fastrand::u8(..16))).take(32).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

fn base_response(status: StatusCode) -> http::response::Builder {
    Response::builder().status(status).header("x-amzn-RequestId", request_id())
}

fn json_response(status: StatusCode, v: &Value) -> Response<ResBody> {
    base_response(status)
        .header("content-type", "application/json")
        .body(full(v.to_string()))
        .expect("static response parts are valid")
}

fn aws_error(status: u16, error_type: &str, namespace: &str, message: &str) -> Response<ResBody> {
    base_response(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .header("x-amzn-ErrorType", format!("{error_type}:{namespace}"))
        .body(full(json!({ "message": message }).to_string()))
        .expect("static response parts are valid")
}

fn validation_error(message: &str) -> Response<ResBody> {
    aws_error(400, "ValidationException", BEDROCK_NS, message)
}

fn directive_error(name: &str) -> Response<ResBody> {
    match behaviour::http_error(name) {
        Some((status, msg)) => aws_error(status, name, BEDROCK_NS, msg),
        None => aws_error(500, "InternalServerException", BEDROCK_NS, &format!("unknown [double:error] name '{name}'")),
    }
}

fn headers_json(headers: &HeaderMap) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    for name in headers.keys() {
        let joined = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        out.insert(name.as_str().to_ascii_lowercase(), Value::String(joined));
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Invoke,
    Stream,
    CountTokens,
    Unknown,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Invoke => "InvokeModel",
            Operation::Stream => "InvokeModelWithResponseStream",
            Operation::CountTokens => "CountTokens",
            Operation::Unknown => "Unknown",
        }
    }
}

/// Splits `/model/{modelId}/{op}` (the label may contain raw `/` in ARNs).
fn parse_model_path(path: &str) -> Option<(String, Operation)> {
    let rest = path.strip_prefix("/model/")?;
    let (raw_id, op) = rest.rsplit_once('/')?;
    let op = match op {
        "invoke" => Operation::Invoke,
        "invoke-with-response-stream" => Operation::Stream,
        "count-tokens" => Operation::CountTokens,
        _ => Operation::Unknown,
    };
    Some((sigv4::percent_decode(raw_id), op))
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<ResBody> {
    let path = req.uri().path().to_string();
    match (req.method(), path.as_str()) {
        (&Method::GET, "/_double/stats") => {
            let snap = shared.stats.snapshot();
            return json_response(StatusCode::OK, &json!(snap));
        }
        (&Method::GET, "/_double/requests") => {
            return json_response(StatusCode::OK, &json!(shared.recorded()));
        }
        (&Method::POST, "/_double/reset") => {
            shared.reset();
            return json_response(StatusCode::OK, &json!({"reset": true}));
        }
        (&Method::GET, "/_double/health") => {
            return json_response(StatusCode::OK, &json!({"ok": true}));
        }
        _ => {}
    }
    if !path.starts_with("/model/") {
        return aws_error(
            404,
            "UnknownOperationException",
            CORAL_NS,
            &format!("No operation matches {} {path}", req.method()),
        );
    }
    handle_model(shared, req).await
}

async fn handle_model(shared: Arc<Shared>, req: Request<Incoming>) -> Response<ResBody> {
    let started = Instant::now();
    bump(&shared.stats.requests);
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            return aws_error(
                413,
                "ValidationException",
                BEDROCK_NS,
                &format!("Request body exceeds {MAX_BODY_BYTES} bytes."),
            )
        }
    };
    let path = parts.uri.path();
    let (model_id, op) = match parse_model_path(path) {
        Some((m, op)) => (m, op),
        None => (String::new(), Operation::Unknown),
    };
    let parsed_body: Option<Value> = serde_json::from_slice(&body).ok();
    shared.record(RecordedRequest {
        operation: op.name().to_string(),
        model: model_id.clone(),
        body: parsed_body.clone().unwrap_or_else(|| Value::String(String::from_utf8_lossy(&body).into_owned())),
        headers: headers_json(&parts.headers),
    });

    let verifier = sigv4::Verifier {
        access_key_id: &shared.cfg.access_key_id,
        secret_access_key: &shared.cfg.secret_access_key,
        service: "bedrock",
    };
    let req_parts = sigv4::RequestParts {
        method: parts.method.as_str(),
        raw_path: path,
        raw_query: parts.uri.query(),
        headers: &parts.headers,
        body: &body,
    };
    if let Err(e) = sigv4::verify(&verifier, &req_parts) {
        bump(&shared.stats.auth_failures);
        return aws_error(403, e.error_type(), CORAL_NS, &e.message());
    }

    if parts.method != Method::POST || op == Operation::Unknown {
        return aws_error(
            404,
            "UnknownOperationException",
            CORAL_NS,
            &format!("No operation matches {} {path}", parts.method),
        );
    }

    match op {
        Operation::CountTokens => count_tokens(&shared, &model_id, parsed_body).await,
        Operation::Invoke | Operation::Stream => {
            invoke(&shared, &model_id, parsed_body, op == Operation::Stream, started).await
        }
        Operation::Unknown => unreachable!("handled above"),
    }
}

struct Invocation {
    reply: Reply,
    directives: Directives,
    ttft: Duration,
    inter_token: Duration,
    chunks: usize,
}

/// Shared prefix of both invoke operations: model id, body, directives.
fn prepare_invocation(
    shared: &Shared,
    model_id: &str,
    body: Option<Value>,
) -> Result<Invocation, Box<Response<ResBody>>> {
    let fail = |msg: &str| {
        bump(&shared.stats.validation_failures);
        Box::new(validation_error(msg))
    };
    let model: ModelInfo = models::resolve_invoke(model_id).map_err(|e| fail(&e.message()))?;
    let body = body.ok_or_else(|| fail("Malformed input request, please reformat your input and try again."))?;
    validate::validate_invoke_body(&body, &model).map_err(|m| fail(&m))?;
    let directives = behaviour::directives_of(&body);
    if let Some(name) = &directives.error {
        return Err(Box::new(directive_error(name)));
    }
    if directives.too_long {
        return Err(fail(TOO_LONG));
    }
    let cache = shared.cache.apply(&model.anthropic_id, &body, Instant::now());
    let reply = behaviour::plan_reply(&body, &model.anthropic_id, &directives).with_cache(cache);
    let cfg = &shared.cfg;
    Ok(Invocation {
        ttft: Duration::from_millis(directives.delay_ms.unwrap_or(cfg.ttft_ms)),
        inter_token: Duration::from_millis(directives.inter_token_ms.unwrap_or(cfg.inter_token_ms)),
        chunks: directives.chunks.unwrap_or(cfg.chunks),
        reply,
        directives,
    })
}

async fn invoke(
    shared: &Arc<Shared>,
    model_id: &str,
    body: Option<Value>,
    stream: bool,
    started: Instant,
) -> Response<ResBody> {
    bump(&shared.stats.invocations);
    let inv = match prepare_invocation(shared, model_id, body) {
        Ok(inv) => inv,
        Err(resp) => return *resp,
    };
    if stream {
        return start_stream(shared.clone(), inv, started);
    }
    // Non-streaming: take as long as the equivalent stream would.
    let events = behaviour::stream_events(&inv.reply, inv.chunks).len() as u32;
    pause(inv.ttft + inv.inter_token * events.saturating_sub(1)).await;
    let latency = started.elapsed().as_millis().to_string();
    base_response(StatusCode::OK)
        .header("content-type", "application/json")
        .header("X-Amzn-Bedrock-Input-Token-Count", inv.reply.input_tokens)
        .header("X-Amzn-Bedrock-Output-Token-Count", inv.reply.output_tokens)
        .header("X-Amzn-Bedrock-Invocation-Latency", latency)
        .body(full(behaviour::message_json(&inv.reply).to_string()))
        .expect("static response parts are valid")
}

fn start_stream(shared: Arc<Shared>, inv: Invocation, started: Instant) -> Response<ResBody> {
    bump(&shared.stats.streams_started);
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(produce_stream(shared, inv, started, tx));
    base_response(StatusCode::OK)
        .header("content-type", "application/vnd.amazon.eventstream")
        .header("X-Amzn-Bedrock-Content-Type", "application/json")
        .body(ChannelBody { rx }.boxed())
        .expect("static response parts are valid")
}

enum StreamEnd {
    Completed,
    Errored,
    Cancelled,
    Cut,
}

async fn produce_stream(shared: Arc<Shared>, inv: Invocation, started: Instant, tx: FrameSender) {
    let end = send_frames(&inv, started, &tx).await;
    let counter = match end {
        StreamEnd::Completed => &shared.stats.streams_completed,
        StreamEnd::Errored => &shared.stats.streams_errored,
        StreamEnd::Cancelled => &shared.stats.streams_cancelled,
        StreamEnd::Cut => &shared.stats.streams_cut,
    };
    bump(counter);
}

async fn send_frames(inv: &Invocation, started: Instant, tx: &FrameSender) -> StreamEnd {
    let mut events = behaviour::stream_events(&inv.reply, inv.chunks);
    let total = events.len();
    let error_at = inv.directives.stream_error.as_ref().map(|e| (e.after.min(total), e.exception_type.clone()));
    pause(inv.ttft).await;
    let mut first_byte_ms: Option<u64> = None;
    for (i, event) in events.iter_mut().enumerate() {
        if i > 0 {
            pause(inv.inter_token).await;
        }
        if let Some((at, ty)) = &error_at {
            if *at == i {
                return send_exception(tx, ty).await;
            }
        }
        if inv.directives.cut_after == Some(i) {
            return cut(tx).await;
        }
        let elapsed = started.elapsed().as_millis() as u64;
        let first_byte = *first_byte_ms.get_or_insert(elapsed);
        if i + 1 == total {
            behaviour::add_invocation_metrics(event, &inv.reply, elapsed, first_byte);
        }
        let frame = frames::chunk_frame(event.to_string().as_bytes());
        if tx.send(Ok(frame)).await.is_err() {
            return StreamEnd::Cancelled;
        }
    }
    if let Some((at, ty)) = &error_at {
        if *at == total {
            pause(inv.inter_token).await;
            return send_exception(tx, ty).await;
        }
    }
    // Every frame is queued; wait until the connection has taken the last one
    // (or dropped the body) so a late disconnect is still noticed.
    wait_drained(tx).await
}

async fn send_exception(tx: &FrameSender, exception_type: &str) -> StreamEnd {
    let frame = frames::exception_frame(exception_type, &stream_exception_message(exception_type));
    if tx.send(Ok(frame)).await.is_ok() {
        StreamEnd::Errored
    } else {
        StreamEnd::Cancelled
    }
}

/// Drops the connection once the frames before are written: no exception
/// frame, no end of the chunked body.
async fn cut(tx: &FrameSender) -> StreamEnd {
    let cut = std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "[double:cut_after] cut the stream");
    if tx.send(Err(cut)).await.is_ok() {
        StreamEnd::Cut
    } else {
        StreamEnd::Cancelled
    }
}

async fn wait_drained(tx: &FrameSender) -> StreamEnd {
    // All capacity free again means the body took every frame; an error
    // means the receiver (the connection) went away first.
    match tx.reserve_many(tx.max_capacity()).await {
        Ok(_) => StreamEnd::Completed,
        Err(_) => StreamEnd::Cancelled,
    }
}

/// A zero delay must not cost a timer tick (tokio's timer has 1 ms
/// resolution), or every reply is quantised to milliseconds.
async fn pause(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

fn stream_exception_message(exception_type: &str) -> String {
    match exception_type {
        "throttlingException" => "Too many requests, please wait before trying again.".into(),
        "modelStreamErrorException" => "The model stream encountered an error.".into(),
        "validationException" => TOO_LONG.into(),
        "serviceUnavailableException" => "The service is temporarily unavailable.".into(),
        "modelTimeoutException" => "The model timed out while streaming the response.".into(),
        "internalServerException" => "An internal server error occurred.".into(),
        other => format!("{other} injected by the Bedrock double."),
    }
}

async fn count_tokens(shared: &Shared, model_id: &str, body: Option<Value>) -> Response<ResBody> {
    bump(&shared.stats.count_tokens);
    let fail = |msg: &str| {
        bump(&shared.stats.validation_failures);
        validation_error(msg)
    };
    let model = match models::resolve_count_tokens(model_id) {
        Ok(m) => m,
        Err(e) => return fail(&e.message()),
    };
    let Some(outer) = body else {
        return fail("Malformed input request, please reformat your input and try again.");
    };
    let Some(input) = outer.get("input") else {
        return fail("input: Field required");
    };
    if input.get("converse").is_some() {
        return fail("The Bedrock double supports only input.invokeModel for CountTokens.");
    }
    let Some(b64) = input.get("invokeModel").and_then(|v| v.get("body")).and_then(Value::as_str) else {
        return fail("input.invokeModel.body: Field required");
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64) else {
        return fail("input.invokeModel.body: Invalid base64-encoded string");
    };
    let Ok(inner) = serde_json::from_slice::<Value>(&raw) else {
        return fail("Malformed input request, please reformat your input and try again.");
    };
    if let Err(m) = validate::validate_invoke_body(&inner, &model) {
        return fail(&m);
    }
    let directives = behaviour::directives_of(&inner);
    if let Some(name) = &directives.count_tokens_error {
        return directive_error(name);
    }
    if directives.too_long {
        return fail(TOO_LONG);
    }
    json_response(StatusCode::OK, &json!({ "inputTokens": behaviour::estimate_input_tokens(&inner) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_path_accepts_encoded_and_raw_labels() {
        assert_eq!(
            parse_model_path("/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke"),
            Some(("us.anthropic.claude-sonnet-4-5-20250929-v1:0".to_string(), Operation::Invoke))
        );
        assert_eq!(
            parse_model_path("/model/us.anthropic.claude-sonnet-4-5-20250929-v1:0/invoke-with-response-stream"),
            Some(("us.anthropic.claude-sonnet-4-5-20250929-v1:0".to_string(), Operation::Stream))
        );
        assert_eq!(
            parse_model_path("/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fus.x/count-tokens"),
            Some(("arn:aws:bedrock:us-east-1:1:inference-profile/us.x".to_string(), Operation::CountTokens))
        );
        assert_eq!(
            parse_model_path("/model/arn:aws:bedrock:us-east-1:1:inference-profile/us.x/invoke"),
            Some(("arn:aws:bedrock:us-east-1:1:inference-profile/us.x".to_string(), Operation::Invoke))
        );
    }
}
