//! Golden vectors: two real Bedrock `chunk` frames (captured from Bedrock and
//! published in AI21Labs/ai21-python tests/unittests/test_aws_stream_decoder.py,
//! current and older revision). The double's encoder must reproduce them byte
//! for byte from the same headers and payload.

use aws_smithy_eventstream::frame::{read_message_from, DecodedFrame, MessageFrameDecoder};
use base64::Engine as _;
use bytes::Bytes;
use ccag_bedrock_double::frames;

const FRAME_384: &[u8] = include_bytes!("fixtures/ai21_bedrock_frame_384.bin");
const FRAME_267: &[u8] = include_bytes!("fixtures/ai21_bedrock_frame_267.bin");

struct Golden {
    bytes: &'static [u8],
    len: usize,
    prelude: [u8; 12],
    message_crc: u32,
}

const GOLDEN: [Golden; 2] = [
    Golden {
        bytes: FRAME_384,
        len: 384,
        prelude: [0x00, 0x00, 0x01, 0x80, 0x00, 0x00, 0x00, 0x4b, 0xfe, 0x96, 0x24, 0x46],
        message_crc: 0x35ca_a798,
    },
    Golden {
        bytes: FRAME_267,
        len: 267,
        prelude: [0x00, 0x00, 0x01, 0x0b, 0x00, 0x00, 0x00, 0x4b, 0x38, 0xa0, 0xa5, 0xc5],
        message_crc: 0x1106_313f,
    },
];

#[test]
fn fixtures_are_the_published_frames() {
    for g in &GOLDEN {
        assert_eq!(g.bytes.len(), g.len);
        assert_eq!(&g.bytes[..12], &g.prelude);
        let crc = u32::from_be_bytes(g.bytes[g.len - 4..].try_into().unwrap());
        assert_eq!(crc, g.message_crc);
    }
}

#[test]
fn reencoding_decoded_golden_frames_is_byte_identical() {
    for g in &GOLDEN {
        let msg = read_message_from(Bytes::from_static(g.bytes)).expect("golden frame decodes");
        let again = frames::encode_message(&msg);
        assert_eq!(&again[..], g.bytes, "frame of {} bytes", g.len);
    }
}

#[test]
fn chunk_builder_reproduces_golden_frames_from_event_and_padding() {
    for g in &GOLDEN {
        let msg = read_message_from(Bytes::from_static(g.bytes)).unwrap();
        let payload: serde_json::Value = serde_json::from_slice(msg.payload()).unwrap();
        let event = base64::engine::general_purpose::STANDARD.decode(payload["bytes"].as_str().unwrap()).unwrap();
        let padding = payload["p"].as_str().unwrap();
        assert!(padding.bytes().all(|b| b.is_ascii_alphabetic()));
        let built = frames::encode_message(&frames::chunk_message(&event, padding));
        assert_eq!(&built[..], g.bytes, "frame of {} bytes", g.len);
    }
}

#[test]
fn streaming_decoder_splits_concatenated_golden_frames() {
    let mut wire = Vec::new();
    wire.extend_from_slice(FRAME_384);
    wire.extend_from_slice(FRAME_267);
    wire.extend_from_slice(FRAME_384);
    let mut decoder = MessageFrameDecoder::new();
    let mut buf = bytes::BytesMut::new();
    let mut decoded = Vec::new();
    for piece in wire.chunks(7) {
        buf.extend_from_slice(piece);
        while let DecodedFrame::Complete(m) = decoder.decode_frame(&mut buf).unwrap() {
            decoded.push(frames::encode_message(&m));
        }
    }
    assert_eq!(decoded.len(), 3);
    assert_eq!(decoded.concat(), wire);
}

#[test]
fn corrupted_golden_frame_is_rejected_by_the_reader() {
    let mut bad = FRAME_267.to_vec();
    bad[100] ^= 0x01;
    assert!(read_message_from(Bytes::from(bad)).is_err());
}
