use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "identity_providers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    #[sea_orm(column_type = "Text")]
    pub issuer: String,
    #[sea_orm(column_type = "Text")]
    pub client_id: String,
    #[sea_orm(column_type = "Text")]
    #[serde(skip)]
    pub client_secret_enc: String,
    /// Space-separated.
    #[sea_orm(column_type = "Text")]
    pub scopes: String,
    #[sea_orm(column_type = "Text")]
    pub email_claim: String,
    #[sea_orm(column_type = "Text")]
    pub groups_claim: String,
    /// Comma-separated, lower case.
    #[sea_orm(column_type = "Text")]
    pub allowed_domains: String,
    pub auto_provision: bool,
    pub default_role: String,
    /// Comma-separated group names.
    #[sea_orm(column_type = "Text")]
    pub admin_groups: String,
    /// JSON object: group -> team id.
    #[sea_orm(column_type = "Text")]
    pub team_mappings: String,
    pub enabled: bool,
    pub source: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
