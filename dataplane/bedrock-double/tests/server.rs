//! End-to-end tests of the running double over real TCP (HTTP/1.1 spoken by
//! hand so the client shares no code with the server's HTTP stack).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::Message;
use base64::Engine as _;
use ccag_bedrock_double::{sigv4, spawn, Double, DoubleConfig, StatsSnapshot};
use http::HeaderMap;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PROFILE: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1%3A0";

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").expect("chunk size line");
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..line_end]).unwrap().trim(), 16).unwrap();
        raw = &raw[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

fn parse_response(raw: &[u8]) -> Resp {
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("end of head");
    let head = std::str::from_utf8(&raw[..head_end]).unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let rest = &raw[head_end + 4..];
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked { dechunk(rest) } else { rest.to_vec() };
    Resp { status, headers, body }
}

fn request_bytes(addr: SocketAddr, method: &str, path: &str, body: &[u8], creds: Option<(&str, &str)>) -> Vec<u8> {
    let mut headers = HeaderMap::new();
    headers.insert("host", addr.to_string().parse().unwrap());
    headers.insert("content-type", "application/json".parse().unwrap());
    headers.insert("content-length", body.len().to_string().parse().unwrap());
    if let Some((ak, sk)) = creds {
        sigv4::sign(
            &mut headers,
            method,
            path,
            None,
            body,
            &sigv4::SigningParams {
                access_key_id: ak,
                secret_access_key: sk,
                region: "us-east-1",
                service: "bedrock",
                amz_date: "20250101T000000Z",
            },
        );
    }
    let mut out = format!("{method} {path} HTTP/1.1\r\n").into_bytes();
    for (k, v) in &headers {
        out.extend_from_slice(format!("{}: {}\r\n", k, v.to_str().unwrap()).as_bytes());
    }
    out.extend_from_slice(b"connection: close\r\n\r\n");
    out.extend_from_slice(body);
    out
}

async fn send(addr: SocketAddr, method: &str, path: &str, body: &[u8], creds: Option<(&str, &str)>) -> Resp {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&request_bytes(addr, method, path, body, creds)).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw)).await.expect("response within 10s").unwrap();
    parse_response(&raw)
}

const CREDS: Option<(&str, &str)> = Some(("AKIDCCAGDOUBLE", "ccag-double-secret"));

async fn post(d: &Double, path: &str, body: &Value) -> Resp {
    send(d.addr(), "POST", path, body.to_string().as_bytes(), CREDS).await
}

fn body(text: &str) -> Value {
    json!({
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": text}]
    })
}

async fn double() -> Double {
    spawn("127.0.0.1:0".parse().unwrap(), DoubleConfig::default()).await.unwrap()
}

fn decode_frames(body: &[u8]) -> Vec<Message> {
    let mut dec = MessageFrameDecoder::new();
    let mut buf = bytes::BytesMut::from(body);
    let mut out = Vec::new();
    while let DecodedFrame::Complete(m) = dec.decode_frame(&mut buf).unwrap() {
        out.push(m);
    }
    assert!(buf.is_empty(), "trailing bytes after the last frame");
    out
}

fn header<'a>(m: &'a Message, name: &str) -> Option<&'a str> {
    m.headers().iter().find(|h| h.name().as_str() == name).and_then(|h| h.value().as_string().ok()).map(|s| s.as_str())
}

fn event_of(m: &Message) -> Value {
    let p: Value = serde_json::from_slice(m.payload()).unwrap();
    let raw = base64::engine::general_purpose::STANDARD.decode(p["bytes"].as_str().unwrap()).unwrap();
    serde_json::from_slice(&raw).unwrap()
}

#[tokio::test]
async fn invoke_accepts_encoded_and_raw_model_labels() {
    let d = double().await;
    for path in
        [format!("/model/{PROFILE}/invoke"), "/model/us.anthropic.claude-sonnet-4-5-20250929-v1:0/invoke".to_string()]
    {
        let r = post(&d, &path, &body("hi")).await;
        assert_eq!(r.status, 200, "{path}: {}", String::from_utf8_lossy(&r.body));
        let m = r.json();
        assert_eq!(m["content"][0]["text"], "Hello from the Bedrock double.");
        assert_eq!(m["model"], "claude-sonnet-4-5-20250929");
        assert!(m["id"].as_str().unwrap().starts_with("msg_bdrk_"));
        assert_eq!(m["usage"]["input_tokens"], 1);
    }
    let log = d.requests();
    assert_eq!(log.len(), 2);
    assert!(log.iter().all(|r| r.model == "us.anthropic.claude-sonnet-4-5-20250929-v1:0"));
    assert_eq!(log[0].operation, "InvokeModel");
    assert!(log[0].headers.contains_key("authorization"));
    assert_eq!(d.stats().invocations, 2);
}

#[tokio::test]
async fn stream_sends_documented_event_sequence_with_metrics() {
    let d = double().await;
    let r = post(&d, &format!("/model/{PROFILE}/invoke-with-response-stream"), &body("hello there")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/vnd.amazon.eventstream"));
    assert_eq!(r.header("x-amzn-bedrock-content-type"), Some("application/json"));
    let frames = decode_frames(&r.body);
    for f in &frames {
        assert_eq!(header(f, ":event-type"), Some("chunk"));
        assert_eq!(header(f, ":message-type"), Some("event"));
        assert_eq!(header(f, ":content-type"), Some("application/json"));
    }
    let events: Vec<Value> = frames.iter().map(event_of).collect();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(events[0]["message"]["usage"]["input_tokens"], 3);
    let metrics = &events[7]["amazon-bedrock-invocationMetrics"];
    assert_eq!(metrics["inputTokenCount"], 3);
    assert_eq!(metrics["outputTokenCount"], events[6]["usage"]["output_tokens"]);
    // completion is counted once the body has been fully drained
    for _ in 0..200 {
        if d.stats().streams_completed == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let s = d.stats();
    assert_eq!((s.streams_started, s.streams_completed, s.streams_cancelled), (1, 1, 0));
}

#[tokio::test]
async fn stream_error_directive_sends_exception_after_n_frames() {
    let d = double().await;
    let r = post(
        &d,
        &format!("/model/{PROFILE}/invoke-with-response-stream"),
        &body("[double:stream_error=throttlingException,after=2]"),
    )
    .await;
    assert_eq!(r.status, 200);
    let frames = decode_frames(&r.body);
    assert_eq!(frames.len(), 3);
    assert_eq!(header(&frames[1], ":message-type"), Some("event"));
    assert_eq!(header(&frames[2], ":message-type"), Some("exception"));
    assert_eq!(header(&frames[2], ":exception-type"), Some("throttlingException"));
    let p: Value = serde_json::from_slice(frames[2].payload()).unwrap();
    assert!(p["message"].as_str().unwrap().contains("Too many requests"));

    let r = post(
        &d,
        &format!("/model/{PROFILE}/invoke-with-response-stream"),
        &body("[double:stream_error=modelStreamErrorException,after=0]"),
    )
    .await;
    let frames = decode_frames(&r.body);
    assert_eq!(frames.len(), 1);
    assert_eq!(header(&frames[0], ":exception-type"), Some("modelStreamErrorException"));
}

#[tokio::test]
async fn cut_after_directive_drops_the_connection_mid_stream() {
    let d = double().await;
    let path = format!("/model/{PROFILE}/invoke-with-response-stream");
    let mut s = TcpStream::connect(d.addr()).await.unwrap();
    s.write_all(&request_bytes(d.addr(), "POST", &path, body("[double:cut_after=2]").to_string().as_bytes(), CREDS))
        .await
        .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw)).await.expect("closed within 10s").unwrap();
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("end of head") + 4;
    assert!(raw.starts_with(b"HTTP/1.1 200"));
    // Whole chunks up to the cut, and no terminating zero-size chunk.
    let mut rest = &raw[head_end..];
    let mut data = Vec::new();
    while let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap().trim(), 16).unwrap();
        assert_ne!(size, 0, "the stream must not end cleanly");
        data.extend_from_slice(&rest[line_end + 2..line_end + 2 + size]);
        rest = &rest[line_end + 2 + size + 2..];
    }
    let frames = decode_frames(&data);
    assert_eq!(frames.len(), 2);
    assert!(frames.iter().all(|f| header(f, ":message-type") == Some("event")));
    assert_eq!(d.stats().streams_cut, 1);
}

#[tokio::test]
async fn auth_failures_are_403_with_aws_error_types() {
    let d = double().await;
    let path = format!("/model/{PROFILE}/invoke");
    let b = body("hi").to_string();
    let r = send(d.addr(), "POST", &path, b.as_bytes(), None).await;
    assert_eq!(r.status, 403);
    assert!(r.header("x-amzn-errortype").unwrap().starts_with("InvalidSignatureException:"));
    let r = send(d.addr(), "POST", &path, b.as_bytes(), Some(("AKIDCCAGDOUBLE", "wrong"))).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some("InvalidSignatureException:http://internal.amazon.com/coral/com.amazon.coral.service/")
    );
    assert!(r.json()["message"].as_str().unwrap().contains("signature"));
    let r = send(d.addr(), "POST", &path, b.as_bytes(), Some(("AKIDOTHER", "ccag-double-secret"))).await;
    assert_eq!(r.status, 403);
    assert!(r.header("x-amzn-errortype").unwrap().starts_with("UnrecognizedClientException:"));
    assert_eq!(d.stats().auth_failures, 3);
    assert_eq!(d.stats().invocations, 0);
}

#[tokio::test]
async fn error_directive_returns_http_error() {
    let d = double().await;
    let r =
        post(&d, &format!("/model/{PROFILE}/invoke-with-response-stream"), &body("[double:error=ThrottlingException]"))
            .await;
    assert_eq!(r.status, 429);
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some("ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/")
    );
    assert_eq!(r.json()["message"], "Too many requests, please wait before trying again.");
    let r = post(&d, &format!("/model/{PROFILE}/invoke"), &body("[double:error=ModelErrorException]")).await;
    assert_eq!(r.status, 424);
    let r = post(&d, &format!("/model/{PROFILE}/invoke"), &body("[double:too_long]")).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "Input is too long for requested model.");
}

#[tokio::test]
async fn model_id_errors() {
    let d = double().await;
    let r = post(&d, "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke", &body("hi")).await;
    assert_eq!(r.status, 400);
    assert!(r.header("x-amzn-errortype").unwrap().starts_with("ValidationException:"));
    assert!(r.json()["message"].as_str().unwrap().contains("with on-demand throughput isn't supported"));
    let r = post(&d, "/model/us.anthropic.claude-nope/invoke", &body("hi")).await;
    assert_eq!(r.json()["message"], "The provided model identifier is invalid.");
    assert_eq!(d.stats().validation_failures, 2);
}

#[tokio::test]
async fn validation_errors_are_400() {
    let d = double().await;
    let mut b = body("hi");
    b["metadata"] = json!({"user_id": "x"});
    let r = post(&d, &format!("/model/{PROFILE}/invoke"), &b).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "metadata: Extra inputs are not permitted");
}

#[tokio::test]
async fn count_tokens_foundation_only() {
    let d = double().await;
    let inner = body("abcdefghij").to_string();
    let outer = json!({"input": {"invokeModel": {"body": base64::engine::general_purpose::STANDARD.encode(&inner)}}});
    let r = post(&d, "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/count-tokens", &outer).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json(), json!({"inputTokens": 3}));
    let r = post(&d, &format!("/model/{PROFILE}/count-tokens"), &outer).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "The provided model identifier is invalid.");
    assert_eq!(d.stats().count_tokens, 2);
}

#[tokio::test]
async fn client_disconnect_is_counted_as_cancelled() {
    let d = double().await;
    let path = format!("/model/{PROFILE}/invoke-with-response-stream");
    let b = body("[double:chunks=30] [double:inter_token_ms=40]").to_string();
    let mut s = TcpStream::connect(d.addr()).await.unwrap();
    s.write_all(&request_bytes(d.addr(), "POST", &path, b.as_bytes(), CREDS)).await.unwrap();
    let mut first = [0u8; 64];
    let n = s.read(&mut first).await.unwrap();
    assert!(n > 0);
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut snap: StatsSnapshot = d.stats();
    while snap.streams_cancelled == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        snap = d.stats();
    }
    assert_eq!(snap.streams_cancelled, 1, "{snap:?}");
    assert_eq!(snap.streams_completed, 0);
}

#[tokio::test]
async fn delay_directive_delays_first_frame() {
    let d = double().await;
    let start = Instant::now();
    let r = post(&d, &format!("/model/{PROFILE}/invoke-with-response-stream"), &body("[double:delay_ms=150]")).await;
    assert_eq!(r.status, 200);
    assert!(start.elapsed() >= Duration::from_millis(150));
    let frames = decode_frames(&r.body);
    let last = event_of(frames.last().unwrap());
    assert!(last["amazon-bedrock-invocationMetrics"]["firstByteLatency"].as_u64().unwrap() >= 150);
}

#[tokio::test]
async fn observability_endpoints_and_reset() {
    let d = double().await;
    post(&d, &format!("/model/{PROFILE}/invoke"), &body("hi")).await;
    let r = send(d.addr(), "GET", "/_double/stats", b"", None).await;
    assert_eq!(r.json()["requests"], 1);
    let r = send(d.addr(), "GET", "/_double/requests", b"", None).await;
    let log = r.json();
    assert_eq!(log[0]["operation"], "InvokeModel");
    assert_eq!(log[0]["body"]["max_tokens"], 256);
    assert_eq!(log[0]["headers"]["content-type"], "application/json");
    let r = send(d.addr(), "POST", "/_double/reset", b"", None).await;
    assert_eq!(r.status, 200);
    // A gauge, not a counter: reset leaves it alone.
    assert_eq!(StatsSnapshot { connections_open: 0, ..d.stats() }, StatsSnapshot::default());
    assert!(d.requests().is_empty());
}

#[tokio::test]
async fn open_connections_are_a_gauge() {
    let d = double().await;
    let wait_for = |n: u64| {
        let d = &d;
        async move {
            for _ in 0..200 {
                if d.stats().connections_open == n {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            false
        }
    };
    let a = TcpStream::connect(d.addr()).await.unwrap();
    let b = TcpStream::connect(d.addr()).await.unwrap();
    assert!(wait_for(2).await);
    drop(a);
    assert!(wait_for(1).await);
    drop(b);
    assert!(wait_for(0).await);
}
