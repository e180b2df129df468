use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // `ccag-controlplane health-check [URL]`: the container's probe (its image has
    // no shell).
    if let Some(code) = ccag_outbound::probe::command("ccag-controlplane", "CCAG_HTTP_ADDR", "127.0.0.1:8081") {
        return code;
    }
    // Several dependencies enable different rustls backends; name the one to use.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let filter = EnvFilter::try_from_env("CCAG_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("CCAG_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let fmt = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        fmt.json().flatten_event(true).init();
    } else {
        fmt.init();
    }
    let settings = match ccag_controlplane::Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ccag-controlplane: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match ccag_controlplane::run(settings, shutdown_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ccag-controlplane: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler cannot fail on unix");
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
}
