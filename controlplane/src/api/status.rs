//! StatusService: what this control plane is and holds.

use ccag_proto::admin::v1::status_service_server::StatusService;
use ccag_proto::admin::v1::*;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use super::{ok, ts, ApiError, ApiResult, Shared};
use crate::store::entities::{api_keys, teams, users};

pub struct StatusApi(pub Shared);

#[tonic::async_trait]
impl StatusService for StatusApi {
    async fn get_status(&self, req: tonic::Request<GetStatusRequest>) -> ApiResult<Status> {
        self.0.caller(&req).await?.require_admin()?;
        let db = &self.0.db;
        ok(Status {
            version: env!("CARGO_PKG_VERSION").into(),
            database: self.0.backend.name().into(),
            started_at: ts(self.0.started_at),
            users: users::Entity::find().count(db).await.map_err(ApiError::from)?,
            teams: teams::Entity::find().count(db).await.map_err(ApiError::from)?,
            active_keys: api_keys::Entity::find()
                .filter(api_keys::Column::Status.eq("active"))
                .count(db)
                .await
                .map_err(ApiError::from)?,
            config_version: self.0.publisher.current().version,
            dataplanes: {
                let mut d: Vec<DataPlane> = self
                    .0
                    .publisher
                    .registry
                    .iter()
                    .map(|e| DataPlane {
                        id: e.id.clone(),
                        address: e.address.clone(),
                        connected_at: ts(e.connected_at),
                        acked_version: e.acked_version,
                        nacked_version: e.nacked_version,
                        nack_error: e.nack_error.clone(),
                    })
                    .collect();
                d.sort_by(|a, b| a.id.cmp(&b.id));
                d
            },
        })
    }
}
