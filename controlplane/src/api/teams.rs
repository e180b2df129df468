//! TeamService. Teams are an admin concern; members see theirs through
//! their user record. A team may choose its routing strategy and the
//! endpoints its requests may use, in order (`team_endpoints`).

use ccag_proto::admin::v1::team_service_server::TeamService;
use ccag_proto::admin::v1::*;
use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde::Serialize;

use super::{limit, ok, optional, require, ts, ApiError, ApiResult, Change, Paging, Shared};
use crate::fleet::routing::endpoints_of;
use crate::fleet::Touched;
use crate::store::entities::{api_keys, endpoints, team_endpoints, team_members, teams};
use crate::store::{ids, AuditAction, Routing};

/// Endpoints a team may list.
const MAX_TEAM_ENDPOINTS: usize = 100;

/// What the audit log records of a team: its row and its endpoints.
#[derive(Serialize)]
struct Audited<'a> {
    #[serde(flatten)]
    team: &'a teams::Model,
    endpoint_ids: &'a [String],
}

pub struct TeamsApi(pub Shared);

async fn to_proto<C: ConnectionTrait>(c: &C, t: teams::Model) -> Result<Team, ApiError> {
    Ok(to_protos(c, vec![t]).await?.pop().expect("one team in, one out"))
}

/// Teams with their members' ids and emails and their endpoints' ids and
/// names, loaded for the whole page at once.
async fn to_protos<C: ConnectionTrait>(c: &C, rows: Vec<teams::Model>) -> Result<Vec<Team>, ApiError> {
    let mut members = super::members_by(c, team_members::Column::TeamId, rows.iter().map(|t| t.id.clone()), |m| {
        (m.team_id, m.user_id)
    })
    .await?;
    let emails = crate::store::names::user_emails(c, members.values().flatten().cloned()).await?;
    let mut routes = endpoints_of(c, Some(rows.iter().map(|t| t.id.clone()).collect())).await?;
    let ids: Vec<String> = routes.values().flatten().cloned().collect();
    let names: std::collections::HashMap<String, String> = if ids.is_empty() {
        Default::default()
    } else {
        endpoints::Entity::find()
            .filter(endpoints::Column::Id.is_in(ids))
            .all(c)
            .await?
            .into_iter()
            .map(|e| (e.id, e.name))
            .collect()
    };
    Ok(rows
        .into_iter()
        .map(|t| {
            let member_ids = members.remove(&t.id).unwrap_or_default();
            let member_emails = member_ids.iter().map(|id| emails.get(id).cloned().unwrap_or_default()).collect();
            let endpoint_ids = routes.remove(&t.id).unwrap_or_default();
            let endpoint_names = endpoint_ids.iter().map(|id| names.get(id).cloned().unwrap_or_default()).collect();
            Team { member_emails, endpoint_names, ..proto(t, member_ids, endpoint_ids) }
        })
        .collect())
}

fn proto(t: teams::Model, member_ids: Vec<String>, endpoint_ids: Vec<String>) -> Team {
    Team {
        member_emails: Vec::new(),
        routing: super::endpoints::routing_pb(Routing::parse(&t.routing_strategy)) as i32,
        endpoint_ids,
        endpoint_names: Vec::new(),
        id: t.id,
        name: t.name,
        description: t.description,
        member_rpm: t.member_rpm as u32,
        member_tpm: t.member_tpm as u32,
        member_ids,
        created_at: ts(t.created_at),
        updated_at: ts(t.updated_at),
        rpm: t.rpm as u32,
        tpm: t.tpm as u32,
    }
}

/// The endpoints a request names (ids or names), in its order, each once.
async fn resolve_endpoints<C: ConnectionTrait>(c: &C, given: &[String]) -> Result<Vec<String>, ApiError> {
    if given.len() > MAX_TEAM_ENDPOINTS {
        return Err(ApiError::InvalidArgument(format!("endpoints: at most {MAX_TEAM_ENDPOINTS}")));
    }
    let mut out: Vec<String> = Vec::with_capacity(given.len());
    for g in given {
        if g.trim().is_empty() {
            return Err(ApiError::InvalidArgument("endpoints: an empty id or name".into()));
        }
        let e = super::endpoints::find(c, g).await?;
        if out.contains(&e.id) {
            return Err(ApiError::InvalidArgument(format!("endpoints: {:?} is listed twice", e.name)));
        }
        out.push(e.id);
    }
    Ok(out)
}

/// Finds a team by id or name.
pub async fn find<C: ConnectionTrait>(c: &C, id_or_name: &str) -> Result<teams::Model, ApiError> {
    let id = super::lookup("team", "the team's id or name", id_or_name)?;
    teams::Entity::find()
        .filter(Condition::any().add(teams::Column::Id.eq(id)).add(teams::Column::Name.eq(id)))
        .one(c)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("team {id:?} not found")))
}

#[tonic::async_trait]
impl TeamService for TeamsApi {
    async fn create_team(&self, req: tonic::Request<CreateTeamRequest>) -> ApiResult<Team> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let r = req.into_inner();
        let name = require("name", &r.name, 100)?;
        let now = Utc::now();
        let mut txn = Change::begin(&self.0, &who.user_id).await?;
        let row = teams::ActiveModel {
            id: Set(ids::new_id("team")),
            name: Set(name),
            description: Set(optional("description", &r.description, 1000)?.unwrap_or_default()),
            member_rpm: Set(limit("member_rpm", r.member_rpm)?),
            member_tpm: Set(limit("member_tpm", r.member_tpm)?),
            created_at: Set(now),
            updated_at: Set(now),
            rpm: Set(limit("rpm", r.rpm)?),
            tpm: Set(limit("tpm", r.tpm)?),
            routing_strategy: Set(String::new()),
        }
        .insert(txn.db())
        .await
        .map_err(|e| ApiError::exists(e, "a team with that name exists"))?;
        let audited = Audited { team: &row, endpoint_ids: &[] };
        txn.audit(AuditAction::TeamCreate, "team", &row.id, None, Some(&audited)).await?;
        txn.touch(Touched::Team(row.id.clone()));
        txn.commit().await?;
        ok(to_proto(&self.0.db, row).await?)
    }

    async fn get_team(&self, req: tonic::Request<GetTeamRequest>) -> ApiResult<Team> {
        self.0.caller(&req).await?.require_admin()?;
        let t = find(&self.0.db, &req.get_ref().id).await?;
        ok(to_proto(&self.0.db, t).await?)
    }

    async fn list_teams(&self, req: tonic::Request<ListTeamsRequest>) -> ApiResult<ListTeamsResponse> {
        self.0.caller(&req).await?.require_admin()?;
        let r = req.into_inner();
        let paging = Paging::from(r.page.as_ref())?;
        let mut q = teams::Entity::find();
        if let Some(needle) = optional("query", &r.query, 200)? {
            q = q.filter(teams::Column::Name.contains(needle));
        }
        let (rows, next_page_token) = paging.page(q.order_by_asc(teams::Column::Name), &self.0.db).await?;
        ok(ListTeamsResponse { teams: to_protos(&self.0.db, rows).await?, next_page_token })
    }

    async fn update_team(&self, req: tonic::Request<UpdateTeamRequest>) -> ApiResult<Team> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let r = req.into_inner();
        let mut txn = Change::begin(&self.0, &who.user_id).await?;
        let before = find(txn.db(), &r.id).await?;
        let mut am: teams::ActiveModel = before.clone().into();
        if let Some(n) = &r.name {
            am.name = Set(require("name", n, 100)?);
        }
        if let Some(d) = &r.description {
            am.description = Set(optional("description", d, 1000)?.unwrap_or_default());
        }
        if let Some(v) = r.member_rpm {
            am.member_rpm = Set(limit("member_rpm", v)?);
        }
        if let Some(v) = r.member_tpm {
            am.member_tpm = Set(limit("member_tpm", v)?);
        }
        if let Some(v) = r.rpm {
            am.rpm = Set(limit("rpm", v)?);
        }
        if let Some(v) = r.tpm {
            am.tpm = Set(limit("tpm", v)?);
        }
        if let Some(v) = r.routing {
            am.routing_strategy = Set(super::endpoints::routing(v)?.as_str().to_owned());
        }
        let before_endpoints = endpoints_of(txn.db(), Some(vec![before.id.clone()]))
            .await
            .map_err(ApiError::from)?
            .remove(&before.id)
            .unwrap_or_default();
        let after_endpoints = if r.set_endpoints {
            let ids = resolve_endpoints(txn.db(), &r.endpoints).await?;
            team_endpoints::Entity::delete_many()
                .filter(team_endpoints::Column::TeamId.eq(before.id.clone()))
                .exec(txn.db())
                .await
                .map_err(ApiError::from)?;
            if !ids.is_empty() {
                let rows = ids.iter().enumerate().map(|(i, id)| team_endpoints::ActiveModel {
                    team_id: Set(before.id.clone()),
                    endpoint_id: Set(id.clone()),
                    position: Set(i as i32),
                });
                team_endpoints::Entity::insert_many(rows).exec(txn.db()).await.map_err(ApiError::from)?;
            }
            ids
        } else {
            before_endpoints.clone()
        };
        am.updated_at = Set(Utc::now());
        let after = am.update(txn.db()).await.map_err(|e| ApiError::exists(e, "a team with that name exists"))?;
        txn.audit(
            AuditAction::TeamUpdate,
            "team",
            &after.id,
            Some(&Audited { team: &before, endpoint_ids: &before_endpoints }),
            Some(&Audited { team: &after, endpoint_ids: &after_endpoints }),
        )
        .await?;
        txn.touch(Touched::Team(after.id.clone()));
        txn.commit().await?;
        ok(to_proto(&self.0.db, after).await?)
    }

    async fn delete_team(&self, req: tonic::Request<DeleteTeamRequest>) -> ApiResult<DeleteResponse> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let mut txn = Change::begin(&self.0, &who.user_id).await?;
        let before = find(txn.db(), &req.get_ref().id).await?;
        // Its memberships go (ON DELETE CASCADE) and its keys lose the team
        // (SET NULL): name them now, while the database still can.
        for m in team_members::Entity::find()
            .filter(team_members::Column::TeamId.eq(before.id.clone()))
            .all(txn.db())
            .await
            .map_err(ApiError::from)?
        {
            txn.touch(Touched::User(m.user_id));
        }
        for k in api_keys::Entity::find()
            .filter(api_keys::Column::TeamId.eq(before.id.clone()))
            .all(txn.db())
            .await
            .map_err(ApiError::from)?
        {
            txn.touch(Touched::Key(k.id));
        }
        // Its endpoint list goes with it (also ON DELETE CASCADE).
        let endpoint_ids = endpoints_of(txn.db(), Some(vec![before.id.clone()]))
            .await
            .map_err(ApiError::from)?
            .remove(&before.id)
            .unwrap_or_default();
        team_endpoints::Entity::delete_many()
            .filter(team_endpoints::Column::TeamId.eq(before.id.clone()))
            .exec(txn.db())
            .await
            .map_err(ApiError::from)?;
        teams::Entity::delete_by_id(before.id.clone()).exec(txn.db()).await.map_err(ApiError::from)?;
        let audited = Audited { team: &before, endpoint_ids: &endpoint_ids };
        txn.audit(AuditAction::TeamDelete, "team", &before.id, Some(&audited), None).await?;
        txn.touch(Touched::Team(before.id.clone()));
        txn.commit().await?;
        ok(DeleteResponse {})
    }

    async fn add_member(&self, req: tonic::Request<TeamMemberRequest>) -> ApiResult<Team> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let r = req.into_inner();
        let mut txn = Change::begin(&self.0, &who.user_id).await?;
        let team = find(txn.db(), &r.team_id).await?;
        let user = super::users::find(txn.db(), &r.user_id).await?;
        let row = team_members::ActiveModel {
            team_id: Set(team.id.clone()),
            user_id: Set(user.id.clone()),
            created_at: Set(Utc::now()),
        }
        .insert(txn.db())
        .await
        .map_err(|e| ApiError::exists(e, "that user is already a member"))?;
        txn.audit(AuditAction::TeamAddMember, "team", &team.id, None, Some(&row)).await?;
        txn.touch(Touched::User(user.id.clone()));
        txn.commit().await?;
        ok(to_proto(&self.0.db, team).await?)
    }

    async fn remove_member(&self, req: tonic::Request<TeamMemberRequest>) -> ApiResult<Team> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let r = req.into_inner();
        let mut txn = Change::begin(&self.0, &who.user_id).await?;
        let team = find(txn.db(), &r.team_id).await?;
        let user = super::users::find(txn.db(), &r.user_id).await?;
        let existing = team_members::Entity::find_by_id((team.id.clone(), user.id.clone()))
            .one(txn.db())
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("that user is not a member of the team".into()))?;
        team_members::Entity::delete_by_id((team.id.clone(), user.id.clone()))
            .exec(txn.db())
            .await
            .map_err(ApiError::from)?;
        txn.audit(AuditAction::TeamRemoveMember, "team", &team.id, Some(&existing), None).await?;
        txn.touch(Touched::User(user.id.clone()));
        txn.commit().await?;
        ok(to_proto(&self.0.db, team).await?)
    }
}
