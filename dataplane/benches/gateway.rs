//! The data plane's cost, measured against calling Bedrock directly.
//!
//! ```text
//! cargo bench -p ccag-dataplane --bench gateway             # full run, ~1.5 minutes
//! cargo bench -p ccag-dataplane --bench gateway -- --quick  # ~2 s per phase, ~25 s
//! cargo bench -p ccag-dataplane --bench gateway -- --help   # every option
//! ```
//!
//! `docs/performance.md` explains the figures and holds the latest results.
//!
//! One run starts the Bedrock double in this process (no time to first token,
//! no delay between tokens) and the real `ccag-dataplane` binary as a child
//! process pointed at it, then drives both with the same in-process hyper
//! client (HTTP/1.1, keep-alive pool):
//!
//! 1. data-plane memory (VmRSS) when idle and with N streams held open;
//! 2. latency at a fixed request rate, open loop: request starts are scheduled
//!    at a fixed interval by a dedicated thread, whatever earlier requests do,
//!    and each latency runs from the scheduled start to the last byte of the
//!    response, so a stall is charged to every request it delays;
//! 3. the highest streaming request rate, closed loop: a fixed number of
//!    workers each send a request, read the whole stream, and start again.
//!
//! Direct requests are SigV4-signed the way an AWS SDK signs them (with the
//! double's signer) and go to `/model/{id}/invoke[-with-response-stream]`;
//! requests through the data plane go to `/v1/messages` with `x-api-key`.
//! Results are printed on stdout as markdown; progress goes to stderr.
//!
//! Run by `cargo test --all-targets` (no `--bench` argument) it does a smoke
//! run of a few requests per phase, so the benchmark cannot rot unnoticed.

use std::future::Future;
use std::io::{BufRead, BufReader, Read as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ccag_bedrock_double::{sigv4, DoubleConfig, DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY};
use http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The inference profile the data plane resolves `claude-sonnet-4-5` to in
/// `us-east-1`, percent-encoded in the path as the AWS SDK sends it.
const BEDROCK_MODEL_PATH: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1%3A0";
const CLIENT_MODEL: &str = "claude-sonnet-4-5";
const REGION: &str = "us-east-1";
const PROMPT: &str = "Say hello to the benchmark.";
/// Keeps a stream open: the double waits this long between two events.
const HOLD_DIRECTIVE: &str = "[double:inter_token_ms=600000]";

type HttpClient = Client<HttpConnector, Full<Bytes>>;
type Error = String;

// ---------------------------------------------------------------------------
// Parameters

#[derive(Debug, Clone)]
struct Params {
    mode: &'static str,
    /// Open-loop request rate, requests per second.
    rate: f64,
    /// Measured seconds of each open-loop phase.
    latency_secs: f64,
    /// Closed-loop concurrency: one phase per entry.
    workers: Vec<usize>,
    /// Measured seconds of each closed-loop phase.
    throughput_secs: f64,
    /// Unmeasured seconds before each phase (opens pooled connections, warms caches).
    warmup_secs: f64,
    /// Streams held open for the memory reading.
    streams: usize,
    /// Text deltas per reply (the double's `chunks`).
    chunks: usize,
}

impl Params {
    fn full() -> Self {
        Params {
            mode: "full",
            rate: 200.0,
            latency_secs: 10.0,
            workers: vec![32, 128],
            throughput_secs: 10.0,
            warmup_secs: 1.0,
            streams: 1000,
            chunks: 3,
        }
    }

    fn quick() -> Self {
        Params {
            mode: "quick",
            latency_secs: 2.0,
            throughput_secs: 2.0,
            warmup_secs: 0.5,
            streams: 200,
            ..Params::full()
        }
    }

    /// What `cargo test --all-targets` runs: proves the benchmark works.
    fn smoke() -> Self {
        Params {
            mode: "smoke (cargo test)",
            rate: 50.0,
            latency_secs: 0.2,
            workers: vec![4],
            throughput_secs: 0.2,
            warmup_secs: 0.1,
            streams: 20,
            chunks: 3,
        }
    }

    fn from_args() -> Result<Self, String> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        // `cargo bench` passes `--bench`; `cargo test` does not.
        let mut p = if args.iter().any(|a| a == "--bench") { Params::full() } else { Params::smoke() };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| -> Result<f64, String> {
                it.next()
                    .and_then(|v| v.parse::<f64>().ok())
                    .filter(|v| *v > 0.0)
                    .ok_or_else(|| format!("{name} needs a positive number"))
            };
            match a.as_str() {
                "--bench" => {}
                "--quick" => p = Params::quick(),
                "--rate" => p.rate = value("--rate")?,
                "--secs" => p.latency_secs = value("--secs")?,
                "--workers" => {
                    p.workers = it
                        .next()
                        .map(|v| v.split(',').map(|w| w.trim().parse::<usize>()).collect())
                        .and_then(Result::ok)
                        .filter(|w: &Vec<usize>| !w.is_empty() && !w.contains(&0))
                        .ok_or("--workers needs a comma-separated list of positive numbers")?
                }
                "--throughput-secs" => p.throughput_secs = value("--throughput-secs")?,
                "--streams" => p.streams = value("--streams")? as usize,
                "--chunks" => p.chunks = value("--chunks")? as usize,
                "-h" | "--help" => return Err(String::new()),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(p)
    }
}

const USAGE: &str = "usage: cargo bench -p ccag-dataplane --bench gateway [-- OPTIONS]
  --quick                 ~2 s per phase and 200 held streams (whole run < 1 minute)
  --rate N                open-loop request rate, req/s (default 200)
  --secs S                seconds of each open-loop phase (default 10)
  --workers N[,N…]        closed-loop concurrency, one phase each (default 32,128)
  --throughput-secs S     seconds of each closed-loop phase (default 10)
  --streams N             streams held open for the memory reading (default 1000)
  --chunks N              text deltas per reply (default 3)
Options after --quick override it.
Environment: CCAG_BENCH_DATAPLANE=/path/to/ccag-dataplane benchmarks that binary
instead of the one cargo built.";

// ---------------------------------------------------------------------------
// Entry point

fn main() -> std::process::ExitCode {
    let params = match Params::from_args() {
        Ok(p) => p,
        Err(e) => {
            // An empty message is `--help`: the usage alone, and success.
            if e.is_empty() {
                println!("{USAGE}");
                return std::process::ExitCode::SUCCESS;
            }
            eprintln!("gateway bench: {e}\n{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    let outcome = rt.block_on(async {
        tokio::select! {
            r = run(params) => r,
            _ = tokio::signal::ctrl_c() => Err("interrupted".to_string()),
        }
    });
    // Dropping the runtime stops the double's remaining tasks (held streams).
    rt.shutdown_timeout(Duration::from_secs(1));
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway bench failed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(p: Params) -> Result<(), Error> {
    let machine = Machine::read();
    let nofile = raise_nofile_limit(p.streams);

    let double = ccag_bedrock_double::spawn(
        "127.0.0.1:0".parse().expect("a socket address"),
        DoubleConfig { ttft_ms: 0, inter_token_ms: 0, chunks: p.chunks, ..DoubleConfig::default() },
    )
    .await
    .map_err(|e| format!("starting the Bedrock double: {e}"))?;
    let api_key = format!("sk-ccag-bench-{}", fastrand_token(24));
    // Owns the child: it is killed when this guard drops, on every path out.
    let dp = DataPlane::start(&double.url(), &api_key)?;
    progress(&format!("double at {}, data plane at {} (pid {})", double.url(), dp.url, dp.pid));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_fresh = dp.rss_kib()?;
    let fds_fresh = dp.open_fds();

    let target = Target::new(&double.url(), &dp.url, &api_key);
    sanity_check(&target).await?;
    // A few requests of each kind, so one-time initialisation is not
    // counted as the cost of the held streams.
    for _ in 0..20 {
        for (route, stream) in ALL {
            target.exchange(route, stream, PROMPT).await?;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_warm = dp.rss_kib()?;

    progress(&format!("holding {} streams open", p.streams));
    let memory = hold_streams(&target, &dp, p.streams).await?;

    let mut latency = Vec::new();
    for stream in [false, true] {
        for route in [Route::Direct, Route::Gateway] {
            progress(&format!(
                "open loop: {} {} at {} req/s for {} s",
                route.name(),
                kind_name(stream),
                p.rate,
                p.latency_secs
            ));
            let t = target.clone();
            let make = move || {
                let t = t.clone();
                async move { t.exchange(route, stream, PROMPT).await }
            };
            open_loop(make.clone(), p.rate, p.warmup_secs).await;
            let cpu = CpuMeter::start(dp.pid);
            let run = open_loop(make, p.rate, p.latency_secs).await;
            latency.push((route, stream, run, cpu.stop()));
        }
    }

    let mut throughput = Vec::new();
    for &workers in &p.workers {
        for route in [Route::Direct, Route::Gateway] {
            progress(&format!(
                "closed loop: {} streaming, {workers} workers for {} s",
                route.name(),
                p.throughput_secs
            ));
            let t = target.clone();
            let make = move || {
                let t = t.clone();
                async move { t.exchange(route, true, PROMPT).await }
            };
            closed_loop(make.clone(), workers, p.warmup_secs).await;
            let cpu = CpuMeter::start(dp.pid);
            let run = closed_loop(make, workers, p.throughput_secs).await;
            throughput.push((route, workers, run, cpu.stop()));
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_end = dp.rss_kib()?;

    let report = Report {
        params: &p,
        machine: &machine,
        nofile,
        rss_fresh,
        fds_fresh,
        rss_warm,
        rss_end,
        memory: &memory,
        latency: &latency,
        throughput: &throughput,
    };
    print!("{}", report.markdown());
    let failures = report.errors();
    drop(dp);
    drop(double);
    if failures > 0 {
        return Err(format!("{failures} requests failed; see the tables above"));
    }
    Ok(())
}

fn progress(msg: &str) {
    eprintln!("[gateway bench] {msg}");
}

fn fastrand_token(n: usize) -> String {
    std::iter::repeat_with(fastrand::alphanumeric).take(n).collect()
}

// ---------------------------------------------------------------------------
// The data plane child process

/// The running `ccag-dataplane`; killed (and its temp dir removed) on drop,
/// including when the benchmark fails or panics.
struct DataPlane {
    child: Child,
    pid: u32,
    url: String,
    dir: PathBuf,
}

impl DataPlane {
    fn start(double_url: &str, api_key: &str) -> Result<Self, Error> {
        let dir = std::env::temp_dir().join(format!("ccag-gateway-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let snapshot = serde_json::json!({
            "version": "1",
            "keys": [{
                "id": "bench",
                "name": "bench",
                "sha256": hex::encode(Sha256::digest(api_key.as_bytes())),
                "userId": "bench-user",
                "status": "KEY_STATUS_ACTIVE",
            }],
        });
        let config = dir.join("snapshot.json");
        std::fs::write(&config, snapshot.to_string()).map_err(|e| format!("{}: {e}", config.display()))?;
        let log_path = dir.join("dataplane.log");
        let log = std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let binary = dataplane_binary();
        let mut child = Command::new(&binary)
            .env("CCAG_DATAPLANE_ADDR", "127.0.0.1:0")
            .env("CCAG_DATAPLANE_CONFIG", &config)
            .env("CCAG_LOG_FORMAT", "json")
            .env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", double_url)
            .env("AWS_ACCESS_KEY_ID", DEFAULT_ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", DEFAULT_SECRET_ACCESS_KEY)
            .env("AWS_REGION", REGION)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-aws-credentials"))
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("CCAG_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting {binary}: {e}"))?;
        let pid = child.id();
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the address line, then drains stdout until the child exits.
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref().map_while(Result::ok) {
                if let Some(url) = line.split("listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_string());
                    break;
                }
            }
            for _ in lines {}
        });
        let mut dp = DataPlane { child, pid, url: String::new(), dir };
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => dp.url = url,
            Err(_) => {
                return Err(format!("ccag-dataplane did not report its address; its log ends with:\n{}", dp.log_tail()))
            }
        }
        Ok(dp)
    }

    fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.join("dataplane.log")) {
            let _ = f.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn rss_kib(&self) -> Result<u64, Error> {
        proc_status_kib(self.pid, "VmRSS:")
            .ok_or_else(|| format!("no VmRSS for pid {}; did the data plane exit?", self.pid))
    }

    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid)).map(|d| d.count()).unwrap_or(0)
    }
}

/// The binary cargo built with this bench, unless `CCAG_BENCH_DATAPLANE`
/// names another one (to compare two builds with the same load).
fn dataplane_binary() -> String {
    std::env::var("CCAG_BENCH_DATAPLANE")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_ccag-dataplane").to_string())
}

impl Drop for DataPlane {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// Open sockets: each held stream costs a client socket and a double-side
/// socket in this process, and two sockets in the data plane (which inherits
/// this limit). Raises the soft limit up to the hard one if needed.
fn raise_nofile_limit(streams: usize) -> Result<u64, String> {
    let want = (streams as u64) * 2 + 1024;
    match rlimit::increase_nofile_limit(want) {
        Ok(got) if got >= want => Ok(got),
        Ok(got) => Err(format!(
            "RLIMIT_NOFILE is {got} (hard limit); {want} wanted for {streams} streams: \
             raise it with `ulimit -Hn {want}` as root, or pass a smaller --streams"
        )),
        Err(e) => Err(format!("could not raise RLIMIT_NOFILE: {e}")),
    }
}

// ---------------------------------------------------------------------------
// Requests

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// Straight to the double, SigV4-signed.
    Direct,
    /// Through the data plane.
    Gateway,
}

const ALL: [(Route, bool); 4] =
    [(Route::Direct, false), (Route::Gateway, false), (Route::Direct, true), (Route::Gateway, true)];

impl Route {
    fn name(self) -> &'static str {
        match self {
            Route::Direct => "direct",
            Route::Gateway => "via data plane",
        }
    }
}

fn kind_name(stream: bool) -> &'static str {
    if stream {
        "streaming"
    } else {
        "non-streaming"
    }
}

fn new_client() -> HttpClient {
    let mut connector = HttpConnector::new();
    // The double and the data plane set TCP_NODELAY too.
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(connector)
}

/// What a request produced, for the latency figures.
struct Exchange {
    /// When the first byte of the body arrived.
    first_byte: Instant,
}

#[derive(Clone)]
struct Target {
    client: HttpClient,
    double_url: String,
    double_host: HeaderValue,
    gateway_url: String,
    api_key: HeaderValue,
}

impl Target {
    fn new(double_url: &str, gateway_url: &str, api_key: &str) -> Self {
        let host = double_url.trim_start_matches("http://");
        Target {
            client: new_client(),
            double_url: double_url.to_string(),
            double_host: HeaderValue::from_str(host).expect("an ASCII authority"),
            gateway_url: gateway_url.to_string(),
            api_key: HeaderValue::from_str(api_key).expect("an ASCII key"),
        }
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
    fn direct_request(&self, stream: bool, text: &str) -> Request<Full<Bytes>> {
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
        let mut req =
            Request::post(format!("{}{path}", self.double_url)).body(Full::new(body)).expect("a valid request");
        *req.headers_mut() = headers;
        req
    }

    fn gateway_request(&self, stream: bool, text: &str) -> Request<Full<Bytes>> {
        Request::post(format!("{}/v1/messages", self.gateway_url))
            .header(header::CONTENT_TYPE, "application/json")
            .header("anthropic-version", "2023-06-01")
            .header("x-api-key", self.api_key.clone())
            .body(Full::new(Self::anthropic_body(stream, text)))
            .expect("a valid request")
    }

    fn request(&self, route: Route, stream: bool, text: &str) -> Request<Full<Bytes>> {
        match route {
            Route::Direct => self.direct_request(stream, text),
            Route::Gateway => self.gateway_request(stream, text),
        }
    }

    /// One request, complete only once the whole body has been read.
    async fn exchange(&self, route: Route, stream: bool, text: &str) -> Result<Exchange, Error> {
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

/// Checks once that each of the four request kinds gets a real answer.
async fn sanity_check(t: &Target) -> Result<(), Error> {
    for (route, stream) in ALL {
        let res = t
            .client
            .request(t.request(route, stream, PROMPT))
            .await
            .map_err(|e| format!("sanity check, {} {}: {e:?}", route.name(), kind_name(stream)))?;
        let status = res.status();
        let body = res.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        let expect: &[u8] = match (route, stream) {
            (Route::Direct, true) => b":event-type",
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

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// `YYYYMMDDTHHMMSSZ` in UTC.
fn amz_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", s / 3600, s % 3600 / 60, s % 60)
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

// ---------------------------------------------------------------------------
// Load patterns

#[derive(Default)]
struct LatencyRun {
    /// Scheduled start → last byte.
    total: Vec<Duration>,
    /// Scheduled start → first byte of the body.
    first_byte: Vec<Duration>,
    errors: usize,
    first_error: Option<String>,
    /// How late the scheduler was, at worst (should stay well under the interval).
    worst_dispatch_lag: Duration,
}

/// Open loop: a dedicated thread starts one request every `1/rate` s, on
/// schedule whatever the earlier requests are doing; each latency is counted
/// from the scheduled start.
async fn open_loop<F, Fut>(make: F, rate: f64, secs: f64) -> LatencyRun
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Result<Exchange, Error>> + Send + 'static,
{
    let n = ((rate * secs).round() as usize).max(1);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let handle = tokio::runtime::Handle::current();
    // A thread of its own: std::thread::sleep is precise to tens of
    // microseconds, where tokio's timer works in whole milliseconds.
    let (tasks, worst_dispatch_lag) = tokio::task::spawn_blocking(move || {
        let t0 = Instant::now() + Duration::from_millis(10);
        let mut tasks = Vec::with_capacity(n);
        let mut worst = Duration::ZERO;
        for i in 0..n {
            let at = t0 + interval.mul_f64(i as f64);
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            worst = worst.max(Instant::now().saturating_duration_since(at));
            let fut = make();
            tasks.push(handle.spawn(async move {
                let r = fut.await;
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
    run
}

struct ThroughputRun {
    completed: usize,
    errors: usize,
    first_error: Option<String>,
    elapsed: Duration,
}

impl ThroughputRun {
    fn rate(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64()
    }
}

/// Closed loop: `workers` tasks each send a request, read all of it, and
/// send the next, until `secs` have passed.
async fn closed_loop<F, Fut>(make: F, workers: usize, secs: f64) -> ThroughputRun
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Exchange, Error>> + Send + 'static,
{
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut set = JoinSet::new();
    for _ in 0..workers {
        let make = make.clone();
        set.spawn(async move {
            let (mut ok, mut errors, mut first_error) = (0usize, 0usize, None);
            while Instant::now() < end {
                match make().await {
                    Ok(_) => ok += 1,
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (ok, errors, first_error)
        });
    }
    let mut run = ThroughputRun { completed: 0, errors: 0, first_error: None, elapsed: Duration::ZERO };
    while let Some(r) = set.join_next().await {
        let (ok, errors, first_error) = r.expect("a worker does not panic");
        run.completed += ok;
        run.errors += errors;
        if run.first_error.is_none() {
            run.first_error = first_error;
        }
    }
    run.elapsed = start.elapsed();
    run
}

// ---------------------------------------------------------------------------
// Held streams and memory

struct MemoryRun {
    streams: usize,
    rss_open: u64,
    fds_open: usize,
    /// Time until all streams had their first event.
    open_time: Duration,
    rss_after: u64,
    fds_after: usize,
    /// Time the data plane took to close its sockets after the clients left.
    release_time: Option<Duration>,
}

/// Opens `n` streams through the data plane whose replies pause for minutes
/// after the first event, reads the data plane's memory once every stream
/// has its first event, then drops them all.
async fn hold_streams(t: &Target, dp: &DataPlane, n: usize) -> Result<MemoryRun, Error> {
    let fds_before = dp.open_fds();
    let client = new_client();
    let ready = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (release, released) = watch::channel(false);
    let text = format!("Hold this stream open. {HOLD_DIRECTIVE}");
    let started = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..n {
        let client = client.clone();
        let req = t.gateway_request(true, &text);
        let ready = ready.clone();
        let failed = failed.clone();
        let mut released = released.clone();
        set.spawn(async move {
            let first = async {
                let res = client.request(req).await.map_err(|e| format!("{e:?}"))?;
                if res.status() != StatusCode::OK {
                    return Err(format!("HTTP {}", res.status()));
                }
                let mut body = res.into_body();
                match body.frame().await {
                    Some(Ok(f)) if f.data_ref().is_some_and(|d| contains(d, b"message_start")) => Ok(body),
                    other => Err(format!("first event: {other:?}")),
                }
            };
            match first.await {
                Ok(body) => {
                    ready.fetch_add(1, Ordering::SeqCst);
                    let _ = released.wait_for(|r| *r).await;
                    drop(body);
                }
                Err(e) => failed.lock().expect("not poisoned").push(e),
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ok, bad) = (ready.load(Ordering::SeqCst), failed.lock().expect("not poisoned").len());
        if ok + bad == n {
            break;
        }
        if Instant::now() > deadline {
            let _ = release.send(true);
            return Err(format!("after 60 s only {ok} of {n} held streams had their first event ({bad} failed)"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let open_time = started.elapsed();
    if let Some(e) = failed.lock().expect("not poisoned").first() {
        let _ = release.send(true);
        return Err(format!("a held stream failed: {e}"));
    }
    // Let the allocator and the sockets settle before reading.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_open = dp.rss_kib()?;
    let fds_open = dp.open_fds();

    let _ = release.send(true);
    while set.join_next().await.is_some() {}
    drop(client);
    let closing = Instant::now();
    let mut release_time = None;
    while closing.elapsed() < Duration::from_secs(15) {
        if dp.open_fds() <= fds_before + 8 {
            release_time = Some(closing.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(MemoryRun {
        streams: n,
        rss_open,
        fds_open,
        open_time,
        rss_after: dp.rss_kib()?,
        fds_after: dp.open_fds(),
        release_time,
    })
}

// ---------------------------------------------------------------------------
// CPU time

/// CPU time (user + system) of the data plane and of this process (the load
/// generator and the double) over a phase.
struct CpuMeter {
    pid: u32,
    dp: f64,
    me: f64,
    machine: f64,
    wall: Instant,
}

#[derive(Clone, Copy)]
struct CpuUse {
    dp_secs: f64,
    bench_secs: f64,
    /// CPU used by every other process meanwhile: anything much above zero
    /// means the figures were disturbed.
    other_secs: f64,
    wall_secs: f64,
}

impl CpuMeter {
    fn start(pid: u32) -> Self {
        CpuMeter {
            pid,
            dp: cpu_secs(&pid.to_string()),
            me: cpu_secs("self"),
            machine: machine_busy_secs(),
            wall: Instant::now(),
        }
    }

    fn stop(self) -> CpuUse {
        let dp_secs = cpu_secs(&self.pid.to_string()) - self.dp;
        let bench_secs = cpu_secs("self") - self.me;
        let machine = machine_busy_secs() - self.machine;
        CpuUse {
            dp_secs,
            bench_secs,
            other_secs: (machine - dp_secs - bench_secs).max(0.0),
            wall_secs: self.wall.elapsed().as_secs_f64(),
        }
    }
}

/// Busy CPU time of the whole machine (the `cpu` line of `/proc/stat`:
/// everything but idle and iowait), in seconds.
fn machine_busy_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let f: Vec<f64> = cpu.split_whitespace().skip(1).map(|v| v.parse().unwrap_or(0.0)).collect();
    // user nice system idle iowait irq softirq steal (guest is inside user).
    let busy: f64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| f.get(i)).sum();
    busy / clock_ticks()
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// utime + stime of `/proc/{who}/stat`, in seconds.
fn cpu_secs(who: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{who}/stat")) else {
        return 0.0;
    };
    // Fields after the `(comm)`, which may itself hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after `)`.
    (tick(11) + tick(12)) / clock_ticks()
}

// ---------------------------------------------------------------------------
// The machine

struct Machine {
    cpu: String,
    nproc: usize,
    mem_gib: f64,
    kernel: String,
    date: String,
}

impl Machine {
    fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let mem_gib = proc_meminfo_kib("MemTotal:").unwrap_or(0) as f64 / 1024.0 / 1024.0;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let (y, m, d) = civil_from_days((now / 86_400) as i64);
        Machine {
            cpu,
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            mem_gib,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            date: format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", now % 86_400 / 3600, now % 3600 / 60),
        }
    }
}

fn proc_meminfo_kib(field: &str) -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

// ---------------------------------------------------------------------------
// The report

struct Report<'a> {
    params: &'a Params,
    machine: &'a Machine,
    nofile: Result<u64, String>,
    rss_fresh: u64,
    fds_fresh: usize,
    rss_warm: u64,
    rss_end: u64,
    memory: &'a MemoryRun,
    latency: &'a [(Route, bool, LatencyRun, CpuUse)],
    throughput: &'a [(Route, usize, ThroughputRun, CpuUse)],
}

/// Nearest-rank percentile, in milliseconds.
fn pct_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e3
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Other processes used more than this share of one CPU during a phase.
const DISTURBED: f64 = 0.10;

impl CpuUse {
    fn disturbed(&self) -> bool {
        self.other_secs / self.wall_secs > DISTURBED
    }
}

/// `met` / `missed`, flagged when another process took CPU during either phase.
fn verdict(ok: bool, phases: &[&CpuUse]) -> String {
    let v = if ok { "met" } else { "**missed**" };
    if phases.iter().any(|c| c.disturbed()) {
        format!("{v} (disturbed)")
    } else {
        v.to_string()
    }
}

impl Report<'_> {
    fn latency_run(&self, route: Route, stream: bool) -> Option<&(Route, bool, LatencyRun, CpuUse)> {
        self.latency.iter().find(|(r, s, _, _)| *r == route && *s == stream)
    }

    fn errors(&self) -> usize {
        self.latency.iter().map(|l| l.2.errors).sum::<usize>()
            + self.throughput.iter().map(|t| t.2.errors).sum::<usize>()
    }

    fn markdown(&self) -> String {
        let p = self.params;
        let m = self.machine;
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        line(format!("# ccag-dataplane gateway benchmark ({})", p.mode));
        line(String::new());
        line(format!(
            "- Date: {}; machine: {}, {} logical CPUs, {:.1} GiB RAM, Linux {}",
            m.date, m.cpu, m.nproc, m.mem_gib, m.kernel
        ));
        line(format!(
            "- Everything on this machine: the load generator and the Bedrock double (one \
             process, tokio with {} workers) and ccag-dataplane (a child process, {} build) \
             share the CPUs.",
            m.nproc,
            if cfg!(debug_assertions) { "debug" } else { "release" }
        ));
        if std::env::var_os("CCAG_BENCH_DATAPLANE").is_some() {
            line(format!("- Data plane binary: `{}` (from CCAG_BENCH_DATAPLANE).", dataplane_binary()));
        }
        line(format!(
            "- Double: time to first token 0 ms, 0 ms between tokens, {} text deltas per reply \
             ({} SSE events per stream). Client: hyper HTTP/1.1 with a keep-alive pool.",
            p.chunks,
            p.chunks + 5
        ));
        line(format!(
            "- Latency: open loop, {} req/s for {} s per row ({} requests) after {} s of warm-up; \
             measured from the scheduled start to the last byte of the response.",
            p.rate,
            p.latency_secs,
            (p.rate * p.latency_secs).round(),
            p.warmup_secs
        ));
        line(format!(
            "- Rate: closed loop, {} concurrent workers for {} s per row after {} s of warm-up; \
             a stream counts once its whole body has been read.",
            p.workers.iter().map(usize::to_string).collect::<Vec<_>>().join(" or "),
            p.throughput_secs,
            p.warmup_secs
        ));
        line(format!(
            "- Memory: VmRSS of the data plane; {} streams held open through it (the double \
             waits 600 s after the first event); RLIMIT_NOFILE {}.",
            p.streams,
            match &self.nofile {
                Ok(n) => n.to_string(),
                Err(e) => format!("not raised: {e}"),
            }
        ));
        line(String::new());

        let disturbed = self.latency.iter().filter(|l| l.3.disturbed()).count()
            + self.throughput.iter().filter(|t| t.3.disturbed()).count();
        if disturbed > 0 {
            line(format!(
                "**Warning: other processes took more than {:.0}% of a CPU during {disturbed} \
                 phase(s), marked (disturbed) below; run again on a quiet machine.**",
                DISTURBED * 100.0
            ));
            line(String::new());
        }

        // The summary: one row per figure, direct and data plane side by side.
        line("| Figure | Direct | Via data plane | Added / ratio | Target | Verdict |".into());
        line("|---|---:|---:|---:|---|---|".into());
        for stream in [false, true] {
            let (Some(d), Some(g)) =
                (self.latency_run(Route::Direct, stream), self.latency_run(Route::Gateway, stream))
            else {
                continue;
            };
            let mut ds = d.2.total.clone();
            let mut gs = g.2.total.clone();
            ds.sort();
            gs.sort();
            for (label, q, target) in [("p50", 0.50, Some(0.2)), ("p99", 0.99, Some(1.0)), ("p99.9", 0.999, None)] {
                let (a, b) = (pct_ms(&ds, q), pct_ms(&gs, q));
                let added = b - a;
                let (tgt, verd) = match target {
                    Some(t) => (format!("added < {t} ms"), verdict(added < t, &[&d.3, &g.3])),
                    None => ("—".to_string(), String::new()),
                };
                line(format!(
                    "| {} latency {label} (ms) | {a:.3} | {b:.3} | {added:+.3} ms | {tgt} | {verd} |",
                    kind_name(stream)
                ));
            }
            if stream {
                // The first event: a finer view of the relay's cost than the
                // whole stream, which the double paces in whole milliseconds.
                let mut df = d.2.first_byte.clone();
                let mut gf = g.2.first_byte.clone();
                df.sort();
                gf.sort();
                for (label, q) in [("p50", 0.50), ("p99", 0.99)] {
                    let (a, b) = (pct_ms(&df, q), pct_ms(&gf, q));
                    line(format!("| streaming first event {label} (ms) | {a:.3} | {b:.3} | {:+.3} ms | — | |", b - a));
                }
            }
        }
        for &workers in &p.workers {
            let find = |route| self.throughput.iter().find(|t| t.0 == route && t.1 == workers);
            if let (Some(d), Some(g)) = (find(Route::Direct), find(Route::Gateway)) {
                let ratio = g.2.rate() / d.2.rate();
                line(format!(
                    "| streaming rate, {workers} workers (req/s) | {:.0} | {:.0} | ×{ratio:.2} | ≥ ×0.50 of direct | {} |",
                    d.2.rate(),
                    g.2.rate(),
                    verdict(ratio >= 0.5, &[&d.3, &g.3])
                ));
            }
        }
        let mem = self.memory;
        let per_stream = (mem.rss_open as f64 - self.rss_warm as f64) / mem.streams as f64;
        line(format!("| data-plane VmRSS idle (MiB) | — | {:.1} | — | — | |", mib(self.rss_warm)));
        line(format!(
            "| data-plane VmRSS, {} open streams (MiB) | — | {:.1} | {per_stream:+.1} KiB per stream | — | |",
            mem.streams,
            mib(mem.rss_open)
        ));
        line(String::new());

        line("## Latency detail (ms, from the scheduled start)".into());
        line(String::new());
        line("| Request | Route | ok | errors | first byte p50 | first byte p99 | p50 | p90 | p99 | p99.9 | max | data-plane CPU / req | bench CPU / req | other processes' CPU |".into());
        line("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|".into());
        for (route, stream, run, cpu) in self.latency {
            let mut total = run.total.clone();
            let mut first = run.first_byte.clone();
            total.sort();
            first.sort();
            let n = total.len().max(1) as f64;
            let dp_cpu =
                if *route == Route::Gateway { format!("{:.0} µs", cpu.dp_secs / n * 1e6) } else { "—".into() };
            line(format!(
                "| {} | {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {dp_cpu} | {:.0} µs | {:.0}% |",
                kind_name(*stream),
                route.name(),
                run.total.len(),
                run.errors,
                pct_ms(&first, 0.5),
                pct_ms(&first, 0.99),
                pct_ms(&total, 0.5),
                pct_ms(&total, 0.9),
                pct_ms(&total, 0.99),
                pct_ms(&total, 0.999),
                total.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1e3),
                cpu.bench_secs / n * 1e6,
                cpu.other_secs / cpu.wall_secs * 100.0,
            ));
        }
        let lag = self.latency.iter().map(|l| l.2.worst_dispatch_lag).max().unwrap_or_default();
        line(String::new());
        line(format!(
            "Worst lag of the request scheduler behind its schedule: {:.3} ms (included in the latencies).",
            lag.as_secs_f64() * 1e3
        ));
        line(String::new());

        line("## Streaming rate detail (closed loop)".into());
        line(String::new());
        line(
            "| Route | workers | completed | errors | seconds | req/s | data-plane CPU | bench CPU | data-plane CPU / req | bench CPU / req | other processes' CPU |"
                .into(),
        );
        line("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|".into());
        for (route, workers, run, cpu) in self.throughput {
            let n = run.completed.max(1) as f64;
            let dp_cpu =
                if *route == Route::Gateway { format!("{:.0} µs", cpu.dp_secs / n * 1e6) } else { "—".into() };
            line(format!(
                "| {} | {workers} | {} | {} | {:.2} | {:.0} | {:.0}% | {:.0}% | {dp_cpu} | {:.0} µs | {:.0}% |",
                route.name(),
                run.completed,
                run.errors,
                run.elapsed.as_secs_f64(),
                run.rate(),
                cpu.dp_secs / cpu.wall_secs * 100.0,
                cpu.bench_secs / cpu.wall_secs * 100.0,
                cpu.bench_secs / n * 1e6,
                cpu.other_secs / cpu.wall_secs * 100.0,
            ));
        }
        line(String::new());
        line(format!(
            "CPU percentages are of one CPU; the machine has {} in all. \
             \"Other processes\" is the machine's busy time minus the data plane's and the bench's: \
             well above a few percent, something else disturbed the figures.",
            m.nproc
        ));
        line(String::new());

        line("## Data-plane memory detail".into());
        line(String::new());
        line("| State | VmRSS (MiB) | open fds |".into());
        line("|---|---:|---:|".into());
        line(format!("| fresh, no request served | {:.1} | {} |", mib(self.rss_fresh), self.fds_fresh));
        line(format!("| idle after 80 requests (the baseline) | {:.1} | |", mib(self.rss_warm)));
        line(format!(
            "| {} streams open (all {} opened in {:.2} s) | {:.1} | {} |",
            mem.streams,
            mem.streams,
            mem.open_time.as_secs_f64(),
            mib(mem.rss_open),
            mem.fds_open
        ));
        line(format!(
            "| streams closed by the clients ({}) | {:.1} | {} |",
            match mem.release_time {
                Some(t) => format!("sockets released in {:.2} s", t.as_secs_f64()),
                None => "sockets **not** all released within 15 s".into(),
            },
            mib(mem.rss_after),
            mem.fds_after
        ));
        line(format!("| idle after every phase | {:.1} | |", mib(self.rss_end)));
        line(String::new());

        let errors: Vec<String> = self
            .latency
            .iter()
            .filter_map(|l| l.2.first_error.clone())
            .chain(self.throughput.iter().filter_map(|t| t.2.first_error.clone()))
            .collect();
        if !errors.is_empty() {
            line("## Errors (first of each phase)".into());
            line(String::new());
            for e in errors {
                line(format!("- {}", e.replace('\n', " ")));
            }
            line(String::new());
        }
        out
    }
}
