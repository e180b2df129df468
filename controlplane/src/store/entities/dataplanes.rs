use sea_orm::entity::prelude::*;

/// The fleet registry: one row per connected data plane, held by the
/// replica that serves its stream and renewed by that replica's heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "dataplanes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub address: String,
    pub replica: String,
    /// Distinguishes a reconnection from the stream it replaces.
    pub connection: String,
    pub connected_at: DateTimeUtc,
    /// The row counts as a live data plane until then.
    pub lease_until: DateTimeUtc,
    pub epoch: String,
    pub acked_revision: i64,
    pub nacked_revision: i64,
    #[sea_orm(column_type = "Text")]
    pub nack_error: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
