use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "device_grants")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub device_hash: String,
    pub user_code_hash: String,
    pub client: String,
    pub state: String,
    pub user_id: Option<String>,
    pub interval_secs: i32,
    pub last_poll_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text")]
    pub ip: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
