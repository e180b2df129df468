use sea_orm::entity::prelude::*;

/// One data plane's calls of one endpoint in one minute.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "endpoint_stats")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub endpoint_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub dataplane_id: String,
    /// Unix minutes.
    #[sea_orm(primary_key, auto_increment = false)]
    pub minute: i64,
    pub requests: i64,
    pub throttles: i64,
    pub errors: i64,
    /// JSON array of counts per bucket of `ccag_proto::routing::LATENCY_BOUNDS_MS`.
    #[sea_orm(column_type = "Text")]
    pub latency_buckets: String,
    /// `crate::store::Circuit`: the latest report's.
    pub circuit: String,
    pub reported_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
