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
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
