//! Parsing a Messages request once, and adapting its body to what Bedrock
//! accepts for the resolved model (docs/protocol.md §2.3).

use serde_json::{Map, Value};

use crate::http::error::ApiError;
use crate::models::Capabilities;

const BEDROCK_VERSION: &str = "bedrock-2023-05-31";

/// The body fields Bedrock's Anthropic schema accepts. Anything else is
/// dropped rather than forwarded: Bedrock answers "Extra inputs are not
/// permitted" to unknown fields, and a client must never fail for sending one.
const BEDROCK_FIELDS: &[&str] = &[
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

const EFFORT_BETA: &str = "effort-2025-11-24";
const CONTEXT_MANAGEMENT_BETA: &str = "context-management-2025-06-27";
const MIN_THINKING_BUDGET: u64 = 1024;

/// A Messages (or count_tokens) request, parsed once at the boundary.
#[derive(Debug)]
pub struct MessagesRequest {
    pub model: String,
    pub stream: bool,
    /// The client's body, minus `model` and `stream`; adapted in place.
    pub body: Map<String, Value>,
    /// Whether `messages` holds `{"role":"system"}` entries.
    pub has_system_messages: bool,
}

/// Checks the fields every Messages request needs. `count_tokens` does not
/// need `max_tokens`.
pub fn parse_messages_request(bytes: &[u8], need_max_tokens: bool) -> Result<MessagesRequest, ApiError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::InvalidRequest(format!("request body is not valid JSON: {e}")))?;
    let Value::Object(mut body) = value else {
        return Err(ApiError::InvalidRequest("request body must be a JSON object".into()));
    };
    let model = match body.remove("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => m,
        Some(_) => return Err(ApiError::InvalidRequest("model: must be a non-empty string".into())),
        None => return Err(ApiError::InvalidRequest("model: Field required".into())),
    };
    let stream = match body.remove("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(ApiError::InvalidRequest("stream: must be a boolean".into())),
    };
    let messages = match body.get("messages") {
        Some(Value::Array(m)) => m,
        Some(_) => return Err(ApiError::InvalidRequest("messages: must be an array".into())),
        None => return Err(ApiError::InvalidRequest("messages: Field required".into())),
    };
    let has_system_messages = messages.iter().any(|m| m.get("role").and_then(Value::as_str) == Some("system"));
    if need_max_tokens {
        match body.get("max_tokens") {
            Some(v) if v.as_u64().is_some_and(|n| n >= 1) => {}
            Some(_) => return Err(ApiError::InvalidRequest("max_tokens: must be a positive integer".into())),
            None => return Err(ApiError::InvalidRequest("max_tokens: Field required".into())),
        }
    }
    Ok(MessagesRequest { model, stream, body, has_system_messages })
}

impl MessagesRequest {
    /// Drops or rewrites what Bedrock would refuse for a model with `caps`.
    /// Idempotent, so a retry can call `bedrock_body` again with fewer betas.
    pub fn adapt(&mut self, caps: &Capabilities, betas: &[String]) {
        let body = &mut self.body;
        body.retain(|k, _| BEDROCK_FIELDS.contains(&k.as_str()));
        let has = |b: &str| betas.iter().any(|x| x == b);
        let max_tokens = body.get("max_tokens").and_then(Value::as_u64);
        adapt_thinking(body, caps, max_tokens);
        adapt_output_config(body, caps, has(EFFORT_BETA));
        if !(caps.context_management() && has(CONTEXT_MANAGEMENT_BETA)) {
            body.remove("context_management");
        }
        for key in ["system", "messages", "tools"] {
            if let Some(v) = body.get_mut(key) {
                trim_cache_control(v);
            }
        }
    }

    /// The Bedrock request body with the given betas.
    pub fn bedrock_body(&mut self, betas: &[String]) -> Vec<u8> {
        self.body.insert("anthropic_version".into(), Value::String(BEDROCK_VERSION.into()));
        if betas.is_empty() {
            self.body.remove("anthropic_beta");
        } else {
            self.body.insert("anthropic_beta".into(), Value::Array(betas.iter().cloned().map(Value::String).collect()));
        }
        serde_json::to_vec(&self.body).expect("a JSON map always serialises")
    }
}

/// CountTokens wants a complete invoke body; its `max_tokens` must exceed any
/// thinking budget, and an empty `tools` is refused.
pub fn count_tokens_body(req: &mut MessagesRequest, caps: &Capabilities) -> Vec<u8> {
    let budget = req.body.get("thinking").and_then(|t| t.get("budget_tokens")).and_then(Value::as_u64).unwrap_or(0);
    req.body.insert("max_tokens".into(), Value::from(budget.saturating_add(1)));
    if req.body.get("tools").and_then(Value::as_array).is_some_and(Vec::is_empty) {
        req.body.remove("tools");
    }
    req.adapt(caps, &[]);
    req.bedrock_body(&[])
}

fn adapt_thinking(body: &mut Map<String, Value>, caps: &Capabilities, max_tokens: Option<u64>) {
    enum Rewrite {
        Keep,
        Drop,
        Budgeted(u64),
        Adaptive,
    }
    let Some(Value::Object(thinking)) = body.get("thinking") else {
        return;
    };
    let rewrite = match thinking.get("type").and_then(Value::as_str) {
        // Absent thinking is disabled thinking, and every model accepts absence.
        Some("disabled") => Rewrite::Drop,
        // The model decides how much to think; the closest older form is the
        // largest budget the request allows.
        Some("adaptive") if !caps.adaptive_thinking() => match max_tokens.filter(|m| *m > MIN_THINKING_BUDGET) {
            Some(m) => Rewrite::Budgeted(m - 1),
            None => Rewrite::Drop,
        },
        Some("enabled") if !caps.budgeted_thinking() => Rewrite::Adaptive,
        _ => Rewrite::Keep,
    };
    if matches!(rewrite, Rewrite::Drop) {
        body.remove("thinking");
        return;
    }
    let Some(Value::Object(thinking)) = body.get_mut("thinking") else {
        return;
    };
    match rewrite {
        Rewrite::Budgeted(budget) => {
            thinking.insert("type".into(), "enabled".into());
            thinking.insert("budget_tokens".into(), Value::from(budget));
        }
        Rewrite::Adaptive => {
            thinking.insert("type".into(), "adaptive".into());
            thinking.remove("budget_tokens");
        }
        Rewrite::Keep | Rewrite::Drop => {}
    }
    // Adaptive thinking takes no budget, whether the client sent one along
    // with it or it was rewritten into adaptive: Bedrock refuses the field.
    if thinking.get("type").and_then(Value::as_str) == Some("adaptive") {
        thinking.remove("budget_tokens");
    }
    if !caps.thinking_display() {
        thinking.remove("display");
    }
}

fn adapt_output_config(body: &mut Map<String, Value>, caps: &Capabilities, effort_beta: bool) {
    let Some(Value::Object(oc)) = body.get_mut("output_config") else {
        return;
    };
    if !caps.effort(effort_beta) {
        oc.remove("effort");
    }
    if !caps.output_format() {
        oc.remove("format");
    }
    if oc.is_empty() {
        body.remove("output_config");
    }
}

/// Bedrock takes only `type` and `ttl` in a `cache_control`.
fn trim_cache_control(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Object(cc)) = map.get_mut("cache_control") {
                cc.retain(|k, _| k == "type" || k == "ttl");
            }
            for (k, child) in map.iter_mut() {
                // Strings and numbers cannot hold a cache_control; skip them cheaply.
                if k != "cache_control" && (child.is_object() || child.is_array()) {
                    trim_cache_control(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(trim_cache_control),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Family;
    use serde_json::json;

    fn caps(f: Family, major: u8, minor: u8) -> Capabilities {
        Capabilities { family: Some(f), version: Some((major, minor)) }
    }
    const SONNET45: Capabilities = Capabilities { family: Some(Family::Sonnet), version: Some((4, 5)) };
    const UNKNOWN: Capabilities = Capabilities { family: None, version: None };

    fn parse(v: Value) -> MessagesRequest {
        parse_messages_request(v.to_string().as_bytes(), true).unwrap()
    }

    fn adapted(v: Value, c: Capabilities, betas: &[&str]) -> Value {
        let mut r = parse(v);
        let betas: Vec<String> = betas.iter().map(|s| s.to_string()).collect();
        r.adapt(&c, &betas);
        serde_json::from_slice(&r.bedrock_body(&betas)).unwrap()
    }

    fn base() -> Value {
        json!({"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"hi"}]})
    }

    fn with(mut v: Value, k: &str, x: Value) -> Value {
        v[k] = x;
        v
    }

    #[test]
    fn model_and_stream_leave_the_body() {
        let mut r = parse(with(base(), "stream", json!(true)));
        assert!(r.stream);
        assert_eq!(r.model, "claude-sonnet-4-5");
        let out: Value = serde_json::from_slice(&r.bedrock_body(&[])).unwrap();
        assert!(out.get("model").is_none() && out.get("stream").is_none());
    }

    #[test]
    fn bedrock_version_is_always_set() {
        let out = adapted(with(base(), "anthropic_version", json!("2026-10-21")), SONNET45, &[]);
        assert_eq!(out["anthropic_version"], "bedrock-2023-05-31");
    }

    #[test]
    fn betas_go_into_the_body() {
        let out = adapted(base(), SONNET45, &["interleaved-thinking-2025-05-14"]);
        assert_eq!(out["anthropic_beta"], json!(["interleaved-thinking-2025-05-14"]));
    }

    #[test]
    fn no_betas_means_no_beta_field() {
        let out = adapted(with(base(), "anthropic_beta", json!(["x"])), SONNET45, &[]);
        assert!(out.get("anthropic_beta").is_none());
    }

    #[test]
    fn unknown_and_unsupported_fields_are_dropped() {
        let mut v = base();
        for k in [
            "metadata",
            "service_tier",
            "container",
            "inference_geo",
            "tags",
            "betas",
            "speed",
            "mcp_servers",
            "whatever",
        ] {
            v[k] = json!("x");
        }
        let out = adapted(v, SONNET45, &[]);
        for k in [
            "metadata",
            "service_tier",
            "container",
            "inference_geo",
            "tags",
            "betas",
            "speed",
            "mcp_servers",
            "whatever",
        ] {
            assert!(out.get(k).is_none(), "{k} survived");
        }
    }

    #[test]
    fn sampling_parameters_pass_through() {
        let mut v = base();
        v["temperature"] = json!(0.5);
        v["top_p"] = json!(0.9);
        v["top_k"] = json!(5);
        v["stop_sequences"] = json!(["END"]);
        let out = adapted(v, SONNET45, &[]);
        assert_eq!(out["temperature"], 0.5);
        assert_eq!(out["top_k"], 5);
        assert_eq!(out["stop_sequences"], json!(["END"]));
    }

    #[test]
    fn adaptive_thinking_becomes_budgeted_on_older_models() {
        let out = adapted(with(base(), "thinking", json!({"type":"adaptive"})), caps(Family::Sonnet, 4, 5), &[]);
        let mut v = base();
        v["max_tokens"] = json!(32000);
        v["thinking"] = json!({"type":"adaptive","display":"omitted"});
        let big = adapted(v, SONNET45, &[]);
        assert!(out.get("thinking").is_none(), "a 100-token request cannot hold a 1024-token budget");
        assert_eq!(big["thinking"], json!({"type":"enabled","budget_tokens":31999}));
    }

    #[test]
    fn adaptive_thinking_sent_with_a_budget_loses_the_budget() {
        let v = with(base(), "thinking", json!({"type":"adaptive","budget_tokens":2048}));
        let out = adapted(v, caps(Family::Sonnet, 4, 7), &[]);
        assert_eq!(out["thinking"], json!({"type":"adaptive"}));
    }

    #[test]
    fn budgeted_thinking_becomes_adaptive_on_newest_models() {
        let v = with(base(), "thinking", json!({"type":"enabled","budget_tokens":2000,"display":"omitted"}));
        let out = adapted(v, caps(Family::Opus, 4, 7), &[]);
        assert_eq!(out["thinking"], json!({"type":"adaptive","display":"omitted"}));
    }

    #[test]
    fn thinking_display_is_dropped_where_unsupported() {
        let mut v = base();
        v["max_tokens"] = json!(32000);
        v["thinking"] = json!({"type":"enabled","budget_tokens":31999,"display":"omitted"});
        let out = adapted(v, SONNET45, &[]);
        assert_eq!(out["thinking"], json!({"type":"enabled","budget_tokens":31999}));
    }

    #[test]
    fn disabled_thinking_is_omitted() {
        let out = adapted(with(base(), "thinking", json!({"type":"disabled"})), caps(Family::Opus, 5, 5), &[]);
        assert!(out.get("thinking").is_none());
    }

    #[test]
    fn thinking_is_untouched_for_models_of_unknown_version() {
        let v = with(base(), "thinking", json!({"type":"adaptive","display":"summarized"}));
        assert_eq!(adapted(v, UNKNOWN, &[])["thinking"], json!({"type":"adaptive","display":"summarized"}));
    }

    #[test]
    fn effort_is_kept_natively_from_4_7() {
        let v = with(base(), "output_config", json!({"effort":"medium"}));
        assert_eq!(adapted(v, caps(Family::Opus, 5, 5), &[])["output_config"], json!({"effort":"medium"}));
    }

    #[test]
    fn effort_on_opus_4_5_needs_its_beta() {
        let v = with(base(), "output_config", json!({"effort":"high"}));
        assert!(adapted(v.clone(), caps(Family::Opus, 4, 5), &[]).get("output_config").is_none());
        let kept = adapted(v, caps(Family::Opus, 4, 5), &["effort-2025-11-24"]);
        assert_eq!(kept["output_config"]["effort"], "high");
    }

    #[test]
    fn output_format_is_dropped_on_adaptive_only_models() {
        let v = with(base(), "output_config", json!({"effort":"low","format":{"type":"json_schema"}}));
        assert_eq!(adapted(v, caps(Family::Opus, 4, 8), &[])["output_config"], json!({"effort":"low"}));
    }

    #[test]
    fn context_management_needs_beta_and_a_4_5_sonnet_or_haiku() {
        let v = with(base(), "context_management", json!({"edits":[]}));
        assert!(adapted(v.clone(), SONNET45, &[]).get("context_management").is_none());
        assert!(adapted(v.clone(), SONNET45, &["context-management-2025-06-27"]).get("context_management").is_some());
        assert!(adapted(v, caps(Family::Opus, 5, 5), &["context-management-2025-06-27"])
            .get("context_management")
            .is_none());
    }

    #[test]
    fn cache_control_keeps_only_type_and_ttl_everywhere() {
        let cc = json!({"type":"ephemeral","ttl":"1h","scope":"global"});
        let mut v = base();
        v["system"] = json!([{"type":"text","text":"s","cache_control":cc}]);
        v["messages"] = json!([{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"text","text":"x","cache_control":cc}]}]}]);
        v["tools"] = json!([{"name":"Bash","input_schema":{"type":"object"},"cache_control":cc}]);
        let out = adapted(v, SONNET45, &[]);
        let want = json!({"type":"ephemeral","ttl":"1h"});
        assert_eq!(out["system"][0]["cache_control"], want);
        assert_eq!(out["messages"][0]["content"][0]["content"][0]["cache_control"], want);
        assert_eq!(out["tools"][0]["cache_control"], want);
    }

    #[test]
    fn a_retry_without_a_refused_beta_drops_the_fields_that_needed_it() {
        // What api::messages does when Bedrock refuses a beta: adapt again
        // with the remaining betas, then build the body.
        let mut v = with(base(), "output_config", json!({"effort":"high"}));
        v["context_management"] = json!({"edits":[]});
        let mut r = parse(v);
        let first: Vec<String> = vec![EFFORT_BETA.into(), CONTEXT_MANAGEMENT_BETA.into()];
        let opus45 = caps(Family::Opus, 4, 5);
        r.adapt(&opus45, &first);
        let out: Value = serde_json::from_slice(&r.bedrock_body(&first)).unwrap();
        assert_eq!(out["output_config"]["effort"], "high");
        r.adapt(&opus45, &[]);
        let retry: Value = serde_json::from_slice(&r.bedrock_body(&[])).unwrap();
        assert!(retry.get("output_config").is_none(), "effort without its beta: {retry}");
        assert!(retry.get("anthropic_beta").is_none());

        let mut r = parse(with(base(), "context_management", json!({"edits":[]})));
        let first: Vec<String> = vec![CONTEXT_MANAGEMENT_BETA.into()];
        r.adapt(&SONNET45, &first);
        assert!(serde_json::from_slice::<Value>(&r.bedrock_body(&first)).unwrap().get("context_management").is_some());
        r.adapt(&SONNET45, &[]);
        let retry: Value = serde_json::from_slice(&r.bedrock_body(&[])).unwrap();
        assert!(retry.get("context_management").is_none(), "context_management without its beta: {retry}");
    }

    #[test]
    fn invalid_json_is_an_invalid_request() {
        assert!(matches!(parse_messages_request(b"{", true), Err(ApiError::InvalidRequest(_))));
    }

    #[test]
    fn non_object_body_is_an_invalid_request() {
        assert!(matches!(parse_messages_request(b"[]", true), Err(ApiError::InvalidRequest(_))));
    }

    #[test]
    fn missing_model_is_named_in_the_error() {
        let e = parse_messages_request(br#"{"max_tokens":1,"messages":[]}"#, true).unwrap_err();
        assert!(e.to_string().starts_with("model:"));
    }

    #[test]
    fn missing_max_tokens_is_named_in_the_error() {
        let e = parse_messages_request(br#"{"model":"m","messages":[]}"#, true).unwrap_err();
        assert!(e.to_string().starts_with("max_tokens:"));
    }

    #[test]
    fn count_tokens_needs_no_max_tokens() {
        assert!(parse_messages_request(br#"{"model":"m","messages":[]}"#, false).is_ok());
    }

    #[test]
    fn count_tokens_body_has_max_tokens_above_the_budget_and_no_empty_tools() {
        let mut r = parse_messages_request(
            br#"{"model":"m","messages":[],"tools":[],"thinking":{"type":"enabled","budget_tokens":2048}}"#,
            false,
        )
        .unwrap();
        let out: Value = serde_json::from_slice(&count_tokens_body(&mut r, &SONNET45)).unwrap();
        assert_eq!(out["max_tokens"], 2049);
        assert!(out.get("tools").is_none());
        assert_eq!(out["anthropic_version"], "bedrock-2023-05-31");
    }

    #[test]
    fn count_tokens_body_survives_the_largest_budget() {
        let mut r = parse_messages_request(
            br#"{"model":"m","messages":[],"thinking":{"type":"enabled","budget_tokens":18446744073709551615}}"#,
            false,
        )
        .unwrap();
        let out: Value = serde_json::from_slice(&count_tokens_body(&mut r, &SONNET45)).unwrap();
        assert_eq!(out["max_tokens"], u64::MAX);
    }

    #[test]
    fn numbers_in_the_body_reach_bedrock_as_the_client_wrote_them() {
        let numbers =
            ["888888888888888888888888888888888888888888888888888888888888888888888888820000", "3.3333333333333330e52"];
        let body = format!(
            r#"{{"model":"m","max_tokens":1,"messages":[{{"role":"assistant","content":[{{"type":"tool_use","id":"t","name":"T","input":{{"a":{},"b":{}}}}}]}}]}}"#,
            numbers[0], numbers[1]
        );
        let mut r = parse_messages_request(body.as_bytes(), true).unwrap();
        r.adapt(&SONNET45, &[]);
        let out: Value = serde_json::from_slice(&r.bedrock_body(&[])).unwrap();
        let input = &out["messages"][0]["content"][0]["input"];
        // Rust's own parser rounds correctly.
        assert_eq!(input["a"].as_f64(), Some(numbers[0].parse::<f64>().unwrap()));
        assert_eq!(input["b"].as_f64(), Some(numbers[1].parse::<f64>().unwrap()));
    }

    #[test]
    fn system_messages_are_detected() {
        let r = parse(json!({"model":"m","max_tokens":1,"messages":[{"role":"system","content":"x"}]}));
        assert!(r.has_system_messages);
    }
}
