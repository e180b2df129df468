//! The data plane's configuration: one validated, indexed snapshot, swapped
//! atomically so that the hot path reads it without a lock.

mod file;
pub mod resources;
mod snapshot;

pub use file::watch_file;
pub use snapshot::{KeyEntry, KeyHash, Limits, RuntimeConfig, SnapshotError};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;

/// Holds the last-known-good configuration. `None` until the first snapshot
/// arrives; the data plane is not ready before that.
#[derive(Default)]
pub struct ConfigStore {
    current: ArcSwapOption<RuntimeConfig>,
    /// The budget verdicts and prices, which move far more often than the
    /// rest, and the data plane's own spend not yet in them.
    pub budgets: Arc<crate::budget::Budgets>,
    /// Unix ms of the last configuration installed or confirmed; 0: none.
    updated_ms: AtomicU64,
    /// Whether the watch stream is up (false with a snapshot file).
    connected: AtomicBool,
}

impl ConfigStore {
    pub fn get(&self) -> Option<Arc<RuntimeConfig>> {
        self.current.load_full()
    }

    /// Installs `next` whatever its version: the watch stream has already
    /// judged it (a new epoch may begin at a lower revision).
    pub fn replace(&self, next: RuntimeConfig) -> u64 {
        let v = next.version;
        self.current.store(Some(Arc::new(next)));
        self.touch();
        v
    }

    /// Notes that the configuration held is current as of now.
    pub fn touch(&self) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(1);
        self.updated_ms.store(now, Ordering::Relaxed);
    }

    pub fn updated_ms(&self) -> Option<u64> {
        Some(self.updated_ms.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }

    pub fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::Relaxed);
    }

    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Installs `next` unless it is older than what is held.
    pub fn install(&self, next: RuntimeConfig) -> Result<u64, SnapshotError> {
        if let Some(cur) = self.current.load().as_ref() {
            if next.version < cur.version {
                return Err(SnapshotError::Stale { offered: next.version, held: cur.version });
            }
        }
        let v = next.version;
        self.current.store(Some(Arc::new(next)));
        self.touch();
        Ok(v)
    }
}
