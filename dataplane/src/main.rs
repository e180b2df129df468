use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    // `ccag-dataplane health-check [URL]`: the container's probe (its image has
    // no shell).
    if let Some(code) = ccag_outbound::probe::command("ccag-dataplane", "CCAG_DATAPLANE_ADDR", "127.0.0.1:8080") {
        return code;
    }
    // Several dependencies enable different rustls backends; name the one to use.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let filter = EnvFilter::try_from_env("CCAG_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("CCAG_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    // Log lines (one per request, with the usage record) are written by a
    // dedicated thread, so a slow reader of stderr never stalls the request
    // workers. Not lossy: under a flood the buffer fills and writers wait,
    // rather than usage lines vanishing. 16k lines is seconds of logging at
    // thousands of requests per second; the default (128k) costs 4 MiB.
    let (writer, _flush_on_exit) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(16 * 1024)
        .finish(std::io::stderr());
    let fmt = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    if json {
        fmt.json().flatten_event(true).with_current_span(true).init();
    } else {
        fmt.init();
    }
    let settings = match ccag_dataplane::Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ccag-dataplane: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match settings.threading.runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ccag-dataplane: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ccag_dataplane::run(settings, shutdown_signal())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ccag-dataplane: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler cannot fail on unix");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
