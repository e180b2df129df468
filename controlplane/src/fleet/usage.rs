//! The spend log: usage records priced on arrival in integer micro-USD
//! (frozen then, so a price edit never rewrites history), stored once per
//! request id, and summed for `ccag usage`.

use ccag_proto::config::v1::UsageRecord;
use chrono::{DateTime, TimeZone, Utc};
use std::collections::HashMap;

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter, Set};

use crate::store::entities::{api_keys, model_prices, usage_records};

/// Micro-USD per million tokens (so micro-USD per token, in millionths).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rates {
    pub input: i64,
    pub output: i64,
    pub cache_write: i64,
    pub cache_read: i64,
}

/// The longest price prefix of the model name; names such as
/// `us.anthropic.claude-…` are matched from their `claude-` part.
pub fn rates_for(prices: &[model_prices::Model], model: &str) -> Option<Rates> {
    let find = |name: &str| {
        prices.iter().filter(|p| name.starts_with(p.model.as_str())).max_by_key(|p| p.model.len()).map(|p| Rates {
            input: p.input_micro,
            output: p.output_micro,
            cache_write: p.cache_write_micro,
            cache_read: p.cache_read_micro,
        })
    };
    find(model).or_else(|| model.find("claude-").and_then(|i| find(&model[i..])))
}

/// Micro-USD, exact to the micro-dollar (rounded half up once, on the sum).
pub fn cost(r: &Rates, u: &UsageRecord) -> i64 {
    let part = |tokens: u64, rate: i64| u128::from(tokens) * u128::from(rate.max(0) as u64);
    let scaled = part(u.input_tokens, r.input)
        + part(u.output_tokens, r.output)
        + part(u.cache_creation_input_tokens, r.cache_write)
        + part(u.cache_read_input_tokens, r.cache_read);
    i64::try_from((scaled + 500_000) / 1_000_000).unwrap_or(i64::MAX)
}

/// Inserts the records not yet stored; returns how many were new.
pub async fn store(db: &DatabaseConnection, dataplane_id: &str, records: Vec<UsageRecord>) -> Result<u32, DbErr> {
    if records.is_empty() {
        return Ok(0);
    }
    let prices = model_prices::Entity::find().all(db).await?;
    let now = Utc::now();
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    // The newest use of each key in this batch, for its `last_used_at`.
    let mut last_used: HashMap<String, u64> = HashMap::new();
    for r in records.iter().filter(|r| !r.key_id.is_empty()) {
        let t = last_used.entry(r.key_id.clone()).or_default();
        *t = (*t).max(r.started_at_ms);
    }
    let rows: Vec<usage_records::ActiveModel> = records
        .into_iter()
        .filter(|r| !r.request_id.is_empty())
        .map(|r| {
            let price_name = if r.model.is_empty() { &r.bedrock_model } else { &r.model };
            let cost_micro_usd = rates_for(&prices, price_name).map(|rates| cost(&rates, &r)).unwrap_or(0);
            let started: DateTime<Utc> =
                Utc.timestamp_millis_opt(i64::try_from(r.started_at_ms).unwrap_or(0)).single().unwrap_or(now);
            usage_records::ActiveModel {
                request_id: Set(r.request_id),
                dataplane_id: Set(dataplane_id.to_owned()),
                operation: Set(r.operation),
                key_id: Set(r.key_id),
                user_id: Set(r.user_id),
                team_id: Set(r.team_id),
                model: Set(r.model),
                bedrock_model: Set(r.bedrock_model),
                stream: Set(r.stream),
                status: Set(r.status as i32),
                outcome: Set(r.outcome),
                input_tokens: Set(clamp(r.input_tokens)),
                output_tokens: Set(clamp(r.output_tokens)),
                cache_write_tokens: Set(clamp(r.cache_creation_input_tokens)),
                cache_read_tokens: Set(clamp(r.cache_read_input_tokens)),
                cost_micro_usd: Set(cost_micro_usd),
                ttft_ms: Set((r.ttft_ms >= 0).then_some(r.ttft_ms)),
                duration_ms: Set(clamp(r.duration_ms)),
                started_at: Set(started),
                received_at: Set(now),
            }
        })
        .collect();
    let mut accepted = 0u64;
    // Bounded statements keep within every backend's bind-parameter limit.
    for chunk in rows.chunks(500) {
        accepted += usage_records::Entity::insert_many(chunk.to_vec())
            .on_conflict(OnConflict::column(usage_records::Column::RequestId).do_nothing().to_owned())
            .exec_without_returning(db)
            .await?;
    }
    for (key_id, ms) in last_used {
        let Some(at) = Utc.timestamp_millis_opt(i64::try_from(ms).unwrap_or(0)).single() else { continue };
        // Only ever moves forward, whatever order batches arrive in.
        api_keys::Entity::update_many()
            .col_expr(api_keys::Column::LastUsedAt, Expr::value(at))
            .filter(api_keys::Column::Id.eq(key_id))
            .filter(
                Condition::any().add(api_keys::Column::LastUsedAt.is_null()).add(api_keys::Column::LastUsedAt.lt(at)),
            )
            .exec(db)
            .await?;
    }
    Ok(accepted as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(model: &str, input_usd: i64) -> model_prices::Model {
        model_prices::Model {
            model: model.into(),
            input_micro: input_usd * 1_000_000,
            output_micro: 0,
            cache_write_micro: 0,
            cache_read_micro: 0,
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn longest_prefix_wins() {
        let p = vec![price("claude-opus-4", 15), price("claude-opus-4-5", 5)];
        assert_eq!(rates_for(&p, "claude-opus-4-5-20251101").unwrap().input, 5_000_000);
        assert_eq!(rates_for(&p, "claude-opus-4-20250514").unwrap().input, 15_000_000);
    }

    #[test]
    fn bedrock_ids_are_priced_by_their_claude_name() {
        let p = vec![price("claude-sonnet-4", 3)];
        assert_eq!(rates_for(&p, "us.anthropic.claude-sonnet-4-5-20250929-v1:0").unwrap().input, 3_000_000);
        assert!(rates_for(&p, "gpt").is_none());
    }

    #[test]
    fn cost_sums_every_token_kind_per_million() {
        let r = Rates { input: 3_000_000, output: 15_000_000, cache_write: 3_750_000, cache_read: 300_000 };
        let u = UsageRecord {
            input_tokens: 1_000_000,
            output_tokens: 100_000,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 1_000_000,
            ..Default::default()
        };
        assert_eq!(cost(&r, &u), 3_000_000 + 1_500_000 + 300_000);
    }

    #[test]
    fn cost_is_exact_and_rounded_once() {
        // $0.08 per million cache-read tokens: 7 tokens are 0.56 micro-USD.
        let r = Rates { input: 0, output: 0, cache_write: 0, cache_read: 80_000 };
        let u = |n| UsageRecord { cache_read_input_tokens: n, ..Default::default() };
        assert_eq!(cost(&r, &u(7)), 1);
        assert_eq!(cost(&r, &u(6)), 0);
        assert_eq!(cost(&r, &u(1_000_000)), 80_000);
        // No overflow at the extremes.
        let huge = Rates { input: i64::MAX, output: 0, cache_write: 0, cache_read: 0 };
        assert!(cost(&huge, &UsageRecord { input_tokens: u64::MAX, ..Default::default() }) > 0);
    }
}
