//! Decoding the `application/vnd.amazon.eventstream` body of
//! InvokeModelWithResponseStream into events, as the bytes arrive.
//!
//! Each frame is `total length (u32) | headers length (u32) | prelude CRC |
//! headers | payload | message CRC`. Bedrock sends three kinds:
//!
//! - `:message-type` `event`, `:event-type` `chunk`: the payload is
//!   `{"bytes":"<base64 of one Anthropic event's JSON>","p":"<padding>"}`;
//! - `:message-type` `exception`: `:exception-type` names it (e.g.
//!   `throttlingException`) and the payload is `{"message":"…"}`;
//! - `:message-type` `error`: `:error-code` and `:error-message` headers.
//!
//! The prelude is checked (CRC, length within [`MAX_FRAME_BYTES`]) as soon
//! as its 12 bytes are in, so a corrupt length fails at once instead of making
//! the decoder wait for bytes that will never come. A framing error leaves
//! the stream unreadable (there is no way to find the next frame), so it is
//! sticky: every later call returns it again. A chunk whose payload is bad
//! fails alone; the frames after it still decode.

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::{HeaderValue, Message};
use bytes::{Buf, Bytes, BytesMut};
use serde::Deserialize;
use std::borrow::Cow;

/// The largest frame accepted: the event-stream format's own limit on a
/// message (16 MiB). Bedrock's chunks are a few hundred bytes.
pub const MAX_FRAME_BYTES: u32 = 16 * 1024 * 1024;

const PRELUDE_BYTES: usize = 12;
/// Prelude plus the trailing message CRC: the smallest possible frame.
const MIN_FRAME_BYTES: u32 = 16;

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// The JSON of one Anthropic event (the base64-decoded `bytes` of a `chunk` frame).
    Chunk(Bytes),
    /// An exception frame (`:message-type` = `exception`): `:exception-type`
    /// (e.g. `throttlingException`) and the `message` from its JSON payload.
    /// A missing header gives an empty `code`; a payload that is not JSON with
    /// a string `message` is given as text.
    Exception { code: String, message: String },
    /// An `:message-type` = `error` frame: `:error-code` and `:error-message`
    /// (empty when missing).
    Error { code: String, message: String },
    /// A well-formed event of a type this gateway does not know: skipped by the caller.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The prelude, headers or a CRC do not check out. Sticky.
    #[error("corrupt event-stream frame: {0}")]
    Corrupt(String),
    /// The prelude announces a frame above [`MAX_FRAME_BYTES`]. Sticky.
    #[error("event-stream frame of {0} bytes exceeds the limit of {MAX_FRAME_BYTES} bytes")]
    FrameTooLarge(u32),
    /// A well-framed `chunk` whose payload is not `{"bytes":"<base64>"}`.
    /// Only this frame is lost.
    #[error("bad chunk payload: {0}")]
    BadChunk(String),
}

/// Incremental decoder: [`push`](Decoder::push) body bytes as they arrive,
/// then call [`next_event`](Decoder::next_event) until it gives `Ok(None)`.
#[derive(Default)]
pub struct Decoder {
    buf: BytesMut,
    frames: MessageFrameDecoder,
    failed: Option<DecodeError>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder").field("buffered", &self.buf.len()).field("failed", &self.failed).finish()
    }
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes from the response body.
    pub fn push(&mut self, data: Bytes) {
        if self.failed.is_some() || data.is_empty() {
            return;
        }
        if self.buf.is_empty() {
            // The common case (a body chunk holding whole frames): take the
            // chunk over without copying it when nothing else shares it.
            match data.try_into_mut() {
                Ok(owned) => self.buf = owned,
                Err(shared) => self.buf.extend_from_slice(&shared),
            }
        } else {
            self.buf.extend_from_slice(&data);
        }
    }

    /// The next complete event, Ok(None) when more bytes are needed.
    pub fn next_event(&mut self) -> Result<Option<StreamEvent>, DecodeError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let Some(total) = self.check_prelude()? else {
            return Ok(None);
        };
        if self.buf.len() < total {
            return Ok(None);
        }
        // The whole frame is buffered: the smithy decoder reads exactly it.
        let decoded = self.frames.decode_frame((&mut self.buf).take(total));
        let message = match decoded {
            Ok(DecodedFrame::Complete(m)) => m,
            Ok(DecodedFrame::Incomplete) => return Err(self.fail(DecodeError::Corrupt("incomplete frame".into()))),
            Err(e) => return Err(self.fail(DecodeError::Corrupt(e.to_string()))),
        };
        event_of(&message).map(Some)
    }

    /// True when buffered bytes remain that are not a complete frame (a stream cut mid-frame).
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Bytes held, waiting to complete a frame. Never reaches
    /// [`MAX_FRAME_BYTES`] once `next_event` has returned `Ok(None)`.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Checks the prelude at the head of the buffer; returns the frame's
    /// total length, or `None` while the prelude is incomplete.
    fn check_prelude(&mut self) -> Result<Option<usize>, DecodeError> {
        let Some(prelude) = self.buf.get(..PRELUDE_BYTES) else {
            return Ok(None);
        };
        let word = |i: usize| u32::from_be_bytes([prelude[i], prelude[i + 1], prelude[i + 2], prelude[i + 3]]);
        let (total, headers, crc) = (word(0), word(4), word(8));
        if crc32fast::hash(&prelude[..8]) != crc {
            return Err(self.fail(DecodeError::Corrupt("prelude checksum mismatch".into())));
        }
        if total > MAX_FRAME_BYTES {
            return Err(self.fail(DecodeError::FrameTooLarge(total)));
        }
        if total < MIN_FRAME_BYTES || headers > total - MIN_FRAME_BYTES {
            return Err(
                self.fail(DecodeError::Corrupt(format!("frame length {total} cannot hold {headers} bytes of headers")))
            );
        }
        Ok(Some(total as usize))
    }

    fn fail(&mut self, e: DecodeError) -> DecodeError {
        self.buf = BytesMut::new();
        self.frames = MessageFrameDecoder::new();
        self.failed = Some(e.clone());
        e
    }
}

fn header<'m>(message: &'m Message, name: &str) -> Option<&'m str> {
    message.headers().iter().find(|h| h.name().as_str() == name).and_then(|h| match h.value() {
        HeaderValue::String(s) => Some(s.as_str()),
        _ => None,
    })
}

fn event_of(message: &Message) -> Result<StreamEvent, DecodeError> {
    let text = |name: &str| header(message, name).unwrap_or_default().to_owned();
    match header(message, ":message-type") {
        Some("event") if header(message, ":event-type") == Some("chunk") => chunk_of(message.payload()),
        Some("exception") => {
            Ok(StreamEvent::Exception { code: text(":exception-type"), message: exception_message(message.payload()) })
        }
        Some("error") => Ok(StreamEvent::Error { code: text(":error-code"), message: text(":error-message") }),
        _ => Ok(StreamEvent::Unknown),
    }
}

fn chunk_of(payload: &[u8]) -> Result<StreamEvent, DecodeError> {
    #[derive(Deserialize)]
    struct Payload<'a> {
        // Borrowed unless the JSON escapes something (`\/` is legal in base64 text).
        #[serde(borrow)]
        bytes: Option<Cow<'a, str>>,
    }
    let p: Payload = serde_json::from_slice(payload).map_err(|e| DecodeError::BadChunk(e.to_string()))?;
    let b64 = p.bytes.ok_or_else(|| DecodeError::BadChunk("no `bytes` field".into()))?;
    let raw = aws_smithy_types::base64::decode(b64.as_ref()).map_err(|e| DecodeError::BadChunk(e.to_string()))?;
    Ok(StreamEvent::Chunk(Bytes::from(raw)))
}

fn exception_message(payload: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Payload<'a> {
        #[serde(borrow)]
        message: Option<Cow<'a, str>>,
    }
    match serde_json::from_slice::<Payload>(payload) {
        Ok(Payload { message: Some(m) }) => m.into_owned(),
        _ => String::from_utf8_lossy(payload).trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_types::event_stream::Header;
    use ccag_bedrock_double::frames;

    const EVENTS: &[&str] = &[
        r#"{"type":"message_start","message":{"id":"msg_bdrk_01","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"usage":{"input_tokens":12,"output_tokens":1}}}"#,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello\n"}}"#,
        r#"{"type":"content_block_stop","index":0}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":3}}"#,
        r#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":12,"outputTokenCount":3,"invocationLatency":300,"firstByteLatency":100}}"#,
    ];

    fn stream() -> Vec<u8> {
        EVENTS.iter().flat_map(|e| frames::chunk_frame(e.as_bytes()).to_vec()).collect()
    }

    fn chunks() -> Vec<StreamEvent> {
        EVENTS.iter().map(|e| StreamEvent::Chunk(Bytes::from_static(e.as_bytes()))).collect()
    }

    /// Everything the decoder yields until it needs bytes or fails.
    fn drain(d: &mut Decoder) -> Result<Vec<StreamEvent>, DecodeError> {
        let mut out = Vec::new();
        while let Some(e) = d.next_event()? {
            out.push(e);
        }
        Ok(out)
    }

    fn message(headers: &[(&'static str, &str)], payload: &[u8]) -> Bytes {
        let mut m = Message::new(payload.to_vec());
        for (k, v) in headers {
            m = m.add_header(Header::new(*k, HeaderValue::String(v.to_string().into())));
        }
        frames::encode_message(&m)
    }

    #[test]
    fn chunk_frames_from_the_double_decode_to_their_events() {
        let mut d = Decoder::new();
        d.push(Bytes::from(stream()));
        assert_eq!(drain(&mut d).unwrap(), chunks());
        assert!(!d.has_partial());
    }

    #[test]
    fn frames_split_at_every_byte_boundary_decode_the_same() {
        let all = stream();
        for cut in 0..=all.len() {
            let mut d = Decoder::new();
            d.push(Bytes::copy_from_slice(&all[..cut]));
            let mut got = drain(&mut d).unwrap();
            d.push(Bytes::copy_from_slice(&all[cut..]));
            got.extend(drain(&mut d).unwrap());
            assert_eq!(got, chunks(), "cut at {cut}");
            assert!(!d.has_partial());
        }
    }

    #[test]
    fn one_byte_at_a_time_decodes_the_same() {
        let mut d = Decoder::new();
        let mut got = Vec::new();
        for b in stream() {
            d.push(Bytes::copy_from_slice(&[b]));
            got.extend(drain(&mut d).unwrap());
        }
        assert_eq!(got, chunks());
    }

    #[test]
    fn exception_frames_give_their_type_and_message() {
        let mut d = Decoder::new();
        d.push(frames::exception_frame("throttlingException", "Too many requests, please wait."));
        d.push(frames::exception_frame("modelStreamErrorException", "boom"));
        assert_eq!(
            drain(&mut d).unwrap(),
            [
                StreamEvent::Exception {
                    code: "throttlingException".into(),
                    message: "Too many requests, please wait.".into()
                },
                StreamEvent::Exception { code: "modelStreamErrorException".into(), message: "boom".into() },
            ]
        );
    }

    #[test]
    fn exception_without_json_payload_keeps_its_text() {
        let mut d = Decoder::new();
        d.push(message(&[(":message-type", "exception"), (":exception-type", "internalServerException")], b"oops"));
        assert_eq!(
            d.next_event().unwrap(),
            Some(StreamEvent::Exception { code: "internalServerException".into(), message: "oops".into() })
        );
    }

    #[test]
    fn error_frames_give_their_code_and_message_headers() {
        let mut d = Decoder::new();
        d.push(message(
            &[(":message-type", "error"), (":error-code", "InternalFailure"), (":error-message", "it broke")],
            b"",
        ));
        assert_eq!(
            d.next_event().unwrap(),
            Some(StreamEvent::Error { code: "InternalFailure".into(), message: "it broke".into() })
        );
    }

    #[test]
    fn unknown_event_types_are_reported_as_unknown_and_skippable() {
        let mut d = Decoder::new();
        d.push(message(&[(":message-type", "event"), (":event-type", "initial-response")], b"{}"));
        d.push(frames::chunk_frame(EVENTS[3].as_bytes()));
        assert_eq!(
            drain(&mut d).unwrap(),
            [StreamEvent::Unknown, StreamEvent::Chunk(Bytes::from_static(EVENTS[3].as_bytes()))]
        );
    }

    #[test]
    fn escaped_base64_in_the_chunk_payload_is_understood() {
        // `\/` is how some JSON writers spell `/`, which base64 uses.
        let event = [0xffu8, 0xff, 0xff];
        let payload = br#"{"bytes":"\/\/\/\/","p":"ab"}"#;
        let mut d = Decoder::new();
        d.push(message(&[(":message-type", "event"), (":event-type", "chunk")], payload));
        assert_eq!(d.next_event().unwrap(), Some(StreamEvent::Chunk(Bytes::copy_from_slice(&event))));
    }

    #[test]
    fn a_bad_chunk_payload_fails_that_frame_only() {
        let mut d = Decoder::new();
        let chunk = [(":message-type", "event"), (":event-type", "chunk")];
        d.push(message(&chunk, b"not json"));
        d.push(message(&chunk, br#"{"p":"abc"}"#));
        d.push(message(&chunk, br#"{"bytes":"!!!!"}"#));
        d.push(frames::chunk_frame(EVENTS[3].as_bytes()));
        for _ in 0..3 {
            assert!(matches!(d.next_event(), Err(DecodeError::BadChunk(_))));
        }
        assert_eq!(d.next_event().unwrap(), Some(StreamEvent::Chunk(Bytes::from_static(EVENTS[3].as_bytes()))));
    }

    #[test]
    fn a_corrupt_message_crc_is_an_error_and_sticks() {
        let mut frame = frames::chunk_frame(EVENTS[0].as_bytes()).to_vec();
        let last = frame.len() - 1;
        frame[last] ^= 1;
        let mut d = Decoder::new();
        d.push(Bytes::from(frame));
        d.push(frames::chunk_frame(EVENTS[1].as_bytes()));
        assert!(matches!(d.next_event(), Err(DecodeError::Corrupt(_))));
        assert!(matches!(d.next_event(), Err(DecodeError::Corrupt(_))), "no frame boundary can be trusted after");
        assert!(!d.has_partial());
    }

    #[test]
    fn a_corrupt_prelude_fails_before_the_frame_is_complete() {
        let mut frame = frames::chunk_frame(EVENTS[0].as_bytes()).to_vec();
        frame[1] ^= 0x40; // the total length
        let mut d = Decoder::new();
        d.push(Bytes::copy_from_slice(&frame[..PRELUDE_BYTES]));
        assert!(matches!(d.next_event(), Err(DecodeError::Corrupt(m)) if m.contains("prelude")));
    }

    #[test]
    fn a_length_above_the_limit_is_refused_at_once() {
        let total = MAX_FRAME_BYTES + 1;
        let mut prelude = Vec::new();
        prelude.extend_from_slice(&total.to_be_bytes());
        prelude.extend_from_slice(&0u32.to_be_bytes());
        let crc = crc32fast::hash(&prelude);
        prelude.extend_from_slice(&crc.to_be_bytes());
        let mut d = Decoder::new();
        d.push(Bytes::from(prelude));
        assert_eq!(d.next_event(), Err(DecodeError::FrameTooLarge(total)));
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn a_stream_cut_mid_frame_leaves_a_partial_frame() {
        let all = stream();
        let mut d = Decoder::new();
        d.push(Bytes::copy_from_slice(&all[..all.len() - 5]));
        assert_eq!(drain(&mut d).unwrap(), chunks()[..EVENTS.len() - 1]);
        assert!(d.has_partial());
    }
}
