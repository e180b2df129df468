//! The dashboards, read from the roll-ups. Each figure is one grouped
//! query over the period's rows of `usage_hourly` (or of
//! `usage_latency_hourly` for latency); the queries run concurrently.

use std::collections::{BTreeMap, HashMap};

use ccag_proto::admin::v1::{ActivePoint, Dashboard, HeatCell, Performance, UsageBucket, UsageGroup, UsageRow};
use chrono::{DateTime, SecondsFormat};
use sea_orm::sea_query::{Alias, Expr, Func, SimpleExpr};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, FromQueryResult, QueryFilter, QuerySelect, Select};

use super::{quantile, Metric, LATENCY_BOUNDS_MS};
use crate::store::entities::{usage_hourly, usage_latency_hourly};

use usage_hourly::Column as H;
use usage_latency_hourly::Column as L;

/// What a dashboard covers: whole hours, `since` ≤ hour < `until`, and the
/// ids (already resolved) it is narrowed to.
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Hour,
    Day,
}

impl Bucket {
    /// By hour up to three days, by day beyond.
    pub fn for_span(since: i64, until: i64) -> Bucket {
        if until - since <= 3 * 86_400 {
            Bucket::Hour
        } else {
            Bucket::Day
        }
    }

    fn expr(self) -> SimpleExpr {
        match self {
            Bucket::Hour => Expr::col(H::Hour).into(),
            // Hours are whole: a day starts at a multiple of 86,400 (UTC).
            Bucket::Day => Expr::cust("(hour - (hour % 86400))"),
        }
    }

    pub fn proto(self) -> UsageBucket {
        match self {
            Bucket::Hour => UsageBucket::Hour,
            Bucket::Day => UsageBucket::Day,
        }
    }
}

/// Who asks: members get no fleet-wide performance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Organisation,
    OwnUsage,
}

/// One grouped row: `b` the bucket (or another number the query groups
/// by), `g` the group's id, `n` a distinct count.
#[derive(Debug, Default, Clone, FromQueryResult)]
struct Agg {
    b: i64,
    g: String,
    n: i64,
    requests: i64,
    errors: i64,
    throttled: i64,
    input: i64,
    output: i64,
    cache_write: i64,
    cache_read: i64,
    cost: i64,
    savings: i64,
    unpriced: i64,
}

impl Agg {
    fn add(&mut self, o: &Agg) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.throttled += o.throttled;
        self.input += o.input;
        self.output += o.output;
        self.cache_write += o.cache_write;
        self.cache_read += o.cache_read;
        self.cost += o.cost;
        self.savings += o.savings;
        self.unpriced += o.unpriced;
    }

    fn row(&self, group: &str, name: &str, bucket: &str) -> UsageRow {
        let u = |v: i64| v.max(0) as u64;
        UsageRow {
            group: group.to_owned(),
            name: name.to_owned(),
            bucket: bucket.to_owned(),
            requests: u(self.requests),
            input_tokens: u(self.input),
            output_tokens: u(self.output),
            cache_creation_input_tokens: u(self.cache_write),
            cache_read_input_tokens: u(self.cache_read),
            cost_usd: crate::api::micro_to_usd(self.cost),
            cost_micro_usd: self.cost,
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

/// SUM() of a BIGINT is NUMERIC in PostgreSQL: cast it back.
fn sum(col: H) -> SimpleExpr {
    SimpleExpr::from(Func::coalesce([Expr::col(col).sum(), Expr::val(0).into()])).cast_as(Alias::new("BIGINT"))
}

fn zero() -> SimpleExpr {
    Expr::cust("CAST(0 AS BIGINT)")
}

fn none() -> SimpleExpr {
    Expr::cust("''")
}

fn filtered(f: &Filter) -> Select<usage_hourly::Entity> {
    let mut q = usage_hourly::Entity::find().select_only().filter(H::Hour.gte(f.since)).filter(H::Hour.lt(f.until));
    for (col, v) in [
        (H::UserId, &f.user_id),
        (H::TeamId, &f.team_id),
        (H::KeyId, &f.key_id),
        (H::Model, &f.model),
        (H::EndpointId, &f.endpoint_id),
    ] {
        if let Some(v) = v {
            q = q.filter(col.eq(v.as_str()));
        }
    }
    q
}

/// The sums of the filtered rows grouped by `b` and `g` (either may be a
/// constant), with `n` the distinct users when asked for.
async fn agg(
    db: &DatabaseConnection,
    f: &Filter,
    b: Option<SimpleExpr>,
    g: Option<H>,
    users: bool,
    only_users: Option<&[String]>,
) -> Result<Vec<Agg>, DbErr> {
    let mut q = filtered(f);
    q = q.column_as(b.clone().unwrap_or_else(zero), "b");
    q = match g {
        Some(col) => q.column_as(Expr::col(col), "g"),
        None => q.column_as(none(), "g"),
    };
    q = q.column_as(
        if users {
            // Records without a user (none today) are nobody.
            Expr::cust("COUNT(DISTINCT CASE WHEN user_id <> '' THEN user_id END)")
        } else {
            zero()
        },
        "n",
    );
    for (col, name) in [
        (H::Requests, "requests"),
        (H::Errors, "errors"),
        (H::Throttled, "throttled"),
        (H::InputTokens, "input"),
        (H::OutputTokens, "output"),
        (H::CacheWriteTokens, "cache_write"),
        (H::CacheReadTokens, "cache_read"),
        (H::CostMicroUsd, "cost"),
        (H::SavingsMicroUsd, "savings"),
        (H::Unpriced, "unpriced"),
    ] {
        q = q.column_as(sum(col), name);
    }
    if let Some(ids) = only_users {
        q = q.filter(H::UserId.is_in(ids.iter().cloned()));
    }
    if let Some(b) = b {
        q = q.group_by(b);
    }
    if let Some(col) = g {
        q = q.group_by(col);
    }
    q.into_model::<Agg>().all(db).await
}

async fn latency(db: &DatabaseConnection, f: &Filter, by: usage_latency_hourly::Column) -> Result<Vec<Lat>, DbErr> {
    let mut q = usage_latency_hourly::Entity::find()
        .select_only()
        .column_as(Expr::col(by), "g")
        .column(L::Metric)
        .column(L::Bucket)
        .column_as(
            SimpleExpr::from(Func::coalesce([Expr::col(L::Count).sum(), Expr::val(0).into()]))
                .cast_as(Alias::new("BIGINT")),
            "count",
        )
        .filter(L::Hour.gte(f.since))
        .filter(L::Hour.lt(f.until));
    if let Some(m) = &f.model {
        q = q.filter(L::Model.eq(m.as_str()));
    }
    if let Some(e) = &f.endpoint_id {
        q = q.filter(L::EndpointId.eq(e.as_str()));
    }
    q.group_by(by).group_by(L::Metric).group_by(L::Bucket).into_model::<Lat>().all(db).await
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
    v.sort_by(|a, b| b.cost.cmp(&a.cost).then(b.requests.cmp(&a.requests)).then(a.g.cmp(&b.g)));
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
            let all_input = (t.input + t.cache_write + t.cache_read).max(0);
            Performance {
                group: t.g.clone(),
                name: names.get(&t.g).cloned().unwrap_or_else(|| t.g.clone()),
                requests: t.requests.max(0) as u64,
                errors: t.errors.max(0) as u64,
                throttled: t.throttled.max(0) as u64,
                error_rate: if t.requests > 0 { t.errors as f64 / t.requests as f64 } else { 0.0 },
                cache_hit_rate: if all_input > 0 { t.cache_read as f64 / all_input as f64 } else { 0.0 },
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

pub async fn build(
    db: &DatabaseConnection,
    f: &Filter,
    bucket: Bucket,
    top: usize,
    scope: Scope,
) -> Result<Dashboard, DbErr> {
    let b = bucket.expr();
    // Weekday (0 = Monday: 1970-01-01 was a Thursday) × 24 + UTC hour.
    let heat = Expr::cust("((((hour / 86400) + 3) % 7) * 24 + ((hour / 3600) % 24))");
    let org = scope == Scope::Organisation;
    let (by_team, by_model, by_user, by_endpoint, activity, period, heatmap, lat_model, lat_endpoint) = tokio::try_join!(
        agg(db, f, Some(b.clone()), Some(H::TeamId), false, None),
        agg(db, f, Some(b.clone()), Some(H::Model), false, None),
        agg(db, f, None, Some(H::UserId), false, None),
        agg(db, f, None, Some(H::EndpointId), false, None),
        agg(db, f, Some(b.clone()), None, true, None),
        agg(db, f, None, None, true, None),
        agg(db, f, Some(heat), None, false, None),
        async {
            if org {
                latency(db, f, L::Model).await
            } else {
                Ok(Vec::new())
            }
        },
        async {
            if org {
                latency(db, f, L::EndpointId).await
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
        agg(db, f, Some(b), Some(H::UserId), false, Some(&top_user_ids)).await?
    };
    let teams = ranked(&by_team);
    let models = ranked(&by_model);
    let endpoints = ranked(&by_endpoint);
    let (user_names, team_names, endpoint_names) = tokio::try_join!(
        names_of(db, UsageGroup::User, users.iter().take(top).map(|a| a.g.clone())),
        names_of(db, UsageGroup::Team, teams.iter().map(|a| a.g.clone())),
        names_of(db, UsageGroup::Endpoint, endpoints.iter().map(|a| a.g.clone())),
    )?;
    let no_names = HashMap::new();
    let top_of = |v: &[Agg]| v.iter().take(top).map(|a| a.g.clone()).collect::<Vec<_>>();

    // The users of the series that are not among the top: total minus the top.
    let mut user_rows = user_series;
    let mut top_sums: BTreeMap<i64, Agg> = BTreeMap::new();
    for r in &user_rows {
        top_sums.entry(r.b).or_default().add(r);
    }
    for a in &activity {
        let t = top_sums.get(&a.b).cloned().unwrap_or_default();
        let mut rest = Agg { b: a.b, g: OTHER.into(), ..Default::default() };
        rest.add(a);
        for (x, y) in [
            (&mut rest.requests, t.requests),
            (&mut rest.errors, t.errors),
            (&mut rest.throttled, t.throttled),
            (&mut rest.input, t.input),
            (&mut rest.output, t.output),
            (&mut rest.cache_write, t.cache_write),
            (&mut rest.cache_read, t.cache_read),
            (&mut rest.cost, t.cost),
            (&mut rest.savings, t.savings),
            (&mut rest.unpriced, t.unpriced),
        ] {
            *x -= y;
        }
        if rest.requests > 0 {
            user_rows.push(rest);
        }
    }
    let user_top = top_of(&users);

    let total = period.first().cloned().unwrap_or_default();
    let row = |a: &Agg, names: &HashMap<String, String>| {
        a.row(&a.g, &names.get(&a.g).cloned().unwrap_or_else(|| a.g.clone()), "")
    };
    let mut by_bucket: Vec<&Agg> = activity.iter().collect();
    by_bucket.sort_by_key(|a| a.b);
    Ok(Dashboard {
        since: rfc3339(f.since),
        until: rfc3339(f.until),
        bucket: bucket.proto() as i32,
        total: Some(total.row("total", "total", "")),
        cache_savings_micro_usd: total.savings,
        errors: total.errors.max(0) as u64,
        throttled: total.throttled.max(0) as u64,
        series_by_team: series(&by_team, &top_of(&teams), &team_names),
        series_by_model: series(&by_model, &top_of(&models), &no_names),
        series_by_user: {
            let mut names = user_names.clone();
            names.insert(OTHER.into(), OTHER.into());
            series(&user_rows, &[user_top, vec![OTHER.to_owned()]].concat(), &names)
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
