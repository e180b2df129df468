//! The server (HTTP/1.1; over TLS also HTTP/2): routing, auth, operations and the test endpoints.

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
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::auth::{Caller, Policy};
use crate::behaviour::{self, Directives, Reply};
use crate::faults::{FaultSpec, Faults, Injected};
use crate::frames;
use crate::models::{self, ModelInfo};
use crate::profiles;
use crate::sigv4::{self, AuthError};
use crate::validate;
use crate::DoubleConfig;

/// Largest request body accepted (Bedrock's limit).
pub const MAX_BODY_BYTES: usize = 25_000_000;
/// How many requests `GET /_double/requests` remembers.
pub const REQUEST_LOG_LEN: usize = 100;
/// Largest body of a test endpoint (`/_double/…`) or a listing request.
const SMALL_BODY_BYTES: usize = 64 * 1024;

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
    /// Requests refused by the auth check (SigV4, role or API key), model
    /// calls and listings alike.
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
    /// Model calls answered by a `/_double/fault` (a stall counts when it
    /// starts).
    #[serde(default)]
    pub faults_served: u64,
    /// `GET /inference-profiles` requests that passed auth.
    #[serde(default)]
    pub inference_profile_lists: u64,
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
    faults_served: AtomicU64,
    inference_profile_lists: AtomicU64,
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
            faults_served: g(&self.faults_served),
            inference_profile_lists: g(&self.inference_profile_lists),
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
            &self.faults_served,
            &self.inference_profile_lists,
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
    /// `"sigv4"`, `"bearer"`, or `null` when the request carried neither.
    #[serde(default)]
    pub auth: Option<String>,
    /// Whether the request passed authentication.
    #[serde(default)]
    pub authorized: bool,
    /// The access key id of the SigV4 credential.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// The region of the SigV4 credential scope.
    #[serde(default)]
    pub region: Option<String>,
    /// With `DOUBLE_ROLE_ARN`: the role of the moto session the access key
    /// belongs to (set even when it is not the accepted role).
    #[serde(default)]
    pub role_arn: Option<String>,
    /// With `DOUBLE_ROLE_ARN`: that session's RoleSessionName.
    #[serde(default)]
    pub session_name: Option<String>,
}

struct Shared {
    cfg: DoubleConfig,
    policy: Policy,
    stats: Stats,
    log: Mutex<VecDeque<RecordedRequest>>,
    cache: crate::cache::PromptCache,
    faults: Faults,
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
        self.faults.clear();
    }
}

/// A running double. Dropping it stops the server.
pub struct Double {
    addr: SocketAddr,
    /// Served over TLS ([`spawn_tls`]).
    tls: bool,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Double {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT`, or `https://IP:PORT` when served over TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Current counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// The last requests under `/model/`, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.recorded()
    }

    /// Clears counters, the request log, the prompt cache and any fault.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Injects a fault into the next model calls, as `POST /_double/fault`.
    pub fn set_fault(&self, spec: FaultSpec) {
        self.shared.faults.set(spec);
    }

    /// What is left of the fault, as `GET /_double/fault`.
    pub fn fault(&self) -> FaultSpec {
        self.shared.faults.current()
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
    start(addr, cfg, None).await
}

/// As [`spawn`], over TLS with a fresh self-signed certificate for
/// `127.0.0.1` and `localhost`, offering HTTP/2 and HTTP/1.1 by ALPN.
/// Returns the double and the certificate's PEM, for the client to trust.
pub async fn spawn_tls(addr: SocketAddr, cfg: DoubleConfig) -> std::io::Result<(Double, String)> {
    let identity = crate::tls::identity()?;
    let double = start(addr, cfg, Some(identity.acceptor)).await?;
    Ok((double, identity.ca_pem))
}

async fn start(addr: SocketAddr, cfg: DoubleConfig, tls: Option<TlsAcceptor>) -> std::io::Result<Double> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared {
        policy: Policy::new(&cfg),
        cfg,
        stats: Stats::default(),
        log: Mutex::new(VecDeque::with_capacity(REQUEST_LOG_LEN)),
        cache: Default::default(),
        faults: Faults::default(),
    });
    let (shutdown, shutdown_rx) = watch::channel(false);
    let is_tls = tls.is_some();
    let task = tokio::spawn(accept_loop(listener, shared.clone(), shutdown_rx, tls));
    Ok(Double { addr, tls: is_tls, shared, shutdown, task })
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    tls: Option<TlsAcceptor>,
) {
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
        let tls = tls.clone();
        bump(&shared.stats.connections_open);
        tokio::spawn(async move {
            let _open = OpenConnection(shared.clone());
            let svc = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(shared, req).await) }
            });
            let served = async move {
                match tls {
                    None => {
                        let conn =
                            hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
                        let _ = conn.await;
                    }
                    Some(acceptor) => {
                        let Ok(stream) = acceptor.accept(stream).await else { return };
                        let mut auto = auto::Builder::new(TokioExecutor::new());
                        // As many streams as the benchmark holds open on one connection.
                        auto.http2().max_concurrent_streams(10_000);
                        let _ = auto.serve_connection(TokioIo::new(stream), svc).await;
                    }
                }
            };
            tokio::select! {
                _ = served => {}
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

fn auth_error(e: &AuthError) -> Response<ResBody> {
    // Bedrock models AccessDenied itself; the rest come from the front door.
    let namespace = if matches!(e, AuthError::AccessDenied { .. }) { BEDROCK_NS } else { CORAL_NS };
    aws_error(e.status(), e.error_type(), namespace, &e.message())
}

fn unknown_operation(method: &Method, path: &str) -> Response<ResBody> {
    aws_error(404, "UnknownOperationException", CORAL_NS, &format!("No operation matches {method} {path}"))
}

/// The whole request body, or the 413 to answer instead.
async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, Box<Response<ResBody>>> {
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(_) => Err(Box::new(aws_error(
            413,
            "ValidationException",
            BEDROCK_NS,
            &format!("Request body exceeds {limit} bytes."),
        ))),
    }
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

async fn handle(shared: Arc<Shared>, mut req: Request<Incoming>) -> Response<ResBody> {
    // Over HTTP/2 the host is the `:authority`, which a client need not repeat
    // as a `host` header; SigV4 signs it as `host` either way.
    if !req.headers().contains_key(http::header::HOST) {
        if let Some(authority) = req.uri().authority().and_then(|a| http::HeaderValue::from_str(a.as_str()).ok()) {
            req.headers_mut().insert(http::header::HOST, authority);
        }
    }
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
        (&Method::GET, "/_double/fault") => {
            return json_response(StatusCode::OK, &json!(shared.faults.current()));
        }
        (&Method::POST, "/_double/fault") => return set_fault(&shared, req).await,
        (&Method::GET, "/inference-profiles") => return list_inference_profiles(&shared, req).await,
        _ => {}
    }
    if !path.starts_with("/model/") {
        return unknown_operation(req.method(), &path);
    }
    handle_model(shared, req).await
}

/// `POST /_double/fault`: answers with the fault now in force.
async fn set_fault(shared: &Shared, req: Request<Incoming>) -> Response<ResBody> {
    let body = match read_body(req.into_body(), SMALL_BODY_BYTES).await {
        Ok(b) => b,
        Err(resp) => return *resp,
    };
    match serde_json::from_slice::<FaultSpec>(&body) {
        Ok(spec) => {
            shared.faults.set(spec);
            json_response(StatusCode::OK, &json!(shared.faults.current()))
        }
        Err(e) => json_response(
            StatusCode::BAD_REQUEST,
            &json!({"message": format!(
                "expected {{\"kind\":\"throttle\"|\"error\"|\"stall\"|\"none\",\"count\":N,\"stall_ms\":M}}: {e}"
            )}),
        ),
    }
}

/// The IAM action name of a model operation, for AccessDenied messages.
fn action_of(op: Operation) -> String {
    format!("bedrock:{}", op.name())
}

/// Checks auth, counting refusals in `auth_failures`.
async fn authenticate(shared: &Shared, req: &sigv4::RequestParts<'_>, action: &str) -> (Caller, Result<(), AuthError>) {
    let (caller, outcome) = shared.policy.authenticate(req, action).await;
    if outcome.is_err() {
        bump(&shared.stats.auth_failures);
    }
    (caller, outcome)
}

/// `GET /inference-profiles` (Bedrock's ListInferenceProfiles).
async fn list_inference_profiles(shared: &Shared, req: Request<Incoming>) -> Response<ResBody> {
    let (parts, body) = req.into_parts();
    let body = match read_body(body, SMALL_BODY_BYTES).await {
        Ok(b) => b,
        Err(resp) => return *resp,
    };
    let req_parts = sigv4::RequestParts {
        method: parts.method.as_str(),
        raw_path: parts.uri.path(),
        raw_query: parts.uri.query(),
        headers: &parts.headers,
        body: &body,
    };
    if let (_, Err(e)) = authenticate(shared, &req_parts, "bedrock:ListInferenceProfiles").await {
        return auth_error(&e);
    }
    bump(&shared.stats.inference_profile_lists);
    let all = profiles::profiles(shared.cfg.region_or_default(), |m| shared.cfg.serves(&m.anthropic_id));
    match profiles::list_response(all, parts.uri.query()) {
        Ok(page) => json_response(StatusCode::OK, &page),
        Err(msg) => validation_error(&msg),
    }
}

fn log_entry(
    op: Operation,
    model_id: &str,
    body: &[u8],
    parsed: Option<&Value>,
    headers: &HeaderMap,
    caller: Caller,
    authorized: bool,
) -> RecordedRequest {
    RecordedRequest {
        operation: op.name().to_string(),
        model: model_id.to_string(),
        body: parsed.cloned().unwrap_or_else(|| Value::String(String::from_utf8_lossy(body).into_owned())),
        headers: headers_json(headers),
        auth: caller.scheme.map(|s| s.name().to_string()),
        authorized,
        access_key_id: caller.access_key_id,
        region: caller.region,
        role_arn: caller.role_arn,
        session_name: caller.session_name,
    }
}

async fn handle_model(shared: Arc<Shared>, req: Request<Incoming>) -> Response<ResBody> {
    let started = Instant::now();
    bump(&shared.stats.requests);
    let (parts, body) = req.into_parts();
    let body = match read_body(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(resp) => return *resp,
    };
    let path = parts.uri.path();
    let (model_id, op) = match parse_model_path(path) {
        Some((m, op)) => (m, op),
        None => (String::new(), Operation::Unknown),
    };
    let parsed_body: Option<Value> = serde_json::from_slice(&body).ok();

    let req_parts = sigv4::RequestParts {
        method: parts.method.as_str(),
        raw_path: path,
        raw_query: parts.uri.query(),
        headers: &parts.headers,
        body: &body,
    };
    let (caller, outcome) = authenticate(&shared, &req_parts, &action_of(op)).await;
    let entry = log_entry(op, &model_id, &body, parsed_body.as_ref(), &parts.headers, caller, outcome.is_ok());
    shared.record(entry);
    if let Err(e) = outcome {
        return auth_error(&e);
    }

    if parts.method != Method::POST || op == Operation::Unknown {
        return unknown_operation(&parts.method, path);
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

/// The model an invoke label names, if this double serves it: known,
/// listed in `DOUBLE_MODELS` (when set) and, with `DOUBLE_REGION` set, a
/// profile of the region's geo or a global one, as Bedrock refuses another
/// geo's profiles.
fn served_model(shared: &Shared, model_id: &str) -> Result<ModelInfo, Box<Response<ResBody>>> {
    let fail = |msg: &str| {
        bump(&shared.stats.validation_failures);
        Box::new(validation_error(msg))
    };
    let model = models::resolve_invoke(model_id).map_err(|e| fail(&e.message()))?;
    let geo = models::profile_geo(model_id);
    let own_geo = shared.cfg.region.as_deref().map(profiles::geo_for_region);
    let geo_served = match (geo, own_geo) {
        (Some(geo), Some(own)) => geo == own || geo == "global",
        _ => true,
    };
    if !geo_served || !shared.cfg.serves(&model.anthropic_id) {
        return Err(fail(models::INVALID_MODEL_MESSAGE));
    }
    Ok(model)
}

/// The `/_double/fault` in force: an error to answer instead, or (after a
/// stall) `None` to go on normally.
async fn inject_fault(shared: &Shared) -> Option<Response<ResBody>> {
    let injected = shared.faults.take()?;
    bump(&shared.stats.faults_served);
    match injected {
        Injected::Throttle => Some(directive_error("ThrottlingException")),
        Injected::Error => Some(directive_error("InternalServerException")),
        Injected::Stall(d) => {
            pause(d).await;
            None
        }
    }
}

/// The rest of both invoke operations, once the model is known: body,
/// directives, reply.
fn prepare_invocation(
    shared: &Shared,
    model: &ModelInfo,
    body: Option<Value>,
) -> Result<Invocation, Box<Response<ResBody>>> {
    let fail = |msg: &str| {
        bump(&shared.stats.validation_failures);
        Box::new(validation_error(msg))
    };
    let body = body.ok_or_else(|| fail("Malformed input request, please reformat your input and try again."))?;
    validate::validate_invoke_body(&body, model).map_err(|m| fail(&m))?;
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
    let model = match served_model(shared, model_id) {
        Ok(m) => m,
        Err(resp) => return *resp,
    };
    // After auth and the model check, before the body's: a throttled
    // endpoint refuses whatever it is sent.
    if let Some(resp) = inject_fault(shared).await {
        return resp;
    }
    let inv = match prepare_invocation(shared, &model, body) {
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
        Ok(m) if shared.cfg.serves(&m.anthropic_id) => m,
        Ok(_) => return fail(models::INVALID_MODEL_MESSAGE),
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
