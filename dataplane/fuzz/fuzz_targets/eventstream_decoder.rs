//! The event-stream decoder (`upstream::eventstream::Decoder`) on arbitrary
//! bytes, twice over:
//!
//! 1. The input as a raw response body, fed whole, one byte at a time, and in
//!    pieces of input-derived sizes: no panic, the same events and errors
//!    every way (differential), and never more than one frame's worth of
//!    bytes held while waiting.
//! 2. The input read (with `arbitrary`) as a list of frames that are encoded
//!    correctly: such a stream never gives a framing error, each chunk frame
//!    decodes to exactly the event it carries, each exception and error
//!    frame to its code and message, and the frame after any frame still
//!    decodes (the decoder never loses its place).
//!
//! Corpus files are raw bodies (frames from the Bedrock double's encoder).
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;
use ccag_dataplane::upstream::eventstream::{DecodeError, Decoder, StreamEvent, MAX_FRAME_BYTES};
use libfuzzer_sys::fuzz_target;

type Outcome = Result<StreamEvent, DecodeError>;

/// Feeds `pieces` in order, draining after each; stops after a framing
/// error (it is sticky). Returns every outcome and whether a partial frame
/// was left.
fn run<'a>(pieces: impl Iterator<Item = &'a [u8]>) -> (Vec<Outcome>, bool) {
    let mut d = Decoder::new();
    let mut out = Vec::new();
    for piece in pieces {
        d.push(Bytes::copy_from_slice(piece));
        loop {
            match d.next_event() {
                Ok(None) => {
                    assert!(d.buffered() < MAX_FRAME_BYTES as usize, "holds {} bytes", d.buffered());
                    break;
                }
                Ok(Some(e)) => out.push(Ok(e)),
                Err(e @ DecodeError::BadChunk(_)) => out.push(Err(e)),
                Err(e) => {
                    // Sticky: asked again, it says the same, and holds nothing.
                    assert_eq!(d.next_event(), Err(e.clone()));
                    assert!(!d.has_partial() && d.buffered() == 0);
                    out.push(Err(e));
                    return (out, false);
                }
            }
        }
    }
    (out, d.has_partial())
}

/// Piece sizes 1..=64 from a xorshift seeded by the data itself.
fn pieces(data: &[u8]) -> Vec<&[u8]> {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ data.len() as u64;
    for b in data.iter().take(16) {
        seed = (seed ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let n = (1 + (seed % 64) as usize).min(rest.len());
        out.push(&rest[..n]);
        rest = &rest[n..];
    }
    out
}

fn differential(data: &[u8]) {
    let whole = run(std::iter::once(data));
    let bytewise = run(data.chunks(1));
    assert_eq!(whole, bytewise, "whole vs one byte at a time");
    let split = run(pieces(data).into_iter());
    assert_eq!(whole, split, "whole vs pieces");
    if data.is_empty() {
        assert_eq!(whole, (vec![], false));
    }
}

/// A header value as a frame may carry it.
#[derive(Arbitrary, Debug)]
enum Value {
    Known(u8),
    Text(String),
    Int(i32),
    Bool(bool),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Frame {
    /// `chunk` frame carrying these event bytes, with padding.
    Chunk {
        event: Vec<u8>,
        padding: u8,
    },
    Exception {
        code: String,
        message: String,
    },
    Error {
        code: String,
        message: String,
    },
    /// Any headers and payload.
    Other {
        headers: Vec<(u8, Value)>,
        payload: Vec<u8>,
    },
}

const NAMES: &[&str] =
    &[":message-type", ":event-type", ":exception-type", ":error-code", ":error-message", ":content-type", "x"];
const VALUES: &[&str] = &["event", "exception", "error", "chunk", "application/json", "initial-response", ""];

fn text(name: &'static str, value: &str) -> Header {
    Header::new(name, HeaderValue::String(value.to_owned().into()))
}

fn encode(m: &Message) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    // Values over the format's limits cannot be encoded; such frames are skipped.
    aws_smithy_eventstream::frame::write_message_to(m, &mut buf).ok()?;
    Some(buf)
}

/// The frame's encoding, and the event it must decode to (None: any
/// outcome but a framing error).
fn build(frame: Frame) -> Option<(Vec<u8>, Option<Outcome>)> {
    match frame {
        Frame::Chunk { event, padding } => {
            let payload = format!(
                "{{\"bytes\":\"{}\",\"p\":\"{}\"}}",
                aws_smithy_types::base64::encode(&event),
                &"abcdefghijklmnopqrstuvwxyz"[..usize::from(padding % 27)]
            );
            let m = Message::new(payload.into_bytes())
                .add_header(text(":event-type", "chunk"))
                .add_header(text(":content-type", "application/json"))
                .add_header(text(":message-type", "event"));
            Some((encode(&m)?, Some(Ok(StreamEvent::Chunk(Bytes::from(event))))))
        }
        Frame::Exception { code, message } => {
            let payload = serde_json::json!({ "message": message }).to_string();
            let m = Message::new(payload.into_bytes())
                .add_header(Header::new(":exception-type", HeaderValue::String(code.clone().into())))
                .add_header(text(":content-type", "application/json"))
                .add_header(text(":message-type", "exception"));
            Some((encode(&m)?, Some(Ok(StreamEvent::Exception { code, message }))))
        }
        Frame::Error { code, message } => {
            let m = Message::new(Bytes::new())
                .add_header(text(":message-type", "error"))
                .add_header(Header::new(":error-code", HeaderValue::String(code.clone().into())))
                .add_header(Header::new(":error-message", HeaderValue::String(message.clone().into())));
            Some((encode(&m)?, Some(Ok(StreamEvent::Error { code, message }))))
        }
        Frame::Other { headers, payload } => {
            let mut m = Message::new(payload);
            for (name, value) in headers {
                let name = NAMES[usize::from(name) % NAMES.len()];
                let value = match value {
                    Value::Known(i) => HeaderValue::String(VALUES[usize::from(i) % VALUES.len()].to_owned().into()),
                    Value::Text(s) => HeaderValue::String(s.into()),
                    Value::Int(i) => HeaderValue::Int32(i),
                    Value::Bool(b) => HeaderValue::Bool(b),
                    Value::Raw(b) => HeaderValue::ByteArray(b.into()),
                };
                m = m.add_header(Header::new(name, value));
            }
            Some((encode(&m)?, None))
        }
    }
}

fn well_formed(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(frames) = Vec::<Frame>::arbitrary(&mut u) else {
        return;
    };
    let (mut body, mut want) = (Vec::new(), Vec::new());
    for f in frames {
        if let Some((bytes, expect)) = build(f) {
            body.extend_from_slice(&bytes);
            want.push(expect);
        }
    }
    let (got, partial) = run(pieces(&body).into_iter());
    assert!(!partial, "a stream of whole frames leaves no partial frame");
    assert_eq!(got.len(), want.len(), "one outcome per frame: {got:?}");
    for (g, w) in got.iter().zip(&want) {
        assert!(
            !matches!(g, Err(DecodeError::Corrupt(_) | DecodeError::FrameTooLarge(_))),
            "well-formed frame refused: {g:?}"
        );
        if let Some(w) = w {
            assert_eq!(g, w);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    differential(data);
    well_formed(data);
});
