//! Adds newly stored usage records to the roll-ups, in the transaction
//! that stores them: a record counts in the roll-ups exactly when it is in
//! the spend log. Rows are summed here first and written in key order, so
//! two replicas storing batches at once take their row locks in the same
//! order.

use std::collections::BTreeMap;

use sea_orm::sea_query::{Alias, Expr, OnConflict, Query, SimpleExpr};
use sea_orm::{ConnectionTrait, DbErr};

use super::{bucket_of, kind, Grain, Kind, Metric, SUMS};

/// One stored record, as the roll-ups count it.
#[derive(Debug, Clone)]
pub struct Fact<'a> {
    pub started_at_secs: i64,
    pub user_id: &'a str,
    pub team_id: &'a str,
    pub key_id: &'a str,
    pub model: &'a str,
    pub endpoint_id: &'a str,
    pub status: i32,
    pub outcome: &'a str,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_write_tokens: i64,
    pub cache_read_tokens: i64,
    pub cost_micro_usd: i64,
    /// What its cache reads saved against the full input price.
    pub savings_micro_usd: i64,
    pub unpriced: bool,
    pub web_searches: i64,
    pub duration_ms: i64,
    pub ttft_ms: Option<i64>,
}

impl Fact<'_> {
    /// The sums it adds, in the order of `SUMS`.
    fn sums(&self) -> [i64; SUMS.len()] {
        let k = kind(self.outcome, self.status);
        [
            1,
            i64::from(k == Kind::Error),
            i64::from(k == Kind::Throttled),
            self.input_tokens,
            self.output_tokens,
            self.cache_write_tokens,
            self.cache_read_tokens,
            self.cost_micro_usd,
            self.savings_micro_usd,
            i64::from(self.unpriced),
            self.web_searches,
        ]
    }
}

type UsageKey<'a> = (i64, [&'a str; 5]);
type TeamKey<'a> = (i64, [&'a str; 3]);
type LatencyKey<'a> = (i64, &'a str, &'a str, Metric, i16);

/// Statements stay within every backend's bind-parameter limit.
const CHUNK: usize = 400;

pub async fn add<C: ConnectionTrait>(c: &C, facts: &[Fact<'_>]) -> Result<(), DbErr> {
    if facts.is_empty() {
        return Ok(());
    }
    for grain in [Grain::Hour, Grain::Day] {
        let mut usage: BTreeMap<UsageKey, [i64; SUMS.len()]> = BTreeMap::new();
        let mut latency: BTreeMap<LatencyKey, i64> = BTreeMap::new();
        for f in facts {
            let start = grain.start(f.started_at_secs);
            let row = usage.entry((start, [f.user_id, f.team_id, f.key_id, f.model, f.endpoint_id])).or_default();
            for (sum, add) in row.iter_mut().zip(f.sums()) {
                *sum = sum.saturating_add(add);
            }
            // Latency is that of answers: refusals return at once and would
            // flatter the figures.
            if kind(f.outcome, f.status) == Kind::Answered {
                let at = (start, f.model, f.endpoint_id);
                *latency.entry((at.0, at.1, at.2, Metric::Duration, bucket_of(f.duration_ms))).or_default() += 1;
                if let Some(t) = f.ttft_ms {
                    *latency.entry((at.0, at.1, at.2, Metric::Ttft, bucket_of(t))).or_default() += 1;
                }
            }
        }
        let rows: Vec<Vec<SimpleExpr>> = usage
            .into_iter()
            .map(|((start, dims), sums)| {
                let mut v: Vec<SimpleExpr> = vec![start.into()];
                v.extend(dims.iter().map(|d| (*d).into()));
                v.extend(sums.iter().map(|s| (*s).into()));
                v
            })
            .collect();
        let mut columns = vec!["period_start", "user_id", "team_id", "key_id", "model", "endpoint_id"];
        let keys = columns.len();
        columns.extend(SUMS);
        upsert(c, grain.usage_table(), &columns, keys, rows).await?;
        let rows = latency
            .into_iter()
            .map(|((start, model, endpoint, metric, bucket), n)| {
                vec![start.into(), model.into(), endpoint.into(), (metric as i16).into(), bucket.into(), n.into()]
            })
            .collect();
        let columns = ["period_start", "model", "endpoint_id", "metric", "bucket", "count"];
        upsert(c, grain.latency_table(), &columns, 5, rows).await?;
    }
    // Requests per hour by team, model and endpoint: the organisation's
    // heat map, without a row per user.
    let mut teams: BTreeMap<TeamKey, i64> = BTreeMap::new();
    for f in facts {
        *teams.entry((Grain::Hour.start(f.started_at_secs), [f.team_id, f.model, f.endpoint_id])).or_default() += 1;
    }
    let rows = teams
        .into_iter()
        .map(|((start, [team, model, endpoint]), n)| {
            vec![start.into(), team.into(), model.into(), endpoint.into(), n.into()]
        })
        .collect();
    upsert(c, super::TEAMS_TABLE, &["period_start", "team_id", "model", "endpoint_id", "requests"], 4, rows).await
}

/// Inserts the rows, or adds their sums to the rows already there: the
/// first `keys` columns are the key, the rest are added
/// (`table.col + excluded.col`).
async fn upsert<C: ConnectionTrait>(
    c: &C,
    table: &str,
    columns: &[&str],
    keys: usize,
    rows: Vec<Vec<SimpleExpr>>,
) -> Result<(), DbErr> {
    for chunk in rows.chunks(CHUNK) {
        let mut insert = Query::insert();
        insert.into_table(Alias::new(table)).columns(columns.iter().map(|c| Alias::new(*c)));
        for values in chunk {
            insert.values(values.iter().cloned()).map_err(|e| DbErr::Custom(e.to_string()))?;
        }
        let mut on = OnConflict::columns(columns[..keys].iter().map(|c| Alias::new(*c)));
        for col in &columns[keys..] {
            on.value(
                Alias::new(*col),
                Expr::col((Alias::new(table), Alias::new(*col)))
                    .add(Expr::col((Alias::new("excluded"), Alias::new(*col)))),
            );
        }
        insert.on_conflict(on.to_owned());
        c.execute(c.get_database_backend().build(&insert)).await?;
    }
    Ok(())
}
