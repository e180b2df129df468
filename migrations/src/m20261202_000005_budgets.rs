//! Budgets: the budgets themselves, spend counters per (subject, period),
//! the outbox of threshold crossings, and a price table that knows cache
//! TTLs, long context, regional profiles, web searches and where each row
//! came from (a shipped default, which a release may correct, or an admin's
//! edit, which nothing overwrites).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The rows the 000002 migration seeded, in micro-USD per million tokens
/// (input, output, cache write, cache read): rows still equal to these were
/// never edited and become shipped defaults; any other row is an admin's.
const OLD_SEED: &[(&str, i64, i64, i64, i64)] = &[
    ("claude-opus-4", 15_000_000, 75_000_000, 18_750_000, 1_500_000),
    ("claude-opus-4-5", 5_000_000, 25_000_000, 6_250_000, 500_000),
    ("claude-opus-4-6", 5_000_000, 25_000_000, 6_250_000, 500_000),
    ("claude-opus-4-7", 5_000_000, 25_000_000, 6_250_000, 500_000),
    ("claude-opus-4-8", 5_000_000, 25_000_000, 6_250_000, 500_000),
    ("claude-opus-5", 5_000_000, 25_000_000, 6_250_000, 500_000),
    ("claude-sonnet-4", 3_000_000, 15_000_000, 3_750_000, 300_000),
    ("claude-sonnet-5", 3_000_000, 15_000_000, 3_750_000, 300_000),
    ("claude-3-7-sonnet", 3_000_000, 15_000_000, 3_750_000, 300_000),
    ("claude-haiku-4-5", 1_000_000, 5_000_000, 1_250_000, 100_000),
    ("claude-haiku-5", 1_000_000, 5_000_000, 1_250_000, 100_000),
    ("claude-3-5-haiku", 800_000, 4_000_000, 1_000_000, 80_000),
    ("opus", 5_000_000, 25_000_000, 6_250_000, 500_000),
    ("sonnet", 3_000_000, 15_000_000, 3_750_000, 300_000),
    ("haiku", 1_000_000, 5_000_000, 1_250_000, 100_000),
];

async fn add(m: &SchemaManager<'_>, table: &str, col: ColumnDef) -> Result<(), DbErr> {
    let mut col = col;
    let name = col.get_column_name();
    if !m.has_column(table, &name).await? {
        m.alter_table(Table::alter().table(Alias::new(table)).add_column(&mut col).to_owned()).await?;
    }
    Ok(())
}

fn big(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name)).big_integer().not_null().default(0).to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One cap per (scope, subject, period); a team's pool and its
        // per-member default are told apart by `member_default`.
        m.create_table(
            Table::create()
                .table(Budgets::Table)
                .if_not_exists()
                .col(ColumnDef::new(Budgets::Id).string().not_null().primary_key())
                .col(ColumnDef::new(Budgets::Scope).string().not_null())
                .col(ColumnDef::new(Budgets::SubjectId).string().not_null().default(""))
                .col(ColumnDef::new(Budgets::MemberDefault).boolean().not_null().default(false))
                .col(ColumnDef::new(Budgets::Period).string().not_null())
                .col(ColumnDef::new(Budgets::LimitMicroUsd).big_integer().not_null())
                .col(ColumnDef::new(Budgets::Policy).text().not_null())
                .col(ColumnDef::new(Budgets::CreatedAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(Budgets::UpdatedAt).timestamp_with_time_zone().not_null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_budgets_cap")
                .table(Budgets::Table)
                .col(Budgets::Scope)
                .col(Budgets::SubjectId)
                .col(Budgets::MemberDefault)
                .col(Budgets::Period)
                .unique()
                .to_owned(),
        )
        .await?;

        // Running spend, moved in the transaction that stores the usage
        // records; a new period is a new row, so nothing is ever reset.
        m.create_table(
            Table::create()
                .table(BudgetSpend::Table)
                .if_not_exists()
                .col(ColumnDef::new(BudgetSpend::Scope).string().not_null())
                .col(ColumnDef::new(BudgetSpend::SubjectId).string().not_null())
                .col(ColumnDef::new(BudgetSpend::Period).string().not_null())
                .col(ColumnDef::new(BudgetSpend::PeriodStart).big_integer().not_null())
                .col(ColumnDef::new(BudgetSpend::SpendMicroUsd).big_integer().not_null().default(0))
                .primary_key(
                    Index::create()
                        .col(BudgetSpend::Scope)
                        .col(BudgetSpend::SubjectId)
                        .col(BudgetSpend::Period)
                        .col(BudgetSpend::PeriodStart),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_budget_spend_period")
                .table(BudgetSpend::Table)
                .col(BudgetSpend::Period)
                .col(BudgetSpend::PeriodStart)
                .to_owned(),
        )
        .await?;

        // The outbox: one row per threshold crossing, written with the
        // spend that crossed it; the unique index makes a second writer (a
        // retry, another replica) a no-op.
        m.create_table(
            Table::create()
                .table(BudgetEvents::Table)
                .if_not_exists()
                .col(ColumnDef::new(BudgetEvents::Id).string().not_null().primary_key())
                .col(ColumnDef::new(BudgetEvents::BudgetId).string().not_null())
                .col(ColumnDef::new(BudgetEvents::Scope).string().not_null())
                .col(ColumnDef::new(BudgetEvents::SubjectId).string().not_null())
                .col(ColumnDef::new(BudgetEvents::Period).string().not_null())
                .col(ColumnDef::new(BudgetEvents::PeriodStart).big_integer().not_null())
                .col(ColumnDef::new(BudgetEvents::ThresholdPercent).integer().not_null())
                .col(ColumnDef::new(BudgetEvents::Action).string().not_null())
                .col(ColumnDef::new(BudgetEvents::LimitMicroUsd).big_integer().not_null())
                .col(ColumnDef::new(BudgetEvents::SpendMicroUsd).big_integer().not_null())
                .col(ColumnDef::new(BudgetEvents::CreatedAt).timestamp_with_time_zone().not_null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_budget_events_once")
                .table(BudgetEvents::Table)
                .col(BudgetEvents::BudgetId)
                .col(BudgetEvents::SubjectId)
                .col(BudgetEvents::PeriodStart)
                .col(BudgetEvents::ThresholdPercent)
                .col(BudgetEvents::LimitMicroUsd)
                .unique()
                .to_owned(),
        )
        .await?;

        for col in ["cache_write_1h_tokens", "web_search_requests"] {
            add(m, "usage_records", big(col)).await?;
        }
        add(m, "usage_records", ColumnDef::new(Alias::new("unpriced")).boolean().not_null().default(false).to_owned())
            .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_usage_team")
                .table(Alias::new("usage_records"))
                .col(Alias::new("team_id"))
                .to_owned(),
        )
        .await?;

        for col in [
            "cache_write_1h_micro",
            "lc_input_micro",
            "lc_output_micro",
            "lc_cache_write_micro",
            "lc_cache_write_1h_micro",
            "lc_cache_read_micro",
            "lc_threshold",
            "regional_premium_bp",
        ] {
            add(m, "model_prices", big(col)).await?;
        }
        let had_source = m.has_column("model_prices", "source").await?;
        add(m, "model_prices", ColumnDef::new(Alias::new("source")).string().not_null().default("admin").to_owned())
            .await?;
        if !had_source {
            let db = m.get_connection();
            // The old table had one cache-write rate; it was the 5-minute
            // one, and the 1-hour rate is twice the input rate.
            db.execute_unprepared("UPDATE model_prices SET cache_write_1h_micro = input_micro * 2").await?;
            for (model, i, o, w, r) in OLD_SEED {
                let stmt = Query::update()
                    .table(Alias::new("model_prices"))
                    .value(Alias::new("source"), "default")
                    .and_where(Expr::col(Alias::new("model")).eq(*model))
                    .and_where(Expr::col(Alias::new("input_micro")).eq(*i))
                    .and_where(Expr::col(Alias::new("output_micro")).eq(*o))
                    .and_where(Expr::col(Alias::new("cache_write_micro")).eq(*w))
                    .and_where(Expr::col(Alias::new("cache_read_micro")).eq(*r))
                    .to_owned();
                m.exec_stmt(stmt).await?;
            }
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Budgets {
    Table,
    Id,
    Scope,
    SubjectId,
    MemberDefault,
    Period,
    LimitMicroUsd,
    Policy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum BudgetSpend {
    Table,
    Scope,
    SubjectId,
    Period,
    PeriodStart,
    SpendMicroUsd,
}

#[derive(DeriveIden)]
enum BudgetEvents {
    Table,
    Id,
    BudgetId,
    Scope,
    SubjectId,
    Period,
    PeriodStart,
    ThresholdPercent,
    Action,
    LimitMicroUsd,
    SpendMicroUsd,
    CreatedAt,
}
