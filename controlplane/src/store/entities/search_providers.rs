use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "search_providers")]
pub struct Model {
    /// "" for the organisation's provider, else the user id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub scope: String,
    pub user_id: Option<String>,
    pub kind: String,
    #[sea_orm(column_type = "Text")]
    pub url: String,
    /// Sealed; "" when there is none. Never in the audit log.
    #[sea_orm(column_type = "Text")]
    #[serde(skip)]
    pub api_key_enc: String,
    pub max_results: i32,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
