//! `ccag teams`.

use ccag_proto::admin::v1 as pb;

use super::{deleted_out, fetch_pages, list_out, one_out, require_change, Out};
use crate::args::{RoutingArg, TeamsCmd};
use crate::client::Ctx;
use crate::error::CliError;

pub async fn run(ctx: &Ctx, cmd: TeamsCmd, json: bool) -> Result<Out, CliError> {
    match cmd {
        TeamsCmd::Create { name, description, member_rpm, member_tpm, rpm, tpm } => {
            let t = ctx
                .teams()
                .create_team(pb::CreateTeamRequest {
                    name,
                    description: description.unwrap_or_default(),
                    member_rpm: member_rpm.unwrap_or(0),
                    member_tpm: member_tpm.unwrap_or(0),
                    rpm: rpm.unwrap_or(0),
                    tpm: tpm.unwrap_or(0),
                })
                .await
                .map_err(|s| ctx.err(s))?
                .into_inner();
            Ok(one_out(&t, json))
        }
        TeamsCmd::List { query, page } => {
            let client = ctx.teams();
            let query = query.unwrap_or_default();
            let paged = fetch_pages(&page, |p| {
                let mut c = client.clone();
                let req = pb::ListTeamsRequest { page: Some(p), query: query.clone() };
                async move {
                    let r = c.list_teams(req).await?.into_inner();
                    Ok((r.teams, r.next_page_token))
                }
            })
            .await
            .map_err(|s| ctx.err(s))?;
            Ok(list_out(&paged, json))
        }
        TeamsCmd::Get { id } => {
            let t = get(ctx, id).await?;
            Ok(one_out(&t, json))
        }
        TeamsCmd::Update { id, name, description, member_rpm, member_tpm, rpm, tpm, routing, endpoints } => {
            require_change(
                name.is_some()
                    || description.is_some()
                    || member_rpm.is_some()
                    || member_tpm.is_some()
                    || rpm.is_some()
                    || tpm.is_some()
                    || routing.is_some()
                    || endpoints.is_some(),
            )?;
            let routing = routing.map(|r| strategy(r) as i32);
            let set_endpoints = endpoints.is_some();
            let endpoints = endpoints.as_deref().map(super::endpoints::comma_list).unwrap_or_default();
            let t = ctx
                .teams()
                .update_team(pb::UpdateTeamRequest {
                    id,
                    name,
                    description,
                    member_rpm,
                    member_tpm,
                    rpm,
                    tpm,
                    routing,
                    set_endpoints,
                    endpoints,
                })
                .await
                .map_err(|s| ctx.err(s))?
                .into_inner();
            Ok(one_out(&t, json))
        }
        TeamsCmd::Delete { id } => {
            ctx.teams().delete_team(pb::DeleteTeamRequest { id: id.clone() }).await.map_err(|s| ctx.err(s))?;
            Ok(deleted_out("team", "id", &id, json))
        }
        TeamsCmd::AddMember { team, user } => {
            let req = member_request(ctx, team, user).await?;
            let t = ctx.teams().add_member(req).await.map_err(|s| ctx.err(s))?.into_inner();
            Ok(one_out(&t, json))
        }
        TeamsCmd::RemoveMember { team, user } => {
            let req = member_request(ctx, team, user).await?;
            let t = ctx.teams().remove_member(req).await.map_err(|s| ctx.err(s))?.into_inner();
            Ok(one_out(&t, json))
        }
    }
}

async fn get(ctx: &Ctx, id: String) -> Result<pb::Team, CliError> {
    Ok(ctx.teams().get_team(pb::GetTeamRequest { id }).await.map_err(|s| ctx.err(s))?.into_inner())
}

/// Team names and user emails become ids.
async fn member_request(ctx: &Ctx, team: String, user: String) -> Result<pb::TeamMemberRequest, CliError> {
    let team_id = get(ctx, team).await?.id;
    let user_id = ctx.user_id(&user).await?;
    Ok(pb::TeamMemberRequest { team_id, user_id })
}

fn strategy(r: RoutingArg) -> pb::RoutingStrategy {
    match r {
        RoutingArg::Sticky => pb::RoutingStrategy::Sticky,
        RoutingArg::Fallback => pb::RoutingStrategy::Fallback,
        RoutingArg::RoundRobin => pb::RoutingStrategy::RoundRobin,
        RoutingArg::Adaptive => pb::RoutingStrategy::Adaptive,
        RoutingArg::Default => pb::RoutingStrategy::Unspecified,
    }
}
