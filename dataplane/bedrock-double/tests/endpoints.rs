//! The double as one endpoint among several: region, role and API-key auth,
//! served models, injected faults and ListInferenceProfiles, over real TCP
//! with HTTP/1.1 spoken by hand.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ccag_bedrock_double::{sigv4, spawn, Double, DoubleConfig, FaultKind, FaultSpec};
use http::HeaderMap;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const INVOKE: &str = "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke";
const STREAM: &str = "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream";
const ROLE: &str = "arn:aws:iam::111111111111:role/x";

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn error_type(&self) -> &str {
        self.header("x-amzn-errortype").and_then(|t| t.split(':').next()).unwrap_or_default()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// Only the head and a `Content-Length` body matter here (stream bodies are
/// not read back).
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
    Resp { status, headers, body: raw[head_end + 4..].to_vec() }
}

/// How a test request authenticates.
#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Sigv4 { key: &'a str, secret: &'a str, region: &'a str, token: Option<&'a str> },
    Bearer(&'a str),
}

const STATIC: Auth<'static> =
    Auth::Sigv4 { key: "AKIDCCAGDOUBLE", secret: "ccag-double-secret", region: "us-east-1", token: None };

fn in_region(region: &str) -> Auth<'_> {
    Auth::Sigv4 { key: "AKIDCCAGDOUBLE", secret: "ccag-double-secret", region, token: None }
}

fn request_bytes(addr: SocketAddr, method: &str, target: &str, body: &[u8], auth: Auth<'_>) -> Vec<u8> {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut headers = HeaderMap::new();
    headers.insert("host", addr.to_string().parse().unwrap());
    headers.insert("content-type", "application/json".parse().unwrap());
    headers.insert("content-length", body.len().to_string().parse().unwrap());
    match auth {
        Auth::None => {}
        Auth::Bearer(key) => {
            headers.insert("authorization", format!("Bearer {key}").parse().unwrap());
        }
        Auth::Sigv4 { key, secret, region, token } => {
            if let Some(t) = token {
                // Signed, as the AWS SDKs sign it.
                headers.insert("x-amz-security-token", t.parse().unwrap());
            }
            let params = sigv4::SigningParams {
                access_key_id: key,
                secret_access_key: secret,
                region,
                service: "bedrock",
                amz_date: "20250101T000000Z",
            };
            sigv4::sign(&mut headers, method, path, query, body, &params);
        }
    }
    let mut out = format!("{method} {target} HTTP/1.1\r\n").into_bytes();
    for (k, v) in &headers {
        out.extend_from_slice(format!("{}: {}\r\n", k, v.to_str().unwrap()).as_bytes());
    }
    out.extend_from_slice(b"connection: close\r\n\r\n");
    out.extend_from_slice(body);
    out
}

async fn send(d: &Double, method: &str, target: &str, body: &[u8], auth: Auth<'_>) -> Resp {
    let mut s = TcpStream::connect(d.addr()).await.unwrap();
    s.write_all(&request_bytes(d.addr(), method, target, body, auth)).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw)).await.expect("response within 10s").unwrap();
    parse_response(&raw)
}

fn body(text: &str) -> Vec<u8> {
    json!({
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": text}]
    })
    .to_string()
    .into_bytes()
}

async fn invoke(d: &Double, path: &str, auth: Auth<'_>) -> Resp {
    send(d, "POST", path, &body("hi"), auth).await
}

async fn double(cfg: DoubleConfig) -> Double {
    spawn("127.0.0.1:0".parse().unwrap(), cfg).await.unwrap()
}

// ---- DOUBLE_REGION ---------------------------------------------------------

#[tokio::test]
async fn scope_of_another_region_is_refused() {
    let d = double(DoubleConfig { region: Some("us-west-2".into()), ..DoubleConfig::default() }).await;
    let r = invoke(&d, INVOKE, in_region("us-east-1")).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.error_type(), "InvalidSignatureException");
    assert_eq!(r.json()["message"], "Credential should be scoped to a valid region: 'us-west-2'. (got 'us-east-1')");
    let r = invoke(&d, INVOKE, in_region("us-west-2")).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let log = d.requests();
    assert_eq!(log[0].region.as_deref(), Some("us-east-1"));
    assert!(!log[0].authorized);
    assert_eq!(log[1].region.as_deref(), Some("us-west-2"));
    assert!(log[1].authorized);
    assert_eq!(d.stats().auth_failures, 1);
}

#[tokio::test]
async fn without_a_region_any_scope_is_accepted() {
    let d = double(DoubleConfig::default()).await;
    assert_eq!(invoke(&d, INVOKE, in_region("eu-west-1")).await.status, 200);
}

#[tokio::test]
async fn profiles_of_another_geo_are_invalid_in_a_region() {
    let d = double(DoubleConfig { region: Some("eu-west-1".into()), ..DoubleConfig::default() }).await;
    let eu = in_region("eu-west-1");
    let r = invoke(&d, INVOKE, eu).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "The provided model identifier is invalid.");
    for path in [
        "/model/eu.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke",
        "/model/global.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke",
    ] {
        assert_eq!(invoke(&d, path, eu).await.status, 200, "{path}");
    }
}

// ---- DOUBLE_ROLE_ARN + DOUBLE_STS_STATE_URL ---------------------------------

/// A stand-in for moto's `GET /moto-api/data.json`, whose sessions a test
/// can add to while the double runs.
struct FakeMoto {
    url: String,
    sessions: Arc<Mutex<Vec<Value>>>,
}

impl FakeMoto {
    async fn start() -> FakeMoto {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/moto-api/data.json", listener.local_addr().unwrap());
        let sessions: Arc<Mutex<Vec<Value>>> = Arc::default();
        let state = sessions.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut head = [0u8; 2048];
                let _ = s.read(&mut head).await;
                let doc = json!({"sts": {"AssumedRole": *state.lock().unwrap(), "Token": []}}).to_string();
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/javascript\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{doc}",
                    doc.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            }
        });
        FakeMoto { url, sessions }
    }

    /// Adds a session as moto's AssumeRole would record it.
    fn assume(&self, key: &str, role: &str, session: &str) {
        let name = role.rsplit('/').next().unwrap();
        self.sessions.lock().unwrap().push(json!({
            "access_key_id": key,
            "secret_access_key": format!("secret-of-{key}"),
            "session_token": format!("FQoG+token/of={key}"),
            "role_arn": role,
            "session_name": session,
            "external_id": null,
            "arn": format!("arn:aws:sts::111111111111:assumed-role/{name}/{session}"),
            "account_id": "111111111111",
        }));
    }
}

fn session_auth<'a>(key: &'a str, secret: &'a str, token: &'a str) -> Auth<'a> {
    Auth::Sigv4 { key, secret, region: "us-east-1", token: Some(token) }
}

async fn role_double(moto: &FakeMoto) -> Double {
    double(DoubleConfig {
        role_arn: Some(ROLE.into()),
        sts_state_url: Some(moto.url.clone()),
        ..DoubleConfig::default()
    })
    .await
}

#[tokio::test]
async fn session_of_the_role_is_accepted_and_recorded() {
    let moto = FakeMoto::start().await;
    moto.assume("ASIAGOOD", ROLE, "ccag-alice-example-com");
    let d = role_double(&moto).await;
    let r = invoke(&d, INVOKE, session_auth("ASIAGOOD", "secret-of-ASIAGOOD", "FQoG+token/of=ASIAGOOD")).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let rec = &d.requests()[0];
    assert_eq!(rec.auth.as_deref(), Some("sigv4"));
    assert!(rec.authorized);
    assert_eq!(rec.access_key_id.as_deref(), Some("ASIAGOOD"));
    assert_eq!(rec.region.as_deref(), Some("us-east-1"));
    assert_eq!(rec.role_arn.as_deref(), Some(ROLE));
    assert_eq!(rec.session_name.as_deref(), Some("ccag-alice-example-com"));
}

#[tokio::test]
async fn session_issued_after_start_is_found_by_refetching() {
    let moto = FakeMoto::start().await;
    let d = role_double(&moto).await;
    let auth = session_auth("ASIALATE", "secret-of-ASIALATE", "FQoG+token/of=ASIALATE");
    let r = invoke(&d, INVOKE, auth).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.error_type(), "UnrecognizedClientException");
    moto.assume("ASIALATE", ROLE, "ccag-late");
    assert_eq!(invoke(&d, INVOKE, auth).await.status, 200);
}

#[tokio::test]
async fn session_needs_its_own_token() {
    let moto = FakeMoto::start().await;
    moto.assume("ASIAGOOD", ROLE, "s");
    moto.assume("ASIAOTHER", ROLE, "s2");
    let d = role_double(&moto).await;
    for token in [None, Some("FQoG+token/of=ASIAOTHER")] {
        let auth = Auth::Sigv4 { key: "ASIAGOOD", secret: "secret-of-ASIAGOOD", region: "us-east-1", token };
        let r = invoke(&d, INVOKE, auth).await;
        assert_eq!(r.status, 403);
        assert_eq!(r.error_type(), "UnrecognizedClientException");
        assert_eq!(r.json()["message"], "The security token included in the request is invalid.");
    }
}

#[tokio::test]
async fn session_signature_is_checked_with_its_secret() {
    let moto = FakeMoto::start().await;
    moto.assume("ASIAGOOD", ROLE, "s");
    let d = role_double(&moto).await;
    let r = invoke(&d, INVOKE, session_auth("ASIAGOOD", "ccag-double-secret", "FQoG+token/of=ASIAGOOD")).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.error_type(), "InvalidSignatureException");
}

#[tokio::test]
async fn session_of_another_role_is_denied() {
    let moto = FakeMoto::start().await;
    moto.assume("ASIAWRONG", "arn:aws:iam::111111111111:role/other", "ccag-a");
    let d = role_double(&moto).await;
    let r = invoke(&d, STREAM, session_auth("ASIAWRONG", "secret-of-ASIAWRONG", "FQoG+token/of=ASIAWRONG")).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.error_type(), "AccessDeniedException");
    let msg = r.json()["message"].as_str().unwrap().to_string();
    assert!(msg.starts_with("User: arn:aws:sts::111111111111:assumed-role/other/ccag-a is not authorized to perform: bedrock:InvokeModelWithResponseStream"), "{msg}");
    assert!(msg.contains(ROLE), "{msg}");
    assert_eq!(d.requests()[0].role_arn.as_deref(), Some("arn:aws:iam::111111111111:role/other"));
}

#[tokio::test]
async fn role_mode_refuses_the_static_key() {
    let moto = FakeMoto::start().await;
    let d = role_double(&moto).await;
    let r = invoke(&d, INVOKE, STATIC).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.error_type(), "UnrecognizedClientException");
}

#[tokio::test]
async fn unreachable_moto_is_a_500_naming_the_url() {
    let gone = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/moto-api/data.json", gone.local_addr().unwrap());
    drop(gone);
    let d =
        double(DoubleConfig { role_arn: Some(ROLE.into()), sts_state_url: Some(url.clone()), ..Default::default() })
            .await;
    let r = invoke(&d, INVOKE, session_auth("ASIAX", "s", "t")).await;
    assert_eq!(r.status, 500);
    assert!(r.json()["message"].as_str().unwrap().contains(&url));
}

// ---- DOUBLE_API_KEY ----------------------------------------------------------

fn api_key_config() -> DoubleConfig {
    DoubleConfig { api_key: Some("bedrock-api-key-123".into()), ..DoubleConfig::default() }
}

#[tokio::test]
async fn api_key_is_accepted_as_bearer() {
    let d = double(api_key_config()).await;
    let r = invoke(&d, INVOKE, Auth::Bearer("bedrock-api-key-123")).await;
    assert_eq!(r.status, 200);
    let rec = &d.requests()[0];
    assert_eq!(rec.auth.as_deref(), Some("bearer"));
    assert!(rec.authorized);
    assert_eq!(rec.access_key_id, None);
}

#[tokio::test]
async fn api_key_mode_refuses_other_keys_and_sigv4() {
    let d = double(api_key_config()).await;
    let r = invoke(&d, INVOKE, Auth::Bearer("bedrock-api-key-124")).await;
    assert_eq!((r.status, r.error_type()), (403, "UnrecognizedClientException"));
    let r = invoke(&d, INVOKE, STATIC).await;
    assert_eq!((r.status, r.error_type()), (403, "UnrecognizedClientException"));
    let r = invoke(&d, INVOKE, Auth::None).await;
    assert_eq!(r.status, 403);
    assert_eq!(d.stats().auth_failures, 3);
}

#[tokio::test]
async fn bearer_is_refused_without_an_api_key() {
    let d = double(DoubleConfig::default()).await;
    let r = invoke(&d, INVOKE, Auth::Bearer("anything")).await;
    assert_eq!((r.status, r.error_type()), (403, "InvalidSignatureException"));
}

// ---- DOUBLE_MODELS -------------------------------------------------------------

fn haiku_only() -> DoubleConfig {
    DoubleConfig { models: Some(vec!["claude-haiku-4-5-20251001".into()]), ..DoubleConfig::default() }
}

#[tokio::test]
async fn unlisted_model_is_an_invalid_identifier() {
    let d = double(haiku_only()).await;
    let r = invoke(&d, INVOKE, STATIC).await;
    assert_eq!((r.status, r.error_type()), (400, "ValidationException"));
    assert_eq!(r.json()["message"], "The provided model identifier is invalid.");
    let r = invoke(&d, "/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke", STATIC).await;
    assert_eq!(r.status, 200);
    assert_eq!(d.stats().validation_failures, 1);
}

#[tokio::test]
async fn unlisted_model_cannot_count_tokens() {
    use base64::Engine as _;
    let d = double(haiku_only()).await;
    let inner = base64::engine::general_purpose::STANDARD.encode(body("abc"));
    let outer = json!({"input": {"invokeModel": {"body": inner}}}).to_string();
    let r =
        send(&d, "POST", "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/count-tokens", outer.as_bytes(), STATIC)
            .await;
    assert_eq!(r.status, 400);
    let r =
        send(&d, "POST", "/model/anthropic.claude-haiku-4-5-20251001-v1%3A0/count-tokens", outer.as_bytes(), STATIC)
            .await;
    assert_eq!(r.status, 200);
}

// ---- /_double/fault ------------------------------------------------------------

async fn post_fault(d: &Double, spec: Value) -> Resp {
    send(d, "POST", "/_double/fault", spec.to_string().as_bytes(), Auth::None).await
}

#[tokio::test]
async fn throttle_fault_fails_the_next_n_calls() {
    let d = double(DoubleConfig::default()).await;
    let r = post_fault(&d, json!({"kind": "throttle", "count": 2})).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"kind": "throttle", "count": 2, "stall_ms": 60000}));
    let r = invoke(&d, STREAM, STATIC).await;
    assert_eq!((r.status, r.error_type()), (429, "ThrottlingException"));
    assert_eq!(r.json()["message"], "Too many requests, please wait before trying again.");
    let left = send(&d, "GET", "/_double/fault", b"", Auth::None).await.json();
    assert_eq!(left["count"], 1);
    assert_eq!(invoke(&d, INVOKE, STATIC).await.status, 429);
    assert_eq!(invoke(&d, INVOKE, STATIC).await.status, 200);
    assert_eq!(send(&d, "GET", "/_double/fault", b"", Auth::None).await.json()["kind"], "none");
    let s = d.stats();
    assert_eq!((s.faults_served, s.invocations), (2, 3));
}

#[tokio::test]
async fn error_fault_with_count_zero_lasts_until_cleared() {
    let d = double(DoubleConfig::default()).await;
    post_fault(&d, json!({"kind": "error", "count": 0})).await;
    for _ in 0..3 {
        let r = invoke(&d, INVOKE, STATIC).await;
        assert_eq!((r.status, r.error_type()), (500, "InternalServerException"));
    }
    post_fault(&d, json!({"kind": "none"})).await;
    assert_eq!(invoke(&d, INVOKE, STATIC).await.status, 200);
}

#[tokio::test]
async fn stall_fault_holds_the_stream_head_back() {
    let d = double(DoubleConfig::default()).await;
    post_fault(&d, json!({"kind": "stall", "stall_ms": 300})).await;
    let mut s = TcpStream::connect(d.addr()).await.unwrap();
    s.write_all(&request_bytes(d.addr(), "POST", STREAM, &body("hi"), STATIC)).await.unwrap();
    let start = Instant::now();
    let mut first = [0u8; 12];
    s.read_exact(&mut first).await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(300), "{:?}", start.elapsed());
    assert_eq!(&first, b"HTTP/1.1 200");
    assert_eq!(d.stats().faults_served, 1);
    // Used up: the next call answers at once.
    let start = Instant::now();
    assert_eq!(invoke(&d, INVOKE, STATIC).await.status, 200);
    assert!(start.elapsed() < Duration::from_millis(300));
}

#[tokio::test]
async fn faults_spare_unauthenticated_calls_and_other_operations() {
    let d = double(DoubleConfig::default()).await;
    d.set_fault(FaultSpec { kind: FaultKind::Throttle, count: 1, stall_ms: None });
    assert_eq!(invoke(&d, INVOKE, Auth::None).await.status, 403);
    assert_eq!(send(&d, "GET", "/inference-profiles", b"", STATIC).await.status, 200);
    assert_eq!(d.fault().count, 1);
    assert_eq!(invoke(&d, INVOKE, STATIC).await.status, 429);
}

#[tokio::test]
async fn reset_clears_the_fault() {
    let d = double(DoubleConfig::default()).await;
    post_fault(&d, json!({"kind": "throttle", "count": 0})).await;
    send(&d, "POST", "/_double/reset", b"", Auth::None).await;
    assert_eq!(d.fault(), FaultSpec::NONE);
    assert_eq!(invoke(&d, INVOKE, STATIC).await.status, 200);
}

#[tokio::test]
async fn malformed_fault_is_a_400() {
    let d = double(DoubleConfig::default()).await;
    let r = post_fault(&d, json!({"kind": "explode"})).await;
    assert_eq!(r.status, 400);
    assert!(r.json()["message"].as_str().unwrap().contains("throttle"));
}

// ---- GET /inference-profiles ---------------------------------------------------

fn profile_ids(r: &Resp) -> Vec<String> {
    r.json()["inferenceProfileSummaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["inferenceProfileId"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn profiles_are_listed_for_the_region_and_served_models() {
    let d = double(DoubleConfig {
        region: Some("ap-northeast-1".into()),
        models: Some(vec!["claude-sonnet-4-5-20250929".into(), "claude-3-7-sonnet-20250219".into()]),
        ..DoubleConfig::default()
    })
    .await;
    let r = send(&d, "GET", "/inference-profiles", b"", in_region("ap-northeast-1")).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        profile_ids(&r),
        [
            "jp.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "jp.anthropic.claude-3-7-sonnet-20250219-v1:0",
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        ]
    );
    let first = &r.json()["inferenceProfileSummaries"][0];
    assert_eq!(
        first["inferenceProfileArn"],
        "arn:aws:bedrock:ap-northeast-1:111111111111:inference-profile/jp.anthropic.claude-sonnet-4-5-20250929-v1:0"
    );
    assert_eq!(d.stats().inference_profile_lists, 1);
    assert!(d.requests().is_empty(), "listings stay out of the model-call log");
}

#[tokio::test]
async fn profiles_listing_is_signed_with_its_query() {
    let d = double(DoubleConfig::default()).await;
    let r = send(&d, "GET", "/inference-profiles?maxResults=1&typeEquals=SYSTEM_DEFINED", b"", STATIC).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(profile_ids(&r), ["us.anthropic.claude-opus-4-1-20250805-v1:0"]);
    assert_eq!(r.json()["nextToken"], "1");
}

#[tokio::test]
async fn profiles_listing_follows_the_auth_rules() {
    let d = double(api_key_config()).await;
    assert_eq!(send(&d, "GET", "/inference-profiles", b"", STATIC).await.status, 403);
    assert_eq!(send(&d, "GET", "/inference-profiles", b"", Auth::Bearer("bedrock-api-key-123")).await.status, 200);
    assert_eq!(d.stats().auth_failures, 1);
}
