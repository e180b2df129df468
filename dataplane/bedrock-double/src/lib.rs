//! A test double of Amazon Bedrock Runtime for CCAG.
//!
//! It serves InvokeModel, InvokeModelWithResponseStream and CountTokens over
//! HTTP/1.1, checks SigV4 signatures, validates Anthropic request bodies the
//! way Bedrock does, and answers with real `application/vnd.amazon.eventstream`
//! frames. Tests steer it with `[double:…]` markers in the last user message
//! (see [`behaviour::Directives`]) and observe it at `/_double/stats`,
//! `/_double/requests` and `/_double/reset`.
//!
//! Test support only; never shipped.

pub mod behaviour;
pub mod cache;
pub mod frames;
pub mod models;
pub mod search;
pub mod server;
pub mod sigv4;
pub mod validate;

pub use server::{spawn, Double, RecordedRequest, StatsSnapshot};

/// Access key id accepted by default.
pub const DEFAULT_ACCESS_KEY_ID: &str = "AKIDCCAGDOUBLE";
/// Secret access key accepted by default.
pub const DEFAULT_SECRET_ACCESS_KEY: &str = "ccag-double-secret";

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
}

impl Default for DoubleConfig {
    fn default() -> Self {
        DoubleConfig {
            access_key_id: DEFAULT_ACCESS_KEY_ID.to_string(),
            secret_access_key: DEFAULT_SECRET_ACCESS_KEY.to_string(),
            ttft_ms: 0,
            inter_token_ms: 0,
            chunks: 3,
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

impl DoubleConfig {
    /// Reads `DOUBLE_ACCESS_KEY_ID`, `DOUBLE_SECRET_ACCESS_KEY`,
    /// `DOUBLE_TTFT_MS`, `DOUBLE_INTER_TOKEN_MS` and `DOUBLE_CHUNKS`; unset or
    /// unparsable values keep their defaults.
    pub fn from_env() -> Self {
        let d = DoubleConfig::default();
        let string =
            |name: &str, default: String| std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or(default);
        DoubleConfig {
            access_key_id: string("DOUBLE_ACCESS_KEY_ID", d.access_key_id),
            secret_access_key: string("DOUBLE_SECRET_ACCESS_KEY", d.secret_access_key),
            ttft_ms: env_number("DOUBLE_TTFT_MS", d.ttft_ms),
            inter_token_ms: env_number("DOUBLE_INTER_TOKEN_MS", d.inter_token_ms),
            chunks: env_number("DOUBLE_CHUNKS", d.chunks),
        }
    }
}
