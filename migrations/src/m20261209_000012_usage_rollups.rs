//! Analytics roll-ups: the spend log summed per UTC hour and per UTC day,
//! by user, team, key, model and endpoint (`usage_hourly`, `usage_daily`);
//! requests per hour by team, model and endpoint for the heat map of a
//! whole organisation (`usage_hourly_teams`); and latency and
//! time-to-first-token histograms per hour and per day, by model and
//! endpoint (`usage_latency_hourly`, `usage_latency_daily`). Kept up to
//! date as usage arrives, in the transaction that stores the records, so
//! dashboards never scan the spend log. Records stored before this
//! migration are summed into them once, here.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{DbBackend, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The histograms' upper bounds in milliseconds (one more bucket holds what
/// is above the last). The control plane's copy
/// (`analytics::LATENCY_BOUNDS_MS`) is the one in use; this one only sums
/// the records from before the roll-ups existed.
const BOUNDS_MS: [i64; 37] = [
    10, 20, 30, 50, 75, 100, 150, 200, 300, 400, 500, 650, 800, 1_000, 1_250, 1_500, 2_000, 2_500, 3_000, 4_000, 5_000,
    6_500, 8_000, 10_000, 12_500, 15_000, 20_000, 25_000, 30_000, 40_000, 50_000, 60_000, 90_000, 120_000, 180_000,
    300_000, 600_000,
];

const USAGE: [&str; 2] = ["usage_hourly", "usage_daily"];
const LATENCY: [&str; 2] = ["usage_latency_hourly", "usage_latency_daily"];
const TEAMS: &str = "usage_hourly_teams";
const DIMENSIONS: [&str; 5] = ["user_id", "team_id", "key_id", "model", "endpoint_id"];
const SUMS: [&str; 11] = [
    "requests",
    "errors",
    "throttled",
    "input_tokens",
    "output_tokens",
    "cache_write_tokens",
    "cache_read_tokens",
    "cost_micro_usd",
    "savings_micro_usd",
    "unpriced",
    "web_searches",
];

fn a(name: &str) -> Alias {
    Alias::new(name)
}

fn text(name: &str) -> ColumnDef {
    ColumnDef::new(a(name)).string().not_null().default("").to_owned()
}

fn count(name: &str) -> ColumnDef {
    ColumnDef::new(a(name)).big_integer().not_null().default(0).to_owned()
}

/// Unix seconds of the period's start (UTC).
fn start() -> ColumnDef {
    ColumnDef::new(a("period_start")).big_integer().not_null().to_owned()
}

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
        for table in USAGE {
            let mut t = Table::create();
            t.table(a(table)).if_not_exists().col(start());
            for d in DIMENSIONS {
                t.col(text(d));
            }
            for s in SUMS {
                t.col(count(s));
            }
            let mut pk = Index::create();
            pk.col(a("period_start"));
            for d in DIMENSIONS {
                pk.col(a(d));
            }
            m.create_table(t.primary_key(&mut pk).to_owned()).await?;
            // A member's own dashboard, and a team's.
            for dim in ["user_id", "team_id"] {
                m.create_index(
                    Index::create()
                        .if_not_exists()
                        .name(format!("idx_{table}_{dim}"))
                        .table(a(table))
                        .col(a(dim))
                        .col(a("period_start"))
                        .to_owned(),
                )
                .await?;
            }
        }
        m.create_table(
            Table::create()
                .table(a(TEAMS))
                .if_not_exists()
                .col(start())
                .col(text("team_id"))
                .col(text("model"))
                .col(text("endpoint_id"))
                .col(count("requests"))
                .primary_key(
                    Index::create().col(a("period_start")).col(a("team_id")).col(a("model")).col(a("endpoint_id")),
                )
                .to_owned(),
        )
        .await?;
        for table in LATENCY {
            m.create_table(
                Table::create()
                    .table(a(table))
                    .if_not_exists()
                    .col(start())
                    .col(text("model"))
                    .col(text("endpoint_id"))
                    // 0: the whole request; 1: time to the first token.
                    .col(ColumnDef::new(a("metric")).small_integer().not_null())
                    // Index into the bounds.
                    .col(ColumnDef::new(a("bucket")).small_integer().not_null())
                    .col(count("count"))
                    .primary_key(
                        Index::create()
                            .col(a("period_start"))
                            .col(a("model"))
                            .col(a("endpoint_id"))
                            .col(a("metric"))
                            .col(a("bucket")),
                    )
                    .to_owned(),
            )
            .await?;
        }
        backfill(m).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in USAGE.iter().chain(LATENCY.iter()).chain([TEAMS].iter()) {
            m.drop_table(Table::drop().table(a(table)).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}

/// The records from before, summed once. A re-run after an interrupted
/// one finds the roll-ups filled and adds nothing (the whole migration is
/// one transaction on PostgreSQL; SQLite's is checked here).
async fn backfill(m: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = m.get_connection();
    let backend = m.get_database_backend();
    let tables: Vec<&str> = USAGE.iter().chain(LATENCY.iter()).chain([TEAMS].iter()).copied().collect();
    let empty = tables.iter().map(|t| format!("NOT EXISTS (SELECT 1 FROM {t})")).collect::<Vec<_>>().join(" AND ");
    let q = Statement::from_string(backend, format!("SELECT 1 AS one WHERE {empty}"));
    if db.query_one(q).await?.is_none() {
        return Ok(());
    }
    let epoch = match backend {
        DbBackend::Postgres => "FLOOR(EXTRACT(EPOCH FROM started_at))::BIGINT",
        _ => "CAST(strftime('%s', started_at) AS INTEGER)",
    };
    let hour = format!("(({epoch} / 3600) * 3600)");
    let day = format!("(({epoch} / 86400) * 86400)");
    let dims = DIMENSIONS.join(", ");
    for (table, start) in [(USAGE[0], &hour), (USAGE[1], &day)] {
        db.execute_unprepared(&format!(
            "INSERT INTO {table} (period_start, {dims}, {sums}) \
             SELECT {start}, {dims}, COUNT(*), \
             SUM(CASE WHEN outcome = 'stream_error' OR (outcome = 'error' AND status >= 500) THEN 1 ELSE 0 END), \
             SUM(CASE WHEN outcome = 'rate_limited' OR (status = 429 AND outcome <> 'budget_blocked') THEN 1 ELSE 0 END), \
             SUM(input_tokens), SUM(output_tokens), SUM(cache_write_tokens), SUM(cache_read_tokens), \
             SUM(cost_micro_usd), 0, SUM(CASE WHEN unpriced THEN 1 ELSE 0 END), SUM(web_search_requests) \
             FROM usage_records GROUP BY {start}, {dims}",
            sums = SUMS.join(", "),
        ))
        .await?;
    }
    db.execute_unprepared(&format!(
        "INSERT INTO {TEAMS} (period_start, team_id, model, endpoint_id, requests) \
         SELECT period_start, team_id, model, endpoint_id, SUM(requests) FROM usage_hourly \
         GROUP BY period_start, team_id, model, endpoint_id"
    ))
    .await?;
    for (table, start) in [(LATENCY[0], &hour), (LATENCY[1], &day)] {
        for (metric, col, extra) in [(0, "duration_ms", ""), (1, "ttft_ms", " AND ttft_ms IS NOT NULL")] {
            let bucket = bucket_sql(col);
            db.execute_unprepared(&format!(
                "INSERT INTO {table} (period_start, model, endpoint_id, metric, bucket, count) \
                 SELECT {start}, model, endpoint_id, {metric}, {bucket}, COUNT(*) FROM usage_records \
                 WHERE outcome = 'ok'{extra} GROUP BY {start}, model, endpoint_id, {bucket}"
            ))
            .await?;
        }
    }
    Ok(())
}
