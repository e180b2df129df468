//! `ccag idps` and `ccag sessions`.

use std::collections::HashMap;

use ccag_proto::admin::v1 as pb;

use super::{deleted_out, fetch_pages, list_out, one_out, require_change, Out};
use crate::args::{IdpSettings, IdpsCmd, RoleArg, SessionsCmd};
use crate::client::Ctx;
use crate::error::CliError;
use crate::output::{self, Resource};
use crate::prompt;

fn list(v: &str) -> Vec<String> {
    v.split([',', ' ']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

fn role(r: Option<RoleArg>) -> i32 {
    match r {
        Some(RoleArg::Admin) => pb::Role::Admin as i32,
        Some(RoleArg::Member) => pb::Role::Member as i32,
        None => pb::Role::Unspecified as i32,
    }
}

fn team_map(items: &[String]) -> Result<HashMap<String, String>, CliError> {
    let mut out = HashMap::new();
    for item in items {
        let (g, t) = item
            .split_once('=')
            .filter(|(g, t)| !g.trim().is_empty() && !t.trim().is_empty())
            .ok_or_else(|| CliError::usage(format!("--team-map {item:?}: write GROUP=TEAM")))?;
        out.insert(g.trim().to_owned(), t.trim().to_owned());
    }
    Ok(out)
}

fn auto(s: &IdpSettings) -> Option<bool> {
    if s.auto_provision {
        Some(true)
    } else if s.no_auto_provision {
        Some(false)
    } else {
        None
    }
}

fn secret(s: &IdpSettings) -> Result<Option<String>, CliError> {
    s.client_secret_stdin.then(prompt::read_stdin_secret).transpose()
}

/// After create: what to register at the provider, and where to sign in.
fn created(p: &pb::IdentityProvider, json: bool) -> Out {
    if json {
        return output::render_one(p, true).into();
    }
    format!(
        "Created identity provider {:?} (id {}).\n\nRegister this redirect URI at the provider:\n\n    {}\n\nPeople sign in at:\n\n    {}\n",
        p.name, p.id, p.redirect_uri, p.login_url
    )
    .into()
}

pub async fn run(ctx: &Ctx, cmd: IdpsCmd, json: bool) -> Result<Out, CliError> {
    let mut api = ctx.idps();
    match cmd {
        IdpsCmd::Create { name, settings: s, disabled } => {
            let (Some(issuer), Some(client_id)) = (s.issuer.clone(), s.client_id.clone()) else {
                return Err(CliError::usage("create needs --issuer and --client-id"));
            };
            if s.clear_team_map {
                return Err(CliError::usage("--clear-team-map is for update"));
            }
            let p = api
                .create_identity_provider(pb::CreateIdentityProviderRequest {
                    name,
                    issuer,
                    client_id,
                    client_secret: secret(&s)?.unwrap_or_default(),
                    scopes: list(&s.scopes.clone().unwrap_or_default()),
                    email_claim: s.email_claim.clone().unwrap_or_default(),
                    groups_claim: s.groups_claim.clone().unwrap_or_default(),
                    allowed_domains: list(&s.allowed_domains.clone().unwrap_or_default()),
                    auto_provision: auto(&s),
                    default_role: role(s.default_role),
                    admin_groups: list(&s.admin_groups.clone().unwrap_or_default()),
                    team_mappings: team_map(&s.team_map)?,
                    enabled: Some(!disabled),
                    skip_discovery: s.skip_discovery,
                })
                .await
                .map_err(|e| ctx.err(e))?
                .into_inner();
            Ok(created(&p, json))
        }
        IdpsCmd::List { page } => {
            let paged = fetch_pages(&page, |p| {
                let mut c = api.clone();
                async move {
                    let r = c
                        .list_identity_providers(pb::ListIdentityProvidersRequest { page: Some(p) })
                        .await?
                        .into_inner();
                    Ok((r.identity_providers, r.next_page_token))
                }
            })
            .await
            .map_err(|e| ctx.err(e))?;
            Ok(list_out(&paged, json))
        }
        IdpsCmd::Show { idp } => {
            let p = api
                .get_identity_provider(pb::GetIdentityProviderRequest { idp })
                .await
                .map_err(|e| ctx.err(e))?
                .into_inner();
            Ok(one_out(&p, json))
        }
        IdpsCmd::Update { idp, name, settings: s, clear_client_secret, enable, disable } => {
            let client_secret = if clear_client_secret { Some(String::new()) } else { secret(&s)? };
            require_change(
                name.is_some()
                    || s.issuer.is_some()
                    || s.client_id.is_some()
                    || client_secret.is_some()
                    || s.scopes.is_some()
                    || s.email_claim.is_some()
                    || s.groups_claim.is_some()
                    || s.allowed_domains.is_some()
                    || s.admin_groups.is_some()
                    || !s.team_map.is_empty()
                    || s.clear_team_map
                    || s.default_role.is_some()
                    || auto(&s).is_some()
                    || enable
                    || disable,
            )?;
            let p = api
                .update_identity_provider(pb::UpdateIdentityProviderRequest {
                    idp,
                    name,
                    issuer: s.issuer.clone(),
                    client_id: s.client_id.clone(),
                    client_secret,
                    set_scopes: s.scopes.is_some(),
                    scopes: list(&s.scopes.clone().unwrap_or_default()),
                    email_claim: s.email_claim.clone(),
                    groups_claim: s.groups_claim.clone(),
                    set_allowed_domains: s.allowed_domains.is_some(),
                    allowed_domains: list(&s.allowed_domains.clone().unwrap_or_default()),
                    auto_provision: auto(&s),
                    default_role: role(s.default_role),
                    set_admin_groups: s.admin_groups.is_some(),
                    admin_groups: list(&s.admin_groups.clone().unwrap_or_default()),
                    set_team_mappings: !s.team_map.is_empty() || s.clear_team_map,
                    team_mappings: team_map(&s.team_map)?,
                    enabled: if enable {
                        Some(true)
                    } else if disable {
                        Some(false)
                    } else {
                        None
                    },
                    skip_discovery: s.skip_discovery,
                })
                .await
                .map_err(|e| ctx.err(e))?
                .into_inner();
            Ok(one_out(&p, json))
        }
        IdpsCmd::Delete { idp } => {
            api.delete_identity_provider(pb::DeleteIdentityProviderRequest { idp: idp.clone() })
                .await
                .map_err(|e| ctx.err(e))?;
            Ok(deleted_out("identity provider", "idp", &idp, json))
        }
    }
}

pub async fn sessions(ctx: &Ctx, cmd: SessionsCmd, json: bool) -> Result<Out, CliError> {
    let api = ctx.auth();
    match cmd {
        SessionsCmd::List { user, ended, page } => {
            let user = user.unwrap_or_default();
            let paged = fetch_pages(&page, |p| {
                let mut c = api.clone();
                let req = pb::ListSessionsRequest { page: Some(p), user: user.clone(), include_ended: ended };
                async move {
                    let r = c.list_sessions(req).await?.into_inner();
                    Ok((r.sessions, r.next_page_token))
                }
            })
            .await
            .map_err(|e| ctx.err(e))?;
            Ok(list_out(&paged, json))
        }
        SessionsCmd::Revoke { id } => {
            let s =
                api.clone().revoke_session(pb::RevokeSessionRequest { id }).await.map_err(|e| ctx.err(e))?.into_inner();
            if json {
                return Ok(output::to_json(&s.record()).into());
            }
            Ok(format!(
                "Ended session {} of {}.\n",
                s.id,
                if s.user_email.is_empty() { &s.user_id } else { &s.user_email }
            )
            .into())
        }
    }
}
