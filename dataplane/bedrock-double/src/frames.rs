//! `application/vnd.amazon.eventstream` frames as Bedrock Runtime sends them.

use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use base64::Engine as _;
use bytes::Bytes;

/// Encodes one event-stream message (prelude, headers, payload, CRCs).
pub fn encode_message(message: &Message) -> Bytes {
    let mut buf: Vec<u8> = Vec::with_capacity(64 + message.payload().len());
    aws_smithy_eventstream::frame::write_message_to(message, &mut buf)
        .expect("the double only builds frames well inside the size limits");
    Bytes::from(buf)
}

fn string_header(name: &'static str, value: impl Into<String>) -> Header {
    Header::new(name, HeaderValue::String(value.into().into()))
}

/// Random-length padding of ASCII letters, like Bedrock's `p` field.
pub fn random_padding() -> String {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let len = fastrand::usize(1..=LETTERS.len());
    // Real frames use a prefix of the alphabet, e.g. "abcdefghijklmnopqrstuv".
    String::from_utf8(LETTERS[..len].to_vec()).expect("ascii letters")
}

/// The payload of a data frame: `{"bytes":"<base64>","p":"<padding>"}`.
pub fn chunk_payload(event_json: &[u8], padding: &str) -> String {
    debug_assert!(padding.bytes().all(|b| b.is_ascii_alphanumeric()));
    let b64 = base64::engine::general_purpose::STANDARD.encode(event_json);
    format!("{{\"bytes\":\"{b64}\",\"p\":\"{padding}\"}}")
}

/// A data (`chunk`) message carrying one Anthropic stream event, with the
/// given padding.
pub fn chunk_message(event_json: &[u8], padding: &str) -> Message {
    Message::new(chunk_payload(event_json, padding).into_bytes())
        .add_header(string_header(":event-type", "chunk"))
        .add_header(string_header(":content-type", "application/json"))
        .add_header(string_header(":message-type", "event"))
}

/// An encoded data frame with random padding.
pub fn chunk_frame(event_json: &[u8]) -> Bytes {
    encode_message(&chunk_message(event_json, &random_padding()))
}

/// A modeled exception message (`:message-type` = `exception`), e.g.
/// `throttlingException` with payload `{"message":"…"}`.
pub fn exception_message(exception_type: &str, message: &str) -> Message {
    let mut payload = serde_json::json!({ "message": message });
    if exception_type == "modelStreamErrorException" {
        payload["originalStatusCode"] = serde_json::json!(500);
        payload["originalMessage"] = serde_json::json!(message);
    }
    Message::new(payload.to_string().into_bytes())
        .add_header(string_header(":exception-type", exception_type.to_string()))
        .add_header(string_header(":content-type", "application/json"))
        .add_header(string_header(":message-type", "exception"))
}

/// An encoded exception frame.
pub fn exception_frame(exception_type: &str, message: &str) -> Bytes {
    encode_message(&exception_message(exception_type, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::read_message_from;

    #[test]
    fn chunk_frame_round_trips_through_smithy_reader() {
        let event = br#"{"type":"message_stop"}"#;
        let frame = encode_message(&chunk_message(event, "abc"));
        let msg = read_message_from(frame.clone()).unwrap();
        let names: Vec<&str> = msg.headers().iter().map(|h| h.name().as_str()).collect();
        assert_eq!(names, [":event-type", ":content-type", ":message-type"]);
        let payload: serde_json::Value = serde_json::from_slice(msg.payload()).unwrap();
        let decoded = base64::engine::general_purpose::STANDARD.decode(payload["bytes"].as_str().unwrap()).unwrap();
        assert_eq!(decoded, event);
        assert_eq!(payload["p"], "abc");
        // total length is the first u32
        assert_eq!(u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize, frame.len());
    }

    #[test]
    fn exception_frame_has_modeled_headers() {
        let msg = read_message_from(exception_frame("throttlingException", "slow down")).unwrap();
        let get = |n: &str| {
            msg.headers()
                .iter()
                .find(|h| h.name().as_str() == n)
                .and_then(|h| h.value().as_string().ok())
                .map(|s| s.as_str().to_string())
        };
        assert_eq!(get(":message-type").as_deref(), Some("exception"));
        assert_eq!(get(":exception-type").as_deref(), Some("throttlingException"));
        assert_eq!(get(":content-type").as_deref(), Some("application/json"));
        let payload: serde_json::Value = serde_json::from_slice(msg.payload()).unwrap();
        assert_eq!(payload["message"], "slow down");
    }

    #[test]
    fn padding_is_letters_of_random_length() {
        for _ in 0..50 {
            let p = random_padding();
            assert!(!p.is_empty() && p.len() <= 52);
            assert!(p.bytes().all(|b| b.is_ascii_alphabetic()));
        }
    }
}
