//! `GET /metrics` of a real `ccag-controlplane`: admin API calls by
//! service, method and code, the HTTP listener's routes, the fleet
//! (connected data planes, pushes timed, refusals), usage ingest,
//! the database pool and the lease; the output passes `promtool check
//! metrics` and names no key, user or request.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ccag_proto::admin::v1 as admin;
use ccag_proto::admin::v1::{
    auth_service_client::AuthServiceClient, key_service_client::KeyServiceClient,
    user_service_client::UserServiceClient,
};
use ccag_proto::config::v1 as dp;
use ccag_proto::config::v1::data_plane_service_client::DataPlaneServiceClient;
use common::{on_both_backends, Backend, Bearer, Env, Server, Svc, ADMIN, ADMIN_PASSWORD};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Streaming};

const DATAPLANE_TOKEN: &str = "dp-metrics-token-0123456789";
const WAIT: Duration = Duration::from_secs(10);

// ------------------------------------------------------------------ clients

#[derive(Clone)]
struct Client {
    ch: Channel,
    bearer: Bearer,
}

impl Client {
    async fn anonymous(srv: &Server) -> Client {
        let ch = Endpoint::from_shared(srv.grpc.clone())
            .expect("a valid endpoint URL")
            .connect_timeout(WAIT)
            .timeout(Duration::from_secs(60))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}\nserver log:\n{}", srv.grpc, srv.log()));
        Client { ch, bearer: Bearer(None) }
    }

    fn with_token(&self, token: &str) -> Client {
        let v = MetadataValue::try_from(format!("Bearer {token}")).expect("an ASCII token");
        Client { ch: self.ch.clone(), bearer: Bearer(Some(v)) }
    }

    async fn login(srv: &Server, username: &str, password: &str) -> Client {
        let anon = Client::anonymous(srv).await;
        let res = AuthServiceClient::new(anon.svc())
            .login(admin::LoginRequest { username: username.into(), password: password.into() })
            .await
            .unwrap_or_else(|e| panic!("login as {username}: {e:?}\nserver log:\n{}", srv.log()))
            .into_inner();
        anon.with_token(&res.token)
    }

    fn svc(&self) -> Svc {
        InterceptedService::new(self.ch.clone(), self.bearer.clone())
    }

    fn users(&self) -> UserServiceClient<Svc> {
        UserServiceClient::new(self.svc())
    }

    fn keys(&self) -> KeyServiceClient<Svc> {
        KeyServiceClient::new(self.svc())
    }

    fn dataplane(&self) -> DataPlaneServiceClient<Svc> {
        DataPlaneServiceClient::new(self.svc())
    }

    /// A gRPC request to `path` whatever it is, as a client could send it.
    async fn raw(&self, path: &str) -> http::Response<tonic::body::Body> {
        use tonic::codegen::Service;
        let mut ch = self.ch.clone();
        std::future::poll_fn(|cx| ch.poll_ready(cx)).await.expect("the channel is ready");
        let req = http::Request::builder()
            .method("POST")
            .uri(format!("http://localhost{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(tonic::body::Body::empty())
            .expect("a valid request");
        ch.call(req).await.expect("an answer")
    }
}

async fn admin(srv: &Server) -> Client {
    Client::login(srv, ADMIN, ADMIN_PASSWORD).await
}

async fn create_key(admin: &Client, name: &str) -> admin::CreateKeyResponse {
    admin
        .keys()
        .create_key(admin::CreateKeyRequest { name: name.into(), ..Default::default() })
        .await
        .unwrap_or_else(|e| panic!("CreateKey {name:?}: {e:?}"))
        .into_inner()
}

/// A data plane's Watch stream, spoken by hand.
struct Watch {
    tx: tokio::sync::mpsc::Sender<dp::WatchRequest>,
    rx: Streaming<dp::WatchResponse>,
}

impl Watch {
    async fn open(client: &Client, dataplane_id: &str) -> Watch {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let hello = dp::Hello { dataplane_id: dataplane_id.into(), ..Default::default() };
        tx.send(dp::WatchRequest { msg: Some(dp::watch_request::Msg::Hello(hello)) }).await.expect("queueing Hello");
        let outbound = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
        let rx = client.dataplane().watch(outbound).await.expect("Watch").into_inner();
        Watch { tx, rx }
    }

    async fn next(&mut self) -> dp::WatchResponse {
        match tokio::time::timeout(WAIT, self.rx.message()).await {
            Ok(Ok(Some(r))) => r,
            other => panic!("no watch response: {other:?}"),
        }
    }

    /// The next response that carries a revision newer than `revision`.
    async fn next_after(&mut self, revision: u64) -> dp::WatchResponse {
        loop {
            let r = self.next().await;
            if r.revision > revision {
                return r;
            }
        }
    }

    async fn ack(&self, r: &dp::WatchResponse) {
        let ack = dp::Ack { nonce: r.nonce.clone(), revision: r.revision };
        self.tx.send(dp::WatchRequest { msg: Some(dp::watch_request::Msg::Ack(ack)) }).await.expect("sending Ack");
    }

    async fn nack(&self, r: &dp::WatchResponse, error: &str) {
        let nack = dp::Nack { nonce: r.nonce.clone(), revision: r.revision, error: error.into() };
        self.tx.send(dp::WatchRequest { msg: Some(dp::watch_request::Msg::Nack(nack)) }).await.expect("sending Nack");
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("a clock after 1970").as_millis() as u64
}

// ------------------------------------------------------------------ HTTP and the exposition

struct HttpAnswer {
    status: u16,
    headers: String,
    body: String,
}

/// One HTTP/1.1 request to the control plane's HTTP listener.
async fn http(srv: &Server, method: &str, path: &str) -> HttpAnswer {
    let addr = srv.http.strip_prefix("http://").expect("an http:// address");
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connecting to the HTTP listener");
    let req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    conn.write_all(req.as_bytes()).await.expect("sending the request");
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, conn.read_to_end(&mut raw)).await.expect("an answer in time").expect("reading");
    let raw = String::from_utf8(raw).expect("a UTF-8 answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    HttpAnswer { status, headers: head.to_ascii_lowercase(), body: body.to_owned() }
}

async fn scrape(srv: &Server) -> String {
    let a = http(srv, "GET", "/metrics").await;
    assert_eq!(a.status, 200, "GET /metrics: {}", a.body);
    a.body
}

/// The value of the sample `name` whose labels are exactly `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<&str, &str> = labels.iter().copied().collect();
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (n, got) = match series.split_once('{') {
            Some((n, rest)) => (n, parse_labels(rest.strip_suffix('}')?)),
            None => (series, BTreeMap::new()),
        };
        (n == name && got == want).then(|| value.parse().ok())?
    })
}

fn parse_labels(s: &str) -> BTreeMap<&str, &str> {
    s.split("\",")
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.split_once("=\""))
        .map(|(k, v)| (k, v.trim_end_matches('"')))
        .collect()
}

#[track_caller]
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(text, name, labels).unwrap_or_else(|| panic!("no sample {name}{labels:?} in\n{text}"))
}

/// Scrapes until `name{labels}` reaches `at_least`; the exposition then.
async fn scrape_until(srv: &Server, name: &str, labels: &[(&str, &str)], at_least: f64) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = scrape(srv).await;
        if sample(&text, name, labels).is_some_and(|v| v >= at_least) {
            return text;
        }
        assert!(Instant::now() < deadline, "{name}{labels:?} never reached {at_least}:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn calls<'a>(service: &'a str, method: &'a str, code: &'a str) -> [(&'a str, &'a str); 3] {
    [("service", service), ("method", method), ("code", code)]
}

// ------------------------------------------------------------------ tests

on_both_backends!(async: the_database_pool_and_the_lease_are_shown);

async fn the_database_pool_and_the_lease_are_shown(env: Env) {
    let backend = env.backend;
    let srv = env.start();
    // The single replica takes the housekeeping lease soon after it starts.
    let text = scrape_until(&srv, "ccag_leader", &[], 1.0).await;
    let max = value(&text, "ccag_db_pool_max_connections", &[]);
    let idle = value(&text, "ccag_db_pool_connections", &[("state", "idle")]);
    let in_use = value(&text, "ccag_db_pool_connections", &[("state", "in_use")]);
    match backend {
        Backend::Sqlite => assert_eq!(max, 1.0, "SQLite runs on one connection"),
        Backend::Postgres => assert!(max > 1.0, "{max}"),
    }
    assert!(idle + in_use >= 1.0 && idle + in_use <= max, "idle {idle}, in use {in_use}, max {max}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_are_public_plain_text_0_0_4() {
    let env = Env::new(Backend::Sqlite);
    let srv = env.start();
    let a = http(&srv, "GET", "/metrics").await;
    assert_eq!(a.status, 200);
    assert!(a.headers.contains("content-type: text/plain; version=0.0.4; charset=utf-8"), "{}", a.headers);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(value(&a.body, "ccag_build_info", &[("version", version), ("plane", "controlplane")]), 1.0);
    assert!(sample(&a.body, "process_resident_memory_bytes", &[]).is_some(), "{}", a.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_calls_are_counted_by_service_method_and_code() {
    let env = Env::new(Backend::Sqlite);
    let srv = env.start();
    let admin = admin(&srv).await;
    admin
        .users()
        .create_user(admin::CreateUserRequest {
            email: "member@example.com".into(),
            role: admin::Role::Member as i32,
            password: "member-password-1".into(),
            ..Default::default()
        })
        .await
        .expect("CreateUser");
    let member = Client::login(&srv, "member@example.com", "member-password-1").await;
    let refused = member
        .users()
        .create_user(admin::CreateUserRequest { email: "x@example.com".into(), ..Default::default() })
        .await;
    assert_eq!(refused.map(|_| ()).map_err(|s| s.code()), Err(Code::PermissionDenied));
    let anonymous = Client::anonymous(&srv).await.users().list_users(admin::ListUsersRequest::default()).await;
    assert_eq!(anonymous.map(|_| ()).map_err(|s| s.code()), Err(Code::Unauthenticated));

    let text = scrape(&srv).await;
    let users = "ccag.admin.v1.UserService";
    let name = "ccag_admin_api_requests_total";
    assert_eq!(value(&text, name, &calls("ccag.admin.v1.AuthService", "Login", "OK")), 2.0);
    assert_eq!(value(&text, name, &calls(users, "CreateUser", "OK")), 1.0);
    assert_eq!(value(&text, name, &calls(users, "CreateUser", "PermissionDenied")), 1.0);
    assert_eq!(value(&text, name, &calls(users, "ListUsers", "Unauthenticated")), 1.0);
    let timed = [("service", users), ("method", "CreateUser")];
    assert_eq!(value(&text, "ccag_admin_api_request_duration_seconds_count", &timed), 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_grpc_paths_fall_under_unknown() {
    let env = Env::new(Backend::Sqlite);
    let srv = env.start();
    let client = Client::anonymous(&srv).await;
    for path in ["/ccag.admin.v1.NoSuchService/Nope", "/ccag.admin.v1.KeyService/NoSuchMethod", "/no-such-thing"] {
        let res = client.raw(path).await;
        assert_eq!(res.headers().get("grpc-status").map(|v| v.as_bytes()), Some(&b"12"[..]), "{path}: {res:?}");
    }
    let text = scrape(&srv).await;
    assert_eq!(value(&text, "ccag_admin_api_requests_total", &calls("unknown", "unknown", "Unimplemented")), 3.0);
    for raw in ["NoSuch", "Nope", "no-such-thing"] {
        assert!(!text.contains(raw), "{raw:?} became a label:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exposition_passes_promtool() {
    let env = Env::new(Backend::Sqlite);
    let srv = env.start();
    let admin = admin(&srv).await;
    create_key(&admin, "k").await;
    let _ = Client::anonymous(&srv).await.users().list_users(admin::ListUsersRequest::default()).await;
    let _ = http(&srv, "GET", "/nope").await;
    let text = scrape(&srv).await;
    let promtool = match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("skipped: promtool is not installed ({e}); apt-get install prometheus");
            return;
        }
    };
    let checked = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut p = promtool;
        p.stdin.take().expect("piped stdin").write_all(text.as_bytes()).expect("feeding promtool");
        p.wait_with_output().expect("running promtool")
    })
    .await
    .expect("promtool ran");
    assert!(
        checked.status.success(),
        "promtool check metrics failed ({}):\n{}{}",
        checked.status,
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_user_or_request_id_appears_in_the_metrics() {
    let env = Env::new(Backend::Sqlite);
    let srv = env.start_with(&[("CCAG_DATAPLANE_TOKEN", DATAPLANE_TOKEN)]);
    let admin = admin(&srv).await;
    let created = create_key(&admin, "secret-key-name").await;
    let key = created.api_key.expect("api_key");
    let me = AuthServiceClient::new(admin.svc()).who_am_i(admin::WhoAmIRequest {}).await.expect("WhoAmI").into_inner();
    let mut plane = admin.with_token(DATAPLANE_TOKEN).dataplane();
    let record = dp::UsageRecord {
        request_id: "req_metrics_0001".into(),
        key_id: key.id.clone(),
        user_id: me.user_id.clone(),
        model: "claude-sonnet-4-5".into(),
        started_at_ms: now_ms() - 1000,
        duration_ms: 500,
        ..Default::default()
    };
    plane
        .report_usage(dp::ReportUsageRequest {
            dataplane_id: "dp-metrics-7".into(),
            records: vec![record],
            endpoints: vec![],
        })
        .await
        .expect("ReportUsage");
    let text = scrape(&srv).await;
    for secret in [
        key.id.as_str(),
        me.user_id.as_str(),
        created.key.as_str(),
        "secret-key-name",
        "req_metrics_0001",
        "dp-metrics-7",
        DATAPLANE_TOKEN,
    ] {
        assert!(!secret.is_empty());
        assert!(!text.contains(secret), "{secret:?} appears in the metrics:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_requests_are_counted_by_route_and_status_class() {
    let env = Env::new(Backend::Sqlite);
    let srv = env.start();
    assert_eq!(http(&srv, "GET", "/health").await.status, 200);
    assert_eq!(http(&srv, "GET", "/no/such/page").await.status, 404);
    assert_eq!(http(&srv, "POST", "/metrics").await.status, 405);
    let text = scrape(&srv).await;
    let name = "ccag_http_requests_total";
    assert_eq!(value(&text, name, &[("route", "health"), ("status_class", "2xx")]), 1.0);
    assert_eq!(value(&text, name, &[("route", "other"), ("status_class", "4xx")]), 1.0);
    assert_eq!(value(&text, name, &[("route", "metrics"), ("status_class", "4xx")]), 1.0);
    assert!(!text.contains("/no/such/page"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_reports_count_stored_and_duplicate_records_and_their_lag() {
    let env = Env::new(Backend::Sqlite);
    let srv = env.start_with(&[("CCAG_DATAPLANE_TOKEN", DATAPLANE_TOKEN)]);
    let admin = admin(&srv).await;
    let mut plane = admin.with_token(DATAPLANE_TOKEN).dataplane();
    // Each request ended two seconds ago.
    let record = |id: &str| dp::UsageRecord {
        request_id: id.into(),
        model: "claude-sonnet-4-5".into(),
        started_at_ms: now_ms() - 3000,
        duration_ms: 1000,
        ..Default::default()
    };
    let report = |records| dp::ReportUsageRequest { dataplane_id: "dp-1".into(), records, endpoints: vec![] };
    plane.report_usage(report(vec![record("r1"), record("r2")])).await.expect("ReportUsage");
    plane.report_usage(report(vec![record("r1")])).await.expect("ReportUsage again");

    let text = scrape(&srv).await;
    let name = "ccag_usage_records_ingested_total";
    assert_eq!(value(&text, name, &[("result", "stored")]), 2.0);
    assert_eq!(value(&text, name, &[("result", "duplicate")]), 1.0);
    assert_eq!(value(&text, "ccag_usage_ingest_lag_seconds_count", &[]), 3.0);
    assert_eq!(value(&text, "ccag_usage_ingest_lag_seconds_bucket", &[("le", "1")]), 0.0, "{text}");
    assert_eq!(value(&text, "ccag_usage_ingest_lag_seconds_bucket", &[("le", "30")]), 3.0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_acknowledged_by_a_data_plane_is_timed_once() {
    let env = Env::new(Backend::Sqlite);
    let srv = env.start_with(&[("CCAG_DATAPLANE_TOKEN", DATAPLANE_TOKEN)]);
    let admin = admin(&srv).await;
    let plane = admin.with_token(DATAPLANE_TOKEN);
    let mut watch = Watch::open(&plane, "dp-1").await;
    let first = watch.next().await;
    watch.ack(&first).await;
    let text = scrape_until(&srv, "ccag_dataplanes_connected", &[], 1.0).await;
    assert_eq!(
        value(&text, "ccag_config_push_duration_seconds_count", &[]),
        0.0,
        "the state a joining data plane is sent is no push"
    );

    create_key(&admin, "moves-the-revision").await;
    let change = watch.next_after(first.revision).await;
    watch.ack(&change).await;
    watch.ack(&change).await;
    let text = scrape_until(&srv, "ccag_config_push_duration_seconds_count", &[], 1.0).await;
    assert_eq!(value(&text, "ccag_config_revision", &[]), change.revision as f64);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let text = scrape(&srv).await;
    assert_eq!(value(&text, "ccag_config_push_duration_seconds_count", &[]), 1.0, "timed once");
    assert_eq!(value(&text, "ccag_config_push_duration_seconds_bucket", &[("le", "10")]), 1.0, "{text}");

    drop(watch);
    scrape_until_zero(&srv, "ccag_dataplanes_connected").await;
}

async fn scrape_until_zero(srv: &Server, name: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = scrape(srv).await;
        if sample(&text, name, &[]) == Some(0.0) {
            return;
        }
        assert!(Instant::now() < deadline, "{name} never went back to 0:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_configuration_is_counted() {
    let env = Env::new(Backend::Sqlite);
    let srv = env.start_with(&[("CCAG_DATAPLANE_TOKEN", DATAPLANE_TOKEN)]);
    let admin = admin(&srv).await;
    let mut watch = Watch::open(&admin.with_token(DATAPLANE_TOKEN), "dp-1").await;
    assert_eq!(value(&scrape(&srv).await, "ccag_config_nacks_total", &[]), 0.0);
    let first = watch.next().await;
    watch.nack(&first, "cannot apply").await;
    scrape_until(&srv, "ccag_config_nacks_total", &[], 1.0).await;
    assert!(!scrape(&srv).await.contains("cannot apply"));
}

/// A webhook receiver on loopback answering every request with `status`.
async fn receiver(status: u16) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding a receiver");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                // Reads the head and whatever body came with it, then answers.
                let mut buf = vec![0u8; 64 * 1024];
                let _ = tokio::time::timeout(Duration::from_millis(200), conn.read(&mut buf)).await;
                let answer = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = conn.write_all(answer.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/hook")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_deliveries_are_counted_by_channel_and_outcome() {
    use ccag_proto::admin::v1::notification_service_client::NotificationServiceClient;
    let env = Env::new(Backend::Sqlite);
    let srv = env.start_with(&[("CCAG_OUTBOUND_ALLOW_CIDRS", "127.0.0.0/8")]);
    let admin = admin(&srv).await;
    for (name, status) in [("takes-it", 204), ("fails", 503)] {
        NotificationServiceClient::new(admin.svc())
            .create_destination(admin::CreateDestinationRequest {
                name: name.into(),
                kind: admin::DestinationKind::Webhook as i32,
                target: receiver(status).await,
                events: vec!["key.created".into()],
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("CreateDestination {name}: {e:?}"));
    }
    create_key(&admin, "announced").await;
    let name = "ccag_notification_deliveries_total";
    scrape_until(&srv, name, &[("channel", "webhook"), ("outcome", "delivered")], 1.0).await;
    let text = scrape_until(&srv, name, &[("channel", "webhook"), ("outcome", "retrying")], 1.0).await;
    assert_eq!(value(&text, name, &[("channel", "webhook"), ("outcome", "delivered")]), 1.0);
    assert_eq!(value(&text, name, &[("channel", "sns"), ("outcome", "delivered")]), 0.0);
}
