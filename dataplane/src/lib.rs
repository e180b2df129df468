//! CCAG data plane: serves the Anthropic Messages API and runs every request
//! on Amazon Bedrock Runtime.
//!
//! A request's path through the crate: `http::serve` accepts it, `api` routes
//! and authenticates it (`auth`, against the snapshot in `config`), `models`
//! picks the Bedrock model, `translate` adapts the body, `upstream` calls
//! Bedrock, `stream` turns the event stream into SSE, and `usage` records it.

pub mod api;
pub mod auth;
pub mod config;
pub mod http;
pub mod models;
pub mod stream;
pub mod translate;
pub mod upstream;
pub mod usage;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;

/// Start-up settings, from the environment.
pub struct Settings {
    pub addr: SocketAddr,
    pub config_file: Option<PathBuf>,
}

impl Settings {
    pub fn from_env() -> Result<Self, String> {
        let addr = std::env::var("CCAG_DATAPLANE_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into());
        let addr = addr
            .parse()
            .map_err(|e| format!("CCAG_DATAPLANE_ADDR={addr:?}: {e}"))?;
        let config_file = std::env::var_os("CCAG_DATAPLANE_CONFIG").map(PathBuf::from);
        Ok(Settings { addr, config_file })
    }
}

/// Runs the data plane until `shutdown` resolves.
pub async fn run(
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let store = Arc::new(config::ConfigStore::default());
    match settings.config_file {
        Some(path) => config::watch_file(path, store.clone()).await?,
        None => return Err(
            "no configuration source: set CCAG_DATAPLANE_CONFIG to a snapshot file (proto3 JSON)"
                .into(),
        ),
    }
    let bedrock = upstream::Bedrock::from_env().await;
    let (sink, rx) = usage::UsageSink::new();
    usage::spawn_log_writer(rx);
    let state = Arc::new(api::AppState {
        config: store,
        bedrock,
        betas: Default::default(),
        usage: Arc::new(sink),
    });
    let listener = TcpListener::bind(settings.addr)
        .await
        .map_err(|e| format!("bind {}: {e}", settings.addr))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(addr = %local, region = state.bedrock.region(), "data plane listening");
    // A plain line on stdout lets scripts and tests learn a port chosen by the OS.
    println!("ccag-dataplane listening on http://{local}");
    http::serve(listener, state, shutdown).await;
    Ok(())
}
