//! AnalyticsService: dashboards read from the hourly roll-ups that usage
//! reports keep, and the CSV export of the records themselves.

use ccag_proto::admin::v1::analytics_service_client::AnalyticsServiceClient;
use tonic::Code;

use super::{admin, dp, expect_code, member, now_ms, Client, DATAPLANE_TOKEN};
use crate::common::{on_both_backends, Backend, Env, Server};

on_both_backends!(
    async: the_dashboard_sums_what_was_reported,
    a_record_reported_twice_counts_once_on_the_dashboard,
    members_see_only_their_own_usage_and_no_fleet_performance,
    the_export_is_csv_with_formulas_made_text,
    dashboard_periods_and_rankings_are_bounded,
);

fn analytics(c: &Client) -> AnalyticsServiceClient<crate::common::Svc> {
    AnalyticsServiceClient::new(c.svc())
}

const SONNET: &str = "claude-sonnet-4-5";
const SONNET_BEDROCK: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
const HAIKU: &str = "claude-haiku-4-5";
const HAIKU_BEDROCK: &str = "anthropic.claude-haiku-4-5-20251001-v1:0";

fn record(id: &str, key: &admin::ApiKey, model: &str, bedrock: &str, at_ms: u64) -> dp::UsageRecord {
    dp::UsageRecord {
        request_id: id.into(),
        operation: "messages".into(),
        key_id: key.id.clone(),
        user_id: key.user_id.clone(),
        model: model.into(),
        bedrock_model: bedrock.into(),
        status: 200,
        outcome: "ok".into(),
        input_tokens: 1000,
        output_tokens: 500,
        ttft_ms: 450,
        duration_ms: 900,
        started_at_ms: at_ms,
        ..Default::default()
    }
}

async fn report(admin: &Client, records: Vec<dp::UsageRecord>) -> dp::ReportUsageResponse {
    admin
        .with_token(DATAPLANE_TOKEN)
        .dataplane()
        .report_usage(dp::ReportUsageRequest { dataplane_id: "dp-test".into(), records, endpoints: vec![] })
        .await
        .expect("ReportUsage")
        .into_inner()
}

async fn dashboard(c: &Client, filter: admin::AnalyticsFilter) -> admin::Dashboard {
    analytics(c)
        .get_dashboard(admin::GetDashboardRequest { filter: Some(filter), ..Default::default() })
        .await
        .expect("GetDashboard")
        .into_inner()
}

/// An hour two days ago, so that every record falls inside the default
/// 30-day period whatever the clock says.
fn two_days_ago_hour_ms() -> u64 {
    (now_ms() - 2 * 86_400_000) / 3_600_000 * 3_600_000
}

async fn the_dashboard_sums_what_was_reported(env: Env) {
    let srv = env.start_with(&[("CCAG_DATAPLANE_TOKEN", DATAPLANE_TOKEN)]);
    let admin = Client::admin(&srv).await;
    let (mia, _) = member(&srv, &admin, "mia@example.com").await;
    let admin_key = admin.create_key("admin-laptop").await.api_key.expect("api_key");
    let mia_key = mia.create_key("mia-laptop").await.api_key.expect("api_key");
    let t = two_days_ago_hour_ms();
    let mut cached = record("cached", &admin_key, SONNET, SONNET_BEDROCK, t + 60_000);
    cached.cache_read_input_tokens = 10_000;
    let mut throttled = record("throttled", &mia_key, HAIKU, HAIKU_BEDROCK, t + 120_000);
    (throttled.status, throttled.outcome, throttled.input_tokens, throttled.output_tokens) =
        (429, "rate_limited".into(), 0, 0);
    let mut failed = record("failed", &mia_key, HAIKU, HAIKU_BEDROCK, t + 3_600_000 + 5);
    (failed.status, failed.outcome, failed.output_tokens) = (502, "error".into(), 0);
    report(
        &admin,
        vec![
            cached,
            record("plain", &admin_key, SONNET, SONNET_BEDROCK, t + 90_000),
            record("mia", &mia_key, HAIKU, HAIKU_BEDROCK, t + 100_000),
            throttled,
            failed,
        ],
    )
    .await;

    let d = dashboard(&admin, admin::AnalyticsFilter::default()).await;
    let total = d.total.clone().expect("total");
    // The same figures as the spend log's own sums.
    let log = admin
        .usage()
        .get_usage(admin::GetUsageRequest::default())
        .await
        .expect("GetUsage")
        .into_inner()
        .total
        .expect("total");
    assert_eq!(
        (total.requests, total.input_tokens, total.output_tokens, total.cache_read_input_tokens, total.cost_micro_usd),
        (log.requests, log.input_tokens, log.output_tokens, log.cache_read_input_tokens, log.cost_micro_usd),
        "{d:?}"
    );
    assert_eq!(total.requests, 5, "{d:?}");
    assert_eq!((d.errors, d.throttled, d.active_users), (1, 1, 2), "{d:?}");
    assert_eq!(d.bucket, admin::UsageBucket::Day as i32, "30 days are shown by day: {d:?}");
    // Sonnet 4.5 on a `us.` profile: input $3.30, cache reads $0.33 per
    // million tokens; 10,000 tokens read from the cache saved 29,700 µUSD.
    assert_eq!(d.cache_savings_micro_usd, 29_700, "{d:?}");
    // Highest spender first; the series sums to the total.
    assert_eq!(d.top_users.first().map(|r| r.group.as_str()), Some(admin_key.user_id.as_str()), "{d:?}");
    assert_eq!(d.top_users.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["admin", "mia@example.com"]);
    let series: i64 = d.series_by_model.iter().map(|r| r.cost_micro_usd).sum();
    assert_eq!(series, total.cost_micro_usd, "{d:?}");
    assert_eq!(d.top_models.iter().map(|r| r.group.as_str()).collect::<Vec<_>>(), [SONNET, HAIKU], "{d:?}");
    // Requests by weekday and UTC hour: two hours of the same day.
    let heat: u64 = d.heatmap.iter().map(|c| c.requests).sum();
    assert_eq!((heat, d.heatmap.len()), (5, 2), "{d:?}");
    let secs = (t / 1000) as i64;
    let (weekday, hour) = (((secs / 86_400) + 3) % 7, (secs / 3600) % 24);
    let cell = d.heatmap.iter().find(|c| c.weekday as i64 == weekday && c.hour as i64 == hour).expect("the cell");
    assert_eq!(cell.requests, 4, "{d:?}");
    // Performance counts answers only: 900 ms lies in the 800–1000 ms bucket.
    let haiku = d.performance_by_model.iter().find(|p| p.group == HAIKU).expect("haiku's performance");
    assert_eq!((haiku.requests, haiku.errors, haiku.throttled), (3, 1, 1), "{haiku:?}");
    assert!((800..=1000).contains(&haiku.latency_p50_ms), "{haiku:?}");
    assert!((400..=500).contains(&haiku.ttft_p50_ms), "{haiku:?}");
    let sonnet = d.performance_by_model.iter().find(|p| p.group == SONNET).expect("sonnet's performance");
    assert!((sonnet.cache_hit_rate - 10_000.0 / 12_000.0).abs() < 1e-9, "{sonnet:?}");

    // Filters narrow every figure.
    let only_haiku = dashboard(&admin, admin::AnalyticsFilter { model: HAIKU.into(), ..Default::default() }).await;
    assert_eq!(only_haiku.total.expect("total").requests, 3);
    let only_admin = dashboard(&admin, admin::AnalyticsFilter { user: "admin".into(), ..Default::default() }).await;
    assert_eq!(only_admin.total.expect("total").requests, 2);
    assert_eq!(only_admin.active_users, 1);
    // A user's heat map comes from the full hourly roll-up, the
    // organisation's from the teams' one: the same cells either way.
    assert_eq!(only_admin.heatmap.iter().map(|c| c.requests).sum::<u64>(), 2, "{:?}", only_admin.heatmap);
    let hourly = analytics(&admin)
        .get_dashboard(admin::GetDashboardRequest {
            filter: Some(admin::AnalyticsFilter::default()),
            bucket: admin::UsageBucket::Hour as i32,
            top: 0,
        })
        .await
        .expect("by hour")
        .into_inner();
    let buckets: std::collections::BTreeSet<&str> = hourly.activity.iter().map(|a| a.bucket.as_str()).collect();
    assert_eq!(buckets.len(), 2, "{hourly:?}");
}

async fn a_record_reported_twice_counts_once_on_the_dashboard(env: Env) {
    let srv = env.start_with(&[("CCAG_DATAPLANE_TOKEN", DATAPLANE_TOKEN)]);
    let admin = Client::admin(&srv).await;
    let key = admin.create_key("twice").await.api_key.expect("api_key");
    let r = record("once", &key, SONNET, SONNET_BEDROCK, two_days_ago_hour_ms());
    report(&admin, vec![r.clone()]).await;
    let again = report(&admin, vec![r]).await;
    assert_eq!(again.duplicates, 1);
    let d = dashboard(&admin, admin::AnalyticsFilter::default()).await;
    assert_eq!(d.total.expect("total").requests, 1, "{:?}", d.heatmap);
    assert_eq!(d.performance_by_model.iter().map(|p| p.requests).sum::<u64>(), 1);
}

async fn members_see_only_their_own_usage_and_no_fleet_performance(env: Env) {
    let srv = env.start_with(&[("CCAG_DATAPLANE_TOKEN", DATAPLANE_TOKEN)]);
    let admin = Client::admin(&srv).await;
    let (mia, mia_id) = member(&srv, &admin, "mia@example.com").await;
    let admin_key = admin.create_key("admin-laptop").await.api_key.expect("api_key");
    let mia_key = mia.create_key("mia-laptop").await.api_key.expect("api_key");
    let t = two_days_ago_hour_ms();
    report(
        &admin,
        vec![
            record("a", &admin_key, SONNET, SONNET_BEDROCK, t),
            record("b", &admin_key, SONNET, SONNET_BEDROCK, t),
            record("m", &mia_key, HAIKU, HAIKU_BEDROCK, t),
        ],
    )
    .await;
    // Asking for the admin's usage does not widen the view.
    let d = dashboard(&mia, admin::AnalyticsFilter { user: "admin".into(), ..Default::default() }).await;
    assert_eq!(d.total.as_ref().expect("total").requests, 1, "{:?}", d.top_users);
    assert_eq!(d.top_users.iter().map(|r| r.group.as_str()).collect::<Vec<_>>(), [mia_id.as_str()]);
    assert!(d.performance_by_model.is_empty() && d.performance_by_endpoint.is_empty(), "{d:?}");
    let csv =
        analytics(&mia).export_usage(admin::ExportUsageRequest::default()).await.expect("ExportUsage").into_inner();
    assert_eq!(csv.rows, 1, "{}", csv.csv);
    assert!(!csv.csv.contains(&admin_key.id), "{}", csv.csv);
    // Another user's key is refused, not silently emptied.
    let theirs = admin::AnalyticsFilter { key: admin_key.id.clone(), ..Default::default() };
    let r =
        analytics(&mia).get_dashboard(admin::GetDashboardRequest { filter: Some(theirs), ..Default::default() }).await;
    expect_code(r, Code::PermissionDenied);
}

async fn the_export_is_csv_with_formulas_made_text(env: Env) {
    let srv = env.start_with(&[("CCAG_DATAPLANE_TOKEN", DATAPLANE_TOKEN)]);
    let admin = Client::admin(&srv).await;
    let key = admin.create_key("=HYPERLINK(\"https://evil.example\",\"x\")").await.api_key.expect("api_key");
    let t = two_days_ago_hour_ms();
    report(
        &admin,
        vec![record("older", &key, SONNET, SONNET_BEDROCK, t), record("newer", &key, HAIKU, HAIKU_BEDROCK, t + 1000)],
    )
    .await;
    let all =
        analytics(&admin).export_usage(admin::ExportUsageRequest::default()).await.expect("ExportUsage").into_inner();
    assert_eq!((all.rows, all.truncated), (2, false), "{}", all.csv);
    let mut lines = all.csv.lines();
    let header = lines.next().expect("a header");
    assert!(header.starts_with("request_id,started_at,user_id,user,"), "{header}");
    let newest = lines.next().expect("a row");
    assert!(newest.starts_with("newer,"), "newest first: {}", all.csv);
    // The key's name is text, quoted and escaped, never a formula.
    assert!(newest.contains(r#""'=HYPERLINK(""https://evil.example"",""x"")""#), "{newest}");
    // Haiku 4.5: $1 and $5 per million tokens, in exact dollars.
    assert!(newest.contains(",0.003500,"), "{newest}");
    let one = analytics(&admin)
        .export_usage(admin::ExportUsageRequest { limit: 1, ..Default::default() })
        .await
        .expect("ExportUsage limit 1")
        .into_inner();
    assert_eq!((one.rows, one.truncated), (1, true), "{}", one.csv);
}

async fn dashboard_periods_and_rankings_are_bounded(env: Env) {
    let srv = env.start();
    let admin = Client::admin(&srv).await;
    let a = analytics(&admin);
    let period = |since: &str, until: &str| admin::GetDashboardRequest {
        filter: Some(admin::AnalyticsFilter { since: since.into(), until: until.into(), ..Default::default() }),
        ..Default::default()
    };
    for (since, until) in [
        ("yesterday", ""),
        ("2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z"),
        ("2024-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
    ] {
        let s = expect_code(a.clone().get_dashboard(period(since, until)).await, Code::InvalidArgument);
        assert!(s.message().starts_with("since") || s.message().starts_with("until"), "{s:?}");
    }
    let mut req = period("", "");
    req.top = 101;
    expect_code(a.clone().get_dashboard(req).await, Code::InvalidArgument);
    let mut req = period("2026-01-01T00:00:00Z", "2026-03-01T00:00:00Z");
    req.bucket = admin::UsageBucket::Hour as i32;
    expect_code(a.clone().get_dashboard(req).await, Code::InvalidArgument);
    let r = a.clone().export_usage(admin::ExportUsageRequest { limit: 100_001, ..Default::default() }).await;
    expect_code(r, Code::InvalidArgument);
    // An empty period is an empty dashboard, not an error.
    let d = a.clone().get_dashboard(period("", "")).await.expect("empty").into_inner();
    assert_eq!(d.total.as_ref().expect("total").requests, 0);
    assert!(d.top_users.is_empty() && d.heatmap.is_empty() && d.activity.is_empty(), "{d:?}");
}

/// Records stored before the roll-ups existed are summed into them once,
/// by the migration that creates them (replayed here on PostgreSQL, whose
/// tables the test can reach with psql).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_from_before_the_rollups_are_summed_into_them() {
    if std::env::var_os("CCAG_TEST_SKIP_POSTGRES").is_some() {
        eprintln!("skipped: CCAG_TEST_SKIP_POSTGRES is set");
        return;
    }
    let env = Env::new(Backend::Postgres);
    let srv = env.start_with(&[("CCAG_DATAPLANE_TOKEN", DATAPLANE_TOKEN)]);
    let admin = Client::admin(&srv).await;
    let key = admin.create_key("old").await.api_key.expect("api_key");
    let t = two_days_ago_hour_ms();
    report(&admin, vec![record("x", &key, SONNET, SONNET_BEDROCK, t), record("y", &key, HAIKU, HAIKU_BEDROCK, t)])
        .await;
    let before = dashboard(&admin, admin::AnalyticsFilter::default()).await;
    let hourly = |c: &Client| {
        let mut a = analytics(c);
        async move {
            a.get_dashboard(admin::GetDashboardRequest {
                filter: Some(admin::AnalyticsFilter::default()),
                bucket: admin::UsageBucket::Hour as i32,
                top: 0,
            })
            .await
            .expect("by hour")
            .into_inner()
        }
    };
    let before_hourly = hourly(&admin).await;
    assert_eq!(before.total.as_ref().map(|t| t.requests), Some(2));
    drop(srv);
    let db = env.database_url.as_deref().and_then(|u| u.rsplit('/').next()).expect("database");
    let out = std::process::Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-q", "-c"])
        .arg(
            "DELETE FROM usage_hourly; DELETE FROM usage_daily; DELETE FROM usage_hourly_teams; \
             DELETE FROM usage_latency_hourly; DELETE FROM usage_latency_daily; \
             DELETE FROM seaql_migrations WHERE version = 'm20261209_000012_usage_rollups'",
        )
        .output()
        .expect("psql");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let srv: Server = env.start_with(&[("CCAG_DATAPLANE_TOKEN", DATAPLANE_TOKEN)]);
    let admin = Client::admin(&srv).await;
    let after = dashboard(&admin, admin::AnalyticsFilter::default()).await;
    assert_eq!(after.total, before.total, "{after:?}");
    assert_eq!(hourly(&admin).await.activity, before_hourly.activity);
    assert_eq!(after.heatmap, before.heatmap);
    let p = |d: &admin::Dashboard| {
        d.performance_by_model.iter().map(|p| (p.group.clone(), p.latency_p50_ms)).collect::<Vec<_>>()
    };
    assert_eq!(p(&after), p(&before));
}
