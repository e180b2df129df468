use std::sync::Arc;
use std::time::Duration;

use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{CountTokensInput, InvokeModelTokensRequest};
use aws_sdk_bedrockruntime::Client;
use aws_types::service_config::ServiceConfigKey;
use aws_types::SdkConfig;
use bytes::Bytes;
use http::HeaderValue;

use super::client::{Auth, EventStream, Runtime};
use super::credentials::CredentialCache;
use super::UpstreamError;

/// Bedrock Runtime for every request: one pooled client for the invocations
/// and one SDK client for CountTokens, shared by every request.
#[derive(Clone)]
pub struct Bedrock {
    runtime: Arc<Runtime>,
    client: Client,
    region: String,
}

impl Bedrock {
    /// Region, credentials and endpoint come from the standard AWS chain
    /// (`AWS_REGION`, profiles, IMDS, `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`).
    pub async fn from_env() -> Result<Self, String> {
        let region = RegionProviderChain::default_provider().or_else(Region::from_static("us-east-1"));
        let conf = aws_config::defaults(BehaviorVersion::latest())
            .region(region)
            // Claude Code and the SDKs already retry 429/5xx with backoff; an
            // SDK retry underneath would multiply every retry the client makes.
            .retry_config(RetryConfig::standard().with_max_attempts(1))
            .timeout_config(TimeoutConfig::builder().connect_timeout(Duration::from_secs(5)).build())
            .load()
            .await;
        let region = conf.region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".into());
        let endpoint = endpoint(&conf, &region);
        let auth = match service_setting(&conf, "bedrock", "AWS_BEARER_TOKEN", "") {
            Some(token) => Auth::Bearer(
                HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| "AWS_BEARER_TOKEN_BEDROCK is not a valid header value".to_string())?,
            ),
            None => Auth::SigV4(CredentialCache::new(conf.credentials_provider())),
        };
        let runtime = Runtime::new(&endpoint, region.clone(), auth)?;
        tracing::info!(%endpoint, %region, "Bedrock Runtime");
        Ok(Bedrock { runtime: Arc::new(runtime), client: Client::new(&conf), region })
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub async fn invoke(&self, model: &str, body: Vec<u8>) -> Result<Bytes, UpstreamError> {
        self.runtime.invoke(model, body).await
    }

    pub async fn stream(&self, model: &str, body: Vec<u8>) -> Result<EventStream, UpstreamError> {
        self.runtime.stream(model, body).await
    }

    /// Starts a stream and reads its first event, both within
    /// `first_byte_timeout`: a response's status is held until then, so that
    /// a refusal before any content is still a real HTTP status.
    pub async fn open_stream(
        &self,
        model: &str,
        body: Vec<u8>,
        first_byte_timeout: std::time::Duration,
    ) -> Result<(EventStream, Bytes), UpstreamError> {
        let deadline = tokio::time::Instant::now() + first_byte_timeout;
        let mut rx = match tokio::time::timeout_at(deadline, self.stream(model, body)).await {
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

    pub async fn count_tokens(&self, foundation_model: &str, body: Vec<u8>) -> Result<i32, UpstreamError> {
        let input = InvokeModelTokensRequest::builder()
            .body(Blob::new(body))
            .build()
            .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
        let out = self
            .client
            .count_tokens()
            .model_id(foundation_model)
            .input(CountTokensInput::InvokeModel(input))
            .send()
            .await
            .map_err(UpstreamError::from_sdk)?;
        Ok(out.input_tokens)
    }
}

/// A per-service setting as the SDKs read it: the service's own environment
/// variable (e.g. `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`), then its profile entry.
fn service_setting(conf: &SdkConfig, service_id: &str, env: &str, profile: &str) -> Option<String> {
    let key = ServiceConfigKey::builder().service_id(service_id).env(env).profile(profile).build().ok()?;
    conf.service_config()?.load_config(key).filter(|v| !v.is_empty())
}

/// Where the invocations go, resolved as aws-sdk-bedrockruntime resolves it:
/// `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` (or the profile's `bedrock_runtime`
/// `endpoint_url`), then `AWS_ENDPOINT_URL`, then the regional endpoint
/// (FIPS when `AWS_USE_FIPS_ENDPOINT` is set).
fn endpoint(conf: &SdkConfig, region: &str) -> String {
    if let Some(url) = service_setting(conf, "Bedrock Runtime", "AWS_ENDPOINT_URL", "endpoint_url")
        .or_else(|| conf.endpoint_url().map(str::to_owned))
    {
        return url;
    }
    let fips = if conf.use_fips() == Some(true) { "-fips" } else { "" };
    let suffix = if region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" };
    format!("https://bedrock-runtime{fips}.{region}.{suffix}")
}
