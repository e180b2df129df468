//! Web search, answered whole: call the model, run the searches it asks
//! for, call it again with the results, until it answers; then one
//! message holding every call's blocks and usage.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Response};
use serde_json::{json, Value};

use super::blocks::{add_usage, usage_json, Outcome};
use super::{server_tool_id, Runner};
use crate::api::AppState;
use crate::http::body::{full, ResBody};
use crate::translate::MessagesRequest;
use crate::upstream::{Endpoint, Principal, UpstreamError};
use crate::usage::{Meter, Outcome as Finish, Usage};

/// A failed call, with the usage of the calls before it (charged).
pub type Failure = (UpstreamError, Meter, Usage);

#[allow(clippy::too_many_arguments)]
pub async fn respond(
    state: &Arc<AppState>,
    request: &mut MessagesRequest,
    client: &Endpoint,
    who: Principal<'_>,
    bedrock_id: &str,
    betas: &[String],
    runner: &mut Runner,
    timeout: Duration,
    meter: Meter,
) -> Result<Response<ResBody>, Failure> {
    let mut total = Usage::default();
    let mut content_out: Vec<Value> = Vec::new();
    let mut id = Value::Null;
    let (mut stop_reason, mut stop_sequence) = (Value::Null, Value::Null);
    let rounds = runner.rounds();
    for round in 0..rounds {
        let body = request.bedrock_body(betas);
        let answer = match tokio::time::timeout(timeout, client.invoke(bedrock_id, body, who)).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => return Err((e, meter, charged(total, runner))),
            Err(_) => return Err((UpstreamError::Timeout, meter, charged(total, runner))),
        };
        let mut msg: Value = match serde_json::from_slice(&answer) {
            Ok(v) => v,
            Err(e) => return Err((UpstreamError::Protocol(e.to_string()), meter, charged(total, runner))),
        };
        let mut u = Usage::default();
        if let Some(m) = msg.get("amazon-bedrock-invocationMetrics") {
            u.merge_metrics(m);
        }
        if let Some(usage) = msg.get("usage") {
            u.merge_anthropic(usage);
        }
        add_usage(&mut total, &u);
        if round == 0 {
            id = msg.get("id").cloned().unwrap_or(Value::Null);
        }
        stop_reason = msg.get("stop_reason").cloned().unwrap_or(Value::Null);
        stop_sequence = msg.get("stop_sequence").cloned().unwrap_or(Value::Null);
        let content = match msg.get_mut("content").map(Value::take) {
            Some(Value::Array(c)) => c,
            _ => Vec::new(),
        };

        let mut client_tool = false;
        let mut results = Vec::new();
        for b in &content {
            if b.get("type").and_then(Value::as_str) != Some("tool_use") {
                content_out.push(b.clone());
                continue;
            }
            if b.get("name").and_then(Value::as_str) != Some(runner.plan.tool.name.as_str()) {
                client_tool = true;
                content_out.push(b.clone());
                continue;
            }
            let srv = server_tool_id();
            let input = b.get("input").cloned().unwrap_or_else(|| json!({}));
            content_out
                .push(json!({"type": "server_tool_use", "id": srv, "name": runner.plan.tool.name, "input": input}));
            let outcome: Outcome = runner.run(&input).await;
            content_out.push(outcome.client_block(&srv, &runner.plan.key));
            let bedrock_tool_id = b.get("id").and_then(Value::as_str).unwrap_or_default();
            results.push(outcome.bedrock_block(bedrock_tool_id));
        }
        let more = !results.is_empty() && !client_tool && stop_reason == "tool_use";
        if !more {
            break;
        }
        if round + 1 == rounds {
            // The model is still searching at the gateway's limit: the API's
            // answer to a turn it stops early.
            stop_reason = json!("pause_turn");
            break;
        }
        runner.next_round(&mut request.body, content, results);
    }
    let usage = charged(total, runner);
    let message = json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": request.model,
        "content": content_out,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage_json(&usage, usage.web_search_requests),
    });
    state.usage.record(meter.finish(200, Finish::Ok, usage));
    let mut res = Response::new(full(serde_json::to_vec(&message).expect("a JSON value serialises")));
    res.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(res)
}

/// The usage to charge: the model calls' and the searches run.
pub fn charged(mut total: Usage, runner: &Runner) -> Usage {
    total.web_search_requests = runner.billed;
    total
}
