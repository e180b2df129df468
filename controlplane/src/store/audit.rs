//! The audit log's writer: one entry per change, in the change's own
//! transaction, so that the change and its record commit together.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbErr, Set};
use serde::Serialize;

use super::entities::audit_log;
use super::AuditAction;

pub async fn append<C: ConnectionTrait, T: Serialize>(
    c: &C,
    actor: &str,
    action: AuditAction,
    resource_type: &str,
    resource_id: &str,
    before: Option<&T>,
    after: Option<&T>,
) -> Result<(), DbErr> {
    let json = |v: Option<&T>| v.and_then(|v| serde_json::to_string(v).ok());
    audit_log::ActiveModel {
        at: Set(Utc::now()),
        actor: Set(actor.to_owned()),
        action: Set(action.as_str().to_owned()),
        resource_type: Set(resource_type.to_owned()),
        resource_id: Set(resource_id.to_owned()),
        before_json: Set(json(before)),
        after_json: Set(json(after)),
        ..Default::default()
    }
    .insert(c)
    .await?;
    Ok(())
}
