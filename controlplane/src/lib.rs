//! CCAG control plane: owns all state (users, teams, keys, models,
//! endpoints, settings, audit log) and serves the gRPC admin API that the
//! `ccag` CLI and automation use.
//!
//! `store` is the database and its entities, `auth` decides who is calling
//! (sessions, API tokens, passwords), `identity` signs people in through
//! OpenID Connect providers, `http` serves the browser side of that and the
//! probes, `api` holds one module per gRPC service, `fleet` distributes the
//! configuration to the data planes and takes their usage, `lease` runs
//! singleton work on one replica at a time, `gateway_settings` is the typed
//! settings registry, `metrics` is what `GET /metrics` shows, and `server`
//! runs the listeners.

pub mod analytics;
pub mod api;
pub mod auth;
pub mod budget;
pub mod fleet;
pub mod gateway_settings;
pub mod http;
pub mod identity;
pub mod lease;
pub mod metrics;
pub mod notify;
pub mod pricing;
pub mod scim;
pub mod secrets;
pub(crate) mod server;
pub mod store;
pub mod websearch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub struct Settings {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub database_url: Option<String>,
    pub data_dir: PathBuf,
    pub admin_username: String,
    pub admin_password: Option<String>,
    pub session_ttl: Duration,
    /// The bearer token data planes present; generated and stored when unset.
    pub dataplane_token: Option<String>,
    /// Serve gRPC over TLS (`CCAG_TLS_CERT`, `CCAG_TLS_KEY`: PEM files).
    pub tls: Option<Tls>,
    /// This replica's name in the fleet registry and leases
    /// (`CCAG_REPLICA_ID`; random when unset).
    pub replica_id: String,
    /// `CCAG_ENCRYPTION_KEY`: base64 of the 32-byte key sealing stored
    /// secrets; generated into the data directory when unset.
    pub encryption_key: Option<String>,
    /// `CCAG_OUTBOUND_ALLOW_CIDRS`: ranges outbound calls may reach although
    /// they are not public.
    pub outbound: ccag_outbound::Policy,
    pub notify: notify::worker::Config,
    /// `CCAG_PUBLIC_URL`: the origin browsers and identity providers reach
    /// the gateway's sign-in at; the control plane's HTTP address when unset.
    pub public_url: Option<String>,
    /// `ADMIN_USERS`: comma-separated subjects or emails that are admins
    /// whenever they sign in through an identity provider.
    pub admin_users: Vec<String>,
    /// `OIDC_ISSUER` and friends: one identity provider set up at start-up.
    pub oidc: Option<api::idps::FromEnv>,
    /// `CCAG_SCIM_RPM`: requests per minute a SCIM token may make (600).
    pub scim_rpm: u32,
}

pub struct Tls {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl Settings {
    pub fn from_env() -> Result<Self, String> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let addr = |k: &str, d: &str| -> Result<SocketAddr, String> {
            let v = var(k).unwrap_or_else(|| d.to_owned());
            v.parse().map_err(|e| format!("{k}={v:?}: {e}"))
        };
        let ttl = match var("CCAG_SESSION_TTL_SECS") {
            Some(v) => Duration::from_secs(v.parse().map_err(|e| format!("CCAG_SESSION_TTL_SECS={v:?}: {e}"))?),
            None => Duration::from_secs(12 * 3600),
        };
        let http_addr = addr("CCAG_HTTP_ADDR", "127.0.0.1:8081")?;
        let public_url = match var("CCAG_PUBLIC_URL") {
            Some(u) => {
                let u = u.trim().trim_end_matches('/').to_owned();
                let t = ccag_outbound::idp_target(&u).map_err(|e| format!("CCAG_PUBLIC_URL={u:?}: {e}"))?;
                if t.path != "/" {
                    return Err(format!(
                        "CCAG_PUBLIC_URL={u:?}: an origin such as https://gateway.example.com, without a path"
                    ));
                }
                Some(u)
            }
            None => None,
        };
        let oidc = match (var("OIDC_ISSUER"), var("OIDC_CLIENT_ID")) {
            (None, None) => None,
            (Some(issuer), Some(client_id)) => Some(api::idps::FromEnv {
                name: var("OIDC_NAME").unwrap_or_else(|| "sso".into()),
                issuer,
                client_id,
                client_secret: var("OIDC_CLIENT_SECRET").unwrap_or_default(),
                scopes: var("OIDC_SCOPES").unwrap_or_default(),
                email_claim: var("OIDC_EMAIL_CLAIM").unwrap_or_default(),
                groups_claim: var("OIDC_GROUPS_CLAIM").unwrap_or_default(),
                allowed_domains: var("OIDC_ALLOWED_DOMAINS").unwrap_or_default(),
                admin_groups: var("OIDC_ADMIN_GROUPS").unwrap_or_default(),
            }),
            _ => return Err("OIDC_ISSUER and OIDC_CLIENT_ID go together".into()),
        };
        let scim_rpm = match var("CCAG_SCIM_RPM") {
            Some(v) => {
                v.parse().ok().filter(|n| *n > 0).ok_or(format!("CCAG_SCIM_RPM={v:?}: a number of requests above 0"))?
            }
            None => 600,
        };
        Ok(Settings {
            scim_rpm,
            grpc_addr: addr("CCAG_GRPC_ADDR", "127.0.0.1:8091")?,
            http_addr,
            public_url,
            admin_users: var("ADMIN_USERS")
                .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
                .unwrap_or_default(),
            oidc,
            database_url: var("DATABASE_URL"),
            data_dir: PathBuf::from(var("CCAG_DATA_DIR").unwrap_or_else(|| "./data".into())),
            admin_username: var("ADMIN_USERNAME").unwrap_or_else(|| "admin".into()),
            admin_password: var("ADMIN_PASSWORD"),
            session_ttl: ttl,
            dataplane_token: var("CCAG_DATAPLANE_TOKEN"),
            replica_id: var("CCAG_REPLICA_ID")
                .unwrap_or_else(|| format!("cp-{}", store::ids::random_base62(8).to_lowercase())),
            encryption_key: var("CCAG_ENCRYPTION_KEY"),
            outbound: ccag_outbound::Policy::from_env()?,
            notify: notify::worker::Config::from_env()?,
            tls: match (var("CCAG_TLS_CERT"), var("CCAG_TLS_KEY")) {
                (None, None) => None,
                (Some(c), Some(k)) => Some(Tls {
                    cert_pem: std::fs::read(&c).map_err(|e| format!("CCAG_TLS_CERT={c:?}: {e}"))?,
                    key_pem: std::fs::read(&k).map_err(|e| format!("CCAG_TLS_KEY={k:?}: {e}"))?,
                }),
                _ => return Err("CCAG_TLS_CERT and CCAG_TLS_KEY go together".into()),
            },
        })
    }
}

pub async fn run(settings: Settings, shutdown: impl std::future::Future<Output = ()>) -> Result<(), String> {
    let metrics = Arc::new(metrics::Metrics::new());
    let store = store::open(settings.database_url.as_deref(), &settings.data_dir).await?;
    tracing::info!(database = store.backend.name(), "database ready");
    // First-start rows (the admin, the data-plane token, the price table)
    // are made by one replica at a time.
    let bootstrap = store.startup_lock().await?;
    auth::ensure_admin(&store.db, &settings.admin_username, settings.admin_password.as_deref())
        .await
        .map_err(|e| format!("creating the bootstrap admin: {e}"))?;
    let auth = auth::Auth::new(settings.session_ttl);
    let dataplane_token = match settings.dataplane_token {
        Some(t) => t,
        None => auth::dataplane_token(&store.db, &settings.data_dir).await.map_err(|e| e.to_string())?,
    };
    {
        // The shipped price table, brought in before the configuration is
        // loaded; other replicas hear of a change through the revision.
        use sea_orm::TransactionTrait;
        let txn = store.db.begin().await.map_err(|e| e.to_string())?;
        if pricing::seed(&txn).await.map_err(|e| format!("seeding the price table: {e}"))? {
            fleet::revision::bump(&txn, &[fleet::Touched::Prices]).await.map_err(|e| e.to_string())?;
        }
        txn.commit().await.map_err(|e| e.to_string())?;
    }
    let keyring =
        Arc::new(secrets::Keyring::load(&store.db, settings.encryption_key.as_deref(), &settings.data_dir).await?);
    store::release(bootstrap).await?;
    let sender = Arc::new(notify::send::Sender {
        policy: settings.outbound.clone(),
        keyring: keyring.clone(),
        aws: Default::default(),
    });
    websearch::ensure_content_key(&store.db, &keyring).await.map_err(|e| format!("web search: {e}"))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let publisher = fleet::Publisher::start(store.db.clone(), keyring.clone(), store.backend, stop_rx.clone())
        .await
        .map_err(|e| format!("loading the configuration: {e}"))?;
    let registry = fleet::Registry::start(store.db.clone(), settings.replica_id.clone(), stop_rx.clone());
    let shares = fleet::shares::spawn(store.db.clone(), registry.clone(), publisher.clone(), stop_rx.clone());
    let spend_moved = Arc::new(tokio::sync::Notify::new());
    let budgets = budget::verdicts::spawn(store.db.clone(), publisher.clone(), spend_moved.clone(), stop_rx.clone());
    maintain_signing_keys(&store.db, &keyring).await.map_err(|e| format!("gateway signing keys: {e}"))?;
    let housekeeping = {
        let keyring = keyring.clone();
        lease::spawn_singleton(
            store.db.clone(),
            "housekeeping",
            settings.replica_id.clone(),
            std::time::Duration::from_secs(60),
            metrics.leader.clone(),
            stop_rx.clone(),
            move |db| housekeeping(db, keyring.clone()),
        )
    };
    // A replica that cannot open the webhook secrets leaves the deliveries
    // to the others rather than failing every signed one.
    let notifier = match keyring.usable() {
        Ok(()) => Some(notify::worker::spawn(
            store.db.clone(),
            store.backend,
            settings.replica_id.clone(),
            sender.clone(),
            settings.notify,
            metrics.clone(),
            stop_rx.clone(),
        )),
        Err(e) => {
            tracing::error!(error = %e, "this replica will not deliver notifications");
            None
        }
    };
    tracing::info!(replica = %settings.replica_id, "control-plane replica");
    let fleet_api = fleet::DataPlaneApi {
        db: store.db.clone(),
        publisher: publisher.clone(),
        registry: registry.clone(),
        shares,
        budgets,
        spend_moved,
        token: dataplane_token.clone(),
        metrics: metrics.clone(),
        stop: stop_rx.clone(),
    };
    let grpc = TcpListener::bind(settings.grpc_addr).await.map_err(|e| format!("bind {}: {e}", settings.grpc_addr))?;
    let http = TcpListener::bind(settings.http_addr).await.map_err(|e| format!("bind {}: {e}", settings.http_addr))?;
    let grpc_local = grpc.local_addr().map_err(|e| e.to_string())?;
    let http_local = http.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(grpc = %grpc_local, http = %http_local, "control plane listening");
    let scheme = if settings.tls.is_some() { "https" } else { "http" };
    println!("ccag-controlplane grpc listening on {scheme}://{grpc_local}");
    println!("ccag-controlplane http listening on http://{http_local}");

    let public_url = settings.public_url.clone().unwrap_or_else(|| format!("http://{http_local}"));
    if !public_url.starts_with("https://") && !ccag_outbound::is_loopback_url(&public_url) {
        tracing::warn!(%public_url, "CCAG_PUBLIC_URL is plain http off loopback: session cookies would cross the network unencrypted; serve it over https");
    }
    let ctx = Arc::new(api::Ctx {
        db: store.db,
        backend: store.backend,
        auth,
        started_at: chrono::Utc::now(),
        publisher,
        registry,
        login_throttle: Default::default(),
        sender,
        identity: Arc::new(identity::Identity::new(
            settings.outbound.clone(),
            keyring.clone(),
            &public_url,
            settings.admin_users.clone(),
            settings.session_ttl,
        )),
        login_limit: http::PerIp::new(60),
        device_limit: http::PerIp::new(30),
        device_code_limit: http::PerIp::new(30),
        scim_limit: http::PerKey::new(settings.scim_rpm),
        dataplane_token: dataplane_token.clone(),
        metrics,
    });
    if let Some(env) = &settings.oidc {
        api::idps::bootstrap(&ctx, env).await?;
    }
    if !settings.admin_users.is_empty() {
        auth::promote_admin_users(&ctx.db, &settings.admin_users).await.map_err(|e| format!("ADMIN_USERS: {e}"))?;
    }

    let http_task = tokio::spawn(http::serve(http, ctx.clone(), stop_rx.clone()));
    let mut grpc_task = tokio::spawn(server::serve_grpc(grpc, ctx, fleet_api, settings.tls, stop_rx));
    tokio::pin!(shutdown);
    let result = tokio::select! {
        _ = &mut shutdown => {
            tracing::info!("shutting down");
            let _ = stop_tx.send(true);
            (&mut grpc_task).await
        }
        r = &mut grpc_task => {
            let _ = stop_tx.send(true);
            r
        }
    };
    let _ = http_task.await;
    let _ = housekeeping.await;
    if let Some(n) = notifier {
        let _ = n.await;
    }
    result.map_err(|e| e.to_string())?
}

/// Makes or rotates the key gateway access tokens are signed with; the
/// data planes hear of a new one through the revision.
async fn maintain_signing_keys(db: &sea_orm::DatabaseConnection, keyring: &secrets::Keyring) -> Result<(), String> {
    use sea_orm::TransactionTrait;
    if keyring.usable().is_err() {
        // Another replica, with the right key, will do it.
        return Ok(());
    }
    let txn = db.begin().await.map_err(|e| e.to_string())?;
    if identity::tokens::maintain(&txn, keyring, chrono::Utc::now()).await.map_err(|e| e.to_string())? {
        fleet::revision::bump(&txn, &[fleet::Touched::Identity]).await.map_err(|e| e.to_string())?;
    }
    txn.commit().await.map_err(|e| e.to_string())
}

/// Singleton work: the database keeps only what is still of use, and the
/// signing key rotates.
async fn housekeeping(db: sea_orm::DatabaseConnection, keyring: Arc<secrets::Keyring>) -> Result<(), sea_orm::DbErr> {
    if let Err(e) = maintain_signing_keys(&db, &keyring).await {
        tracing::warn!(error = %e, "could not rotate the gateway signing key");
    }
    /// Deltas reach back this many revisions; a data plane further behind
    /// is sent the full state.
    const KEEP_REVISIONS: u64 = 100_000;
    let dead = fleet::registry::prune(&db).await?;
    let log = fleet::revision::prune(&db, KEEP_REVISIONS).await?;
    let names = auth::LoginThrottle::prune(&db, chrono::Utc::now()).await?;
    let events = notify::outbox::prune(&db, chrono::Duration::days(30)).await?;
    let sessions = auth::session::prune(&db, chrono::Utc::now()).await?;
    let flows = identity::flow::prune(&db, chrono::Utc::now()).await?
        + identity::device::prune(&db, chrono::Utc::now()).await?
        + identity::tokens::prune(&db, chrono::Utc::now()).await?;
    let endpoint_minutes = fleet::health::prune(&db, chrono::Utc::now()).await?;
    if dead + log + names + events + sessions + flows + endpoint_minutes > 0 {
        tracing::info!(
            dataplanes = dead,
            change_log = log,
            login_failures = names,
            notification_events = events,
            sessions,
            sign_ins = flows,
            endpoint_minutes,
            "housekeeping pruned"
        );
    }
    Ok(())
}
