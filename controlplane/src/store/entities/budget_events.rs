use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "budget_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub budget_id: String,
    pub scope: String,
    pub subject_id: String,
    pub period: String,
    pub period_start: i64,
    pub threshold_percent: i32,
    pub action: String,
    pub limit_micro_usd: i64,
    pub spend_micro_usd: i64,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
