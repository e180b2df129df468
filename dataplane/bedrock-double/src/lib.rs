//! A test double of Amazon Bedrock Runtime for CCAG.
//!
//! It serves InvokeModel, InvokeModelWithResponseStream and CountTokens over
//! HTTP/1.1 (and over TLS with [`spawn_tls`], HTTP/2 too), checks SigV4 signatures, validates Anthropic request bodies the
//! way Bedrock does, and answers with real `application/vnd.amazon.eventstream`
//! frames. Tests steer it with `[double:…]` markers in the last user message
//! (see [`behaviour::Directives`]) and observe it at `/_double/stats`,
//! `/_double/requests` and `/_double/reset`.
//!
//! One double plays one Bedrock endpoint (an account in a region), so that a
//! gateway routing over several can be tested with several doubles:
//!
//! | Variable | Effect |
//! |---|---|
//! | `DOUBLE_ACCESS_KEY_ID`, `DOUBLE_SECRET_ACCESS_KEY` | the static key accepted (default `AKIDCCAGDOUBLE` / `ccag-double-secret`) |
//! | `DOUBLE_REGION` | a SigV4 scope naming another region is refused (403 InvalidSignatureException), and so are profile ids of another geo (400); also the region of `/inference-profiles` (default `us-east-1`) |
//! | `DOUBLE_ROLE_ARN` + `DOUBLE_STS_STATE_URL` | only credentials moto's STS issued for that role are accepted, checked against moto's `GET /moto-api/data.json` ([`auth`], [`sts`]) |
//! | `DOUBLE_API_KEY` | only `Authorization: Bearer <key>` is accepted |
//! | `DOUBLE_MODELS` | comma-separated Anthropic ids: the only models served (others: 400 "The provided model identifier is invalid.") and listed |
//! | `DOUBLE_TTFT_MS`, `DOUBLE_INTER_TOKEN_MS`, `DOUBLE_CHUNKS` | timing and size of replies |
//!
//! Besides the model operations it serves Bedrock's ListInferenceProfiles
//! (`GET /inference-profiles`, [`profiles`]), and tests inject endpoint-wide
//! faults with `POST /_double/fault` ([`faults`]).
//!
//! Test support only; never shipped.

pub mod auth;
pub mod behaviour;
pub mod cache;
pub mod faults;
pub mod frames;
pub mod models;
pub mod profiles;
pub mod search;
pub mod server;
pub mod sigv4;
pub mod sts;
pub mod tls;
pub mod validate;

pub use faults::{FaultKind, FaultSpec};
pub use server::{spawn, spawn_tls, Double, RecordedRequest, StatsSnapshot};

/// Access key id accepted by default.
pub const DEFAULT_ACCESS_KEY_ID: &str = "AKIDCCAGDOUBLE";
/// Secret access key accepted by default.
pub const DEFAULT_SECRET_ACCESS_KEY: &str = "ccag-double-secret";
/// The region `/inference-profiles` lists for when `DOUBLE_REGION` is unset.
pub const DEFAULT_REGION: &str = "us-east-1";

/// How the double behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoubleConfig {
    /// The only access key id accepted.
    pub access_key_id: String,
    /// Its secret.
    pub secret_access_key: String,
    /// Delay before the first frame (and before a non-streaming answer).
    pub ttft_ms: u64,
    /// Delay between frames.
    pub inter_token_ms: u64,
    /// Number of text deltas the reply is split into.
    pub chunks: usize,
    /// The only region a credential scope may name; `None`: any.
    pub region: Option<String>,
    /// Accept only sessions of this role (moto-issued), not the static key.
    pub role_arn: Option<String>,
    /// moto's `GET /moto-api/data.json`, where those sessions are looked up.
    pub sts_state_url: Option<String>,
    /// Accept only `Authorization: Bearer` with this key.
    pub api_key: Option<String>,
    /// Anthropic ids of the only models served; `None`: every known one.
    pub models: Option<Vec<String>>,
}

impl Default for DoubleConfig {
    fn default() -> Self {
        DoubleConfig {
            access_key_id: DEFAULT_ACCESS_KEY_ID.to_string(),
            secret_access_key: DEFAULT_SECRET_ACCESS_KEY.to_string(),
            ttft_ms: 0,
            inter_token_ms: 0,
            chunks: 3,
            region: None,
            role_arn: None,
            sts_state_url: None,
            api_key: None,
            models: None,
        }
    }
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => match v.trim().parse() {
            Ok(n) => n,
            Err(_) => {
                eprintln!("ccag-bedrock-double: ignoring {name}={v:?} (not a number)");
                default
            }
        },
        _ => default,
    }
}

fn env_string(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// `DOUBLE_MODELS`: comma-separated Anthropic ids (a foundation id such as
/// `anthropic.claude-…-v1:0` is taken for its Anthropic id).
pub fn parse_models(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(|m| if m.starts_with("anthropic.") { models::anthropic_id(m) } else { m.to_string() })
        .collect()
}

/// Says on stderr which listed models the double does not know: a typo
/// there would otherwise show up only as a puzzling 400.
fn warn_unknown_models(list: &[String]) {
    for m in list {
        if !models::FOUNDATION_IDS.iter().any(|f| models::anthropic_id(f) == *m) {
            eprintln!("ccag-bedrock-double: DOUBLE_MODELS names {m:?}, a model the double does not know");
        }
    }
}

impl DoubleConfig {
    /// Reads `DOUBLE_ACCESS_KEY_ID`, `DOUBLE_SECRET_ACCESS_KEY`,
    /// `DOUBLE_TTFT_MS`, `DOUBLE_INTER_TOKEN_MS`, `DOUBLE_CHUNKS`,
    /// `DOUBLE_REGION`, `DOUBLE_ROLE_ARN`, `DOUBLE_STS_STATE_URL`,
    /// `DOUBLE_API_KEY` and `DOUBLE_MODELS`; unset, empty or unparsable values
    /// keep their defaults.
    pub fn from_env() -> Self {
        let d = DoubleConfig::default();
        let models = env_string("DOUBLE_MODELS").map(|v| parse_models(&v)).filter(|m| !m.is_empty());
        if let Some(list) = &models {
            warn_unknown_models(list);
        }
        let cfg = DoubleConfig {
            access_key_id: env_string("DOUBLE_ACCESS_KEY_ID").unwrap_or(d.access_key_id),
            secret_access_key: env_string("DOUBLE_SECRET_ACCESS_KEY").unwrap_or(d.secret_access_key),
            ttft_ms: env_number("DOUBLE_TTFT_MS", d.ttft_ms),
            inter_token_ms: env_number("DOUBLE_INTER_TOKEN_MS", d.inter_token_ms),
            chunks: env_number("DOUBLE_CHUNKS", d.chunks),
            region: env_string("DOUBLE_REGION"),
            role_arn: env_string("DOUBLE_ROLE_ARN"),
            sts_state_url: env_string("DOUBLE_STS_STATE_URL"),
            api_key: env_string("DOUBLE_API_KEY"),
            models,
        };
        if cfg.role_arn.is_some() && cfg.sts_state_url.is_none() {
            eprintln!("ccag-bedrock-double: DOUBLE_ROLE_ARN needs DOUBLE_STS_STATE_URL; every SigV4 request will fail");
        }
        cfg
    }

    /// The region the double plays: `DOUBLE_REGION`, else [`DEFAULT_REGION`].
    pub fn region_or_default(&self) -> &str {
        self.region.as_deref().unwrap_or(DEFAULT_REGION)
    }

    /// Whether the model with this Anthropic id is served here.
    pub fn serves(&self, anthropic_id: &str) -> bool {
        self.models.as_ref().is_none_or(|list| list.iter().any(|m| m == anthropic_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_lists_take_anthropic_and_foundation_ids() {
        assert_eq!(
            parse_models(" claude-sonnet-4-5-20250929, anthropic.claude-opus-4-6-v1 ,,"),
            ["claude-sonnet-4-5-20250929", "claude-opus-4-6"]
        );
    }

    #[test]
    fn without_a_model_list_every_model_is_served() {
        let all = DoubleConfig::default();
        assert!(all.serves("claude-opus-4-6"));
        let some = DoubleConfig { models: Some(vec!["claude-opus-4-6".into()]), ..DoubleConfig::default() };
        assert!(some.serves("claude-opus-4-6"));
        assert!(!some.serves("claude-sonnet-4-5-20250929"));
    }
}
