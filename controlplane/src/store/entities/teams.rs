use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "teams")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    pub description: String,
    pub member_rpm: i64,
    pub member_tpm: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub rpm: i64,
    pub tpm: i64,
    /// `crate::store::Routing`: "" is the organisation's strategy.
    pub routing_strategy: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
