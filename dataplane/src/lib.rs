//! CCAG data plane: serves the Anthropic Messages API and runs every request
//! on Amazon Bedrock Runtime.
//!
//! A request's path through the crate: `http::serve` accepts it, `api` routes
//! and authenticates it (`auth`, against the snapshot in `config`) and
//! admits it under the `ratelimit`s, `routing` picks the endpoints to try and `models` the
//! Bedrock model, `translate` adapts the body, `upstream` calls Bedrock, `stream` turns the
//! event stream into SSE, and `usage` records it. A request with
//! Anthropic's web search tool goes through `websearch` instead of a single
//! call: it searches and calls Bedrock again until the model answers.
//!
//! Beside the request path: `control` keeps the snapshot current from the
//! control plane (or `config` from a file), `report` delivers usage
//! records to the control plane through a durable spool, and `observe`
//! turns them into metrics and traces (served on the admin listener,
//! exported over OTLP).

pub mod api;
pub mod auth;
pub mod budget;
pub mod config;
pub mod control;
pub mod http;
pub mod models;
pub mod observe;
pub mod ratelimit;
pub mod report;
pub mod routing;
pub mod stream;
pub mod translate;
pub mod upstream;
pub mod usage;
pub mod websearch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Start-up settings, from the environment.
pub struct Settings {
    pub addr: SocketAddr,
    pub config_file: Option<PathBuf>,
    pub control: Option<control::ControlSettings>,
    pub timeouts: http::Timeouts,
    /// `CCAG_CONTROLPLANE_HTTP_URL`: where the sign-in routes are passed
    /// (with a control plane: `http://127.0.0.1:8081` unless set; `off`
    /// serves none).
    pub signin_url: Option<String>,
    /// `CCAG_DATAPLANE_ADMIN_ADDR`: the metrics listener (`None`: off).
    pub admin_addr: Option<SocketAddr>,
    /// `CCAG_DATAPLANE_THREADING`: how requests are spread over the cores.
    /// `main` builds its runtime from it.
    pub threading: http::Threading,
}

impl Settings {
    pub fn from_env() -> Result<Self, String> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let addr = var("CCAG_DATAPLANE_ADDR").unwrap_or_else(|| "127.0.0.1:8080".into());
        let addr = addr.parse().map_err(|e| format!("CCAG_DATAPLANE_ADDR={addr:?}: {e}"))?;
        let config_file = var("CCAG_DATAPLANE_CONFIG").map(PathBuf::from);
        let control = match var("CCAG_CONTROLPLANE_URL") {
            None => None,
            Some(list) => {
                let urls = control::parse_urls(&list)?;
                let token = match (var("CCAG_DATAPLANE_TOKEN"), var("CCAG_DATAPLANE_TOKEN_FILE")) {
                    (Some(t), _) => t,
                    (None, Some(f)) => std::fs::read_to_string(&f)
                        .map_err(|e| format!("CCAG_DATAPLANE_TOKEN_FILE={f:?}: {e}"))?
                        .trim()
                        .to_owned(),
                    (None, None) => {
                        return Err(
                            "CCAG_CONTROLPLANE_URL needs CCAG_DATAPLANE_TOKEN or CCAG_DATAPLANE_TOKEN_FILE".into()
                        )
                    }
                };
                let state_dir =
                    PathBuf::from(var("CCAG_DATAPLANE_STATE_DIR").unwrap_or_else(|| "./data/dataplane".into()));
                let id = match var("CCAG_DATAPLANE_ID") {
                    Some(id) => id,
                    None => persistent_id(&state_dir)?,
                };
                let ca_pem = match var("CCAG_CONTROLPLANE_CA") {
                    Some(f) => Some(std::fs::read(&f).map_err(|e| format!("CCAG_CONTROLPLANE_CA={f:?}: {e}"))?),
                    None => None,
                };
                Some(control::ControlSettings { urls, token, id, state_dir, address: String::new(), ca_pem })
            }
        };
        if config_file.is_some() && control.is_some() {
            return Err("set either CCAG_DATAPLANE_CONFIG or CCAG_CONTROLPLANE_URL, not both".into());
        }
        let timeouts = http::Timeouts::from_env()?;
        let signin_url = match var("CCAG_CONTROLPLANE_HTTP_URL") {
            Some(v) if v.trim() == "off" => None,
            Some(v) => Some(v),
            None => control.as_ref().map(|_| "http://127.0.0.1:8081".to_owned()),
        };
        let admin_addr = observe::admin::addr_from_env()?;
        let threading = http::Threading::from_env()?;
        Ok(Settings { addr, config_file, control, timeouts, signin_url, admin_addr, threading })
    }
}

/// A data plane keeps its id across restarts (the control plane shows it).
fn persistent_id(state_dir: &std::path::Path) -> Result<String, String> {
    let path = state_dir.join("id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        if !id.trim().is_empty() {
            return Ok(id.trim().to_owned());
        }
    }
    let id = format!("dp-{:016x}", fastrand::u64(..));
    std::fs::create_dir_all(state_dir).map_err(|e| format!("{}: {e}", state_dir.display()))?;
    std::fs::write(&path, &id).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(id)
}

/// Runs the data plane until `shutdown` resolves. With per-core threading
/// it must be called on a current-thread runtime (the first core's), as
/// `settings.threading.runtime()` builds it.
pub async fn run(settings: Settings, shutdown: impl std::future::Future<Output = ()>) -> Result<(), String> {
    let store = Arc::new(config::ConfigStore::default());
    let listener = http::bind(settings.addr).map_err(|e| format!("bind {}: {e}", settings.addr))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let admin = match settings.admin_addr {
        Some(a) => Some(http::bind(a).map_err(|e| format!("bind CCAG_DATAPLANE_ADMIN_ADDR {a}: {e}"))?),
        None => None,
    };
    let metrics = Arc::new(observe::Metrics::new());
    let instance = settings.control.as_ref().map_or_else(|| format!("dp-{local}"), |c| c.id.clone());
    let otlp = observe::Otlp::from_env(&metrics, &instance).map_err(|e| e.to_string())?;
    let observer = Arc::new(observe::Observer::new(metrics.clone(), otlp, store.clone()));
    let limiter = Arc::new(ratelimit::Limiter::new());
    let (sink, rx) = usage::UsageSink::new(limiter.clone(), store.budgets.clone());
    let sink = sink.with_dropped_counter(metrics.dropped_counter());
    let router = Arc::new(routing::Router::default());
    let signin = match (&settings.signin_url, &settings.control) {
        (Some(url), Some(c)) => Some(api::ControlPlaneHttp::new(url, &c.token)?),
        (Some(_), None) => return Err("CCAG_CONTROLPLANE_HTTP_URL needs CCAG_CONTROLPLANE_URL".into()),
        _ => None,
    };
    let reporting = settings.control.is_some();
    let usage_task = match (settings.config_file, settings.control) {
        (Some(path), None) => {
            config::watch_file(path, store.clone()).await?;
            report::reporter::spawn_log_only(rx, observer.clone())
        }
        (None, Some(mut control)) => {
            control.address = format!("http://{local}");
            let held = control::load_persisted(&control.state_dir, &store);
            control::spawn_watch(control.clone(), store.clone(), held);
            report::reporter::spawn(rx, control, store.budgets.clone(), router.clone(), observer.clone())?
        }
        _ => {
            return Err("no configuration source: set CCAG_CONTROLPLANE_URL (with CCAG_DATAPLANE_TOKEN), \
                        or CCAG_DATAPLANE_CONFIG to a snapshot file (proto3 JSON)"
                .into())
        }
    };
    let sweeper = limiter.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            sweeper.sweep(std::time::Instant::now());
        }
    });
    let bedrock = upstream::Bedrock::from_env().await?;
    let outbound = ccag_websearch::Policy::from_env()?;
    let state = Arc::new(api::AppState {
        config: store,
        bedrock,
        router,
        betas: Default::default(),
        usage: Arc::new(sink),
        limiter,
        timeouts: settings.timeouts,
        gauges: Default::default(),
        tokens: Default::default(),
        signin,
        searcher: Arc::new(ccag_websearch::Searcher::new(outbound)),
        observer: observer.clone(),
    });
    // A new configuration's endpoints are built (and their assumed roles
    // resolved) within a second, ahead of the first request that needs them.
    // Weak: the state (and the usage channel it feeds) must be able to go
    // at shutdown.
    let preparing = Arc::downgrade(&state);
    tokio::spawn(async move {
        while let Some(state) = preparing.upgrade() {
            if let Some(cfg) = state.config.get() {
                state.router.prepare(&cfg, &state.bedrock);
            }
            drop(state);
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    });
    let (stop_admin, admin_stopped) = tokio::sync::watch::channel(false);
    let cores = match settings.threading {
        http::Threading::PerCore(n) => {
            let cores = http::Cores::start(n, state.bedrock.thread_pool_maker())
                .map_err(|e| format!("starting {n} request cores: {e}"))?;
            state.gauges.count_tasks_of(cores.handles());
            Some(Arc::new(cores))
        }
        http::Threading::WorkStealing => None,
    };
    let admin_addr = admin.as_ref().map(|l| l.local_addr()).transpose().map_err(|e| e.to_string())?;
    let admin_task = admin.map(|l| tokio::spawn(observe::admin::serve(l, state.clone(), admin_stopped)));
    let metrics_at = admin_addr.map_or_else(|| "off".to_owned(), |a| a.to_string());
    let threads = cores.as_ref().map_or_else(|| "work-stealing".to_owned(), |c| format!("{} cores", c.count()));
    tracing::info!(addr = %local, region = state.bedrock.region(), metrics = %metrics_at, %threads, "data plane listening");
    // Plain lines on stdout let scripts and tests learn ports chosen by the
    // OS. The first is the one scripts wait for.
    println!("ccag-dataplane listening on http://{local}");
    if let Some(a) = admin_addr {
        println!("ccag-dataplane metrics at http://{a}/metrics");
    }
    http::serve(listener, state, cores.clone(), shutdown).await;
    if let Some(cores) = cores {
        // Their connections are over; what they still run is dropped.
        let _ = tokio::task::spawn_blocking(move || cores.stop()).await;
    }
    let _ = stop_admin.send(true);
    if let Some(t) = admin_task {
        let _ = t.await;
    }
    // Every request has finished or been cut: once the last sender is gone
    // the usage writer drains the channel to disk and stops.
    if tokio::time::timeout(std::time::Duration::from_secs(10), usage_task).await.is_err() {
        tracing::warn!("usage writer did not finish in time");
    }
    if reporting && !report::reporter::delivered(&metrics).await {
        let bytes = metrics.spool.bytes.load(std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(bytes, "usage not yet delivered stays in the spool; it is sent at the next start");
    }
    // The writer made the last spans; the exporters send them.
    let flushing = observer.clone();
    let _ = tokio::task::spawn_blocking(move || {
        if let Some(o) = &flushing.otlp {
            o.shutdown();
        }
    })
    .await;
    tracing::info!("data plane stopped");
    Ok(())
}
