//! The request path from body bytes to the Bedrock body, as
//! `api::messages` and `api::count_tokens` run it: `parse_messages_request`,
//! model resolution, beta selection, `MessagesRequest::adapt`,
//! `bedrock_body`, the retry without a refused beta, and `count_tokens_body`.
//!
//! Input: optional `anthropic-beta: <value>` lines, a blank line if there
//! were any, then the request body, e.g.
//!
//! ```text
//! anthropic-beta: interleaved-thinking-2025-05-14,context-1m-2025-08-07
//!
//! {"model":"claude-sonnet-4-5","max_tokens":100,"messages":[…]}
//! ```
//!
//! Invariants: no panic; a request that parses and resolves gives a Bedrock
//! body that is a JSON object with `anthropic_version: bedrock-2023-05-31`,
//! only fields Bedrock's schema takes, exactly the selected betas (each
//! allowed, none refused before, no duplicates), the per-model rules of
//! docs/dataplane.md (thinking, output_config, context_management,
//! cache_control), and adapting is idempotent.
#![no_main]

use std::collections::{HashMap, HashSet};

use ccag_dataplane::models::{resolve, Capabilities};
use ccag_dataplane::translate::betas::{self, BetaMemory, BEDROCK_BETAS};
use ccag_dataplane::translate::{count_tokens_body, parse_messages_request};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

/// What Bedrock's Anthropic schema takes (docs/protocol.md §2.3), written out
/// here independently of the translator's own list.
const BEDROCK_SCHEMA: &[&str] = &[
    "anthropic_version",
    "anthropic_beta",
    "max_tokens",
    "messages",
    "system",
    "stop_sequences",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
    "output_config",
    "context_management",
];
const EXTRA_BETA: &str = "thinking-token-count-2026-05-13";

fn split_input(data: &[u8]) -> (HeaderMap, &[u8]) {
    let mut headers = HeaderMap::new();
    let mut rest = data;
    while let Some(line_rest) = rest.strip_prefix(b"anthropic-beta:") {
        let eol = line_rest.iter().position(|b| *b == b'\n').unwrap_or(line_rest.len());
        if let Ok(v) = HeaderValue::from_bytes(line_rest[..eol].trim_ascii()) {
            headers.append("anthropic-beta", v);
        }
        rest = line_rest.get(eol + 1..).unwrap_or_default();
    }
    if !headers.is_empty() {
        rest = rest.strip_prefix(b"\n").unwrap_or(rest);
    }
    (headers, rest)
}

fn object(body: &[u8]) -> Map<String, Value> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(m)) => m,
        other => panic!("the Bedrock body is not a JSON object: {other:?}"),
    }
}

fn check_cache_control(v: &Value) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Object(cc)) = m.get("cache_control") {
                assert!(cc.keys().all(|k| k == "type" || k == "ttl"), "cache_control keeps {cc:?}");
            }
            m.iter().filter(|(k, _)| *k != "cache_control").for_each(|(_, c)| check_cache_control(c));
        }
        Value::Array(a) => a.iter().for_each(check_cache_control),
        _ => {}
    }
}

fn check_body(out: &Map<String, Value>, caps: &Capabilities, sent: &[String]) {
    assert_eq!(out.get("anthropic_version"), Some(&Value::from("bedrock-2023-05-31")));
    for k in out.keys() {
        assert!(BEDROCK_SCHEMA.contains(&k.as_str()), "field Bedrock rejects: {k}");
    }
    match out.get("anthropic_beta") {
        None => assert!(sent.is_empty()),
        Some(b) => {
            assert!(!sent.is_empty());
            assert_eq!(b, &Value::from(sent.to_vec()));
        }
    }
    let version = caps.version;
    if let Some(Value::Object(t)) = out.get("thinking") {
        let kind = t.get("type").and_then(Value::as_str);
        assert_ne!(kind, Some("disabled"), "disabled thinking is omitted");
        if let Some(v) = version {
            if v >= (4, 7) {
                assert_ne!(kind, Some("enabled"), "4.7+ takes only adaptive thinking");
                if kind == Some("adaptive") {
                    assert!(!t.contains_key("budget_tokens"));
                }
            }
            if v < (4, 6) {
                assert_ne!(kind, Some("adaptive"), "adaptive thinking before 4.6");
                assert!(!t.contains_key("display"), "thinking.display before 4.6");
            }
        }
    }
    if let Some(Value::Object(oc)) = out.get("output_config") {
        assert!(!oc.is_empty(), "empty output_config");
        if version.is_some_and(|v| v >= (4, 7)) {
            assert!(!oc.contains_key("format"), "output_config.format on 4.7+");
        }
        if oc.contains_key("effort") {
            assert!(caps.effort(sent.iter().any(|b| b == "effort-2025-11-24")));
        }
    }
    if out.contains_key("context_management") {
        assert!(caps.context_management() && sent.iter().any(|b| b == "context-management-2025-06-27"));
    }
    for k in ["system", "messages", "tools"] {
        if let Some(v) = out.get(k) {
            check_cache_control(v);
        }
    }
}

fn check_sent(sent: &[String], extra: &HashSet<String>, rejected: &[String]) {
    for (i, b) in sent.iter().enumerate() {
        assert!(BEDROCK_BETAS.contains(&b.as_str()) || extra.contains(b), "beta not allowed: {b}");
        assert!(!rejected.contains(b), "refused beta sent again: {b}");
        assert!(!sent[..i].contains(b), "duplicate beta: {b}");
    }
}

fn messages(data: &[u8], mappings: &HashMap<String, String>, extra: &HashSet<String>) {
    let (headers, body) = split_input(data);
    let Ok(mut req) = parse_messages_request(body, true) else {
        return;
    };
    let Some(resolved) = resolve(&req.model, mappings, "us") else {
        return;
    };
    assert!(!resolved.bedrock_id.is_empty());
    let memory = BetaMemory::default();
    let requested: Vec<String> =
        betas::requested(&headers, req.body.get("betas")).into_iter().map(str::to_owned).collect();
    let requested: Vec<&str> = requested.iter().map(String::as_str).collect();
    let sent = betas::select(&requested, resolved.context_1m, extra, &[]);
    check_sent(&sent, extra, &[]);
    if resolved.context_1m {
        assert!(sent.iter().any(|b| b == "context-1m-2025-08-07"));
    }
    req.adapt(&resolved.caps, &sent);
    let first = req.bedrock_body(&sent);
    let out = object(&first);
    check_body(&out, &resolved.caps, &sent);

    // Adapting again changes nothing (a retry rebuilds the body).
    req.adapt(&resolved.caps, &sent);
    assert_eq!(req.bedrock_body(&sent), first, "adapt is not idempotent");

    // The body Bedrock gets, sent back through the translator as a client
    // request for the same model, comes out the same.
    let mut again = out.clone();
    again.insert("model".into(), req.model.clone().into());
    again.remove("anthropic_beta");
    if let Ok(mut req2) = parse_messages_request(&serde_json::to_vec(&again).unwrap(), true) {
        req2.adapt(&resolved.caps, &sent);
        assert_eq!(object(&req2.bedrock_body(&sent)), out, "translating twice differs");
    } else {
        panic!("the Bedrock body no longer parses as a request");
    }

    // Bedrock refuses the first beta: it is learnt, and the retry leaves it out.
    if let Some(refused) = sent.first() {
        let msg = format!("invalid beta flag: {refused}");
        assert!(memory.learn(&resolved.bedrock_id, &msg, &sent));
        let rejected = memory.rejected(&resolved.bedrock_id);
        let retry = betas::select(&requested, resolved.context_1m, extra, &rejected);
        check_sent(&retry, extra, &rejected);
        // As api::messages retries: adapted again to the remaining betas.
        req.adapt(&resolved.caps, &retry);
        let out2 = object(&req.bedrock_body(&retry));
        check_body(&out2, &resolved.caps, &retry);
        // Otherwise the retry changes only the betas and what needed them.
        let (mut a, mut b) = (out.clone(), out2);
        for m in [&mut a, &mut b] {
            m.remove("anthropic_beta");
            m.remove("context_management");
            if let Some(Value::Object(oc)) = m.get_mut("output_config") {
                oc.remove("effort");
                if oc.is_empty() {
                    m.remove("output_config");
                }
            }
        }
        assert_eq!(a, b, "a retry changes only the betas and what needed them");
    }
}

fn count_tokens(data: &[u8], mappings: &HashMap<String, String>) {
    let (_, body) = split_input(data);
    let Ok(mut req) = parse_messages_request(body, false) else {
        return;
    };
    let Some(resolved) = resolve(&req.model, mappings, "us") else {
        return;
    };
    let out = object(&count_tokens_body(&mut req, &resolved.caps));
    check_body(&out, &resolved.caps, &[]);
    let max_tokens = out.get("max_tokens").and_then(Value::as_u64).expect("count_tokens body has max_tokens");
    assert!(max_tokens >= 1);
    if let Some(budget) = out.get("thinking").and_then(|t| t.get("budget_tokens")).and_then(Value::as_u64) {
        assert!(max_tokens > budget || budget == u64::MAX, "max_tokens {max_tokens} must exceed the budget {budget}");
    }
    assert!(!out.get("tools").and_then(Value::as_array).is_some_and(Vec::is_empty), "empty tools");
}

fuzz_target!(|data: &[u8]| {
    let mappings = HashMap::from([
        (
            "team-model".to_owned(),
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123".to_owned(),
        ),
        ("fast".to_owned(), "us.anthropic.claude-haiku-4-5-20251001-v1:0".to_owned()),
    ]);
    let extra = HashSet::from([EXTRA_BETA.to_owned()]);
    messages(data, &mappings, &extra);
    count_tokens(data, &mappings);
});
