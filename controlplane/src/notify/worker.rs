//! The delivery loop, on the replica holding the `notifications` lease:
//! every second it fans new events out and starts a sender for each
//! destination with deliveries due (one sender per destination, so a slow
//! one delays only itself); every five seconds it looks for what emits
//! events of its own: keys expired or expiring, data planes lost,
//! destinations failing for too long, and deliveries past their window.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, TransactionTrait};
use tokio::sync::watch;

use super::outbox::{self, Retry};
use super::send::{Outgoing, Sender, CALL_TIMEOUT};
use super::{emit, producers};
use crate::metrics::Delivery;
use crate::store::entities::{api_keys, dataplanes, notification_destinations as destinations};
use crate::store::{Backend, DeliveryState, DestinationKind, KeyStatus};

/// Deliveries one sender claims at a time; the claim lasts long enough for
/// every one of them to time out.
const BATCH: u64 = 5;
const SCAN_EVERY: Duration = Duration::from_secs(5);
/// Keys expiring within this long are reported as expiring.
const EXPIRING_WITHIN: chrono::Duration = chrono::Duration::days(7);

#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub retry: Retry,
    /// A destination failing this long is reported to the others.
    pub failing_after: Duration,
    /// A data plane not heard from this long is reported lost.
    pub lost_after: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            retry: Retry::default(),
            failing_after: Duration::from_secs(3600),
            lost_after: Duration::from_secs(120),
        }
    }
}

impl Config {
    /// `CCAG_NOTIFY_RETRY_WINDOW_SECS`, `CCAG_NOTIFY_BACKOFF_BASE_MS`,
    /// `CCAG_NOTIFY_FAILING_AFTER_SECS`, `CCAG_DATAPLANE_LOST_AFTER_SECS`.
    pub fn from_env() -> Result<Config, String> {
        let mut c = Config::default();
        let num = |k: &str| -> Result<Option<u64>, String> {
            match std::env::var(k).ok().filter(|v| !v.trim().is_empty()) {
                None => Ok(None),
                Some(v) => v.trim().parse::<u64>().map(Some).map_err(|_| format!("{k}={v:?}: a whole number")),
            }
        };
        if let Some(s) = num("CCAG_NOTIFY_RETRY_WINDOW_SECS")? {
            c.retry.window = Duration::from_secs(s.max(1));
        }
        if let Some(ms) = num("CCAG_NOTIFY_BACKOFF_BASE_MS")? {
            c.retry.base = Duration::from_millis(ms.max(10));
        }
        c.retry.max = c.retry.max.min(c.retry.window);
        if let Some(s) = num("CCAG_NOTIFY_FAILING_AFTER_SECS")? {
            c.failing_after = Duration::from_secs(s.max(1));
        }
        if let Some(s) = num("CCAG_DATAPLANE_LOST_AFTER_SECS")? {
            // The registry forgets a data plane ten minutes after its lease.
            if !(1..=540).contains(&s) {
                return Err(format!("CCAG_DATAPLANE_LOST_AFTER_SECS={s}: from 1 to 540"));
            }
            c.lost_after = Duration::from_secs(s);
        }
        Ok(c)
    }
}

struct State {
    metrics: Arc<crate::metrics::Metrics>,
    backend: Backend,
    holder: String,
    sender: Arc<Sender>,
    config: Config,
    /// Destinations with a sender running on this replica.
    busy: Mutex<HashSet<String>>,
    next_scan: Mutex<tokio::time::Instant>,
    stop: watch::Receiver<bool>,
}

pub fn spawn(
    db: DatabaseConnection,
    backend: Backend,
    holder: String,
    sender: Arc<Sender>,
    config: Config,
    metrics: Arc<crate::metrics::Metrics>,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let state = Arc::new(State {
        metrics,
        backend,
        holder: holder.clone(),
        sender,
        config,
        busy: Mutex::new(HashSet::new()),
        next_scan: Mutex::new(tokio::time::Instant::now()),
        stop: stop.clone(),
    });
    let s = state.clone();
    let every = Duration::from_secs(1);
    let lease = crate::lease::spawn_singleton(db, "notifications", holder, every, Arc::default(), stop, move |db| {
        let state = s.clone();
        async move { tick(&db, &state).await }
    });
    tokio::spawn(async move {
        let _ = lease.await;
        // Senders finish the call they are in and settle it, so that a
        // stopping replica leaves nothing to be sent twice.
        let deadline = tokio::time::Instant::now() + CALL_TIMEOUT + Duration::from_secs(2);
        while !state.busy.lock().expect("not poisoned").is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

async fn tick(db: &DatabaseConnection, s: &Arc<State>) -> Result<(), DbErr> {
    outbox::fan_out(db, s.backend).await?;
    let scan = {
        let mut next = s.next_scan.lock().expect("not poisoned");
        let now = tokio::time::Instant::now();
        let due = now >= *next;
        if due {
            *next = now + SCAN_EVERY;
        }
        due
    };
    if scan {
        checks(db, &s.config).await?;
    }
    for d in outbox::ready_destinations(db).await? {
        if !s.busy.lock().expect("not poisoned").insert(d.id.clone()) {
            continue;
        }
        let (db, s) = (db.clone(), s.clone());
        tokio::spawn(async move {
            let id = d.id.clone();
            if let Err(e) = drain(&db, &s, d).await {
                tracing::warn!(destination = %id, error = %e, "notification sender stopped; will retry");
            }
            s.busy.lock().expect("not poisoned").remove(&id);
        });
    }
    Ok(())
}

/// Sends `d`'s due deliveries in order until none is due or one fails
/// (the destination then backs off, and its others wait with it).
async fn drain(db: &DatabaseConnection, s: &State, d: destinations::Model) -> Result<(), DbErr> {
    let hold = (CALL_TIMEOUT + Duration::from_secs(5)) * BATCH as u32;
    loop {
        let batch = outbox::claim(db, s.backend, &d.id, &s.holder, BATCH, hold).await?;
        if batch.is_empty() {
            return Ok(());
        }
        let mut rest: Vec<String> = batch.iter().map(|c| c.delivery.id.clone()).collect();
        for c in &batch {
            if *s.stop.borrow() {
                outbox::release(db, &rest, &s.holder).await?;
                return Ok(());
            }
            rest.retain(|id| *id != c.delivery.id);
            let ev = Outgoing {
                id: &c.event.id,
                kind: &c.event.r#type,
                occurred_at: c.event.occurred_at,
                payload: &c.event.payload,
            };
            let outcome = match s.sender.send(&d, &ev).await {
                Ok(sent) => Ok(sent.status),
                Err(e) => {
                    tracing::info!(destination = %d.id, event = %c.event.id, error = %e, "notification delivery failed");
                    Err((e.status(), e.to_string()))
                }
            };
            let failed = outcome.is_err();
            if let Some(state) = outbox::settle(db, &c.delivery, &s.holder, outcome, &s.config.retry).await? {
                let outcome = match state {
                    DeliveryState::Delivered => Delivery::Delivered,
                    DeliveryState::Pending => Delivery::Retrying,
                    DeliveryState::Dead => Delivery::Dead,
                };
                s.metrics.delivery(DestinationKind::parse(&d.kind), outcome);
            }
            if failed {
                outbox::release(db, &rest, &s.holder).await?;
                return Ok(());
            }
        }
    }
}

/// The periodic checks that emit events of their own.
pub async fn checks(db: &DatabaseConnection, config: &Config) -> Result<(), DbErr> {
    let now = Utc::now();
    let txn = db.begin().await?;
    // Keys: from a day back (a control plane down for less catches up) to
    // a week ahead; each expiry is reported once.
    let keys = api_keys::Entity::find()
        .filter(api_keys::Column::Status.eq(KeyStatus::Active.as_str()))
        .filter(api_keys::Column::ExpiresAt.is_not_null())
        .filter(api_keys::Column::ExpiresAt.gte(now - chrono::Duration::days(1)))
        .filter(api_keys::Column::ExpiresAt.lte(now + EXPIRING_WITHIN))
        .all(&txn)
        .await?;
    if !keys.is_empty() {
        let owners = crate::store::names::user_emails(&txn, keys.iter().map(|k| k.user_id.clone())).await?;
        for k in &keys {
            let email = owners.get(&k.user_id).map(String::as_str).unwrap_or_default();
            if let Some(e) = producers::key_expiry(k, email, now) {
                emit(&txn, &e).await?;
            }
        }
    }
    // Data planes whose lease lapsed: the registry keeps a row until
    // well after the threshold (it prunes after ten minutes).
    let lost_cut = now - chrono::Duration::from_std(config.lost_after).unwrap_or(chrono::Duration::minutes(2));
    for d in dataplanes::Entity::find().filter(dataplanes::Column::LeaseUntil.lt(lost_cut)).all(&txn).await? {
        emit(&txn, &producers::dataplane_lost(&d, now)).await?;
    }
    let failing_cut = now - chrono::Duration::from_std(config.failing_after).unwrap_or(chrono::Duration::hours(1));
    for d in destinations::Entity::find()
        .filter(destinations::Column::FailingSince.lt(failing_cut))
        .filter(destinations::Column::FailingReported.eq(false))
        .all(&txn)
        .await?
    {
        let since = d.failing_since.unwrap_or(now);
        emit(&txn, &producers::destination_failing(&d, since, now)).await?;
        destinations::Entity::update_many()
            .filter(destinations::Column::Id.eq(d.id.clone()))
            .col_expr(destinations::Column::FailingReported, Expr::value(true))
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    let dead = outbox::expire(db, &config.retry).await?;
    if dead > 0 {
        tracing::warn!(deliveries = dead, "notification deliveries gave up after the retry window");
    }
    Ok(())
}
