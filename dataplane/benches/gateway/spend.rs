//! Spend ingest: what the control plane sustains when usage for many
//! budgeted users arrives at a fixed rate, and how soon the spend it counts
//! reaches the data planes.
//!
//! `users` users are made through the admin API under an organisation-wide
//! daily budget (so every one of them has a verdict). Simulated data planes
//! in this process then report usage records for random users at `rate`
//! records per second, in batches every 100 ms as the real reporter sends
//! them, while a simulated peer on the Watch stream receives the verdicts.
//! Two lags are measured per user and batch:
//!
//! - counted: from sending a report until its answer, which carries the
//!   spend counters the stored records moved (committed with them);
//! - pushed: from sending a report until a verdict holding at least that
//!   spend reaches the peer on the Watch stream.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ccag_proto::config::v1::data_plane_service_client::DataPlaneServiceClient;
use ccag_proto::config::v1::{
    resource::Kind, watch_request, Ack, BudgetPeriod, Hello, ReportUsageRequest, UsageRecord, WatchRequest,
};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tonic::transport::Endpoint;

use crate::admin::Admin;
use crate::fleet::{cpu_secs, ControlPlane};
use crate::{progress, Error};

/// Simulated data planes reporting.
const REPORTERS: usize = 4;
const EVERY: Duration = Duration::from_millis(100);

pub struct SpendIngest {
    pub users: usize,
    pub rate: f64,
    pub secs: f64,
    /// Records stored, and over how long.
    pub stored: u64,
    pub wall_secs: f64,
    pub counted: Vec<Duration>,
    pub pushed: Vec<Duration>,
    /// Counted spend never seen in a verdict before the end.
    pub unseen: usize,
    pub cp_cpu_secs: f64,
}

type Client = DataPlaneServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, crate::spend::Auth>,
>;

#[derive(Clone)]
pub struct Auth(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

async fn client(cp: &ControlPlane) -> Result<Client, Error> {
    let ch = Endpoint::from_shared(cp.grpc.clone())
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let bearer = format!("Bearer {}", cp.dataplane_token).parse().map_err(|_| "a token that is not ASCII")?;
    Ok(DataPlaneServiceClient::with_interceptor(ch, Auth(bearer)).max_decoding_message_size(256 << 20))
}

pub async fn run(cp: &ControlPlane, admin: &Admin, users: usize, rate: f64, secs: f64) -> Result<SpendIngest, Error> {
    progress(&format!("spend ingest: creating {users} users under an organisation budget"));
    let mut ids = Vec::with_capacity(users);
    while ids.len() < users {
        let mut set = JoinSet::new();
        for i in ids.len()..(ids.len() + 16).min(users) {
            let admin = admin.clone();
            set.spawn(async move { admin.create_user(&format!("bench-spend-{i}@example.com")).await });
        }
        while let Some(r) = set.join_next().await {
            ids.push(r.map_err(|e| e.to_string())??);
        }
    }
    admin.set_org_budget(1_000_000.0).await?;

    // The peer that watches the verdicts arrive.
    let (vtx, mut vrx) = mpsc::unbounded_channel::<(String, i64, Instant)>();
    let mut watch = client(cp).await?;
    let (out, out_rx) = mpsc::channel::<WatchRequest>(8);
    let hello = Hello { dataplane_id: "bench-spend-watch".into(), ..Default::default() };
    out.send(WatchRequest { msg: Some(watch_request::Msg::Hello(hello)) }).await.map_err(|e| e.to_string())?;
    let outbound = futures_util::stream::unfold(out_rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let mut inbound = watch.watch(outbound).await.map_err(|e| e.to_string())?.into_inner();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let watcher = tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        let mut verdicts = 0usize;
        while let Ok(Some(resp)) = inbound.message().await {
            let at = Instant::now();
            for r in &resp.resources {
                if let Some(Kind::UserBudget(v)) = &r.kind {
                    verdicts += 1;
                    for l in v.lines.iter().filter(|l| l.period == BudgetPeriod::Daily as i32) {
                        let _ = vtx.send((v.id.clone(), l.spend_micro_usd, at));
                    }
                }
            }
            if verdicts >= users {
                if let Some(t) = ready.take() {
                    let _ = t.send(());
                }
            }
            let ack = Ack { nonce: resp.nonce.clone(), revision: resp.revision };
            if out.send(WatchRequest { msg: Some(watch_request::Msg::Ack(ack)) }).await.is_err() {
                break;
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(120), ready_rx)
        .await
        .map_err(|_| "the verdicts of every user never reached the watching peer")?
        .map_err(|_| "the watch stream ended")?;
    while vrx.try_recv().is_ok() {}

    progress(&format!("spend ingest: {rate} records/s for {secs} s from {REPORTERS} simulated data planes"));
    let pid = cp.pid().to_string();
    let cpu_before = cpu_secs(&pid);
    let started = Instant::now();
    let per_batch = ((rate * EVERY.as_secs_f64()) / REPORTERS as f64).round().max(1.0) as usize;
    let ids = std::sync::Arc::new(ids);
    let mut reporters = JoinSet::new();
    for r in 0..REPORTERS {
        let mut c = client(cp).await?;
        let ids = ids.clone();
        reporters.spawn(async move {
            let mut samples: Vec<(String, i64, Instant)> = Vec::new();
            let mut counted = Vec::new();
            let mut stored = 0u64;
            let mut tick = tokio::time::interval(EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut seq = 0u64;
            while started.elapsed().as_secs_f64() < secs {
                tick.tick().await;
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0);
                let records = (0..per_batch)
                    .map(|_| {
                        seq += 1;
                        UsageRecord {
                            request_id: format!("bench-spend-{r}-{seq}-{}", fastrand::u64(..)),
                            operation: "messages".into(),
                            user_id: ids[fastrand::usize(..ids.len())].clone(),
                            model: "claude-haiku-4-5".into(),
                            bedrock_model: "global.anthropic.claude-haiku-4-5-20251001-v1:0".into(),
                            status: 200,
                            outcome: "ok".into(),
                            input_tokens: 1_000,
                            output_tokens: 200,
                            started_at_ms: now_ms,
                            ..Default::default()
                        }
                    })
                    .collect();
                let sent = Instant::now();
                let resp = c
                    .report_usage(ReportUsageRequest {
                        dataplane_id: format!("bench-spend-{r}"),
                        records,
                        endpoints: Vec::new(),
                    })
                    .await
                    .map_err(|e| format!("ReportUsage: {e}"))?
                    .into_inner();
                counted.push(sent.elapsed());
                stored += u64::from(resp.accepted);
                for s in resp.spend.into_iter().filter(|s| s.period == BudgetPeriod::Daily as i32) {
                    samples.push((s.id, s.spend_micro_usd, sent));
                }
            }
            Ok::<_, Error>((stored, counted, samples))
        });
    }
    let mut stored = 0;
    let mut counted = Vec::new();
    let mut samples = Vec::new();
    while let Some(r) = reporters.join_next().await {
        let (s, c, sm) = r.map_err(|e| e.to_string())??;
        stored += s;
        counted.extend(c);
        samples.extend(sm);
    }
    let wall = started.elapsed();
    let cp_cpu_secs = cpu_secs(&pid) - cpu_before;
    // The last verdicts follow within a few seconds.
    tokio::time::sleep(Duration::from_secs(3)).await;
    watcher.abort();
    let mut seen: HashMap<String, Vec<(i64, Instant)>> = HashMap::new();
    while let Ok((user, spend, at)) = vrx.try_recv() {
        seen.entry(user).or_default().push((spend, at));
    }
    let mut pushed = Vec::with_capacity(samples.len());
    let mut unseen = 0;
    for (user, spend, sent) in samples {
        let first = seen.get(&user).and_then(|v| v.iter().find(|(s, at)| *s >= spend && *at >= sent));
        match first {
            Some((_, at)) => pushed.push(at.duration_since(sent)),
            None => unseen += 1,
        }
    }
    Ok(SpendIngest { users, rate, secs, stored, wall_secs: wall.as_secs_f64(), counted, pushed, unseen, cp_cpu_secs })
}
