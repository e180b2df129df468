use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "login_flows")]
pub struct Model {
    /// SHA-256 of the `state` parameter.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub idp_id: String,
    #[sea_orm(column_type = "Text")]
    pub nonce: String,
    #[sea_orm(column_type = "Text")]
    pub verifier_enc: String,
    #[sea_orm(column_type = "Text")]
    pub browser_hash: String,
    #[sea_orm(column_type = "Text")]
    pub return_to: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
