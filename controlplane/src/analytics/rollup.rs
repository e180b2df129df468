//! Adds newly stored usage records to the hourly roll-ups, in the
//! transaction that stores them: a record counts in the roll-ups exactly
//! when it is in the spend log. Rows are summed here first and written in
//! key order, so two replicas storing batches at once take their row locks
//! in the same order.

use std::collections::BTreeMap;

use sea_orm::sea_query::{Alias, Expr, OnConflict, SimpleExpr};
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel};

use super::{bucket_of, kind, Kind, Metric};
use crate::store::entities::{usage_hourly, usage_latency_hourly};

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

type HourKey<'a> = (i64, &'a str, &'a str, &'a str, &'a str, &'a str);
type LatencyKey<'a> = (i64, &'a str, &'a str, Metric, i16);

/// Statements stay within every backend's bind-parameter limit.
const CHUNK: usize = 400;

pub async fn add<C: ConnectionTrait>(c: &C, facts: &[Fact<'_>]) -> Result<(), DbErr> {
    if facts.is_empty() {
        return Ok(());
    }
    let mut hours: BTreeMap<HourKey, usage_hourly::Model> = BTreeMap::new();
    let mut latency: BTreeMap<LatencyKey, i64> = BTreeMap::new();
    for f in facts {
        let hour = f.started_at_secs.div_euclid(3600) * 3600;
        let row = hours.entry((hour, f.user_id, f.team_id, f.key_id, f.model, f.endpoint_id)).or_insert_with(|| {
            usage_hourly::Model {
                hour,
                user_id: f.user_id.to_owned(),
                team_id: f.team_id.to_owned(),
                key_id: f.key_id.to_owned(),
                model: f.model.to_owned(),
                endpoint_id: f.endpoint_id.to_owned(),
                requests: 0,
                errors: 0,
                throttled: 0,
                input_tokens: 0,
                output_tokens: 0,
                cache_write_tokens: 0,
                cache_read_tokens: 0,
                cost_micro_usd: 0,
                savings_micro_usd: 0,
                unpriced: 0,
                web_searches: 0,
            }
        });
        let k = kind(f.outcome, f.status);
        row.requests += 1;
        row.errors += i64::from(k == Kind::Error);
        row.throttled += i64::from(k == Kind::Throttled);
        row.input_tokens = row.input_tokens.saturating_add(f.input_tokens);
        row.output_tokens = row.output_tokens.saturating_add(f.output_tokens);
        row.cache_write_tokens = row.cache_write_tokens.saturating_add(f.cache_write_tokens);
        row.cache_read_tokens = row.cache_read_tokens.saturating_add(f.cache_read_tokens);
        row.cost_micro_usd = row.cost_micro_usd.saturating_add(f.cost_micro_usd);
        row.savings_micro_usd = row.savings_micro_usd.saturating_add(f.savings_micro_usd);
        row.unpriced += i64::from(f.unpriced);
        row.web_searches = row.web_searches.saturating_add(f.web_searches);
        // Latency is that of answers: refusals return at once and would
        // flatter the figures.
        if k == Kind::Answered {
            *latency.entry((hour, f.model, f.endpoint_id, Metric::Duration, bucket_of(f.duration_ms))).or_default() +=
                1;
            if let Some(t) = f.ttft_ms {
                *latency.entry((hour, f.model, f.endpoint_id, Metric::Ttft, bucket_of(t))).or_default() += 1;
            }
        }
    }

    use usage_hourly::Column as H;
    let sums = [
        H::Requests,
        H::Errors,
        H::Throttled,
        H::InputTokens,
        H::OutputTokens,
        H::CacheWriteTokens,
        H::CacheReadTokens,
        H::CostMicroUsd,
        H::SavingsMicroUsd,
        H::Unpriced,
        H::WebSearches,
    ];
    let rows: Vec<usage_hourly::ActiveModel> = hours.into_values().map(|m| m.into_active_model().reset_all()).collect();
    for chunk in rows.chunks(CHUNK) {
        let mut on = OnConflict::columns([H::Hour, H::UserId, H::TeamId, H::KeyId, H::Model, H::EndpointId]);
        for col in sums {
            on.value(col, added(usage_hourly::Entity, col));
        }
        usage_hourly::Entity::insert_many(chunk.to_vec()).on_conflict(on.to_owned()).exec(c).await?;
    }

    use usage_latency_hourly::Column as L;
    let rows: Vec<usage_latency_hourly::ActiveModel> = latency
        .into_iter()
        .map(|((hour, model, endpoint, metric, bucket), count)| {
            usage_latency_hourly::Model {
                hour,
                model: model.to_owned(),
                endpoint_id: endpoint.to_owned(),
                metric: metric as i16,
                bucket,
                count,
            }
            .into_active_model()
            .reset_all()
        })
        .collect();
    for chunk in rows.chunks(CHUNK) {
        let on = OnConflict::columns([L::Hour, L::Model, L::EndpointId, L::Metric, L::Bucket])
            .value(L::Count, added(usage_latency_hourly::Entity, L::Count))
            .to_owned();
        usage_latency_hourly::Entity::insert_many(chunk.to_vec()).on_conflict(on).exec(c).await?;
    }
    Ok(())
}

/// `table.col + excluded.col`: what an upsert adds to the row it finds.
fn added<E: EntityTrait, C: sea_orm::sea_query::IntoIden + Copy + 'static>(table: E, col: C) -> SimpleExpr {
    Expr::col((table, col)).add(Expr::col((Alias::new("excluded"), col)))
}
