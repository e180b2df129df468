use sea_orm::entity::prelude::*;

/// A user as an identity provider's SCIM client provisioned it; the gateway
/// user (`users`) holds the email, display name, role and status.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "scim_users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: String,
    pub idp_id: String,
    pub user_name: String,
    /// `user_name` lower-cased: unique per provider.
    #[serde(skip)]
    pub user_name_key: String,
    pub external_id: Option<String>,
    pub given_name: String,
    pub family_name: String,
    #[sea_orm(column_type = "Text")]
    pub emails_json: String,
    pub version: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
