//! ModelService: the catalogue served at /v1/models and explicit Bedrock
//! mappings that win over the data plane's built-in resolution.

use ccag_proto::admin::v1::model_service_server::ModelService;
use ccag_proto::admin::v1::*;
use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use super::{ok, optional, require, ts, ApiError, ApiResult, Change, Paging, Shared};
use crate::fleet::Touched;
use crate::store::entities::{endpoints, models, settings};
use crate::store::ids;
use crate::store::AuditAction;

pub struct ModelsApi(pub Shared);

fn to_proto(m: models::Model) -> Model {
    Model {
        id: m.id,
        anthropic_id: m.anthropic_id,
        bedrock_id: m.bedrock_id,
        display_name: m.display_name,
        listed: m.listed,
        created_at: ts(m.created_at),
        updated_at: ts(m.updated_at),
    }
}

fn model_name(field: &str, v: &str) -> Result<String, ApiError> {
    let s = require(field, v, 2048)?;
    if s.contains(char::is_whitespace) {
        return Err(ApiError::InvalidArgument(format!("{field}: must not contain spaces")));
    }
    Ok(s)
}

async fn find<C: ConnectionTrait>(c: &C, id: &str) -> Result<models::Model, ApiError> {
    let id = super::lookup("id", "the model's id or anthropic_id", id)?;
    models::Entity::find()
        .filter(Condition::any().add(models::Column::Id.eq(id)).add(models::Column::AnthropicId.eq(id)))
        .one(c)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("model {id:?} not found")))
}

/// Reads what the data planes are sent and resolves it as they do.
async fn catalogue<C: ConnectionTrait>(c: &C) -> Result<ListCatalogueResponse, ApiError> {
    let mappings = models::Entity::find().all(c).await?;
    let endpoints = endpoints::Entity::find().all(c).await?;
    let stored = settings::Entity::find().all(c).await?.into_iter().map(|s| (s.key, s.value)).collect();
    let geo = crate::gateway_settings::resource(&stored).geo;
    let prices = crate::pricing::load(c).await?;
    Ok(super::catalogue::build(&mappings, &endpoints, &geo, &prices))
}

#[tonic::async_trait]
impl ModelService for ModelsApi {
    async fn create_model(&self, req: tonic::Request<CreateModelRequest>) -> ApiResult<Model> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let r = req.into_inner();
        let now = Utc::now();
        let mut txn = Change::begin(&self.0, &who.user_id).await?;
        let row = models::ActiveModel {
            id: Set(ids::new_id("mdl")),
            anthropic_id: Set(model_name("anthropic_id", &r.anthropic_id)?),
            bedrock_id: Set(if r.bedrock_id.trim().is_empty() {
                String::new()
            } else {
                model_name("bedrock_id", &r.bedrock_id)?
            }),
            display_name: Set(optional("display_name", &r.display_name, 200)?.unwrap_or_default()),
            listed: Set(r.listed),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(txn.db())
        .await
        .map_err(ApiError::from)?;
        txn.audit(AuditAction::ModelCreate, "model", &row.id, None, Some(&row)).await?;
        txn.touch(Touched::Model(row.anthropic_id.clone()));
        txn.commit().await?;
        ok(to_proto(row))
    }

    async fn get_model(&self, req: tonic::Request<GetModelRequest>) -> ApiResult<Model> {
        self.0.caller(&req).await?.require_admin()?;
        ok(to_proto(find(&self.0.db, &req.get_ref().id).await?))
    }

    async fn list_models(&self, req: tonic::Request<ListModelsRequest>) -> ApiResult<ListModelsResponse> {
        self.0.caller(&req).await?.require_admin()?;
        let paging = Paging::from(req.get_ref().page.as_ref())?;
        let (rows, next_page_token) =
            paging.page(models::Entity::find().order_by_asc(models::Column::AnthropicId), &self.0.db).await?;
        ok(ListModelsResponse { models: rows.into_iter().map(to_proto).collect(), next_page_token })
    }

    async fn update_model(&self, req: tonic::Request<UpdateModelRequest>) -> ApiResult<Model> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let r = req.into_inner();
        let mut txn = Change::begin(&self.0, &who.user_id).await?;
        let before = find(txn.db(), &r.id).await?;
        let mut am: models::ActiveModel = before.clone().into();
        if let Some(b) = &r.bedrock_id {
            am.bedrock_id = Set(if b.trim().is_empty() { String::new() } else { model_name("bedrock_id", b)? });
        }
        if let Some(d) = &r.display_name {
            am.display_name = Set(optional("display_name", d, 200)?.unwrap_or_default());
        }
        if let Some(l) = r.listed {
            am.listed = Set(l);
        }
        am.updated_at = Set(Utc::now());
        let after = am.update(txn.db()).await.map_err(ApiError::from)?;
        txn.audit(AuditAction::ModelUpdate, "model", &after.id, Some(&before), Some(&after)).await?;
        txn.touch(Touched::Model(after.anthropic_id.clone()));
        txn.commit().await?;
        ok(to_proto(after))
    }

    async fn delete_model(&self, req: tonic::Request<DeleteModelRequest>) -> ApiResult<DeleteResponse> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let mut txn = Change::begin(&self.0, &who.user_id).await?;
        let before = find(txn.db(), &req.get_ref().id).await?;
        models::Entity::delete_by_id(before.id.clone()).exec(txn.db()).await.map_err(ApiError::from)?;
        txn.audit(AuditAction::ModelDelete, "model", &before.id, Some(&before), None).await?;
        txn.touch(Touched::Model(before.anthropic_id.clone()));
        txn.commit().await?;
        ok(DeleteResponse {})
    }

    async fn list_catalogue(&self, req: tonic::Request<ListCatalogueRequest>) -> ApiResult<ListCatalogueResponse> {
        self.0.caller(&req).await?.require_admin()?;
        ok(catalogue(&self.0.db).await?)
    }
}
