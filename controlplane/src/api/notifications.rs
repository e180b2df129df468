//! NotificationService: destinations (webhook, SNS, EventBridge) with their
//! filters and signing secrets, test sends, and the delivery log.

use std::collections::HashMap;
use std::time::Instant;

use ccag_proto::admin::v1::notification_service_server::NotificationService;
use ccag_proto::admin::v1::{self as pb, *};
use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use super::{ok, optional, ts, ts_opt, ApiError, ApiResult, Change, Shared};
use crate::notify::{aws, producers, send::Outgoing, webhook, Filter};
use crate::store::entities::{
    notification_deliveries as deliveries, notification_destinations as destinations, notification_events as events,
};
use crate::store::{AuditAction, DeliveryState, DestinationKind};

pub struct NotificationsApi(pub Shared);

const MAX_DESTINATIONS: u64 = 100;
const DEFAULT_OVERLAP_SECS: u64 = 24 * 3600;
const MAX_OVERLAP_SECS: u64 = 30 * 24 * 3600;

fn kind_of(k: i32) -> Result<DestinationKind, ApiError> {
    match pb::DestinationKind::try_from(k) {
        Ok(pb::DestinationKind::Webhook) => Ok(DestinationKind::Webhook),
        Ok(pb::DestinationKind::Sns) => Ok(DestinationKind::Sns),
        Ok(pb::DestinationKind::Eventbridge) => Ok(DestinationKind::EventBridge),
        _ => Err(ApiError::InvalidArgument("kind: webhook, sns or eventbridge".into())),
    }
}

fn kind_pb(k: DestinationKind) -> pb::DestinationKind {
    match k {
        DestinationKind::Webhook => pb::DestinationKind::Webhook,
        DestinationKind::Sns => pb::DestinationKind::Sns,
        DestinationKind::EventBridge => pb::DestinationKind::Eventbridge,
    }
}

fn filter(events: &[String]) -> Result<Filter, ApiError> {
    Filter::parse(&events.join(",")).map_err(|e| ApiError::InvalidArgument(format!("events: {e}")))
}

/// The target, checked for its kind; a webhook's host must resolve to
/// addresses the outbound policy permits, now as at every call.
async fn check_target(ctx: &super::Ctx, kind: DestinationKind, target: &str) -> Result<String, ApiError> {
    let t = target.trim();
    if t.is_empty() || t.len() > 2048 {
        return Err(ApiError::InvalidArgument("target: required, at most 2048 characters".into()));
    }
    let bad = |e: String| ApiError::InvalidArgument(format!("target: {e}"));
    match kind {
        DestinationKind::Webhook => {
            let w = ccag_outbound::webhook_target(t).map_err(|e| bad(e.to_string()))?;
            ctx.sender.policy.resolve(&w.host, w.port).await.map_err(|e| bad(e.to_string()))?;
        }
        DestinationKind::Sns => aws::check_topic_arn(t).map_err(bad)?,
        DestinationKind::EventBridge => aws::check_bus(t).map_err(bad)?,
    }
    Ok(t.to_owned())
}

fn check_role(kind: DestinationKind, role: &str) -> Result<String, ApiError> {
    let role = role.trim();
    if !role.is_empty() && kind == DestinationKind::Webhook {
        return Err(ApiError::InvalidArgument("role_arn: only SNS and EventBridge destinations assume a role".into()));
    }
    aws::check_role_arn(role).map_err(|e| ApiError::InvalidArgument(format!("role_arn: {e}")))?;
    Ok(role.to_owned())
}

/// A signing secret sealed for destination `id`; refused on a replica
/// without the deployment's encryption key.
fn seal(ctx: &super::Ctx, secret: &str, id: &str) -> Result<String, ApiError> {
    ctx.sender.keyring.seal(secret, id).map_err(|e| ApiError::FailedPrecondition(e.to_string()))
}

pub async fn find<C: ConnectionTrait>(c: &C, id_or_name: &str) -> Result<destinations::Model, ApiError> {
    let s = super::lookup("id", "the destination's id or name", id_or_name)?;
    destinations::Entity::find()
        .filter(Condition::any().add(destinations::Column::Id.eq(s)).add(destinations::Column::Name.eq(s)))
        .one(c)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no notification destination {s:?}")))
}

async fn to_proto<C: ConnectionTrait>(c: &C, d: destinations::Model) -> Result<Destination, ApiError> {
    let count = |state: DeliveryState| {
        deliveries::Entity::find()
            .filter(deliveries::Column::DestinationId.eq(d.id.clone()))
            .filter(deliveries::Column::State.eq(state.as_str()))
    };
    let pending = count(DeliveryState::Pending).count(c).await?;
    let dead = count(DeliveryState::Dead).count(c).await?;
    Ok(Destination {
        kind: kind_pb(DestinationKind::parse(&d.kind)) as i32,
        events: Filter::parse(&d.events).unwrap_or_default().items().to_vec(),
        failing_since: ts_opt(d.failing_since),
        last_success_at: ts_opt(d.last_success_at),
        previous_secret_until: ts_opt(d.previous_secret_until.filter(|t| *t > Utc::now())),
        created_at: ts(d.created_at),
        updated_at: ts(d.updated_at),
        pending,
        dead,
        id: d.id,
        name: d.name,
        target: d.target,
        enabled: d.enabled,
        role_arn: d.role_arn,
        last_error: d.last_error,
    })
}

#[tonic::async_trait]
impl NotificationService for NotificationsApi {
    async fn create_destination(
        &self,
        req: tonic::Request<CreateDestinationRequest>,
    ) -> ApiResult<CreateDestinationResponse> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let r = req.into_inner();
        let kind = kind_of(r.kind)?;
        let target = check_target(&self.0, kind, &r.target).await?;
        let f = filter(&r.events)?;
        let role = check_role(kind, &r.role_arn)?;
        let id = crate::store::ids::new_id("dst");
        let name = optional("name", &r.name, 100)?.unwrap_or_else(|| id.clone());
        let secret = (kind == DestinationKind::Webhook).then(webhook::new_secret);
        let sealed = match &secret {
            Some(s) => seal(&self.0, s, &id)?,
            None => String::new(),
        };
        let txn = Change::begin(&self.0, &who.user_id).await?;
        if destinations::Entity::find().count(txn.db()).await.map_err(ApiError::from)? >= MAX_DESTINATIONS {
            return Err(ApiError::ResourceExhausted(format!("at most {MAX_DESTINATIONS} destinations")).into());
        }
        let now = Utc::now();
        let row = destinations::ActiveModel {
            id: Set(id),
            name: Set(name),
            kind: Set(kind.as_str().into()),
            target: Set(target),
            events: Set(f.stored()),
            enabled: Set(!r.disabled),
            role_arn: Set(role),
            secret_enc: Set(sealed),
            previous_secret_enc: Set(String::new()),
            previous_secret_until: Set(None),
            failures: Set(0),
            backoff_until: Set(None),
            failing_since: Set(None),
            failing_reported: Set(false),
            last_error: Set(String::new()),
            last_success_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(txn.db())
        .await
        .map_err(|e| ApiError::exists(e, "a destination with that name exists"))?;
        txn.audit(AuditAction::NotificationCreate, "notification_destination", &row.id, None, Some(&row)).await?;
        txn.commit().await?;
        ok(CreateDestinationResponse {
            destination: Some(to_proto(&self.0.db, row).await?),
            secret: secret.unwrap_or_default(),
        })
    }

    async fn list_destinations(
        &self,
        req: tonic::Request<ListDestinationsRequest>,
    ) -> ApiResult<ListDestinationsResponse> {
        self.0.caller(&req).await?.require_admin()?;
        let rows = destinations::Entity::find()
            .order_by_asc(destinations::Column::Name)
            .all(&self.0.db)
            .await
            .map_err(ApiError::from)?;
        let mut out = Vec::with_capacity(rows.len());
        for d in rows {
            out.push(to_proto(&self.0.db, d).await?);
        }
        ok(ListDestinationsResponse { destinations: out })
    }

    async fn update_destination(&self, req: tonic::Request<UpdateDestinationRequest>) -> ApiResult<Destination> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let r = req.into_inner();
        let current = find(&self.0.db, &r.id).await?;
        let kind = DestinationKind::parse(&current.kind);
        // Resolved before the transaction: no lock is held across DNS.
        let target = match &r.target {
            Some(t) => Some(check_target(&self.0, kind, t).await?),
            None => None,
        };
        let txn = Change::begin(&self.0, &who.user_id).await?;
        let before = find(txn.db(), &r.id).await?;
        let mut am: destinations::ActiveModel = before.clone().into();
        if let Some(n) = &r.name {
            am.name = Set(super::require("name", n, 100)?);
        }
        if let Some(t) = target {
            am.target = Set(t);
        }
        if r.set_events {
            am.events = Set(filter(&r.events)?.stored());
        }
        if let Some(e) = r.enabled {
            am.enabled = Set(e);
        }
        if let Some(role) = &r.role_arn {
            am.role_arn = Set(check_role(kind, role)?);
        }
        am.updated_at = Set(Utc::now());
        let after =
            am.update(txn.db()).await.map_err(|e| ApiError::exists(e, "a destination with that name exists"))?;
        txn.audit(AuditAction::NotificationUpdate, "notification_destination", &after.id, Some(&before), Some(&after))
            .await?;
        txn.commit().await?;
        ok(to_proto(&self.0.db, after).await?)
    }

    async fn delete_destination(&self, req: tonic::Request<DeleteDestinationRequest>) -> ApiResult<DeleteResponse> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let txn = Change::begin(&self.0, &who.user_id).await?;
        let before = find(txn.db(), &req.get_ref().id).await?;
        destinations::Entity::delete_by_id(before.id.clone()).exec(txn.db()).await.map_err(ApiError::from)?;
        txn.audit(AuditAction::NotificationDelete, "notification_destination", &before.id, Some(&before), None).await?;
        txn.commit().await?;
        ok(DeleteResponse {})
    }

    async fn rotate_secret(&self, req: tonic::Request<RotateSecretRequest>) -> ApiResult<RotateSecretResponse> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let r = req.into_inner();
        let overlap = if r.overlap_secs == 0 { DEFAULT_OVERLAP_SECS } else { r.overlap_secs };
        if overlap > MAX_OVERLAP_SECS {
            return Err(ApiError::InvalidArgument("overlap_secs: at most 30 days (2592000)".into()).into());
        }
        let txn = Change::begin(&self.0, &who.user_id).await?;
        let before = find(txn.db(), &r.id).await?;
        if DestinationKind::parse(&before.kind) != DestinationKind::Webhook {
            return Err(ApiError::FailedPrecondition("only webhooks have a signing secret".into()).into());
        }
        let secret = webhook::new_secret();
        let sealed = seal(&self.0, &secret, &before.id)?;
        let mut am: destinations::ActiveModel = before.clone().into();
        am.previous_secret_enc = Set(before.secret_enc.clone());
        am.previous_secret_until = Set(Some(Utc::now() + chrono::Duration::seconds(overlap as i64)));
        am.secret_enc = Set(sealed);
        am.updated_at = Set(Utc::now());
        let after = am.update(txn.db()).await.map_err(ApiError::from)?;
        txn.audit(
            AuditAction::NotificationRotateSecret,
            "notification_destination",
            &after.id,
            Some(&before),
            Some(&after),
        )
        .await?;
        txn.commit().await?;
        ok(RotateSecretResponse { destination: Some(to_proto(&self.0.db, after).await?), secret })
    }

    async fn test_destination(
        &self,
        req: tonic::Request<TestDestinationRequest>,
    ) -> ApiResult<TestDestinationResponse> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let d = find(&self.0.db, &req.get_ref().id).await?;
        let event = producers::test_event(&d, &who.email);
        let id = crate::store::ids::new_id("evt");
        let payload = event.payload(&id).to_string();
        let started = Instant::now();
        // Sent outside any transaction: a slow destination holds no lock.
        let sent = self
            .0
            .sender
            .send(
                &d,
                &Outgoing { id: &id, kind: event.kind.as_str(), occurred_at: event.occurred_at, payload: &payload },
            )
            .await;
        let duration_ms = started.elapsed().as_millis() as u64;
        let res = match sent {
            Ok(s) => {
                TestDestinationResponse { ok: true, status: s.status, answer: s.answer, event_id: id, duration_ms }
            }
            Err(e) => TestDestinationResponse {
                ok: false,
                status: e.status(),
                answer: e.to_string(),
                event_id: id,
                duration_ms,
            },
        };
        let txn = Change::begin(&self.0, &who.user_id).await?;
        let record =
            serde_json::json!({"event_id": res.event_id, "ok": res.ok, "status": res.status, "answer": res.answer});
        txn.audit(AuditAction::NotificationTest, "notification_destination", &d.id, None, Some(&record)).await?;
        txn.commit().await?;
        ok(res)
    }

    async fn list_deliveries(&self, req: tonic::Request<ListDeliveriesRequest>) -> ApiResult<ListDeliveriesResponse> {
        self.0.caller(&req).await?.require_admin()?;
        let r = req.into_inner();
        let limit = match r.limit {
            0 => 50,
            n if n <= 1000 => n as u64,
            _ => return Err(ApiError::InvalidArgument("limit: at most 1000".into()).into()),
        };
        let db = &self.0.db;
        let mut q = deliveries::Entity::find().order_by_desc(deliveries::Column::CreatedAt).limit(limit);
        if !r.destination.trim().is_empty() {
            q = q.filter(deliveries::Column::DestinationId.eq(find(db, &r.destination).await?.id));
        }
        if r.failed {
            q = q.filter(
                Condition::any().add(deliveries::Column::State.eq(DeliveryState::Dead.as_str())).add(
                    Condition::all()
                        .add(deliveries::Column::State.eq(DeliveryState::Pending.as_str()))
                        .add(deliveries::Column::Attempts.gt(0)),
                ),
            );
        }
        let rows = q.all(db).await.map_err(ApiError::from)?;
        let types: HashMap<String, String> = events::Entity::find()
            .select_only()
            .column(events::Column::Id)
            .column(events::Column::Type)
            .filter(events::Column::Id.is_in(rows.iter().map(|d| d.event_id.clone())))
            .into_tuple()
            .all(db)
            .await
            .map_err(ApiError::from)?
            .into_iter()
            .collect();
        let names: HashMap<String, String> = destinations::Entity::find()
            .select_only()
            .column(destinations::Column::Id)
            .column(destinations::Column::Name)
            .into_tuple()
            .all(db)
            .await
            .map_err(ApiError::from)?
            .into_iter()
            .collect();
        let deliveries = rows
            .into_iter()
            .map(|d| {
                let state = DeliveryState::parse(&d.state);
                Delivery {
                    event_type: types.get(&d.event_id).cloned().unwrap_or_default(),
                    destination: names.get(&d.destination_id).cloned().unwrap_or_default(),
                    state: state.as_str().into(),
                    attempts: d.attempts.max(0) as u32,
                    next_attempt_at: if state == DeliveryState::Pending {
                        ts(d.next_attempt_at)
                    } else {
                        String::new()
                    },
                    created_at: ts(d.created_at),
                    delivered_at: ts_opt(d.delivered_at),
                    id: d.id,
                    event_id: d.event_id,
                    destination_id: d.destination_id,
                    last_status: d.last_status,
                    last_error: d.last_error,
                }
            })
            .collect();
        ok(ListDeliveriesResponse { deliveries })
    }
}

/// For `ccag status`: destinations failing now, and deliveries given up
/// in the last day.
pub async fn health<C: ConnectionTrait>(c: &C) -> Result<(Vec<FailingDestination>, u64), ApiError> {
    let failing = destinations::Entity::find()
        .filter(destinations::Column::FailingSince.is_not_null())
        .order_by_asc(destinations::Column::FailingSince)
        .all(c)
        .await?
        .into_iter()
        .map(|d| FailingDestination {
            failing_since: ts_opt(d.failing_since),
            id: d.id,
            name: d.name,
            last_error: d.last_error,
        })
        .collect();
    let dead = deliveries::Entity::find()
        .filter(deliveries::Column::State.eq(DeliveryState::Dead.as_str()))
        .filter(deliveries::Column::UpdatedAt.gt(Utc::now() - chrono::Duration::days(1)))
        .count(c)
        .await?;
    Ok((failing, dead))
}
