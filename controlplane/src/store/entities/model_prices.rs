use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "model_prices")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub model: String,
    /// Micro-USD per million tokens.
    pub input_micro: i64,
    pub output_micro: i64,
    pub cache_write_micro: i64,
    pub cache_read_micro: i64,
    pub updated_at: DateTimeUtc,
    pub cache_write_1h_micro: i64,
    /// Rates for a whole request above `lc_threshold` input tokens (0: none).
    pub lc_input_micro: i64,
    pub lc_output_micro: i64,
    pub lc_cache_write_micro: i64,
    pub lc_cache_write_1h_micro: i64,
    pub lc_cache_read_micro: i64,
    pub lc_threshold: i64,
    /// Premium of a regional inference profile over the global one.
    pub regional_premium_bp: i64,
    /// `default` (shipped, corrected by a release) or `admin` (never overwritten).
    pub source: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
