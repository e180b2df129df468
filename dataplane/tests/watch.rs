//! The data plane's watch client against a scripted control plane: it
//! acknowledges good snapshots, refuses (NACKs) bad ones while keeping the
//! previous, persists what it installed, and serves that after a restart.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ccag_dataplane::config::ConfigStore;
use ccag_dataplane::control::{load_persisted, spawn_watch, ControlSettings};
use ccag_proto::config::v1::data_plane_service_server::{DataPlaneService, DataPlaneServiceServer};
use ccag_proto::config::v1::{
    watch_request, ApiKey, KeyStatus, ReportUsageRequest, ReportUsageResponse, Snapshot, WatchRequest, WatchResponse,
};
use futures_util::Stream;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

const TOKEN: &str = "test-token";

fn snapshot(version: u64, hash: &str) -> Snapshot {
    Snapshot {
        version,
        keys: vec![ApiKey {
            id: format!("k{version}"),
            sha256: hash.into(),
            status: KeyStatus::Active as i32,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Sends the scripted snapshots one by one, each after the previous reply,
/// and reports every reply it gets.
struct Scripted {
    script: Vec<Snapshot>,
    replies: mpsc::UnboundedSender<watch_request::Msg>,
}

#[tonic::async_trait]
impl DataPlaneService for Scripted {
    type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

    async fn watch(&self, req: Request<Streaming<WatchRequest>>) -> Result<Response<Self::WatchStream>, Status> {
        let auth = req.metadata().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        if auth != format!("Bearer {TOKEN}") {
            return Err(Status::unauthenticated("bad token"));
        }
        let mut inbound = req.into_inner();
        match inbound.message().await? {
            Some(WatchRequest { msg: Some(watch_request::Msg::Hello(_)) }) => {}
            _ => return Err(Status::invalid_argument("Hello first")),
        }
        let (tx, rx) = mpsc::channel(4);
        let script = self.script.clone();
        let replies = self.replies.clone();
        tokio::spawn(async move {
            for snap in script {
                if tx.send(Ok(WatchResponse { snapshot: Some(snap) })).await.is_err() {
                    return;
                }
                match inbound.message().await {
                    Ok(Some(WatchRequest { msg: Some(m) })) => {
                        let _ = replies.send(m);
                    }
                    _ => return,
                }
            }
            // Hold the stream open, as a real control plane does.
            let _ = inbound.message().await;
            drop(tx);
        });
        Ok(Response::new(Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|m| (m, rx))
        }))))
    }

    async fn report_usage(&self, _: Request<ReportUsageRequest>) -> Result<Response<ReportUsageResponse>, Status> {
        Ok(Response::new(ReportUsageResponse::default()))
    }
}

async fn serve(script: Vec<Snapshot>) -> (String, mpsc::UnboundedReceiver<watch_request::Msg>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (replies, rx) = mpsc::unbounded_channel();
    let svc = DataPlaneServiceServer::new(Scripted { script, replies });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    (url, rx)
}

fn settings(url: String, dir: &std::path::Path) -> ControlSettings {
    ControlSettings {
        url,
        token: TOKEN.into(),
        id: "dp-test".into(),
        state_dir: dir.to_path_buf(),
        address: String::new(),
        ca_pem: None,
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ccag-watch-{name}-{}-{}", std::process::id(), fastrand::u64(..)));
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn next(rx: &mut mpsc::UnboundedReceiver<watch_request::Msg>) -> watch_request::Msg {
    tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("a reply in time").expect("a reply")
}

const GOOD: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

#[tokio::test]
async fn good_snapshots_are_acknowledged_and_bad_ones_refused_keeping_the_previous() {
    let dir = temp_dir("nack");
    let (url, mut replies) = serve(vec![snapshot(3, GOOD), snapshot(4, "not-a-hash")]).await;
    let store = Arc::new(ConfigStore::default());
    spawn_watch(settings(url, &dir), store.clone());

    match next(&mut replies).await {
        watch_request::Msg::Ack(a) => assert_eq!(a.version, 3),
        other => panic!("expected an ACK, got {other:?}"),
    }
    match next(&mut replies).await {
        watch_request::Msg::Nack(n) => {
            assert_eq!(n.version, 4);
            assert!(n.error.contains("sha256"), "{}", n.error);
        }
        other => panic!("expected a NACK, got {other:?}"),
    }
    assert_eq!(store.get().unwrap().version, 3);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn an_older_snapshot_is_refused() {
    let dir = temp_dir("stale");
    let (url, mut replies) = serve(vec![snapshot(7, GOOD), snapshot(6, GOOD)]).await;
    let store = Arc::new(ConfigStore::default());
    spawn_watch(settings(url, &dir), store.clone());
    assert!(matches!(next(&mut replies).await, watch_request::Msg::Ack(_)));
    assert!(matches!(next(&mut replies).await, watch_request::Msg::Nack(n) if n.version == 6));
    assert_eq!(store.get().unwrap().version, 7);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn an_installed_snapshot_survives_a_restart_without_the_control_plane() {
    let dir = temp_dir("persist");
    let (url, mut replies) = serve(vec![snapshot(5, GOOD)]).await;
    let store = Arc::new(ConfigStore::default());
    spawn_watch(settings(url, &dir), store.clone());
    assert!(matches!(next(&mut replies).await, watch_request::Msg::Ack(_)));

    // A new process: nothing but the state directory.
    let restarted = ConfigStore::default();
    assert_eq!(load_persisted(&dir, &restarted), Some(5));
    assert_eq!(restarted.get().unwrap().key_count(), 1);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_wrong_token_installs_nothing() {
    let dir = temp_dir("token");
    let (url, _replies) = serve(vec![snapshot(1, GOOD)]).await;
    let store = Arc::new(ConfigStore::default());
    let mut s = settings(url, &dir);
    s.token = "wrong".into();
    spawn_watch(s, store.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(store.get().is_none());
    let _ = std::fs::remove_dir_all(dir);
}
