//! The spend log: usage records priced on arrival in integer micro-USD
//! (frozen then, so a price edit never rewrites history; the pricing itself
//! is `ccag_proto::pricing`, tested there), stored once per request id, and
//! added to the budgets' spend counters in the same transaction, with the
//! endpoints' counters that came with them (`health`).

use ccag_proto::config::v1::{EndpointReport, SpendCounter, UsageRecord};
use ccag_proto::pricing::Quantities;
use chrono::{DateTime, TimeZone, Utc};
use std::collections::HashMap;

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter, Set, TransactionTrait, TryInsertResult,
};

use crate::analytics::rollup;
use crate::budget::spend::{self, Charge};
use crate::budget::Book;
use crate::notify::producers;
use crate::store::entities::{api_keys, usage_records};

/// What a report changed.
#[derive(Debug, Default)]
pub struct Stored {
    /// Records not stored before.
    pub accepted: u32,
    /// The spend counters those records moved, as they are now.
    pub spend: Vec<SpendCounter>,
}

pub fn quantities(r: &UsageRecord) -> Quantities {
    let mut q = Quantities::from_usage(
        r.input_tokens,
        r.output_tokens,
        r.cache_creation_input_tokens,
        r.cache_creation_1h_input_tokens,
        r.cache_read_input_tokens,
    );
    q.web_searches = r.web_search_requests;
    q
}

/// The outcome a data plane reports for a request its rate limits refused.
const RATE_LIMITED: &str = "rate_limited";

async fn rate_limit_events(
    c: &sea_orm::DatabaseTransaction,
    refusals: HashMap<(String, i64), u64>,
) -> Result<(), DbErr> {
    if refusals.is_empty() {
        return Ok(());
    }
    let keys = api_keys::Entity::find()
        .filter(api_keys::Column::Id.is_in(refusals.keys().map(|(k, _)| k.clone())))
        .all(c)
        .await?;
    let owners = crate::store::names::user_emails(c, keys.iter().map(|k| k.user_id.clone())).await?;
    for ((key_id, minute), n) in refusals {
        let Some(k) = keys.iter().find(|k| k.id == key_id) else { continue };
        let email = owners.get(&k.user_id).map(String::as_str).unwrap_or_default();
        crate::notify::emit(c, &producers::rate_limited(k, email, minute, n)).await?;
    }
    Ok(())
}

/// Inserts the records not yet stored and moves the spend counters by
/// their cost, in one transaction: a record counts once, whoever reports
/// it and however often. The endpoints' counters are added in the same
/// transaction (they have no id: a report sent twice counts twice).
pub async fn store(
    db: &DatabaseConnection,
    book: &Book,
    dataplane_id: &str,
    records: Vec<UsageRecord>,
    endpoints: &[EndpointReport],
) -> Result<Stored, DbErr> {
    if records.is_empty() && endpoints.is_empty() {
        return Ok(Stored::default());
    }
    let txn = db.begin().await?;
    let now = Utc::now();
    super::health::record(&txn, dataplane_id, endpoints, now).await?;
    if records.is_empty() {
        txn.commit().await?;
        return Ok(Stored::default());
    }
    let prices = crate::pricing::load(&txn).await?;
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    // The newest use of each key in this batch, for its `last_used_at`.
    let mut last_used: HashMap<String, u64> = HashMap::new();
    for r in records.iter().filter(|r| !r.key_id.is_empty()) {
        let t = last_used.entry(r.key_id.clone()).or_default();
        *t = (*t).max(r.started_at_ms);
    }
    // What each record's cache reads saved, for the roll-ups.
    let mut savings: HashMap<String, i64> = HashMap::new();
    let rows: Vec<usage_records::ActiveModel> = records
        .into_iter()
        .filter(|r| !r.request_id.is_empty())
        .map(|r| {
            let q = quantities(&r);
            let priced = prices.cost(&r.bedrock_model, &r.model, &q);
            let uncached = Quantities { input: q.input.saturating_add(q.cache_read), cache_read: 0, ..q };
            let saved = prices.cost(&r.bedrock_model, &r.model, &uncached).micro_usd - priced.micro_usd;
            if saved > 0 {
                savings.insert(r.request_id.clone(), saved);
            }
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
                cost_micro_usd: Set(priced.micro_usd),
                ttft_ms: Set((r.ttft_ms >= 0).then_some(r.ttft_ms)),
                duration_ms: Set(clamp(r.duration_ms)),
                started_at: Set(started),
                received_at: Set(now),
                cache_write_1h_tokens: Set(clamp(r.cache_creation_1h_input_tokens.min(r.cache_creation_input_tokens))),
                web_search_requests: Set(clamp(r.web_search_requests)),
                // Only what was charged at the default counts as unpriced.
                unpriced: Set(priced.unpriced && priced.micro_usd > 0),
                endpoint_id: Set(r.endpoint_id),
                attempts: Set(i32::try_from(r.attempts).unwrap_or(i32::MAX)),
            }
        })
        .collect();
    let mut stored = Stored::default();
    let mut fresh: Vec<&usage_records::ActiveModel> = Vec::new();
    let mut charges_of: Vec<(String, String, String, i64, i64)> = Vec::new();
    // Requests refused for rate limits, per (key, minute): one event each.
    let mut refusals: HashMap<(String, i64), u64> = HashMap::new();
    // Bounded statements keep within every backend's bind-parameter limit.
    for chunk in rows.chunks(500) {
        let inserted = usage_records::Entity::insert_many(chunk.to_vec())
            .on_conflict(OnConflict::column(usage_records::Column::RequestId).do_nothing().to_owned())
            .do_nothing()
            .exec_with_returning_keys(&txn)
            .await?;
        let TryInsertResult::Inserted(ids) = inserted else { continue };
        stored.accepted += ids.len() as u32;
        let new: std::collections::HashSet<String> = ids.into_iter().collect();
        for row in chunk {
            let id = row.request_id.clone().unwrap();
            if new.contains(&id) && row.outcome.as_ref() == RATE_LIMITED && !row.key_id.as_ref().is_empty() {
                let minute = row.started_at.as_ref().timestamp().div_euclid(60);
                *refusals.entry((row.key_id.clone().unwrap(), minute)).or_default() += 1;
            }
            if new.contains(&id) {
                fresh.push(row);
                charges_of.push((
                    id,
                    row.user_id.clone().unwrap(),
                    row.team_id.clone().unwrap(),
                    row.started_at.clone().unwrap().timestamp(),
                    row.cost_micro_usd.clone().unwrap(),
                ));
            }
        }
    }
    let charges: Vec<Charge> = charges_of
        .iter()
        .map(|(_, u, t, at, cost)| Charge { user_id: u, team_id: t, started_at: *at, micro_usd: *cost })
        .collect();
    stored.spend = spend::apply(&txn, book, &charges).await?;
    let facts: Vec<rollup::Fact> = fresh.iter().map(|r| fact(r, savings.get(r.request_id.as_ref()).copied())).collect();
    rollup::add(&txn, &facts).await?;
    for (key_id, ms) in last_used {
        let Some(at) = Utc.timestamp_millis_opt(i64::try_from(ms).unwrap_or(0)).single() else { continue };
        // Only ever moves forward, whatever order batches arrive in.
        api_keys::Entity::update_many()
            .col_expr(api_keys::Column::LastUsedAt, Expr::value(at))
            .filter(api_keys::Column::Id.eq(key_id))
            .filter(
                Condition::any().add(api_keys::Column::LastUsedAt.is_null()).add(api_keys::Column::LastUsedAt.lt(at)),
            )
            .exec(&txn)
            .await?;
    }
    rate_limit_events(&txn, refusals).await?;
    txn.commit().await?;
    Ok(stored)
}

/// A stored record as the roll-ups count it.
fn fact(r: &usage_records::ActiveModel, savings: Option<i64>) -> rollup::Fact<'_> {
    rollup::Fact {
        started_at_secs: r.started_at.as_ref().timestamp(),
        user_id: r.user_id.as_ref(),
        team_id: r.team_id.as_ref(),
        key_id: r.key_id.as_ref(),
        model: r.model.as_ref(),
        endpoint_id: r.endpoint_id.as_ref(),
        status: *r.status.as_ref(),
        outcome: r.outcome.as_ref(),
        input_tokens: *r.input_tokens.as_ref(),
        output_tokens: *r.output_tokens.as_ref(),
        cache_write_tokens: *r.cache_write_tokens.as_ref(),
        cache_read_tokens: *r.cache_read_tokens.as_ref(),
        cost_micro_usd: *r.cost_micro_usd.as_ref(),
        savings_micro_usd: savings.unwrap_or(0),
        unpriced: *r.unpriced.as_ref(),
        web_searches: *r.web_search_requests.as_ref(),
        duration_ms: *r.duration_ms.as_ref(),
        ttft_ms: *r.ttft_ms.as_ref(),
    }
}
