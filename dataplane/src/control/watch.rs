//! Subscribing to configuration snapshots.

use std::path::Path;
use std::sync::Arc;

use ccag_proto::config::v1::data_plane_service_client::DataPlaneServiceClient;
use ccag_proto::config::v1::{watch_request, Ack, Hello, Nack, Snapshot, WatchRequest};
use prost::Message;
use tokio::sync::mpsc;

use super::{connect, Backoff, Bearer, ControlSettings};
use crate::config::{ConfigStore, RuntimeConfig};

const FILE: &str = "snapshot.pb";

/// Installs the snapshot persisted by an earlier run, so that a data plane
/// restarted while the control plane is away still serves.
pub fn load_persisted(state_dir: &Path, store: &ConfigStore) -> Option<u64> {
    let bytes = std::fs::read(state_dir.join(FILE)).ok()?;
    let snap = match Snapshot::decode(bytes.as_slice()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "persisted snapshot is unreadable; ignoring it");
            return None;
        }
    };
    match RuntimeConfig::from_snapshot(snap)
        .map_err(|e| e.to_string())
        .and_then(|c| store.install(c).map_err(|e| e.to_string()))
    {
        Ok(v) => {
            tracing::info!(version = v, "serving from the persisted snapshot until the control plane answers");
            Some(v)
        }
        Err(e) => {
            tracing::warn!(error = %e, "persisted snapshot rejected");
            None
        }
    }
}

fn persist(state_dir: &Path, snap: &Snapshot) -> std::io::Result<()> {
    std::fs::create_dir_all(state_dir)?;
    let tmp = state_dir.join(format!("{FILE}.tmp"));
    std::fs::write(&tmp, snap.encode_to_vec())?;
    // Rename is atomic: a crash leaves the old snapshot or the new one, never half.
    std::fs::rename(tmp, state_dir.join(FILE))
}

pub fn spawn_watch(settings: ControlSettings, store: Arc<ConfigStore>) {
    tokio::spawn(async move {
        let mut backoff = Backoff::new();
        loop {
            match session(&settings, &store, &mut backoff).await {
                Ok(()) => tracing::warn!("control plane closed the watch stream; reconnecting"),
                Err(e) => tracing::warn!(error = %e, "control plane unreachable; serving the last-known-good snapshot"),
            }
            tokio::time::sleep(backoff.delay()).await;
        }
    });
}

async fn session(s: &ControlSettings, store: &ConfigStore, backoff: &mut Backoff) -> Result<(), String> {
    let channel = connect(s).await?;
    let mut client = DataPlaneServiceClient::with_interceptor(channel, Bearer::new(&s.token)?);
    let (tx, rx) = mpsc::channel::<WatchRequest>(8);
    let held = store.get().map(|c| c.version).unwrap_or(0);
    let hello = Hello { dataplane_id: s.id.clone(), version: held, address: s.address.clone() };
    tx.send(WatchRequest { msg: Some(watch_request::Msg::Hello(hello)) }).await.map_err(|e| e.to_string())?;
    let outbound = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let mut inbound = client.watch(outbound).await.map_err(|e| format!("watch: {e}"))?.into_inner();
    tracing::info!(url = %s.url, "subscribed to the control plane");
    while let Some(resp) = inbound.message().await.map_err(|e| format!("watch stream: {e}"))? {
        backoff.reset();
        let Some(snap) = resp.snapshot else { continue };
        let version = snap.version;
        let reply = match RuntimeConfig::from_snapshot(snap.clone()) {
            Ok(cfg) => {
                let keys = cfg.key_count();
                match store.install(cfg) {
                    Ok(v) => {
                        if let Err(e) = persist(&s.state_dir, &snap) {
                            tracing::warn!(error = %e, "could not persist the snapshot");
                        }
                        tracing::info!(
                            version = v,
                            keys,
                            dataplanes = snap.dataplane_count,
                            "configuration snapshot installed"
                        );
                        watch_request::Msg::Ack(Ack { version })
                    }
                    Err(e) => watch_request::Msg::Nack(Nack { version, error: e.to_string() }),
                }
            }
            Err(e) => {
                tracing::error!(version, error = %e, "snapshot failed validation; keeping the previous one");
                watch_request::Msg::Nack(Nack { version, error: e.to_string() })
            }
        };
        if tx.send(WatchRequest { msg: Some(reply) }).await.is_err() {
            break;
        }
    }
    Ok(())
}
