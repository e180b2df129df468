//! The SSE writer (`stream::EventTranslator::event`) and the non-streaming
//! rewrite (`stream::rewrite_message`) on arbitrary Bedrock chunks.
//!
//! Input: one byte choosing the client's model name, then chunks separated
//! by 0xFF (a byte that never occurs in UTF-8, so never inside JSON).
//!
//! Every event written must be exactly `event: <type>\ndata: <data>\n\n`
//! with no CR or LF inside `<type>` or `<data>`. When the chunk is JSON,
//! `<data>` is JSON equal to the chunk apart from the documented rewrites
//! (`message_start`'s `message.model` becomes the client's name,
//! `message_stop` loses `amazon-bedrock-invocationMetrics`), and `<type>` is
//! its `type`. A chunk that is not JSON may be refused, never mis-framed.
#![no_main]

use ccag_dataplane::stream::{rewrite_message, EventTranslator};
use libfuzzer_sys::fuzz_target;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

const METRICS: &str = "amazon-bedrock-invocationMetrics";
const MODELS: &[&str] = &["claude-sonnet-4-5", "opus", "claude-opus-5-5[1m]", "", "a\"b\\c\u{2028}"];

/// Splits one SSE event into its type and data, asserting the framing.
fn frame(out: &[u8]) -> (&str, &[u8]) {
    let rest = out.strip_prefix(b"event: ").expect("starts with `event: `");
    let eol = rest.iter().position(|b| *b == b'\n').expect("event line ends");
    let (kind, rest) = (&rest[..eol], &rest[eol + 1..]);
    let data = rest.strip_prefix(b"data: ").expect("second line is `data: `");
    let data = data.strip_suffix(b"\n\n").expect("ends with a blank line");
    for (what, part) in [("event", kind), ("data", data)] {
        assert!(!part.iter().any(|b| *b == b'\n' || *b == b'\r'), "line break inside the {what} line: {out:?}");
    }
    let kind = std::str::from_utf8(kind).expect("event type is UTF-8");
    assert!(!kind.is_empty(), "empty event type");
    (kind, data)
}

/// How many top-level `type` keys a JSON object has.
fn type_keys(chunk: &[u8]) -> usize {
    struct Count(usize);
    impl<'de> Deserialize<'de> for Count {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Count;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Count, A::Error> {
                    let mut n = 0;
                    while let Some(k) = map.next_key::<std::borrow::Cow<str>>()? {
                        n += usize::from(k == "type");
                        map.next_value::<IgnoredAny>()?;
                    }
                    Ok(Count(n))
                }
            }
            d.deserialize_map(V)
        }
    }
    serde_json::from_slice::<Count>(chunk).map_or(0, |c| c.0)
}

fn check_event(tr: &mut EventTranslator, model: &str, chunk: &[u8]) {
    let input: Option<Value> = serde_json::from_slice(chunk).ok();
    let Ok(out) = tr.event(chunk) else {
        return;
    };
    let (kind, data) = frame(&out);
    if serde_json::from_slice::<IgnoredAny>(chunk).is_ok() {
        assert!(serde_json::from_slice::<IgnoredAny>(data).is_ok(), "JSON chunk, data not JSON: {out:?}");
    }
    let Some(mut want) = input else {
        return;
    };
    let got: Value = serde_json::from_slice(data).unwrap_or_else(|e| panic!("data is not JSON ({e}): {out:?}"));
    // With two `type` keys, the event name comes from the first (read
    // without parsing) and JSON readers take the last: Bedrock never sends
    // such a chunk, and checking for it would cost every delta a parse.
    if type_keys(chunk) == 1 {
        assert_eq!(want.get("type").and_then(Value::as_str), Some(kind), "event name is the JSON type");
    }
    match kind {
        "message_start" => {
            if let Some(m) = want.get_mut("message").and_then(Value::as_object_mut) {
                m.insert("model".into(), model.into());
            }
        }
        "message_stop" => {
            want.as_object_mut().map(|o| o.remove(METRICS));
        }
        _ => {}
    }
    assert_eq!(got, want, "data differs from the chunk: {out:?}");
}

fn check_message(model: &str, body: &[u8]) {
    let input: Option<Value> = serde_json::from_slice(body).ok();
    let Ok((out, _usage)) = rewrite_message(body, model) else {
        assert!(!matches!(input, Some(Value::Object(_))), "a JSON object was refused");
        return;
    };
    // JSON by the grammar; numbers beyond f64 (1e400) are relayed as written.
    assert!(serde_json::from_slice::<IgnoredAny>(&out).is_ok(), "the body is not JSON: {out:?}");
    let Some(mut want) = input else {
        return;
    };
    let got: Value = serde_json::from_slice(&out).expect("the body is JSON");
    let obj = want.as_object_mut().expect("only objects are rewritten");
    obj.remove(METRICS);
    obj.insert("model".into(), model.into());
    assert_eq!(got, want);
}

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let model = MODELS[usize::from(*first) % MODELS.len()];
    let mut tr = EventTranslator::new(model.to_owned());
    for chunk in rest.split(|b| *b == 0xff) {
        check_event(&mut tr, model, chunk);
        check_message(model, chunk);
    }
});
