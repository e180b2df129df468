//! Request-body validation the way Bedrock applies it to Anthropic models.
//! Each failure becomes a 400 ValidationException carrying the message.

use serde_json::{Map, Value};

use crate::models::{Family, ModelInfo, Version};

pub const ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";

/// Top-level keys Bedrock accepts in an Anthropic invoke body.
pub const ALLOWED_KEYS: &[&str] = &[
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

/// Betas Bedrock accepts in `anthropic_beta`.
pub const ALLOWED_BETAS: &[&str] = &[
    "computer-use-2025-01-24",
    "token-efficient-tools-2025-02-19",
    "interleaved-thinking-2025-05-14",
    "output-128k-2025-02-19",
    "dev-full-thinking-2025-05-14",
    "context-1m-2025-08-07",
    "context-management-2025-06-27",
    "effort-2025-11-24",
    "tool-search-tool-2025-10-19",
    "tool-examples-2025-10-29",
];

pub const BETA_CONTEXT_1M: &str = "context-1m-2025-08-07";
pub const BETA_CONTEXT_MANAGEMENT: &str = "context-management-2025-06-27";
pub const BETA_EFFORT: &str = "effort-2025-11-24";

const V4_5: Version = Version::new(4, 5);
const V4_6: Version = Version::new(4, 6);
const V4_7: Version = Version::new(4, 7);

fn extra(path: &str) -> String {
    format!("{path}: Extra inputs are not permitted")
}

/// Validates an invoke body against the model's capabilities.
pub fn validate_invoke_body(body: &Value, model: &ModelInfo) -> Result<(), String> {
    let obj = body.as_object().ok_or_else(|| "Malformed input request: the body must be a JSON object".to_string())?;

    for key in obj.keys() {
        if !ALLOWED_KEYS.contains(&key.as_str()) {
            return Err(extra(key));
        }
    }

    match obj.get("anthropic_version") {
        None => return Err("Malformed input request: #: required key [anthropic_version] not found".to_string()),
        Some(Value::String(v)) if v == ANTHROPIC_VERSION => {}
        Some(_) => return Err("invalid anthropic_version: expected bedrock-2023-05-31".into()),
    }

    let max_tokens = match obj.get("max_tokens") {
        None => return Err("Malformed input request: #: required key [max_tokens] not found".to_string()),
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => n,
            _ => return Err("max_tokens: Input should be a positive integer".to_string()),
        },
    };

    let messages = match obj.get("messages") {
        None => return Err("Malformed input request: #: required key [messages] not found".to_string()),
        Some(Value::Array(m)) => m,
        Some(_) => return Err("messages: Input should be a valid list".to_string()),
    };

    let betas = validate_betas(obj, model)?;

    for key in ["system", "messages", "tools"] {
        if let Some(v) = obj.get(key) {
            check_cache_control(v)?;
        }
    }

    validate_roles(messages, model.version)?;
    validate_server_tools(obj, messages)?;
    validate_thinking(obj, model.version, max_tokens)?;
    validate_context_management(obj, model, &betas)?;
    validate_output_config(obj, model, &betas)?;
    Ok(())
}

/// Bedrock has none of Anthropic's server tools: their definitions, and
/// their blocks in a conversation, are refused.
fn validate_server_tools(obj: &Map<String, Value>, messages: &[Value]) -> Result<(), String> {
    for (i, t) in obj.get("tools").and_then(Value::as_array).into_iter().flatten().enumerate() {
        if let Some(kind) = t.get("type").and_then(Value::as_str) {
            if kind.starts_with("web_search_") || kind.starts_with("web_fetch_") {
                return Err(format!(
                    "tools.{i}: Input tag '{kind}' found using 'type' does not match any of the expected tags"
                ));
            }
        }
    }
    for (i, m) in messages.iter().enumerate() {
        for b in m.get("content").and_then(Value::as_array).into_iter().flatten() {
            if let Some(kind @ ("server_tool_use" | "web_search_tool_result")) = b.get("type").and_then(Value::as_str) {
                return Err(format!("messages.{i}.content: Input tag '{kind}' found using 'type' does not match any of the expected tags"));
            }
        }
    }
    Ok(())
}

fn validate_betas<'a>(obj: &'a Map<String, Value>, model: &ModelInfo) -> Result<Vec<&'a str>, String> {
    let Some(v) = obj.get("anthropic_beta") else {
        return Ok(Vec::new());
    };
    let list = v.as_array().ok_or_else(|| "anthropic_beta: Input should be a valid list".to_string())?;
    let mut out = Vec::with_capacity(list.len());
    for item in list {
        let beta = item.as_str().ok_or_else(|| "anthropic_beta: Input should be a valid string".to_string())?;
        if !ALLOWED_BETAS.contains(&beta) {
            return Err(format!("invalid beta flag: {beta}"));
        }
        if beta == BETA_CONTEXT_1M && model.family == Family::Haiku {
            return Err(format!("invalid beta flag: {beta}"));
        }
        out.push(beta);
    }
    Ok(out)
}

/// Rejects any `cache_control` object with keys other than `type` and `ttl`,
/// at any depth.
pub fn check_cache_control(v: &Value) -> Result<(), String> {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if k == "cache_control" {
                    if let Value::Object(cc) = child {
                        for ck in cc.keys() {
                            if ck != "type" && ck != "ttl" {
                                return Err(extra(&format!("cache_control.{ck}")));
                            }
                        }
                    }
                } else {
                    check_cache_control(child)?;
                }
            }
            Ok(())
        }
        Value::Array(items) => items.iter().try_for_each(check_cache_control),
        _ => Ok(()),
    }
}

fn validate_roles(messages: &[Value], version: Version) -> Result<(), String> {
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).ok_or_else(|| format!("messages.{i}.role: Field required"))?;
        match role {
            "user" | "assistant" => {}
            "system" if version >= V4_7 => {}
            _ => return Err(format!("messages.{i}.role: Input should be 'user' or 'assistant'")),
        }
        if m.get("content").is_none() {
            return Err(format!("messages.{i}.content: Field required"));
        }
    }
    Ok(())
}

fn validate_thinking(obj: &Map<String, Value>, version: Version, max_tokens: u64) -> Result<(), String> {
    let Some(thinking) = obj.get("thinking") else {
        return Ok(());
    };
    let t = thinking.as_object().ok_or_else(|| "thinking: Input should be a valid dictionary".to_string())?;
    let ty = t.get("type").and_then(Value::as_str).ok_or_else(|| "thinking.type: Field required".to_string())?;
    if t.contains_key("display") && version < V4_6 {
        return Err(extra("thinking.display"));
    }
    match ty {
        "adaptive" => {
            if version < V4_6 {
                return Err("thinking.type: adaptive thinking is not supported on this model; use \
                     'enabled' with budget_tokens"
                    .to_string());
            }
        }
        "enabled" => {
            if version >= V4_7 {
                return Err("thinking.type.enabled is not supported for this model. Use \
                     thinking.type.adaptive and output_config.effort to control thinking behavior."
                    .to_string());
            }
            let budget = t
                .get("budget_tokens")
                .ok_or_else(|| "thinking.enabled.budget_tokens: Field required".to_string())?
                .as_u64()
                .ok_or_else(|| "thinking.enabled.budget_tokens: Input should be a valid integer".to_string())?;
            if budget < 1024 {
                return Err("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024".to_string());
            }
            if budget >= max_tokens {
                return Err("`max_tokens` must be greater than `thinking.budget_tokens`".to_string());
            }
        }
        "disabled" => {}
        other => {
            return Err(format!(
                "thinking.type: Input tag '{other}' found using 'type' does not match any of the \
                 expected tags: 'enabled', 'disabled', 'adaptive'"
            ))
        }
    }
    Ok(())
}

fn validate_context_management(obj: &Map<String, Value>, model: &ModelInfo, betas: &[&str]) -> Result<(), String> {
    if !obj.contains_key("context_management") {
        return Ok(());
    }
    let model_ok = matches!(model.family, Family::Sonnet | Family::Haiku) && model.version == V4_5;
    if model_ok && betas.contains(&BETA_CONTEXT_MANAGEMENT) {
        Ok(())
    } else {
        Err(extra("context_management"))
    }
}

fn validate_output_config(obj: &Map<String, Value>, model: &ModelInfo, betas: &[&str]) -> Result<(), String> {
    let Some(oc) = obj.get("output_config") else {
        return Ok(());
    };
    let oc = oc.as_object().ok_or_else(|| "output_config: Input should be a valid dictionary".to_string())?;
    if oc.contains_key("effort") {
        let opus_45_with_beta = model.family == Family::Opus && model.version == V4_5 && betas.contains(&BETA_EFFORT);
        if !(opus_45_with_beta || model.version >= V4_7) {
            return Err(extra("output_config.effort"));
        }
    }
    if oc.contains_key("format") && model.version >= V4_7 {
        return Err(extra("output_config.format"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{resolve_count_tokens, resolve_invoke};
    use serde_json::json;

    fn model(id: &str) -> ModelInfo {
        resolve_invoke(id).or_else(|_| resolve_count_tokens(id)).expect("known model")
    }

    const SONNET45: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
    const HAIKU45: &str = "us.anthropic.claude-haiku-4-5-20251001-v1:0";
    const OPUS45: &str = "us.anthropic.claude-opus-4-5-20251101-v1:0";
    const OPUS46: &str = "us.anthropic.claude-opus-4-6-v1";
    const OPUS47: &str = "us.anthropic.claude-opus-4-7";
    const OPUS55: &str = "us.anthropic.claude-opus-5-5";

    fn base() -> Value {
        json!({
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 4096,
            "messages": [{"role": "user", "content": "hi"}]
        })
    }

    fn with(mut b: Value, key: &str, v: Value) -> Value {
        b[key] = v;
        b
    }

    fn check(id: &str, body: &Value) -> Result<(), String> {
        validate_invoke_body(body, &model(id))
    }

    #[test]
    fn minimal_body_is_valid() {
        assert_eq!(check(SONNET45, &base()), Ok(()));
    }

    #[test]
    fn non_object_body_is_rejected() {
        assert!(check(SONNET45, &json!([1, 2])).is_err());
    }

    #[test]
    fn wrong_anthropic_version_is_rejected() {
        let b = with(base(), "anthropic_version", json!("2023-06-01"));
        assert!(check(SONNET45, &b).unwrap_err().contains("anthropic_version"));
        let mut b = base();
        b.as_object_mut().unwrap().remove("anthropic_version");
        assert!(check(SONNET45, &b).unwrap_err().contains("anthropic_version"));
    }

    #[test]
    fn max_tokens_is_required_and_positive() {
        let mut b = base();
        b.as_object_mut().unwrap().remove("max_tokens");
        assert!(check(SONNET45, &b).unwrap_err().contains("max_tokens"));
        let b = with(base(), "max_tokens", json!(0));
        assert!(check(SONNET45, &b).unwrap_err().contains("max_tokens"));
        let b = with(base(), "max_tokens", json!(1.5));
        assert!(check(SONNET45, &b).unwrap_err().contains("max_tokens"));
    }

    #[test]
    fn messages_is_required_array() {
        let mut b = base();
        b.as_object_mut().unwrap().remove("messages");
        assert!(check(SONNET45, &b).unwrap_err().contains("messages"));
        let b = with(base(), "messages", json!("hi"));
        assert!(check(SONNET45, &b).unwrap_err().contains("messages"));
    }

    #[test]
    fn extra_top_level_key_is_rejected() {
        let b = with(base(), "metadata", json!({"user_id": "u"}));
        assert_eq!(check(SONNET45, &b), Err("metadata: Extra inputs are not permitted".into()));
    }

    #[test]
    fn unknown_beta_is_rejected() {
        let b = with(base(), "anthropic_beta", json!(["fine-grained-tool-streaming-2025-05-14"]));
        assert_eq!(check(SONNET45, &b), Err("invalid beta flag: fine-grained-tool-streaming-2025-05-14".into()));
    }

    #[test]
    fn allowed_betas_pass() {
        let b = with(base(), "anthropic_beta", json!(ALLOWED_BETAS));
        assert_eq!(check(SONNET45, &b), Ok(()));
    }

    #[test]
    fn context_1m_is_rejected_on_haiku_only() {
        let b = with(base(), "anthropic_beta", json!([BETA_CONTEXT_1M]));
        assert_eq!(check(HAIKU45, &b), Err("invalid beta flag: context-1m-2025-08-07".into()));
        assert_eq!(check(SONNET45, &b), Ok(()));
    }

    #[test]
    fn cache_control_scope_is_rejected_anywhere() {
        let b = with(
            base(),
            "messages",
            json!([{"role": "user", "content": [
                {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral", "scope": "global"}}
            ]}]),
        );
        assert_eq!(check(SONNET45, &b), Err("cache_control.scope: Extra inputs are not permitted".into()));
        let b = with(
            base(),
            "system",
            json!([{"type": "text", "text": "s", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]),
        );
        assert_eq!(check(SONNET45, &b), Ok(()));
        let b = with(
            base(),
            "tools",
            json!([{"name": "t", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral", "x": 1}}]),
        );
        assert!(check(SONNET45, &b).is_err());
    }

    #[test]
    fn adaptive_thinking_rejected_before_4_6() {
        let b = with(base(), "thinking", json!({"type": "adaptive"}));
        assert!(check(SONNET45, &b).is_err());
        assert_eq!(check(OPUS46, &b), Ok(()));
    }

    #[test]
    fn thinking_display_rejected_before_4_6() {
        let b = with(base(), "thinking", json!({"type": "enabled", "budget_tokens": 2048, "display": "omitted"}));
        assert_eq!(check(SONNET45, &b), Err("thinking.display: Extra inputs are not permitted".into()));
        assert_eq!(check(OPUS46, &b), Ok(()));
    }

    #[test]
    fn enabled_thinking_rejected_from_4_7() {
        let b = with(base(), "thinking", json!({"type": "enabled", "budget_tokens": 2048}));
        assert!(check(OPUS47, &b).is_err());
        assert!(check(OPUS55, &b).is_err());
        assert_eq!(check(OPUS46, &b), Ok(()));
    }

    #[test]
    fn budget_tokens_bounds() {
        let b = with(base(), "thinking", json!({"type": "enabled", "budget_tokens": 1023}));
        assert!(check(SONNET45, &b).is_err());
        let b = with(base(), "thinking", json!({"type": "enabled", "budget_tokens": 4096}));
        assert!(check(SONNET45, &b).is_err(), "budget must be < max_tokens");
        let b = with(base(), "thinking", json!({"type": "enabled", "budget_tokens": 1024}));
        assert_eq!(check(SONNET45, &b), Ok(()));
    }

    #[test]
    fn context_management_needs_model_and_beta() {
        let b = with(base(), "context_management", json!({"edits": []}));
        assert_eq!(check(SONNET45, &b), Err("context_management: Extra inputs are not permitted".into()));
        let b = with(b, "anthropic_beta", json!([BETA_CONTEXT_MANAGEMENT]));
        assert_eq!(check(SONNET45, &b), Ok(()));
        assert_eq!(check(HAIKU45, &b), Ok(()));
        assert!(check(OPUS45, &b).is_err());
        assert!(check(OPUS46, &b).is_err());
    }

    #[test]
    fn effort_needs_opus_4_5_with_beta_or_4_7() {
        let b = with(base(), "output_config", json!({"effort": "high"}));
        assert!(check(OPUS45, &b).is_err());
        assert!(check(SONNET45, &b).is_err());
        assert!(check(OPUS46, &b).is_err());
        assert_eq!(check(OPUS47, &b), Ok(()));
        let b = with(b, "anthropic_beta", json!([BETA_EFFORT]));
        assert_eq!(check(OPUS45, &b), Ok(()));
        assert!(check(SONNET45, &b).is_err());
    }

    #[test]
    fn output_format_rejected_from_4_7() {
        let b = with(base(), "output_config", json!({"format": {"type": "json_schema", "schema": {}}}));
        assert_eq!(check(OPUS55, &b), Err("output_config.format: Extra inputs are not permitted".into()));
        assert_eq!(check(SONNET45, &b), Ok(()));
    }

    #[test]
    fn system_role_messages_need_4_7() {
        let b = with(
            base(),
            "messages",
            json!([{"role": "user", "content": "hi"}, {"role": "system", "content": "be brief"}]),
        );
        assert!(check(OPUS46, &b).unwrap_err().contains("messages.1.role"));
        assert_eq!(check(OPUS55, &b), Ok(()));
        let b = with(base(), "messages", json!([{"role": "tool", "content": "x"}]));
        assert!(check(OPUS55, &b).is_err());
    }
}
