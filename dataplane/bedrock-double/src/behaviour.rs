//! What the double answers: directives read from the request, the token
//! estimate, the planned reply and the Anthropic events that carry it.

use base64::Engine as _;
use serde_json::{json, Value};

/// Default reply text.
pub const DEFAULT_REPLY: &str = "Hello from the Bedrock double.";
/// Text of the thinking block.
pub const THINKING_TEXT: &str = "Let me think about this.";
/// The two `input_json_delta` fragments of a tool_use reply; concatenated
/// they are `{"command": "echo hi"}`.
pub const TOOL_INPUT_PARTS: [&str; 2] = ["{\"command\": ", "\"echo hi\"}"];

/// A mid-stream exception requested with `[double:stream_error=TYPE,after=N]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamErrorDirective {
    /// e.g. `throttlingException`.
    pub exception_type: String,
    /// Number of data frames sent before the exception frame.
    pub after: usize,
}

/// Test steering read from `[double:…]` markers in the last user message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    /// `[double:error=NAME]`: HTTP error before any stream (invoke, stream).
    pub error: Option<String>,
    /// `[double:count_tokens_error=NAME]`: the same, for CountTokens only.
    pub count_tokens_error: Option<String>,
    /// `[double:too_long]`.
    pub too_long: bool,
    pub stream_error: Option<StreamErrorDirective>,
    /// `[double:tool=NAME]`.
    pub tool: Option<String>,
    /// `[double:delay_ms=N]`: overrides `ttft_ms`.
    pub delay_ms: Option<u64>,
    /// `[double:inter_token_ms=N]`.
    pub inter_token_ms: Option<u64>,
    /// `[double:chunks=N]`.
    pub chunks: Option<usize>,
    /// `[double:reply_chars=N]`: a text reply of N characters instead of
    /// the default sentence (at most [`MAX_REPLY_CHARS`]).
    pub reply_chars: Option<usize>,
    /// `[double:cut_after=N]`: the connection is dropped after N stream
    /// frames, with no exception frame and no end of stream.
    pub cut_after: Option<usize>,
}

/// Upper bound of `[double:reply_chars=N]`.
pub const MAX_REPLY_CHARS: usize = 256 * 1024 * 1024;

/// Parses every `[double:KEY]` / `[double:KEY=VALUE]` marker in `text`.
/// Unknown keys and unparsable numbers are ignored.
pub fn parse_directives(text: &str) -> Directives {
    const OPEN: &str = "[double:";
    let mut d = Directives::default();
    let mut rest = text;
    while let Some(pos) = rest.find(OPEN) {
        let after_open = &rest[pos + OPEN.len()..];
        let Some(end) = after_open.find(']') else {
            break;
        };
        let inner = after_open[..end].trim();
        rest = &after_open[end + 1..];
        let (key, value) = match inner.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (inner, None),
        };
        match (key, value) {
            ("error", Some(v)) => d.error = Some(v.to_string()),
            ("count_tokens_error", Some(v)) => d.count_tokens_error = Some(v.to_string()),
            ("too_long", _) => d.too_long = true,
            ("stream_error", Some(v)) => {
                let mut parts = v.split(',');
                let exception_type = parts.next().unwrap_or("").trim().to_string();
                let mut after = 0;
                for p in parts {
                    if let Some(n) = p.trim().strip_prefix("after=") {
                        after = n.trim().parse().unwrap_or(0);
                    }
                }
                if !exception_type.is_empty() {
                    d.stream_error = Some(StreamErrorDirective { exception_type, after });
                }
            }
            ("tool", Some(v)) if !v.is_empty() => d.tool = Some(v.to_string()),
            ("delay_ms", Some(v)) => d.delay_ms = v.parse().ok().or(d.delay_ms),
            ("inter_token_ms", Some(v)) => d.inter_token_ms = v.parse().ok().or(d.inter_token_ms),
            ("chunks", Some(v)) => d.chunks = v.parse().ok().or(d.chunks),
            ("reply_chars", Some(v)) => {
                d.reply_chars = v.parse().ok().map(|n: usize| n.min(MAX_REPLY_CHARS)).or(d.reply_chars)
            }
            ("cut_after", Some(v)) => d.cut_after = v.parse().ok().or(d.cut_after),
            _ => {}
        }
    }
    d
}

/// HTTP status and default message for an error directive name; `None` for
/// names the double does not know.
pub fn http_error(name: &str) -> Option<(u16, &'static str)> {
    Some(match name {
        "ThrottlingException" => (429, "Too many requests, please wait before trying again."),
        "ValidationException" => (400, "The double was asked to reject this request."),
        "AccessDeniedException" => (403, "You don't have access to the model with the specified model ID."),
        "ResourceNotFoundException" => (404, "The requested resource could not be found."),
        "ServiceQuotaExceededException" => (400, "Your request exceeds the service quota for your account."),
        "ModelNotReadyException" => (429, "The model is not ready to serve inference requests."),
        "ModelTimeoutException" => (408, "The model timed out while processing the request."),
        "ModelErrorException" => (424, "The model returned an error while processing the request."),
        "InternalServerException" => (500, "An internal server error occurred. Retry your request."),
        "ServiceUnavailableException" => (503, "The service is temporarily unavailable."),
        _ => return None,
    })
}

/// The last message with role `user`.
pub fn last_user_message(body: &Value) -> Option<&Value> {
    body.get("messages")?.as_array()?.iter().rev().find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
}

/// Text of a message: its string content or its `text` blocks joined by
/// newlines (tool results excluded).
pub fn message_text(message: &Value) -> String {
    match message.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn tool_result_content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => {
            blocks.iter().filter_map(|b| b.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n")
        }
        _ => String::new(),
    }
}

/// Text content of the first `tool_result` block of a message, if any.
pub fn tool_result_text(message: &Value) -> Option<String> {
    message
        .get("content")?
        .as_array()?
        .iter()
        .find(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
        .map(|b| tool_result_content_text(b.get("content")))
}

/// Directives of a request body (from its last user message).
pub fn directives_of(body: &Value) -> Directives {
    last_user_message(body).map(|m| parse_directives(&message_text(m))).unwrap_or_default()
}

/// The text of one content block, as the input estimate counts it.
pub fn push_block_text(block: &Value, out: &mut String) {
    match block.get("type").and_then(Value::as_str) {
        Some("text") => {
            if let Some(t) = block.get("text").and_then(Value::as_str) {
                out.push_str(t);
            }
        }
        Some("tool_result") => out.push_str(&tool_result_content_text(block.get("content"))),
        Some("thinking") => {
            if let Some(t) = block.get("thinking").and_then(Value::as_str) {
                out.push_str(t);
            }
        }
        _ => {}
    }
}

fn push_content_text(content: Option<&Value>, out: &mut String) {
    match content {
        Some(Value::String(s)) => out.push_str(s),
        Some(Value::Array(blocks)) => blocks.iter().for_each(|b| push_block_text(b, out)),
        _ => {}
    }
}

/// ceil(chars / 4), at least 1.
pub fn tokens_for_chars(chars: usize) -> u64 {
    (chars as u64).div_ceil(4).max(1)
}

/// Deterministic input-token estimate: ceil(chars of all text content / 4),
/// at least 1. "Text content" is the system prompt (string or text blocks)
/// and, for every message, string content, text blocks, tool_result text and
/// thinking text.
pub fn estimate_input_tokens(body: &Value) -> u64 {
    let mut text = String::new();
    push_content_text(body.get("system"), &mut text);
    if let Some(messages) = body.get("messages").and_then(Value::as_array) {
        for m in messages {
            push_content_text(m.get("content"), &mut text);
        }
    }
    tokens_for_chars(text.chars().count())
}

/// The thinking block of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThinkingPlan {
    /// `None` when `thinking.display == "omitted"`.
    pub text: Option<String>,
    pub signature: String,
}

/// The main content block of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyContent {
    Text(String),
    /// `input` is the JSON of the input in the pieces streamed as
    /// `input_json_delta`s.
    ToolUse {
        id: String,
        name: String,
        input: Vec<String>,
    },
}

impl ReplyContent {
    /// A tool call with the default input (`TOOL_INPUT_PARTS`).
    pub fn tool(name: String) -> ReplyContent {
        ReplyContent::ToolUse {
            id: new_tool_use_id(),
            name,
            input: TOOL_INPUT_PARTS.iter().map(|p| p.to_string()).collect(),
        }
    }

    /// A tool call with `input`, streamed in two pieces.
    pub fn tool_with(name: &str, input: &Value) -> ReplyContent {
        let text = input.to_string();
        let mid = text.char_indices().nth(text.chars().count() / 2).map(|(i, _)| i).unwrap_or(0);
        ReplyContent::ToolUse {
            id: new_tool_use_id(),
            name: name.to_owned(),
            input: vec![text[..mid].to_owned(), text[mid..].to_owned()],
        }
    }
}

/// Everything the double will say in answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub message_id: String,
    pub model: String,
    pub thinking: Option<ThinkingPlan>,
    pub content: ReplyContent,
    /// Uncached input tokens (the cache's share taken off).
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache: crate::cache::CacheUse,
}

impl Reply {
    /// Moves the cached part of the input out of `input_tokens`.
    pub fn with_cache(mut self, cache: crate::cache::CacheUse) -> Self {
        self.input_tokens = self.input_tokens.saturating_sub(cache.read + cache.writes());
        self.cache = cache;
        self
    }

    fn usage_json(&self, output_tokens: u64) -> Value {
        json!({
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache.writes(),
            "cache_read_input_tokens": self.cache.read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cache.write_5m,
                "ephemeral_1h_input_tokens": self.cache.write_1h
            },
            "output_tokens": output_tokens
        })
    }

    pub fn stop_reason(&self) -> &'static str {
        match self.content {
            ReplyContent::Text(_) => "end_turn",
            ReplyContent::ToolUse { .. } => "tool_use",
        }
    }
}

fn random_alnum(n: usize) -> String {
    std::iter::repeat_with(fastrand::alphanumeric).take(n).collect()
}

/// A fresh `msg_bdrk_…` id.
pub fn new_message_id() -> String {
    format!("msg_bdrk_01{}", random_alnum(22))
}

/// A fresh `toolu_bdrk_…` id.
pub fn new_tool_use_id() -> String {
    format!("toolu_bdrk_01{}", random_alnum(22))
}

fn new_signature() -> String {
    let bytes: Vec<u8> = std::iter::repeat_with(|| fastrand::u8(..)).take(96).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Plans the reply for a validated invoke body.
pub fn plan_reply(body: &Value, model_anthropic_id: &str, directives: &Directives) -> Reply {
    let thinking = body.get("thinking").and_then(|t| {
        let ty = t.get("type").and_then(Value::as_str)?;
        if ty != "enabled" && ty != "adaptive" {
            return None;
        }
        let omitted = t.get("display").and_then(Value::as_str) == Some("omitted");
        Some(ThinkingPlan { text: (!omitted).then(|| THINKING_TEXT.to_string()), signature: new_signature() })
    });

    let last_user = last_user_message(body);
    let content = match crate::search::step(body) {
        Some(c) => c,
        None => match last_user.and_then(tool_result_text) {
            Some(result) => ReplyContent::Text(format!("Tool said: {result}")),
            None => match &directives.tool {
                Some(name) => ReplyContent::tool(name.clone()),
                None => match directives.reply_chars {
                    Some(n) => ReplyContent::Text(long_text(n)),
                    None => ReplyContent::Text(DEFAULT_REPLY.to_string()),
                },
            },
        },
    };

    let mut out_chars = match &content {
        ReplyContent::Text(t) => t.chars().count(),
        ReplyContent::ToolUse { input, .. } => input.concat().chars().count(),
    };
    if let Some(ThinkingPlan { text: Some(t), .. }) = &thinking {
        out_chars += t.chars().count();
    }

    Reply {
        message_id: new_message_id(),
        model: model_anthropic_id.to_string(),
        thinking,
        content,
        input_tokens: estimate_input_tokens(body),
        output_tokens: tokens_for_chars(out_chars),
        cache: Default::default(),
    }
}

/// `n` characters of the default reply, repeated (`n` ≥ 1).
pub fn long_text(n: usize) -> String {
    let unit = format!("{DEFAULT_REPLY} ");
    let n = n.max(1);
    // ASCII: characters are bytes, and whole copies are fast.
    let mut text = unit.repeat(n / unit.len() + 1);
    text.truncate(n);
    text
}

/// Splits `text` into `n` non-empty pieces of near-equal length (fewer when
/// the text is shorter than `n` characters; at least one piece).
pub fn split_chunks(text: &str, n: usize) -> Vec<String> {
    // Walks char boundaries rather than collecting chars, so that a long
    // `reply_chars` text costs no more than its pieces; ASCII needs no walk.
    if text.is_ascii() {
        let n = n.max(1).min(text.len().max(1));
        let (base, extra) = (text.len() / n, text.len() % n);
        let mut start = 0;
        return (0..n)
            .map(|i| {
                let end = start + base + usize::from(i < extra);
                let piece = text[start..end].to_owned();
                start = end;
                piece
            })
            .collect();
    }
    let total = text.chars().count();
    let n = n.max(1).min(total.max(1));
    let base = total / n;
    let extra = total % n;
    let mut out = Vec::with_capacity(n);
    let mut chars = text.char_indices().map(|(i, _)| i).chain(std::iter::once(text.len()));
    let mut start = chars.next().unwrap_or(0);
    for i in 0..n {
        let len = base + usize::from(i < extra);
        let end = if len == 0 { start } else { chars.nth(len - 1).unwrap_or(text.len()) };
        out.push(text[start..end].to_owned());
        start = end;
    }
    out
}

/// The Anthropic stream events for a reply, in order, ending with
/// `message_stop` (without invocation metrics; the server adds them).
pub fn stream_events(reply: &Reply, chunks: usize) -> Vec<Value> {
    let mut ev = Vec::new();
    ev.push(json!({
        "type": "message_start",
        "message": {
            "id": reply.message_id,
            "type": "message",
            "role": "assistant",
            "model": reply.model,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": reply.usage_json(1)
        }
    }));
    let mut index = 0;
    if let Some(th) = &reply.thinking {
        ev.push(json!({"type": "content_block_start", "index": index,
            "content_block": {"type": "thinking", "thinking": ""}}));
        if let Some(text) = &th.text {
            ev.push(json!({"type": "content_block_delta", "index": index,
                "delta": {"type": "thinking_delta", "thinking": text}}));
        }
        ev.push(json!({"type": "content_block_delta", "index": index,
            "delta": {"type": "signature_delta", "signature": th.signature}}));
        ev.push(json!({"type": "content_block_stop", "index": index}));
        index += 1;
    }
    match &reply.content {
        ReplyContent::Text(text) => {
            ev.push(json!({"type": "content_block_start", "index": index,
                "content_block": {"type": "text", "text": ""}}));
            for piece in split_chunks(text, chunks) {
                ev.push(json!({"type": "content_block_delta", "index": index,
                    "delta": {"type": "text_delta", "text": piece}}));
            }
        }
        ReplyContent::ToolUse { id, name, input } => {
            ev.push(json!({"type": "content_block_start", "index": index,
                "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}));
            for part in input {
                ev.push(json!({"type": "content_block_delta", "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": part}}));
            }
        }
    }
    ev.push(json!({"type": "content_block_stop", "index": index}));
    ev.push(json!({
        "type": "message_delta",
        "delta": {"stop_reason": reply.stop_reason(), "stop_sequence": null},
        "usage": {"output_tokens": reply.output_tokens}
    }));
    ev.push(json!({"type": "message_stop"}));
    ev
}

/// Adds Bedrock's `amazon-bedrock-invocationMetrics` to a `message_stop`.
pub fn add_invocation_metrics(
    event: &mut Value,
    reply: &Reply,
    invocation_latency_ms: u64,
    first_byte_latency_ms: u64,
) {
    event["amazon-bedrock-invocationMetrics"] = json!({
        "inputTokenCount": reply.input_tokens,
        "outputTokenCount": reply.output_tokens,
        "cacheReadInputTokenCount": reply.cache.read,
        "cacheWriteInputTokenCount": reply.cache.writes(),
        "invocationLatency": invocation_latency_ms,
        "firstByteLatency": first_byte_latency_ms
    });
}

/// The complete non-streaming Anthropic Message.
pub fn message_json(reply: &Reply) -> Value {
    let mut content = Vec::new();
    if let Some(th) = &reply.thinking {
        content.push(json!({
            "type": "thinking",
            "thinking": th.text.clone().unwrap_or_default(),
            "signature": th.signature
        }));
    }
    match &reply.content {
        ReplyContent::Text(text) => content.push(json!({"type": "text", "text": text})),
        ReplyContent::ToolUse { id, name, input } => {
            let input: Value =
                serde_json::from_str(&input.concat()).expect("tool input parts concatenate to valid JSON");
            content.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
        }
    }
    json!({
        "id": reply.message_id,
        "type": "message",
        "role": "assistant",
        "model": reply.model,
        "content": content,
        "stop_reason": reply.stop_reason(),
        "stop_sequence": null,
        "usage": reply.usage_json(reply.output_tokens)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(content: Value) -> Value {
        json!({
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 100,
            "messages": [{"role": "user", "content": content}]
        })
    }

    fn types(events: &[Value]) -> Vec<String> {
        events
            .iter()
            .map(|e| {
                let t = e["type"].as_str().unwrap().to_string();
                match e["delta"]["type"].as_str() {
                    Some(d) if t == "content_block_delta" => format!("{t}:{d}"),
                    _ => t,
                }
            })
            .collect()
    }

    #[test]
    fn directives_are_parsed() {
        let d = parse_directives(
            "hi [double:stream_error=throttlingException,after=2] [double:chunks=5] \
             [double:delay_ms=7][double:inter_token_ms=3] [double:tool=Bash] [double:too_long] \
             [double:error=ThrottlingException] [double:reply_chars=100] [double:cut_after=4]",
        );
        assert_eq!(d.reply_chars, Some(100));
        assert_eq!(d.cut_after, Some(4));
        assert_eq!(
            d.stream_error,
            Some(StreamErrorDirective { exception_type: "throttlingException".into(), after: 2 })
        );
        assert_eq!(d.chunks, Some(5));
        assert_eq!(d.delay_ms, Some(7));
        assert_eq!(d.inter_token_ms, Some(3));
        assert_eq!(d.tool.as_deref(), Some("Bash"));
        assert!(d.too_long);
        assert_eq!(d.error.as_deref(), Some("ThrottlingException"));
        assert_eq!(parse_directives("no markers"), Directives::default());
    }

    #[test]
    fn directives_come_from_last_user_message_only() {
        let b = json!({"messages": [
            {"role": "user", "content": "[double:error=ThrottlingException]"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "[double:chunks=2]"}]}
        ]});
        let d = directives_of(&b);
        assert_eq!(d.error, None);
        assert_eq!(d.chunks, Some(2));
    }

    #[test]
    fn token_estimate_is_ceil_chars_over_four() {
        // "hello" (5) + "system!" (7) = 12 chars -> 3 tokens
        let mut b = body(json!("hello"));
        b["system"] = json!("system!");
        assert_eq!(estimate_input_tokens(&b), 3);
        assert_eq!(estimate_input_tokens(&body(json!("abcdefghi"))), 3);
        assert_eq!(estimate_input_tokens(&body(json!(""))), 1);
    }

    #[test]
    fn text_reply_event_sequence() {
        let b = body(json!("hi"));
        let r = plan_reply(&b, "claude-sonnet-4-5-20250929", &Directives::default());
        let ev = stream_events(&r, 3);
        assert_eq!(
            types(&ev),
            [
                "message_start",
                "content_block_start",
                "content_block_delta:text_delta",
                "content_block_delta:text_delta",
                "content_block_delta:text_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let text: String = ev.iter().filter_map(|e| e["delta"]["text"].as_str()).collect();
        assert_eq!(text, DEFAULT_REPLY);
        assert!(r.message_id.starts_with("msg_bdrk_"));
        assert_eq!(ev[0]["message"]["model"], "claude-sonnet-4-5-20250929");
        assert_eq!(ev[6]["delta"]["stop_reason"], "end_turn");
    }

    #[test]
    fn thinking_reply_has_thinking_block_first() {
        let mut b = body(json!("hi"));
        b["thinking"] = json!({"type": "adaptive"});
        let r = plan_reply(&b, "m", &Directives::default());
        let t = types(&stream_events(&r, 1));
        assert_eq!(
            &t[..5],
            [
                "message_start",
                "content_block_start",
                "content_block_delta:thinking_delta",
                "content_block_delta:signature_delta",
                "content_block_stop"
            ]
        );
        b["thinking"] = json!({"type": "adaptive", "display": "omitted"});
        let r = plan_reply(&b, "m", &Directives::default());
        let t = types(&stream_events(&r, 1));
        assert_eq!(t[2], "content_block_delta:signature_delta");
    }

    #[test]
    fn tool_directive_gives_tool_use() {
        let b = body(json!("run it [double:tool=Bash]"));
        let r = plan_reply(&b, "m", &directives_of(&b));
        let ev = stream_events(&r, 3);
        assert_eq!(ev[1]["content_block"]["type"], "tool_use");
        assert_eq!(ev[1]["content_block"]["name"], "Bash");
        assert!(ev[1]["content_block"]["id"].as_str().unwrap().starts_with("toolu_"));
        let json: String = ev.iter().filter_map(|e| e["delta"]["partial_json"].as_str()).collect();
        assert_eq!(json, r#"{"command": "echo hi"}"#);
        let msg = message_json(&r);
        assert_eq!(msg["stop_reason"], "tool_use");
        assert_eq!(msg["content"][0]["input"]["command"], "echo hi");
    }

    #[test]
    fn tool_result_is_echoed() {
        let b = body(json!([
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "hi"}]},
            {"type": "text", "text": "[double:tool=Bash]"}
        ]));
        let r = plan_reply(&b, "m", &directives_of(&b));
        assert_eq!(r.content, ReplyContent::Text("Tool said: hi".into()));
        assert_eq!(r.stop_reason(), "end_turn");
    }

    #[test]
    fn reply_chars_gives_a_long_text_of_that_length() {
        let b = body(json!("big [double:reply_chars=1000]"));
        let r = plan_reply(&b, "m", &directives_of(&b));
        let ReplyContent::Text(t) = &r.content else { panic!("text reply expected") };
        assert_eq!(t.chars().count(), 1000);
        assert!(t.starts_with(DEFAULT_REPLY));
        assert_eq!(r.output_tokens, 250);
        let text: String = stream_events(&r, 10).iter().filter_map(|e| e["delta"]["text"].as_str()).collect();
        assert_eq!(&text, t);
    }

    #[test]
    fn chunks_split_evenly_and_never_empty() {
        assert_eq!(split_chunks("abcdefg", 3), ["abc", "de", "fg"]);
        assert_eq!(split_chunks("ab", 5), ["a", "b"]);
        assert_eq!(split_chunks("ab", 0), ["ab"]);
        assert_eq!(split_chunks(DEFAULT_REPLY, 4).concat(), DEFAULT_REPLY);
        assert_eq!(split_chunks("äbcdéfg", 3), ["äbc", "dé", "fg"]);
        assert_eq!(split_chunks("äb", 5), ["ä", "b"]);
    }
}
