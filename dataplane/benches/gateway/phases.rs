//! The phases that are not plain load: streams held open (memory and CPU),
//! configuration propagation across the data planes, and the lag of usage
//! reports.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use http_body_util::BodyExt;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::admin::{Admin, Key};
use crate::fleet::{CpuMeter, CpuUse, DataPlane, ThreadTimes};
use crate::load::{contains, new_client, Route, Target};
use crate::{progress, Error, PROMPT};

/// Keeps a stream open: the double waits this long between two events.
const HOLD_DIRECTIVE: &str = "[double:inter_token_ms=600000]";
/// How often a data plane is asked whether it applied a change yet.
pub const PROPAGATION_POLL: Duration = Duration::from_millis(1);
/// How often the control plane is asked whether a usage record arrived.
pub const USAGE_POLL: Duration = Duration::from_millis(2);

/// Waits until every data plane accepts every key: each has its snapshot.
pub async fn wait_ready(t: &Target, dps: &[DataPlane], keys: &[&Key]) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(30);
    for dp in dps {
        for key in keys {
            loop {
                match t.models_status(&dp.url, &key.secret).await {
                    Ok(StatusCode::OK) => break,
                    Ok(_) | Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(20)).await,
                    Ok(s) => {
                        return Err(format!(
                            "data plane {} still answers {s} for a new key after 30 s; its log ends with:\n{}",
                            dp.id,
                            dp.log_tail()
                        ))
                    }
                    Err(e) => return Err(format!("data plane {}: {e}; its log ends with:\n{}", dp.id, dp.log_tail())),
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Held streams: memory and CPU

pub struct MemoryRun {
    pub streams: usize,
    pub rss_open: u64,
    pub fds_open: usize,
    /// Time until all streams had their first event.
    pub open_time: Duration,
    /// CPU from the first request until every stream had its first event.
    pub cpu_open: CpuUse,
    /// CPU while every stream is held and idle, over `--idle-secs`.
    pub cpu_idle: CpuUse,
    /// The data plane's share of the two, summed over its threads' schedstat
    /// (nanosecond resolution).
    pub dp_open_secs: f64,
    pub dp_idle_secs: f64,
    /// The data plane's CPU with no stream open, in CPU seconds per second
    /// (its background: the watch stream, timers), measured before.
    pub dp_baseline_load: f64,
    /// `ping` events the clients received during the idle window.
    pub pings_idle: usize,
    pub rss_after: u64,
    pub fds_after: usize,
    /// Time the data plane took to close its sockets after the clients left.
    pub release_time: Option<Duration>,
}

/// Opens `n` streams through the data plane whose replies pause for minutes
/// after the first event, measures the data plane's CPU while opening them
/// and while holding them idle, reads its memory once every stream has its
/// first event, then drops them all.
pub async fn hold_streams(
    t: &Target,
    dp: &DataPlane,
    fleet: &[u32],
    n: usize,
    idle_secs: f64,
) -> Result<MemoryRun, Error> {
    let fds_before = dp.open_fds();
    let (threads, wall) = (ThreadTimes::read(dp.pid), Instant::now());
    tokio::time::sleep(Duration::from_secs_f64(idle_secs.min(3.0))).await;
    let dp_baseline_load = ThreadTimes::read(dp.pid).secs_since(&threads) / wall.elapsed().as_secs_f64();
    // Its own pool: every held stream on a connection of its own.
    let client = new_client("");
    let ready = Arc::new(AtomicUsize::new(0));
    let pings = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(Mutex::new(Vec::<String>::new()));
    let (release, released) = watch::channel(false);
    let text = format!("Hold this stream open. {HOLD_DIRECTIVE}");
    let threads = ThreadTimes::read(dp.pid);
    let cpu = CpuMeter::start(dp.pid, fleet);
    let started = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..n {
        let client = client.clone();
        let req = t.gateway_request(true, &text);
        let (ready, pings, failed) = (ready.clone(), pings.clone(), failed.clone());
        let mut released = released.clone();
        set.spawn(async move {
            let first = async {
                let res = client.request(req).await.map_err(|e| format!("{e:?}"))?;
                if res.status() != StatusCode::OK {
                    return Err(format!("HTTP {}", res.status()));
                }
                let mut body = res.into_body();
                match body.frame().await {
                    Some(Ok(f)) if f.data_ref().is_some_and(|d| contains(d, b"message_start")) => Ok(body),
                    other => Err(format!("first event: {other:?}")),
                }
            };
            let mut body = match first.await {
                Ok(body) => body,
                Err(e) => return failed.lock().expect("not poisoned").push(e),
            };
            ready.fetch_add(1, Ordering::SeqCst);
            // Counts the pings until the bench lets go of the stream.
            loop {
                tokio::select! {
                    _ = released.wait_for(|r| *r) => break,
                    frame = body.frame() => match frame {
                        Some(Ok(f)) => {
                            if f.data_ref().is_some_and(|d| contains(d, b"event: ping")) {
                                pings.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        other => {
                            let e = format!("a held stream ended early: {other:?}");
                            return failed.lock().expect("not poisoned").push(e);
                        }
                    },
                }
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ok, bad) = (ready.load(Ordering::SeqCst), failed.lock().expect("not poisoned").len());
        if ok + bad >= n {
            break;
        }
        if Instant::now() > deadline {
            let _ = release.send(true);
            return Err(format!("after 60 s only {ok} of {n} held streams had their first event ({bad} failed)"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let open_time = started.elapsed();
    let cpu_open = cpu.stop();
    let dp_open_secs = ThreadTimes::read(dp.pid).secs_since(&threads);
    if let Some(e) = failed.lock().expect("not poisoned").first() {
        let _ = release.send(true);
        return Err(format!("a held stream failed: {e}"));
    }
    // Let the allocator and the sockets settle before reading.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_open = dp.rss_kib()?;
    let fds_open = dp.open_fds();

    progress(&format!("holding {n} idle streams for {idle_secs} s"));
    let pings_before = pings.load(Ordering::SeqCst);
    let threads = ThreadTimes::read(dp.pid);
    let cpu = CpuMeter::start(dp.pid, fleet);
    tokio::time::sleep(Duration::from_secs_f64(idle_secs)).await;
    let cpu_idle = cpu.stop();
    let dp_idle_secs = ThreadTimes::read(dp.pid).secs_since(&threads);
    let pings_idle = pings.load(Ordering::SeqCst) - pings_before;
    if let Some(e) = failed.lock().expect("not poisoned").first() {
        let _ = release.send(true);
        return Err(e.clone());
    }

    let _ = release.send(true);
    while set.join_next().await.is_some() {}
    drop(client);
    let closing = Instant::now();
    let mut release_time = None;
    while closing.elapsed() < Duration::from_secs(15) {
        if dp.open_fds() <= fds_before + 8 {
            release_time = Some(closing.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(MemoryRun {
        streams: n,
        rss_open,
        fds_open,
        open_time,
        cpu_open,
        cpu_idle,
        dp_open_secs,
        dp_idle_secs,
        dp_baseline_load,
        pings_idle,
        rss_after: dp.rss_kib()?,
        fds_after: dp.open_fds(),
        release_time,
    })
}

// ---------------------------------------------------------------------------
// Configuration propagation

pub struct PropagationSample {
    /// When the admin call returned.
    pub rpc: Duration,
    /// When each data plane first answered as the change demands.
    pub per_dp: Vec<Duration>,
    /// When the last one did: the change is in force everywhere.
    pub applied: Duration,
    /// When the control plane's status API showed every data plane's ACK.
    pub acked: Duration,
}

/// Disables and re-enables `key` in turn, `repeats` changes in all. Each
/// change is timed from just before the admin call until every data plane
/// answers the key as the change demands (401 once disabled, 200 once
/// enabled again), polling each data plane every millisecond, and until
/// the status API shows every data plane's acknowledgement.
pub async fn propagation(
    t: &Target,
    admin: &Admin,
    dps: &[DataPlane],
    key: &Key,
    repeats: usize,
) -> Result<Vec<PropagationSample>, Error> {
    let ids: Vec<String> = dps.iter().map(|d| d.id.clone()).collect();
    let mut samples = Vec::with_capacity(repeats);
    for rep in 0..repeats {
        // A random gap, so that the changes do not fall in step with the
        // control plane's own polling.
        tokio::time::sleep(Duration::from_millis(fastrand::u64(50..=350))).await;
        let active = rep % 2 == 1;
        let want = if active { StatusCode::OK } else { StatusCode::UNAUTHORIZED };
        let before = admin.status().await?.config_version;

        let t0 = Instant::now();
        admin.set_key_active(&key.id, active).await?;
        let rpc = t0.elapsed();
        let mut set = JoinSet::new();
        for (i, dp) in dps.iter().enumerate() {
            let (t, url, secret) = (t.clone(), dp.url.clone(), key.secret.clone());
            set.spawn(async move {
                loop {
                    let status = t.models_status(&url, &secret).await?;
                    if status == want {
                        return Ok::<_, Error>((i, t0.elapsed()));
                    }
                    if t0.elapsed() > Duration::from_secs(10) {
                        return Err(format!("{url} still answers {status} 10 s after the change (want {want})"));
                    }
                    tokio::time::sleep(PROPAGATION_POLL).await;
                }
            });
        }
        let mut per_dp = vec![Duration::ZERO; dps.len()];
        while let Some(r) = set.join_next().await {
            let (i, d) = r.map_err(|e| e.to_string())??;
            per_dp[i] = d;
        }
        let applied = per_dp.iter().copied().max().unwrap_or_default();
        let acked = loop {
            let s = admin.status().await?;
            let all =
                ids.iter().all(|id| s.dataplanes.iter().any(|d| &d.id == id && d.acked_version >= s.config_version));
            if s.config_version > before && all {
                break t0.elapsed();
            }
            if t0.elapsed() > Duration::from_secs(10) {
                return Err(format!("10 s after the change the status API shows no ACK from every data plane: {s:?}"));
            }
            tokio::time::sleep(USAGE_POLL).await;
        };
        samples.push(PropagationSample { rpc, per_dp, applied, acked });
    }
    // Leave the probe key enabled.
    if repeats % 2 == 1 {
        admin.set_key_active(&key.id, true).await?;
    }
    Ok(samples)
}

// ---------------------------------------------------------------------------
// Usage-report lag

pub struct UsageLag {
    /// From the last byte of a response until its record was in the admin Usage API.
    pub samples: Vec<Duration>,
    /// How long one GetUsage call took, on average (the resolution of the figure).
    pub query_time: Duration,
}

/// Sends one non-streaming request at a time with `key` (used by nothing
/// else) and polls the admin Usage API until the control plane counts it.
pub async fn usage_lag(t: &Target, admin: &Admin, key: &Key, repeats: usize) -> Result<UsageLag, Error> {
    let t = t.with_key(&key.secret);
    let mut samples = Vec::with_capacity(repeats);
    let (mut queries, mut query_time) = (0u32, Duration::ZERO);
    let base = admin.key_requests(&key.id).await?;
    for i in 1..=repeats as u64 {
        tokio::time::sleep(Duration::from_millis(fastrand::u64(50..=300))).await;
        t.exchange(Route::Gateway, false, PROMPT).await?;
        let done = Instant::now();
        loop {
            let q = Instant::now();
            let n = admin.key_requests(&key.id).await?;
            query_time += q.elapsed();
            queries += 1;
            if n >= base + i {
                samples.push(done.elapsed());
                break;
            }
            if done.elapsed() > Duration::from_secs(30) {
                return Err(format!("30 s after request {i} the control plane counts {} for its key", n - base));
            }
            tokio::time::sleep(USAGE_POLL).await;
        }
    }
    Ok(UsageLag { samples, query_time: query_time / queries.max(1) })
}
