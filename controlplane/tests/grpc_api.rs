//! The gRPC API of a real `ccag-controlplane`, driven through the generated
//! tonic clients: the admin API, health, reflection and the data-plane
//! service. Tests whose outcome depends on storage run on SQLite and on
//! PostgreSQL (see `common` for the harness and `CCAG_TEST_SKIP_POSTGRES`).

#[path = "grpc_api/analytics.rs"]
mod analytics;
mod common;
#[path = "grpc_api/routing.rs"]
mod routing;
#[path = "grpc_api/startup.rs"]
mod startup;

use std::time::{Duration, Instant};

use ccag_proto::admin::v1 as admin;
use ccag_proto::admin::v1::{
    audit_service_client::AuditServiceClient, auth_service_client::AuthServiceClient,
    key_service_client::KeyServiceClient, status_service_client::StatusServiceClient,
    team_service_client::TeamServiceClient, usage_service_client::UsageServiceClient,
    user_service_client::UserServiceClient,
};
use ccag_proto::config::v1 as dp;
use ccag_proto::config::v1::data_plane_service_client::DataPlaneServiceClient;
use common::{on_both_backends, unique, Backend, Bearer, Env, Server, Svc, ADMIN, ADMIN_PASSWORD};
use sha2::{Digest, Sha256};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status, Streaming};

const DATAPLANE_TOKEN: &str = "dp-test-token-0123456789";
const MEMBER_PASSWORD: &str = "member-password-1";
/// How much of a key the API may show: its visible prefix.
const VISIBLE_CHARS: usize = 12;
/// Any longer run of the key's secret part in a response counts as a leak.
const LEAK_WINDOW: usize = 8;
const STREAM_TIMEOUT: Duration = Duration::from_secs(10);

// ------------------------------------------------------------------ clients

/// One connection to a server, acting as one caller.
#[derive(Clone)]
struct Client {
    ch: Channel,
    bearer: Bearer,
}

async fn channel(srv: &Server) -> Channel {
    Endpoint::from_shared(srv.grpc.clone())
        .expect("a valid endpoint URL")
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connecting to {}: {e}\nserver log:\n{}", srv.grpc, srv.log()))
}

impl Client {
    /// No `authorization` metadata at all.
    async fn anonymous(srv: &Server) -> Client {
        Client { ch: channel(srv).await, bearer: Bearer(None) }
    }

    fn with_token(&self, token: &str) -> Client {
        Client { ch: self.ch.clone(), bearer: Bearer::new(token) }
    }

    async fn login(srv: &Server, username: &str, password: &str) -> Client {
        let anon = Client::anonymous(srv).await;
        let res = anon
            .auth()
            .login(admin::LoginRequest { username: username.into(), password: password.into() })
            .await
            .unwrap_or_else(|e| panic!("login as {username}: {e:?}\nserver log:\n{}", srv.log()))
            .into_inner();
        anon.with_token(&res.token)
    }

    async fn admin(srv: &Server) -> Client {
        Client::login(srv, ADMIN, ADMIN_PASSWORD).await
    }

    fn svc(&self) -> Svc {
        InterceptedService::new(self.ch.clone(), self.bearer.clone())
    }
    fn auth(&self) -> AuthServiceClient<Svc> {
        AuthServiceClient::new(self.svc())
    }
    fn users(&self) -> UserServiceClient<Svc> {
        UserServiceClient::new(self.svc())
    }
    fn teams(&self) -> TeamServiceClient<Svc> {
        TeamServiceClient::new(self.svc())
    }
    fn keys(&self) -> KeyServiceClient<Svc> {
        KeyServiceClient::new(self.svc())
    }
    fn audit(&self) -> AuditServiceClient<Svc> {
        AuditServiceClient::new(self.svc())
    }
    fn status(&self) -> StatusServiceClient<Svc> {
        StatusServiceClient::new(self.svc())
    }
    fn usage(&self) -> UsageServiceClient<Svc> {
        UsageServiceClient::new(self.svc())
    }
    fn pricing(&self) -> ccag_proto::admin::v1::pricing_service_client::PricingServiceClient<Svc> {
        ccag_proto::admin::v1::pricing_service_client::PricingServiceClient::new(self.svc())
    }
    fn search(&self) -> ccag_proto::admin::v1::search_service_client::SearchServiceClient<Svc> {
        ccag_proto::admin::v1::search_service_client::SearchServiceClient::new(self.svc())
    }
    fn dataplane(&self) -> DataPlaneServiceClient<Svc> {
        DataPlaneServiceClient::new(self.svc())
    }

    async fn whoami(&self) -> Result<admin::Principal, Status> {
        self.auth().who_am_i(admin::WhoAmIRequest {}).await.map(tonic::Response::into_inner)
    }

    async fn user_id(&self) -> String {
        self.whoami().await.expect("WhoAmI").user_id
    }

    async fn create_key(&self, name: &str) -> admin::CreateKeyResponse {
        self.keys()
            .create_key(admin::CreateKeyRequest { name: name.into(), ..Default::default() })
            .await
            .unwrap_or_else(|e| panic!("CreateKey {name:?}: {e:?}"))
            .into_inner()
    }
}

/// Creates a member with a password, logs in as them, and returns the
/// member's client and user id.
async fn member(srv: &Server, admin: &Client, email: &str) -> (Client, String) {
    let user = admin
        .users()
        .create_user(admin::CreateUserRequest {
            email: email.into(),
            role: admin::Role::Member as i32,
            password: MEMBER_PASSWORD.into(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("CreateUser {email}: {e:?}"))
        .into_inner();
    assert_eq!(user.role, admin::Role::Member as i32);
    (Client::login(srv, email, MEMBER_PASSWORD).await, user.id)
}

#[track_caller]
fn code<T: std::fmt::Debug>(r: Result<T, Status>) -> Code {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(s) => s.code(),
    }
}

#[track_caller]
fn expect_code<T: std::fmt::Debug>(r: Result<tonic::Response<T>, Status>, want: Code) -> Status {
    match r {
        Ok(v) => panic!("expected {want:?}, got {:?}", v.get_ref()),
        Err(s) => {
            assert_eq!(s.code(), want, "{s:?}");
            s
        }
    }
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Fails if `text` holds the key beyond its visible prefix: the prefix and
/// one more character, or any run of the secret part of `LEAK_WINDOW`
/// characters.
#[track_caller]
fn assert_no_key(text: &str, key: &str) {
    assert!(!text.contains(&key[..=VISIBLE_CHARS]), "the key leaked: {text}");
    let secret = &key[VISIBLE_CHARS..];
    for i in 0..=secret.len() - LEAK_WINDOW {
        let run = &secret[i..i + LEAK_WINDOW];
        assert!(!text.contains(run), "part of the key ({run}) leaked: {text}");
    }
}

// ------------------------------------------------------------------ data plane

/// A data plane's Watch stream, spoken by hand.
struct Watch {
    tx: tokio::sync::mpsc::Sender<dp::WatchRequest>,
    rx: Streaming<dp::WatchResponse>,
}

impl Watch {
    /// Opens the stream and says Hello, holding nothing.
    async fn open(client: &Client, dataplane_id: &str) -> Result<Watch, Status> {
        Self::open_holding(client, dataplane_id, "", 0).await
    }

    /// Opens the stream and says Hello, holding `epoch` at `revision`.
    async fn open_holding(client: &Client, dataplane_id: &str, epoch: &str, revision: u64) -> Result<Watch, Status> {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let hello =
            dp::Hello { dataplane_id: dataplane_id.into(), revision, address: String::new(), epoch: epoch.into() };
        tx.send(dp::WatchRequest { msg: Some(dp::watch_request::Msg::Hello(hello)) }).await.expect("queueing Hello");
        let outbound = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
        let rx = client.dataplane().watch(outbound).await?.into_inner();
        Ok(Watch { tx, rx })
    }

    /// The next response, which must arrive by `deadline`.
    async fn next_by(&mut self, deadline: Instant) -> dp::WatchResponse {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, self.rx.message()).await {
            Err(_) => panic!("no response arrived in time"),
            Ok(Err(e)) => panic!("the watch stream failed: {e:?}"),
            Ok(Ok(None)) => panic!("the watch stream ended"),
            Ok(Ok(Some(r))) => r,
        }
    }

    /// The next response that changes configuration (not only this data
    /// plane's rate-limit shares), newer than `revision`.
    async fn next_change(&mut self, revision: u64, within: Duration) -> dp::WatchResponse {
        let deadline = Instant::now() + within;
        loop {
            let r = self.next_by(deadline).await;
            let only_shares = !r.full_state
                && r.removed.is_empty()
                && r.resources.iter().all(|x| matches!(x.kind, Some(dp::resource::Kind::Shares(_))));
            if r.revision > revision && !only_shares {
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

fn keys_of(r: &dp::WatchResponse) -> Vec<&dp::ApiKey> {
    r.resources
        .iter()
        .filter_map(|x| match &x.kind {
            Some(dp::resource::Kind::Key(k)) => Some(k),
            _ => None,
        })
        .collect()
}

fn holds_key(r: &dp::WatchResponse, sha256: &str) -> bool {
    keys_of(r).iter().any(|k| k.sha256 == sha256)
}

async fn acked_in_status(admin: &Client, dataplane: &str, revision: u64) -> admin::Status {
    let deadline = Instant::now() + STREAM_TIMEOUT;
    loop {
        let status = admin.status().get_status(admin::GetStatusRequest {}).await.expect("GetStatus").into_inner();
        let plane = status.dataplanes.iter().find(|d| d.id == dataplane);
        if plane.is_some_and(|d| d.acked_version == revision) {
            return status;
        }
        assert!(Instant::now() < deadline, "the ack of {revision} never showed: {status:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("a clock after 1970").as_millis() as u64
}

// ------------------------------------------------------------------ tests

on_both_backends!(
    async:
    login_returns_a_session_token,
    missing_or_garbage_tokens_are_unauthenticated,
    wrong_password_fails_like_an_unknown_user,
    repeated_failed_logins_make_the_next_attempt_wait,
    create_user_without_email_or_subject_is_invalid,
    duplicate_user_email_already_exists,
    unknown_user_is_not_found,
    members_cannot_create_users,
    members_cannot_reach_an_admins_key,
    members_list_only_their_own_keys,
    members_create_keys_for_themselves,
    members_cannot_set_key_limits,
    key_plaintext_is_returned_only_at_creation,
    revoked_keys_stay_revoked,
    create_team_is_audited,
    key_audit_holds_no_plaintext,
    the_last_admin_cannot_be_deleted_or_demoted,
    api_tokens_authenticate_until_revoked,
    sessions_are_listed_with_who_opened_them,
    a_revoked_session_stops_at_once,
    logout_ends_only_the_calling_session,
    members_see_and_end_only_their_own_sessions,
    disabling_a_user_ends_their_sessions_for_good,
    watch_streams_every_change,
    an_audit_only_change_moves_no_revision,
    a_current_data_plane_is_sent_nothing_on_reconnect,
    a_data_plane_behind_is_sent_only_what_it_lacks,
    a_nack_keeps_status_informed_and_is_answered_with_the_full_state,
    a_stale_nonce_is_ignored,
    a_data_plane_ahead_of_the_database_starts_a_new_epoch,
    shutdown_ends_open_watch_streams,
    report_usage_is_idempotent_and_priced,
    usage_by_hour_and_day_names_each_group,
    restart_keeps_users_and_keys,
    search_provider_keys_are_never_shown_or_audited,
    members_may_not_aim_web_search_at_a_url,
    search_providers_on_forbidden_addresses_are_refused,
    global_search_mode_needs_the_organisations_provider,
);

async fn login_returns_a_session_token(env: Env) {
    let srv = env.start();
    let anon = Client::anonymous(&srv).await;
    let res = anon
        .auth()
        .login(admin::LoginRequest { username: ADMIN.into(), password: ADMIN_PASSWORD.into() })
        .await
        .expect("Login")
        .into_inner();
    assert!(!res.token.is_empty(), "{res:?}");
    assert!(!res.expires_at.is_empty(), "{res:?}");
    let me = anon.with_token(&res.token).whoami().await.expect("WhoAmI");
    assert_eq!(me.role, admin::Role::Admin as i32, "{me:?}");
    assert_eq!(me.via, "session", "{me:?}");
    assert_eq!(me.email, ADMIN, "{me:?}");
    assert_eq!(Some(&me), res.principal.as_ref());
}

async fn missing_or_garbage_tokens_are_unauthenticated(env: Env) {
    let srv = env.start();
    let anon = Client::anonymous(&srv).await;
    assert_eq!(code(anon.whoami().await), Code::Unauthenticated);
    assert_eq!(code(anon.users().list_users(admin::ListUsersRequest::default()).await), Code::Unauthenticated);
    // Not a session token, and not an API token this server issued.
    for garbage in ["garbage", "a.b.c", "ccag_at_0123456789abcdefghijklmnopqrstuvwxyzABCD"] {
        let c = anon.with_token(garbage);
        assert_eq!(code(c.whoami().await), Code::Unauthenticated, "token {garbage:?}");
        assert_eq!(
            code(c.users().list_users(admin::ListUsersRequest::default()).await),
            Code::Unauthenticated,
            "token {garbage:?}"
        );
    }
}

async fn wrong_password_fails_like_an_unknown_user(env: Env) {
    let srv = env.start();
    let auth = Client::anonymous(&srv).await.auth();
    let wrong = expect_code(
        auth.clone().login(admin::LoginRequest { username: ADMIN.into(), password: "not-the-password".into() }).await,
        Code::Unauthenticated,
    );
    let unknown = expect_code(
        auth.clone()
            .login(admin::LoginRequest { username: "nobody@example.com".into(), password: "whatever-1".into() })
            .await,
        Code::Unauthenticated,
    );
    assert_eq!(wrong.message(), unknown.message());
}

async fn repeated_failed_logins_make_the_next_attempt_wait(env: Env) {
    let srv = env.start();
    let auth = Client::anonymous(&srv).await.auth();
    for _ in 0..5 {
        expect_code(
            auth.clone().login(admin::LoginRequest { username: ADMIN.into(), password: "guess-guess".into() }).await,
            Code::Unauthenticated,
        );
    }
    // Even the right password waits now: guessing gets no answer at all.
    let throttled = expect_code(
        auth.clone().login(admin::LoginRequest { username: ADMIN.into(), password: ADMIN_PASSWORD.into() }).await,
        Code::ResourceExhausted,
    );
    assert!(throttled.message().contains("try again"), "{}", throttled.message());
}

async fn create_user_without_email_or_subject_is_invalid(env: Env) {
    let srv = env.start();
    let admin = Client::admin(&srv).await;
    let r = admin.users().create_user(admin::CreateUserRequest::default()).await;
    expect_code(r, Code::InvalidArgument);
    let blank = admin::CreateUserRequest { email: "  ".into(), subject: " ".into(), ..Default::default() };
    expect_code(admin.users().create_user(blank).await, Code::InvalidArgument);
}

async fn duplicate_user_email_already_exists(env: Env) {
    let srv = env.start();
    let admin = Client::admin(&srv).await;
    let req = admin::CreateUserRequest { email: "dup@example.com".into(), ..Default::default() };
    admin.users().create_user(req.clone()).await.expect("the first CreateUser");
    expect_code(admin.users().create_user(req).await, Code::AlreadyExists);
}

async fn unknown_user_is_not_found(env: Env) {
    let srv = env.start();
    let admin = Client::admin(&srv).await;
    let r = admin.users().get_user(admin::GetUserRequest { id: "usr_doesnotexist0000000".into() }).await;
    expect_code(r, Code::NotFound);
}

async fn members_cannot_create_users(env: Env) {
    let srv = env.start();
    let admin = Client::admin(&srv).await;
    let (mia, _) = member(&srv, &admin, "mia@example.com").await;
    let req = admin::CreateUserRequest { email: "x@example.com".into(), ..Default::default() };
    expect_code(mia.users().create_user(req).await, Code::PermissionDenied);
    let r = admin.users().get_user(admin::GetUserRequest { id: "x@example.com".into() }).await;
    expect_code(r, Code::NotFound);
}

async fn members_cannot_reach_an_admins_key(env: Env) {
    let srv = env.start();
    let admin = Client::admin(&srv).await;
    let key = admin.create_key("admin-key").await.api_key.expect("api_key");
    let (mia, _) = member(&srv, &admin, "mia@example.com").await;
    expect_code(mia.keys().get_key(admin::GetKeyRequest { id: key.id.clone() }).await, Code::PermissionDenied);
    expect_code(mia.keys().revoke_key(admin::RevokeKeyRequest { id: key.id.clone() }).await, Code::PermissionDenied);
    let still = admin.keys().get_key(admin::GetKeyRequest { id: key.id }).await.expect("GetKey").into_inner();
    assert_eq!(still.status, admin::KeyStatus::Active as i32, "{still:?}");
}

async fn members_list_only_their_own_keys(env: Env) {
    let srv = env.start();
    let admin = Client::admin(&srv).await;
    let admin_key = admin.create_key("admin-key").await.api_key.expect("api_key");
    let (mia, mia_id) = member(&srv, &admin, "mia@example.com").await;
    let own = mia.create_key("mine").await.api_key.expect("api_key");
    let list = mia.keys().list_keys(admin::ListKeysRequest::default()).await.expect("ListKeys").into_inner();
    let ids: Vec<&str> = list.keys.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(ids, [own.id.as_str()], "{list:?}");
    assert!(list.keys.iter().all(|k| k.user_id == mia_id), "{list:?}");
    // Asking for the admin's keys by user does not widen the view.
    let admin_id = admin.user_id().await;
    let asked = mia.keys().list_keys(admin::ListKeysRequest { user_id: admin_id, ..Default::default() }).await;
    if let Ok(asked) = asked {
        assert!(asked.get_ref().keys.iter().all(|k| k.user_id == mia_id), "{asked:?}");
        assert!(!asked.get_ref().keys.iter().any(|k| k.id == admin_key.id), "{asked:?}");
    } else {
        assert_eq!(code(asked), Code::PermissionDenied);
    }
}

async fn members_create_keys_for_themselves(env: Env) {
    let srv = env.start();
    let admin = Client::admin(&srv).await;
    let (mia, mia_id) = member(&srv, &admin, "mia@example.com").await;
    let created = mia.create_key("mine").await;
    assert!(created.key.starts_with("sk-ccag-"), "{created:?}");
    let key = created.api_key.expect("api_key");
    assert_eq!(key.user_id, mia_id);
    let got = mia.keys().get_key(admin::GetKeyRequest { id: key.id.clone() }).await.expect("GetKey").into_inner();
    assert_eq!(got.id, key.id);
    // Naming themselves explicitly is the same.
    let req = admin::CreateKeyRequest { name: "mine-2".into(), user_id: mia_id.clone(), ..Default::default() };
    let k2 = mia.keys().create_key(req).await.expect("CreateKey for self").into_inner();
    assert_eq!(k2.api_key.expect("api_key").user_id, mia_id);
    // But not for anyone else.
    let req = admin::CreateKeyRequest { name: "theirs".into(), user_id: admin.user_id().await, ..Default::default() };
    expect_code(mia.keys().create_key(req).await, Code::PermissionDenied);
}

async fn members_cannot_set_key_limits(env: Env) {
    let srv = env.start();
    let admin = Client::admin(&srv).await;
    let (mia, _) = member(&srv, &admin, "mia@example.com").await;
    let req = admin::CreateKeyRequest { name: "fast".into(), rpm: 10, ..Default::default() };
    expect_code(mia.keys().create_key(req).await, Code::PermissionDenied);
    let list = mia.keys().list_keys(admin::ListKeysRequest::default()).await.expect("ListKeys").into_inner();
    assert!(list.keys.is_empty(), "{list:?}");
}

async fn key_plaintext_is_returned_only_at_creation(env: Env) {
    let srv = env.start();
    let admin = Client::admin(&srv).await;
    let created = admin.create_key("laptop").await;
    let key = created.key.clone();
    assert!(key.starts_with("sk-ccag-"), "{created:?}");
    let api_key = created.api_key.expect("api_key");
    assert_eq!(api_key.prefix, key[..VISIBLE_CHARS], "{api_key:?}");
    assert_no_key(&format!("{api_key:?}"), &key);

    let got = admin.keys().get_key(admin::GetKeyRequest { id: api_key.id.clone() }).await.expect("GetKey");
    let got = got.into_inner();
    assert_eq!(got.id, api_key.id);
    assert_no_key(&format!("{got:?}"), &key);

    let list = admin.keys().list_keys(admin::ListKeysRequest::default()).await.expect("ListKeys").into_inner();
    assert!(list.keys.iter().any(|k| k.id == api_key.id), "{list:?}");
    assert_no_key(&format!("{list:?}"), &key);
}

async fn revoked_keys_stay_revoked(env: Env) {
    let srv = env.start();
    let admin = Client::admin(&srv).await;
    let key = admin.create_key("doomed").await.api_key.expect("api_key");
    let revoked = admin.keys().revoke_key(admin::RevokeKeyRequest { id: key.id.clone() }).await.expect("RevokeKey");
    assert_eq!(revoked.get_ref().status, admin::KeyStatus::Revoked as i32);
    let back =
        admin::UpdateKeyRequest { id: key.id.clone(), status: admin::KeyStatus::Active as i32, ..Default::default() };
    expect_code(admin.keys().update_key(back).await, Code::FailedPrecondition);
    let got = admin.keys().get_key(admin::GetKeyRequest { id: key.id }).await.expect("GetKey").into_inner();
    assert_eq!(got.status, admin::KeyStatus::Revoked as i32, "{got:?}");
}

async fn create_team_is_audited(env: Env) {
    let srv = env.start();
    let admin = Client::admin(&srv).await;
    let admin_id = admin.user_id().await;
    let name = format!("audited-team-{}", unique());
    let team = admin
        .teams()
        .create_team(admin::CreateTeamRequest { name: name.clone(), ..Default::default() })
        .await
        .expect("CreateTeam")
        .into_inner();
    let req = admin::ListAuditRequest { resource_type: "team".into(), ..Default::default() };
    let entries = admin.audit().list_audit(req).await.expect("ListAudit").into_inner().entries;
    let entry = entries
        .iter()
        .find(|e| e.action == "team.create" && e.resource_id == team.id)
        .unwrap_or_else(|| panic!("no team.create entry for {}: {entries:?}", team.id));
    assert_eq!(entry.actor, admin_id, "{entry:?}");
    assert_eq!(entry.resource_type, "team", "{entry:?}");
    assert!(entry.after_json.contains(&name), "{entry:?}");
    assert!(entry.before_json.is_empty(), "{entry:?}");
    assert!(entries.iter().all(|e| e.resource_type == "team"), "{entries:?}");
}

async fn key_audit_holds_no_plaintext(env: Env) {
    let srv = env.start();
    let admin = Client::admin(&srv).await;
    let created = admin.create_key("audited").await;
    let id = created.api_key.expect("api_key").id;
    let req = admin::ListAuditRequest {
        resource_type: "key".into(),
        resource_id: id.clone(),
        action: "key.create".into(),
        ..Default::default()
    };
    let entries = admin.audit().list_audit(req).await.expect("ListAudit").into_inner().entries;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].after_json.contains(&id), "{entries:?}");
    assert_no_key(&entries[0].after_json, &created.key);
    assert_no_key(&format!("{entries:?}"), &created.key);
}

async fn the_last_admin_cannot_be_deleted_or_demoted(env: Env) {
    let srv = env.start();
    let admin = Client::admin(&srv).await;
    let admin_id = admin.user_id().await;
    let r = admin.users().delete_user(admin::DeleteUserRequest { id: admin_id.clone() }).await;
    expect_code(r, Code::FailedPrecondition);
    let demote =
        admin::UpdateUserRequest { id: admin_id.clone(), role: admin::Role::Member as i32, ..Default::default() };
    expect_code(admin.users().update_user(demote.clone()).await, Code::FailedPrecondition);
    let disable = admin::UpdateUserRequest {
        id: admin_id.clone(),
        status: admin::UserStatus::Disabled as i32,
        ..Default::default()
    };
    expect_code(admin.users().update_user(disable).await, Code::FailedPrecondition);
    let me = admin.whoami().await.expect("WhoAmI after the refusals");
    assert_eq!(me.role, admin::Role::Admin as i32);

    // With a second active admin, the first may step down.
    admin
        .users()
        .create_user(admin::CreateUserRequest {
            email: "second-admin@example.com".into(),
            role: admin::Role::Admin as i32,
            ..Default::default()
        })
        .await
        .expect("CreateUser admin");
    let demoted = admin.users().update_user(demote).await.expect("demoting with another admin left");
    assert_eq!(demoted.get_ref().role, admin::Role::Member as i32);
}

async fn api_tokens_authenticate_until_revoked(env: Env) {
    let srv = env.start();
    let admin = Client::admin(&srv).await;
    let admin_id = admin.user_id().await;
    let created = admin
        .auth()
        .create_api_token(admin::CreateApiTokenRequest { name: "automation".into(), ..Default::default() })
        .await
        .expect("CreateApiToken")
        .into_inner();
    assert!(!created.token.is_empty());
    let info = created.api_token.expect("api_token");
    let bot = admin.with_token(&created.token);
    let me = bot.whoami().await.expect("WhoAmI with an API token");
    assert_eq!(me.via, "api_token", "{me:?}");
    assert_eq!(me.user_id, admin_id, "{me:?}");

    let revoked = admin
        .auth()
        .revoke_api_token(admin::RevokeApiTokenRequest { id: info.id })
        .await
        .expect("RevokeApiToken")
        .into_inner();
    assert!(revoked.revoked, "{revoked:?}");
    assert_eq!(code(bot.whoami().await), Code::Unauthenticated);
}

async fn login(srv: &Server, email: &str, password: &str) -> String {
    Client::anonymous(srv)
        .await
        .auth()
        .login(admin::LoginRequest { username: email.into(), password: password.into() })
        .await
        .unwrap_or_else(|e| panic!("Login {email}: {e:?}"))
        .into_inner()
        .token
}

async fn sessions_of(c: &Client, user: &str) -> Vec<admin::Session> {
    c.auth()
        .list_sessions(admin::ListSessionsRequest { user: user.into(), ..Default::default() })
        .await
        .expect("ListSessions")
        .into_inner()
        .sessions
}

async fn sessions_are_listed_with_who_opened_them(env: Env) {
    let srv = env.start();
    let admin = Client::admin(&srv).await;
    let token = login(&srv, ADMIN, ADMIN_PASSWORD).await;
    assert!(token.starts_with("ccag_ses_"), "an opaque server-side session: {token}");
    let mine = sessions_of(&admin.with_token(&token), ADMIN).await;
    assert!(mine.len() >= 2, "{mine:?}");
    let current: Vec<_> = mine.iter().filter(|s| s.current).collect();
    assert_eq!(current.len(), 1, "exactly the calling session is current: {mine:?}");
    let s = current[0];
    assert_eq!((s.via.as_str(), s.user_email.as_str(), s.ip.as_str()), ("password", ADMIN, "127.0.0.1"));
    assert!(s.revoked_at.is_empty() && !s.expires_at.is_empty(), "{s:?}");
}

async fn a_revoked_session_stops_at_once(env: Env) {
    let srv = env.start();
    let admin = Client::admin(&srv).await;
    let other = admin.with_token(&login(&srv, ADMIN, ADMIN_PASSWORD).await);
    let id = sessions_of(&other, ADMIN).await.into_iter().find(|s| s.current).expect("current").id;
    let ended = admin
        .auth()
        .revoke_session(admin::RevokeSessionRequest { id: id.clone() })
        .await
        .expect("RevokeSession")
        .into_inner();
    assert!(!ended.revoked_at.is_empty(), "{ended:?}");
    assert_eq!(code(other.whoami().await), Code::Unauthenticated);
    admin.whoami().await.expect("the admin's own session is untouched");
    let all = admin
        .auth()
        .list_sessions(admin::ListSessionsRequest { include_ended: true, ..Default::default() })
        .await
        .expect("ListSessions")
        .into_inner()
        .sessions;
    assert!(all.iter().any(|s| s.id == id && !s.revoked_at.is_empty()), "ended sessions are listed on request");
    assert!(!sessions_of(&admin, ADMIN).await.iter().any(|s| s.id == id), "and not by default");
}

async fn logout_ends_only_the_calling_session(env: Env) {
    let srv = env.start();
    let admin = Client::admin(&srv).await;
    let other = admin.with_token(&login(&srv, ADMIN, ADMIN_PASSWORD).await);
    other.auth().logout(admin::LogoutRequest {}).await.expect("Logout");
    assert_eq!(code(other.whoami().await), Code::Unauthenticated);
    admin.whoami().await.expect("other sessions stay");
}

async fn members_see_and_end_only_their_own_sessions(env: Env) {
    let srv = env.start();
    let admin = Client::admin(&srv).await;
    let (m, _) = member(&srv, &admin, "sessions-member@example.com").await;
    let theirs = sessions_of(&m, "").await;
    assert!(!theirs.is_empty() && theirs.iter().all(|s| s.user_email == "sessions-member@example.com"), "{theirs:?}");
    assert_eq!(
        code(m.auth().list_sessions(admin::ListSessionsRequest { user: ADMIN.into(), ..Default::default() }).await),
        Code::PermissionDenied
    );
    let admins = sessions_of(&admin, ADMIN).await;
    let r = m.auth().revoke_session(admin::RevokeSessionRequest { id: admins[0].id.clone() }).await;
    assert_eq!(code(r), Code::NotFound, "another user's session is not even acknowledged");
    admin.whoami().await.expect("still signed in");
}

async fn disabling_a_user_ends_their_sessions_for_good(env: Env) {
    let srv = env.start();
    let admin = Client::admin(&srv).await;
    let (m, id) = member(&srv, &admin, "leaver@example.com").await;
    let set = |status: admin::UserStatus| admin::UpdateUserRequest {
        id: id.clone(),
        status: status as i32,
        ..Default::default()
    };
    admin.users().update_user(set(admin::UserStatus::Disabled)).await.expect("disable");
    assert_eq!(code(m.whoami().await), Code::Unauthenticated);
    admin.users().update_user(set(admin::UserStatus::Active)).await.expect("reactivate");
    assert_eq!(code(m.whoami().await), Code::Unauthenticated, "reactivation does not revive old sessions");
    assert!(sessions_of(&admin, &id).await.is_empty());
}

async fn watch_streams_every_change(env: Env) {
    let srv = env.start_with(&[("CCAG_DATAPLANE_TOKEN", DATAPLANE_TOKEN)]);
    let admin = Client::admin(&srv).await;
    let plane = admin.with_token(DATAPLANE_TOKEN);
    let mut watch = Watch::open(&plane, "dp-test").await.expect("opening Watch");
    let first = watch.next_by(Instant::now() + STREAM_TIMEOUT).await;
    assert!(first.full_state && !first.epoch.is_empty(), "a data plane holding nothing gets the full state");

    let created = admin.create_key("watched").await;
    let sha = sha256_hex(&created.key);
    let with_key = watch.next_change(first.revision, STREAM_TIMEOUT).await;
    assert!(!with_key.full_state, "{with_key:?}");
    assert_eq!(with_key.base_revision, first.revision, "a delta names the revision it applies on top of");
    assert!(holds_key(&with_key, &sha), "{with_key:?}");
    assert_eq!(with_key.resources.len(), 1, "a delta holds only what changed: {with_key:?}");
    assert_no_key(&format!("{with_key:?}"), &created.key);

    watch.ack(&with_key).await;
    acked_in_status(&admin, "dp-test", with_key.revision).await;

    let id = created.api_key.expect("api_key").id;
    admin.keys().revoke_key(admin::RevokeKeyRequest { id: id.clone() }).await.expect("RevokeKey");
    let after = watch.next_change(with_key.revision, STREAM_TIMEOUT).await;
    assert_eq!(after.removed, vec![dp::ResourceRef { r#type: dp::ResourceType::Key as i32, name: id }]);
}

async fn an_audit_only_change_moves_no_revision(env: Env) {
    let srv = env.start();
    let admin = Client::admin(&srv).await;
    let before = admin.status().get_status(admin::GetStatusRequest {}).await.expect("GetStatus").into_inner();
    admin
        .auth()
        .create_api_token(admin::CreateApiTokenRequest { name: "audit-only".into(), ..Default::default() })
        .await
        .expect("CreateApiToken");
    let after = admin.status().get_status(admin::GetStatusRequest {}).await.expect("GetStatus").into_inner();
    assert_eq!(before.config_version, after.config_version);
    // A price is served (data planes count their own spend with it).
    admin
        .pricing()
        .set_price(admin::Price { model: "claude-test".into(), input: 1.0, output: 2.0, ..Default::default() })
        .await
        .expect("SetPrice");
    let priced = admin.status().get_status(admin::GetStatusRequest {}).await.expect("GetStatus").into_inner();
    assert_eq!(priced.config_version, after.config_version + 1);
    let after = priced;
    admin.create_key("moves-it").await;
    let later = admin.status().get_status(admin::GetStatusRequest {}).await.expect("GetStatus").into_inner();
    assert_eq!(later.config_version, after.config_version + 1);
}

async fn a_current_data_plane_is_sent_nothing_on_reconnect(env: Env) {
    let srv = env.start_with(&[("CCAG_DATAPLANE_TOKEN", DATAPLANE_TOKEN)]);
    let admin = Client::admin(&srv).await;
    let plane = admin.with_token(DATAPLANE_TOKEN);
    let first = {
        let mut w = Watch::open(&plane, "dp-re").await.expect("opening Watch");
        w.next_by(Instant::now() + STREAM_TIMEOUT).await
    };
    let mut again = Watch::open_holding(&plane, "dp-re", &first.epoch, first.revision).await.expect("reopening");
    admin.create_key("after-reconnect").await;
    // The first thing it is sent is the change made after it reconnected.
    let r = again.next_by(Instant::now() + STREAM_TIMEOUT).await;
    assert!(!r.full_state && r.revision == first.revision + 1, "{r:?}");
    assert_eq!(keys_of(&r).len(), 1);
}

async fn a_data_plane_behind_is_sent_only_what_it_lacks(env: Env) {
    let srv = env.start_with(&[("CCAG_DATAPLANE_TOKEN", DATAPLANE_TOKEN)]);
    let admin = Client::admin(&srv).await;
    for i in 0..20 {
        admin.create_key(&format!("old-{i}")).await;
    }
    let plane = admin.with_token(DATAPLANE_TOKEN);
    let held = Watch::open(&plane, "dp-behind").await.expect("Watch").next_by(Instant::now() + STREAM_TIMEOUT).await;
    let a = admin.create_key("missed-1").await;
    let b = admin.create_key("missed-2").await;
    let mut w = Watch::open_holding(&plane, "dp-behind", &held.epoch, held.revision).await.expect("Watch");
    let r = w.next_by(Instant::now() + STREAM_TIMEOUT).await;
    assert!(!r.full_state, "{r:?}");
    assert_eq!(r.revision, held.revision + 2);
    let mut got: Vec<&str> = keys_of(&r).iter().map(|k| k.name.as_str()).collect();
    got.sort();
    assert_eq!(got, vec!["missed-1", "missed-2"]);
    assert!(holds_key(&r, &sha256_hex(&a.key)) && holds_key(&r, &sha256_hex(&b.key)));
}

async fn a_nack_keeps_status_informed_and_is_answered_with_the_full_state(env: Env) {
    let srv = env.start_with(&[("CCAG_DATAPLANE_TOKEN", DATAPLANE_TOKEN)]);
    let admin = Client::admin(&srv).await;
    let plane = admin.with_token(DATAPLANE_TOKEN);
    let mut w = Watch::open(&plane, "dp-nack").await.expect("Watch");
    let first = w.next_by(Instant::now() + STREAM_TIMEOUT).await;
    w.ack(&first).await;
    admin.create_key("refused").await;
    let delta = w.next_change(first.revision, STREAM_TIMEOUT).await;
    w.nack(&delta, "resource 0: of a type this data plane does not know").await;
    let resent = w.next_by(Instant::now() + STREAM_TIMEOUT).await;
    assert!(resent.full_state && resent.revision == delta.revision, "{resent:?}");
    assert_ne!(resent.nonce, delta.nonce);
    let deadline = Instant::now() + STREAM_TIMEOUT;
    loop {
        let status = admin.status().get_status(admin::GetStatusRequest {}).await.expect("GetStatus").into_inner();
        let d = status.dataplanes.iter().find(|d| d.id == "dp-nack");
        if d.is_some_and(|d| d.nacked_version == delta.revision && d.nack_error.contains("does not know")) {
            assert_eq!(d.unwrap().acked_version, first.revision, "the previous state is what it holds");
            break;
        }
        assert!(Instant::now() < deadline, "the NACK never showed: {status:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_stale_nonce_is_ignored(env: Env) {
    let srv = env.start_with(&[("CCAG_DATAPLANE_TOKEN", DATAPLANE_TOKEN)]);
    let admin = Client::admin(&srv).await;
    let plane = admin.with_token(DATAPLANE_TOKEN);
    let mut w = Watch::open(&plane, "dp-stale").await.expect("Watch");
    let first = w.next_by(Instant::now() + STREAM_TIMEOUT).await;
    w.ack(&first).await;
    acked_in_status(&admin, "dp-stale", first.revision).await;
    // An answer naming a nonce never sent changes nothing, and the stream goes on.
    let forged = dp::WatchResponse { nonce: "no-such-nonce".into(), revision: first.revision + 50, ..first.clone() };
    w.ack(&forged).await;
    w.nack(&forged, "forged").await;
    admin.create_key("after-forgery").await;
    let next = w.next_change(first.revision, STREAM_TIMEOUT).await;
    assert!(!next.full_state, "a NACK of an unknown nonce must not trigger a resend: {next:?}");
    w.ack(&next).await;
    let status = acked_in_status(&admin, "dp-stale", next.revision).await;
    let d = status.dataplanes.iter().find(|d| d.id == "dp-stale").unwrap();
    assert_eq!((d.nacked_version, d.nack_error.as_str()), (0, ""));
}

async fn a_data_plane_ahead_of_the_database_starts_a_new_epoch(env: Env) {
    // As after restoring the database from an older backup.
    let srv = env.start_with(&[("CCAG_DATAPLANE_TOKEN", DATAPLANE_TOKEN)]);
    let admin = Client::admin(&srv).await;
    let plane = admin.with_token(DATAPLANE_TOKEN);
    let first = Watch::open(&plane, "dp-ahead").await.expect("Watch").next_by(Instant::now() + STREAM_TIMEOUT).await;
    let mut w = Watch::open_holding(&plane, "dp-ahead", &first.epoch, first.revision + 100).await.expect("Watch");
    let r = w.next_by(Instant::now() + STREAM_TIMEOUT).await;
    assert!(r.full_state, "{r:?}");
    assert_ne!(r.epoch, first.epoch, "revisions of the old history must not be compared with the new");
    let status = admin.status().get_status(admin::GetStatusRequest {}).await.expect("GetStatus").into_inner();
    assert_eq!(status.config_epoch, r.epoch);
}

async fn shutdown_ends_open_watch_streams(env: Env) {
    let srv = env.start_with(&[("CCAG_DATAPLANE_TOKEN", DATAPLANE_TOKEN)]);
    let plane = Client::anonymous(&srv).await.with_token(DATAPLANE_TOKEN);
    let mut watch = Watch::open(&plane, "dp-test").await.expect("opening Watch");
    watch.next_by(Instant::now() + STREAM_TIMEOUT).await;
    // A connected data plane must not hold the control plane up: SIGTERM
    // ends its stream, and the process exits by itself.
    let log = srv.log_path();
    let exit = srv.stop();
    assert!(
        exit.is_some_and(|s| s.success()),
        "the control plane did not exit cleanly on SIGTERM with a Watch open ({exit:?}):\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    let end = tokio::time::timeout(STREAM_TIMEOUT, watch.rx.message()).await.expect("the stream ends");
    assert!(matches!(end, Ok(None)), "the stream did not end cleanly: {end:?}");
}

async fn report_usage_is_idempotent_and_priced(env: Env) {
    let srv = env.start_with(&[("CCAG_DATAPLANE_TOKEN", DATAPLANE_TOKEN)]);
    let admin = Client::admin(&srv).await;
    let admin_id = admin.user_id().await;
    let key = admin.create_key("spender").await.api_key.expect("api_key");
    let record = |request_id: &str| dp::UsageRecord {
        request_id: request_id.into(),
        operation: "messages".into(),
        key_id: key.id.clone(),
        user_id: admin_id.clone(),
        model: "claude-sonnet-4-5".into(),
        bedrock_model: "us.anthropic.claude-sonnet-4-5-20250929-v1:0".into(),
        status: 200,
        outcome: "ok".into(),
        input_tokens: 1000,
        output_tokens: 500,
        ttft_ms: 100,
        duration_ms: 900,
        started_at_ms: now_ms() - 1000,
        ..Default::default()
    };
    let mut plane = admin.with_token(DATAPLANE_TOKEN).dataplane();
    let report = |records| dp::ReportUsageRequest { dataplane_id: "dp-test".into(), records, endpoints: vec![] };

    let first = plane.report_usage(report(vec![record("r1"), record("r2")])).await.expect("ReportUsage").into_inner();
    assert_eq!((first.accepted, first.duplicates), (2, 0), "{first:?}");
    let again = plane.report_usage(report(vec![record("r1")])).await.expect("ReportUsage again").into_inner();
    assert_eq!((again.accepted, again.duplicates), (0, 1), "{again:?}");

    let usage = admin
        .usage()
        .get_usage(admin::GetUsageRequest {
            group_by: admin::UsageGroup::Key as i32,
            key_id: key.id.clone(),
            ..Default::default()
        })
        .await
        .expect("GetUsage")
        .into_inner();
    assert_eq!(usage.rows.len(), 1, "{usage:?}");
    let row = &usage.rows[0];
    assert_eq!(row.group, key.id, "{usage:?}");
    assert_eq!(row.requests, 2, "{usage:?}");
    assert_eq!((row.input_tokens, row.output_tokens), (2000, 1000), "{usage:?}");
    // Sonnet 4.5: $3 per million input tokens, $15 per million output
    // tokens, 10% more on the regional `us.` profile. Each record:
    // 1000 × 3.3 + 500 × 16.5 micro-USD = 11,550; in integers, exactly.
    assert_eq!(row.cost_micro_usd, 2 * 11_550, "{usage:?}");
    assert!((row.cost_usd - 0.0231).abs() < 1e-12, "{usage:?}");
    assert_eq!(usage.total.as_ref().map(|t| t.cost_micro_usd), Some(23_100), "{usage:?}");
    // The report's answer carries the counters it moved: the user's, for
    // each of the three periods; the duplicate moved nothing.
    assert_eq!(first.spend.len(), 3, "{first:?}");
    assert!(first.spend.iter().all(|c| c.id == admin_id && c.spend_micro_usd == 23_100), "{first:?}");
    assert!(again.spend.is_empty(), "{again:?}");
    assert_eq!(usage.total.as_ref().map(|t| t.requests), Some(2), "{usage:?}");
}

async fn usage_by_hour_and_day_names_each_group(env: Env) {
    let srv = env.start_with(&[("CCAG_DATAPLANE_TOKEN", DATAPLANE_TOKEN)]);
    let admin = Client::admin(&srv).await;
    let admin_id = admin.user_id().await;
    let key = admin.create_key("spender").await.api_key.expect("api_key");
    // Two records in one UTC hour two days ago, one in the hour after it.
    let hour_ms = 3_600_000;
    let base = (now_ms() - 2 * 86_400_000) / hour_ms * hour_ms;
    let record = |id: &str, at: u64| dp::UsageRecord {
        request_id: id.into(),
        operation: "messages".into(),
        key_id: key.id.clone(),
        user_id: admin_id.clone(),
        model: "claude-haiku-4-5".into(),
        bedrock_model: "anthropic.claude-haiku-4-5-20251001-v1:0".into(),
        status: 200,
        outcome: "ok".into(),
        input_tokens: 1000,
        started_at_ms: at,
        ..Default::default()
    };
    let mut plane = admin.with_token(DATAPLANE_TOKEN).dataplane();
    let records = vec![record("a", base + 60_000), record("b", base + 120_000), record("c", base + hour_ms + 5)];
    plane
        .report_usage(dp::ReportUsageRequest { dataplane_id: "dp-test".into(), records, endpoints: vec![] })
        .await
        .expect("ReportUsage");
    let get = |group: admin::UsageGroup, bucket: admin::UsageBucket, days: i64| {
        let mut c = admin.usage();
        async move {
            c.get_usage(admin::GetUsageRequest {
                group_by: group as i32,
                bucket: bucket as i32,
                since: (chrono::Utc::now() - chrono::Duration::days(days)).to_rfc3339(),
                ..Default::default()
            })
            .await
        }
    };
    let hourly = get(admin::UsageGroup::Key, admin::UsageBucket::Hour, 3).await.expect("GetUsage").into_inner();
    let start = chrono::DateTime::from_timestamp_millis(base as i64).unwrap();
    let label = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:00:00Z").to_string();
    let got: Vec<(String, String, u64)> =
        hourly.rows.iter().map(|r| (r.bucket.clone(), r.name.clone(), r.requests)).collect();
    assert_eq!(
        got,
        vec![
            (label(start), "spender".to_string(), 2),
            (label(start + chrono::Duration::hours(1)), "spender".to_string(), 1)
        ],
        "{hourly:?}"
    );
    assert!(hourly.rows.iter().all(|r| r.group == key.id));
    assert_eq!(hourly.total.as_ref().map(|t| t.requests), Some(3));

    let daily = get(admin::UsageGroup::User, admin::UsageBucket::Day, 3).await.expect("GetUsage").into_inner();
    let days: u64 = daily.rows.iter().map(|r| r.requests).sum();
    assert_eq!(days, 3, "{daily:?}");
    assert!(daily.rows.iter().all(|r| r.name == ADMIN && r.bucket.ends_with("T00:00:00Z")), "{daily:?}");

    let too_long = get(admin::UsageGroup::User, admin::UsageBucket::Hour, 40).await.expect_err("40 days by hour");
    assert_eq!(too_long.code(), Code::InvalidArgument);
    assert!(too_long.message().contains("31 days"), "{}", too_long.message());
}

async fn restart_keeps_users_and_keys(env: Env) {
    let srv = env.start();
    let admin = Client::admin(&srv).await;
    let user = admin
        .users()
        .create_user(admin::CreateUserRequest { email: "keep@example.com".into(), ..Default::default() })
        .await
        .expect("CreateUser")
        .into_inner();
    let key = admin.create_key("kept").await.api_key.expect("api_key");
    drop(admin);
    srv.stop();

    let srv = env.start();
    let admin = Client::admin(&srv).await;
    let got = admin.users().get_user(admin::GetUserRequest { id: user.id.clone() }).await.expect("GetUser");
    let got = got.into_inner();
    assert_eq!((got.id.as_str(), got.email.as_str()), (user.id.as_str(), "keep@example.com"), "{got:?}");
    let k = admin.keys().get_key(admin::GetKeyRequest { id: key.id.clone() }).await.expect("GetKey").into_inner();
    assert_eq!(k.name, "kept", "{k:?}");
    assert_eq!(k.prefix, key.prefix, "{k:?}");
    assert_eq!(k.user_id, key.user_id, "{k:?}");
    assert_eq!(k.status, admin::KeyStatus::Active as i32, "{k:?}");
    // The bootstrap admin was not created twice.
    let admins = admin
        .users()
        .list_users(admin::ListUsersRequest { role: admin::Role::Admin as i32, ..Default::default() })
        .await
        .expect("ListUsers")
        .into_inner();
    assert_eq!(admins.users.len(), 1, "{admins:?}");
}

// ------------------------------------------------------------------ storage-independent

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataplane_calls_with_a_wrong_token_are_unauthenticated() {
    let env = Env::new(Backend::Sqlite);
    let srv = env.start_with(&[("CCAG_DATAPLANE_TOKEN", DATAPLANE_TOKEN)]);
    let anon = Client::anonymous(&srv).await;
    let admin = Client::admin(&srv).await;
    // Neither a wrong token, nor none, nor an admin session is the data-plane token.
    for (what, client) in [
        ("wrong token", anon.with_token("dp-wrong-token")),
        ("no token", anon.clone()),
        ("admin session", admin.clone()),
    ] {
        let watch = Watch::open(&client, "dp-test").await;
        assert_eq!(watch.err().map(|s| s.code()), Some(Code::Unauthenticated), "Watch with {what}");
        let report = dp::ReportUsageRequest {
            dataplane_id: "dp-test".into(),
            records: vec![dp::UsageRecord { request_id: "r1".into(), ..Default::default() }],
            endpoints: vec![],
        };
        let r = client.dataplane().report_usage(report).await;
        assert_eq!(code(r), Code::Unauthenticated, "ReportUsage with {what}");
    }
    // Nothing was registered or stored.
    let status = admin.status().get_status(admin::GetStatusRequest {}).await.expect("GetStatus").into_inner();
    assert!(status.dataplanes.is_empty(), "{status:?}");
    let usage = admin.usage().get_usage(admin::GetUsageRequest::default()).await.expect("GetUsage").into_inner();
    assert_eq!(usage.total.map(|t| t.requests), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_is_serving() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;

    let env = Env::new(Backend::Sqlite);
    let srv = env.start();
    let mut health = HealthClient::new(channel(&srv).await);
    let res = health.check(HealthCheckRequest { service: String::new() }).await.expect("Health/Check").into_inner();
    assert_eq!(res.status, ServingStatus::Serving as i32, "{res:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_services() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let env = Env::new(Backend::Sqlite);
    let srv = env.start();
    let mut reflection = ServerReflectionClient::new(channel(&srv).await);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers =
        reflection.server_reflection_info(futures_util::stream::iter([req])).await.expect("reflection").into_inner();
    let answer = tokio::time::timeout(STREAM_TIMEOUT, answers.message())
        .await
        .expect("a reflection answer in time")
        .expect("a reflection answer")
        .expect("a reflection answer before the end");
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("not a ListServices answer: {answer:?}");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    for want in ["ccag.admin.v1.UserService", "ccag.config.v1.DataPlaneService"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
}

// ------------------------------------------------------------------ web search

fn provider(user: &str, kind: &str, url: &str, key: &str) -> admin::SetSearchProviderRequest {
    admin::SetSearchProviderRequest {
        user: user.into(),
        kind: kind.into(),
        url: url.into(),
        api_key: key.into(),
        max_results: 0,
    }
}

async fn search_provider_keys_are_never_shown_or_audited(env: Env) {
    let srv = env.start();
    let admin = Client::admin(&srv).await;
    let key = "tvly-SECRETsecretSECRET0123456789";
    let set = admin.search().set_search_provider(provider("", "tavily", "", key)).await.expect("set").into_inner();
    assert!(set.has_api_key);
    let shown = admin.search().get_search_settings(admin::GetSearchSettingsRequest {}).await.expect("get").into_inner();
    assert!(shown.org_provider.as_ref().is_some_and(|p| p.kind == "tavily" && p.has_api_key), "{shown:?}");
    let audit = admin
        .audit()
        .list_audit(admin::ListAuditRequest { action: "search.provider_set".into(), ..Default::default() })
        .await
        .expect("ListAudit")
        .into_inner()
        .entries;
    assert_eq!(audit.len(), 1, "{audit:?}");
    for text in [format!("{set:?}"), format!("{shown:?}"), format!("{audit:?}")] {
        assert!(!text.contains("SECRET"), "the key leaked: {text}");
    }
    // Set again without a key: the same provider keeps it.
    let again = admin.search().set_search_provider(provider("", "tavily", "", "")).await.expect("set").into_inner();
    assert!(again.has_api_key);
}

async fn members_may_not_aim_web_search_at_a_url(env: Env) {
    let srv = env.start();
    let admin = Client::admin(&srv).await;
    let (member, _) = member(&srv, &admin, "searcher@example.com").await;
    let s = member.search();
    expect_code(s.clone().set_search_provider(provider("", "brave", "", "k")).await, Code::PermissionDenied);
    expect_code(
        s.clone()
            .set_search_provider(provider("searcher@example.com", "custom", "https://search.example.com/", ""))
            .await,
        Code::PermissionDenied,
    );
    expect_code(
        s.clone()
            .set_search_provider(provider("searcher@example.com", "tavily", "https://proxy.example.com/", "k"))
            .await,
        Code::PermissionDenied,
    );
    expect_code(s.clone().set_search_provider(provider("admin", "brave", "", "k")).await, Code::PermissionDenied);
    let own = s
        .clone()
        .set_search_provider(provider("searcher@example.com", "brave", "", "k"))
        .await
        .expect("own")
        .into_inner();
    assert_eq!((own.kind.as_str(), own.user_email.as_str()), ("brave", "searcher@example.com"));
    expect_code(
        s.clone().set_search_mode(admin::SetSearchModeRequest { mode: "disabled".into() }).await,
        Code::PermissionDenied,
    );
    let seen = s.clone().get_search_settings(admin::GetSearchSettingsRequest {}).await.expect("get").into_inner();
    assert_eq!(seen.users.len(), 1, "a member sees only their own provider: {seen:?}");
}

async fn search_providers_on_forbidden_addresses_are_refused(env: Env) {
    let srv = env.start();
    let admin = Client::admin(&srv).await;
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:9/search",
        "https://10.0.0.5/search",
        "https://[::ffff:127.0.0.1]/search",
        "http://search.example.com/",
        "https://user:pw@search.example.com/",
    ] {
        let s = expect_code(
            admin.search().set_search_provider(provider("", "custom", url, "")).await,
            Code::InvalidArgument,
        );
        assert!(s.message().contains("url"), "{url}: {s:?}");
    }
    let s =
        expect_code(admin.search().set_search_provider(provider("", "searxng", "", "")).await, Code::InvalidArgument);
    assert!(s.message().contains("needs a URL"), "{s:?}");
    let s =
        expect_code(admin.search().set_search_provider(provider("", "serper", "", "")).await, Code::InvalidArgument);
    assert!(s.message().contains("API key"), "{s:?}");
}

async fn global_search_mode_needs_the_organisations_provider(env: Env) {
    let srv = env.start();
    let admin = Client::admin(&srv).await;
    let s = admin.search();
    expect_code(
        s.clone().set_search_mode(admin::SetSearchModeRequest { mode: "global".into() }).await,
        Code::FailedPrecondition,
    );
    expect_code(
        s.clone().set_search_mode(admin::SetSearchModeRequest { mode: "sometimes".into() }).await,
        Code::InvalidArgument,
    );
    s.clone().set_search_provider(provider("", "duckduckgo", "", "")).await.expect("set");
    let set = s
        .clone()
        .set_search_mode(admin::SetSearchModeRequest { mode: "global".into() })
        .await
        .expect("mode")
        .into_inner();
    assert_eq!(set.mode, "global");
    expect_code(
        s.clone().delete_search_provider(admin::DeleteSearchProviderRequest { user: String::new() }).await,
        Code::FailedPrecondition,
    );
}
