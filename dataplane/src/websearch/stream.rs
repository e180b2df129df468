//! Web search, streamed as it happens: the first model call's events go
//! out as Bedrock sends them (its `tool_use` of the search tool shown as a
//! `server_tool_use`), each search's result block when the search returns,
//! with `ping`s while it runs, then the next call's events, block indices
//! continuing; one `message_delta` with every call's usage and one
//! `message_stop` at the end. A task drives the calls and writes into a
//! small channel: when the client leaves, the next write fails and the
//! task drops the Bedrock stream it is reading.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::Response;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use super::blocks::{add_usage, usage_json, Outcome};
use super::respond::{charged, Failure};
use super::{server_tool_id, Runner};
use crate::api::AppState;
use crate::config::Limits;
use crate::http::body::ResBody;
use crate::http::error::ApiError;
use crate::stream::PING;
use crate::translate::MessagesRequest;
use crate::upstream::{Endpoint, EventStream, Principal};
use crate::usage::{Meter, Outcome as Finish, Usage};

/// Events queued for a slow client before the driver waits for it.
const QUEUE: usize = 16;

/// Makes the first model call and holds the response status until its
/// first event, so that a refusal before any content is a real HTTP error
/// (and the beta retry can run). Takes the request and the runner only
/// once the stream has started.
/// Where the first call goes.
pub struct Start<'a> {
    pub client: &'a Arc<Endpoint>,
    pub who: Principal<'a>,
    pub bedrock_id: &'a str,
    pub betas: &'a [String],
    /// For the first call's first byte; later rounds wait the whole
    /// first-byte timeout.
    pub first_byte: std::time::Duration,
}

pub async fn start(
    state: &Arc<AppState>,
    request: &mut MessagesRequest,
    to: Start<'_>,
    runner: &mut Option<Runner>,
    limits: &Limits,
    rid: &str,
    meter: Meter,
) -> Result<Response<ResBody>, Failure> {
    let body = request.bedrock_body(to.betas);
    let (rx, first) = match to.client.open_stream(to.bedrock_id, body, to.first_byte, to.who).await {
        Ok(x) => x,
        Err(e) => return Err((e, meter, Usage::default())),
    };
    let driver = Driver {
        state: state.clone(),
        client: to.client.clone(),
        user_id: to.who.user_id.to_owned(),
        email: to.who.email.to_owned(),
        model: request.model.clone(),
        body: std::mem::take(&mut request.body),
        bedrock_id: to.bedrock_id.to_owned(),
        runner: runner.take().expect("a search request has its runner"),
        limits: *limits,
        rid: rid.to_owned(),
        meter: Some(meter),
        total: Usage::default(),
        next_index: 0,
        outcome: Finish::ClientClosed,
        started: Instant::now(),
    };
    let (tx, events) = mpsc::channel::<Bytes>(QUEUE);
    tokio::spawn(driver.run(tx, rx, first));
    let s = futures_util::stream::unfold(events, |mut events| async move {
        let b = events.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(b)), events))
    });
    Ok(crate::stream::sse_response(StreamBody::new(s).boxed()))
}

/// The client is gone.
struct Gone;

struct Driver {
    state: Arc<AppState>,
    /// Every round runs on the endpoint the first one started on.
    client: Arc<Endpoint>,
    user_id: String,
    email: String,
    model: String,
    body: Map<String, Value>,
    bedrock_id: String,
    runner: Runner,
    limits: Limits,
    rid: String,
    meter: Option<Meter>,
    total: Usage,
    /// The client's index of the next block.
    next_index: u64,
    outcome: Finish,
    started: Instant,
}

/// What one model call said.
#[derive(Default)]
struct Round {
    /// Its content blocks as Bedrock wrote them, for the next call.
    blocks: Vec<Value>,
    /// Partial JSON of each block's input (tool_use).
    inputs: Vec<String>,
    /// Bedrock index → the `srvtoolu_` id the client saw.
    searches: Vec<(usize, String)>,
    client_tool: bool,
    stop_reason: Value,
    stop_sequence: Value,
    usage: Usage,
}

impl Round {
    fn slot(&mut self, i: usize) {
        if self.blocks.len() <= i {
            self.blocks.resize(i + 1, Value::Null);
            self.inputs.resize(i + 1, String::new());
        }
    }

    /// Folds a delta into its block, so the block can be sent back whole.
    fn delta(&mut self, i: usize, d: &Value) {
        self.slot(i);
        let append = |b: &mut Value, field: &str, piece: Option<&str>| {
            if let (Some(obj), Some(piece)) = (b.as_object_mut(), piece) {
                let cur = obj.entry(field).or_insert_with(|| Value::String(String::new()));
                if let Value::String(s) = cur {
                    s.push_str(piece);
                }
            }
        };
        let block = &mut self.blocks[i];
        match d.get("type").and_then(Value::as_str) {
            Some("text_delta") => append(block, "text", d.get("text").and_then(Value::as_str)),
            Some("thinking_delta") => append(block, "thinking", d.get("thinking").and_then(Value::as_str)),
            Some("signature_delta") => {
                if let (Some(obj), Some(sig)) = (block.as_object_mut(), d.get("signature")) {
                    obj.insert("signature".into(), sig.clone());
                }
            }
            Some("input_json_delta") => {
                if let Some(p) = d.get("partial_json").and_then(Value::as_str) {
                    self.inputs[i].push_str(p);
                }
            }
            Some("citations_delta") => {
                if let (Some(obj), Some(c)) = (block.as_object_mut(), d.get("citation")) {
                    if let Value::Array(list) = obj.entry("citations").or_insert_with(|| json!([])) {
                        list.push(c.clone());
                    }
                }
            }
            _ => {}
        }
    }

    /// The blocks by Bedrock index, tool inputs filled in from their deltas.
    fn finish(&mut self) -> Vec<Value> {
        let mut out = std::mem::take(&mut self.blocks);
        for (b, input) in out.iter_mut().zip(&self.inputs) {
            if b.get("type").and_then(Value::as_str) == Some("tool_use") && !input.is_empty() {
                b["input"] = serde_json::from_str(input).unwrap_or_else(|_| json!({}));
            }
        }
        out
    }
}

fn sse(kind: &str, v: &Value) -> Bytes {
    crate::stream::sse(kind, &serde_json::to_vec(v).expect("a JSON value serialises"))
}

impl Driver {
    async fn run(mut self, tx: mpsc::Sender<Bytes>, mut rx: EventStream, first: Bytes) {
        let mut first = Some(first);
        let rounds = self.runner.rounds();
        for round in 0..rounds {
            let mut r = match self.relay(&tx, &mut rx, first.take(), round == 0).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => return self.fail(&tx, e).await,
                Err(Gone) => return,
            };
            drop(rx);
            add_usage(&mut self.total, &r.usage);
            let blocks = r.finish();
            let mut results = Vec::new();
            for (i, srv) in std::mem::take(&mut r.searches) {
                let input = blocks[i].get("input").cloned().unwrap_or_else(|| json!({}));
                let outcome = match self.search(&tx, &input).await {
                    Ok(o) => o,
                    Err(Gone) => return,
                };
                let block = outcome.client_block(&srv, &self.runner.plan.key);
                let index = self.next_index;
                self.next_index += 1;
                let start = json!({"type": "content_block_start", "index": index, "content_block": block});
                let stop = json!({"type": "content_block_stop", "index": index});
                if self.send(&tx, sse("content_block_start", &start)).await.is_err()
                    || self.send(&tx, sse("content_block_stop", &stop)).await.is_err()
                {
                    return;
                }
                let bedrock_tool_id = blocks[i].get("id").and_then(Value::as_str).unwrap_or_default();
                results.push(outcome.bedrock_block(bedrock_tool_id));
            }
            let said: Vec<Value> = blocks.into_iter().filter(|b| !b.is_null()).collect();
            let more = !results.is_empty() && !r.client_tool && r.stop_reason == "tool_use";
            if !more {
                return self.finish(&tx, r.stop_reason, r.stop_sequence).await;
            }
            if round + 1 == rounds {
                return self.finish(&tx, json!("pause_turn"), Value::Null).await;
            }
            // The body keeps the version and betas of the first call.
            self.runner.next_round(&mut self.body, said, results);
            let body = serde_json::to_vec(&self.body).expect("a JSON map serialises");
            let opened = tokio::select! {
                o = self.client.open_stream(&self.bedrock_id, body, self.limits.first_byte_timeout, Principal { user_id: &self.user_id, email: &self.email }) => o,
                _ = tx.closed() => return,
            };
            match opened {
                Ok((next, f)) => {
                    rx = next;
                    first = Some(f);
                }
                Err(e) => return self.fail(&tx, e.to_api(true)).await,
            }
        }
    }

    /// Relays one model call's events; `Ok(Err)` when the call fails.
    async fn relay(
        &mut self,
        tx: &mpsc::Sender<Bytes>,
        rx: &mut EventStream,
        mut first: Option<Bytes>,
        opening: bool,
    ) -> Result<Result<Round, ApiError>, Gone> {
        let mut r = Round::default();
        let base = self.next_index;
        let mut last_write = Instant::now();
        let mut last_upstream = last_write;
        loop {
            let frame = match first.take() {
                Some(f) => f,
                None => {
                    let idle_at = last_upstream + self.limits.stream_idle_timeout;
                    let end_at = self.started + self.limits.max_stream_duration;
                    let ping_at = last_write + self.limits.ping_interval;
                    tokio::select! {
                        biased;
                        f = rx.recv() => match f {
                            Ok(Some(f)) => {
                                last_upstream = Instant::now();
                                f
                            }
                            Ok(None) => return Ok(Err(ApiError::Overloaded("Bedrock ended the stream before it was complete".into()))),
                            Err(e) => {
                                tracing::warn!(error = %e, "Bedrock stream failed after it had started");
                                return Ok(Err(e.to_api(true)));
                            }
                        },
                        _ = sleep_until(ping_at) => {
                            self.send(tx, Bytes::from_static(PING)).await?;
                            last_write = Instant::now();
                            continue;
                        }
                        _ = sleep_until(idle_at.min(end_at)) => {
                            return Ok(Err(ApiError::Timeout("Bedrock sent nothing in time, or the stream exceeded the gateway's limit".into())));
                        }
                    }
                }
            };
            if let Some(m) = self.meter.as_mut() {
                m.mark_first_token();
            }
            let Ok(mut ev) = serde_json::from_slice::<Value>(&frame) else {
                return Ok(Err(ApiError::BadGateway("the gateway received an unexpected event from Bedrock".into())));
            };
            let kind = ev.get("type").and_then(Value::as_str).unwrap_or_default().to_owned();
            let index = ev.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
            match kind.as_str() {
                "message_start" => {
                    if let Some(u) = ev.get("message").and_then(|m| m.get("usage")) {
                        r.usage.merge_anthropic(u);
                    }
                    if !opening {
                        continue;
                    }
                    if let Some(m) = ev.get_mut("message").and_then(Value::as_object_mut) {
                        m.insert("model".into(), Value::String(self.model.clone()));
                    }
                }
                "content_block_start" => {
                    r.slot(index);
                    let block = ev.get("content_block").cloned().unwrap_or(Value::Null);
                    r.blocks[index] = block.clone();
                    self.next_index = self.next_index.max(base + index as u64 + 1);
                    ev["index"] = json!(base + index as u64);
                    let is_tool = block.get("type").and_then(Value::as_str) == Some("tool_use");
                    if is_tool && block.get("name").and_then(Value::as_str) == Some(self.runner.plan.tool.name.as_str())
                    {
                        let srv = server_tool_id();
                        ev["content_block"] = json!({"type": "server_tool_use", "id": srv, "name": self.runner.plan.tool.name, "input": {}});
                        r.searches.push((index, srv));
                    } else if is_tool {
                        r.client_tool = true;
                    }
                }
                "content_block_delta" => {
                    if let Some(d) = ev.get("delta") {
                        r.delta(index, &d.clone());
                    }
                    ev["index"] = json!(base + index as u64);
                }
                "content_block_stop" => ev["index"] = json!(base + index as u64),
                "message_delta" => {
                    if let Some(d) = ev.get("delta") {
                        r.stop_reason = d.get("stop_reason").cloned().unwrap_or(Value::Null);
                        r.stop_sequence = d.get("stop_sequence").cloned().unwrap_or(Value::Null);
                    }
                    if let Some(u) = ev.get("usage") {
                        r.usage.merge_anthropic(u);
                    }
                    continue;
                }
                "message_stop" => {
                    if let Some(m) = ev.get("amazon-bedrock-invocationMetrics") {
                        r.usage.merge_metrics(m);
                    }
                    return Ok(Ok(r));
                }
                "ping" => continue,
                _ => {}
            }
            self.send(tx, sse(&kind, &ev)).await?;
            last_write = Instant::now();
        }
    }

    /// One search, with pings while it runs.
    async fn search(&mut self, tx: &mpsc::Sender<Bytes>, input: &Value) -> Result<Outcome, Gone> {
        let interval = self.limits.ping_interval;
        let work = self.runner.run(input);
        tokio::pin!(work);
        loop {
            tokio::select! {
                o = &mut work => return Ok(o),
                _ = tokio::time::sleep(interval) => {
                    if tx.send(Bytes::from_static(PING)).await.is_err() {
                        return Err(Gone);
                    }
                }
            }
        }
    }

    async fn send(&self, tx: &mpsc::Sender<Bytes>, b: Bytes) -> Result<(), Gone> {
        tx.send(b).await.map_err(|_| Gone)
    }

    async fn finish(mut self, tx: &mpsc::Sender<Bytes>, stop_reason: Value, stop_sequence: Value) {
        let usage = charged(self.total, &self.runner);
        let delta = json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
            "usage": usage_json(&usage, usage.web_search_requests),
        });
        if self.send(tx, sse("message_delta", &delta)).await.is_err() {
            return;
        }
        if self.send(tx, sse("message_stop", &json!({"type": "message_stop"}))).await.is_ok() {
            self.outcome = Finish::Ok;
        }
    }

    async fn fail(mut self, tx: &mpsc::Sender<Bytes>, e: ApiError) {
        self.outcome = Finish::StreamError;
        let _ = tx.send(e.sse_event(&self.rid)).await;
    }
}

impl Drop for Driver {
    /// However the request ends, it leaves its usage record: every model
    /// call's tokens and the searches run.
    fn drop(&mut self) {
        if let Some(meter) = self.meter.take() {
            let usage = charged(self.total, &self.runner);
            self.state.usage.record(meter.finish(200, self.outcome, usage));
        }
    }
}
