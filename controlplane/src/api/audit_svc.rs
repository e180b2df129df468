//! AuditService: read-only access to the append-only audit log.

use ccag_proto::admin::v1::audit_service_server::AuditService;
use ccag_proto::admin::v1::*;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::{ok, ts, ApiResult, Paging, Shared};
use crate::store::entities::audit_log;

pub struct AuditApi(pub Shared);

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn list_audit(&self, req: tonic::Request<ListAuditRequest>) -> ApiResult<ListAuditResponse> {
        self.0.caller(&req).await?.require_admin()?;
        let r = req.into_inner();
        let paging = Paging::from(r.page.as_ref())?;
        let mut q = audit_log::Entity::find();
        for (col, v) in [
            (audit_log::Column::Actor, &r.actor),
            (audit_log::Column::ResourceType, &r.resource_type),
            (audit_log::Column::ResourceId, &r.resource_id),
            (audit_log::Column::Action, &r.action),
        ] {
            if !v.trim().is_empty() {
                q = q.filter(col.eq(v.trim()));
            }
        }
        let (rows, next_page_token) = paging.page(q.order_by_desc(audit_log::Column::Id), &self.0.db).await?;
        let entries = rows
            .into_iter()
            .map(|e| AuditEntry {
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
