//! The spend log: usage records priced on arrival, stored once per request
//! id, and summed for `ccag usage`.

use ccag_proto::config::v1::UsageRecord;
use chrono::{DateTime, TimeZone, Utc};
use std::collections::HashMap;

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter, Set};

use crate::store::entities::{api_keys, model_prices, usage_records};

/// US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    pub input: f64,
    pub output: f64,
    pub cache_write: f64,
    pub cache_read: f64,
}

/// The longest price prefix of the model name; names such as
/// `us.anthropic.claude-…` are matched from their `claude-` part.
pub fn rates_for(prices: &[model_prices::Model], model: &str) -> Option<Rates> {
    let find = |name: &str| {
        prices.iter().filter(|p| name.starts_with(p.model.as_str())).max_by_key(|p| p.model.len()).map(|p| Rates {
            input: p.input,
            output: p.output,
            cache_write: p.cache_write,
            cache_read: p.cache_read,
        })
    };
    find(model).or_else(|| model.find("claude-").and_then(|i| find(&model[i..])))
}

pub fn cost(r: &Rates, u: &UsageRecord) -> f64 {
    (u.input_tokens as f64 * r.input
        + u.output_tokens as f64 * r.output
        + u.cache_creation_input_tokens as f64 * r.cache_write
        + u.cache_read_input_tokens as f64 * r.cache_read)
        / 1_000_000.0
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
            let cost_usd = rates_for(&prices, price_name).map(|rates| cost(&rates, &r)).unwrap_or(0.0);
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
                cost_usd: Set(cost_usd),
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

    fn price(model: &str, input: f64) -> model_prices::Model {
        model_prices::Model {
            model: model.into(),
            input,
            output: 0.0,
            cache_write: 0.0,
            cache_read: 0.0,
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn longest_prefix_wins() {
        let p = vec![price("claude-opus-4", 15.0), price("claude-opus-4-5", 5.0)];
        assert_eq!(rates_for(&p, "claude-opus-4-5-20251101").unwrap().input, 5.0);
        assert_eq!(rates_for(&p, "claude-opus-4-20250514").unwrap().input, 15.0);
    }

    #[test]
    fn bedrock_ids_are_priced_by_their_claude_name() {
        let p = vec![price("claude-sonnet-4", 3.0)];
        assert_eq!(rates_for(&p, "us.anthropic.claude-sonnet-4-5-20250929-v1:0").unwrap().input, 3.0);
        assert!(rates_for(&p, "gpt").is_none());
    }

    #[test]
    fn cost_sums_every_token_kind_per_million() {
        let r = Rates { input: 3.0, output: 15.0, cache_write: 3.75, cache_read: 0.3 };
        let u = UsageRecord {
            input_tokens: 1_000_000,
            output_tokens: 100_000,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 1_000_000,
            ..Default::default()
        };
        assert!((cost(&r, &u) - (3.0 + 1.5 + 0.3)).abs() < 1e-9);
    }
}
