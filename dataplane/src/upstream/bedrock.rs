use std::time::Duration;

use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::error::ResponseStreamError;
use aws_sdk_bedrockruntime::types::{CountTokensInput, InvokeModelTokensRequest, ResponseStream};
use aws_sdk_bedrockruntime::Client;
use bytes::Bytes;

use super::UpstreamError;

pub type EventStream =
    aws_sdk_bedrockruntime::primitives::event_stream::EventReceiver<ResponseStream, ResponseStreamError>;

/// One SDK client, shared by every request (it pools connections).
#[derive(Clone)]
pub struct Bedrock {
    client: Client,
    region: String,
}

impl Bedrock {
    /// Region, credentials and endpoint come from the standard AWS chain
    /// (`AWS_REGION`, profiles, IMDS, `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`).
    pub async fn from_env() -> Self {
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
        Bedrock { client: Client::new(&conf), region }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub async fn invoke(&self, model: &str, body: Vec<u8>) -> Result<Bytes, UpstreamError> {
        let out = self
            .client
            .invoke_model()
            .model_id(model)
            .content_type("application/json")
            .accept("application/json")
            .body(Blob::new(body))
            .send()
            .await
            .map_err(UpstreamError::from_sdk)?;
        Ok(Bytes::from(out.body.into_inner()))
    }

    pub async fn stream(&self, model: &str, body: Vec<u8>) -> Result<EventStream, UpstreamError> {
        let out = self
            .client
            .invoke_model_with_response_stream()
            .model_id(model)
            .content_type("application/json")
            .accept("application/json")
            .body(Blob::new(body))
            .send()
            .await
            .map_err(UpstreamError::from_sdk)?;
        Ok(out.body)
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
