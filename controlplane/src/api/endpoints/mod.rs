//! EndpointService: the Bedrock endpoints requests may run on (a region of
//! an account, reached with the data planes' default credentials, a role,
//! or a Bedrock API key held sealed), with each one's recent health.

mod fields;
mod stats;

pub(crate) use fields::{routing, routing_pb};

use ccag_proto::admin::v1::endpoint_service_server::EndpointService;
use ccag_proto::admin::v1::*;
use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    Set,
};
use serde::Serialize;

use super::{ok, require, ts, ApiError, ApiResult, Change, Paging, Shared};
use crate::fleet::routing::api_key_aad;
use crate::fleet::Touched;
use crate::store::entities::{endpoint_stats, endpoints, team_endpoints, teams};
use crate::store::{ids, AuditAction, CredentialKind, Scope};

pub struct EndpointsApi(pub Shared);

fn to_proto(e: endpoints::Model) -> Endpoint {
    Endpoint {
        weight: e.weight.max(1) as u32,
        credentials: fields::credentials_pb(CredentialKind::parse(&e.credentials)) as i32,
        has_api_key: e.api_key_sealed.is_some(),
        scope: fields::scope_pb(Scope::parse(&e.scope)) as i32,
        profile_arns: fields::stored_arns(&e.profile_arns).into_iter().collect(),
        models: fields::stored_models(&e.models),
        stats: None,
        id: e.id,
        name: e.name,
        region: e.region,
        role_arn: e.role_arn,
        enabled: e.enabled,
        priority: e.priority,
        created_at: ts(e.created_at),
        updated_at: ts(e.updated_at),
        endpoint_url: e.endpoint_url,
        external_id: e.external_id,
        per_user_sessions: e.per_user_sessions,
        scope_prefix: e.scope_prefix,
    }
}

/// Finds an endpoint by id or name.
pub async fn find<C: ConnectionTrait>(c: &C, id: &str) -> Result<endpoints::Model, ApiError> {
    let id = super::lookup("id", "the endpoint's id or name", id)?;
    endpoints::Entity::find()
        .filter(Condition::any().add(endpoints::Column::Id.eq(id)).add(endpoints::Column::Name.eq(id)))
        .one(c)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("endpoint {id:?} not found")))
}

/// What the audit log records of a deletion: the endpoint, and the teams
/// whose lists it left.
#[derive(Serialize)]
struct Deleted<'a> {
    #[serde(flatten)]
    endpoint: &'a endpoints::Model,
    removed_from_teams: Vec<String>,
}

/// A key to store: kept, removed, or a new one.
enum Key {
    Keep,
    Clear,
    Set(String),
}

impl EndpointsApi {
    /// An endpoint URL's addresses, unless it is an AWS service host (VPC
    /// endpoints with private DNS resolve to private addresses). A name
    /// that does not resolve from here is accepted: the data planes may
    /// see another DNS.
    async fn check_address(&self, t: Option<&ccag_outbound::Target>) -> Result<(), ApiError> {
        let Some(t) = t else { return Ok(()) };
        if ccag_outbound::is_aws_host(&t.host) {
            return Ok(());
        }
        match self.0.sender.policy.resolve(&t.host, t.port).await {
            Ok(_) => Ok(()),
            Err(ccag_outbound::OutboundError::Unresolved(h)) => {
                tracing::warn!(host = %h, "endpoint URL host does not resolve from the control plane");
                Ok(())
            }
            Err(e) => Err(ApiError::InvalidArgument(format!("endpoint_url: {e}"))),
        }
    }

    fn seal(&self, id: &str, key: &str) -> Result<String, ApiError> {
        self.0.sender.keyring.seal(key, &api_key_aad(id)).map_err(|e| ApiError::FailedPrecondition(e.to_string()))
    }

    async fn with_stats(&self, rows: Vec<endpoints::Model>, window: u32) -> Result<Vec<Endpoint>, ApiError> {
        let ids: Vec<String> = rows.iter().map(|e| e.id.clone()).collect();
        let mut stats = stats::load(&self.0.db, &ids, window, Utc::now()).await?;
        Ok(rows
            .into_iter()
            .map(|e| {
                let s = stats.remove(&e.id);
                Endpoint { stats: s, ..to_proto(e) }
            })
            .collect())
    }
}

#[tonic::async_trait]
impl EndpointService for EndpointsApi {
    async fn create_endpoint(&self, req: tonic::Request<CreateEndpointRequest>) -> ApiResult<Endpoint> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let r = req.into_inner();
        let name = require("name", &r.name, 100)?;
        let region = fields::region(&r.region)?;
        let role_arn = fields::role_arn(&r.role_arn)?;
        let weight = fields::weight(if r.weight == 0 { 1 } else { r.weight })?;
        let (endpoint_url, target) = fields::endpoint_url(&r.endpoint_url)?;
        let external_id = fields::external_id(&r.external_id)?;
        let key = fields::api_key(&r.api_key)?;
        let kind = fields::credentials(&role_arn, key.is_some(), key.is_some(), &external_id, r.per_user_sessions)?;
        let (scope, scope_prefix) = fields::scope(fields::scope_of(r.scope)?, &r.scope_prefix)?;
        let profile_arns = fields::profile_arns(&r.profile_arns, &region)?;
        let models = fields::models(&r.models)?;
        self.check_address(target.as_ref()).await?;
        let id = ids::new_id("ep");
        let api_key_sealed = key.map(|k| self.seal(&id, &k)).transpose()?;
        let now = Utc::now();
        let mut txn = Change::begin(&self.0, &who.user_id).await?;
        let row = endpoints::ActiveModel {
            id: Set(id),
            name: Set(name),
            region: Set(region),
            role_arn: Set(role_arn),
            enabled: Set(r.enabled),
            priority: Set(r.priority),
            created_at: Set(now),
            updated_at: Set(now),
            weight: Set(weight),
            endpoint_url: Set(endpoint_url),
            credentials: Set(kind.as_str().into()),
            external_id: Set(external_id),
            api_key_sealed: Set(api_key_sealed),
            per_user_sessions: Set(r.per_user_sessions),
            scope: Set(scope.as_str().into()),
            scope_prefix: Set(scope_prefix),
            profile_arns: Set(fields::to_json(&profile_arns)),
            models: Set(fields::to_json(&models)),
        }
        .insert(txn.db())
        .await
        .map_err(|e| ApiError::exists(e, "an endpoint with that name exists"))?;
        txn.audit(AuditAction::EndpointCreate, "endpoint", &row.id, None, Some(&row)).await?;
        txn.touch(Touched::Endpoint(row.id.clone()));
        txn.commit().await?;
        ok(to_proto(row))
    }

    async fn get_endpoint(&self, req: tonic::Request<GetEndpointRequest>) -> ApiResult<Endpoint> {
        self.0.caller(&req).await?.require_admin()?;
        let row = find(&self.0.db, &req.get_ref().id).await?;
        ok(self.with_stats(vec![row], stats::DEFAULT_WINDOW_SECS).await?.remove(0))
    }

    async fn list_endpoints(&self, req: tonic::Request<ListEndpointsRequest>) -> ApiResult<ListEndpointsResponse> {
        self.0.caller(&req).await?.require_admin()?;
        let paging = Paging::from(req.get_ref().page.as_ref())?;
        let window = stats::window(req.get_ref().stats_window_secs)?;
        let (rows, next_page_token) = paging
            .page(
                endpoints::Entity::find()
                    .order_by_asc(endpoints::Column::Priority)
                    .order_by_asc(endpoints::Column::Name),
                &self.0.db,
            )
            .await?;
        ok(ListEndpointsResponse { endpoints: self.with_stats(rows, window).await?, next_page_token })
    }

    async fn update_endpoint(&self, req: tonic::Request<UpdateEndpointRequest>) -> ApiResult<Endpoint> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let r = req.into_inner();
        // The request's own fields first; what depends on the stored row
        // is checked in the transaction.
        super::lookup("id", "the endpoint's id or name", &r.id)?;
        let name = r.name.as_deref().map(|n| require("name", n, 100)).transpose()?;
        let region = r.region.as_deref().map(fields::region).transpose()?;
        let role_arn = r.role_arn.as_deref().map(fields::role_arn).transpose()?;
        let weight = r.weight.map(fields::weight).transpose()?;
        let url = r.endpoint_url.as_deref().map(fields::endpoint_url).transpose()?;
        let external_id = r.external_id.as_deref().map(fields::external_id).transpose()?;
        let key = match r.api_key.as_deref().map(fields::api_key).transpose()? {
            None => Key::Keep,
            Some(None) => Key::Clear,
            Some(Some(k)) => Key::Set(k),
        };
        let scope = r.scope.map(fields::scope_of).transpose()?;
        let models = if r.set_models { Some(fields::models(&r.models)?) } else { None };
        if let Some((_, t)) = &url {
            self.check_address(t.as_ref()).await?;
        }

        let mut txn = Change::begin(&self.0, &who.user_id).await?;
        let before = find(txn.db(), &r.id).await?;
        let region = region.unwrap_or_else(|| before.region.clone());
        let role_arn = role_arn.unwrap_or_else(|| before.role_arn.clone());
        let has_key = match &key {
            Key::Keep => before.api_key_sealed.is_some(),
            Key::Clear => false,
            Key::Set(_) => true,
        };
        // Clearing the role clears what only goes with a role, unless the
        // request sets it again (which is then refused).
        let external_id = match external_id {
            Some(x) => x,
            None if role_arn.is_empty() => String::new(),
            None => before.external_id.clone(),
        };
        let per_user_sessions = r.per_user_sessions.unwrap_or(before.per_user_sessions && !role_arn.is_empty());
        let kind =
            fields::credentials(&role_arn, has_key, matches!(key, Key::Set(_)), &external_id, per_user_sessions)?;
        let (scope, scope_prefix) = match (scope, r.scope_prefix.as_deref()) {
            (None, None) => (Scope::parse(&before.scope), before.scope_prefix.clone()),
            (Some(s), p) => fields::scope(s, p.unwrap_or(""))?,
            (None, Some(p)) => fields::scope(Scope::parse(&before.scope), p)?,
        };
        let profile_arns = if r.set_profile_arns {
            fields::profile_arns(&r.profile_arns, &region)?
        } else {
            // A new region must still hold the profiles.
            let stored = fields::stored_arns(&before.profile_arns).into_iter().collect();
            fields::profile_arns(&stored, &region)?
        };
        let sealed = match &key {
            Key::Keep => before.api_key_sealed.clone(),
            Key::Clear => None,
            Key::Set(k) => Some(self.seal(&before.id, k)?),
        };
        let mut am: endpoints::ActiveModel = before.clone().into();
        if let Some(n) = name {
            am.name = Set(n);
        }
        am.region = Set(region);
        am.role_arn = Set(role_arn);
        if let Some(v) = r.enabled {
            am.enabled = Set(v);
        }
        if let Some(v) = r.priority {
            am.priority = Set(v);
        }
        if let Some(w) = weight {
            am.weight = Set(w);
        }
        if let Some((u, _)) = url {
            am.endpoint_url = Set(u);
        }
        am.credentials = Set(kind.as_str().into());
        am.external_id = Set(external_id);
        am.api_key_sealed = Set(sealed);
        am.per_user_sessions = Set(per_user_sessions);
        am.scope = Set(scope.as_str().into());
        am.scope_prefix = Set(scope_prefix);
        am.profile_arns = Set(fields::to_json(&profile_arns));
        if let Some(m) = models {
            am.models = Set(fields::to_json(&m));
        }
        am.updated_at = Set(Utc::now());
        let after = am.update(txn.db()).await.map_err(|e| ApiError::exists(e, "an endpoint with that name exists"))?;
        txn.audit(AuditAction::EndpointUpdate, "endpoint", &after.id, Some(&before), Some(&after)).await?;
        txn.touch(Touched::Endpoint(after.id.clone()));
        txn.commit().await?;
        ok(to_proto(after))
    }

    async fn delete_endpoint(&self, req: tonic::Request<DeleteEndpointRequest>) -> ApiResult<DeleteResponse> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let mut txn = Change::begin(&self.0, &who.user_id).await?;
        let before = find(txn.db(), &req.get_ref().id).await?;
        let lists = team_endpoints::Entity::find()
            .filter(team_endpoints::Column::EndpointId.eq(before.id.clone()))
            .order_by_asc(team_endpoints::Column::TeamId)
            .all(txn.db())
            .await
            .map_err(ApiError::from)?;
        // A team whose list would be left empty would widen to every
        // endpoint (an empty list means all): it must choose first.
        for l in &lists {
            let n = team_endpoints::Entity::find()
                .filter(team_endpoints::Column::TeamId.eq(l.team_id.clone()))
                .count(txn.db())
                .await
                .map_err(ApiError::from)?;
            if n <= 1 {
                let team = teams::Entity::find_by_id(l.team_id.clone()).one(txn.db()).await.map_err(ApiError::from)?;
                let team = team.map(|t| t.name).unwrap_or_else(|| l.team_id.clone());
                return Err(ApiError::FailedPrecondition(format!(
                    "endpoint {:?} is the only endpoint team {team:?} may use; give the team other endpoints first \
                     (ccag teams update {team} --endpoints …)",
                    before.name
                ))
                .into());
            }
        }
        team_endpoints::Entity::delete_many()
            .filter(team_endpoints::Column::EndpointId.eq(before.id.clone()))
            .exec(txn.db())
            .await
            .map_err(ApiError::from)?;
        endpoint_stats::Entity::delete_many()
            .filter(endpoint_stats::Column::EndpointId.eq(before.id.clone()))
            .exec(txn.db())
            .await
            .map_err(ApiError::from)?;
        endpoints::Entity::delete_by_id(before.id.clone()).exec(txn.db()).await.map_err(ApiError::from)?;
        let removed_from_teams: Vec<String> = lists.into_iter().map(|l| l.team_id).collect();
        for t in &removed_from_teams {
            txn.touch(Touched::TeamRouting(t.clone()));
        }
        let audited = Deleted { endpoint: &before, removed_from_teams };
        txn.audit(AuditAction::EndpointDelete, "endpoint", &before.id, Some(&audited), None).await?;
        txn.touch(Touched::Endpoint(before.id.clone()));
        txn.commit().await?;
        ok(DeleteResponse {})
    }
}
