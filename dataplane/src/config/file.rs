//! The file source of snapshots (`CCAG_DATAPLANE_CONFIG`): read at start and
//! re-read whenever the file changes. A bad file never replaces a good one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{ConfigStore, RuntimeConfig};

/// Polling is deliberate: it works the same on every filesystem, including
/// Kubernetes ConfigMap mounts that swap a symlink, where inotify misses edits.
const POLL: Duration = Duration::from_millis(500);

/// Loads the file once (returning the error if it is unusable) and then
/// keeps watching it in a background task.
pub async fn watch_file(path: PathBuf, store: Arc<ConfigStore>) -> Result<(), String> {
    let mut seen = load(&path, &store).await?;
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(POLL).await;
            let stamp = stamp(&path).await;
            if stamp.is_none() || stamp == seen {
                continue;
            }
            match load(&path, &store).await {
                Ok(s) => seen = s,
                Err(e) => {
                    // Remember the stamp so a broken file is reported once, not every poll.
                    seen = stamp;
                    tracing::error!(path = %path.display(), error = %e, "config file rejected; keeping the previous snapshot");
                }
            }
        }
    });
    Ok(())
}

type Stamp = Option<(SystemTime, u64)>;

async fn stamp(path: &PathBuf) -> Stamp {
    let m = tokio::fs::metadata(path).await.ok()?;
    Some((m.modified().ok()?, m.len()))
}

async fn load(path: &PathBuf, store: &ConfigStore) -> Result<Stamp, String> {
    let before = stamp(path).await;
    let text = tokio::fs::read(path).await.map_err(|e| format!("{}: {e}", path.display()))?;
    let cfg = RuntimeConfig::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let keys = cfg.key_count();
    let version = store.install(cfg).map_err(|e| e.to_string())?;
    tracing::info!(path = %path.display(), version, keys, "configuration snapshot installed");
    Ok(before)
}
