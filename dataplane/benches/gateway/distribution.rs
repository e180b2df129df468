//! What a configuration change costs the control plane: with many keys and
//! many connected data planes (simulated peers speaking the Watch protocol
//! in this process, acknowledging every response), the bytes sent and the
//! control plane's CPU per one-key change, against the cost of a full state.

use std::time::{Duration, Instant};

use ccag_proto::config::v1::data_plane_service_client::DataPlaneServiceClient;
use ccag_proto::config::v1::{watch_request, Ack, Hello, WatchRequest};
use prost::Message;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tonic::transport::Endpoint;

use crate::admin::{Admin, Key};
use crate::fleet::{cpu_secs, ControlPlane};
use crate::{progress, Error};

pub struct DistributionCost {
    pub keys: usize,
    pub peers: usize,
    /// Bytes of the full state one peer was sent on joining.
    pub full_state_bytes: usize,
    /// The control plane's CPU to build and send the full state to every peer.
    pub join_cpu_secs: f64,
    /// Per change: bytes sent to all peers together.
    pub change_bytes: Vec<usize>,
    /// Per change: from the admin call until every peer had the change.
    pub to_all_peers: Vec<Duration>,
    /// The control plane's CPU over all the changes, and over as long a
    /// quiet period (its background: heartbeats, shares, polls).
    pub changes_cpu_secs: f64,
    pub quiet_cpu_secs: f64,
    pub wall_secs: f64,
}

struct Received {
    peer: usize,
    revision: u64,
    bytes: usize,
    full: bool,
}

/// `keys` keys made through the admin API, `peers` simulated data planes,
/// `changes` one-key changes (one key disabled and enabled in turn).
pub async fn run(
    cp: &ControlPlane,
    admin: &Admin,
    probe: &Key,
    keys: usize,
    peers: usize,
    changes: usize,
) -> Result<DistributionCost, Error> {
    progress(&format!("distribution cost: creating {keys} keys"));
    let mut made = 0;
    while made < keys {
        let mut set = JoinSet::new();
        for i in made..(made + 16).min(keys) {
            let admin = admin.clone();
            set.spawn(async move { admin.create_key(&format!("bench-dist-{i}")).await });
        }
        while let Some(r) = set.join_next().await {
            r.map_err(|e| e.to_string())??;
            made += 1;
        }
    }
    let pid = cp.pid().to_string();
    let (tx, mut rx) = mpsc::unbounded_channel::<Received>();
    let cpu_before_join = cpu_secs(&pid);
    let mut tasks = JoinSet::new();
    for peer in 0..peers {
        tasks.spawn(peer_loop(cp.grpc.clone(), cp.dataplane_token.clone(), peer, tx.clone()));
    }
    // Every peer's full state first.
    let mut full_state_bytes = 0;
    let mut revision = 0;
    let mut joined = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while joined < peers {
        let r = recv_by(&mut rx, deadline).await?;
        if r.full {
            joined += 1;
            full_state_bytes = full_state_bytes.max(r.bytes);
            revision = revision.max(r.revision);
        }
    }
    let join_cpu_secs = cpu_secs(&pid) - cpu_before_join;
    // Let the registry and the shares settle (they follow the joins).
    tokio::time::sleep(Duration::from_secs(3)).await;
    while rx.try_recv().is_ok() {}

    progress(&format!("distribution cost: {changes} one-key changes to {peers} peers with {keys} keys"));
    let started = Instant::now();
    let cpu_before = cpu_secs(&pid);
    let mut change_bytes = Vec::with_capacity(changes);
    let mut to_all_peers = Vec::with_capacity(changes);
    for i in 0..changes {
        let t0 = Instant::now();
        admin.set_key_active(&probe.id, i % 2 == 1).await?;
        let mut have = vec![false; peers];
        let mut bytes = 0;
        let deadline = t0 + Duration::from_secs(10);
        while have.iter().any(|h| !h) {
            let r = recv_by(&mut rx, deadline).await?;
            bytes += r.bytes;
            if r.revision > revision {
                have[r.peer] = true;
            }
        }
        to_all_peers.push(t0.elapsed());
        change_bytes.push(bytes);
        revision += 1;
    }
    let wall = started.elapsed();
    let changes_cpu_secs = cpu_secs(&pid) - cpu_before;
    let quiet_before = cpu_secs(&pid);
    tokio::time::sleep(wall).await;
    let quiet_cpu_secs = cpu_secs(&pid) - quiet_before;
    tasks.abort_all();
    if changes % 2 == 1 {
        admin.set_key_active(&probe.id, true).await?;
    }
    Ok(DistributionCost {
        keys,
        peers,
        full_state_bytes,
        join_cpu_secs,
        change_bytes,
        to_all_peers,
        changes_cpu_secs,
        quiet_cpu_secs,
        wall_secs: wall.as_secs_f64(),
    })
}

async fn recv_by(rx: &mut mpsc::UnboundedReceiver<Received>, deadline: Instant) -> Result<Received, Error> {
    let left = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(left, rx.recv()).await {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err("every simulated peer's stream ended".into()),
        Err(_) => Err("a simulated peer waited too long for a configuration response".into()),
    }
}

async fn peer_loop(url: String, token: String, peer: usize, tx: mpsc::UnboundedSender<Received>) -> Result<(), Error> {
    let ch = Endpoint::from_shared(url).map_err(|e| e.to_string())?.connect().await.map_err(|e| e.to_string())?;
    let bearer: tonic::metadata::MetadataValue<_> =
        format!("Bearer {token}").parse().map_err(|_| "a token that is not ASCII")?;
    let mut client = DataPlaneServiceClient::with_interceptor(ch, move |mut req: tonic::Request<()>| {
        req.metadata_mut().insert("authorization", bearer.clone());
        Ok(req)
    })
    .max_decoding_message_size(64 << 20);
    let (out, out_rx) = mpsc::channel::<WatchRequest>(8);
    let hello =
        Hello { dataplane_id: format!("bench-sim-{peer}"), revision: 0, address: String::new(), epoch: String::new() };
    out.send(WatchRequest { msg: Some(watch_request::Msg::Hello(hello)) }).await.map_err(|e| e.to_string())?;
    let outbound = futures_util::stream::unfold(out_rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let mut inbound = client.watch(outbound).await.map_err(|e| e.to_string())?.into_inner();
    while let Some(resp) = inbound.message().await.map_err(|e| e.to_string())? {
        let ack = Ack { nonce: resp.nonce.clone(), revision: resp.revision };
        let _ = tx.send(Received { peer, revision: resp.revision, bytes: resp.encoded_len(), full: resp.full_state });
        if out.send(WatchRequest { msg: Some(watch_request::Msg::Ack(ack)) }).await.is_err() {
            break;
        }
    }
    Ok(())
}
