//! The processes under test: the control plane and the data planes, each a
//! child process killed when its guard drops (on every path out of the
//! bench, panics included), and what `/proc` says about them.

use std::io::{BufRead, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ccag_bedrock_double::{DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY};

use crate::{progress, Error, REGION};

/// A scratch directory for the run (databases, state, logs); removed on drop.
pub struct WorkDir(pub PathBuf);

impl WorkDir {
    pub fn new() -> Result<Self, Error> {
        let dir = std::env::temp_dir().join(format!("ccag-gateway-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(WorkDir(dir))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn random_token(n: usize) -> String {
    std::iter::repeat_with(fastrand::alphanumeric).take(n).collect()
}

// ---------------------------------------------------------------------------
// Binaries

/// The directory cargo put this build's binaries in (`target/release` for
/// `cargo bench`, `target/debug` for `cargo test`).
fn profile_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_ccag-dataplane")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The workspace root, against which relative paths given to the bench resolve.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// `target/`, for the default chart path.
pub fn target_dir() -> PathBuf {
    profile_dir().parent().map(Path::to_path_buf).unwrap_or_else(|| workspace_root().join("target"))
}

/// The binary cargo built with this bench, unless `CCAG_BENCH_DATAPLANE`
/// names another one (to compare two builds with the same load).
pub fn dataplane_binary() -> String {
    std::env::var("CCAG_BENCH_DATAPLANE")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_ccag-dataplane").to_string())
}

/// `CCAG_BENCH_CONTROLPLANE`, or `ccag-controlplane` next to the data plane
/// binary, built (or brought up to date) with cargo in the same profile.
/// Cargo does not hold its build lock while benches and tests run, so the
/// nested build does not wait for the outer one.
pub fn controlplane_binary() -> Result<PathBuf, Error> {
    if let Some(path) = std::env::var_os("CCAG_BENCH_CONTROLPLANE").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let dir = profile_dir();
    let binary = dir.join("ccag-controlplane");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.arg("build").arg("--manifest-path").arg(workspace_root().join("Cargo.toml"));
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(other) => {
            cmd.args(["--profile", other]);
        }
        None => return Err(format!("cannot tell the cargo profile of {}", dir.display())),
    }
    cmd.args(["-p", "ccag-controlplane", "--bin", "ccag-controlplane"]);
    progress(&format!("making sure {} is built and current (cargo build)", binary.display()));
    let started = Instant::now();
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("running {cargo} build for ccag-controlplane: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building ccag-controlplane failed ({status}); build it yourself, or set \
             CCAG_BENCH_CONTROLPLANE=/path/to/ccag-controlplane"
        ));
    }
    if started.elapsed() > Duration::from_secs(5) {
        progress(&format!("ccag-controlplane built in {:.0} s", started.elapsed().as_secs_f64()));
    }
    if !binary.exists() {
        return Err(format!("cargo built ccag-controlplane, but {} does not exist", binary.display()));
    }
    Ok(binary)
}

// ---------------------------------------------------------------------------
// Child processes

/// A child process and its log; killed on drop.
struct Proc {
    child: Child,
    pid: u32,
    log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with stdout piped and stderr to `log`, and waits for the
    /// line holding `marker`: returns what follows it on that line.
    fn spawn(mut cmd: Command, name: &str, log: PathBuf, marker: &'static str) -> Result<(Proc, String), Error> {
        let log_file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("starting {name}: {e}"))?;
        let pid = child.id();
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the address line, then drains stdout until the child exits.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split(marker).nth(1) {
                    let _ = tx.send(rest.trim().to_string());
                }
            }
        });
        let proc = Proc { child, pid, log };
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => Ok((proc, url)),
            Err(_) => Err(format!("{name} did not report its address; its log ends with:\n{}", proc.log_tail())),
        }
    }

    fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The bare relay (`relay.rs`) in front of a double: this binary, started again.
pub struct Relay {
    proc: Proc,
    pub pid: u32,
    /// `IP:PORT`.
    pub addr: String,
}

impl Relay {
    pub fn start(upstream: std::net::SocketAddr, work: &WorkDir) -> Result<Self, Error> {
        let exe = std::env::current_exe().map_err(|e| format!("the bench's own binary: {e}"))?;
        let mut cmd = Command::new(exe);
        cmd.arg(crate::relay::FLAG).arg(upstream.to_string());
        let (proc, addr) = Proc::spawn(cmd, "the relay", work.0.join("relay.log"), crate::relay::LISTENING)?;
        Ok(Relay { pid: proc.pid, proc, addr })
    }

    pub fn log_tail(&self) -> String {
        self.proc.log_tail()
    }
}

/// The running `ccag-controlplane` on SQLite in the work directory.
pub struct ControlPlane {
    proc: Proc,
    /// The gRPC endpoint, e.g. `http://127.0.0.1:40123`.
    pub grpc: String,
    pub admin_user: String,
    pub admin_password: String,
    pub dataplane_token: String,
}

impl ControlPlane {
    /// Replica `replica` of the control plane: on SQLite in the work
    /// directory when `database_url` is `None`, else on that database. The
    /// replicas of one bench share `first`'s admin password and token.
    pub fn start(
        binary: &Path,
        work: &WorkDir,
        replica: usize,
        database_url: Option<&str>,
        first: Option<&ControlPlane>,
    ) -> Result<Self, Error> {
        let data = work.0.join(format!("controlplane-{replica}"));
        std::fs::create_dir_all(&data).map_err(|e| format!("{}: {e}", data.display()))?;
        let admin_password = first.map_or_else(|| random_token(24), |f| f.admin_password.clone());
        let dataplane_token = first.map_or_else(|| random_token(32), |f| f.dataplane_token.clone());
        let mut cmd = Command::new(binary);
        cmd.env_remove("DATABASE_URL")
            .env_remove("CCAG_TLS_CERT")
            .env_remove("CCAG_TLS_KEY")
            .env_remove("CCAG_LOG")
            .env("CCAG_DATA_DIR", &data)
            .env("CCAG_GRPC_ADDR", "127.0.0.1:0")
            .env("CCAG_HTTP_ADDR", "127.0.0.1:0")
            .env("CCAG_LOG_FORMAT", "json")
            .env("CCAG_REPLICA_ID", format!("bench-cp-{replica}"))
            .env("ADMIN_USERNAME", "admin")
            .env("ADMIN_PASSWORD", &admin_password)
            .env("CCAG_DATAPLANE_TOKEN", &dataplane_token)
            // The bench's endpoints are doubles on loopback, which the
            // control plane refuses as endpoint URLs unless allowed.
            .env("CCAG_OUTBOUND_ALLOW_CIDRS", "127.0.0.1/32")
            .current_dir(&work.0);
        if let Some(url) = database_url {
            cmd.env("DATABASE_URL", url);
        }
        let (proc, grpc) = Proc::spawn(
            cmd,
            "ccag-controlplane",
            work.0.join(format!("controlplane-{replica}.log")),
            "ccag-controlplane grpc listening on ",
        )?;
        Ok(ControlPlane { proc, grpc, admin_user: "admin".into(), admin_password, dataplane_token })
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid
    }

    pub fn log_tail(&self) -> String {
        self.proc.log_tail()
    }
}

/// A running `ccag-dataplane` configured by the control plane.
pub struct DataPlane {
    proc: Proc,
    pub pid: u32,
    pub id: String,
    pub url: String,
}

impl DataPlane {
    /// Data plane `n`, given every replica's URL, starting with replica
    /// `n - 1` (modulo their number), so that the data planes spread.
    /// `ca_bundle` is the doubles' certificates (`AWS_CA_BUNDLE`).
    pub fn start(
        n: usize,
        double_url: &str,
        ca_bundle: &Path,
        cps: &[ControlPlane],
        work: &WorkDir,
    ) -> Result<Self, Error> {
        let cp = &cps[0];
        let urls: Vec<&str> = (0..cps.len()).map(|i| cps[(n - 1 + i) % cps.len()].grpc.as_str()).collect();
        let id = format!("bench-dp-{n}");
        let state = work.0.join(&id);
        std::fs::create_dir_all(&state).map_err(|e| format!("{}: {e}", state.display()))?;
        let binary = dataplane_binary();
        let mut cmd = Command::new(&binary);
        cmd.env("CCAG_DATAPLANE_ADDR", "127.0.0.1:0")
            .env("CCAG_DATAPLANE_ADMIN_ADDR", "127.0.0.1:0")
            .env_remove("CCAG_DATAPLANE_CONFIG")
            .env_remove("CCAG_DATAPLANE_TOKEN_FILE")
            .env_remove("CCAG_CONTROLPLANE_CA")
            .env("CCAG_CONTROLPLANE_URL", urls.join(","))
            .env("CCAG_DATAPLANE_TOKEN", &cp.dataplane_token)
            .env("CCAG_DATAPLANE_STATE_DIR", &state)
            .env("CCAG_DATAPLANE_ID", &id)
            .env("CCAG_LOG_FORMAT", "json")
            .env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", double_url)
            .env("AWS_CA_BUNDLE", ca_bundle)
            .env("AWS_ACCESS_KEY_ID", DEFAULT_ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", DEFAULT_SECRET_ACCESS_KEY)
            .env("AWS_REGION", REGION)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", state.join("no-aws-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", state.join("no-aws-credentials"))
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("CCAG_LOG");
        let (proc, url) = Proc::spawn(cmd, &binary, work.0.join(format!("{id}.log")), "listening on ")?;
        Ok(DataPlane { pid: proc.pid, proc, id, url })
    }

    pub fn log_tail(&self) -> String {
        self.proc.log_tail()
    }

    pub fn rss_kib(&self) -> Result<u64, Error> {
        proc_status_kib(self.pid, "VmRSS:")
            .ok_or_else(|| format!("no VmRSS for pid {}; did the data plane exit?", self.pid))
    }

    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid)).map(|d| d.count()).unwrap_or(0)
    }
}

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// Open sockets: each held stream costs a client socket and a double-side
/// socket in this process, and two sockets in the data plane (which inherits
/// this limit). Raises the soft limit up to the hard one if needed.
pub fn raise_nofile_limit(streams: usize) -> Result<u64, String> {
    let want = (streams as u64) * 2 + 1024;
    match rlimit::increase_nofile_limit(want) {
        Ok(got) if got >= want => Ok(got),
        Ok(got) => Err(format!(
            "RLIMIT_NOFILE is {got} (hard limit); {want} wanted for {streams} streams: \
             raise it with `ulimit -Hn {want}` as root, or pass a smaller --streams"
        )),
        Err(e) => Err(format!("could not raise RLIMIT_NOFILE: {e}")),
    }
}

// ---------------------------------------------------------------------------
// CPU time

/// CPU time (user + system) over a phase: of the data plane under load, of
/// this process (load generator and double), of the control plane and the
/// other data planes, and of the whole machine.
pub struct CpuMeter {
    dp: u32,
    fleet: Vec<u32>,
    at_start: [f64; 4],
    /// The measured process's threads, for its own figure in nanoseconds:
    /// at 50 req/s a 2 s phase holds 100 requests, and the 10 ms ticks of
    /// `stat` would make ±100 µs of each request's share.
    dp_threads: ThreadTimes,
    wall: Instant,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct CpuUse {
    /// The process measured: the data plane under load, or the relay.
    pub dp_secs: f64,
    /// This process: the load generator and the double.
    pub bench_secs: f64,
    /// The control plane and the other (idle) data planes.
    pub fleet_secs: f64,
    /// Every other process meanwhile: anything much above zero means the
    /// figures were disturbed.
    pub other_secs: f64,
    pub wall_secs: f64,
}

impl CpuMeter {
    pub fn start(dp: u32, fleet: &[u32]) -> Self {
        let mut m = CpuMeter {
            dp,
            fleet: fleet.to_vec(),
            at_start: [0.0; 4],
            dp_threads: ThreadTimes::read(dp),
            wall: Instant::now(),
        };
        m.at_start = m.read();
        m.wall = Instant::now();
        m
    }

    fn read(&self) -> [f64; 4] {
        [
            cpu_secs(&self.dp.to_string()),
            cpu_secs("self"),
            self.fleet.iter().map(|p| cpu_secs(&p.to_string())).sum(),
            machine_busy_secs(),
        ]
    }

    pub fn stop(&self) -> CpuUse {
        let now = self.read();
        let d: Vec<f64> = now.iter().zip(self.at_start).map(|(a, b)| a - b).collect();
        CpuUse {
            // Of the threads alive at the end: one that exited meanwhile (an
            // idle blocking thread) takes its time with it.
            dp_secs: ThreadTimes::read(self.dp).secs_since(&self.dp_threads),
            bench_secs: d[1],
            fleet_secs: d[2],
            other_secs: (d[3] - d[0] - d[1] - d[2]).max(0.0),
            wall_secs: self.wall.elapsed().as_secs_f64(),
        }
    }
}

/// Other processes used more than this share of one CPU during a phase.
pub const DISTURBED: f64 = 0.10;

impl CpuUse {
    pub fn disturbed(&self) -> bool {
        self.other_secs / self.wall_secs > DISTURBED
    }
}

/// On-CPU time of each thread of a process, in nanoseconds, from
/// `/proc/PID/task/*/schedstat`: finer than the 10 ms ticks of `stat`, for
/// phases where the data plane does little.
pub struct ThreadTimes(std::collections::HashMap<u32, u64>);

impl ThreadTimes {
    pub fn read(pid: u32) -> Self {
        let mut times = std::collections::HashMap::new();
        if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for task in dir.flatten() {
                let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else { continue };
                let ns = std::fs::read_to_string(task.path().join("schedstat"))
                    .ok()
                    .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()));
                if let Some(ns) = ns {
                    times.insert(tid, ns);
                }
            }
        }
        ThreadTimes(times)
    }

    /// CPU seconds since `earlier`, over the threads alive now (a thread
    /// that exited meanwhile takes its last slice with it).
    pub fn secs_since(&self, earlier: &ThreadTimes) -> f64 {
        let ns: u64 =
            self.0.iter().map(|(tid, now)| now.saturating_sub(earlier.0.get(tid).copied().unwrap_or(0))).sum();
        ns as f64 / 1e9
    }
}

/// Busy CPU time of the whole machine (the `cpu` line of `/proc/stat`:
/// everything but idle and iowait), in seconds.
fn machine_busy_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let f: Vec<f64> = cpu.split_whitespace().skip(1).map(|v| v.parse().unwrap_or(0.0)).collect();
    // user nice system idle iowait irq softirq steal (guest is inside user).
    let busy: f64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| f.get(i)).sum();
    busy / clock_ticks()
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// utime + stime of `/proc/{who}/stat`, in seconds.
pub fn cpu_secs(who: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{who}/stat")) else {
        return 0.0;
    };
    // Fields after the `(comm)`, which may itself hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after `)`.
    (tick(11) + tick(12)) / clock_ticks()
}

// ---------------------------------------------------------------------------
// The machine

pub struct Machine {
    pub cpu: String,
    pub nproc: usize,
    pub mem_gib: f64,
    pub kernel: String,
    pub date: String,
}

impl Machine {
    pub fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let mem_gib = proc_meminfo_kib("MemTotal:").unwrap_or(0) as f64 / 1024.0 / 1024.0;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let (y, m, d) = civil_from_days((now / 86_400) as i64);
        Machine {
            cpu,
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            mem_gib,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            date: format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", now % 86_400 / 3600, now % 3600 / 60),
        }
    }
}

fn proc_meminfo_kib(field: &str) -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A throw-away PostgreSQL database for the bench, made and dropped with
/// `psql` against `base` (a URL without a database name).
pub struct BenchDatabase {
    base: String,
    name: String,
}

impl BenchDatabase {
    pub fn create(base: &str) -> Result<Self, Error> {
        let base = base.trim_end_matches('/').to_owned();
        let name = format!("ccag_bench_{}", random_token(8).to_lowercase());
        psql(&base, &format!("CREATE DATABASE {name}"))?;
        Ok(BenchDatabase { base, name })
    }

    pub fn url(&self) -> String {
        format!("{}/{}", self.base, self.name)
    }
}

impl Drop for BenchDatabase {
    fn drop(&mut self) {
        let _ = psql(&self.base, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

fn psql(base: &str, sql: &str) -> Result<(), Error> {
    let out = Command::new("psql")
        .args(["-d", &format!("{base}/postgres"), "-v", "ON_ERROR_STOP=1", "-qc", sql])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running psql: {e}"))?;
    if !out.status.success() {
        return Err(format!("psql {sql:?}: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(())
}
