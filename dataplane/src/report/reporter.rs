//! Usage records from the in-process channel to the control plane, at least
//! once: every record is logged, appended to the durable spool, and removed
//! from it only after the control plane acknowledged the batch holding it.
//! The control plane stores records once per request id, so resending after
//! an outage or a restart never counts a request twice.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ccag_proto::config::v1 as pb;
use ccag_proto::config::v1::data_plane_service_client::DataPlaneServiceClient;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use super::spool::Spool;
use crate::control::{connect, Backoff, Bearer, ControlSettings};
use crate::observe::{Metrics, Observer};
use crate::usage::UsageRecord;

/// Records per report.
const BATCH: usize = 500;
/// Longest wait before a partial batch is sent.
const LINGER: Duration = Duration::from_millis(500);
/// Shortest gap between two reports. A busy data plane then sends one batch
/// per gap instead of a call (and two fsyncs, and a database write at the
/// control plane) per request; the first record after a quiet spell still
/// goes at once.
const MIN_GAP: Duration = Duration::from_millis(100);
/// At shutdown, how long the spool may take to reach the control plane
/// before what is left stays on disk for the next start (a pod's disk may
/// not outlive it).
pub const FINAL_REPORT: Duration = Duration::from_secs(5);

/// Waits, up to [`FINAL_REPORT`], until the spool has been read empty after
/// this call began; false when records are left.
pub async fn delivered(metrics: &Metrics) -> bool {
    let spool = &metrics.spool;
    let start = spool.peeks.load(Ordering::Relaxed);
    let deadline = tokio::time::Instant::now() + FINAL_REPORT;
    loop {
        if spool.peeks.load(Ordering::Relaxed) >= start + 2 && spool.bytes.load(Ordering::Relaxed) == 0 {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Disk held by undelivered records before new ones are refused (and counted as lost).
pub const MAX_SPOOL_BYTES: u64 = 512 * 1024 * 1024;

fn log(r: &UsageRecord) {
    match serde_json::to_string(r) {
        Ok(json) => tracing::info!(target: "ccag::usage", usage = %json, "usage"),
        Err(e) => tracing::error!(error = %e, "usage record did not serialise"),
    }
}

/// Without a control plane: the log (and the metrics) are the only consumers.
pub fn spawn_log_only(mut rx: mpsc::Receiver<UsageRecord>, observer: Arc<Observer>) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(r) = rx.recv().await {
            log(&r);
            observer.observe(&r);
        }
    })
}

/// With a control plane. The returned handle finishes once the channel has
/// closed and every queued record is on disk.
pub fn spawn(
    mut rx: mpsc::Receiver<UsageRecord>,
    control: ControlSettings,
    budgets: Arc<crate::budget::Budgets>,
    router: Arc<crate::routing::Router>,
    observer: Arc<Observer>,
) -> Result<JoinHandle<()>, String> {
    let spool = Spool::open(&control.state_dir, MAX_SPOOL_BYTES)
        .map_err(|e| format!("opening the usage spool in {}: {e}", control.state_dir.display()))?;
    if !spool.is_empty() {
        tracing::info!(bytes = spool.pending_bytes(), "usage spool holds undelivered records; they will be resent");
    }
    let spool = Arc::new(Mutex::new(spool));
    let wake = Arc::new(Notify::new());
    let metrics = observer.metrics.clone();
    tokio::spawn(send_loop(spool.clone(), wake.clone(), control, budgets, router, metrics));
    Ok(tokio::spawn(async move {
        let mut batch = Vec::with_capacity(BATCH);
        while rx.recv_many(&mut batch, BATCH).await > 0 {
            for r in &batch {
                log(r);
                observer.observe(r);
            }
            // Short, synchronous appends; the lock is never held across an await.
            let appended = spool.lock().map(|mut s| s.append(&batch));
            match appended {
                Ok(Ok(())) => wake.notify_one(),
                Ok(Err(e)) => tracing::error!(error = %e, lost = batch.len(), "usage spool refused records"),
                Err(_) => tracing::error!(lost = batch.len(), "usage spool lock poisoned"),
            }
            batch.clear();
        }
    }))
}

async fn send_loop(
    spool: Arc<Mutex<Spool>>,
    wake: Arc<Notify>,
    control: ControlSettings,
    budgets: Arc<crate::budget::Budgets>,
    router: Arc<crate::routing::Router>,
    metrics: Arc<Metrics>,
) {
    let mut backoff = Backoff::new();
    let mut client = None;
    let mut next = 0;
    let mut last_report: Option<tokio::time::Instant> = None;
    loop {
        // After a full batch more are likely waiting: no gap then.
        if let Some(at) = last_report.take() {
            tokio::time::sleep_until(at + MIN_GAP).await;
        }
        let peeked = blocking(&spool, |s| Ok((s.peek(BATCH)?, s.pending_bytes()))).await;
        let ((records, cursor), pending) = match peeked {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "reading the usage spool failed");
                tokio::time::sleep(backoff.delay()).await;
                continue;
            }
        };
        // Records are spooled in arrival order: the first is the oldest.
        metrics.spool.bytes.store(pending, Ordering::Relaxed);
        metrics.spool.oldest_ms.store(records.first().map_or(0, |r| r.started_at_ms.max(1)), Ordering::Relaxed);
        metrics.spool.peeks.fetch_add(1, Ordering::Relaxed);
        if records.is_empty() {
            let _ = tokio::time::timeout(LINGER, wake.notified()).await;
            continue;
        }
        if client.is_none() {
            match connect(&control, &mut next)
                .await
                .and_then(|(ch, _)| Ok(DataPlaneServiceClient::with_interceptor(ch, Bearer::new(&control.token)?)))
            {
                Ok(c) => client = Some(c),
                Err(e) => {
                    tracing::debug!(error = %e, "control plane unreachable; usage stays spooled");
                    tokio::time::sleep(backoff.delay()).await;
                    continue;
                }
            }
        }
        let Some(c) = client.as_mut() else { continue };
        let count = records.len();
        // What this data plane charged its budgets for each record: it
        // leaves their pending spend once the control plane has it.
        let charged: Vec<(String, String, i64)> = records
            .iter()
            .filter(|r| r.budget_cost_micro_usd > 0)
            .map(|r| (r.user_id.clone(), r.team_id.clone(), r.budget_cost_micro_usd))
            .collect();
        let endpoints = router.take_reports();
        let req = pb::ReportUsageRequest {
            dataplane_id: control.id.clone(),
            records: records.into_iter().map(to_pb).collect(),
            endpoints: endpoints.clone(),
        };
        if count < BATCH {
            last_report = Some(tokio::time::Instant::now());
        }
        match c.report_usage(req).await {
            Ok(resp) => {
                let r = resp.into_inner();
                tracing::debug!(sent = count, accepted = r.accepted, duplicates = r.duplicates, "usage reported");
                budgets.observe(&r.spend);
                for (user, team, cost) in &charged {
                    budgets.settle(user, team, *cost);
                }
                if let Err(e) = blocking(&spool, move |s| s.ack(cursor)).await {
                    tracing::error!(error = %e, "could not record delivered usage; it will be resent");
                }
                backoff.reset();
            }
            Err(e) => {
                router.restore_reports(&endpoints);
                tracing::warn!(error = %e, pending = count, "usage report failed; will retry");
                client = None;
                tokio::time::sleep(backoff.delay()).await;
            }
        }
    }
}

/// Spool reads and acknowledgements fsync; they run off the async workers.
async fn blocking<T: Send + 'static>(
    spool: &Arc<Mutex<Spool>>,
    f: impl FnOnce(&mut Spool) -> std::io::Result<T> + Send + 'static,
) -> Result<T, String> {
    let spool = spool.clone();
    tokio::task::spawn_blocking(move || {
        let mut s = spool.lock().map_err(|_| "usage spool lock poisoned".to_owned())?;
        f(&mut s).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

fn to_pb(r: UsageRecord) -> pb::UsageRecord {
    pb::UsageRecord {
        request_id: r.request_id,
        operation: r.operation.into_owned(),
        key_id: r.key_id,
        user_id: r.user_id,
        team_id: r.team_id,
        model: r.model,
        bedrock_model: r.bedrock_model,
        stream: r.stream,
        status: u32::from(r.status),
        outcome: r.outcome.as_str().to_owned(),
        input_tokens: r.usage.input_tokens,
        output_tokens: r.usage.output_tokens,
        cache_creation_input_tokens: r.usage.cache_creation_input_tokens,
        cache_read_input_tokens: r.usage.cache_read_input_tokens,
        ttft_ms: r.ttft_ms.map_or(-1, |t| i64::try_from(t).unwrap_or(i64::MAX)),
        duration_ms: r.duration_ms,
        started_at_ms: r.started_at_ms,
        cache_creation_1h_input_tokens: r.usage.cache_creation_1h_input_tokens,
        web_search_requests: r.usage.web_search_requests,
        endpoint_id: r.endpoint_id,
        attempts: r.attempts,
    }
}
