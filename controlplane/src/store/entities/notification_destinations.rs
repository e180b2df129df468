use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "notification_destinations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    pub kind: String,
    #[sea_orm(column_type = "Text")]
    pub target: String,
    /// Comma-separated event types or categories; empty: every event.
    #[sea_orm(column_type = "Text")]
    pub events: String,
    pub enabled: bool,
    #[sea_orm(column_type = "Text")]
    pub role_arn: String,
    #[sea_orm(column_type = "Text")]
    #[serde(skip)]
    pub secret_enc: String,
    #[sea_orm(column_type = "Text")]
    #[serde(skip)]
    pub previous_secret_enc: String,
    pub previous_secret_until: Option<DateTimeUtc>,
    #[serde(skip)]
    pub failures: i32,
    #[serde(skip)]
    pub backoff_until: Option<DateTimeUtc>,
    #[serde(skip)]
    pub failing_since: Option<DateTimeUtc>,
    #[serde(skip)]
    pub failing_reported: bool,
    #[sea_orm(column_type = "Text")]
    #[serde(skip)]
    pub last_error: String,
    #[serde(skip)]
    pub last_success_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
