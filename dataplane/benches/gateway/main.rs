//! The data plane's cost, measured against calling Bedrock directly, with the
//! control plane and a fleet of data planes as deployed.
//!
//! ```text
//! cargo bench -p ccag-dataplane --bench gateway             # full run, ~4 minutes
//! cargo bench -p ccag-dataplane --bench gateway -- --quick  # ~2 s per phase, ~1 minute
//! cargo bench -p ccag-dataplane --bench gateway -- --help   # every option
//! ```
//!
//! `docs/performance.md` explains the figures and holds the latest results.
//!
//! One run starts the Bedrock double in this process, the real
//! `ccag-controlplane` (SQLite in a temp dir; built by cargo if needed) and
//! `--dataplanes` real `ccag-dataplane` processes configured by it over the
//! Watch stream and reporting usage to it. The keys are created through the
//! admin gRPC API. The load generator (a hyper client in this process) then
//! measures, in one run:
//!
//! 1. data-plane memory (VmRSS) and CPU when idle and with N streams held open;
//! 2. configuration propagation: an admin change until every data plane
//!    applies it, seen by requests and by the status API's ACKs;
//! 3. usage-report lag: the end of a request until the admin Usage API counts it;
//! 4. latency at fixed request rates, open loop: request starts are scheduled
//!    at a fixed interval by a dedicated thread, whatever earlier requests do,
//!    and each latency runs from the scheduled start to the last byte of the
//!    response, so a stall is charged to every request it delays;
//! 5. saturation, closed loop: a fixed number of workers each send a request,
//!    read the whole answer, and start again; the highest rate is the highest
//!    sustained rate.
//!
//! Phases 4 and 5 run each request kind (streaming or not) both directly
//! against the double and through the first data plane. Direct requests are
//! SigV4-signed the way an AWS SDK signs them (with the double's signer) and go
//! to `/model/{id}/invoke[-with-response-stream]`; requests through the data
//! plane go to `/v1/messages` with `x-api-key`. Results are printed on stdout
//! as markdown, with an SVG chart written to `--chart`; progress goes to stderr.
//!
//! Run by `cargo test --all-targets` (no `--bench` argument) it does a smoke
//! run of a few requests per phase, so the benchmark cannot rot unnoticed.

mod admin;
mod chart;
mod distribution;
mod fleet;
mod load;
mod otlp_sink;
mod phases;
mod relay;
mod report;
mod spend;

use std::path::PathBuf;
use std::time::Duration;

use ccag_bedrock_double::DoubleConfig;

use fleet::{ControlPlane, CpuMeter, DataPlane, Machine, Relay, WorkDir};
use load::{kind_name, Route, Target, Upstream, ALL};
use report::{LatencyRow, Results, SaturationRow};

pub const REGION: &str = "us-east-1";
pub const PROMPT: &str = "Say hello to the benchmark.";

pub type Error = String;

// ---------------------------------------------------------------------------
// Parameters

#[derive(Debug, Clone)]
pub struct Params {
    pub mode: &'static str,
    /// Open-loop request rates, requests per second: one phase per entry.
    pub rates: Vec<f64>,
    /// Measured seconds of each open-loop phase.
    pub latency_secs: f64,
    /// Closed-loop concurrency: one phase per entry.
    pub workers: Vec<usize>,
    /// Measured seconds of each closed-loop phase.
    pub throughput_secs: f64,
    /// Unmeasured seconds before each phase (opens pooled connections, warms caches).
    pub warmup_secs: f64,
    /// Streams held open for the memory and CPU reading.
    pub streams: usize,
    /// Seconds the held streams stay idle while the data plane's CPU is read.
    pub idle_secs: f64,
    /// Text deltas per reply (the double's `chunks`).
    pub chunks: usize,
    /// The double's time to first token, ms.
    pub ttft_ms: u64,
    /// The double's delay between two events, ms.
    pub inter_token_ms: u64,
    /// Data planes connected to the control plane.
    pub dataplanes: usize,
    /// Configuration changes, and usage records, timed.
    pub repeats: usize,
    /// Control-plane replicas; more than one needs `postgres`.
    pub replicas: usize,
    /// A PostgreSQL server URL without a database (`postgres://user@host:port`):
    /// the control plane runs on a throw-away database there instead of SQLite.
    pub postgres: Option<String>,
    /// The distribution-cost phase: keys, and simulated data planes.
    pub dist_keys: usize,
    pub dist_peers: usize,
    /// The spend-ingest phase: budgeted users, records per second, seconds
    /// (no phase with 0 users).
    pub spend_users: usize,
    pub spend_rate: f64,
    pub spend_secs: f64,
    /// Every request under an (unreachable) organisation budget, so that
    /// every request pays for the budget check (on unless `--no-budgets`).
    pub budgets: bool,
    /// The data planes export traces and metrics over OTLP/HTTP to a sink
    /// in the bench.
    pub otlp: bool,
    /// Where the SVG chart goes.
    pub chart: PathBuf,
}

impl Params {
    fn full() -> Self {
        Params {
            mode: "full",
            rates: vec![50.0, 200.0, 1000.0],
            latency_secs: 10.0,
            workers: vec![32, 128],
            throughput_secs: 10.0,
            warmup_secs: 1.0,
            streams: 1000,
            idle_secs: 12.0,
            chunks: 3,
            ttft_ms: 0,
            inter_token_ms: 0,
            dataplanes: 2,
            repeats: 20,
            replicas: 1,
            postgres: None,
            dist_keys: 10_000,
            dist_peers: 20,
            budgets: true,
            otlp: false,
            spend_users: 10_000,
            spend_rate: 2_000.0,
            spend_secs: 10.0,
            chart: fleet::target_dir().join("gateway-bench.svg"),
        }
    }

    fn quick() -> Self {
        Params {
            mode: "quick",
            latency_secs: 2.0,
            throughput_secs: 2.0,
            warmup_secs: 0.5,
            streams: 200,
            idle_secs: 5.0,
            repeats: 10,
            dist_keys: 2_000,
            spend_users: 2_000,
            spend_secs: 5.0,
            ..Params::full()
        }
    }

    /// What `cargo test --all-targets` runs: proves the benchmark works.
    fn smoke() -> Self {
        Params {
            mode: "smoke (cargo test)",
            rates: vec![50.0],
            latency_secs: 0.2,
            workers: vec![4],
            throughput_secs: 0.2,
            warmup_secs: 0.1,
            streams: 20,
            idle_secs: 0.2,
            repeats: 2,
            dist_keys: 20,
            dist_peers: 3,
            spend_users: 20,
            spend_rate: 100.0,
            spend_secs: 0.5,
            chart: fleet::target_dir().join("gateway-bench-smoke.svg"),
            ..Params::full()
        }
    }

    fn from_args() -> Result<Self, String> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        // `cargo bench` passes `--bench`; `cargo test` does not.
        let mut p = if args.iter().any(|a| a == "--bench") { Params::full() } else { Params::smoke() };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str, min: f64| -> Result<f64, String> {
                it.next()
                    .and_then(|v| v.parse::<f64>().ok())
                    .filter(|v| *v >= min && v.is_finite())
                    .ok_or_else(|| format!("{name} needs a number of at least {min}"))
            };
            match a.as_str() {
                "--bench" => {}
                "--quick" => p = Params { chart: p.chart, ..Params::quick() },
                "--rates" | "--rate" => {
                    p.rates = it
                        .next()
                        .map(|v| v.split(',').map(|r| r.trim().parse::<f64>()).collect())
                        .and_then(Result::ok)
                        .filter(|r: &Vec<f64>| !r.is_empty() && r.iter().all(|r| *r > 0.0 && r.is_finite()))
                        .ok_or("--rates needs a comma-separated list of positive numbers")?
                }
                "--secs" => p.latency_secs = value("--secs", 0.01)?,
                "--workers" => {
                    p.workers = it
                        .next()
                        .map(|v| v.split(',').map(|w| w.trim().parse::<usize>()).collect())
                        .and_then(Result::ok)
                        .filter(|w: &Vec<usize>| !w.is_empty() && !w.contains(&0))
                        .ok_or("--workers needs a comma-separated list of positive numbers")?
                }
                "--throughput-secs" => p.throughput_secs = value("--throughput-secs", 0.01)?,
                "--warmup-secs" => p.warmup_secs = value("--warmup-secs", 0.0)?,
                "--streams" => p.streams = value("--streams", 1.0)? as usize,
                "--idle-secs" => p.idle_secs = value("--idle-secs", 0.01)?,
                "--chunks" => p.chunks = value("--chunks", 1.0)? as usize,
                "--ttft-ms" => p.ttft_ms = value("--ttft-ms", 0.0)? as u64,
                "--inter-token-ms" => p.inter_token_ms = value("--inter-token-ms", 0.0)? as u64,
                "--dataplanes" => p.dataplanes = value("--dataplanes", 1.0)? as usize,
                "--repeats" => p.repeats = value("--repeats", 1.0)? as usize,
                "--replicas" => p.replicas = value("--replicas", 1.0)? as usize,
                "--postgres" => p.postgres = Some(it.next().ok_or("--postgres needs a URL")?.clone()),
                "--dist-keys" => p.dist_keys = value("--dist-keys", 1.0)? as usize,
                "--dist-peers" => p.dist_peers = value("--dist-peers", 1.0)? as usize,
                "--budgets" => p.budgets = true,
                "--no-budgets" => p.budgets = false,
                "--otlp" => p.otlp = true,
                "--spend-users" => p.spend_users = value("--spend-users", 0.0)? as usize,
                "--spend-rate" => p.spend_rate = value("--spend-rate", 1.0)?,
                "--spend-secs" => p.spend_secs = value("--spend-secs", 0.1)?,
                "--chart" => {
                    let path = PathBuf::from(it.next().ok_or("--chart needs a path")?);
                    p.chart = if path.is_absolute() { path } else { fleet::workspace_root().join(path) };
                }
                "-h" | "--help" => return Err(String::new()),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        if p.replicas > 1 && p.postgres.is_none() {
            return Err("--replicas above 1 needs --postgres (replicas share one PostgreSQL)".into());
        }
        Ok(p)
    }
}

const USAGE: &str = "usage: cargo bench -p ccag-dataplane --bench gateway [-- OPTIONS]
  --quick                 ~2 s per phase, 200 held streams, 10 repeats (~1 minute)
  --rates N[,N…]          open-loop request rates, req/s, one phase each (default 50,200,1000)
  --secs S                seconds of each open-loop phase (default 10)
  --workers N[,N…]        closed-loop concurrency, one phase each (default 32,128)
  --throughput-secs S     seconds of each closed-loop phase (default 10)
  --warmup-secs S         unmeasured seconds before each load phase (default 1)
  --streams N             streams held open for the memory and CPU reading (default 1000)
  --idle-secs S           seconds the held streams stay idle for the idle CPU (default 12)
  --chunks N              text deltas per reply (default 3)
  --ttft-ms N             the double's time to first token (default 0)
  --inter-token-ms N      the double's delay between events (default 0)
  --dataplanes N          data planes connected to the control plane (default 2)
  --repeats N             configuration changes and usage records timed (default 20)
  --postgres URL          run the control plane on a throw-away database on this
                          PostgreSQL server (postgres://user@host:port; made and
                          dropped with psql) instead of SQLite
  --replicas N            control-plane replicas on that database (default 1); each
                          data plane is given every replica's URL, starting with a
                          different one, and admin changes go to the first
  --dist-keys N           keys for the distribution-cost phase (default 10000)
  --dist-peers N          simulated data planes in that phase (default 20)
  --spend-users N         budgeted users of the spend-ingest phase (default 10000; 0: no phase)
  --spend-rate N          usage records per second reported in it (default 2000)
  --spend-secs S          seconds it lasts (default 10)
  --no-budgets            no organisation-wide budget (by default every request is
                          judged by one, never reached, as in a configured gateway)
  --otlp                  the data planes export traces and metrics over OTLP/HTTP
                          (to a sink in the bench; OTEL_BSP_SCHEDULE_DELAY and
                          OTEL_METRIC_EXPORT_INTERVAL as set, else the SDK's
                          defaults, 5 s and 60 s)
  --chart PATH            the SVG chart (default target/gateway-bench.svg; relative
                          paths are taken from the workspace root)
Options after --quick override it.
Environment: CCAG_BENCH_DATAPLANE=/path/to/ccag-dataplane benchmarks that binary
instead of the one cargo built; CCAG_BENCH_CONTROLPLANE=/path/to/ccag-controlplane
uses that control plane instead of building one with cargo.";

// ---------------------------------------------------------------------------
// Entry point

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).take(2).collect();
    if let [flag, upstream] = args.as_slice() {
        if flag == relay::FLAG {
            return relay::serve(upstream);
        }
    }
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
    // Two workers whatever TOKIO_WORKER_THREADS says: that variable is for
    // the data planes the bench starts, which inherit the environment.
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime");
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

pub fn progress(msg: &str) {
    eprintln!("[gateway bench] {msg}");
}

async fn run(p: Params) -> Result<(), Error> {
    let machine = Machine::read();
    let nofile = fleet::raise_nofile_limit(p.streams);
    let cp_binary = tokio::task::spawn_blocking(fleet::controlplane_binary).await.map_err(|e| e.to_string())??;

    let otlp = if p.otlp {
        let (url, received) = otlp_sink::start().await?;
        // Inherited by the data planes started below (and ignored by the
        // control plane, which exports none).
        std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", &url);
        std::env::set_var("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf");
        // The SDK's defaults (spans every 5 s or per 512, metrics every
        // 60 s) unless the environment says otherwise; a quick run's
        // phases are shorter than the metric interval.
        let delay = std::env::var("OTEL_BSP_SCHEDULE_DELAY").unwrap_or_else(|_| "5000".into());
        let interval = std::env::var("OTEL_METRIC_EXPORT_INTERVAL").unwrap_or_else(|_| "60000".into());
        std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", &delay);
        std::env::set_var("OTEL_METRIC_EXPORT_INTERVAL", &interval);
        progress(&format!("OTLP export on, to {url}: spans every {delay} ms, metrics every {interval} ms"));
        Some(received)
    } else {
        None
    };
    // Two endpoints over TLS (the headline: real Bedrock is only reachable
    // over TLS) and two over plain HTTP (for comparison), each a double of
    // its own, so that each has its own connection pool in the data plane.
    let double_cfg = DoubleConfig {
        ttft_ms: p.ttft_ms,
        inter_token_ms: p.inter_token_ms,
        chunks: p.chunks,
        ..DoubleConfig::default()
    };
    let any_port: std::net::SocketAddr = "127.0.0.1:0".parse().expect("a socket address");
    let mut ca_pem = String::new();
    let mut tls_doubles = Vec::new();
    let mut plain_doubles = Vec::new();
    for _ in 0..2 {
        let (d, pem) = ccag_bedrock_double::spawn_tls(any_port, double_cfg.clone())
            .await
            .map_err(|e| format!("starting a Bedrock double over TLS: {e}"))?;
        ca_pem.push_str(&pem);
        tls_doubles.push(d);
        plain_doubles.push(
            ccag_bedrock_double::spawn(any_port, double_cfg.clone())
                .await
                .map_err(|e| format!("starting the Bedrock double: {e}"))?,
        );
    }
    // The guards below kill their processes when they drop, on every path out;
    // the work directory goes last.
    let work = WorkDir::new()?;
    let ca_bundle = work.0.join("doubles-ca.pem");
    std::fs::write(&ca_bundle, &ca_pem).map_err(|e| format!("{}: {e}", ca_bundle.display()))?;
    let database = p.postgres.as_deref().map(fleet::BenchDatabase::create).transpose()?;
    let database_url = database.as_ref().map(fleet::BenchDatabase::url);
    let mut cps: Vec<ControlPlane> = Vec::new();
    for r in 0..p.replicas {
        let cp = ControlPlane::start(&cp_binary, &work, r, database_url.as_deref(), cps.first())?;
        cps.push(cp);
    }
    let cp = &cps[0];
    progress(&format!(
        "doubles at {}, {} control-plane replica(s) on {} at {}",
        tls_doubles.iter().chain(&plain_doubles).map(|d| d.url()).collect::<Vec<_>>().join(", "),
        cps.len(),
        if database.is_some() { "PostgreSQL" } else { "SQLite" },
        cps.iter().map(|c| format!("{} (pid {})", c.grpc, c.pid())).collect::<Vec<_>>().join(", ")
    ));
    let admin = admin::Admin::login(cp).await.map_err(|e| format!("{e}; control plane log:\n{}", cp.log_tail()))?;
    if p.budgets {
        admin.set_org_budget(1_000_000.0).await?;
        progress("every request is judged by an organisation-wide budget");
    }
    // Routing over two endpoints per team, and keys with limits, as in a
    // configured gateway (the limits are far above the bench's rates).
    let mut routed = Vec::new();
    for (upstream, doubles) in [("tls", &tls_doubles), ("plain", &plain_doubles)] {
        let names = [format!("bench-{upstream}-1"), format!("bench-{upstream}-2")];
        for (name, d) in names.iter().zip(doubles.iter()) {
            admin.create_endpoint(name, &d.url()).await?;
        }
        let team = admin.create_routed_team(&format!("bench-{upstream}"), &[&names[0], &names[1]]).await?;
        routed
            .push(admin.create_limited_key(&format!("bench-load-{upstream}"), &team, 100_000_000, 100_000_000).await?);
    }
    let (bench_key, plain_key) = (routed[0].clone(), routed[1].clone());
    let probe_key = admin.create_key("bench-propagation").await?;
    let usage_key = admin.create_key("bench-usage").await?;
    let mut dps = Vec::new();
    for n in 1..=p.dataplanes {
        dps.push(DataPlane::start(n, &plain_doubles[0].url(), &ca_bundle, &cps, &work)?);
    }
    let dp = &dps[0];
    // The control plane and the idle data planes: their CPU is accounted apart.
    let fleet_pids: Vec<u32> = cps.iter().map(|c| c.pid()).chain(dps[1..].iter().map(|d| d.pid)).collect();
    // The floor: a bare relay in front of the first TLS double.
    let relay = Relay::start(tls_doubles[0].addr(), &work)?;
    let client = load::new_client(&ca_pem);
    let target = Target::new(client.clone(), &tls_doubles[0].url(), &dp.url, &bench_key.secret).with_relay(&relay.addr);
    let plain_target = Target::new(client, &plain_doubles[0].url(), &dp.url, &plain_key.secret);
    let target_of = |u: Upstream| match u {
        Upstream::Tls => &target,
        Upstream::Plain => &plain_target,
    };
    phases::wait_ready(&target, &dps, &[&bench_key, &plain_key, &probe_key, &usage_key]).await?;
    progress(&format!(
        "{} data plane(s) serving the control plane's keys; the load goes to {} (pid {})",
        dps.len(),
        dp.url,
        dp.pid
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_fresh = dp.rss_kib()?;
    let fds_fresh = dp.open_fds();

    load::sanity_check(&target).await.map_err(|e| format!("{e}; relay log:\n{}", relay.log_tail()))?;
    load::sanity_check(&plain_target).await?;
    if p.budgets {
        // The verdicts follow the data planes' start within a second or two.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !load::budgeted(&target).await? {
            if std::time::Instant::now() > deadline {
                return Err("--budgets: the data plane never judged a request by a budget".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // A few requests of each kind, so one-time initialisation is not
    // counted as the cost of the held streams.
    for _ in 0..20 {
        for (route, stream) in ALL {
            target.exchange(route, stream, PROMPT).await?;
            plain_target.exchange(route, stream, PROMPT).await?;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_warm = dp.rss_kib()?;

    progress(&format!("holding {} streams open", p.streams));
    let memory = phases::hold_streams(&target, dp, &fleet_pids, p.streams, p.idle_secs).await?;

    progress(&format!("configuration propagation: {} changes, {} data planes", p.repeats, dps.len()));
    let propagation = phases::propagation(&target, &admin, &dps, &probe_key, p.repeats).await?;
    progress(&format!("usage-report lag: {} requests", p.repeats));
    let usage = phases::usage_lag(&target, &admin, &usage_key, p.repeats).await?;

    let mut latency = Vec::new();
    // While the relay is measured, the data plane idles with the fleet.
    let fleet_and_dp: Vec<u32> = fleet_pids.iter().copied().chain([dp.pid]).collect();
    for upstream in [Upstream::Tls, Upstream::Plain] {
        let routes: &[Route] = match upstream {
            Upstream::Tls => &[Route::Direct, Route::Relay, Route::Gateway],
            Upstream::Plain => &[Route::Direct, Route::Gateway],
        };
        for &rate in &p.rates {
            for stream in [false, true] {
                for &route in routes {
                    progress(&format!(
                        "open loop, Bedrock over {}: {} {} at {rate} req/s for {} s",
                        upstream.name(),
                        route.name(),
                        kind_name(stream),
                        p.latency_secs
                    ));
                    let t = target_of(upstream);
                    load::open_loop(t, route, stream, rate, p.warmup_secs).await;
                    let cpu = match route {
                        Route::Relay => CpuMeter::start(relay.pid, &fleet_and_dp),
                        _ => CpuMeter::start(dp.pid, &fleet_pids),
                    };
                    let mut run = load::open_loop(t, route, stream, rate, p.latency_secs).await;
                    let cpu = cpu.stop();
                    run.total.sort();
                    run.first_byte.sort();
                    latency.push(LatencyRow { upstream, rate, route, stream, run, cpu });
                }
            }
        }
    }

    let mut saturation = Vec::new();
    for upstream in [Upstream::Tls, Upstream::Plain] {
        for stream in [false, true] {
            for &workers in &p.workers {
                for route in [Route::Direct, Route::Gateway] {
                    progress(&format!(
                        "closed loop, Bedrock over {}: {} {}, {workers} workers for {} s",
                        upstream.name(),
                        route.name(),
                        kind_name(stream),
                        p.throughput_secs
                    ));
                    let t = target_of(upstream);
                    load::closed_loop(t, route, stream, workers, p.warmup_secs).await;
                    let cpu = CpuMeter::start(dp.pid, &fleet_pids);
                    let mut run = load::closed_loop(t, route, stream, workers, p.throughput_secs).await;
                    let cpu = cpu.stop();
                    run.latencies.sort();
                    saturation.push(SaturationRow { upstream, workers, route, stream, run, cpu });
                }
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_end = dp.rss_kib()?;

    // Last: its keys would otherwise be in every data plane's state above.
    let distribution = distribution::run(cp, &admin, &probe_key, p.dist_keys, p.dist_peers, p.repeats).await?;
    let spend = if p.spend_users > 0 {
        Some(spend::run(cp, &admin, p.spend_users, p.spend_rate, p.spend_secs).await?)
    } else {
        None
    };

    let results = Results {
        params: p.clone(),
        machine,
        nofile,
        controlplane_binary: cp_binary.display().to_string(),
        dataplanes: dps.len(),
        rss_fresh,
        fds_fresh,
        rss_warm,
        rss_end,
        memory,
        latency,
        saturation,
        propagation,
        usage,
        replicas: cps.len(),
        postgres: database.is_some(),
        distribution,
        spend,
    };
    print!("{}", results.markdown());
    if let Some(r) = &otlp {
        use std::sync::atomic::Ordering::Relaxed;
        let (t, m, b) = (r.traces.load(Relaxed), r.metrics.load(Relaxed), r.bytes.load(Relaxed));
        println!("\nOTLP export: {t} trace and {m} metric exports received, {} KiB in all.", b / 1024);
        if t == 0 {
            return Err("--otlp: no trace export arrived".into());
        }
    }
    let svg = chart::latency_svg(&results);
    if let Some(dir) = p.chart.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(&p.chart, svg).map_err(|e| format!("writing the chart to {}: {e}", p.chart.display()))?;
    progress(&format!("chart written to {}", p.chart.display()));
    let failures = results.errors();
    drop(dps);
    drop(cps);
    drop(database);
    drop(relay);
    drop(tls_doubles);
    drop(plain_doubles);
    drop(work);
    if failures > 0 {
        return Err(format!("{failures} requests failed; see the tables above"));
    }
    Ok(())
}
