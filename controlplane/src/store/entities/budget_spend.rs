use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "budget_spend")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub scope: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub subject_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub period: String,
    /// Unix seconds.
    #[sea_orm(primary_key, auto_increment = false)]
    pub period_start: i64,
    pub spend_micro_usd: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
