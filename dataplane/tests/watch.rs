//! The data plane's watch client against scripted control planes, as a
//! specification of the delta protocol from the data plane's side: it
//! acknowledges each response by its nonce, applies deltas on top of what
//! it holds, refuses (NACKs) a response that goes backwards, names a type it
//! does not know, or breaks the state, keeping the previous one; it says in
//! its Hello what it holds (so a current data plane is sent nothing);
//! persists what it applied, serves that after a restart, and fails over
//! between control-plane URLs.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ccag_dataplane::config::ConfigStore;
use ccag_dataplane::control::{load_persisted, spawn_watch, ControlSettings};
use ccag_proto::config::v1::data_plane_service_server::{DataPlaneService, DataPlaneServiceServer};
use ccag_proto::config::v1::{
    resource::Kind, watch_request, ApiKey, Hello, KeyStatus, ReportUsageRequest, ReportUsageResponse, Resource,
    ResourceRef, ResourceType, WatchRequest, WatchResponse,
};
use futures_util::Stream;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

const TOKEN: &str = "test-token";
const GOOD: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const OTHER: &str = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";

fn key(id: &str, hash: &str) -> Resource {
    Resource {
        version: 1,
        kind: Some(Kind::Key(ApiKey {
            id: id.into(),
            sha256: hash.into(),
            status: KeyStatus::Active as i32,
            ..Default::default()
        })),
    }
}

fn full(revision: u64, resources: Vec<Resource>) -> WatchResponse {
    WatchResponse {
        nonce: format!("n{revision}"),
        epoch: "e1".into(),
        revision,
        full_state: true,
        resources,
        removed: vec![],
        base_revision: 0,
    }
}

/// A delta from `base` to `revision`.
fn delta(base: u64, revision: u64, resources: Vec<Resource>, removed: Vec<ResourceRef>) -> WatchResponse {
    WatchResponse { full_state: false, removed, base_revision: base, ..full(revision, resources) }
}

/// What a scripted control plane saw.
#[derive(Debug)]
enum Seen {
    Hello(Hello),
    Reply(watch_request::Msg),
}

/// Sends the scripted responses one by one, each after the previous reply,
/// and reports the Hello and every reply it gets.
struct Scripted {
    script: Vec<WatchResponse>,
    seen: mpsc::UnboundedSender<Seen>,
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
            Some(WatchRequest { msg: Some(watch_request::Msg::Hello(h)) }) => {
                let _ = self.seen.send(Seen::Hello(h));
            }
            _ => return Err(Status::invalid_argument("Hello first")),
        }
        let (tx, rx) = mpsc::channel(4);
        let script = self.script.clone();
        let seen = self.seen.clone();
        tokio::spawn(async move {
            for r in script {
                if tx.send(Ok(r)).await.is_err() {
                    return;
                }
                match inbound.message().await {
                    Ok(Some(WatchRequest { msg: Some(m) })) => {
                        let _ = seen.send(Seen::Reply(m));
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

async fn serve(script: Vec<WatchResponse>) -> (String, mpsc::UnboundedReceiver<Seen>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (seen, rx) = mpsc::unbounded_channel();
    let svc = DataPlaneServiceServer::new(Scripted { script, seen });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    (url, rx)
}

fn settings(urls: Vec<String>, dir: &std::path::Path) -> ControlSettings {
    ControlSettings {
        urls,
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

async fn next(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("an event in time").expect("an event")
}

async fn hello(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Hello {
    match next(rx).await {
        Seen::Hello(h) => h,
        other => panic!("expected Hello, got {other:?}"),
    }
}

async fn reply(rx: &mut mpsc::UnboundedReceiver<Seen>) -> watch_request::Msg {
    match next(rx).await {
        Seen::Reply(m) => m,
        other => panic!("expected a reply, got {other:?}"),
    }
}

async fn start(script: Vec<WatchResponse>, dir: &std::path::Path) -> (Arc<ConfigStore>, mpsc::UnboundedReceiver<Seen>) {
    let (url, seen) = serve(script).await;
    let store = Arc::new(ConfigStore::default());
    let held = load_persisted(dir, &store);
    spawn_watch(settings(vec![url], dir), store.clone(), held);
    (store, seen)
}

#[tokio::test]
async fn a_data_plane_holding_nothing_says_no_epoch() {
    let dir = temp_dir("hello0");
    let (_store, mut seen) = start(vec![], &dir).await;
    let h = hello(&mut seen).await;
    assert_eq!((h.dataplane_id.as_str(), h.revision, h.epoch.as_str()), ("dp-test", 0, ""));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn each_response_is_acknowledged_by_its_nonce_with_the_revision_held() {
    let dir = temp_dir("ack");
    let (store, mut seen) = start(vec![full(3, vec![key("k1", GOOD)])], &dir).await;
    hello(&mut seen).await;
    match reply(&mut seen).await {
        watch_request::Msg::Ack(a) => assert_eq!((a.nonce.as_str(), a.revision), ("n3", 3)),
        other => panic!("expected an ACK, got {other:?}"),
    }
    assert_eq!(store.get().unwrap().version, 3);
    assert_eq!(store.get().unwrap().key_count(), 1);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_delta_is_applied_on_top_of_what_is_held() {
    let dir = temp_dir("delta");
    let rm = ResourceRef { r#type: ResourceType::Key as i32, name: "k1".into() };
    let script = vec![
        full(3, vec![key("k1", GOOD)]),
        delta(3, 4, vec![key("k2", OTHER)], vec![]),
        delta(4, 5, vec![], vec![rm]),
    ];
    let (store, mut seen) = start(script, &dir).await;
    hello(&mut seen).await;
    for want in [3, 4, 5] {
        assert!(matches!(reply(&mut seen).await, watch_request::Msg::Ack(a) if a.revision == want));
    }
    let cfg = store.get().unwrap();
    assert_eq!((cfg.version, cfg.key_count()), (5, 1));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_delta_going_backwards_is_refused_and_the_previous_state_kept() {
    let dir = temp_dir("backwards");
    let script = vec![full(7, vec![key("k1", GOOD)]), delta(7, 6, vec![key("k2", OTHER)], vec![])];
    let (store, mut seen) = start(script, &dir).await;
    hello(&mut seen).await;
    assert!(matches!(reply(&mut seen).await, watch_request::Msg::Ack(_)));
    match reply(&mut seen).await {
        watch_request::Msg::Nack(n) => {
            assert_eq!((n.nonce.as_str(), n.revision), ("n6", 6));
            assert!(n.error.contains("backwards"), "{}", n.error);
        }
        other => panic!("expected a NACK, got {other:?}"),
    }
    let cfg = store.get().unwrap();
    assert_eq!((cfg.version, cfg.key_count()), (7, 1));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_delta_on_top_of_a_revision_it_does_not_hold_is_refused() {
    // Revision 2 was refused (or lost): 3, made on top of 2, must not apply to 1.
    let dir = temp_dir("base");
    let script = vec![full(1, vec![key("k1", GOOD)]), delta(2, 3, vec![key("k2", OTHER)], vec![])];
    let (store, mut seen) = start(script, &dir).await;
    hello(&mut seen).await;
    assert!(matches!(reply(&mut seen).await, watch_request::Msg::Ack(_)));
    assert!(matches!(reply(&mut seen).await, watch_request::Msg::Nack(n) if n.error.contains("on top of revision 2")));
    assert_eq!((store.get().unwrap().version, store.get().unwrap().key_count()), (1, 1));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_resource_of_an_unknown_type_is_refused() {
    let dir = temp_dir("unknown");
    let unknown = Resource { version: 1, kind: None };
    let script = vec![full(1, vec![key("k1", GOOD)]), delta(1, 2, vec![key("k2", OTHER), unknown], vec![])];
    let (store, mut seen) = start(script, &dir).await;
    hello(&mut seen).await;
    assert!(matches!(reply(&mut seen).await, watch_request::Msg::Ack(_)));
    assert!(matches!(reply(&mut seen).await, watch_request::Msg::Nack(n) if n.error.contains("type")));
    assert_eq!(store.get().unwrap().key_count(), 1);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_delta_that_breaks_the_state_is_refused_and_taken_back() {
    let dir = temp_dir("corrupt");
    // A second key with the first one's hash, and a malformed hash.
    let script = vec![
        full(1, vec![key("k1", GOOD)]),
        delta(1, 2, vec![key("k2", GOOD)], vec![]),
        delta(1, 3, vec![key("k3", "not-a-hash")], vec![]),
        delta(1, 4, vec![key("k4", OTHER)], vec![]),
    ];
    let (store, mut seen) = start(script, &dir).await;
    hello(&mut seen).await;
    assert!(matches!(reply(&mut seen).await, watch_request::Msg::Ack(_)));
    assert!(matches!(reply(&mut seen).await, watch_request::Msg::Nack(n) if n.error.contains("same hash")));
    assert!(matches!(reply(&mut seen).await, watch_request::Msg::Nack(n) if n.error.contains("sha256")));
    // Taken back whole: the next delta applies to revision 1's state.
    assert!(matches!(reply(&mut seen).await, watch_request::Msg::Ack(a) if a.revision == 4));
    assert_eq!(store.get().unwrap().key_count(), 2);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_delta_of_another_epoch_is_refused_but_a_full_state_of_it_accepted() {
    let dir = temp_dir("epoch");
    let other = |mut r: WatchResponse| {
        r.epoch = "e2".into();
        r
    };
    let script = vec![
        full(9, vec![key("k1", GOOD)]),
        other(delta(9, 10, vec![key("k2", OTHER)], vec![])),
        other(full(2, vec![key("k2", OTHER)])),
    ];
    let (store, mut seen) = start(script, &dir).await;
    hello(&mut seen).await;
    assert!(matches!(reply(&mut seen).await, watch_request::Msg::Ack(_)));
    assert!(matches!(reply(&mut seen).await, watch_request::Msg::Nack(n) if n.error.contains("epoch")));
    // A restored database: a new epoch may start at a lower revision.
    assert!(matches!(reply(&mut seen).await, watch_request::Msg::Ack(a) if a.revision == 2));
    assert_eq!(store.get().unwrap().version, 2);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn after_a_restart_it_serves_the_persisted_state_and_says_what_it_holds() {
    let dir = temp_dir("persist");
    let (_store, mut seen) = start(vec![full(5, vec![key("k1", GOOD)])], &dir).await;
    hello(&mut seen).await;
    assert!(matches!(reply(&mut seen).await, watch_request::Msg::Ack(_)));

    // A new process, nothing but the state directory, and a control plane
    // that sends nothing (it is current).
    let (restarted, mut seen) = start(vec![], &dir).await;
    assert_eq!(restarted.get().unwrap().key_count(), 1, "serves before the control plane answers");
    let h = hello(&mut seen).await;
    assert_eq!((h.revision, h.epoch.as_str()), (5, "e1"));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn it_fails_over_to_the_next_control_plane_url() {
    let dir = temp_dir("failover");
    // The first URL has nothing listening.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let (alive, mut seen) = serve(vec![full(1, vec![key("k1", GOOD)])]).await;
    let store = Arc::new(ConfigStore::default());
    spawn_watch(settings(vec![dead, alive], &dir), store.clone(), Default::default());
    hello(&mut seen).await;
    assert!(matches!(reply(&mut seen).await, watch_request::Msg::Ack(_)));
    assert_eq!(store.get().unwrap().version, 1);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_wrong_token_installs_nothing() {
    let dir = temp_dir("token");
    let (url, _seen) = serve(vec![full(1, vec![key("k1", GOOD)])]).await;
    let store = Arc::new(ConfigStore::default());
    let mut s = settings(vec![url], &dir);
    s.token = "wrong".into();
    spawn_watch(s, store.clone(), Default::default());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(store.get().is_none());
    let _ = std::fs::remove_dir_all(dir);
}
