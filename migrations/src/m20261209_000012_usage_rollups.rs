//! Analytics roll-ups: the spend log summed per UTC hour and per user,
//! team, key, model and endpoint (`usage_hourly`), and latency and
//! time-to-first-token histograms per hour, model and endpoint
//! (`usage_latency_hourly`). Kept up to date as usage arrives, in the same
//! transaction as the records, so dashboards never scan the spend log.
//! Records stored before this migration are summed into them once, here.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum UsageHourly {
    Table,
    /// Unix seconds of the hour's start (UTC).
    Hour,
    UserId,
    TeamId,
    KeyId,
    Model,
    EndpointId,
    Requests,
    Errors,
    Throttled,
    InputTokens,
    OutputTokens,
    CacheWriteTokens,
    CacheReadTokens,
    CostMicroUsd,
    SavingsMicroUsd,
    Unpriced,
    WebSearches,
}

#[derive(DeriveIden)]
enum UsageLatencyHourly {
    Table,
    Hour,
    Model,
    EndpointId,
    /// 0: the whole request; 1: time to the first token.
    Metric,
    /// Index into the control plane's `analytics::LATENCY_BOUNDS_MS`.
    Bucket,
    Count,
}

/// The analytics histograms' upper bounds in milliseconds (one more bucket
/// holds what is above the last). The control plane's copy is the one in
/// use; this one only sums the records from before the roll-ups existed.
const BOUNDS_MS: [i64; 37] = [
    10, 20, 30, 50, 75, 100, 150, 200, 300, 400, 500, 650, 800, 1_000, 1_250, 1_500, 2_000, 2_500, 3_000, 4_000, 5_000,
    6_500, 8_000, 10_000, 12_500, 15_000, 20_000, 25_000, 30_000, 40_000, 50_000, 60_000, 90_000, 120_000, 180_000,
    300_000, 600_000,
];

fn bucket_sql(col: &str) -> String {
    let mut s = String::from("CASE");
    for (i, b) in BOUNDS_MS.iter().enumerate() {
        s.push_str(&format!(" WHEN {col} <= {b} THEN {i}"));
    }
    s.push_str(&format!(" ELSE {} END", BOUNDS_MS.len()));
    s
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let big = |c: UsageHourly| ColumnDef::new(c).big_integer().not_null().default(0).to_owned();
        let text = |c: UsageHourly| ColumnDef::new(c).string().not_null().default("").to_owned();
        m.create_table(
            Table::create()
                .table(UsageHourly::Table)
                .if_not_exists()
                .col(ColumnDef::new(UsageHourly::Hour).big_integer().not_null())
                .col(text(UsageHourly::UserId))
                .col(text(UsageHourly::TeamId))
                .col(text(UsageHourly::KeyId))
                .col(text(UsageHourly::Model))
                .col(text(UsageHourly::EndpointId))
                .col(big(UsageHourly::Requests))
                .col(big(UsageHourly::Errors))
                .col(big(UsageHourly::Throttled))
                .col(big(UsageHourly::InputTokens))
                .col(big(UsageHourly::OutputTokens))
                .col(big(UsageHourly::CacheWriteTokens))
                .col(big(UsageHourly::CacheReadTokens))
                .col(big(UsageHourly::CostMicroUsd))
                .col(big(UsageHourly::SavingsMicroUsd))
                .col(big(UsageHourly::Unpriced))
                .col(big(UsageHourly::WebSearches))
                .primary_key(
                    Index::create()
                        .col(UsageHourly::Hour)
                        .col(UsageHourly::UserId)
                        .col(UsageHourly::TeamId)
                        .col(UsageHourly::KeyId)
                        .col(UsageHourly::Model)
                        .col(UsageHourly::EndpointId),
                )
                .to_owned(),
        )
        .await?;
        // A member's own dashboard, and a team's.
        for (name, col) in
            [("idx_usage_hourly_user", UsageHourly::UserId), ("idx_usage_hourly_team", UsageHourly::TeamId)]
        {
            m.create_index(
                Index::create()
                    .if_not_exists()
                    .name(name)
                    .table(UsageHourly::Table)
                    .col(col)
                    .col(UsageHourly::Hour)
                    .to_owned(),
            )
            .await?;
        }
        m.create_table(
            Table::create()
                .table(UsageLatencyHourly::Table)
                .if_not_exists()
                .col(ColumnDef::new(UsageLatencyHourly::Hour).big_integer().not_null())
                .col(ColumnDef::new(UsageLatencyHourly::Model).string().not_null().default(""))
                .col(ColumnDef::new(UsageLatencyHourly::EndpointId).string().not_null().default(""))
                .col(ColumnDef::new(UsageLatencyHourly::Metric).small_integer().not_null())
                .col(ColumnDef::new(UsageLatencyHourly::Bucket).small_integer().not_null())
                .col(ColumnDef::new(UsageLatencyHourly::Count).big_integer().not_null().default(0))
                .primary_key(
                    Index::create()
                        .col(UsageLatencyHourly::Hour)
                        .col(UsageLatencyHourly::Model)
                        .col(UsageLatencyHourly::EndpointId)
                        .col(UsageLatencyHourly::Metric)
                        .col(UsageLatencyHourly::Bucket),
                )
                .to_owned(),
        )
        .await?;

        // The records from before: summed once. A re-run after an
        // interrupted one finds the roll-ups filled and adds nothing.
        let db = m.get_connection();
        let hour = match m.get_database_backend() {
            DbBackend::Postgres => "((FLOOR(EXTRACT(EPOCH FROM started_at) / 3600) * 3600)::BIGINT)",
            _ => "((CAST(strftime('%s', started_at) AS INTEGER) / 3600) * 3600)",
        };
        let empty = "NOT EXISTS (SELECT 1 FROM usage_hourly) AND NOT EXISTS (SELECT 1 FROM usage_latency_hourly)";
        let filled = db
            .query_one(sea_orm_migration::sea_orm::Statement::from_string(
                m.get_database_backend(),
                format!("SELECT 1 AS one WHERE {empty}"),
            ))
            .await?
            .is_none();
        if filled {
            return Ok(());
        }
        db.execute_unprepared(&format!(
            "INSERT INTO usage_hourly (hour, user_id, team_id, key_id, model, endpoint_id, requests, errors, \
             throttled, input_tokens, output_tokens, cache_write_tokens, cache_read_tokens, cost_micro_usd, \
             savings_micro_usd, unpriced, web_searches) \
             SELECT {hour}, user_id, team_id, key_id, model, endpoint_id, COUNT(*), \
             SUM(CASE WHEN outcome = 'stream_error' OR (outcome = 'error' AND status >= 500) THEN 1 ELSE 0 END), \
             SUM(CASE WHEN outcome = 'rate_limited' OR (status = 429 AND outcome <> 'budget_blocked') THEN 1 ELSE 0 END), \
             SUM(input_tokens), SUM(output_tokens), SUM(cache_write_tokens), SUM(cache_read_tokens), \
             SUM(cost_micro_usd), 0, SUM(CASE WHEN unpriced THEN 1 ELSE 0 END), SUM(web_search_requests) \
             FROM usage_records GROUP BY {hour}, user_id, team_id, key_id, model, endpoint_id"
        ))
        .await?;
        for (metric, col, extra) in [(0, "duration_ms", ""), (1, "ttft_ms", " AND ttft_ms IS NOT NULL")] {
            let bucket = bucket_sql(col);
            db.execute_unprepared(&format!(
                "INSERT INTO usage_latency_hourly (hour, model, endpoint_id, metric, bucket, count) \
                 SELECT {hour}, model, endpoint_id, {metric}, {bucket}, COUNT(*) FROM usage_records \
                 WHERE outcome = 'ok'{extra} GROUP BY {hour}, model, endpoint_id, {bucket}"
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(UsageLatencyHourly::Table).if_exists().to_owned()).await?;
        m.drop_table(Table::drop().table(UsageHourly::Table).if_exists().to_owned()).await
    }
}
