//! The harness shared by the integration tests: a real `ccag-controlplane`
//! process on SQLite or on PostgreSQL.
//!
//! PostgreSQL tests create a fresh database `ccag_test_<random>` through
//! `psql -h 127.0.0.1 -U postgres` and drop it afterwards. Set
//! `CCAG_TEST_SKIP_POSTGRES=1` to skip them where no server is running.

// Each test crate uses its own part of the harness.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "admin-test-password-1";
pub const PG_HOST: &str = "127.0.0.1";
pub const PG_PORT: &str = "5432";
pub const PG_USER: &str = "postgres";
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a server may take to stop after SIGTERM before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// 16 hex digits, different on every call, in every process.
pub fn unique() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

/// Runs one SQL statement as the PostgreSQL superuser.
pub fn psql(sql: &str) -> std::process::Output {
    Command::new("psql")
        .args(["-h", PG_HOST, "-p", PG_PORT, "-U", PG_USER, "-d", "postgres"])
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("running psql")
}

/// A data directory or database that outlives server restarts, and scratch
/// space (e.g. for CLI config directories).
pub struct Env {
    pub backend: Backend,
    pub root: PathBuf,
    pub database_url: Option<String>,
    pg_db: Option<String>,
}

impl Env {
    pub fn new(backend: Backend) -> Env {
        let root = std::env::temp_dir().join(format!("ccag-test-{}", unique()));
        std::fs::create_dir_all(root.join("data")).expect("creating the temp dir");
        let mut env = Env { backend, root, database_url: None, pg_db: None };
        if backend == Backend::Postgres {
            let db = format!("ccag_test_{}", unique());
            let out = psql(&format!("CREATE DATABASE {db}"));
            assert!(
                out.status.success(),
                "creating database {db} failed (is PostgreSQL running on {PG_HOST}:{PG_PORT}? \
                 set CCAG_TEST_SKIP_POSTGRES=1 to skip): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            env.database_url = Some(format!("postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{db}"));
            env.pg_db = Some(db);
        }
        env
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// A fresh, empty CLI configuration directory.
    pub fn config_dir(&self, name: &str) -> PathBuf {
        self.root.join(format!("config-{name}-{}", unique()))
    }

    pub fn start(&self) -> Server {
        Server::start(self, &[])
    }

    /// Starts the server with extra environment variables.
    pub fn start_with(&self, vars: &[(&str, &str)]) -> Server {
        Server::start(self, vars)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(db) = &self.pg_db {
            let _ = psql(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A running `ccag-controlplane`; stopped on drop.
pub struct Server {
    child: Child,
    /// The gRPC endpoint, e.g. `http://127.0.0.1:40123`.
    pub grpc: String,
    /// The HTTP listener, e.g. `http://127.0.0.1:40124`.
    pub http: String,
    log: PathBuf,
}

impl Server {
    pub fn start(env: &Env, vars: &[(&str, &str)]) -> Server {
        let log = env.root.join(format!("server-{}.log", unique()));
        let log_file = std::fs::File::create(&log).expect("creating the server log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ccag-controlplane"));
        cmd.env_remove("DATABASE_URL")
            .env_remove("CCAG_DATAPLANE_TOKEN")
            .env("CCAG_DATA_DIR", env.data_dir())
            .env("CCAG_GRPC_ADDR", "127.0.0.1:0")
            .env("CCAG_HTTP_ADDR", "127.0.0.1:0")
            .env("ADMIN_USERNAME", ADMIN)
            .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
            .current_dir(&env.root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file));
        if let Some(url) = &env.database_url {
            cmd.env("DATABASE_URL", url);
        }
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("starting ccag-controlplane");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        // Reads stdout until the server exits, so it never blocks on a full pipe.
        std::thread::spawn(move || {
            let (mut grpc, mut http) = (None, None);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("ccag-controlplane grpc listening on ") {
                    grpc = Some(url.trim().to_string());
                }
                if let Some(url) = line.strip_prefix("ccag-controlplane http listening on ") {
                    http = Some(url.trim().to_string());
                }
                if grpc.is_some() && http.is_some() {
                    // Once: both lines come once.
                    let _ = tx.send((grpc.take().unwrap_or_default(), http.take().unwrap_or_default()));
                }
            }
        });
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok((grpc, http)) => return Server { child, grpc, http, log },
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {}
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "ccag-controlplane ({:?}) exited with {status} before listening:\n{}",
                    env.backend,
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "ccag-controlplane ({:?}) did not print its grpc address in {STARTUP_TIMEOUT:?}:\n{}",
                    env.backend,
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        }
    }

    /// SIGTERM, then SIGKILL if it does not stop in time. The exit status
    /// when it stopped by itself; None when it had to be killed.
    pub fn stop(mut self) -> Option<ExitStatus> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        #[cfg(unix)]
        {
            if let Ok(pid) = i32::try_from(self.child.id()) {
                // SAFETY: signals the child this test started, by its pid.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                if let Ok(Some(status)) = self.child.try_wait() {
                    return Some(status);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            eprintln!("ccag-controlplane did not stop within {STOP_TIMEOUT:?} of SIGTERM; killing it");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }

    pub fn log_path(&self) -> PathBuf {
        self.log.clone()
    }

    /// What the server wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

/// Runs each named `fn(Env)` (or, after `async:`, `async fn(Env)`) once on
/// SQLite and once on PostgreSQL, as the tests `<name>::sqlite` and
/// `<name>::postgres`.
///
/// Async tests run on a multi-threaded runtime: stopping a `Server` blocks
/// the test's thread, and the client connections must still be driven
/// meanwhile so that they close and the server's graceful shutdown ends.
macro_rules! on_both_backends {
    (async: $($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::common::Env::new($crate::common::Backend::Sqlite)).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if std::env::var_os("CCAG_TEST_SKIP_POSTGRES").is_some() {
                        eprintln!("skipped: CCAG_TEST_SKIP_POSTGRES is set");
                        return;
                    }
                    super::$name($crate::common::Env::new($crate::common::Backend::Postgres)).await;
                }
            }
        )*
    };
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn sqlite() {
                    super::$name($crate::common::Env::new($crate::common::Backend::Sqlite));
                }

                #[test]
                fn postgres() {
                    if std::env::var_os("CCAG_TEST_SKIP_POSTGRES").is_some() {
                        eprintln!("skipped: CCAG_TEST_SKIP_POSTGRES is set");
                        return;
                    }
                    super::$name($crate::common::Env::new($crate::common::Backend::Postgres));
                }
            }
        )*
    };
}
pub(crate) use on_both_backends;

/// Adds `authorization: Bearer <token>` to every gRPC request, when it has one.
#[derive(Clone)]
pub struct Bearer(pub Option<tonic::metadata::AsciiMetadataValue>);

impl Bearer {
    pub fn new(token: &str) -> Self {
        Bearer(Some(tonic::metadata::MetadataValue::try_from(format!("Bearer {token}")).expect("an ASCII token")))
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A channel whose calls carry a [`Bearer`].
pub type Svc = tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>;
