//! The analytics dashboards at scale, on a real PostgreSQL: fills a
//! database with usage records (10 million by default), sums them into the
//! roll-ups through the migration that creates them (timed), then times
//! the dashboards the portal asks for, each run a number of times, and
//! says whether the 30-day dashboard of the whole organisation loads in
//! under 300 ms.
//!
//!   cargo bench -p ccag-controlplane --bench analytics
//!
//! CCAG_BENCH_PG: the server (default postgres://postgres@127.0.0.1:5432);
//! CCAG_BENCH_RECORDS: how many records (default 10,000,000);
//! CCAG_BENCH_RUNS: timed runs per dashboard (default 10).
//! The database `ccag_bench_analytics_<records>` is kept between runs and
//! reused when it is complete; `--fresh` builds it again.
//!
//! The records: 500 users in 25 teams, one key each, over the 30 days
//! before the database was filled, spread evenly over every hour. A user
//! works with two models (one of Opus, Sonnet, or Haiku for a fifth of
//! requests) through their team's endpoint, one of two; one request in 200
//! is rate limited and one in 331 fails. That makes every hour hold about
//! 1,000 of the roll-up's (user, model, endpoint) rows: its worst case for
//! these users.

use std::time::{Duration, Instant};

use ccag_controlplane::analytics::dashboard::{self, Filter, Scope};
use ccag_controlplane::analytics::Grain;
use ccag_migrations::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

const TARGET: Duration = Duration::from_millis(300);
const CHUNK: u64 = 1_000_000;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(default)
}

async fn scalar(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db
        .query_one(Statement::from_string(db.get_database_backend(), sql.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .expect("a row");
    row.try_get_by_index::<i64>(0).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn fill(db: &DatabaseConnection, records: u64) {
    let started = Instant::now();
    for from in (1..=records).step_by(CHUNK as usize) {
        let to = (from + CHUNK - 1).min(records);
        let sql = format!(
            "INSERT INTO usage_records (request_id, dataplane_id, operation, key_id, user_id, team_id, model, \
             bedrock_model, stream, status, outcome, input_tokens, output_tokens, cache_write_tokens, \
             cache_read_tokens, cost_micro_usd, ttft_ms, duration_ms, started_at, received_at, \
             cache_write_1h_tokens, web_search_requests, unpriced, endpoint_id, attempts) \
             SELECT 'bench_' || g, 'dp-' || (g % 4), 'messages', 'key_' || u, 'usr_' || u, 'team_' || (u % 25), \
               m, 'us.anthropic.' || m, true, \
               CASE WHEN g % 200 = 0 THEN 429 WHEN g % 331 = 0 THEN 502 ELSE 200 END, \
               CASE WHEN g % 200 = 0 THEN 'rate_limited' WHEN g % 331 = 0 THEN 'error' ELSE 'ok' END, \
               2000 + g % 5000, 100 + g % 900, (g % 7) * 1000, 20000 + g % 30000, 10000 + g % 90000, \
               200 + g % 2000, 1000 + g % 30000, t, t, 0, 0, false, \
               CASE WHEN u % 2 = 0 THEN 'ep_east' ELSE 'ep_west' END, 1 \
             FROM (SELECT g, u, \
                     CASE WHEN g % 5 = 0 THEN 'claude-haiku-4-5' WHEN u % 3 = 0 THEN 'claude-opus-4-5' \
                          ELSE 'claude-sonnet-4-5' END AS m, \
                     date_trunc('hour', now()) - ((g * 7919) % (30 * 86400)) * interval '1 second' AS t \
                   FROM (SELECT g, (g * 2654435761) % 500 AS u FROM generate_series({from}::bigint, {to}::bigint) g) a) s"
        );
        db.execute_unprepared(&sql).await.unwrap_or_else(|e| panic!("filling: {e}"));
        eprintln!("  {to} records ({:.0} s)", started.elapsed().as_secs_f64());
    }
}

struct Case {
    name: &'static str,
    filter: Filter,
    grain: Grain,
    scope: Scope,
}

#[tokio::main]
async fn main() {
    let fresh = std::env::args().any(|a| a == "--fresh");
    let records = env_u64("CCAG_BENCH_RECORDS", 10_000_000);
    let runs = env_u64("CCAG_BENCH_RUNS", 10).max(1) as usize;
    let server = std::env::var("CCAG_BENCH_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let name = format!("ccag_bench_analytics_{records}");

    let admin = Database::connect(format!("{server}/postgres")).await.expect("connecting to PostgreSQL");
    if fresh {
        admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.expect("drop");
    }
    let exists = scalar(&admin, &format!("SELECT COUNT(*) FROM pg_database WHERE datname = '{name}'")).await > 0;
    if !exists {
        admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create");
    }
    let db = Database::connect(format!("{server}/{name}")).await.expect("connecting to the bench database");
    let rollups_applied = scalar(&db, "SELECT COUNT(*) FROM pg_tables WHERE tablename = 'usage_hourly'").await > 0;
    let have = if rollups_applied { scalar(&db, "SELECT COUNT(*) FROM usage_records").await as u64 } else { 0 };
    if have != records {
        // Start over: the schema before the roll-ups, the records, then
        // the roll-ups' migration, which sums them.
        drop(db);
        admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.expect("drop");
        admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create");
        let db = Database::connect(format!("{server}/{name}")).await.expect("connecting");
        let before = Migrator::migrations().len() as u32 - 1;
        Migrator::up(&db, Some(before)).await.expect("the schema before the roll-ups");
        eprintln!("filling {records} usage records");
        fill(&db, records).await;
        let t = Instant::now();
        Migrator::up(&db, None).await.expect("the roll-ups' migration");
        println!("roll-ups summed from {records} records by the migration in {:.1} s", t.elapsed().as_secs_f64());
        db.execute_unprepared("ANALYZE").await.expect("analyze");
    }
    let db = Database::connect(format!("{server}/{name}")).await.expect("connecting");
    let mut sizes = Vec::new();
    for t in ["usage_hourly", "usage_daily", "usage_hourly_teams", "usage_latency_hourly", "usage_latency_daily"] {
        sizes.push(format!("{t} {}", scalar(&db, &format!("SELECT COUNT(*) FROM {t}")).await));
    }
    let newest = scalar(&db, "SELECT MAX(period_start) FROM usage_hourly").await;
    println!("{records} records; roll-up rows: {}", sizes.join(", "));

    let until = newest + 3600;
    let month = Filter { since: until - 30 * 86_400, until, ..Default::default() };
    let cases = [
        Case {
            name: "organisation, 30 days, by day",
            filter: month.clone(),
            grain: Grain::Day,
            scope: Scope::Organisation,
        },
        Case {
            name: "organisation, 24 hours, by hour",
            filter: Filter { since: until - 86_400, until, ..Default::default() },
            grain: Grain::Hour,
            scope: Scope::Organisation,
        },
        Case {
            name: "one team, 30 days, by day",
            filter: Filter { team_id: Some("team_7".into()), ..month.clone() },
            grain: Grain::Day,
            scope: Scope::Organisation,
        },
        Case {
            name: "one model, 30 days, by day",
            filter: Filter { model: Some("claude-opus-4-5".into()), ..month.clone() },
            grain: Grain::Day,
            scope: Scope::Organisation,
        },
        Case {
            name: "a member's own usage, 30 days",
            filter: Filter { user_id: Some("usr_42".into()), ..month.clone() },
            grain: Grain::Day,
            scope: Scope::OwnUsage,
        },
    ];
    println!("\n| dashboard | p50 | max | requests counted |\n|---|---|---|---|");
    let mut verdict = None;
    for c in &cases {
        // One untimed run warms the caches, as a dashboard left open would.
        let d =
            dashboard::build(&db, &c.filter.clone().widened(c.grain), c.grain, 10, c.scope).await.expect("dashboard");
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            dashboard::build(&db, &c.filter.clone().widened(c.grain), c.grain, 10, c.scope).await.expect("dashboard");
            times.push(t.elapsed());
        }
        times.sort();
        let (p50, max) = (times[times.len() / 2], times[times.len() - 1]);
        let requests = d.total.map(|t| t.requests).unwrap_or(0);
        println!("| {} | {:.0} ms | {:.0} ms | {requests} |", c.name, p50.as_secs_f64() * 1e3, max.as_secs_f64() * 1e3);
        if verdict.is_none() {
            verdict = Some(p50);
        }
    }
    let p50 = verdict.expect("a first case");
    println!(
        "\nverdict: the organisation's 30-day dashboard at p50 {:.0} ms: {} (target < {} ms)",
        p50.as_secs_f64() * 1e3,
        if p50 < TARGET { "met" } else { "missed" },
        TARGET.as_millis()
    );
}
