//! The fleet registry, shared by every control-plane replica through the
//! database: which data planes are connected, to which replica, and what
//! each has acknowledged.
//!
//! A replica keeps the rows of its own streams in memory and writes them
//! out when they change and on every heartbeat, which extends their lease.
//! A row whose lease has run out (its replica died, or lost the database)
//! no longer counts; the singleton housekeeping deletes it later.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, Set};
use tokio::sync::{watch, Notify};

use crate::store::entities::dataplanes;

pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// How long ACKs and NACKs gather before they are written.
const ACK_BATCH: Duration = Duration::from_millis(10);
/// A data plane counts this long after its replica last vouched for it.
pub const LEASE: Duration = Duration::from_secs(10);

fn lease_from(now: DateTime<Utc>) -> DateTime<Utc> {
    now + chrono::Duration::from_std(LEASE).unwrap_or_default()
}

pub struct Registry {
    db: DatabaseConnection,
    pub replica: String,
    local: DashMap<String, dataplanes::Model>,
    dirty: Notify,
    /// Bumped whenever a data plane joins or leaves this replica, so that
    /// shares are recomputed at once rather than at the next tick.
    pub membership: watch::Sender<u64>,
}

impl Registry {
    pub fn start(db: DatabaseConnection, replica: String, stop: watch::Receiver<bool>) -> Arc<Self> {
        let r = Arc::new(Registry {
            db,
            replica,
            local: DashMap::new(),
            dirty: Notify::new(),
            membership: watch::channel(0).0,
        });
        tokio::spawn(r.clone().writer(stop));
        r
    }

    /// Registers a new stream; a newer connection of the same data plane
    /// (it moved here from another replica) takes the row over.
    pub async fn connect(&self, id: &str, address: &str) -> Result<String, DbErr> {
        let now = Utc::now();
        let row = dataplanes::Model {
            id: id.to_owned(),
            address: address.to_owned(),
            replica: self.replica.clone(),
            connection: crate::store::ids::random_base62(16),
            connected_at: now,
            lease_until: lease_from(now),
            epoch: String::new(),
            acked_revision: 0,
            nacked_revision: 0,
            nack_error: String::new(),
        };
        let conn = row.connection.clone();
        upsert(&self.db, vec![row.clone()], true).await?;
        self.local.insert(id.to_owned(), row);
        self.membership.send_modify(|v| *v += 1);
        Ok(conn)
    }

    pub fn ack(&self, id: &str, connection: &str, epoch: &str, revision: u64) {
        if let Some(mut r) = self.local.get_mut(id).filter(|r| r.connection == connection) {
            r.epoch = epoch.to_owned();
            r.acked_revision = revision as i64;
        }
        self.dirty.notify_one();
    }

    pub fn nack(&self, id: &str, connection: &str, epoch: &str, revision: u64, error: &str) {
        let error: String = error.chars().take(2000).collect();
        if let Some(mut r) = self.local.get_mut(id).filter(|r| r.connection == connection) {
            r.nacked_revision = revision as i64;
            r.nack_error = error.clone();
        }
        self.dirty.notify_one();
        // Reported once per (data plane, epoch, revision), off the stream's path.
        let event = crate::notify::producers::config_rejected(id, epoch, revision, &error);
        let db = self.db.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::notify::emit(&db, &event).await {
                tracing::warn!(error = %e, "could not record a configuration refusal for notification");
            }
        });
    }

    pub async fn disconnect(&self, id: &str, connection: &str) {
        if self.local.remove_if(id, |_, r| r.connection == connection).is_none() {
            return;
        }
        self.membership.send_modify(|v| *v += 1);
        // Ended now, but kept (until `prune`): a data plane that does not
        // come back within the threshold is reported lost.
        let gone = dataplanes::Entity::update_many()
            .col_expr(dataplanes::Column::LeaseUntil, sea_orm::sea_query::Expr::value(Utc::now()))
            .filter(dataplanes::Column::Id.eq(id))
            .filter(dataplanes::Column::Connection.eq(connection))
            .exec(&self.db)
            .await;
        if let Err(e) = gone {
            tracing::warn!(dataplane = id, error = %e, "could not end a data plane's registry lease; it will lapse");
        }
    }

    /// Every data plane whose lease runs, on any replica.
    pub async fn live(&self) -> Result<Vec<dataplanes::Model>, DbErr> {
        dataplanes::Entity::find()
            .filter(dataplanes::Column::LeaseUntil.gt(Utc::now()))
            .order_by_asc(dataplanes::Column::Id)
            .all(&self.db)
            .await
    }

    pub fn local_count(&self) -> usize {
        self.local.len()
    }

    async fn writer(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut beat = tokio::time::interval(HEARTBEAT);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let answered = tokio::select! {
                _ = beat.tick() => false,
                _ = self.dirty.notified() => true,
                _ = stop.wait_for(|s| *s) => break,
            };
            if answered {
                // A change reaches every data plane at once, and their ACKs
                // follow together: one write for them all.
                tokio::time::sleep(ACK_BATCH).await;
            }
            let now = Utc::now();
            let rows: Vec<dataplanes::Model> = self
                .local
                .iter_mut()
                .map(|mut r| {
                    r.lease_until = lease_from(now);
                    r.clone()
                })
                .collect();
            if rows.is_empty() {
                continue;
            }
            if let Err(e) = upsert(&self.db, rows, false).await {
                tracing::warn!(error = %e, "cannot renew the registry; data planes keep serving, leases may lapse");
            }
        }
        // Leaving: our data planes will reconnect elsewhere, and should not
        // be counted twice meanwhile.
        let ids: Vec<String> = self.local.iter().map(|r| r.connection.clone()).collect();
        if !ids.is_empty() {
            let _ = dataplanes::Entity::delete_many()
                .filter(dataplanes::Column::Connection.is_in(ids))
                .exec(&self.db)
                .await;
        }
    }
}

/// Writes rows. `take_over`: overwrite whatever row the data plane had;
/// otherwise only a row of the same connection, or one whose lease ran out,
/// so that a replica still holding a dead stream cannot steal back a data
/// plane that has moved on.
async fn upsert(db: &DatabaseConnection, rows: Vec<dataplanes::Model>, take_over: bool) -> Result<(), DbErr> {
    let now = Utc::now();
    let cols = [
        dataplanes::Column::Address,
        dataplanes::Column::Replica,
        dataplanes::Column::Connection,
        dataplanes::Column::ConnectedAt,
        dataplanes::Column::LeaseUntil,
        dataplanes::Column::Epoch,
        dataplanes::Column::AckedRevision,
        dataplanes::Column::NackedRevision,
        dataplanes::Column::NackError,
    ];
    let mut on_conflict = OnConflict::column(dataplanes::Column::Id);
    on_conflict.update_columns(cols);
    if !take_over {
        on_conflict.action_and_where(
            Expr::col((dataplanes::Entity, dataplanes::Column::Connection))
                .equals((sea_orm::sea_query::Alias::new("excluded"), dataplanes::Column::Connection))
                .or(Expr::col((dataplanes::Entity, dataplanes::Column::LeaseUntil)).lt(now)),
        );
    }
    for chunk in rows.chunks(200) {
        let models = chunk.iter().cloned().map(|r| dataplanes::ActiveModel {
            id: Set(r.id),
            address: Set(r.address),
            replica: Set(r.replica),
            connection: Set(r.connection),
            connected_at: Set(r.connected_at),
            lease_until: Set(r.lease_until),
            epoch: Set(r.epoch),
            acked_revision: Set(r.acked_revision),
            nacked_revision: Set(r.nacked_revision),
            nack_error: Set(r.nack_error),
        });
        dataplanes::Entity::insert_many(models).on_conflict(on_conflict.clone()).exec_without_returning(db).await?;
    }
    Ok(())
}

/// Deletes rows whose lease ran out long ago (singleton housekeeping).
pub async fn prune(db: &DatabaseConnection) -> Result<u64, DbErr> {
    let cut = Utc::now() - chrono::Duration::minutes(10);
    Ok(dataplanes::Entity::delete_many().filter(dataplanes::Column::LeaseUntil.lt(cut)).exec(db).await?.rows_affected)
}
