//! The notification tables: events written by `emit` inside the caller's
//! transaction, fanned out into one delivery per matching destination,
//! claimed by one sender at a time (`FOR UPDATE SKIP LOCKED` on PostgreSQL,
//! and a claim that lapses if its holder dies), and settled with
//! exponential backoff and jitter until delivered or past the retry window.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, LockBehavior, LockType, OnConflict};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait, TryInsertResult,
};

use super::event::{Event, EventType, Filter};
use crate::store::entities::{
    notification_deliveries as deliveries, notification_destinations as destinations, notification_events as events,
};
use crate::store::{Backend, DeliveryState};

/// Writes `e` to the outbox in the caller's transaction; false when an
/// event with its dedupe key exists already.
pub async fn emit<C: ConnectionTrait>(c: &C, e: &Event) -> Result<bool, DbErr> {
    let id = crate::store::ids::new_id("evt");
    let row = events::ActiveModel {
        id: Set(id.clone()),
        r#type: Set(e.kind.as_str().to_owned()),
        dedupe_key: Set(e.dedupe_key.clone()),
        payload: Set(e.payload(&id).to_string()),
        occurred_at: Set(e.occurred_at),
        fanned_out: Set(false),
    };
    let r = events::Entity::insert(row)
        .on_conflict(OnConflict::column(events::Column::DedupeKey).do_nothing().to_owned())
        .do_nothing()
        .exec_without_returning(c)
        .await?;
    Ok(matches!(r, TryInsertResult::Inserted(n) if n > 0))
}

/// How long deliveries are retried, and how fast.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// From the delivery's creation; then it is dead.
    pub window: Duration,
    /// The first retry waits about this long; each failure doubles it.
    pub base: Duration,
    pub max: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry { window: Duration::from_secs(24 * 3600), base: Duration::from_secs(5), max: Duration::from_secs(3600) }
    }
}

impl Retry {
    /// The wait after the `failures`-th failure in a row: `base · 2^(n-1)`,
    /// capped, then jittered into its upper half so that retries spread.
    pub fn backoff(&self, failures: u32) -> Duration {
        let exp = self.base.saturating_mul(1u32 << failures.saturating_sub(1).min(20)).min(self.max);
        let half = exp / 2;
        half + Duration::from_millis(fastrand::u64(0..=half.as_millis() as u64))
    }
}

fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(1))
}

fn lock<S: QuerySelect>(q: S, backend: Backend) -> S {
    match backend {
        Backend::Postgres => q.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked),
        // One writer at a time already; SQLite has no row locks.
        Backend::Sqlite => q,
    }
}

/// Whether `dest` takes `event`: its filter, and never a report about itself.
fn takes(dest: &destinations::Model, filter: &Filter, t: EventType, payload: &serde_json::Value) -> bool {
    if !filter.matches(t) {
        return false;
    }
    let about_itself = matches!(t, EventType::DestinationFailing | EventType::DestinationRecovered)
        && payload["subject"]["id"].as_str() == Some(dest.id.as_str());
    !about_itself
}

/// One delivery per (event not yet fanned out, enabled destination whose
/// filter takes it). Returns the deliveries created.
pub async fn fan_out(db: &DatabaseConnection, backend: Backend) -> Result<usize, DbErr> {
    let txn = db.begin().await?;
    let pending = lock(
        events::Entity::find()
            .filter(events::Column::FannedOut.eq(false))
            .order_by_asc(events::Column::OccurredAt)
            .limit(500),
        backend,
    )
    .all(&txn)
    .await?;
    if pending.is_empty() {
        txn.rollback().await?;
        return Ok(0);
    }
    let dests: Vec<(destinations::Model, Filter)> = destinations::Entity::find()
        .filter(destinations::Column::Enabled.eq(true))
        .all(&txn)
        .await?
        .into_iter()
        .map(|d| {
            let f = Filter::parse(&d.events).unwrap_or_default();
            (d, f)
        })
        .collect();
    let now = Utc::now();
    let mut rows = Vec::new();
    for ev in &pending {
        let Some(t) = EventType::parse(&ev.r#type) else { continue };
        let payload: serde_json::Value = serde_json::from_str(&ev.payload).unwrap_or_default();
        for (d, _) in dests.iter().filter(|(d, f)| takes(d, f, t, &payload)) {
            rows.push(deliveries::ActiveModel {
                id: Set(crate::store::ids::new_id("dlv")),
                event_id: Set(ev.id.clone()),
                destination_id: Set(d.id.clone()),
                state: Set(DeliveryState::Pending.as_str().into()),
                attempts: Set(0),
                next_attempt_at: Set(now),
                claimed_by: Set(String::new()),
                claimed_until: Set(None),
                last_status: Set(0),
                last_error: Set(String::new()),
                created_at: Set(now),
                updated_at: Set(now),
                delivered_at: Set(None),
            });
        }
    }
    let made = rows.len();
    for chunk in rows.chunks(200) {
        deliveries::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([deliveries::Column::EventId, deliveries::Column::DestinationId])
                    .do_nothing()
                    .to_owned(),
            )
            .do_nothing()
            .exec_without_returning(&txn)
            .await?;
    }
    events::Entity::update_many()
        .col_expr(events::Column::FannedOut, Expr::value(true))
        .filter(events::Column::Id.is_in(pending.iter().map(|e| e.id.clone())))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(made)
}

fn unclaimed(now: DateTime<Utc>) -> Condition {
    Condition::any().add(deliveries::Column::ClaimedUntil.is_null()).add(deliveries::Column::ClaimedUntil.lt(now))
}

/// Enabled destinations not backing off that have a delivery due.
pub async fn ready_destinations(db: &DatabaseConnection) -> Result<Vec<destinations::Model>, DbErr> {
    let now = Utc::now();
    let due: Vec<String> = deliveries::Entity::find()
        .select_only()
        .column(deliveries::Column::DestinationId)
        .distinct()
        .filter(deliveries::Column::State.eq(DeliveryState::Pending.as_str()))
        .filter(deliveries::Column::NextAttemptAt.lte(now))
        .filter(unclaimed(now))
        .into_tuple()
        .all(db)
        .await?;
    if due.is_empty() {
        return Ok(Vec::new());
    }
    destinations::Entity::find()
        .filter(destinations::Column::Id.is_in(due))
        .filter(destinations::Column::Enabled.eq(true))
        .filter(
            Condition::any()
                .add(destinations::Column::BackoffUntil.is_null())
                .add(destinations::Column::BackoffUntil.lte(now)),
        )
        .all(db)
        .await
}

/// A claimed delivery and its event.
pub struct Claimed {
    pub delivery: deliveries::Model,
    pub event: events::Model,
}

/// Takes up to `n` due deliveries of `destination` for `holder`, oldest
/// first, for `hold`; deliveries another sender holds are skipped.
pub async fn claim(
    db: &DatabaseConnection,
    backend: Backend,
    destination: &str,
    holder: &str,
    n: u64,
    hold: Duration,
) -> Result<Vec<Claimed>, DbErr> {
    let now = Utc::now();
    let txn = db.begin().await?;
    let due = lock(
        deliveries::Entity::find()
            .filter(deliveries::Column::DestinationId.eq(destination))
            .filter(deliveries::Column::State.eq(DeliveryState::Pending.as_str()))
            .filter(deliveries::Column::NextAttemptAt.lte(now))
            .filter(unclaimed(now))
            .order_by_asc(deliveries::Column::NextAttemptAt)
            .order_by_asc(deliveries::Column::CreatedAt)
            .limit(n),
        backend,
    )
    .all(&txn)
    .await?;
    if due.is_empty() {
        txn.rollback().await?;
        return Ok(Vec::new());
    }
    let ids: Vec<String> = due.iter().map(|d| d.id.clone()).collect();
    let until = after(now, hold);
    deliveries::Entity::update_many()
        .col_expr(deliveries::Column::ClaimedBy, Expr::value(holder))
        .col_expr(deliveries::Column::ClaimedUntil, Expr::value(until))
        .filter(deliveries::Column::Id.is_in(ids.clone()))
        .filter(unclaimed(now))
        .exec(&txn)
        .await?;
    // Only what this update took: without row locks (or should a lock be
    // skipped) a row another sender took in between is not ours.
    let due = deliveries::Entity::find()
        .filter(deliveries::Column::Id.is_in(ids))
        .filter(deliveries::Column::ClaimedBy.eq(holder))
        .filter(deliveries::Column::ClaimedUntil.eq(until))
        .order_by_asc(deliveries::Column::NextAttemptAt)
        .order_by_asc(deliveries::Column::CreatedAt)
        .all(&txn)
        .await?;
    let mut evs: HashMap<String, events::Model> = events::Entity::find()
        .filter(events::Column::Id.is_in(due.iter().map(|d| d.event_id.clone())))
        .all(&txn)
        .await?
        .into_iter()
        .map(|e| (e.id.clone(), e))
        .collect();
    txn.commit().await?;
    Ok(due
        .into_iter()
        .filter_map(|d| {
            let event = evs.remove(&d.event_id)?;
            Some(Claimed { delivery: d, event })
        })
        .collect())
}

/// Gives back claims not used (a batch cut short by a failure).
pub async fn release(db: &DatabaseConnection, ids: &[String], holder: &str) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    deliveries::Entity::update_many()
        .col_expr(deliveries::Column::ClaimedBy, Expr::value(""))
        .col_expr(deliveries::Column::ClaimedUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .filter(deliveries::Column::Id.is_in(ids.iter().cloned()))
        .filter(deliveries::Column::ClaimedBy.eq(holder))
        .exec(db)
        .await?;
    Ok(())
}

/// Settles a delivery `holder` sent: delivered, or failed and retried later
/// (dead past the window). The destination's health moves with it; a
/// destination reported failing that delivers again is reported recovered.
/// Returns the delivery's new state; `None` when it was no longer
/// `holder`'s to settle (its claim lapsed and another took it).
pub async fn settle(
    db: &DatabaseConnection,
    d: &deliveries::Model,
    holder: &str,
    outcome: Result<i32, (i32, String)>,
    retry: &Retry,
) -> Result<Option<DeliveryState>, DbErr> {
    let now = Utc::now();
    let txn = db.begin().await?;
    let mine = deliveries::Entity::update_many()
        .filter(deliveries::Column::Id.eq(d.id.clone()))
        .filter(deliveries::Column::ClaimedBy.eq(holder))
        .filter(deliveries::Column::State.eq(DeliveryState::Pending.as_str()))
        .col_expr(deliveries::Column::Attempts, Expr::col(deliveries::Column::Attempts).add(1))
        .col_expr(deliveries::Column::ClaimedBy, Expr::value(""))
        .col_expr(deliveries::Column::ClaimedUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(deliveries::Column::UpdatedAt, Expr::value(now));
    let dest = destinations::Entity::find_by_id(d.destination_id.clone()).one(&txn).await?;
    let settled = match &outcome {
        Ok(status) => {
            let moved = mine
                .col_expr(deliveries::Column::State, Expr::value(DeliveryState::Delivered.as_str()))
                .col_expr(deliveries::Column::DeliveredAt, Expr::value(now))
                .col_expr(deliveries::Column::LastStatus, Expr::value(*status))
                .col_expr(deliveries::Column::LastError, Expr::value(""))
                .exec(&txn)
                .await?
                .rows_affected;
            if let Some(dest) = dest {
                if dest.failing_reported {
                    super::emit(&txn, &super::producers::destination_recovered(&dest, now)).await?;
                }
                destinations::Entity::update_many()
                    .filter(destinations::Column::Id.eq(dest.id))
                    .col_expr(destinations::Column::Failures, Expr::value(0))
                    .col_expr(destinations::Column::BackoffUntil, Expr::value(Option::<DateTime<Utc>>::None))
                    .col_expr(destinations::Column::FailingSince, Expr::value(Option::<DateTime<Utc>>::None))
                    .col_expr(destinations::Column::FailingReported, Expr::value(false))
                    .col_expr(destinations::Column::LastSuccessAt, Expr::value(now))
                    .exec(&txn)
                    .await?;
            }
            (moved > 0).then_some(DeliveryState::Delivered)
        }
        Err((status, error)) => {
            let attempts = d.attempts.saturating_add(1);
            let next = after(now, retry.backoff(attempts as u32));
            let dead = next >= after(d.created_at, retry.window);
            let state = if dead { DeliveryState::Dead } else { DeliveryState::Pending };
            let moved = mine
                .col_expr(deliveries::Column::State, Expr::value(state.as_str()))
                .col_expr(deliveries::Column::NextAttemptAt, Expr::value(next))
                .col_expr(deliveries::Column::LastStatus, Expr::value(*status))
                .col_expr(deliveries::Column::LastError, Expr::value(error.clone()))
                .exec(&txn)
                .await?
                .rows_affected;
            if let Some(dest) = dest {
                let failures = dest.failures.saturating_add(1);
                destinations::Entity::update_many()
                    .filter(destinations::Column::Id.eq(dest.id))
                    .col_expr(destinations::Column::Failures, Expr::value(failures))
                    .col_expr(
                        destinations::Column::BackoffUntil,
                        Expr::value(after(now, retry.backoff(failures as u32))),
                    )
                    .col_expr(destinations::Column::FailingSince, Expr::value(dest.failing_since.unwrap_or(now)))
                    .col_expr(destinations::Column::LastError, Expr::value(error.clone()))
                    .exec(&txn)
                    .await?;
            }
            (moved > 0).then_some(state)
        }
    };
    txn.commit().await?;
    Ok(settled)
}

/// Deliveries still pending past the retry window (never tried, queued
/// behind a failing destination) are dead. Returns how many.
pub async fn expire(db: &DatabaseConnection, retry: &Retry) -> Result<u64, DbErr> {
    let now = Utc::now();
    let cut = now - chrono::Duration::from_std(retry.window).unwrap_or(chrono::Duration::days(1));
    let stale = || {
        deliveries::Entity::update_many()
            .filter(deliveries::Column::State.eq(DeliveryState::Pending.as_str()))
            .filter(deliveries::Column::CreatedAt.lt(cut))
            .filter(unclaimed(now))
    };
    stale()
        .filter(deliveries::Column::LastError.eq(""))
        .col_expr(
            deliveries::Column::LastError,
            Expr::value("not sent within the retry window: the destination was failing"),
        )
        .exec(db)
        .await?;
    Ok(stale()
        .col_expr(deliveries::Column::State, Expr::value(DeliveryState::Dead.as_str()))
        .col_expr(deliveries::Column::UpdatedAt, Expr::value(now))
        .exec(db)
        .await?
        .rows_affected)
}

/// Events older than `keep`, with their deliveries.
pub async fn prune(db: &DatabaseConnection, keep: chrono::Duration) -> Result<u64, DbErr> {
    let cut = Utc::now() - keep;
    let pending: Vec<String> = deliveries::Entity::find()
        .select_only()
        .column(deliveries::Column::EventId)
        .filter(deliveries::Column::State.eq(DeliveryState::Pending.as_str()))
        .into_tuple()
        .all(db)
        .await?;
    let mut q = events::Entity::delete_many()
        .filter(events::Column::OccurredAt.lt(cut))
        .filter(events::Column::FannedOut.eq(true));
    if !pending.is_empty() {
        q = q.filter(events::Column::Id.is_not_in(pending));
    }
    Ok(q.exec(db).await?.rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_its_jitter_and_stops_at_the_cap() {
        let r =
            Retry { window: Duration::from_secs(86400), base: Duration::from_secs(4), max: Duration::from_secs(60) };
        for _ in 0..50 {
            let first = r.backoff(1);
            assert!((Duration::from_secs(2)..=Duration::from_secs(4)).contains(&first), "{first:?}");
            let third = r.backoff(3);
            assert!((Duration::from_secs(8)..=Duration::from_secs(16)).contains(&third), "{third:?}");
            let late = r.backoff(40);
            assert!((Duration::from_secs(30)..=Duration::from_secs(60)).contains(&late), "{late:?}");
        }
    }

    #[test]
    fn jitter_spreads_retries() {
        let r = Retry::default();
        let waits: std::collections::HashSet<Duration> = (0..20).map(|_| r.backoff(5)).collect();
        assert!(waits.len() > 10);
    }
}
