//! Keeps the newest snapshot and the registry of connected data planes.
//!
//! The configuration version is the id of the newest audit-log entry: every
//! admin change writes exactly one entry in the same transaction, so the
//! version moves with every change, on every control-plane replica alike,
//! with nothing extra to store. A poll of that one indexed value notices
//! changes from this replica and from any other within `POLL`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ccag_proto::config::v1::Snapshot;
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use sea_orm::{DatabaseConnection, EntityTrait, QueryOrder, QuerySelect};
use tokio::sync::watch;

use crate::store::entities::audit_log;

const POLL: Duration = Duration::from_millis(200);

#[derive(Debug, Clone)]
pub struct DataPlaneInfo {
    pub id: String,
    pub address: String,
    pub connected_at: DateTime<Utc>,
    pub acked_version: u64,
    pub nacked_version: u64,
    pub nack_error: String,
    /// Distinguishes a reconnection from the stream it replaces.
    pub connection: u64,
}

pub struct Publisher {
    snapshot: watch::Sender<Arc<Snapshot>>,
    count: watch::Sender<u32>,
    pub registry: DashMap<String, DataPlaneInfo>,
    next_connection: AtomicU64,
}

impl Publisher {
    /// Builds the first snapshot and starts following changes.
    pub async fn start(db: DatabaseConnection) -> Result<Arc<Self>, sea_orm::DbErr> {
        let version = current_version(&db).await?;
        let first = super::snapshot::build(&db, version).await?;
        let publisher = Arc::new(Publisher {
            snapshot: watch::channel(Arc::new(first)).0,
            count: watch::channel(0).0,
            registry: DashMap::new(),
            next_connection: AtomicU64::new(1),
        });
        let p = publisher.clone();
        tokio::spawn(async move {
            let mut held = version;
            loop {
                tokio::time::sleep(POLL).await;
                let v = match current_version(&db).await {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the configuration version; data planes keep their snapshot");
                        continue;
                    }
                };
                if v == held {
                    continue;
                }
                match super::snapshot::build(&db, v).await {
                    Ok(s) => {
                        held = v;
                        tracing::info!(
                            version = v,
                            keys = s.keys.len(),
                            "configuration changed; pushing to data planes"
                        );
                        p.snapshot.send_replace(Arc::new(s));
                    }
                    Err(e) => tracing::warn!(error = %e, "building a snapshot failed; will retry"),
                }
            }
        });
        Ok(publisher)
    }

    pub fn current(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    pub fn subscribe(&self) -> (watch::Receiver<Arc<Snapshot>>, watch::Receiver<u32>) {
        (self.snapshot.subscribe(), self.count.subscribe())
    }

    pub fn connected(&self) -> u32 {
        self.registry.len() as u32
    }

    pub fn register(&self, id: &str, address: &str) -> u64 {
        let connection = self.next_connection.fetch_add(1, Ordering::Relaxed);
        self.registry.insert(
            id.to_owned(),
            DataPlaneInfo {
                id: id.to_owned(),
                address: address.to_owned(),
                connected_at: Utc::now(),
                acked_version: 0,
                nacked_version: 0,
                nack_error: String::new(),
                connection,
            },
        );
        self.count.send_replace(self.connected());
        connection
    }

    pub fn unregister(&self, id: &str, connection: u64) {
        if self.registry.remove_if(id, |_, v| v.connection == connection).is_some() {
            self.count.send_replace(self.connected());
        }
    }

    pub fn record_ack(&self, id: &str, version: u64) {
        if let Some(mut e) = self.registry.get_mut(id) {
            e.acked_version = version;
        }
    }

    pub fn record_nack(&self, id: &str, version: u64, error: String) {
        if let Some(mut e) = self.registry.get_mut(id) {
            e.nacked_version = version;
            e.nack_error = error;
        }
    }
}

async fn current_version(db: &DatabaseConnection) -> Result<u64, sea_orm::DbErr> {
    let newest = audit_log::Entity::find()
        .select_only()
        .column(audit_log::Column::Id)
        .order_by_desc(audit_log::Column::Id)
        .into_tuple::<i64>()
        .one(db)
        .await?;
    Ok(newest.unwrap_or(0).max(0) as u64)
}
