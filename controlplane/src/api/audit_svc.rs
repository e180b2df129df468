//! AuditService: read-only access to the append-only audit log.

use ccag_proto::admin::v1::audit_service_server::AuditService;
use ccag_proto::admin::v1::*;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::{ok, ts, ApiError, ApiResult, Paging, Shared};
use crate::store::entities::audit_log;

pub struct AuditApi(pub Shared);

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn list_audit(&self, req: tonic::Request<ListAuditRequest>) -> ApiResult<ListAuditResponse> {
        self.0.caller(&req).await?.require_admin()?;
        let r = req.into_inner();
        let paging = Paging::from(r.page.as_ref())?;
        let mut q = audit_log::Entity::find();
        // An actor is recorded by user id (or `system`, `idp:NAME`); people
        // filter by email.
        let actor = match r.actor.trim() {
            "" => String::new(),
            a => match super::users::find(&self.0.db, a).await {
                Ok(u) => u.id,
                Err(ApiError::NotFound(_)) => a.to_owned(),
                Err(e) => return Err(e.into()),
            },
        };
        for (col, v) in [
            (audit_log::Column::Actor, &actor),
            (audit_log::Column::ResourceType, &r.resource_type),
            (audit_log::Column::ResourceId, &r.resource_id),
            (audit_log::Column::Action, &r.action),
        ] {
            if !v.trim().is_empty() {
                q = q.filter(col.eq(v.trim()));
            }
        }
        let (rows, next_page_token) = paging.page(q.order_by_desc(audit_log::Column::Id), &self.0.db).await?;
        let emails = crate::store::names::user_emails(&self.0.db, rows.iter().map(|e| e.actor.clone()))
            .await
            .map_err(ApiError::from)?;
        let entries = rows
            .into_iter()
            .map(|e| AuditEntry {
                actor_email: emails.get(&e.actor).cloned().unwrap_or_default(),
                id: e.id.to_string(),
                at: ts(e.at),
                actor: e.actor,
                action: e.action,
                resource_type: e.resource_type,
                resource_id: e.resource_id,
                before_json: e.before_json.unwrap_or_default(),
                after_json: e.after_json.unwrap_or_default(),
            })
            .collect();
        ok(ListAuditResponse { entries, next_page_token })
    }
}
