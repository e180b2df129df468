//! Singleton background work: each job runs on exactly one replica at a
//! time, the one holding its lease in the database. The holder renews it
//! every `TTL / 3`; when the holder dies the lease lapses and another
//! replica takes it within `TTL` plus one renewal interval.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, Set};
use tokio::sync::watch;

use crate::store::entities::leases;

pub const TTL: Duration = Duration::from_secs(10);

/// Takes or renews `name` for `holder` unless another holder's lease is
/// still running. Returns whether `holder` holds it now.
pub async fn try_hold<C: ConnectionTrait>(c: &C, name: &str, holder: &str, ttl: Duration) -> Result<bool, DbErr> {
    let now = Utc::now();
    let until = now + chrono::Duration::from_std(ttl).unwrap_or_default();
    let taken = leases::Entity::insert(leases::ActiveModel {
        name: Set(name.to_owned()),
        holder: Set(holder.to_owned()),
        expires_at: Set(until),
    })
    .on_conflict(
        OnConflict::column(leases::Column::Name)
            .update_columns([leases::Column::Holder, leases::Column::ExpiresAt])
            .action_and_where(
                Expr::col((leases::Entity, leases::Column::Holder)).eq(holder).or(Expr::col((
                    leases::Entity,
                    leases::Column::ExpiresAt,
                ))
                .lt(now)),
            )
            .to_owned(),
    )
    .exec_without_returning(c)
    .await?;
    Ok(taken == 1)
}

/// Gives `name` up at once (at shutdown), so another replica need not wait
/// for it to lapse.
pub async fn release<C: ConnectionTrait>(c: &C, name: &str, holder: &str) -> Result<(), DbErr> {
    leases::Entity::delete_many()
        .filter(leases::Column::Name.eq(name))
        .filter(leases::Column::Holder.eq(holder))
        .exec(c)
        .await?;
    Ok(())
}

pub async fn all<C: ConnectionTrait>(c: &C) -> Result<Vec<leases::Model>, DbErr> {
    leases::Entity::find().all(c).await
}

/// Runs `job` every `every` while this replica holds the lease `name`;
/// `held_flag` says whether it does (for `ccag_leader`).
pub fn spawn_singleton<F, Fut>(
    db: DatabaseConnection,
    name: &'static str,
    holder: String,
    every: Duration,
    held_flag: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
    job: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(DatabaseConnection) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), DbErr>> + Send,
{
    tokio::spawn(async move {
        let renew = TTL / 3;
        let mut held = false;
        let mut next_renew = tokio::time::Instant::now();
        let mut next_job = next_renew;
        loop {
            if tokio::time::Instant::now() >= next_renew {
                match try_hold(&db, name, &holder, TTL).await {
                    Ok(h) => {
                        if h != held {
                            tracing::info!(
                                lease = name,
                                held = h,
                                "singleton lease {}",
                                if h { "taken" } else { "lost" }
                            );
                        }
                        held = h;
                    }
                    Err(e) => {
                        // Unknown: stop the work until the database answers again.
                        tracing::warn!(lease = name, error = %e, "cannot renew a singleton lease");
                        held = false;
                    }
                }
                held_flag.store(held, Ordering::Relaxed);
                next_renew = tokio::time::Instant::now() + renew;
            }
            if held && tokio::time::Instant::now() >= next_job {
                if let Err(e) = job(db.clone()).await {
                    tracing::warn!(lease = name, error = %e, "singleton job failed; will retry");
                }
                next_job = tokio::time::Instant::now() + every;
            }
            // A job more frequent than the renewal runs on its own cadence.
            let wake = if held { next_renew.min(next_job) } else { next_renew };
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        held_flag.store(false, Ordering::Relaxed);
        if held {
            let _ = release(&db, name, &holder).await;
        }
    })
}
