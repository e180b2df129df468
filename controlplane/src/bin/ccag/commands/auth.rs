//! login, logout, whoami and API tokens.

use ccag_proto::admin::v1::{
    auth_service_client::AuthServiceClient, CreateApiTokenRequest, ListApiTokensRequest, LoginRequest,
    RevokeApiTokenRequest, WhoAmIRequest,
};

use super::{fetch_pages, list_out, one_out, Out};
use crate::args::{LoginArgs, TokensCmd, DEFAULT_ENDPOINT};
use crate::client::{self, Ctx};
use crate::error::CliError;
use crate::output::{self, role_name, Record, Resource};
use crate::prompt;
use crate::session::{self, Session};

pub async fn login(endpoint: Option<String>, args: LoginArgs, json: bool) -> Result<Out, CliError> {
    let dir = session::config_dir()?;
    let endpoint = match endpoint {
        Some(e) => client::normalize_endpoint(&e),
        // Log in again where the last session was, if any.
        None => match session::load(&dir) {
            Ok(Some(s)) if !s.endpoint.trim().is_empty() => client::normalize_endpoint(&s.endpoint),
            _ => DEFAULT_ENDPOINT.to_string(),
        },
    };
    let channel = client::connect(&endpoint).await?;
    if args.sso {
        let resp = sso(AuthServiceClient::new(channel), &endpoint).await?;
        return finish_login(&dir, endpoint, resp, json);
    }

    let username = match args.username.filter(|u| !u.trim().is_empty()) {
        Some(u) => u,
        None if args.password_stdin => {
            return Err(CliError::usage("--password-stdin needs --username"));
        }
        None => prompt::prompt_line("Username: ")?,
    };
    let password =
        if args.password_stdin { prompt::read_stdin_secret()? } else { prompt::prompt_secret("Password: ")? };

    let resp = AuthServiceClient::new(channel)
        .login(LoginRequest { username, password })
        .await
        .map_err(|s| CliError::from_status(&s, &endpoint))?
        .into_inner();
    finish_login(&dir, endpoint, resp, json)
}

/// The device authorization grant: the person approves in a browser, the
/// CLI polls. Instructions go to stderr, so `--json` output stays clean.
async fn sso(
    mut api: AuthServiceClient<tonic::transport::Channel>,
    endpoint: &str,
) -> Result<ccag_proto::admin::v1::LoginResponse, CliError> {
    use ccag_proto::admin::v1::{PollDeviceLoginRequest, StartDeviceLoginRequest};
    let start = api
        .start_device_login(StartDeviceLoginRequest {})
        .await
        .map_err(|s| CliError::from_status(&s, endpoint))?
        .into_inner();
    eprintln!(
        "To sign in, open {}\nand check that it shows the code {} before you approve.\nWaiting for approval…",
        start.verification_uri_complete, start.user_code
    );
    let mut interval = std::time::Duration::from_secs(u64::from(start.interval.max(1)));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(u64::from(start.expires_in));
    loop {
        tokio::time::sleep(interval).await;
        let r = api
            .poll_device_login(PollDeviceLoginRequest { device_code: start.device_code.clone() })
            .await
            .map_err(|s| CliError::from_status(&s, endpoint))?
            .into_inner();
        match r.error.as_str() {
            "" => return r.login.ok_or_else(|| CliError::other("the server approved the sign-in without a session")),
            "authorization_pending" => {}
            "slow_down" => interval += std::time::Duration::from_secs(5),
            "access_denied" => return Err(CliError::not_logged_in("the sign-in was denied in the browser")),
            "expired_token" => {
                return Err(CliError::not_logged_in("the sign-in code expired; run ccag login --sso again"))
            }
            other => return Err(CliError::other(format!("unexpected answer from the server: {other}"))),
        }
        if std::time::Instant::now() > deadline {
            return Err(CliError::not_logged_in("the sign-in code expired; run ccag login --sso again"));
        }
    }
}

fn finish_login(
    dir: &std::path::Path,
    endpoint: String,
    resp: ccag_proto::admin::v1::LoginResponse,
    json: bool,
) -> Result<Out, CliError> {
    if resp.token.is_empty() {
        return Err(CliError::other("the server answered Login without a token"));
    }
    session::save(
        dir,
        &Session { endpoint: endpoint.clone(), token: resp.token.clone(), expires_at: resp.expires_at.clone() },
    )?;
    let p = resp.principal.unwrap_or_default();
    if json {
        let rec = Record::new()
            .field("endpoint", endpoint)
            .field("user_id", p.user_id)
            .field("email", p.email)
            .field("role", role_name(p.role))
            .field("expires_at", resp.expires_at);
        Ok(output::to_json(&rec).into())
    } else {
        let until = if resp.expires_at.is_empty() { String::new() } else { format!(" until {}", resp.expires_at) };
        Ok(format!("Logged in to {endpoint} as {} ({}){until}.\n", p.email, role_name(p.role)).into())
    }
}

pub async fn logout(json: bool) -> Result<Out, CliError> {
    let dir = session::config_dir()?;
    // End it on the server first; a server that cannot be reached does not
    // keep the local copy alive.
    if let Ok(Some(s)) = session::load(&dir) {
        let ended = async {
            let channel = client::connect(&client::normalize_endpoint(&s.endpoint)).await.ok()?;
            let bearer = client::Bearer::new(&s.token).ok()?;
            let ctx = client::Ctx::new(s.endpoint.clone(), channel, bearer);
            ctx.auth().logout(ccag_proto::admin::v1::LogoutRequest {}).await.ok()
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), ended).await;
    }
    let removed = session::delete(&dir)?;
    if json {
        Ok(output::to_json(&Record::new().field("logged_out", removed)).into())
    } else if removed {
        Ok("Logged out.\n".to_string().into())
    } else {
        Ok("Not logged in.\n".to_string().into())
    }
}

pub async fn whoami(ctx: &Ctx, json: bool) -> Result<Out, CliError> {
    let p = ctx.auth().who_am_i(WhoAmIRequest {}).await.map_err(|s| ctx.err(s))?.into_inner();
    Ok(one_out(&p, json))
}

pub async fn tokens(ctx: &Ctx, cmd: TokensCmd, json: bool) -> Result<Out, CliError> {
    match cmd {
        TokensCmd::Create { name, user, ttl_days } => {
            let user_id = match user {
                Some(u) => ctx.user_id(&u).await?,
                None => String::new(),
            };
            let resp = ctx
                .auth()
                .create_api_token(CreateApiTokenRequest { name, user_id, ttl_days: ttl_days.unwrap_or(0) })
                .await
                .map_err(|s| ctx.err(s))?
                .into_inner();
            let t = resp.api_token.unwrap_or_default();
            if json {
                Ok(output::to_json(&t.record().prepend("token", resp.token)).into())
            } else {
                Ok(secret_text("API token", &t.name, &t.id, &resp.token).into())
            }
        }
        TokensCmd::List { user, page } => {
            let user_id = match user {
                Some(u) => ctx.user_id(&u).await?,
                None => String::new(),
            };
            let client = ctx.auth();
            let paged = fetch_pages(&page, |p| {
                let mut c = client.clone();
                let req = ListApiTokensRequest { page: Some(p), user_id: user_id.clone() };
                async move {
                    let r = c.list_api_tokens(req).await?.into_inner();
                    Ok((r.api_tokens, r.next_page_token))
                }
            })
            .await
            .map_err(|s| ctx.err(s))?;
            Ok(list_out(&paged, json))
        }
        TokensCmd::Revoke { id } => {
            let t =
                ctx.auth().revoke_api_token(RevokeApiTokenRequest { id }).await.map_err(|s| ctx.err(s))?.into_inner();
            Ok(one_out(&t, json))
        }
    }
}

/// The human text for a secret shown once.
pub fn secret_text(kind: &str, name: &str, id: &str, secret: &str) -> String {
    format!(
        "Created {kind} {name:?} (id {id}).\n\n    {secret}\n\n\
         Copy it now: it will not be shown again.\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_text_shows_the_secret_once_with_a_warning() {
        let t = secret_text("key", "ci", "k1", "sk-ccag-xyz");
        assert_eq!(t.matches("sk-ccag-xyz").count(), 1);
        assert!(t.contains("will not be shown again"));
        assert!(t.contains("\"ci\""));
    }
}
