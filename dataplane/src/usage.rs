//! One structured usage record per request. Records go to an in-process
//! channel; `report` drains it to the log (target `ccag::usage`) and, with a
//! control plane, through a durable spool to the control plane.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::ratelimit::{Limiter, Limits, Scope, Subject};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UsageRecord {
    pub request_id: String,
    /// A `&'static str` when recorded here; owned when read back (e.g. from the spool).
    pub operation: Cow<'static, str>,
    pub key_id: String,
    pub user_id: String,
    pub team_id: String,
    /// The model name the client sent.
    pub model: String,
    pub bedrock_model: String,
    pub stream: bool,
    pub status: u16,
    pub outcome: Outcome,
    #[serde(flatten, deserialize_with = "deserialize_usage")]
    pub usage: Usage,
    pub ttft_ms: Option<u64>,
    pub duration_ms: u64,
    pub started_at_ms: u64,
    /// Token limits of the key, user and team, so that the record's tokens
    /// are charged to the rate limiter when it is recorded. Not reported.
    #[serde(skip)]
    pub tpm: [u64; 3],
    /// What this data plane priced the request at for its budgets (0 when
    /// unbudgeted); taken off their pending spend once the control plane has
    /// stored the record. Spooled with it, since the report is read back
    /// from the spool (after a restart nothing is pending, and settling
    /// stops at zero).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub budget_cost_micro_usd: i64,
    /// The endpoint that answered (or last refused); empty: the implicit one,
    /// or none was called.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub endpoint_id: String,
    /// Endpoints tried.
    #[serde(default)]
    pub attempts: u32,
    /// The client's W3C trace context, when traces are exported: the
    /// request's span is its child. Not spooled (the span is made before).
    #[serde(skip)]
    pub trace: Option<crate::observe::TraceParent>,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// The gateway refused the request or Bedrock failed it before any content.
    Error,
    /// Bedrock failed after the stream had started.
    StreamError,
    /// The client went away before the response finished.
    ClientClosed,
    /// Refused by a rate limit before it was admitted (the control plane
    /// tells demand that was turned away from admitted traffic by this).
    RateLimited,
    /// Refused because a budget is spent.
    BudgetBlocked,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::StreamError => "stream_error",
            Outcome::ClientClosed => "client_closed",
            Outcome::RateLimited => "rate_limited",
            Outcome::BudgetBlocked => "budget_blocked",
        }
    }
}

/// A response's token counts, as Bedrock reports them; the stream module
/// fills them in as events go by.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    /// Of the cache writes, those with the 1-hour TTL.
    pub cache_creation_1h_input_tokens: u64,
    pub web_search_requests: u64,
}

impl Usage {
    pub fn quantities(&self) -> ccag_proto::pricing::Quantities {
        let mut q = ccag_proto::pricing::Quantities::from_usage(
            self.input_tokens,
            self.output_tokens,
            self.cache_creation_input_tokens,
            self.cache_creation_1h_input_tokens,
            self.cache_read_input_tokens,
        );
        q.web_searches = self.web_search_requests;
        q
    }
}

/// `Usage` is serialise-only; this reads back the same fields (records
/// spooled by an older build lack the newer ones).
fn deserialize_usage<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Usage, D::Error> {
    #[derive(Deserialize)]
    struct Fields {
        input_tokens: u64,
        output_tokens: u64,
        cache_creation_input_tokens: u64,
        cache_read_input_tokens: u64,
        #[serde(default)]
        cache_creation_1h_input_tokens: u64,
        #[serde(default)]
        web_search_requests: u64,
    }
    let f = Fields::deserialize(d)?;
    Ok(Usage {
        input_tokens: f.input_tokens,
        output_tokens: f.output_tokens,
        cache_creation_input_tokens: f.cache_creation_input_tokens,
        cache_read_input_tokens: f.cache_read_input_tokens,
        cache_creation_1h_input_tokens: f.cache_creation_1h_input_tokens,
        web_search_requests: f.web_search_requests,
    })
}

/// The status recorded for a request whose client went away before any
/// response was sent (nginx's "client closed request").
pub const STATUS_CLIENT_CLOSED: u16 = 499;

/// Where a request's identity and timing accumulate until it finishes.
///
/// A meter armed with [`Meter::record_on_drop`] that is dropped without
/// [`Meter::finish`] (hyper drops a request's future when its client
/// disconnects before the response) still leaves a record: status 499,
/// outcome `client_closed`.
pub struct Meter {
    pub record: UsageRecord,
    started: Instant,
    on_drop: Option<Arc<UsageSink>>,
}

impl Meter {
    pub fn start(request_id: &str, operation: &'static str) -> Self {
        Meter { record: UsageRecord::new(request_id, operation), started: Instant::now(), on_drop: None }
    }

    /// Records the request into `sink` if the meter is dropped unfinished.
    pub fn record_on_drop(&mut self, sink: Arc<UsageSink>) {
        self.on_drop = Some(sink);
    }

    pub fn mark_first_token(&mut self) {
        if self.record.ttft_ms.is_none() {
            self.record.ttft_ms = Some(self.started.elapsed().as_millis() as u64);
        }
    }

    pub fn finish(mut self, status: u16, outcome: Outcome, usage: Usage) -> UsageRecord {
        self.on_drop = None;
        self.close(status, outcome, usage)
    }

    fn close(&mut self, status: u16, outcome: Outcome, usage: Usage) -> UsageRecord {
        let mut record = std::mem::replace(&mut self.record, UsageRecord::new("", ""));
        record.status = status;
        record.outcome = outcome;
        record.usage = usage;
        record.duration_ms = self.started.elapsed().as_millis() as u64;
        record
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        if let Some(sink) = self.on_drop.take() {
            let record = self.close(STATUS_CLIENT_CLOSED, Outcome::ClientClosed, Usage::default());
            sink.record(record);
        }
    }
}

impl UsageRecord {
    fn new(request_id: &str, operation: &'static str) -> Self {
        let started_at_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        UsageRecord {
            request_id: request_id.to_owned(),
            operation: Cow::Borrowed(operation),
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
            tpm: [0; 3],
            budget_cost_micro_usd: 0,
            endpoint_id: String::new(),
            attempts: 0,
            trace: None,
        }
    }
}

pub struct UsageSink {
    tx: mpsc::Sender<UsageRecord>,
    /// Records lost; the metrics' `ccag_usage_records_dropped_total` once
    /// given with [`UsageSink::with_dropped_counter`].
    dropped: prometheus::IntCounter,
    limiter: Arc<Limiter>,
    budgets: Arc<crate::budget::Budgets>,
}

/// Bounded so that a stalled consumer costs memory only up to this many records.
const CAPACITY: usize = 65_536;

impl UsageSink {
    pub fn new(limiter: Arc<Limiter>, budgets: Arc<crate::budget::Budgets>) -> (Self, mpsc::Receiver<UsageRecord>) {
        let (tx, rx) = mpsc::channel(CAPACITY);
        let dropped = prometheus::IntCounter::new("usage_records_dropped", "Usage records lost.")
            .expect("counter options are valid");
        (UsageSink { tx, dropped, limiter, budgets }, rx)
    }

    /// Counts lost records in `counter` (a registered metric).
    pub fn with_dropped_counter(mut self, counter: prometheus::IntCounter) -> Self {
        self.dropped = counter;
        self
    }

    /// Charges the record's tokens to the rate limiter and its cost to the
    /// budgets, then queues it.
    pub fn record(&self, mut r: UsageRecord) {
        r.budget_cost_micro_usd =
            self.budgets.charge(&r.user_id, &r.team_id, &r.bedrock_model, &r.model, &r.usage.quantities());
        let tokens = r.usage.input_tokens + r.usage.output_tokens;
        if tokens > 0 && r.tpm != [0; 3] {
            let scopes = [(Scope::Key, &r.key_id), (Scope::User, &r.user_id), (Scope::Team, &r.team_id)];
            let subjects = scopes.map(|(scope, id)| Subject {
                scope,
                id: id.as_str(),
                limits: Limits { rpm: 0, tpm: r.tpm[scope as usize] },
            });
            self.limiter.charge(&subjects, tokens, std::time::Instant::now());
        }
        if self.tx.try_send(r).is_err() {
            self.dropped.inc();
            let n = self.dropped.get();
            tracing::error!(dropped_total = n, "usage channel full; a usage record was dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink() -> (Arc<UsageSink>, mpsc::Receiver<UsageRecord>) {
        let (sink, rx) = UsageSink::new(Arc::new(Limiter::new()), Default::default());
        (Arc::new(sink), rx)
    }

    #[test]
    fn an_armed_meter_dropped_unfinished_records_a_client_closed_request() {
        let (sink, mut rx) = sink();
        let mut m = Meter::start("req_1", "messages");
        m.record.key_id = "k1".into();
        m.record_on_drop(sink.clone());
        drop(m);
        let r = rx.try_recv().expect("a record");
        assert_eq!((r.request_id.as_str(), r.key_id.as_str()), ("req_1", "k1"));
        assert_eq!((r.status, r.outcome), (STATUS_CLIENT_CLOSED, Outcome::ClientClosed));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_finished_meter_records_nothing_more_when_dropped() {
        let (sink, mut rx) = sink();
        let mut m = Meter::start("req_2", "messages");
        m.record_on_drop(sink.clone());
        let r = m.finish(200, Outcome::Ok, Usage::default());
        assert_eq!((r.request_id.as_str(), r.status, r.outcome), ("req_2", 200, Outcome::Ok));
        assert!(rx.try_recv().is_err());
        // Unarmed meters never record on their own.
        drop(Meter::start("req_3", "messages"));
        assert!(rx.try_recv().is_err());
    }
}
