//! Follows the committed configuration and keeps this replica's resource
//! state current.
//!
//! A change is pushed, not polled for: the transaction that commits it
//! wakes this replica at once (`notify`), and on PostgreSQL its NOTIFY
//! wakes every other replica's listener. A refresh reads what the new
//! revisions touched from the change log and loads only those resources.
//! A slow periodic check remains as a safety net for a lost notification
//! (a listener reconnecting, a replica that was partitioned from the
//! database); it costs one indexed read of one row.

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use sea_orm::{AccessMode, DatabaseConnection, DbErr, IsolationLevel, TransactionTrait};
use tokio::sync::{watch, Mutex, Notify};

use super::resources::{load_all, load_touched};
use super::revision::{self, Committed};
use super::state::State;
use crate::secrets::Keyring;
use crate::store::Backend;

/// The safety net's period.
const CHECK: Duration = Duration::from_secs(5);
/// Revisions whose publication time is remembered, for timing the pushes.
const TIMED: usize = 64;

pub struct Publisher {
    db: DatabaseConnection,
    /// Opens the secrets the data planes need (search providers' keys).
    keyring: Arc<Keyring>,
    backend: Backend,
    state: RwLock<State>,
    /// (epoch, revision) of `state`, for the streams to wait on.
    current: watch::Sender<Committed>,
    wake: Notify,
    /// One refresh at a time; a caller that waited finds the work done.
    refreshing: Mutex<()>,
    /// When recent revisions of the current epoch were committed on this
    /// replica or, committed elsewhere, first seen here.
    published: std::sync::Mutex<VecDeque<(u64, Instant)>>,
}

impl Publisher {
    /// Loads the whole state and starts following changes.
    pub async fn start(
        db: DatabaseConnection,
        keyring: Arc<Keyring>,
        backend: Backend,
        stop: watch::Receiver<bool>,
    ) -> Result<Arc<Self>, DbErr> {
        let committed = revision::ensure_epoch(&db).await?;
        let all = load_all(&db, &keyring).await?;
        let mut state = State::new(committed.epoch.clone(), committed.revision);
        state.reset(committed.epoch.clone(), committed.revision, all);
        tracing::info!(epoch = %committed.epoch, revision = committed.revision, resources = state.len(), "configuration loaded");
        let p = Arc::new(Publisher {
            db,
            keyring,
            backend,
            state: RwLock::new(state),
            current: watch::channel(committed).0,
            wake: Notify::new(),
            refreshing: Mutex::new(()),
            published: Default::default(),
        });
        tokio::spawn(p.clone().follow(stop.clone()));
        if backend == Backend::Postgres {
            tokio::spawn(p.clone().listen(stop));
        }
        Ok(p)
    }

    /// Called after a local commit that bumped the revision.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// This replica committed `revision` just now: its pushes are timed
    /// from here.
    pub fn committed_here(&self, revision: u64) {
        self.note_published(revision);
    }

    /// When `revision` of the current epoch was committed here or first
    /// seen here, if it is a recent one.
    pub fn published_at(&self, revision: u64) -> Option<Instant> {
        let times = self.published.lock().unwrap_or_else(|e| e.into_inner());
        times.iter().find(|(r, _)| *r == revision).map(|(_, at)| *at)
    }

    /// Remembers the first time `revision` was seen.
    fn note_published(&self, revision: u64) {
        let mut times = self.published.lock().unwrap_or_else(|e| e.into_inner());
        if times.iter().any(|(r, _)| *r == revision) {
            return;
        }
        if times.len() == TIMED {
            times.pop_front();
        }
        times.push_back((revision, Instant::now()));
    }

    pub fn subscribe(&self) -> watch::Receiver<Committed> {
        self.current.subscribe()
    }

    pub fn committed(&self) -> Committed {
        self.current.borrow().clone()
    }

    /// Runs `f` on the state. The lock is never held across an await.
    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.state.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Brings the state up to what the database has committed now; a data
    /// plane that joins is answered only after this, so it is never handed
    /// a revision older than one already committed.
    pub async fn sync(&self) -> Result<Committed, DbErr> {
        self.refresh().await?;
        Ok(self.committed())
    }

    /// A data plane holds a revision of our epoch that the database has not
    /// reached: the database went back in time (restored from a backup).
    /// Starts a new epoch, so that every data plane is sent the full state.
    pub async fn history_went_back(&self, seen: u64) -> Result<Committed, DbErr> {
        let held = self.committed();
        tracing::warn!(
            epoch = %held.epoch, database_revision = held.revision, seen,
            "a data plane holds a newer revision than the database: was it restored from a backup? starting a new epoch"
        );
        revision::rotate_epoch(&self.db, &held.epoch).await?;
        self.sync().await
    }

    async fn refresh(&self) -> Result<(), DbErr> {
        let _one = self.refreshing.lock().await;
        let started = Instant::now();
        let held = self.committed();
        let txn = match self.backend {
            // One consistent view of the revision, the log and the rows.
            Backend::Postgres => {
                self.db.begin_with_config(Some(IsolationLevel::RepeatableRead), Some(AccessMode::ReadOnly)).await?
            }
            Backend::Sqlite => self.db.begin().await?,
        };
        let now = revision::current(&txn).await?;
        if now == held {
            txn.commit().await?;
            return Ok(());
        }
        let mut restored = false;
        let changed = if now.epoch != held.epoch {
            let all = load_all(&txn, &self.keyring).await?;
            let n = all.len();
            self.write(|s| s.reset(now.epoch.clone(), now.revision, all));
            n
        } else if now.revision < held.revision {
            restored = true;
            0
        } else {
            match revision::changes(&txn, held.revision, now.revision).await? {
                Some(touched) => {
                    let (names, loaded) = load_touched(&txn, &self.keyring, &touched).await?;
                    self.write(|s| s.apply(now.revision, names, loaded))
                }
                None => {
                    let all = load_all(&txn, &self.keyring).await?;
                    self.write(|s| s.replace(now.revision, all))
                }
            }
        };
        txn.commit().await?;
        if restored {
            drop(_one);
            tracing::warn!(
                held = held.revision,
                database = now.revision,
                "the database's configuration revision went backwards (restored from a backup?); starting a new epoch"
            );
            revision::rotate_epoch(&self.db, &now.epoch).await?;
            return Box::pin(self.refresh()).await;
        }
        if now.epoch != held.epoch {
            // Another epoch's revisions are other revisions.
            self.published.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
        self.note_published(now.revision);
        tracing::info!(
            epoch = %now.epoch, revision = now.revision, changed,
            took_ms = started.elapsed().as_secs_f64() * 1e3,
            "configuration changed; pushing to data planes"
        );
        self.current.send_replace(now);
        Ok(())
    }

    fn write<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.write().unwrap_or_else(|e| e.into_inner()))
    }

    async fn follow(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(CHECK) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "cannot read the configuration; data planes keep what they hold");
            }
        }
    }

    /// PostgreSQL LISTEN: the other replicas' commits, as they happen.
    async fn listen(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        use sea_orm::sqlx::postgres::PgListener;
        let pool = self.db.get_postgres_connection_pool().clone();
        loop {
            let mut listener = match PgListener::connect_with(&pool).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot LISTEN for configuration changes; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
            };
            if let Err(e) = listener.listen(revision::CHANNEL).await {
                tracing::warn!(error = %e, "LISTEN failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            // Whatever was committed while we were not listening.
            self.wake.notify_one();
            loop {
                tokio::select! {
                    m = listener.try_recv() => match m {
                        Ok(Some(_)) => self.wake.notify_one(),
                        // The connection dropped and was re-established:
                        // notifications in between are lost, so look.
                        Ok(None) => self.wake.notify_one(),
                        Err(e) => {
                            tracing::warn!(error = %e, "configuration listener lost; reconnecting");
                            break;
                        }
                    },
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        }
    }
}
