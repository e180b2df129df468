//! StatusService: what this control plane is and holds, and the whole fleet.

use ccag_proto::admin::v1::status_service_server::StatusService;
use ccag_proto::admin::v1::*;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect};

use super::{ok, ts, ApiError, ApiResult, Shared};
use crate::store::entities::{api_keys, teams, usage_records, users};
use crate::store::KeyStatus;

pub struct StatusApi(pub Shared);

#[tonic::async_trait]
impl StatusService for StatusApi {
    async fn get_status(&self, req: tonic::Request<GetStatusRequest>) -> ApiResult<Status> {
        self.0.caller(&req).await?.require_admin()?;
        let db = &self.0.db;
        // What the database has committed now, not what a notification has
        // brought so far.
        let committed = self.0.publisher.sync().await.map_err(ApiError::from)?;
        let dataplanes = self
            .0
            .registry
            .live()
            .await
            .map_err(ApiError::from)?
            .into_iter()
            .map(|d| DataPlane {
                id: d.id,
                address: d.address,
                connected_at: ts(d.connected_at),
                // A revision of another epoch says nothing about this one.
                acked_version: if d.epoch == committed.epoch { d.acked_revision.max(0) as u64 } else { 0 },
                nacked_version: d.nacked_revision.max(0) as u64,
                nack_error: d.nack_error,
                replica: d.replica,
            })
            .collect();
        let leases = crate::lease::all(db)
            .await
            .map_err(ApiError::from)?
            .into_iter()
            .map(|l| Lease { name: l.name, holder: l.holder, expires_at: ts(l.expires_at) })
            .collect();
        let since = chrono::Utc::now() - chrono::Duration::days(30);
        let unpriced = || {
            usage_records::Entity::find()
                .filter(usage_records::Column::Unpriced.eq(true))
                .filter(usage_records::Column::StartedAt.gte(since))
        };
        let unpriced_requests = unpriced().count(db).await.map_err(ApiError::from)?;
        let unpriced_models: Vec<String> = if unpriced_requests == 0 {
            Vec::new()
        } else {
            unpriced()
                .select_only()
                .column(usage_records::Column::Model)
                .distinct()
                .into_tuple()
                .all(db)
                .await
                .map_err(ApiError::from)?
        };
        let (failing_destinations, dead_deliveries) = super::notifications::health(db).await?;
        ok(Status {
            failing_destinations,
            dead_deliveries,
            version: env!("CARGO_PKG_VERSION").into(),
            database: self.0.backend.name().into(),
            started_at: ts(self.0.started_at),
            users: users::Entity::find().count(db).await.map_err(ApiError::from)?,
            teams: teams::Entity::find().count(db).await.map_err(ApiError::from)?,
            active_keys: api_keys::Entity::find()
                .filter(api_keys::Column::Status.eq(KeyStatus::Active.as_str()))
                .count(db)
                .await
                .map_err(ApiError::from)?,
            config_version: committed.revision,
            dataplanes,
            replica: self.0.registry.replica.clone(),
            config_epoch: committed.epoch,
            leases,
            unpriced_requests,
            unpriced_models,
        })
    }
}
