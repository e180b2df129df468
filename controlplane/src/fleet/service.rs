//! DataPlaneService: the watch stream (snapshots out, ACK/NACK in) and usage
//! reports.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ccag_proto::config::v1::data_plane_service_server::DataPlaneService;
use ccag_proto::config::v1::{watch_request, ReportUsageRequest, ReportUsageResponse, WatchRequest, WatchResponse};
use futures_util::Stream;
use sea_orm::DatabaseConnection;
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, watch};
use tonic::{Request, Response, Status, Streaming};

use super::Publisher;

/// A data plane must say Hello this soon after opening the stream.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many records in one report.
pub const MAX_BATCH: usize = 5000;

pub struct DataPlaneApi {
    pub db: DatabaseConnection,
    pub publisher: Arc<Publisher>,
    pub token: String,
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
        let publisher = self.publisher.clone();
        let connection = publisher.register(&id, &hello.address);
        tracing::info!(dataplane = %id, held_version = hello.version, "data plane connected");
        let (tx, rx) = mpsc::channel::<Result<WatchResponse, Status>>(4);
        let mut stop = self.stop.clone();
        tokio::spawn(async move {
            let (mut snaps, mut count) = publisher.subscribe();
            let mut send_current = true;
            loop {
                if send_current {
                    send_current = false;
                    let mut snapshot = (*snaps.borrow_and_update().clone()).clone();
                    snapshot.dataplane_count = (*count.borrow_and_update()).max(1);
                    if tx.send(Ok(WatchResponse { snapshot: Some(snapshot) })).await.is_err() {
                        break;
                    }
                }
                tokio::select! {
                    msg = inbound.message() => match msg {
                        Ok(Some(WatchRequest { msg: Some(watch_request::Msg::Ack(a)) })) => publisher.record_ack(&id, a.version),
                        Ok(Some(WatchRequest { msg: Some(watch_request::Msg::Nack(n)) })) => {
                            tracing::warn!(dataplane = %id, version = n.version, error = %n.error, "data plane refused a snapshot");
                            publisher.record_nack(&id, n.version, n.error);
                        }
                        Ok(Some(_)) => {}
                        Ok(None) | Err(_) => break,
                    },
                    r = snaps.changed() => { if r.is_err() { break; } send_current = true; }
                    r = count.changed() => { if r.is_err() { break; } send_current = true; }
                    _ = tx.closed() => break,
                    _ = stop.wait_for(|stopping| *stopping) => break,
                }
            }
            publisher.unregister(&id, connection);
            tracing::info!(dataplane = %id, "data plane disconnected");
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
        let total = r.records.len() as u32;
        let accepted = super::usage::store(&self.db, &r.dataplane_id, r.records).await.map_err(|e| {
            tracing::error!(error = %e, "storing usage failed");
            Status::unavailable("could not store usage; retry")
        })?;
        Ok(Response::new(ReportUsageResponse { accepted, duplicates: total - accepted }))
    }
}
