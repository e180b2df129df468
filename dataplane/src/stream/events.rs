//! Rewriting single Anthropic events as they come out of Bedrock: the
//! response `model` becomes the client's name, and Bedrock's
//! `amazon-bedrock-invocationMetrics` is read for metering and removed.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;

const METRICS: &str = "amazon-bedrock-invocationMetrics";

pub use crate::usage::Usage;

impl Usage {
    pub(crate) fn merge_anthropic(&mut self, u: &Value) {
        let get = |k: &str| u.get(k).and_then(Value::as_u64);
        if let Some(v) = get("input_tokens") {
            self.input_tokens = v;
        }
        if let Some(v) = get("output_tokens") {
            self.output_tokens = v;
        }
        if let Some(v) = get("cache_creation_input_tokens") {
            self.cache_creation_input_tokens = v;
        }
        if let Some(v) = get("cache_read_input_tokens") {
            self.cache_read_input_tokens = v;
        }
        // The TTL split of the cache writes, priced apart.
        if let Some(v) =
            u.get("cache_creation").and_then(|c| c.get("ephemeral_1h_input_tokens")).and_then(Value::as_u64)
        {
            self.cache_creation_1h_input_tokens = v;
        }
        if let Some(v) = u.get("server_tool_use").and_then(|s| s.get("web_search_requests")).and_then(Value::as_u64) {
            self.web_search_requests = v;
        }
    }

    /// Bedrock's own count is authoritative where it gives one.
    pub(crate) fn merge_metrics(&mut self, m: &Value) {
        let get = |k: &str| m.get(k).and_then(Value::as_u64);
        if let Some(v) = get("inputTokenCount") {
            self.input_tokens = v;
        }
        if let Some(v) = get("outputTokenCount") {
            self.output_tokens = v;
        }
        if let Some(v) = get("cacheWriteInputTokenCount") {
            self.cache_creation_input_tokens = v;
        }
        if let Some(v) = get("cacheReadInputTokenCount") {
            self.cache_read_input_tokens = v;
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("Bedrock sent an event that is not an Anthropic stream event: {0}")]
pub struct BadEvent(String);

pub struct EventTranslator {
    client_model: String,
    pub usage: Usage,
    pub saw_stop: bool,
    /// Payload bytes of the content deltas relayed, for a cut stream's
    /// output estimate.
    delta_bytes: u64,
}

/// The envelope of a content delta event around its text, about.
const DELTA_ENVELOPE: u64 = 64;

impl EventTranslator {
    pub fn new(client_model: String) -> Self {
        EventTranslator { client_model, usage: Usage::default(), saw_stop: false, delta_bytes: 0 }
    }

    /// The usage to charge. A stream that ended before Bedrock's final
    /// counts (the client left, or the stream failed) is charged at least
    /// what it relayed: about four bytes of content per output token.
    pub fn usage_to_charge(&self) -> Usage {
        let mut u = self.usage;
        if !self.saw_stop {
            u.output_tokens = u.output_tokens.max(self.delta_bytes.div_ceil(4));
        }
        u
    }

    /// One Bedrock chunk (the JSON of one Anthropic event) → one SSE event.
    pub fn event(&mut self, chunk: &[u8]) -> Result<Bytes, BadEvent> {
        let single;
        let chunk = if chunk.iter().any(|b| matches!(b, b'\n' | b'\r')) {
            single = single_line(chunk)?;
            &single[..]
        } else {
            chunk
        };
        let kind = event_type(chunk).ok_or_else(|| BadEvent(String::from_utf8_lossy(chunk).into_owned()))?;
        match kind {
            "message_start" => {
                let mut event = Members::parse(chunk)?;
                let message = match event.get("message") {
                    Some(raw) => {
                        let mut msg = Members::parse(raw.as_bytes())?;
                        if let Some(u) = msg.get("usage") {
                            self.usage.merge_anthropic(&parse(u.as_bytes())?);
                        }
                        msg.set("model", json_string(&self.client_model));
                        Some(msg.to_json())
                    }
                    None => None,
                };
                if let Some(message) = message {
                    event.set("message", message);
                }
                Ok(sse("message_start", event.to_json().as_bytes()))
            }
            "message_delta" => {
                // Once or twice a stream; a full parse is cheap enough here.
                let v: Value = parse(chunk)?;
                if let Some(u) = v.get("usage") {
                    self.usage.merge_anthropic(u);
                }
                Ok(sse(kind, chunk))
            }
            "message_stop" => {
                self.saw_stop = true;
                if !contains(chunk, METRICS.as_bytes()) {
                    return Ok(sse(kind, chunk));
                }
                let mut event = Members::parse(chunk)?;
                if let Some(m) = event.remove(METRICS) {
                    self.usage.merge_metrics(&parse(m.as_bytes())?);
                }
                Ok(sse(kind, event.to_json().as_bytes()))
            }
            // Content deltas are the bulk of a stream: relayed byte for byte.
            _ => {
                if kind == "content_block_delta" {
                    self.delta_bytes += (chunk.len() as u64).saturating_sub(DELTA_ENVELOPE);
                }
                Ok(sse(kind, chunk))
            }
        }
    }
}

/// A non-streaming Bedrock response → the client's body, plus its usage.
pub fn rewrite_message(body: &[u8], client_model: &str) -> Result<(Bytes, Usage), BadEvent> {
    let mut msg = Members::parse(body)?;
    let mut usage = Usage::default();
    if let Some(m) = msg.remove(METRICS) {
        usage.merge_metrics(&parse(m.as_bytes())?);
    }
    if let Some(u) = msg.get("usage") {
        usage.merge_anthropic(&parse(u.as_bytes())?);
    }
    msg.set("model", json_string(client_model));
    Ok((Bytes::from(msg.to_json()), usage))
}

/// The members of a JSON object in order, each value as its exact text.
/// Editing a response through this leaves everything not edited as Bedrock
/// wrote it: a `serde_json::Value` round trip would rewrite numbers (an
/// integer above u64, a float's last digit) inside tool inputs.
struct Members<'a>(Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'a> Members<'a> {
    fn parse(json: &'a [u8]) -> Result<Self, BadEvent> {
        serde_json::from_slice(json).map_err(|e| BadEvent(e.to_string()))
    }

    /// The value of `key` (the last, as JSON readers take it).
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_ref())
    }

    fn remove(&mut self, key: &str) -> Option<Cow<'a, str>> {
        let mut last = None;
        self.0.retain_mut(|(k, v)| {
            if k != key {
                return true;
            }
            last = Some(std::mem::take(v));
            false
        });
        last
    }

    /// Sets `key` to the JSON text `value`, in place of its (last) value.
    fn set(&mut self, key: &str, value: String) {
        let Some(at) = self.0.iter().rposition(|(k, _)| k == key) else {
            self.0.push((Cow::Owned(key.to_owned()), Cow::Owned(value)));
            return;
        };
        self.0[at].1 = Cow::Owned(value);
        let mut i = 0;
        self.0.retain(|(k, _)| {
            i += 1;
            k != key || i - 1 == at
        });
    }

    fn to_json(&self) -> String {
        let mut out = String::with_capacity(2 + self.0.iter().map(|(k, v)| k.len() + v.len() + 4).sum::<usize>());
        out.push('{');
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&json_string(k));
            out.push(':');
            out.push_str(v);
        }
        out.push('}');
        out
    }
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::new();
                while let Some(k) = map.next_key::<Cow<'de, str>>()? {
                    let v: &'de RawValue = map.next_value()?;
                    members.push((k, Cow::Borrowed(v.get())));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(Visit)
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// A chunk holding CR or LF, on one line. SSE ends a `data:` line at either,
/// so relaying it would cut the event in two. In valid JSON they can only be
/// whitespace between tokens (inside a string they must be escaped), so
/// dropping them leaves the same JSON; a chunk that is not valid JSON is
/// refused. Bedrock writes compact JSON: its chunks never come this way.
fn single_line(chunk: &[u8]) -> Result<Vec<u8>, BadEvent> {
    serde_json::from_slice::<serde::de::IgnoredAny>(chunk).map_err(|e| BadEvent(e.to_string()))?;
    Ok(chunk.iter().copied().filter(|b| !matches!(b, b'\n' | b'\r')).collect())
}

fn parse(b: &[u8]) -> Result<Value, BadEvent> {
    serde_json::from_slice(b).map_err(|e| BadEvent(e.to_string()))
}

/// One SSE event of type `kind` with the one-line JSON `data`.
pub fn sse(kind: &str, data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(kind.len() + data.len() + 16);
    out.put_slice(b"event: ");
    out.put_slice(kind.as_bytes());
    out.put_slice(b"\ndata: ");
    out.put_slice(data);
    out.put_slice(b"\n\n");
    out.freeze()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The event's `type`. Bedrock writes it first (`{"type":"…"`), which is
/// read without parsing the event; anything else falls back to a parse.
fn event_type(chunk: &[u8]) -> Option<&str> {
    const PREFIX: &[u8] = br#"{"type":""#;
    if let Some(rest) = chunk.strip_prefix(PREFIX) {
        let end = rest.iter().position(|b| *b == b'"')?;
        let t = std::str::from_utf8(&rest[..end]).ok()?;
        if !t.is_empty() && !t.contains('\\') {
            return Some(t);
        }
    }
    #[derive(Deserialize)]
    struct Typed<'a> {
        #[serde(rename = "type", borrow)]
        kind: &'a str,
    }
    serde_json::from_slice::<Typed>(chunk).ok().map(|t| t.kind).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr() -> EventTranslator {
        EventTranslator::new("claude-sonnet-4-5".into())
    }

    fn data(b: &Bytes) -> Value {
        let s = std::str::from_utf8(b).unwrap();
        let line = s.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
        serde_json::from_str(line).unwrap()
    }

    #[test]
    fn deltas_are_relayed_byte_for_byte() {
        let chunk = br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#;
        let out = tr().event(chunk).unwrap();
        assert_eq!(&out[..], [b"event: content_block_delta\ndata: ".as_slice(), chunk, b"\n\n"].concat());
    }

    #[test]
    fn a_chunk_with_line_breaks_is_sent_on_one_data_line() {
        let chunk = b"{\"type\":\"content_block_delta\",\r\n \"index\":0,\n\"delta\":{\"type\":\"text_delta\",\"text\":\"a\\nb\"}}\n";
        let out = tr().event(chunk).unwrap();
        assert_eq!(
            &out[..],
            b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\", \"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"a\\nb\"}}\n\n"
        );
        assert_eq!(data(&out), serde_json::from_slice::<Value>(chunk).unwrap());
        let mut t = tr();
        let start = t.event(b"{\"type\":\"message_start\",\n\"message\":{\"model\":\"x\"}}").unwrap();
        assert_eq!(&start[..], b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-sonnet-4-5\"}}\n\n");
    }

    #[test]
    fn a_chunk_with_a_raw_line_break_inside_a_string_is_refused() {
        // Not JSON, and relaying it would end the data line early.
        assert!(tr().event(b"{\"type\":\"content_block_delta\",\"delta\":{\"text\":\"a\nevent: x\"}}").is_err());
        assert!(tr().event(b"{\"type\":\"message_delta\",\"x\":\"\r\"}").is_err());
    }

    #[test]
    fn message_start_carries_the_client_model_name_and_input_usage() {
        let mut t = tr();
        let out = t
            .event(br#"{"type":"message_start","message":{"model":"claude-sonnet-4-5-20250929","usage":{"input_tokens":25,"output_tokens":1}}}"#)
            .unwrap();
        assert_eq!(data(&out)["message"]["model"], "claude-sonnet-4-5");
        assert_eq!(t.usage.input_tokens, 25);
    }

    #[test]
    fn message_delta_usage_is_cumulative() {
        let mut t = tr();
        t.event(br#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":5}}"#).unwrap();
        t.event(br#"{"type":"message_delta","delta":{},"usage":{"output_tokens":9}}"#).unwrap();
        assert_eq!(t.usage.output_tokens, 9);
    }

    #[test]
    fn invocation_metrics_are_metered_and_stripped() {
        let mut t = tr();
        let out = t
            .event(br#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":9,"outputTokenCount":5,"cacheReadInputTokenCount":3,"invocationLatency":321,"firstByteLatency":123}}"#)
            .unwrap();
        assert_eq!(&out[..], b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
        assert_eq!(
            t.usage,
            Usage { input_tokens: 9, output_tokens: 5, cache_read_input_tokens: 3, ..Default::default() }
        );
        assert!(t.saw_stop);
    }

    #[test]
    fn event_type_is_found_when_not_first() {
        let out = tr().event(br#"{"index":0,"type":"content_block_stop"}"#).unwrap();
        assert!(out.starts_with(b"event: content_block_stop\n"));
    }

    #[test]
    fn untyped_chunk_is_an_error() {
        assert!(tr().event(b"{}").is_err());
        // `event: ` with nothing after it would read as the SSE default type.
        assert!(tr().event(br#"{"type":""}"#).is_err());
        assert!(tr().event(br#"{"index":0,"type":""}"#).is_err());
        assert!(tr().event(b"not json").is_err());
    }

    #[test]
    fn rewritten_events_and_bodies_keep_numbers_and_order_as_bedrock_wrote_them() {
        // A Value round trip turned the integer into 1.2345678901234568e29
        // and moved the last digit of the float.
        let input = r#"{"x":123456789012345678901234567890,"f":3.3333333333333330e52,"t":"a\u00e9"}"#;
        let body = format!(
            r#"{{"id":"msg_bdrk_1","model":"claude-x","content":[{{"type":"tool_use","name":"T","input":{input}}}],"usage":{{"input_tokens":3,"output_tokens":4}},"{METRICS}":{{"inputTokenCount":3}}}}"#
        );
        let (out, _) = rewrite_message(body.as_bytes(), "sonnet").unwrap();
        let want = format!(
            r#"{{"id":"msg_bdrk_1","model":"sonnet","content":[{{"type":"tool_use","name":"T","input":{input}}}],"usage":{{"input_tokens":3,"output_tokens":4}}}}"#
        );
        assert_eq!(std::str::from_utf8(&out).unwrap(), want);

        let start =
            format!(r#"{{"type":"message_start","message":{{"id":"m","model":"claude-x","content":[{input}]}}}}"#);
        let out = tr().event(start.as_bytes()).unwrap();
        let want = format!(
            r#"{{"type":"message_start","message":{{"id":"m","model":"claude-sonnet-4-5","content":[{input}]}}}}"#
        );
        assert_eq!(std::str::from_utf8(&out).unwrap(), format!("event: message_start\ndata: {want}\n\n"));
    }

    #[test]
    fn a_duplicated_model_is_replaced_once() {
        let (out, _) = rewrite_message(br#"{"model":"a","id":"x","model":"b"}"#, "sonnet").unwrap();
        assert_eq!(&out[..], br#"{"id":"x","model":"sonnet"}"#);
    }

    #[test]
    fn non_streaming_body_gets_client_model_and_usage() {
        let (b, u) = rewrite_message(
            br#"{"id":"msg_bdrk_1","model":"claude-x","usage":{"input_tokens":3,"output_tokens":4,"cache_read_input_tokens":1}}"#,
            "sonnet",
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["model"], "sonnet");
        assert_eq!((u.input_tokens, u.output_tokens, u.cache_read_input_tokens), (3, 4, 1));
    }
}
