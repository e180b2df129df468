//! ScimService: the bearer tokens an identity provider's SCIM client
//! authenticates with (`crate::scim`). Stored as hashes, shown once.

use ccag_proto::admin::v1::scim_service_server::ScimService;
use ccag_proto::admin::v1::*;
use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use super::{ok, optional, ts, ts_opt, ApiError, ApiResult, Change, Shared};
use crate::store::entities::{identity_providers, scim_tokens};
use crate::store::{ids, AuditAction};

pub struct ScimApi(pub Shared);

/// What every SCIM token starts with, so that a leaked one is recognised.
pub const TOKEN_PREFIX: &str = "scim-ccag-";

fn to_proto(t: scim_tokens::Model, idp: &str) -> ScimToken {
    ScimToken {
        id: t.id,
        idp_id: t.idp_id,
        idp: idp.to_owned(),
        name: t.name,
        prefix: t.prefix,
        created_by: t.created_by,
        created_at: ts(t.created_at),
        last_used_at: ts_opt(t.last_used_at),
        revoked: t.revoked,
    }
}

#[tonic::async_trait]
impl ScimService for ScimApi {
    async fn create_scim_token(
        &self,
        req: tonic::Request<CreateScimTokenRequest>,
    ) -> ApiResult<CreateScimTokenResponse> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let r = req.into_inner();
        let txn = Change::begin(&self.0, &who.user_id).await?;
        let idp = super::idps::find(txn.db(), &r.idp).await.map_err(|e| match e {
            ApiError::InvalidArgument(_) => ApiError::InvalidArgument("idp: give the identity provider's name".into()),
            other => other,
        })?;
        let name = optional("name", &r.name, 100)?.unwrap_or_else(|| "scim".to_owned());
        let token = format!("{TOKEN_PREFIX}{}", ids::random_base62(40));
        let row = scim_tokens::ActiveModel {
            id: Set(ids::new_id("sct")),
            idp_id: Set(idp.id.clone()),
            name: Set(name),
            prefix: Set(ids::visible_prefix(&token)),
            token_hash: Set(ids::sha256_hex(&token)),
            created_by: Set(who.user_id.clone()),
            created_at: Set(Utc::now()),
            last_used_at: Set(None),
            revoked: Set(false),
        }
        .insert(txn.db())
        .await
        .map_err(ApiError::from)?;
        txn.audit(AuditAction::ScimTokenCreate, "scim_token", &row.id, None, Some(&row)).await?;
        txn.commit().await?;
        ok(CreateScimTokenResponse { scim_token: Some(to_proto(row, &idp.name)), token })
    }

    async fn list_scim_tokens(&self, req: tonic::Request<ListScimTokensRequest>) -> ApiResult<ListScimTokensResponse> {
        self.0.caller(&req).await?.require_admin()?;
        let r = req.into_inner();
        let mut q = scim_tokens::Entity::find();
        if !r.idp.trim().is_empty() {
            let idp = super::idps::find(&self.0.db, &r.idp).await?;
            q = q.filter(scim_tokens::Column::IdpId.eq(idp.id));
        }
        let rows = q
            .order_by_asc(scim_tokens::Column::CreatedAt)
            .order_by_asc(scim_tokens::Column::Id)
            .all(&self.0.db)
            .await
            .map_err(ApiError::from)?;
        let names: std::collections::HashMap<String, String> = identity_providers::Entity::find()
            .all(&self.0.db)
            .await
            .map_err(ApiError::from)?
            .into_iter()
            .map(|i| (i.id, i.name))
            .collect();
        let scim_tokens = rows
            .into_iter()
            .map(|t| {
                let idp = names.get(&t.idp_id).cloned().unwrap_or_default();
                to_proto(t, &idp)
            })
            .collect();
        ok(ListScimTokensResponse { scim_tokens })
    }

    async fn revoke_scim_token(&self, req: tonic::Request<RevokeScimTokenRequest>) -> ApiResult<ScimToken> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let id = super::lookup("id", "the SCIM token's id", &req.get_ref().id)?.to_owned();
        let txn = Change::begin(&self.0, &who.user_id).await?;
        let before = scim_tokens::Entity::find_by_id(id.clone())
            .one(txn.db())
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("SCIM token {id:?} not found")))?;
        let mut am: scim_tokens::ActiveModel = before.clone().into();
        am.revoked = Set(true);
        let after = am.update(txn.db()).await.map_err(ApiError::from)?;
        txn.audit(AuditAction::ScimTokenRevoke, "scim_token", &after.id, Some(&before), Some(&after)).await?;
        let idp = identity_providers::Entity::find_by_id(after.idp_id.clone())
            .one(txn.db())
            .await
            .map_err(ApiError::from)?
            .map(|i| i.name)
            .unwrap_or_default();
        txn.commit().await?;
        ok(to_proto(after, &idp))
    }
}
