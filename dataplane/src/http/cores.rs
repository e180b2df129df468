//! How connections are spread over the CPU's cores.
//!
//! Per core (the default): one single-threaded tokio runtime per core. The
//! acceptor hands each new connection to the core serving the fewest, and
//! from then on the connection, its requests, their Bedrock calls (each core
//! has a pool of its own) and the answers stay on that core's thread. With
//! tokio's work-stealing runtime instead, a request that arrives or an answer
//! from Bedrock often wakes a parked worker to steal the task: one thread
//! wake-up and a cache-cold run on another core, each time.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::TcpStream;
use tokio::runtime::{Handle, RuntimeFlavor};

/// `CCAG_DATAPLANE_THREADING`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threading {
    /// `per-core`: this many single-threaded runtimes (`TOKIO_WORKER_THREADS`,
    /// else the cores the process may use).
    PerCore(usize),
    /// `work-stealing`: tokio's multi-threaded runtime (its workers also
    /// from `TOKIO_WORKER_THREADS`).
    WorkStealing,
}

/// Request threads at most: a bound on a mistyped setting, not a tuning.
const MAX_CORES: usize = 1024;

impl Threading {
    pub fn from_env() -> Result<Self, String> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        // Honours the container's CPU quota (cgroups), not just the host's cores.
        let available = std::thread::available_parallelism().map_or(1, |n| n.get());
        Threading::parse(var("CCAG_DATAPLANE_THREADING").as_deref(), var("TOKIO_WORKER_THREADS").as_deref(), available)
    }

    fn parse(threading: Option<&str>, workers: Option<&str>, available: usize) -> Result<Self, String> {
        match threading.map(str::trim) {
            None | Some("per-core") => {}
            Some("work-stealing") => return Ok(Threading::WorkStealing),
            Some(v) => return Err(format!("CCAG_DATAPLANE_THREADING={v:?}: per-core or work-stealing")),
        }
        match workers {
            None => Ok(Threading::PerCore(available.clamp(1, MAX_CORES))),
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if (1..=MAX_CORES).contains(&n) => Ok(Threading::PerCore(n)),
                _ => Err(format!("TOKIO_WORKER_THREADS={v:?}: a number from 1 to {MAX_CORES}")),
            },
        }
    }

    /// The runtime `main` runs on: with per-core threading, the first core's.
    pub fn runtime(self) -> io::Result<tokio::runtime::Runtime> {
        match self {
            Threading::PerCore(_) => tokio::runtime::Builder::new_current_thread().enable_all().build(),
            Threading::WorkStealing => tokio::runtime::Builder::new_multi_thread().enable_all().build(),
        }
    }
}

/// The request cores: the calling thread's runtime, and one thread with a
/// runtime of its own for each further core.
pub struct Cores {
    cores: Vec<Core>,
    stop: tokio::sync::watch::Sender<bool>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

struct Core {
    handle: Handle,
    /// Connections it serves: new ones go to the core with the fewest.
    connections: Arc<AtomicUsize>,
}

/// Holds a connection counted against its core until dropped.
pub struct CoreLoad(Arc<AtomicUsize>);

impl Drop for CoreLoad {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Cores {
    /// Starts `n - 1` core threads beside the calling one, which must run a
    /// current-thread runtime (the first core). `on_thread` runs on each
    /// core's thread, this one included, before it serves anything: it
    /// installs that thread's own Bedrock pool.
    pub fn start(n: usize, on_thread: impl Fn() + Send + Sync + 'static) -> io::Result<Cores> {
        let here = Handle::current();
        if here.runtime_flavor() != RuntimeFlavor::CurrentThread {
            return Err(io::Error::other("per-core threading needs the first core on a current-thread runtime"));
        }
        let on_thread = Arc::new(on_thread);
        on_thread();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut cores = vec![Core { handle: here, connections: Arc::default() }];
        let mut threads = Vec::new();
        for i in 1..n.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            cores.push(Core { handle: rt.handle().clone(), connections: Arc::default() });
            let on_thread = on_thread.clone();
            let mut stopped = stopped.clone();
            let thread = std::thread::Builder::new().name(format!("ccag-core-{i}")).spawn(move || {
                on_thread();
                rt.block_on(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                });
                // Whatever is left (a lingering close) goes with the runtime.
                rt.shutdown_timeout(std::time::Duration::from_secs(1));
            })?;
            threads.push(thread);
        }
        Ok(Cores { cores, stop, threads: Mutex::new(threads) })
    }

    /// How many cores serve requests (at least one).
    pub fn count(&self) -> usize {
        self.cores.len()
    }

    /// Every core's runtime, for the counts of alive tasks.
    pub fn handles(&self) -> Vec<Handle> {
        self.cores.iter().map(|c| c.handle.clone()).collect()
    }

    /// Connections each core serves now.
    pub fn loads(&self) -> Vec<usize> {
        self.cores.iter().map(|c| c.connections.load(Ordering::Relaxed)).collect()
    }

    /// Serves `stream` with `serve` on the core with the fewest connections.
    /// A stream accepted on one core is registered with the chosen core's
    /// reactor, so that its readiness wakes that core and no other.
    pub fn spawn<F, Fut>(&self, stream: TcpStream, serve: F)
    where
        F: FnOnce(TcpStream, CoreLoad) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        // Ties go to the later cores: the first also runs the background
        // tasks (the configuration watch, usage reports, metrics).
        let (i, core) = self
            .cores
            .iter()
            .enumerate()
            .rev()
            .min_by_key(|(_, c)| c.connections.load(Ordering::Relaxed))
            .expect("there is at least one core");
        core.connections.fetch_add(1, Ordering::Relaxed);
        let load = CoreLoad(core.connections.clone());
        if i == 0 {
            tokio::spawn(serve(stream, load));
            return;
        }
        let std = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "an accepted connection could not be handed to its core");
                return;
            }
        };
        core.handle.spawn(async move {
            match TcpStream::from_std(std) {
                Ok(stream) => serve(stream, load).await,
                Err(e) => tracing::debug!(error = %e, "an accepted connection could not be registered"),
            }
        });
    }

    /// Stops the other cores' runtimes (their connections must be over) and
    /// waits for their threads.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for t in threads {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::server::tests::pair;
    use std::sync::atomic::AtomicUsize;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn per_core_is_the_default_with_a_runtime_per_available_core() {
        assert_eq!(Threading::parse(None, None, 6), Ok(Threading::PerCore(6)));
        assert_eq!(Threading::parse(Some("per-core"), Some("3"), 6), Ok(Threading::PerCore(3)));
        assert_eq!(Threading::parse(Some("work-stealing"), Some("3"), 6), Ok(Threading::WorkStealing));
    }

    #[test]
    fn a_mistyped_setting_is_refused_with_what_it_takes() {
        let e = Threading::parse(Some("per_core"), None, 2).unwrap_err();
        assert!(e.contains("per-core or work-stealing"), "{e}");
        let e = Threading::parse(None, Some("0"), 2).unwrap_err();
        assert!(e.contains("from 1 to 1024"), "{e}");
    }

    #[test]
    fn per_core_needs_the_first_core_on_a_current_thread_runtime() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
        let e = rt.block_on(async { Cores::start(2, || {}).err().expect("refused") });
        assert!(e.to_string().contains("current-thread"), "{e}");
    }

    #[tokio::test]
    async fn every_core_thread_runs_the_hook_before_serving() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let cores = Cores::start(3, move || {
            counted.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        // The two new threads run it as they start; this one at once.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (_client, stream) = pair().await;
        cores.spawn(stream, move |_, _| async move {
            let _ = tx.send(());
        });
        rx.await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        cores.stop();
    }

    #[tokio::test]
    async fn connections_go_to_the_core_serving_the_fewest_the_first_core_last() {
        let cores = Cores::start(3, || {}).unwrap();
        let (release, released) = tokio::sync::watch::channel(false);
        let mut clients = Vec::new();
        let mut seen = Vec::new();
        for _ in 0..4 {
            let (client, stream) = pair().await;
            clients.push(client);
            let mut released = released.clone();
            cores.spawn(stream, move |stream, load| async move {
                let _held = (stream, load);
                let _ = released.wait_for(|r| *r).await;
            });
            seen.push(cores.loads());
        }
        assert_eq!(seen, [vec![0, 0, 1], vec![0, 1, 1], vec![1, 1, 1], vec![1, 1, 2]]);
        let _ = release.send(true);
        // Each connection's place is freed when it ends.
        for _ in 0..200 {
            if cores.loads() == [0, 0, 0] {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(cores.loads(), [0, 0, 0]);
        cores.stop();
    }

    #[tokio::test]
    async fn a_connection_is_served_on_its_cores_thread_and_reactor() {
        let cores = Cores::start(2, || {}).unwrap();
        let (mut client, stream) = pair().await;
        let (tx, rx) = tokio::sync::oneshot::channel();
        cores.spawn(stream, move |mut stream, _| async move {
            let thread = std::thread::current().name().map(str::to_owned);
            // Reading and writing here proves the socket's readiness now
            // reaches this core's reactor.
            let mut buf = [0u8; 4];
            stream.read_exact(&mut buf).await.unwrap();
            stream.write_all(&buf).await.unwrap();
            let _ = tx.send(thread);
        });
        client.write_all(b"ping").await.unwrap();
        let mut echo = [0u8; 4];
        client.read_exact(&mut echo).await.unwrap();
        assert_eq!(&echo, b"ping");
        assert_eq!(rx.await.unwrap().as_deref(), Some("ccag-core-1"));
        cores.stop();
    }
}
