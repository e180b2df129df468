use sea_orm::entity::prelude::*;

/// Histogram counts of answered requests per UTC hour, model and endpoint.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "usage_latency_hourly")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub hour: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub model: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub endpoint_id: String,
    /// `crate::analytics::Metric`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub metric: i16,
    /// Index into `crate::analytics::LATENCY_BOUNDS_MS`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub bucket: i16,
    pub count: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
