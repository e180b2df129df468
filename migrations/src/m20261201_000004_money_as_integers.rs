//! Money as integers: recorded cost in micro-USD, prices in micro-USD per
//! million tokens (a price of $0.08 per million tokens is 80,000). Floats
//! drift when summed and compared; budgets need exact figures. Existing
//! values are converted, rounded to the micro-dollar.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const PRICE_COLUMNS: [(&str, &str); 4] = [
    ("input", "input_micro"),
    ("output", "output_micro"),
    ("cache_write", "cache_write_micro"),
    ("cache_read", "cache_read_micro"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        if !m.has_column("usage_records", "cost_micro_usd").await? {
            m.alter_table(
                Table::alter()
                    .table(Alias::new("usage_records"))
                    .add_column(ColumnDef::new(Alias::new("cost_micro_usd")).big_integer().not_null().default(0))
                    .to_owned(),
            )
            .await?;
            db.execute_unprepared(
                "UPDATE usage_records SET cost_micro_usd = CAST(ROUND(cost_usd * 1000000) AS BIGINT)",
            )
            .await?;
            m.alter_table(
                Table::alter().table(Alias::new("usage_records")).drop_column(Alias::new("cost_usd")).to_owned(),
            )
            .await?;
        }
        for (old, new) in PRICE_COLUMNS {
            if m.has_column("model_prices", new).await? {
                continue;
            }
            m.alter_table(
                Table::alter()
                    .table(Alias::new("model_prices"))
                    .add_column(ColumnDef::new(Alias::new(new)).big_integer().not_null().default(0))
                    .to_owned(),
            )
            .await?;
            db.execute_unprepared(&format!("UPDATE model_prices SET {new} = CAST(ROUND({old} * 1000000) AS BIGINT)"))
                .await?;
            m.alter_table(Table::alter().table(Alias::new("model_prices")).drop_column(Alias::new(old)).to_owned())
                .await?;
        }
        Ok(())
    }
}
