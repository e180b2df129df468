//! The load generator: the requests of each route and kind, and the open-
//! and closed-loop patterns that drive them.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ccag_bedrock_double::{sigv4, DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY};
use http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::task::JoinSet;

use crate::fleet::civil_from_days;
use crate::{Error, PROMPT, REGION};

/// The inference profile the data plane resolves `claude-sonnet-4-5` to in
/// `us-east-1`, percent-encoded in the path as the AWS SDK sends it.
const BEDROCK_MODEL_PATH: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1%3A0";
const CLIENT_MODEL: &str = "claude-sonnet-4-5";

pub type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// How the data plane (and the direct route) reach Bedrock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// HTTPS, as real Bedrock is reached: the headline figures.
    Tls,
    /// Plain HTTP, kept for comparison with earlier runs.
    Plain,
}

impl Upstream {
    pub fn name(self) -> &'static str {
        match self {
            Upstream::Tls => "TLS",
            Upstream::Plain => "plain HTTP",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Straight to the double, SigV4-signed.
    Direct,
    /// Through the data plane.
    Gateway,
    /// As `Direct`, through a bare TCP relay (`relay.rs`): the floor.
    Relay,
}

pub const ALL: [(Route, bool); 4] =
    [(Route::Direct, false), (Route::Gateway, false), (Route::Direct, true), (Route::Gateway, true)];

impl Route {
    pub fn name(self) -> &'static str {
        match self {
            Route::Direct => "direct",
            Route::Gateway => "via data plane",
            Route::Relay => "via a bare relay",
        }
    }
}

pub fn kind_name(stream: bool) -> &'static str {
    if stream {
        "streaming"
    } else {
        "non-streaming"
    }
}

/// HTTP/1.1 with a keep-alive pool, over TLS to `https://` URLs trusting
/// `ca_pem` (the doubles' self-signed certificates), as an AWS SDK's client
/// would.
pub fn new_client(ca_pem: &str) -> HttpClient {
    use rustls::pki_types::pem::PemObject as _;
    let mut connector = HttpConnector::new();
    // The double and the data plane set TCP_NODELAY too.
    connector.set_nodelay(true);
    connector.enforce_http(false);
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("the doubles' PEM")).expect("the doubles' certificate");
    }
    let tls = rustls::ClientConfig::builder_with_provider(rustls::crypto::aws_lc_rs::default_provider().into())
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector);
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(https)
}

/// What a request produced, for the latency figures.
pub struct Exchange {
    /// When the first byte of the body arrived.
    pub first_byte: Instant,
}

#[derive(Clone)]
pub struct Target {
    pub client: HttpClient,
    double_url: String,
    double_host: HeaderValue,
    gateway_url: String,
    api_key: HeaderValue,
    /// `https://IP:PORT` of the relay in front of the double, if any.
    relay_url: Option<String>,
}

impl Target {
    /// Requests to `double_url` directly or through `gateway_url` with
    /// `api_key`, on `client` (shared, so that targets share one pool).
    pub fn new(client: HttpClient, double_url: &str, gateway_url: &str, api_key: &str) -> Self {
        let host = double_url.trim_start_matches("http://").trim_start_matches("https://");
        Target {
            client,
            double_url: double_url.to_string(),
            double_host: HeaderValue::from_str(host).expect("an ASCII authority"),
            gateway_url: gateway_url.to_string(),
            api_key: HeaderValue::from_str(api_key).expect("an ASCII key"),
            relay_url: None,
        }
    }

    /// The same target, with `Route::Relay` going through the relay at
    /// `addr` (`IP:PORT`) to its double.
    pub fn with_relay(mut self, addr: &str) -> Self {
        let scheme = if self.double_url.starts_with("https://") { "https" } else { "http" };
        self.relay_url = Some(format!("{scheme}://{addr}"));
        self
    }

    /// What the data plane would send Bedrock for the same request.
    fn bedrock_body(text: &str) -> Bytes {
        serde_json::to_vec(&serde_json::json!({
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 256,
            "messages": [{"role": "user", "content": text}],
        }))
        .expect("JSON")
        .into()
    }

    fn anthropic_body(stream: bool, text: &str) -> Bytes {
        serde_json::to_vec(&serde_json::json!({
            "model": CLIENT_MODEL,
            "max_tokens": 256,
            "stream": stream,
            "messages": [{"role": "user", "content": text}],
        }))
        .expect("JSON")
        .into()
    }

    /// `InvokeModel[WithResponseStream]`, signed as an AWS SDK signs it:
    /// every header sent is signed, the date is now.
    /// Through the relay when `relay`: the same bytes, another port (the
    /// Host header, signed, stays the double's).
    fn direct_request(&self, stream: bool, text: &str, relay: bool) -> Request<Full<Bytes>> {
        let body = Self::bedrock_body(text);
        let op = if stream { "invoke-with-response-stream" } else { "invoke" };
        let path = format!("/model/{BEDROCK_MODEL_PATH}/{op}");
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, self.double_host.clone());
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static(if stream { "application/vnd.amazon.eventstream" } else { "application/json" }),
        );
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        sigv4::sign(
            &mut headers,
            "POST",
            &path,
            None,
            &body,
            &sigv4::SigningParams {
                access_key_id: DEFAULT_ACCESS_KEY_ID,
                secret_access_key: DEFAULT_SECRET_ACCESS_KEY,
                region: REGION,
                service: "bedrock",
                amz_date: &amz_date(SystemTime::now()),
            },
        );
        let base = if relay {
            self.relay_url.as_deref().expect("Route::Relay on a target given no relay")
        } else {
            &self.double_url
        };
        let mut req = Request::post(format!("{base}{path}")).body(Full::new(body)).expect("a valid request");
        *req.headers_mut() = headers;
        req
    }

    pub fn gateway_request(&self, stream: bool, text: &str) -> Request<Full<Bytes>> {
        Request::post(format!("{}/v1/messages", self.gateway_url))
            .header(header::CONTENT_TYPE, "application/json")
            .header("anthropic-version", "2023-06-01")
            .header("x-api-key", self.api_key.clone())
            .body(Full::new(Self::anthropic_body(stream, text)))
            .expect("a valid request")
    }

    fn request(&self, route: Route, stream: bool, text: &str) -> Request<Full<Bytes>> {
        match route {
            Route::Direct => self.direct_request(stream, text, false),
            Route::Relay => self.direct_request(stream, text, true),
            Route::Gateway => self.gateway_request(stream, text),
        }
    }

    /// One request, complete only once the whole body has been read.
    pub async fn exchange(&self, route: Route, stream: bool, text: &str) -> Result<Exchange, Error> {
        let req = self.request(route, stream, text);
        let res =
            self.client.request(req).await.map_err(|e| format!("{} {}: {e:?}", route.name(), kind_name(stream)))?;
        let status = res.status();
        let mut body = res.into_body();
        if status != StatusCode::OK {
            let text =
                body.collect().await.map(|c| String::from_utf8_lossy(&c.to_bytes()).into_owned()).unwrap_or_default();
            return Err(format!("{} {}: HTTP {status}: {text}", route.name(), kind_name(stream)));
        }
        let mut first_byte = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("{} body: {e}", route.name()))?;
            if first_byte.is_none() && frame.data_ref().is_some_and(|d| !d.is_empty()) {
                first_byte = Some(Instant::now());
            }
        }
        Ok(Exchange { first_byte: first_byte.ok_or_else(|| format!("{}: empty body", route.name()))? })
    }
}

impl Target {
    /// The same target, sending another key to the data plane.
    pub fn with_key(&self, api_key: &str) -> Target {
        Target { api_key: HeaderValue::from_str(api_key).expect("an ASCII key"), ..self.clone() }
    }

    /// `GET {url}/v1/models` with `api_key`: the cheapest request that
    /// authenticates, to see whether a data plane accepts a key.
    pub async fn models_status(&self, url: &str, api_key: &str) -> Result<StatusCode, Error> {
        let req = Request::get(format!("{url}/v1/models"))
            .header("x-api-key", api_key)
            .header("anthropic-version", "2023-06-01")
            .body(Full::new(Bytes::new()))
            .expect("a valid request");
        let res = self.client.request(req).await.map_err(|e| format!("GET {url}/v1/models: {e:?}"))?;
        let status = res.status();
        // Read the body so the connection goes back to the pool.
        let _ = res.into_body().collect().await;
        Ok(status)
    }
}

/// Whether a request through the data plane is judged by a budget (its
/// answer carries `x-ccag-budget-status`).
pub async fn budgeted(t: &Target) -> Result<bool, Error> {
    let res = t.client.request(t.gateway_request(false, PROMPT)).await.map_err(|e| format!("budget check: {e:?}"))?;
    let budgeted = res.headers().contains_key("x-ccag-budget-status");
    let _ = res.into_body().collect().await;
    Ok(budgeted)
}

/// Checks once that each of the four request kinds gets a real answer, and
/// the two through the relay if the target has one.
pub async fn sanity_check(t: &Target) -> Result<(), Error> {
    let relayed = [(Route::Relay, false), (Route::Relay, true)];
    let relayed = if t.relay_url.is_some() { &relayed[..] } else { &[] };
    for &(route, stream) in ALL.iter().chain(relayed) {
        let res = t
            .client
            .request(t.request(route, stream, PROMPT))
            .await
            .map_err(|e| format!("sanity check, {} {}: {e:?}", route.name(), kind_name(stream)))?;
        let status = res.status();
        let body = res.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        let expect: &[u8] = match (route, stream) {
            (Route::Direct | Route::Relay, true) => b":event-type",
            (Route::Gateway, true) => b"event: message_stop",
            (_, false) => b"\"content\"",
        };
        if status != StatusCode::OK || !contains(&body, expect) {
            return Err(format!(
                "sanity check, {} {}: HTTP {status}, body {}",
                route.name(),
                kind_name(stream),
                String::from_utf8_lossy(&body)
            ));
        }
    }
    Ok(())
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// `YYYYMMDDTHHMMSSZ` in UTC.
fn amz_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", s / 3600, s % 3600 / 60, s % 60)
}

// ---------------------------------------------------------------------------
// Load patterns

#[derive(Default)]
pub struct LatencyRun {
    /// Scheduled start → last byte.
    pub total: Vec<Duration>,
    /// Scheduled start → first byte of the body.
    pub first_byte: Vec<Duration>,
    pub errors: usize,
    pub first_error: Option<String>,
    /// How late the scheduler was, at worst (should stay well under the interval).
    pub worst_dispatch_lag: Duration,
    /// Wall time from the first scheduled start to the last answer.
    pub elapsed: Duration,
}

/// Open loop: a dedicated thread starts one request every `1/rate` s, on
/// schedule whatever the earlier requests are doing; each latency is counted
/// from the scheduled start. Each request is `t.exchange(route, stream, PROMPT)`.
pub async fn open_loop(t: &Target, route: Route, stream: bool, rate: f64, secs: f64) -> LatencyRun {
    let t = t.clone();
    let n = ((rate * secs).round() as usize).max(1);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let handle = tokio::runtime::Handle::current();
    let t0 = Instant::now() + Duration::from_millis(10);
    // A thread of its own: std::thread::sleep is precise to tens of
    // microseconds, where tokio's timer works in whole milliseconds.
    let (tasks, worst_dispatch_lag) = tokio::task::spawn_blocking(move || {
        let mut tasks = Vec::with_capacity(n);
        let mut worst = Duration::ZERO;
        for i in 0..n {
            let at = t0 + interval.mul_f64(i as f64);
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            worst = worst.max(Instant::now().saturating_duration_since(at));
            let t = t.clone();
            tasks.push(handle.spawn(async move {
                let r = t.exchange(route, stream, PROMPT).await;
                let done = Instant::now();
                r.map(|x| (done - at, x.first_byte.saturating_duration_since(at)))
            }));
        }
        (tasks, worst)
    })
    .await
    .expect("the pacing thread does not panic");
    let mut run = LatencyRun { worst_dispatch_lag, ..LatencyRun::default() };
    for t in tasks {
        match t.await {
            Ok(Ok((total, first))) => {
                run.total.push(total);
                run.first_byte.push(first);
            }
            Ok(Err(e)) => {
                run.errors += 1;
                run.first_error.get_or_insert(e);
            }
            Err(e) => {
                run.errors += 1;
                run.first_error.get_or_insert(e.to_string());
            }
        }
    }
    run.elapsed = t0.elapsed();
    run
}

impl LatencyRun {
    /// Completed requests per second, from the first scheduled start to the last answer.
    pub fn achieved_rate(&self) -> f64 {
        self.total.len() as f64 / self.elapsed.as_secs_f64()
    }
}

#[derive(Default)]
pub struct ThroughputRun {
    pub completed: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    /// Each completed request, from its start to its last byte.
    pub latencies: Vec<Duration>,
}

impl ThroughputRun {
    pub fn rate(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64()
    }
}

/// Closed loop: `workers` tasks each send a request, read all of it, and
/// send the next, until `secs` have passed. Each request is
/// `t.exchange(route, stream, PROMPT)`.
pub async fn closed_loop(t: &Target, route: Route, stream: bool, workers: usize, secs: f64) -> ThroughputRun {
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut set = JoinSet::new();
    for _ in 0..workers {
        let t = t.clone();
        set.spawn(async move {
            let mut run = ThroughputRun::default();
            loop {
                let began = Instant::now();
                if began >= end {
                    break;
                }
                match t.exchange(route, stream, PROMPT).await {
                    Ok(_) => run.latencies.push(began.elapsed()),
                    Err(e) => {
                        run.errors += 1;
                        run.first_error.get_or_insert(e);
                    }
                }
            }
            run
        });
    }
    let mut run = ThroughputRun::default();
    while let Some(r) = set.join_next().await {
        let w = r.expect("a worker does not panic");
        run.errors += w.errors;
        if run.first_error.is_none() {
            run.first_error = w.first_error;
        }
        run.latencies.extend(w.latencies);
    }
    run.completed = run.latencies.len();
    run.elapsed = start.elapsed();
    run
}
