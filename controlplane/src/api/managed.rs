//! ManagedSettingsService: the Claude Code managed settings that signed-in
//! sessions fetch from `GET /managed/settings` (see `identity::managed`).

use ccag_proto::admin::v1::managed_settings_service_server::ManagedSettingsService;
use ccag_proto::admin::v1::{self as pb, *};
use chrono::Utc;
use sea_orm::{ActiveModelTrait, EntityTrait, QueryOrder};

use super::{ok, ts, ApiError, ApiResult, Change, Shared};
use crate::identity::managed::{self, MAX_BYTES};
use crate::store::entities::{managed_settings as rows, teams};
use crate::store::AuditAction;

pub struct ManagedApi(pub Shared);

async fn scope<C: sea_orm::ConnectionTrait>(c: &C, team: &str) -> Result<(String, String), ApiError> {
    if team.trim().is_empty() {
        return Ok((String::new(), String::new()));
    }
    let t = super::teams::find(c, team).await?;
    Ok((t.id, t.name))
}

fn proto(r: rows::Model, team_name: String) -> pb::ManagedSettings {
    pb::ManagedSettings { team_id: r.scope, team_name, settings_json: r.settings, updated_at: ts(r.updated_at) }
}

#[tonic::async_trait]
impl ManagedSettingsService for ManagedApi {
    async fn set_managed_settings(
        &self,
        req: tonic::Request<SetManagedSettingsRequest>,
    ) -> ApiResult<pb::ManagedSettings> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let r = req.into_inner();
        if r.settings_json.len() > MAX_BYTES {
            return Err(ApiError::InvalidArgument(format!("settings_json: at most {MAX_BYTES} bytes")).into());
        }
        let value: serde_json::Value = serde_json::from_str(&r.settings_json)
            .map_err(|e| ApiError::InvalidArgument(format!("settings_json: not JSON: {e}")))?;
        if !value.is_object() {
            return Err(ApiError::InvalidArgument("settings_json: a JSON object of Claude Code settings".into()).into());
        }
        let txn = Change::begin(&self.0, &who.user_id).await?;
        let (id, name) = scope(txn.db(), &r.team).await?;
        let before = rows::Entity::find_by_id(id.clone()).one(txn.db()).await.map_err(ApiError::from)?;
        let row = rows::Model { scope: id.clone(), settings: value.to_string(), updated_at: Utc::now() };
        let am = rows::ActiveModel::from(row.clone()).reset_all();
        let after = if before.is_some() { am.update(txn.db()).await } else { am.insert(txn.db()).await }
            .map_err(ApiError::from)?;
        txn.audit(AuditAction::ManagedSettingsSet, "managed_settings", &id, before.as_ref(), Some(&after)).await?;
        txn.commit().await?;
        ok(proto(after, name))
    }

    async fn list_managed_settings(
        &self,
        req: tonic::Request<ListManagedSettingsRequest>,
    ) -> ApiResult<ListManagedSettingsResponse> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let all =
            rows::Entity::find().order_by_asc(rows::Column::Scope).all(&self.0.db).await.map_err(ApiError::from)?;
        let names: std::collections::HashMap<String, String> = teams::Entity::find()
            .all(&self.0.db)
            .await
            .map_err(ApiError::from)?
            .into_iter()
            .map(|t| (t.id, t.name))
            .collect();
        ok(ListManagedSettingsResponse {
            managed_settings: all
                .into_iter()
                .map(|r| {
                    let n = names.get(&r.scope).cloned().unwrap_or_default();
                    proto(r, n)
                })
                .collect(),
        })
    }

    async fn delete_managed_settings(
        &self,
        req: tonic::Request<DeleteManagedSettingsRequest>,
    ) -> ApiResult<DeleteResponse> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let txn = Change::begin(&self.0, &who.user_id).await?;
        let (id, _) = scope(txn.db(), &req.get_ref().team).await?;
        let before = rows::Entity::find_by_id(id.clone())
            .one(txn.db())
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("no managed settings there".into()))?;
        rows::Entity::delete_by_id(id.clone()).exec(txn.db()).await.map_err(ApiError::from)?;
        txn.audit(AuditAction::ManagedSettingsDelete, "managed_settings", &id, Some(&before), None).await?;
        txn.commit().await?;
        ok(DeleteResponse {})
    }

    async fn get_effective_managed_settings(
        &self,
        req: tonic::Request<GetEffectiveManagedSettingsRequest>,
    ) -> ApiResult<pb::ManagedSettings> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let user = super::users::find(&self.0.db, &req.get_ref().user).await?;
        let merged = managed::for_user(&self.0.db, &user.id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("no managed settings apply to this user".into()))?;
        ok(pb::ManagedSettings {
            team_id: String::new(),
            team_name: String::new(),
            settings_json: merged.to_string(),
            updated_at: String::new(),
        })
    }
}
