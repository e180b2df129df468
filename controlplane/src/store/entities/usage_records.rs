use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "usage_records")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub request_id: String,
    pub dataplane_id: String,
    pub operation: String,
    pub key_id: String,
    pub user_id: String,
    pub team_id: String,
    pub model: String,
    pub bedrock_model: String,
    pub stream: bool,
    pub status: i32,
    pub outcome: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_write_tokens: i64,
    pub cache_read_tokens: i64,
    /// Frozen when the record arrives: a later price edit does not rewrite it.
    pub cost_micro_usd: i64,
    pub ttft_ms: Option<i64>,
    pub duration_ms: i64,
    pub started_at: DateTimeUtc,
    pub received_at: DateTimeUtc,
    /// Of `cache_write_tokens`, those written with the 1-hour TTL.
    pub cache_write_1h_tokens: i64,
    pub web_search_requests: i64,
    /// No price matched: charged at the conservative default.
    pub unpriced: bool,
    /// The endpoint that answered (or last refused); "" when none was called.
    pub endpoint_id: String,
    /// Endpoints tried, the answering one included.
    pub attempts: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
