//! One structured usage record per request. Records go to an in-process
//! channel; its consumer today writes them to the log (target `ccag::usage`),
//! and the control-plane reporter will drain the same channel.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::mpsc;

use crate::stream::Usage;

#[derive(Debug, Clone, Serialize)]
pub struct UsageRecord {
    pub request_id: String,
    pub operation: &'static str,
    pub key_id: String,
    pub user_id: String,
    pub team_id: String,
    /// The model name the client sent.
    pub model: String,
    pub bedrock_model: String,
    pub stream: bool,
    pub status: u16,
    pub outcome: Outcome,
    #[serde(flatten)]
    pub usage: Usage,
    pub ttft_ms: Option<u64>,
    pub duration_ms: u64,
    pub started_at_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// The gateway refused the request or Bedrock failed it before any content.
    Error,
    /// Bedrock failed after the stream had started.
    StreamError,
    /// The client went away before the response finished.
    ClientClosed,
}

/// Where a request's identity and timing accumulate until it finishes.
pub struct Meter {
    pub record: UsageRecord,
    started: Instant,
}

impl Meter {
    pub fn start(request_id: &str, operation: &'static str) -> Self {
        let started_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Meter {
            record: UsageRecord {
                request_id: request_id.to_owned(),
                operation,
                key_id: String::new(),
                user_id: String::new(),
                team_id: String::new(),
                model: String::new(),
                bedrock_model: String::new(),
                stream: false,
                status: 0,
                outcome: Outcome::Error,
                usage: Usage::default(),
                ttft_ms: None,
                duration_ms: 0,
                started_at_ms,
            },
            started: Instant::now(),
        }
    }

    pub fn mark_first_token(&mut self) {
        if self.record.ttft_ms.is_none() {
            self.record.ttft_ms = Some(self.started.elapsed().as_millis() as u64);
        }
    }

    pub fn finish(mut self, status: u16, outcome: Outcome, usage: Usage) -> UsageRecord {
        self.record.status = status;
        self.record.outcome = outcome;
        self.record.usage = usage;
        self.record.duration_ms = self.started.elapsed().as_millis() as u64;
        self.record
    }
}

pub struct UsageSink {
    tx: mpsc::Sender<UsageRecord>,
    dropped: AtomicU64,
}

/// Bounded so that a stalled consumer costs memory only up to this many records.
const CAPACITY: usize = 65_536;

impl UsageSink {
    pub fn new() -> (Self, mpsc::Receiver<UsageRecord>) {
        let (tx, rx) = mpsc::channel(CAPACITY);
        (
            UsageSink {
                tx,
                dropped: AtomicU64::new(0),
            },
            rx,
        )
    }

    pub fn record(&self, r: UsageRecord) {
        if self.tx.try_send(r).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::error!(
                dropped_total = n,
                "usage channel full; a usage record was dropped"
            );
        }
    }
}

/// Today's consumer: one log line per record.
pub fn spawn_log_writer(mut rx: mpsc::Receiver<UsageRecord>) {
    tokio::spawn(async move {
        while let Some(r) = rx.recv().await {
            match serde_json::to_string(&r) {
                Ok(json) => tracing::info!(target: "ccag::usage", usage = %json, "usage"),
                Err(e) => tracing::error!(error = %e, "usage record did not serialise"),
            }
        }
    });
}
