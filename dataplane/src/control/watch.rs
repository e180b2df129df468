//! Subscribing to the configuration: resources and deltas, each answered
//! with ACK or NACK, the state applied persisted as last-known-good.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ccag_proto::config::v1::data_plane_service_client::DataPlaneServiceClient;
use ccag_proto::config::v1::{watch_request, Ack, Hello, Nack, PersistedState, WatchRequest, WatchResponse};
use prost::Message;
use tokio::sync::mpsc;

use super::{connect, Backoff, Bearer, ControlSettings};
use crate::config::resources::ResourceSet;
use crate::config::{ConfigStore, RuntimeConfig};

const FILE: &str = "state.pb";
/// The largest configuration response taken: some 1.5 million keys.
const MAX_RESPONSE: usize = 256 << 20;

/// Installs the state persisted by an earlier run, so that a data plane
/// restarted while the control plane is away still serves, and returns it
/// for the watch stream to continue from.
pub fn load_persisted(state_dir: &Path, store: &ConfigStore) -> ResourceSet {
    let Ok(bytes) = std::fs::read(state_dir.join(FILE)) else { return ResourceSet::default() };
    let set = match PersistedState::decode(bytes.as_slice())
        .map_err(|e| e.to_string())
        .and_then(|p| ResourceSet::from_persisted(p).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "persisted configuration is unreadable; ignoring it");
            return ResourceSet::default();
        }
    };
    match RuntimeConfig::from_resources(&set) {
        Ok(cfg) => {
            store.replace(cfg);
            store.budgets.install(crate::budget::Book::from_resources(&set));
            tracing::info!(
                epoch = %set.epoch, revision = set.revision,
                "serving from the persisted configuration until the control plane answers"
            );
            set
        }
        Err(e) => {
            tracing::warn!(error = %e, "persisted configuration rejected");
            ResourceSet::default()
        }
    }
}

/// Writes the state off the async workers; rename is atomic, so a crash
/// leaves the old state or the new one, never half.
async fn persist(state_dir: PathBuf, bytes: Vec<u8>) -> std::io::Result<()> {
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&state_dir)?;
        let tmp = state_dir.join(format!("{FILE}.tmp"));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(tmp, state_dir.join(FILE))
    })
    .await
    .map_err(std::io::Error::other)?
}

pub fn spawn_watch(settings: ControlSettings, store: Arc<ConfigStore>, mut set: ResourceSet) {
    tokio::spawn(async move {
        let mut backoff = Backoff::new();
        // The first URL first: the operator's order is a preference.
        let mut next = 0;
        loop {
            match session(&settings, &store, &mut set, &mut backoff, &mut next).await {
                Ok(()) => tracing::warn!("control plane closed the watch stream; reconnecting"),
                Err(e) => {
                    tracing::warn!(error = %e, "control plane unreachable; serving the last-known-good configuration")
                }
            }
            tokio::time::sleep(backoff.delay()).await;
        }
    });
}

/// Applies one response: `Ok` with the revision now held, or `Err` with why
/// it was refused (the previous state is kept, in memory and on disk).
async fn apply(
    s: &ControlSettings,
    store: &ConfigStore,
    set: &mut ResourceSet,
    resp: WatchResponse,
) -> Result<u64, String> {
    use ccag_proto::config::v1::{resource::Kind, ResourceType};
    let (full, count, removed) = (resp.full_state, resp.resources.len(), resp.removed.len());
    // Shares and budget verdicts move every few seconds under traffic and
    // are sent again on every reconnection: not worth rewriting the whole
    // state on disk for. Verdicts alone do not touch the runtime
    // configuration either.
    let budget_type = |t: i32| t == ResourceType::UserBudget as i32 || t == ResourceType::TeamBudget as i32;
    let only_verdicts = !full
        && resp.resources.iter().all(|r| matches!(r.kind, Some(Kind::UserBudget(_) | Kind::TeamBudget(_))))
        && resp.removed.iter().all(|r| budget_type(r.r#type));
    let only_derived = only_verdicts
        || (!full
            && removed == 0
            && resp
                .resources
                .iter()
                .all(|r| matches!(r.kind, Some(Kind::Shares(_) | Kind::UserBudget(_) | Kind::TeamBudget(_)))));
    let undo = set.apply(resp).map_err(|e| e.to_string())?;
    if only_verdicts {
        store.budgets.install(crate::budget::Book::from_resources(set));
        store.touch();
        tracing::debug!(revision = set.revision, verdicts = count, removed, "budget verdicts applied");
        return Ok(set.revision);
    }
    let cfg = match RuntimeConfig::from_resources(set) {
        Ok(c) => c,
        Err(e) => {
            set.undo(undo);
            return Err(e.to_string());
        }
    };
    let keys = cfg.key_count();
    let dataplanes = cfg.dataplane_count;
    store.replace(cfg);
    store.budgets.install(crate::budget::Book::from_resources(set));
    let only_shares = only_derived;
    if !only_shares {
        if let Err(e) = persist(s.state_dir.clone(), set.to_persisted().encode_to_vec()).await {
            tracing::warn!(error = %e, "could not persist the configuration");
        }
    }
    if only_shares {
        tracing::debug!(revision = set.revision, dataplanes, "rate-limit shares applied");
    } else {
        tracing::info!(
            epoch = %set.epoch, revision = set.revision, full, resources = count, removed, keys, dataplanes,
            "configuration applied"
        );
    }
    Ok(set.revision)
}

async fn session(
    s: &ControlSettings,
    store: &ConfigStore,
    set: &mut ResourceSet,
    backoff: &mut Backoff,
    next: &mut usize,
) -> Result<(), String> {
    let (channel, url) = connect(s, next).await?;
    // A full state grows with the keys (about 150 bytes each): far past
    // tonic's 4 MiB default at a large organisation.
    let mut client = DataPlaneServiceClient::with_interceptor(channel, Bearer::new(&s.token)?)
        .max_decoding_message_size(MAX_RESPONSE);
    let (tx, rx) = mpsc::channel::<WatchRequest>(8);
    let hello = Hello {
        dataplane_id: s.id.clone(),
        revision: set.revision,
        address: s.address.clone(),
        epoch: set.epoch.clone(),
    };
    tx.send(WatchRequest { msg: Some(watch_request::Msg::Hello(hello)) }).await.map_err(|e| e.to_string())?;
    let outbound = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let mut inbound = client.watch(outbound).await.map_err(|e| format!("watch ({url}): {e}"))?.into_inner();
    tracing::info!(url = %url, epoch = %set.epoch, revision = set.revision, "subscribed to the control plane");
    store.set_connected(true);
    let _down = Disconnected(store);
    while let Some(resp) = inbound.message().await.map_err(|e| format!("watch stream ({url}): {e}"))? {
        backoff.reset();
        let nonce = resp.nonce.clone();
        let offered = resp.revision;
        let reply = match apply(s, store, set, resp).await {
            Ok(revision) => watch_request::Msg::Ack(Ack { nonce, revision }),
            Err(error) => {
                tracing::error!(revision = offered, error = %error, "configuration refused; keeping the previous one");
                watch_request::Msg::Nack(Nack { nonce, revision: offered, error })
            }
        };
        if tx.send(WatchRequest { msg: Some(reply) }).await.is_err() {
            break;
        }
    }
    Ok(())
}

/// Marks the watch stream down when its session ends, however it ends.
struct Disconnected<'a>(&'a ConfigStore);

impl Drop for Disconnected<'_> {
    fn drop(&mut self) {
        self.0.set_connected(false);
    }
}
