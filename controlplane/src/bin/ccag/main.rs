//! `ccag`: the command-line client of the CCAG control plane's admin API.

mod args;
mod client;
mod commands;
mod error;
mod output;
mod prompt;
mod session;

use std::io::Write;

use clap::Parser;

use args::{Cli, Command, DEFAULT_ENDPOINT};
use client::{Bearer, Ctx};
use commands::Out;
use error::CliError;

fn main() {
    // Several dependencies enable different rustls backends; name the one to use.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    let result = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt.block_on(run(cli)),
        Err(e) => Err(CliError::other(format!("cannot start the async runtime: {e}"))),
    };
    let code = match result {
        Ok(out) => print(out),
        Err(e) => {
            eprintln_safe(&format!("ccag: {}", e.one_line()));
            e.code
        }
    };
    std::process::exit(code);
}

/// Writes a result; a closed stdout (e.g. `| head`) is not an error.
fn print(out: Out) -> i32 {
    let mut stdout = std::io::stdout().lock();
    let res = stdout.write_all(out.stdout.as_bytes()).and_then(|()| stdout.flush());
    if let Some(note) = out.note {
        eprintln_safe(&note);
    }
    match res {
        Ok(()) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln_safe(&format!("ccag: cannot write the output: {e}"));
            error::EXIT_OTHER
        }
    }
}

fn eprintln_safe(line: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{line}");
}

async fn run(cli: Cli) -> Result<Out, CliError> {
    let json = cli.json;
    let endpoint = cli.endpoint.filter(|e| !e.trim().is_empty());
    let token = cli.token.filter(|t| !t.trim().is_empty());
    match cli.command {
        Command::Login(a) => commands::auth::login(endpoint, a, json).await,
        Command::Logout => commands::auth::logout(json).await,
        // Neither needs a control plane.
        Command::Completions { shell } => Ok(completions(shell).into()),
        Command::Man => man().map(Into::into),
        command => {
            let ctx = open(endpoint, token).await?;
            match command {
                Command::Whoami => commands::auth::whoami(&ctx, json).await,
                Command::Status => commands::status::run(&ctx, json).await,
                Command::Users(c) => commands::users::run(&ctx, c, json).await,
                Command::Teams(c) => commands::teams::run(&ctx, c, json).await,
                Command::Keys(c) => commands::keys::run(&ctx, c, json).await,
                Command::Models(c) => commands::models::run(&ctx, c, json).await,
                Command::Endpoints(c) => commands::endpoints::run(&ctx, c, json).await,
                Command::Settings(c) => commands::settings::run(&ctx, c, json).await,
                Command::Audit(c) => commands::audit::run(&ctx, c, json).await,
                Command::Tokens(c) => commands::auth::tokens(&ctx, c, json).await,
                Command::Usage(a) => commands::usage::usage(&ctx, a, json).await,
                Command::Export(a) => commands::usage::export(&ctx, a).await,
                Command::Prices(c) => commands::usage::prices(&ctx, c, json).await,
                Command::Budgets(c) => commands::budgets::run(&ctx, c, json).await,
                Command::Notifications(c) => commands::notifications::run(&ctx, c, json).await,
                Command::Idps(c) => commands::idps::run(&ctx, c, json).await,
                Command::Sessions(c) => commands::idps::sessions(&ctx, c, json).await,
                Command::ManagedSettings(c) => commands::managed::run(&ctx, c, json).await,
                Command::Search(c) => commands::search::run(&ctx, c, json).await,
                Command::Scim(c) => commands::scim::run(&ctx, c, json).await,
                Command::Login(_) | Command::Logout | Command::Completions { .. } | Command::Man => {
                    unreachable!("handled above")
                }
            }
        }
    }
}

fn completions(shell: clap_complete::Shell) -> String {
    use clap::CommandFactory;
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "ccag", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// One page for the whole tool: every subcommand with its options.
fn man() -> Result<String, CliError> {
    use clap::CommandFactory;
    let mut out = Vec::new();
    let cmd = Cli::command();
    let fail = |e: std::io::Error| CliError::other(format!("rendering the manual page: {e}"));
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(&mut out).map_err(fail)?;
    man.render_name_section(&mut out).map_err(fail)?;
    man.render_synopsis_section(&mut out).map_err(fail)?;
    man.render_description_section(&mut out).map_err(fail)?;
    man.render_options_section(&mut out).map_err(fail)?;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("ccag {}", sub.get_name());
        let page = clap_mangen::Man::new(sub.clone());
        out.extend_from_slice(format!(".SH \"{}\"\n", name.to_uppercase()).as_bytes());
        page.render_description_section(&mut out).map_err(fail)?;
        page.render_options_section(&mut out).map_err(fail)?;
        page.render_subcommands_section(&mut out).map_err(fail)?;
    }
    man.render_version_section(&mut out).map_err(fail)?;
    man.render_extra_section(&mut out).map_err(fail)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Where to connect and with which token: `--token`/`CCAG_TOKEN` at
/// `--endpoint`/`CCAG_ENDPOINT` (or the default), else the saved session,
/// which is only sent to the endpoint it was made for.
fn resolve(
    endpoint: Option<String>,
    token: Option<String>,
    saved: impl FnOnce() -> Result<Option<session::Session>, CliError>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(String, String), CliError> {
    let explicit = endpoint.map(|e| client::normalize_endpoint(&e));
    if let Some(token) = token {
        return Ok((explicit.unwrap_or_else(|| DEFAULT_ENDPOINT.to_string()), token));
    }
    let Some(s) = saved()? else {
        return Err(CliError::not_logged_in("not logged in (run `ccag login` or set CCAG_TOKEN)"));
    };
    let saved_endpoint = client::normalize_endpoint(&s.endpoint);
    if let Some(e) = explicit {
        if e != saved_endpoint {
            return Err(CliError::not_logged_in(format!(
                "not logged in to {e}: the saved session is for {saved_endpoint} \
                 (run `ccag --endpoint {e} login` or set CCAG_TOKEN)"
            )));
        }
    }
    if s.is_expired(now) {
        return Err(CliError::not_logged_in(format!("the session expired at {} (run `ccag login`)", s.expires_at)));
    }
    Ok((saved_endpoint, s.token))
}

async fn open(endpoint: Option<String>, token: Option<String>) -> Result<Ctx, CliError> {
    let (endpoint, token) = resolve(endpoint, token, || session::load(&session::config_dir()?), chrono::Utc::now())?;
    let bearer = Bearer::new(&token)?;
    let channel = client::connect(&endpoint).await?;
    Ok(Ctx::new(endpoint, channel, bearer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use session::Session;

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339("2025-06-01T00:00:00Z").unwrap().with_timezone(&chrono::Utc)
    }

    fn saved(ep: &str, exp: &str) -> Session {
        Session { endpoint: ep.into(), token: "saved".into(), expires_at: exp.into() }
    }

    #[test]
    fn explicit_token_wins() {
        let r = resolve(None, Some("t".into()), || panic!("no session read"), now()).unwrap();
        assert_eq!(r, (DEFAULT_ENDPOINT.to_string(), "t".to_string()));
        let r = resolve(Some("h:1".into()), Some("t".into()), || Ok(None), now()).unwrap();
        assert_eq!(r.0, "http://h:1");
    }

    #[test]
    fn saved_session_is_used_at_its_endpoint() {
        let s = saved("http://h:1", "2030-01-01T00:00:00Z");
        let r = resolve(None, None, || Ok(Some(s.clone())), now()).unwrap();
        assert_eq!(r, ("http://h:1".to_string(), "saved".to_string()));
        let r = resolve(Some("http://h:1/".into()), None, || Ok(Some(s.clone())), now()).unwrap();
        assert_eq!(r.1, "saved");
    }

    #[test]
    fn saved_session_is_not_sent_elsewhere() {
        let s = saved("http://h:1", "2030-01-01T00:00:00Z");
        let e = resolve(Some("http://other:2".into()), None, || Ok(Some(s)), now()).unwrap_err();
        assert_eq!(e.code, 4);
        assert!(e.message.contains("http://other:2"), "{}", e.message);
    }

    #[test]
    fn no_session_or_expired_is_exit_4() {
        assert_eq!(resolve(None, None, || Ok(None), now()).unwrap_err().code, 4);
        let s = saved("http://h:1", "2025-01-01T00:00:00Z");
        let e = resolve(None, None, || Ok(Some(s)), now()).unwrap_err();
        assert_eq!(e.code, 4);
        assert!(e.message.contains("expired"));
    }
}
