//! SettingsService: the gateway settings of the typed registry
//! (`gateway_settings`), each validated by its parser before it is stored.

use ccag_proto::admin::v1::settings_service_server::SettingsService;
use ccag_proto::admin::v1::*;
use chrono::Utc;
use sea_orm::{ActiveModelTrait, EntityTrait, QueryOrder, Set};

use super::{ok, ts, ApiError, ApiResult, Change, Paging, Shared};
use crate::fleet::Touched;
use crate::store::entities::settings;
use crate::store::AuditAction;

pub struct SettingsApi(pub Shared);

const MAX_VALUE: usize = 64 * 1024;

fn key(k: &str) -> Result<String, ApiError> {
    let k = k.trim();
    let valid = !k.is_empty()
        && k.len() <= 128
        && k.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-'));
    if !valid {
        return Err(ApiError::InvalidArgument("key: 1-128 characters of a-z, 0-9, '_', '.', '-'".into()));
    }
    Ok(k.to_owned())
}

fn to_proto(s: settings::Model) -> Setting {
    Setting { key: s.key, value: s.value, updated_at: ts(s.updated_at) }
}

#[tonic::async_trait]
impl SettingsService for SettingsApi {
    async fn get_setting(&self, req: tonic::Request<GetSettingRequest>) -> ApiResult<Setting> {
        self.0.caller(&req).await?.require_admin()?;
        let k = key(&req.get_ref().key)?;
        let s = settings::Entity::find_by_id(k.clone())
            .one(&self.0.db)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("setting {k:?} not found")))?;
        ok(to_proto(s))
    }

    async fn list_settings(&self, req: tonic::Request<ListSettingsRequest>) -> ApiResult<ListSettingsResponse> {
        self.0.caller(&req).await?.require_admin()?;
        let paging = Paging::from(req.get_ref().page.as_ref())?;
        let (rows, next_page_token) =
            paging.page(settings::Entity::find().order_by_asc(settings::Column::Key), &self.0.db).await?;
        ok(ListSettingsResponse { settings: rows.into_iter().map(to_proto).collect(), next_page_token })
    }

    async fn set_setting(&self, req: tonic::Request<SetSettingRequest>) -> ApiResult<Setting> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let r = req.into_inner();
        let k = key(&r.key)?;
        if r.value.len() > MAX_VALUE {
            return Err(ApiError::InvalidArgument(format!("value: at most {MAX_VALUE} bytes")).into());
        }
        let value =
            crate::gateway_settings::validate(&k, &r.value).map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
        let mut txn = Change::begin(&self.0, &who.user_id).await?;
        let before = settings::Entity::find_by_id(k.clone()).one(txn.db()).await.map_err(ApiError::from)?;
        let am = settings::ActiveModel { key: Set(k.clone()), value: Set(value), updated_at: Set(Utc::now()) };
        let after = if before.is_some() { am.update(txn.db()).await } else { am.insert(txn.db()).await }
            .map_err(ApiError::from)?;
        txn.audit(AuditAction::SettingSet, "setting", &k, before.as_ref(), Some(&after)).await?;
        txn.touch(Touched::Settings);
        txn.commit().await?;
        ok(to_proto(after))
    }

    async fn delete_setting(&self, req: tonic::Request<DeleteSettingRequest>) -> ApiResult<DeleteResponse> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let k = key(&req.get_ref().key)?;
        let mut txn = Change::begin(&self.0, &who.user_id).await?;
        let before = settings::Entity::find_by_id(k.clone())
            .one(txn.db())
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("setting {k:?} not found")))?;
        settings::Entity::delete_by_id(k.clone()).exec(txn.db()).await.map_err(ApiError::from)?;
        txn.audit(AuditAction::SettingDelete, "setting", &k, Some(&before), None).await?;
        txn.touch(Touched::Settings);
        txn.commit().await?;
        ok(DeleteResponse {})
    }
}
