//! InvokeModel and InvokeModelWithResponseStream on the data plane's own
//! pooled hyper client, signed with aws-sigv4 (or a Bedrock API key).
//!
//! These two calls are the whole hot path. Through the SDK, its per-call
//! orchestration (runtime plugins, config-bag layering, interceptors,
//! endpoint resolution) took a quarter of the data plane's CPU
//! (docs/performance.md). Credentials, region and endpoint still come from the
//! SDK's standard configuration chain, resolved once.

use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use std::sync::Arc;

use super::credentials::CredentialCache;
use super::eventstream::{Decoder, StreamEvent};
use super::h2pool::{H2Error, H2Pool, StreamSlot};
use super::sts::RoleSessions;
use super::UpstreamError;

/// Bedrock's signing name (it differs from the endpoint prefix `bedrock-runtime`).
const SIGNING_NAME: &str = "bedrock";
/// A non-streaming answer larger than this is refused rather than buffered.
/// Bedrock's largest replies (128k output tokens) are a few MiB.
const MAX_ANSWER_BYTES: usize = 64 << 20;
/// An error body is only read for its message.
const MAX_ERROR_BYTES: usize = 64 << 10;
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Shorter than the idle timeouts of AWS's front ends, so that the pool never
/// hands out a connection the far side has already closed.
pub(super) const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(50);
static X_AMZN_BEDROCK_ACCEPT: HeaderName = HeaderName::from_static("x-amzn-bedrock-accept");
static X_AMZN_ERRORTYPE: &str = "x-amzn-errortype";
static APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

#[derive(Clone, Copy)]
enum Operation {
    Invoke,
    Stream,
    CountTokens,
}

impl Operation {
    fn suffix(self) -> &'static str {
        match self {
            Operation::Invoke => "/invoke",
            Operation::Stream => "/invoke-with-response-stream",
            Operation::CountTokens => "/count-tokens",
        }
    }
}

#[derive(Clone)]
pub enum Auth {
    SigV4(Arc<CredentialCache>),
    /// An assumed role: its shared session, or the caller's own.
    Role {
        sessions: Arc<RoleSessions>,
        per_user: bool,
    },
    /// A Bedrock API key (`AWS_BEARER_TOKEN_BEDROCK`, or an endpoint's), sent
    /// instead of a signature.
    Bearer(HeaderValue),
}

/// Who a call is made for: per-user STS sessions name them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Principal<'a> {
    pub user_id: &'a str,
    pub email: &'a str,
}

/// One pooled client for every endpoint: hyper keeps a pool per host, so
/// endpoints do not share connections, and an endpoint whose configuration
/// changes keeps its warm connections.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

thread_local! {
    /// The calling thread's own HTTP/1.1 pool, on a request core (per-core
    /// threading): its Bedrock connections are then driven by the runtime
    /// that serves their requests, and an answer wakes no other thread.
    static THREAD_POOL: std::cell::OnceCell<HttpClient> = const { std::cell::OnceCell::new() };
}

/// Gives the calling thread a pool of its own for every endpoint's
/// HTTP/1.1 calls; a second call keeps the first.
pub fn use_thread_pool(client: HttpClient) {
    THREAD_POOL.with(|p| {
        let _ = p.set(client);
    });
}

pub struct Runtime {
    http: HttpClient,
    /// HTTP/2 over TLS, when on (`CCAG_BEDROCK_HTTP2`) and the endpoint is
    /// https; shared by every configuration's client of the same host.
    h2: Option<Arc<H2Pool>>,
    /// `scheme://authority` with any base path, without a trailing slash.
    base: String,
    host: HeaderValue,
    /// Where the Bedrock control API (ListInferenceProfiles) is: the
    /// runtime's host with `bedrock-runtime` replaced by `bedrock`; a host
    /// that is not AWS's (a double) serves both.
    control_base: String,
    control_host: HeaderValue,
    region: String,
    auth: Auth,
    /// Built once: the default carries an allocated list of excluded headers,
    /// which this client never needs (it sets only the headers it signs).
    signing: SigningSettings,
}

impl Runtime {
    pub fn new(
        http: HttpClient,
        h2: Option<Arc<H2Pool>>,
        endpoint: &str,
        region: String,
        auth: Auth,
    ) -> Result<Self, String> {
        let uri: Uri = endpoint.parse().map_err(|e| format!("Bedrock endpoint {endpoint:?}: {e}"))?;
        let authority = uri.authority().ok_or_else(|| format!("Bedrock endpoint {endpoint:?} has no host"))?;
        let default_port = match uri.scheme_str() {
            Some("https") => 443,
            Some("http") => 80,
            _ => return Err(format!("Bedrock endpoint {endpoint:?} must be http:// or https://")),
        };
        // The same form aws-sigv4 signs: the port only when it is not the default.
        let host = match authority.port_u16() {
            Some(p) if p != default_port => format!("{}:{p}", authority.host()),
            _ => authority.host().to_owned(),
        };
        let control = |v: &str| v.replacen("bedrock-runtime", "bedrock", 1);
        let base = endpoint.trim_end_matches('/').to_owned();
        Ok(Runtime {
            http,
            h2,
            control_base: control(&base),
            control_host: HeaderValue::from_str(&control(&host)).map_err(|e| e.to_string())?,
            base,
            host: HeaderValue::from_str(&host).map_err(|e| e.to_string())?,
            region,
            auth,
            signing: {
                let mut settings = SigningSettings::default();
                settings.excluded_headers = None;
                settings
            },
        })
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub async fn invoke(&self, model: &str, body: Vec<u8>, who: Principal<'_>) -> Result<Bytes, UpstreamError> {
        let (res, _slot) = self.send(model, Operation::Invoke, body, who).await?;
        read_all(res).await
    }

    pub async fn stream(&self, model: &str, body: Vec<u8>, who: Principal<'_>) -> Result<EventStream, UpstreamError> {
        let (res, slot) = self.send(model, Operation::Stream, body, who).await?;
        Ok(EventStream { body: res.into_body(), decoder: Decoder::new(), done: false, _slot: slot })
    }

    /// Starts a stream and reads its first event, both within
    /// `first_byte_timeout`: a response's status is held until then, so that
    /// a refusal before any content is still a real HTTP status.
    pub async fn open_stream(
        &self,
        model: &str,
        body: Vec<u8>,
        first_byte_timeout: Duration,
        who: Principal<'_>,
    ) -> Result<(EventStream, Bytes), UpstreamError> {
        let deadline = tokio::time::Instant::now() + first_byte_timeout;
        let mut rx = match tokio::time::timeout_at(deadline, self.stream(model, body, who)).await {
            Ok(r) => r?,
            Err(_) => return Err(UpstreamError::Timeout),
        };
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(Some(first))) => Ok((rx, first)),
            Ok(Ok(None)) => Err(UpstreamError::Protocol("empty event stream".into())),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(UpstreamError::Timeout),
        }
    }

    /// Bedrock CountTokens for an InvokeModel body; `foundation_model` must be
    /// a foundation-model id.
    pub async fn count_tokens(
        &self,
        foundation_model: &str,
        body: &[u8],
        who: Principal<'_>,
    ) -> Result<i64, UpstreamError> {
        use base64::Engine as _;
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Counted {
            input_tokens: i64,
        }
        let b64 = base64::engine::general_purpose::STANDARD.encode(body);
        let wrapped = format!(r#"{{"input":{{"invokeModel":{{"body":"{b64}"}}}}}}"#).into_bytes();
        let (res, _slot) = self.send(foundation_model, Operation::CountTokens, wrapped, who).await?;
        let answer = read_all(res).await?;
        let counted: Counted =
            serde_json::from_slice(&answer).map_err(|e| UpstreamError::Protocol(format!("CountTokens answer: {e}")))?;
        Ok(counted.input_tokens)
    }

    /// Signs `req` (or sets its bearer token) with the endpoint's
    /// credentials, the caller's own session where the endpoint has them.
    async fn authorize(
        &self,
        req: &mut Request<()>,
        method: &str,
        uri: &str,
        body: &[u8],
        who: Principal<'_>,
    ) -> Result<(), UpstreamError> {
        let creds = match &self.auth {
            Auth::Bearer(token) => {
                req.headers_mut().insert(AUTHORIZATION, token.clone());
                None
            }
            Auth::SigV4(creds) => Some(creds.identity().await?),
            Auth::Role { sessions, per_user: false } => Some(sessions.shared.identity().await?),
            Auth::Role { sessions, per_user: true } => {
                let own = if who.user_id.is_empty() {
                    Err(UpstreamError::Credentials("no user".into()))
                } else {
                    sessions.user(who.user_id, who.email).identity().await
                };
                match own {
                    Ok(i) => Some(i),
                    // A role whose trust policy does not allow
                    // sts:SetSourceIdentity still serves, unattributed (the
                    // session's refresher warns, not every request).
                    Err(e) => {
                        tracing::debug!(error = %e, "no per-user STS session; signing with the endpoint's shared session");
                        Some(sessions.shared.identity().await?)
                    }
                }
            }
        };
        if let Some(identity) = creds {
            let headers = req.headers().iter().filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)));
            let signable = SignableRequest::new(method, uri, headers, SignableBody::Bytes(body))
                .map_err(|e| UpstreamError::Protocol(format!("signing: {e}")))?;
            let params = v4::SigningParams::builder()
                .identity(&identity)
                .region(&self.region)
                .name(SIGNING_NAME)
                .time(SystemTime::now())
                .settings(self.signing.clone())
                .build()
                .map_err(|e| UpstreamError::Protocol(format!("signing: {e}")))?
                .into();
            let (instructions, _signature) =
                sign(signable, &params).map_err(|e| UpstreamError::Protocol(format!("signing: {e}")))?.into_parts();
            instructions.apply_to_request_http1x(req);
        }

        Ok(())
    }

    /// The Anthropic models (foundation ids, without a profile prefix) this
    /// endpoint's account has system inference profiles for, from Bedrock's
    /// ListInferenceProfiles; `None` when the endpoint cannot be asked
    /// (the control API is elsewhere, or the credentials do not allow it).
    pub async fn list_profiles(&self) -> Result<Vec<String>, UpstreamError> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Page {
            #[serde(default)]
            inference_profile_summaries: Vec<Summary>,
            next_token: Option<String>,
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Summary {
            inference_profile_id: String,
        }
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        // Bounded: an account has a few hundred profiles at most.
        for _ in 0..20 {
            let mut uri = format!("{}/inference-profiles?maxResults=1000&typeEquals=SYSTEM_DEFINED", self.control_base);
            if let Some(t) = &token {
                uri.push_str("&nextToken=");
                push_label(&mut uri, t);
            }
            let mut req = Request::get(uri.as_str())
                .header(HOST, self.control_host.clone())
                .header(ACCEPT, APPLICATION_JSON.clone())
                .body(())
                .map_err(|e| UpstreamError::Protocol(format!("building the request: {e}")))?;
            self.authorize(&mut req, "GET", &uri, &[], Principal::default()).await?;
            let req = req.map(|()| Full::new(Bytes::new()));
            let res = self.request(req).await.map_err(|e| UpstreamError::Unreachable(error_chain(&e)))?;
            if res.status() != StatusCode::OK {
                return Err(read_error(res).await);
            }
            let page: Page = serde_json::from_slice(&read_all(res).await?)
                .map_err(|e| UpstreamError::Protocol(format!("ListInferenceProfiles answer: {e}")))?;
            for p in page.inference_profile_summaries {
                let id = p.inference_profile_id;
                let bare = id.split_once('.').map_or(id.as_str(), |(_, rest)| rest);
                if bare.starts_with("anthropic.") {
                    out.push(bare.to_owned());
                }
            }
            match page.next_token.filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        Ok(out)
    }

    /// An HTTP/1.1 call on this thread's pool, else on the shared one.
    fn request(&self, req: Request<Full<Bytes>>) -> hyper_util::client::legacy::ResponseFuture {
        THREAD_POOL.with(|p| p.get().unwrap_or(&self.http).request(req))
    }

    async fn send(
        &self,
        model: &str,
        op: Operation,
        body: Vec<u8>,
        who: Principal<'_>,
    ) -> Result<(Response<Incoming>, Option<StreamSlot>), UpstreamError> {
        let mut uri = String::with_capacity(self.base.len() + model.len() + 40);
        uri.push_str(&self.base);
        uri.push_str("/model/");
        push_label(&mut uri, model);
        uri.push_str(op.suffix());

        let (accept_name, accept_value) = match op {
            Operation::Invoke | Operation::CountTokens => (ACCEPT, APPLICATION_JSON.clone()),
            Operation::Stream => (X_AMZN_BEDROCK_ACCEPT.clone(), APPLICATION_JSON.clone()),
        };
        let mut req = Request::post(uri.as_str())
            .header(HOST, self.host.clone())
            .header(CONTENT_TYPE, APPLICATION_JSON.clone())
            .header(accept_name, accept_value)
            .body(())
            .map_err(|e| UpstreamError::Protocol(format!("building the Bedrock request: {e}")))?;

        self.authorize(&mut req, "POST", &uri, &body, who).await?;

        let req = req.map(|()| Full::new(Bytes::from(body)));
        let h2 = match self.h2.as_deref().filter(|p| !p.http1_only()) {
            None => None,
            Some(pool) => match pool.ready().await {
                Ok(ready) => Some(ready),
                // The endpoint offers no HTTP/2: it gets HTTP/1.1 from now on.
                Err(H2Error::NotHttp2) => None,
                Err(e) => return Err(UpstreamError::Unreachable(e.to_string())),
            },
        };
        let (res, slot) = match h2 {
            Some(ready) => {
                let (res, slot) = ready.send(req).await.map_err(|e| UpstreamError::Unreachable(e.to_string()))?;
                (res, Some(slot))
            }
            None => (self.request(req).await.map_err(|e| UpstreamError::Unreachable(error_chain(&e)))?, None),
        };
        if res.status() == StatusCode::OK {
            return Ok((res, slot));
        }
        Err(read_error(res).await)
    }
}

async fn read_all(res: Response<Incoming>) -> Result<Bytes, UpstreamError> {
    let body = Limited::new(res.into_body(), MAX_ANSWER_BYTES)
        .collect()
        .await
        .map_err(|e| UpstreamError::Unreachable(format!("reading Bedrock's answer: {e}")))?;
    Ok(body.to_bytes())
}

pub fn http_client(tls: &rustls::ClientConfig) -> HttpClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    http.set_keepalive(Some(Duration::from_secs(30)));
    let tls = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls.clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(tls)
}

/// The TLS client settings of every Bedrock connection: the system's root
/// certificates and those of `AWS_CA_BUNDLE` (a PEM file, the AWS SDKs'
/// setting for a private CA: a TLS-inspecting proxy, a VPC endpoint behind
/// one, a test double). No ALPN: each client sets its own.
pub fn tls_config(ca_bundle: Option<&std::path::Path>) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (system, _unparsable) = roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_bundle {
        let pem = std::fs::read(path).map_err(|e| format!("AWS_CA_BUNDLE={}: {e}", path.display()))?;
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("AWS_CA_BUNDLE={}: {e}", path.display()))?;
            roots.add(cert).map_err(|e| format!("AWS_CA_BUNDLE={}: {e}", path.display()))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!("AWS_CA_BUNDLE={}: no PEM certificate in the file", path.display()));
        }
        tracing::info!(path = %path.display(), certificates = added, "trusting AWS_CA_BUNDLE");
    } else if system == 0 {
        // Only an https endpoint needs them, and it then fails with a clear
        // TLS error; a plain-http endpoint (a local double, a proxy) works.
        tracing::warn!("no system root certificates: https connections to Bedrock will fail");
    }
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    Ok(rustls::ClientConfig::builder_with_provider(provider.into())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Percent-encodes a path label as the AWS SDKs do: everything but RFC 3986
/// unreserved characters, so `:` and the `/` of an ARN stay inside the label.
fn push_label(out: &mut String, label: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in label.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
}

/// A Bedrock HTTP error: its code from `x-amzn-ErrorType` (or the body's
/// `__type`, or the status), and the message from the restJson1 body.
async fn read_error(res: Response<Incoming>) -> UpstreamError {
    let status = res.status();
    let header_code = res
        .headers()
        .get(X_AMZN_ERRORTYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(':').next().unwrap_or(v).to_owned());
    let body = match Limited::new(res.into_body(), MAX_ERROR_BYTES).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let field = |names: &[&str]| names.iter().find_map(|n| parsed.get(*n).and_then(|v| v.as_str()).map(str::to_owned));
    let code = header_code
        .or_else(|| field(&["__type", "code"]).map(|t| t.rsplit('#').next().unwrap_or(&t).to_owned()))
        .unwrap_or_else(|| code_for_status(status).to_owned());
    let message = field(&["message", "Message"]).unwrap_or_else(|| format!("HTTP {status}"));
    UpstreamError::Service { code, message }
}

fn code_for_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "ValidationException",
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        408 => "ModelTimeoutException",
        424 => "ModelErrorException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        500..=599 => "InternalServerException",
        _ => "UnknownError",
    }
}

pub(super) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// The body of InvokeModelWithResponseStream, read frame by frame. Dropping
/// it closes the connection, which cancels the invocation at Bedrock.
pub struct EventStream {
    body: Incoming,
    decoder: Decoder,
    done: bool,
    /// Over HTTP/2: the stream counted against its connection until the end.
    _slot: Option<StreamSlot>,
}

impl EventStream {
    /// The next Anthropic event's JSON; `None` once Bedrock closed the stream
    /// cleanly. Exceptions inside the stream become `UpstreamError::Service`.
    pub async fn recv(&mut self) -> Result<Option<Bytes>, UpstreamError> {
        loop {
            match self.decoder.next_event() {
                Ok(Some(StreamEvent::Chunk(json))) => return Ok(Some(json)),
                Ok(Some(StreamEvent::Exception { code, message } | StreamEvent::Error { code, message })) => {
                    self.done = true;
                    return Err(UpstreamError::Service { code, message });
                }
                // A newer kind of event that carries nothing a client could use.
                Ok(Some(StreamEvent::Unknown)) => continue,
                Ok(None) => {}
                Err(e) => {
                    self.done = true;
                    return Err(UpstreamError::Protocol(e.to_string()));
                }
            }
            if self.done {
                return Ok(None);
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.decoder.push(data);
                    }
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Err(UpstreamError::Interrupted(error_chain(&e)));
                }
                None => {
                    self.done = true;
                    if self.decoder.has_partial() {
                        return Err(UpstreamError::Interrupted("the stream ended inside a frame".into()));
                    }
                    return Ok(None);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(s: &str) -> String {
        let mut out = String::new();
        push_label(&mut out, s);
        out
    }

    #[test]
    fn model_ids_are_encoded_like_the_sdk_encodes_them() {
        assert_eq!(
            label("us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
            "us.anthropic.claude-sonnet-4-5-20250929-v1%3A0"
        );
        assert_eq!(
            label("arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc"),
            "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fabc"
        );
    }

    #[test]
    fn unknown_error_statuses_still_get_a_code_that_maps_to_the_right_client_error() {
        assert_eq!(code_for_status(StatusCode::TOO_MANY_REQUESTS), "ThrottlingException");
        assert_eq!(code_for_status(StatusCode::BAD_GATEWAY), "InternalServerException");
        assert_eq!(code_for_status(StatusCode::SERVICE_UNAVAILABLE), "ServiceUnavailableException");
    }

    #[test]
    fn the_host_is_signed_without_a_default_port() {
        let http = http_client(&tls_config(None).unwrap());
        let rt = |e: &str| {
            Runtime::new(http.clone(), None, e, "us-east-1".into(), Auth::Bearer(HeaderValue::from_static("x")))
                .unwrap()
        };
        assert_eq!(
            rt("https://bedrock-runtime.us-east-1.amazonaws.com:443").host,
            "bedrock-runtime.us-east-1.amazonaws.com"
        );
        assert_eq!(rt("http://127.0.0.1:8123/").host, "127.0.0.1:8123");
        assert_eq!(rt("http://127.0.0.1:8123/").base, "http://127.0.0.1:8123");
    }

    const MODEL: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
    const BODY: &[u8] =
        br#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#;

    /// A double over HTTPS that takes a Bedrock API key, and a file holding
    /// its certificate, as `AWS_CA_BUNDLE` names one.
    async fn https_double() -> (ccag_bedrock_double::Double, std::path::PathBuf) {
        let cfg = ccag_bedrock_double::DoubleConfig { api_key: Some("k".into()), ..Default::default() };
        let (double, pem) = ccag_bedrock_double::spawn_tls("127.0.0.1:0".parse().unwrap(), cfg).await.unwrap();
        let path = std::env::temp_dir().join(format!("ccag-ca-{}-{}.pem", std::process::id(), double.addr().port()));
        std::fs::write(&path, pem).unwrap();
        (double, path)
    }

    fn runtime(tls: &rustls::ClientConfig, h2: Option<Arc<H2Pool>>, url: &str) -> Runtime {
        let auth = Auth::Bearer(HeaderValue::from_static("Bearer k"));
        Runtime::new(http_client(tls), h2, url, "us-east-1".into(), auth).unwrap()
    }

    #[tokio::test]
    async fn a_private_ca_named_by_aws_ca_bundle_is_trusted() {
        let (double, ca) = https_double().await;
        let rt = runtime(&tls_config(Some(&ca)).unwrap(), None, &double.url());
        let answer = rt.invoke(MODEL, BODY.to_vec(), Principal::default()).await.unwrap();
        assert!(answer.starts_with(b"{"));
    }

    #[tokio::test]
    async fn without_the_bundle_a_self_signed_bedrock_is_unreachable() {
        let (double, _ca) = https_double().await;
        let rt = runtime(&tls_config(None).unwrap(), None, &double.url());
        let err = rt.invoke(MODEL, BODY.to_vec(), Principal::default()).await.unwrap_err();
        assert!(matches!(err, UpstreamError::Unreachable(_)), "{err:?}");
    }

    #[test]
    fn a_bundle_without_a_certificate_is_refused() {
        let path = std::env::temp_dir().join(format!("ccag-empty-ca-{}.pem", std::process::id()));
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err = tls_config(Some(&path)).unwrap_err();
        assert!(err.contains("no PEM certificate"), "{err}");
    }

    #[tokio::test]
    async fn over_http2_concurrent_streams_share_one_connection() {
        let (double, ca) = https_double().await;
        let mut tls = tls_config(Some(&ca)).unwrap();
        let h1 = tls.clone();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let pool = Arc::new(H2Pool::new("127.0.0.1".into(), double.addr().port(), Arc::new(tls), 100).unwrap());
        let rt = runtime(&h1, Some(pool), &double.url());
        let mut streams = Vec::new();
        for _ in 0..3 {
            streams.push(rt.stream(MODEL, BODY.to_vec(), Principal::default()).await.unwrap());
        }
        for s in &mut streams {
            assert!(s.recv().await.unwrap().is_some());
        }
        assert_eq!(double.stats().connections_open, 1);
        let answer = rt.invoke(MODEL, BODY.to_vec(), Principal::default()).await.unwrap();
        assert!(answer.starts_with(b"{"));
        assert_eq!(double.stats().connections_open, 1);
    }

    #[test]
    fn an_endpoint_without_a_scheme_is_refused() {
        let auth = Auth::Bearer(HeaderValue::from_static("x"));
        assert!(Runtime::new(
            http_client(&tls_config(None).unwrap()),
            None,
            "bedrock.example",
            "us-east-1".into(),
            auth
        )
        .is_err());
    }
}
