//! Drives one Bedrock event stream into the client's response body. Nothing
//! is buffered: each frame becomes one SSE event written at once; `ping`s fill
//! silent gaps; idle and total-duration limits end a stuck stream with an
//! SSE `error`. Dropping the body (the client left) drops the Bedrock
//! receiver, which closes the upstream connection and cancels the call.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use tokio::time::{sleep_until, Instant};

use super::EventTranslator;
use crate::config::Limits;
use crate::http::body::ResBody;
use crate::http::error::ApiError;
use crate::upstream::EventStream;
use crate::usage::{Meter, Outcome, UsageSink};

pub const PING: &[u8] = b"event: ping\ndata: {\"type\":\"ping\"}\n\n";

pub struct StreamRun {
    pub rx: EventStream,
    /// The event read before the status was sent.
    pub first: Option<Bytes>,
    pub translator: EventTranslator,
    pub limits: Limits,
    pub request_id: String,
    pub meter: Option<Meter>,
    pub sink: Arc<UsageSink>,
}

struct Pump {
    run: StreamRun,
    started: Instant,
    last_upstream: Instant,
    last_write: Instant,
    outcome: Option<Outcome>,
}

pub fn sse_body(run: StreamRun) -> ResBody {
    let now = Instant::now();
    let pump = Pump { run, started: now, last_upstream: now, last_write: now, outcome: None };
    let s = futures_util::stream::unfold(pump, |mut p| async move {
        let b = p.next().await?;
        Some((Ok::<_, Infallible>(Frame::data(b)), p))
    });
    StreamBody::new(s).boxed()
}

impl Pump {
    async fn next(&mut self) -> Option<Bytes> {
        if self.outcome.is_some() {
            return None;
        }
        if let Some(first) = self.run.first.take() {
            return Some(self.on_frame(first));
        }
        let idle_at = self.last_upstream + self.run.limits.stream_idle_timeout;
        let end_at = self.started + self.run.limits.max_stream_duration;
        let ping_at = self.last_write + self.run.limits.ping_interval;
        tokio::select! {
            biased;
            r = self.run.rx.recv() => {
                self.last_upstream = Instant::now();
                self.last_write = self.last_upstream;
                match r {
                    Ok(Some(frame)) => Some(self.on_frame(frame)),
                    Ok(None) if self.run.translator.saw_stop => {
                        self.outcome = Some(Outcome::Ok);
                        None
                    }
                    Ok(None) => Some(self.fail(ApiError::Overloaded("Bedrock ended the stream before it was complete".into()))),
                    Err(e) => {
                        tracing::warn!(error = %e, "Bedrock stream failed after it had started");
                        Some(self.fail(e.to_api(true)))
                    }
                }
            }
            _ = sleep_until(ping_at) => {
                self.last_write = Instant::now();
                Some(Bytes::from_static(PING))
            }
            _ = sleep_until(idle_at.min(end_at)) => {
                let why = if idle_at <= end_at {
                    format!("Bedrock sent nothing for {}", secs(self.run.limits.stream_idle_timeout))
                } else {
                    format!("the stream exceeded the gateway's limit of {}", secs(self.run.limits.max_stream_duration))
                };
                Some(self.fail(ApiError::Timeout(why)))
            }
        }
    }

    fn on_frame(&mut self, event: Bytes) -> Bytes {
        if let Some(m) = self.run.meter.as_mut() {
            m.mark_first_token();
        }
        match self.run.translator.event(&event) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "untranslatable Bedrock event");
                self.fail(ApiError::BadGateway("the gateway received an unexpected event from Bedrock".into()))
            }
        }
    }

    fn fail(&mut self, e: ApiError) -> Bytes {
        self.outcome = Some(Outcome::StreamError);
        e.sse_event(&self.run.request_id)
    }
}

impl Drop for Pump {
    /// Runs however the stream ends — completed, failed, or dropped by a
    /// client that disconnected — so every request leaves its usage record.
    fn drop(&mut self) {
        if let Some(meter) = self.run.meter.take() {
            let outcome = self.outcome.unwrap_or(Outcome::ClientClosed);
            let record = meter.finish(200, outcome, self.run.translator.usage_to_charge());
            self.run.sink.record(record);
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs_f32())
}
