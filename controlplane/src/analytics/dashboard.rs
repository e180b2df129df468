//! The dashboards, read from the roll-ups. Each figure is one grouped
//! query over the period's rows of the roll-up of the dashboard's grain
//! (hourly or daily; latency from its histograms; the organisation's heat
//! map from the teams' hourly table); the queries run concurrently.

use std::collections::{BTreeMap, HashMap};

use ccag_proto::admin::v1::{ActivePoint, Dashboard, HeatCell, Performance, UsageBucket, UsageGroup, UsageRow};
use chrono::{DateTime, SecondsFormat};
use sea_orm::sea_query::{Alias, Expr, Func, Query, SelectStatement, SimpleExpr};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, FromQueryResult};

use super::{quantile, Grain, Metric, LATENCY_BOUNDS_MS, SUMS, TEAMS_TABLE};

/// What a dashboard covers: whole periods of its grain, `since` ≤ start <
/// `until`, and the ids (already resolved) it is narrowed to.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub since: i64,
    pub until: i64,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub key_id: Option<String>,
    pub model: Option<String>,
    pub endpoint_id: Option<String>,
}

impl Filter {
    /// Widened to whole periods of `grain`.
    pub fn widened(mut self, grain: Grain) -> Filter {
        self.since = grain.start(self.since);
        self.until = grain.start(self.until + grain.seconds() - 1);
        self
    }
}

/// By hour up to three days, by day beyond.
pub fn grain_for_span(since: i64, until: i64) -> Grain {
    if until - since <= 3 * 86_400 {
        Grain::Hour
    } else {
        Grain::Day
    }
}

fn bucket_proto(g: Grain) -> UsageBucket {
    match g {
        Grain::Hour => UsageBucket::Hour,
        Grain::Day => UsageBucket::Day,
    }
}

/// Who asks: members get no fleet-wide performance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Organisation,
    OwnUsage,
}

/// One grouped row: `b` the period's start (or another number the query
/// groups by), `g` the group's id, `n` a distinct count.
#[derive(Debug, Default, Clone, FromQueryResult)]
struct Agg {
    b: i64,
    g: String,
    n: i64,
    requests: i64,
    errors: i64,
    throttled: i64,
    input_tokens: i64,
    output_tokens: i64,
    cache_write_tokens: i64,
    cache_read_tokens: i64,
    cost_micro_usd: i64,
    savings_micro_usd: i64,
    unpriced: i64,
    web_searches: i64,
}

impl Agg {
    fn add(&mut self, o: &Agg) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.throttled += o.throttled;
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.cache_write_tokens += o.cache_write_tokens;
        self.cache_read_tokens += o.cache_read_tokens;
        self.cost_micro_usd += o.cost_micro_usd;
        self.savings_micro_usd += o.savings_micro_usd;
        self.unpriced += o.unpriced;
        self.web_searches += o.web_searches;
    }

    fn sub(&mut self, o: &Agg) {
        self.requests -= o.requests;
        self.errors -= o.errors;
        self.throttled -= o.throttled;
        self.input_tokens -= o.input_tokens;
        self.output_tokens -= o.output_tokens;
        self.cache_write_tokens -= o.cache_write_tokens;
        self.cache_read_tokens -= o.cache_read_tokens;
        self.cost_micro_usd -= o.cost_micro_usd;
        self.savings_micro_usd -= o.savings_micro_usd;
        self.unpriced -= o.unpriced;
        self.web_searches -= o.web_searches;
    }

    fn row(&self, group: &str, name: &str, bucket: &str) -> UsageRow {
        let u = |v: i64| v.max(0) as u64;
        UsageRow {
            group: group.to_owned(),
            name: name.to_owned(),
            bucket: bucket.to_owned(),
            requests: u(self.requests),
            input_tokens: u(self.input_tokens),
            output_tokens: u(self.output_tokens),
            cache_creation_input_tokens: u(self.cache_write_tokens),
            cache_read_input_tokens: u(self.cache_read_tokens),
            cost_usd: crate::api::micro_to_usd(self.cost_micro_usd),
            cost_micro_usd: self.cost_micro_usd,
            unpriced_requests: u(self.unpriced),
        }
    }
}

#[derive(Debug, FromQueryResult)]
struct Lat {
    g: String,
    metric: i16,
    bucket: i16,
    count: i64,
}

fn col(name: &str) -> Expr {
    Expr::col(Alias::new(name))
}

/// SUM() of a BIGINT is NUMERIC in PostgreSQL: cast it back.
fn sum(name: &str) -> SimpleExpr {
    SimpleExpr::from(Func::coalesce([col(name).sum(), Expr::val(0).into()])).cast_as(Alias::new("BIGINT"))
}

fn zero() -> SimpleExpr {
    Expr::cust("CAST(0 AS BIGINT)")
}

/// The rows of `table` in the period that the filter's ids select (those
/// of them the table has).
fn filtered(table: &str, f: &Filter, dims: &[&str]) -> SelectStatement {
    let mut q = Query::select();
    q.from(Alias::new(table)).and_where(col("period_start").gte(f.since)).and_where(col("period_start").lt(f.until));
    for (name, v) in [
        ("user_id", &f.user_id),
        ("team_id", &f.team_id),
        ("key_id", &f.key_id),
        ("model", &f.model),
        ("endpoint_id", &f.endpoint_id),
    ] {
        if let (Some(v), true) = (v, dims.contains(&name)) {
            q.and_where(col(name).eq(v.as_str()));
        }
    }
    q
}

const ALL_DIMENSIONS: [&str; 5] = ["user_id", "team_id", "key_id", "model", "endpoint_id"];

/// What one grouped query asks for.
struct Ask<'a> {
    /// Grouped by this number (the period's start, or a weekday-hour), or not.
    b: Option<SimpleExpr>,
    /// Grouped by this column, or not.
    g: Option<&'a str>,
    /// Count the distinct users.
    users: bool,
    /// Only these users.
    only_users: Option<&'a [String]>,
}

async fn agg(db: &DatabaseConnection, grain: Grain, f: &Filter, ask: Ask<'_>) -> Result<Vec<Agg>, DbErr> {
    let mut q = filtered(grain.usage_table(), f, &ALL_DIMENSIONS);
    q.expr_as(ask.b.clone().unwrap_or_else(zero), Alias::new("b"));
    q.expr_as(ask.g.map_or_else(|| Expr::cust("''"), |g| col(g).into()), Alias::new("g"));
    q.expr_as(
        if ask.users {
            // Records without a user (none today) are nobody.
            Expr::cust("COUNT(DISTINCT CASE WHEN user_id <> '' THEN user_id END)")
        } else {
            zero()
        },
        Alias::new("n"),
    );
    for s in SUMS {
        q.expr_as(sum(s), Alias::new(s));
    }
    if let Some(ids) = ask.only_users {
        q.and_where(col("user_id").is_in(ids.iter().cloned()));
    }
    if let Some(b) = ask.b {
        q.add_group_by([b]);
    }
    if let Some(g) = ask.g {
        q.add_group_by([col(g).into()]);
    }
    Agg::find_by_statement(db.get_database_backend().build(&q)).all(db).await
}

/// Requests by weekday (0 = Monday: 1970-01-01 was a Thursday) × 24 + UTC
/// hour. From the teams' hourly table unless the filter names a user or a
/// key, which only the full one has.
async fn heat(db: &DatabaseConnection, f: &Filter) -> Result<Vec<Agg>, DbErr> {
    let cell = Expr::cust("((((period_start / 86400) + 3) % 7) * 24 + ((period_start / 3600) % 24))");
    let (table, dims): (&str, &[&str]) = if f.user_id.is_some() || f.key_id.is_some() {
        (Grain::Hour.usage_table(), &ALL_DIMENSIONS)
    } else {
        (TEAMS_TABLE, &["team_id", "model", "endpoint_id"])
    };
    let mut q = filtered(table, f, dims);
    q.expr_as(cell.clone(), Alias::new("b")).expr_as(sum("requests"), Alias::new("requests")).add_group_by([cell]);
    #[derive(FromQueryResult)]
    struct Cell {
        b: i64,
        requests: i64,
    }
    let cells = Cell::find_by_statement(db.get_database_backend().build(&q)).all(db).await?;
    Ok(cells.into_iter().map(|c| Agg { b: c.b, requests: c.requests, ..Default::default() }).collect())
}

async fn latency(db: &DatabaseConnection, grain: Grain, f: &Filter, by: &str) -> Result<Vec<Lat>, DbErr> {
    let mut q = filtered(grain.latency_table(), f, &["model", "endpoint_id"]);
    q.expr_as(col(by), Alias::new("g"))
        .column(Alias::new("metric"))
        .column(Alias::new("bucket"))
        .expr_as(sum("count"), Alias::new("count"))
        .add_group_by([col(by).into(), col("metric").into(), col("bucket").into()]);
    Lat::find_by_statement(db.get_database_backend().build(&q)).all(db).await
}

pub fn rfc3339(secs: i64) -> String {
    DateTime::from_timestamp(secs, 0).map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)).unwrap_or_default()
}

/// The name of what is grouped as "everyone else" in a series.
pub const OTHER: &str = "other";

/// A series per group for the `top` groups by cost; the rest summed as
/// one group, `other`.
fn series(rows: &[Agg], top: &[String], names: &HashMap<String, String>) -> Vec<UsageRow> {
    let mut by: BTreeMap<(i64, String), Agg> = BTreeMap::new();
    for r in rows {
        let g = if top.contains(&r.g) { r.g.clone() } else { OTHER.to_owned() };
        by.entry((r.b, g)).or_default().add(r);
    }
    by.into_iter()
        .map(|((b, g), a)| {
            let name = names.get(&g).cloned().unwrap_or_else(|| g.clone());
            a.row(&g, &name, &rfc3339(b))
        })
        .collect()
}

/// Totals per group over the period, highest cost first.
fn ranked(rows: &[Agg]) -> Vec<Agg> {
    let mut by: HashMap<&str, Agg> = HashMap::new();
    for r in rows {
        let e = by.entry(r.g.as_str()).or_insert_with(|| Agg { g: r.g.clone(), ..Default::default() });
        e.add(r);
    }
    let mut v: Vec<Agg> = by.into_values().collect();
    v.sort_by(|a, b| b.cost_micro_usd.cmp(&a.cost_micro_usd).then(b.requests.cmp(&a.requests)).then(a.g.cmp(&b.g)));
    v
}

fn performance(totals: &[Agg], lat: &[Lat], names: &HashMap<String, String>) -> Vec<Performance> {
    let width = LATENCY_BOUNDS_MS.len() + 1;
    let mut hist: HashMap<(&str, i16), Vec<u64>> = HashMap::new();
    for l in lat {
        let h = hist.entry((l.g.as_str(), l.metric)).or_insert_with(|| vec![0; width]);
        if let Some(c) = h.get_mut(l.bucket.max(0) as usize) {
            *c += l.count.max(0) as u64;
        }
    }
    let empty = vec![0u64; width];
    totals
        .iter()
        .map(|t| {
            let d = hist.get(&(t.g.as_str(), Metric::Duration as i16)).unwrap_or(&empty);
            let f = hist.get(&(t.g.as_str(), Metric::Ttft as i16)).unwrap_or(&empty);
            let all_input = (t.input_tokens + t.cache_write_tokens + t.cache_read_tokens).max(0);
            Performance {
                group: t.g.clone(),
                name: names.get(&t.g).cloned().unwrap_or_else(|| t.g.clone()),
                requests: t.requests.max(0) as u64,
                errors: t.errors.max(0) as u64,
                throttled: t.throttled.max(0) as u64,
                error_rate: if t.requests > 0 { t.errors as f64 / t.requests as f64 } else { 0.0 },
                cache_hit_rate: if all_input > 0 { t.cache_read_tokens as f64 / all_input as f64 } else { 0.0 },
                latency_p50_ms: quantile(d, 0.5),
                latency_p95_ms: quantile(d, 0.95),
                latency_p99_ms: quantile(d, 0.99),
                ttft_p50_ms: quantile(f, 0.5),
                ttft_p95_ms: quantile(f, 0.95),
                ttft_p99_ms: quantile(f, 0.99),
            }
        })
        .collect()
}

/// Names of users, teams and endpoints for people.
async fn names_of(
    db: &DatabaseConnection,
    group: UsageGroup,
    ids: impl Iterator<Item = String>,
) -> Result<HashMap<String, String>, DbErr> {
    crate::api::usage_names(db, group as i32, ids).await.map_err(|e| DbErr::Custom(e.to_string()))
}

/// The dashboard of the filter's periods (already whole periods of
/// `grain`: see `Filter::widened`).
pub async fn build(
    db: &DatabaseConnection,
    f: &Filter,
    grain: Grain,
    top: usize,
    scope: Scope,
) -> Result<Dashboard, DbErr> {
    let b = || Some(col("period_start").into());
    let org = scope == Scope::Organisation;
    let ask = |b: Option<SimpleExpr>, g: Option<&'static str>, users: bool| Ask { b, g, users, only_users: None };
    let (by_team, by_model, by_user, by_endpoint, activity, period, heatmap, lat_model, lat_endpoint) = tokio::try_join!(
        agg(db, grain, f, ask(b(), Some("team_id"), false)),
        agg(db, grain, f, ask(b(), Some("model"), false)),
        agg(db, grain, f, ask(None, Some("user_id"), false)),
        agg(db, grain, f, ask(None, Some("endpoint_id"), false)),
        agg(db, grain, f, ask(b(), None, true)),
        agg(db, grain, f, ask(None, None, true)),
        heat(db, f),
        async {
            if org {
                latency(db, grain, f, "model").await
            } else {
                Ok(Vec::new())
            }
        },
        async {
            if org {
                latency(db, grain, f, "endpoint_id").await
            } else {
                Ok(Vec::new())
            }
        },
    )?;

    let users = ranked(&by_user);
    let top_user_ids: Vec<String> = users.iter().take(top).map(|a| a.g.clone()).collect();
    let user_series = if top_user_ids.is_empty() {
        Vec::new()
    } else {
        let only = Ask { b: b(), g: Some("user_id"), users: false, only_users: Some(&top_user_ids) };
        agg(db, grain, f, only).await?
    };
    let teams = ranked(&by_team);
    let models = ranked(&by_model);
    let endpoints = ranked(&by_endpoint);
    let (user_names, team_names, endpoint_names) = tokio::try_join!(
        names_of(db, UsageGroup::User, top_user_ids.iter().cloned()),
        names_of(db, UsageGroup::Team, teams.iter().map(|a| a.g.clone())),
        names_of(db, UsageGroup::Endpoint, endpoints.iter().map(|a| a.g.clone())),
    )?;
    let no_names = HashMap::new();
    let top_of = |v: &[Agg]| v.iter().take(top).map(|a| a.g.clone()).collect::<Vec<_>>();

    // The users of the series that are not among the top: all minus the top.
    let mut user_rows = user_series;
    let mut top_sums: BTreeMap<i64, Agg> = BTreeMap::new();
    for r in &user_rows {
        top_sums.entry(r.b).or_default().add(r);
    }
    for a in &activity {
        let mut rest = Agg { b: a.b, g: OTHER.into(), ..Default::default() };
        rest.add(a);
        if let Some(t) = top_sums.get(&a.b) {
            rest.sub(t);
        }
        if rest.requests > 0 {
            user_rows.push(rest);
        }
    }

    let total = period.first().cloned().unwrap_or_default();
    let row = |a: &Agg, names: &HashMap<String, String>| {
        a.row(&a.g, &names.get(&a.g).cloned().unwrap_or_else(|| a.g.clone()), "")
    };
    let mut by_bucket: Vec<&Agg> = activity.iter().collect();
    by_bucket.sort_by_key(|a| a.b);
    Ok(Dashboard {
        since: rfc3339(f.since),
        until: rfc3339(f.until),
        bucket: bucket_proto(grain) as i32,
        total: Some(total.row("total", "total", "")),
        cache_savings_micro_usd: total.savings_micro_usd,
        errors: total.errors.max(0) as u64,
        throttled: total.throttled.max(0) as u64,
        series_by_team: series(&by_team, &top_of(&teams), &team_names),
        series_by_model: series(&by_model, &top_of(&models), &no_names),
        series_by_user: {
            let mut names = user_names.clone();
            names.insert(OTHER.into(), OTHER.into());
            series(&user_rows, &[top_user_ids.clone(), vec![OTHER.to_owned()]].concat(), &names)
        },
        top_users: users.iter().take(top).map(|a| row(a, &user_names)).collect(),
        top_teams: teams.iter().take(top).map(|a| row(a, &team_names)).collect(),
        top_models: models.iter().take(top).map(|a| row(a, &no_names)).collect(),
        by_endpoint: endpoints.iter().map(|a| row(a, &endpoint_names)).collect(),
        active_users: total.n.max(0) as u64,
        activity: by_bucket
            .iter()
            .map(|a| ActivePoint { bucket: rfc3339(a.b), users: a.n.max(0) as u64, requests: a.requests.max(0) as u64 })
            .collect(),
        heatmap: heatmap
            .iter()
            .filter(|a| a.requests > 0)
            .map(|a| HeatCell {
                weekday: (a.b.rem_euclid(168) / 24) as u32,
                hour: (a.b.rem_euclid(24)) as u32,
                requests: a.requests as u64,
            })
            .collect(),
        performance_by_model: if org { performance(&models, &lat_model, &no_names) } else { Vec::new() },
        performance_by_endpoint: if org { performance(&endpoints, &lat_endpoint, &endpoint_names) } else { Vec::new() },
    })
}
