//! Per-user and per-team limits, the spend log, and the pricing table.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Bedrock on-demand prices, US dollars per million tokens (input, output,
/// cache write, cache read), by model-name prefix; the longest prefix wins.
/// Families without a published Bedrock price here take their family's
/// current price; admins edit these through PricingService.
const PRICES: &[(&str, f64, f64, f64, f64)] = &[
    // Opus 4 and 4.1 (dated ids such as claude-opus-4-20250514 included).
    ("claude-opus-4", 15.0, 75.0, 18.75, 1.5),
    ("claude-opus-4-5", 5.0, 25.0, 6.25, 0.5),
    ("claude-opus-4-6", 5.0, 25.0, 6.25, 0.5),
    ("claude-opus-4-7", 5.0, 25.0, 6.25, 0.5),
    ("claude-opus-4-8", 5.0, 25.0, 6.25, 0.5),
    ("claude-opus-5", 5.0, 25.0, 6.25, 0.5),
    ("claude-sonnet-4", 3.0, 15.0, 3.75, 0.3),
    ("claude-sonnet-5", 3.0, 15.0, 3.75, 0.3),
    ("claude-3-7-sonnet", 3.0, 15.0, 3.75, 0.3),
    ("claude-haiku-4-5", 1.0, 5.0, 1.25, 0.1),
    ("claude-haiku-5", 1.0, 5.0, 1.25, 0.1),
    ("claude-3-5-haiku", 0.8, 4.0, 1.0, 0.08),
    ("opus", 5.0, 25.0, 6.25, 0.5),
    ("sonnet", 3.0, 15.0, 3.75, 0.3),
    ("haiku", 1.0, 5.0, 1.25, 0.1),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (table, col) in [(Users::Table, Users::Rpm), (Users::Table, Users::Tpm)] {
            add_count(m, table.into_iden(), col.into_iden()).await?;
        }
        for (table, col) in [(Teams::Table, Teams::Rpm), (Teams::Table, Teams::Tpm)] {
            add_count(m, table.into_iden(), col.into_iden()).await?;
        }

        m.create_table(
            Table::create()
                .table(UsageRecords::Table)
                .if_not_exists()
                .col(ColumnDef::new(UsageRecords::RequestId).string().not_null().primary_key())
                .col(ColumnDef::new(UsageRecords::DataplaneId).string().not_null().default(""))
                .col(ColumnDef::new(UsageRecords::Operation).string().not_null().default(""))
                .col(ColumnDef::new(UsageRecords::KeyId).string().not_null().default(""))
                .col(ColumnDef::new(UsageRecords::UserId).string().not_null().default(""))
                .col(ColumnDef::new(UsageRecords::TeamId).string().not_null().default(""))
                .col(ColumnDef::new(UsageRecords::Model).string().not_null().default(""))
                .col(ColumnDef::new(UsageRecords::BedrockModel).string().not_null().default(""))
                .col(ColumnDef::new(UsageRecords::Stream).boolean().not_null().default(false))
                .col(ColumnDef::new(UsageRecords::Status).integer().not_null().default(0))
                .col(ColumnDef::new(UsageRecords::Outcome).string().not_null().default(""))
                .col(ColumnDef::new(UsageRecords::InputTokens).big_integer().not_null().default(0))
                .col(ColumnDef::new(UsageRecords::OutputTokens).big_integer().not_null().default(0))
                .col(ColumnDef::new(UsageRecords::CacheWriteTokens).big_integer().not_null().default(0))
                .col(ColumnDef::new(UsageRecords::CacheReadTokens).big_integer().not_null().default(0))
                .col(ColumnDef::new(UsageRecords::CostUsd).double().not_null().default(0.0))
                .col(ColumnDef::new(UsageRecords::TtftMs).big_integer().null())
                .col(ColumnDef::new(UsageRecords::DurationMs).big_integer().not_null().default(0))
                .col(ColumnDef::new(UsageRecords::StartedAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(UsageRecords::ReceivedAt).timestamp_with_time_zone().not_null())
                .to_owned(),
        )
        .await?;
        for (name, col) in [
            ("idx_usage_started", UsageRecords::StartedAt),
            ("idx_usage_user", UsageRecords::UserId),
            ("idx_usage_key", UsageRecords::KeyId),
        ] {
            m.create_index(Index::create().if_not_exists().name(name).table(UsageRecords::Table).col(col).to_owned())
                .await?;
        }

        m.create_table(
            Table::create()
                .table(ModelPrices::Table)
                .if_not_exists()
                .col(ColumnDef::new(ModelPrices::Model).string().not_null().primary_key())
                .col(ColumnDef::new(ModelPrices::Input).double().not_null())
                .col(ColumnDef::new(ModelPrices::Output).double().not_null())
                .col(ColumnDef::new(ModelPrices::CacheWrite).double().not_null())
                .col(ColumnDef::new(ModelPrices::CacheRead).double().not_null())
                .col(ColumnDef::new(ModelPrices::UpdatedAt).timestamp_with_time_zone().not_null())
                .to_owned(),
        )
        .await?;
        let mut insert = Query::insert();
        insert
            .into_table(ModelPrices::Table)
            .columns([
                ModelPrices::Model,
                ModelPrices::Input,
                ModelPrices::Output,
                ModelPrices::CacheWrite,
                ModelPrices::CacheRead,
                ModelPrices::UpdatedAt,
            ])
            .on_conflict(OnConflict::column(ModelPrices::Model).do_nothing().to_owned());
        for (model, i, o, w, r) in PRICES {
            insert.values_panic([
                (*model).into(),
                (*i).into(),
                (*o).into(),
                (*w).into(),
                (*r).into(),
                Expr::current_timestamp().into(),
            ]);
        }
        m.exec_stmt(insert).await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(ModelPrices::Table).if_exists().to_owned()).await?;
        m.drop_table(Table::drop().table(UsageRecords::Table).if_exists().to_owned()).await?;
        Ok(())
    }
}

/// Adds a limit column unless a previous, interrupted run already did.
async fn add_count(m: &SchemaManager<'_>, table: DynIden, col: DynIden) -> Result<(), DbErr> {
    if m.has_column(table.to_string(), col.to_string()).await? {
        return Ok(());
    }
    m.alter_table(
        Table::alter().table(table).add_column(ColumnDef::new(col).big_integer().not_null().default(0)).to_owned(),
    )
    .await
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Rpm,
    Tpm,
}

#[derive(DeriveIden)]
enum Teams {
    Table,
    Rpm,
    Tpm,
}

#[derive(DeriveIden)]
enum UsageRecords {
    Table,
    RequestId,
    DataplaneId,
    Operation,
    KeyId,
    UserId,
    TeamId,
    Model,
    BedrockModel,
    Stream,
    Status,
    Outcome,
    InputTokens,
    OutputTokens,
    CacheWriteTokens,
    CacheReadTokens,
    CostUsd,
    TtftMs,
    DurationMs,
    StartedAt,
    ReceivedAt,
}

#[derive(DeriveIden)]
enum ModelPrices {
    Table,
    Model,
    Input,
    Output,
    CacheWrite,
    CacheRead,
    UpdatedAt,
}
