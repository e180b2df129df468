use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "budgets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// `user`, `team` or `org` (see `budget::Scope`).
    pub scope: String,
    /// The user or team id; empty for the organisation.
    pub subject_id: String,
    /// A team's default for each member rather than its pool.
    pub member_default: bool,
    pub period: String,
    pub limit_micro_usd: i64,
    /// The rules, as `budget::format_policy` writes them.
    pub policy: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
