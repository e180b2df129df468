//! DataPlaneService: the watch stream (resources out, ACK/NACK in) and
//! usage reports.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ccag_proto::config::v1::data_plane_service_server::DataPlaneService;
use ccag_proto::config::v1::{
    resource::Kind, watch_request, LimitShares, ReportUsageRequest, ReportUsageResponse, Resource, WatchRequest,
    WatchResponse,
};
use futures_util::Stream;
use sea_orm::DatabaseConnection;
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, watch};
use tonic::{Request, Response, Status, Streaming};

use super::registry::Registry;
use super::revision::Committed;
use super::shares::SharesTable;
use super::Publisher;
use crate::budget::VerdictTable;

/// A data plane must say Hello this soon after opening the stream.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many records in one report.
pub const MAX_BATCH: usize = 5000;
/// Responses remembered for matching ACKs; older nonces are stale.
const PENDING: usize = 32;

pub struct DataPlaneApi {
    pub db: DatabaseConnection,
    pub publisher: Arc<Publisher>,
    pub registry: Arc<Registry>,
    pub shares: watch::Receiver<Arc<SharesTable>>,
    pub budgets: watch::Receiver<Arc<VerdictTable>>,
    /// Wakes the verdict computation after usage moved the spend.
    pub spend_moved: Arc<tokio::sync::Notify>,
    pub token: String,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Becomes true at shutdown. Watch streams never end on their own, and
    /// the gRPC server's graceful shutdown waits for every open stream, so
    /// each one ends here instead.
    pub stop: watch::Receiver<bool>,
}

impl DataPlaneApi {
    fn check<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let presented = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if bool::from(presented.as_bytes().ct_eq(self.token.as_bytes())) && !self.token.is_empty() {
            Ok(())
        } else {
            Err(Status::unauthenticated("invalid data-plane token"))
        }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

/// One data plane's stream: what it holds, and the responses awaiting its
/// answer.
struct Session {
    id: String,
    connection: String,
    publisher: Arc<Publisher>,
    registry: Arc<Registry>,
    metrics: Arc<crate::metrics::Metrics>,
    /// When the stream opened: only revisions published after it are
    /// pushes to time.
    opened: Instant,
    /// The last revision whose push was timed.
    timed: u64,
    /// What the data plane holds once it has applied everything sent.
    epoch: String,
    revision: u64,
    shares_sent: Option<LimitShares>,
    /// The verdict table's seq up to which this data plane has been sent
    /// every verdict.
    budgets_sent: u64,
    next_nonce: u64,
    /// (nonce, epoch, revision, full) of responses not yet answered.
    pending: VecDeque<(String, String, u64, bool)>,
}

impl Session {
    /// `revision` of `epoch` was acknowledged: times its push, once, when
    /// it was published while this stream was open.
    fn time_push(&mut self, epoch: &str, revision: u64) {
        if revision == self.timed || epoch != self.publisher.committed().epoch {
            return;
        }
        if let Some(at) = self.publisher.published_at(revision).filter(|at| *at >= self.opened) {
            self.timed = revision;
            self.metrics.config_pushed(at.elapsed());
        }
    }

    /// A response taking the data plane from `base` to what `self` says it
    /// holds now.
    fn response(
        &mut self,
        base: u64,
        full: bool,
        resources: Vec<Resource>,
        removed: Vec<ccag_proto::config::v1::ResourceRef>,
    ) -> WatchResponse {
        self.next_nonce += 1;
        let nonce = self.next_nonce.to_string();
        if self.pending.len() == PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back((nonce.clone(), self.epoch.clone(), self.revision, full));
        WatchResponse {
            nonce,
            epoch: self.epoch.clone(),
            revision: self.revision,
            full_state: full,
            resources,
            removed,
            base_revision: base,
        }
    }

    /// The full state, with this data plane's shares and every verdict.
    fn full(&mut self, shares: &SharesTable, budgets: &VerdictTable) -> WatchResponse {
        let (epoch, revision, mut resources) = self
            .publisher
            .read(|s| (s.epoch.clone(), s.revision, s.full().iter().map(|r| (**r).clone()).collect::<Vec<_>>()));
        let mine = shares.for_dataplane(&self.id);
        resources.push(Resource { version: 0, kind: Some(Kind::Shares(mine.clone())) });
        resources.extend(budgets.all());
        self.shares_sent = Some(mine);
        self.budgets_sent = budgets.seq;
        self.epoch = epoch;
        self.revision = revision;
        self.response(0, true, resources, Vec::new())
    }

    /// What the data plane lacks of the state now: `None` when it is current.
    fn catch_up(&mut self, shares: &SharesTable, budgets: &VerdictTable) -> Option<WatchResponse> {
        let next = self.publisher.read(|s| {
            if s.epoch != self.epoch {
                return Err(());
            }
            if s.revision <= self.revision {
                return Ok(None);
            }
            s.delta_since(self.revision).map(|d| Some((s.revision, d))).ok_or(())
        });
        match next {
            Err(()) => Some(self.full(shares, budgets)),
            Ok(None) => None,
            Ok(Some((revision, d))) => {
                let base = std::mem::replace(&mut self.revision, revision);
                let resources = d.resources.iter().map(|r| (**r).clone()).collect();
                Some(self.response(base, false, resources, d.removed))
            }
        }
    }

    /// This data plane's shares, when they differ from what it was sent.
    fn shares(&mut self, shares: &SharesTable) -> Option<WatchResponse> {
        let mine = shares.for_dataplane(&self.id);
        if self.shares_sent.as_ref() == Some(&mine) {
            return None;
        }
        self.shares_sent = Some(mine.clone());
        let base = self.revision;
        Some(self.response(base, false, vec![Resource { version: 0, kind: Some(Kind::Shares(mine)) }], Vec::new()))
    }

    /// The verdicts that moved since this data plane was last sent any.
    fn budgets(&mut self, budgets: &VerdictTable) -> Option<WatchResponse> {
        if budgets.seq == self.budgets_sent {
            return None;
        }
        let (resources, removed) = budgets.since(self.budgets_sent);
        // A table computed afresh (another replica's numbering, a restart)
        // starts again from 1: then everything is sent.
        let (resources, removed) =
            if budgets.seq < self.budgets_sent { (budgets.all(), Vec::new()) } else { (resources, removed) };
        self.budgets_sent = budgets.seq;
        if resources.is_empty() && removed.is_empty() {
            return None;
        }
        let base = self.revision;
        Some(self.response(base, false, resources, removed))
    }
}

#[tonic::async_trait]
impl DataPlaneService for DataPlaneApi {
    type WatchStream = WatchStream;

    async fn watch(&self, req: Request<Streaming<WatchRequest>>) -> Result<Response<WatchStream>, Status> {
        self.check(&req)?;
        let mut inbound = req.into_inner();
        let hello = match tokio::time::timeout(HELLO_TIMEOUT, inbound.message()).await {
            Ok(Ok(Some(WatchRequest { msg: Some(watch_request::Msg::Hello(h)) }))) => h,
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(Status::deadline_exceeded("no Hello within 10 s")),
            Ok(_) => return Err(Status::invalid_argument("the first message must be Hello")),
        };
        let id = hello.dataplane_id.trim().to_owned();
        if id.is_empty() || id.len() > 200 {
            return Err(Status::invalid_argument("dataplane_id: 1 to 200 characters"));
        }
        let unavailable = |e: sea_orm::DbErr| {
            tracing::warn!(error = %e, "cannot answer a data plane: the database is unavailable");
            Status::unavailable("the control plane cannot read its database; try another replica")
        };
        // Never hand a joining data plane a revision older than the committed one.
        let mut now: Committed = self.publisher.sync().await.map_err(unavailable)?;
        if hello.epoch == now.epoch && hello.revision > now.revision {
            now = self.publisher.history_went_back(hello.revision).await.map_err(unavailable)?;
        }
        let connection = self.registry.connect(&id, &hello.address).await.map_err(unavailable)?;
        // What this data plane is sent first is no push of a change.
        let opened = Instant::now();
        tracing::info!(dataplane = %id, held_epoch = %hello.epoch, held_revision = hello.revision, epoch = %now.epoch, revision = now.revision, "data plane connected");

        let (tx, rx) = mpsc::channel::<Result<WatchResponse, Status>>(4);
        let mut stop = self.stop.clone();
        let mut revisions = self.publisher.subscribe();
        let mut shares = self.shares.clone();
        let mut budgets = self.budgets.clone();
        let mut s = Session {
            id,
            connection,
            publisher: self.publisher.clone(),
            registry: self.registry.clone(),
            metrics: self.metrics.clone(),
            opened,
            timed: 0,
            epoch: hello.epoch.clone(),
            revision: hello.revision,
            shares_sent: None,
            budgets_sent: 0,
            next_nonce: 0,
            pending: VecDeque::new(),
        };
        tokio::spawn(async move {
            let table = shares.borrow_and_update().clone();
            let verdicts = budgets.borrow_and_update().clone();
            let first = if hello.epoch.is_empty() || hello.epoch != now.epoch {
                Some(s.full(&table, &verdicts))
            } else {
                // A data plane that is current is sent nothing, but for
                // its shares when they are not the default.
                let caught_up = s.catch_up(&table, &verdicts);
                let mine = table.for_dataplane(&s.id);
                if caught_up.is_none() && mine.dataplane_count <= 1 && mine.shares.is_empty() {
                    s.shares_sent = Some(mine);
                }
                caught_up
            };
            revisions.borrow_and_update();
            let mut out: Vec<WatchResponse> = first.into_iter().collect();
            loop {
                for r in out.drain(..) {
                    if tx.send(Ok(r)).await.is_err() {
                        s.registry.disconnect(&s.id, &s.connection).await;
                        return;
                    }
                }
                if let Some(r) = s.shares(&shares.borrow()) {
                    out.push(r);
                    continue;
                }
                let verdicts = budgets.borrow_and_update().clone();
                if let Some(r) = s.budgets(&verdicts) {
                    out.push(r);
                    continue;
                }
                tokio::select! {
                    msg = inbound.message() => match msg {
                        Ok(Some(WatchRequest { msg: Some(watch_request::Msg::Ack(a)) })) => {
                            match s.pending.iter().position(|p| p.0 == a.nonce) {
                                Some(i) => {
                                    let (_, epoch, revision, _) = s.pending[i].clone();
                                    s.pending.drain(..=i);
                                    s.registry.ack(&s.id, &s.connection, &epoch, revision);
                                    s.time_push(&epoch, revision);
                                }
                                None => tracing::debug!(dataplane = %s.id, nonce = %a.nonce, "ACK of an unknown or stale nonce ignored"),
                            }
                        }
                        Ok(Some(WatchRequest { msg: Some(watch_request::Msg::Nack(n)) })) => {
                            let Some(i) = s.pending.iter().position(|p| p.0 == n.nonce) else {
                                tracing::debug!(dataplane = %s.id, nonce = %n.nonce, "NACK of an unknown or stale nonce ignored");
                                continue;
                            };
                            let (_, epoch, revision, full) = s.pending[i].clone();
                            s.pending.drain(..=i);
                            tracing::warn!(dataplane = %s.id, revision, error = %n.error, "data plane refused a configuration response; it keeps its previous state");
                            s.registry.nack(&s.id, &s.connection, &epoch, revision, &n.error);
                            s.metrics.config_refused();
                            // It holds what it held before: resend everything,
                            // unless the full state itself was refused (then
                            // wait for the next change rather than loop) or
                            // one is already on its way.
                            if !full && !s.pending.iter().any(|p| p.3) {
                                let table = shares.borrow().clone();
                                let verdicts = budgets.borrow().clone();
                                out.push(s.full(&table, &verdicts));
                            }
                        }
                        Ok(Some(_)) => {}
                        Ok(None) | Err(_) => break,
                    },
                    r = revisions.changed() => {
                        if r.is_err() { break; }
                        revisions.borrow_and_update();
                        let table = shares.borrow().clone();
                        let verdicts = budgets.borrow().clone();
                        out.extend(s.catch_up(&table, &verdicts));
                    }
                    r = shares.changed() => { if r.is_err() { break; } }
                    r = budgets.changed() => { if r.is_err() { break; } }
                    _ = tx.closed() => break,
                    _ = stop.wait_for(|stopping| *stopping) => break,
                }
            }
            s.registry.disconnect(&s.id, &s.connection).await;
            tracing::info!(dataplane = %s.id, "data plane disconnected");
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn report_usage(&self, req: Request<ReportUsageRequest>) -> Result<Response<ReportUsageResponse>, Status> {
        self.check(&req)?;
        let r = req.into_inner();
        if r.records.len() > MAX_BATCH {
            return Err(Status::invalid_argument(format!("at most {MAX_BATCH} records per report")));
        }
        if r.endpoints.len() > super::health::MAX_REPORTS {
            return Err(Status::invalid_argument(format!(
                "at most {} endpoint reports per report",
                super::health::MAX_REPORTS
            )));
        }
        let total = r.records.len() as u32;
        let now_ms = chrono::Utc::now().timestamp_millis();
        let lags: Vec<Duration> =
            r.records.iter().map(|u| crate::metrics::ingest_lag(now_ms, u.started_at_ms, u.duration_ms)).collect();
        let book = self.budgets.borrow().book.clone();
        let stored =
            super::usage::store(&self.db, &book, &r.dataplane_id, r.records, &r.endpoints).await.map_err(|e| {
                tracing::error!(error = %e, "storing usage failed");
                Status::unavailable("could not store usage; retry")
            })?;
        if !stored.spend.is_empty() {
            self.spend_moved.notify_one();
        }
        self.metrics.usage_ingested(u64::from(stored.accepted), u64::from(total - stored.accepted), lags);
        Ok(Response::new(ReportUsageResponse {
            accepted: stored.accepted,
            duplicates: total - stored.accepted,
            spend: stored.spend,
        }))
    }
}
