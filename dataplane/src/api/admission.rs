//! The one step between a protected route and its handler: authenticate the
//! key against the configuration, and, for the routes that spend Bedrock
//! capacity, admit the request under the rate limits with its usage meter
//! armed. Handlers receive what this step produced and cannot skip it.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::Request;
use hyper::body::Incoming;

use super::limits::Subjects;
use super::AppState;
use crate::auth;
use crate::config::{KeyEntry, RuntimeConfig};
use crate::http::error::ApiError;
use crate::stream::Usage;
use crate::usage::{Meter, Outcome};

/// An authenticated request: the configuration it is judged by, and its key.
pub struct Caller {
    pub cfg: Arc<RuntimeConfig>,
    pub key: Arc<KeyEntry>,
}

/// A request admitted under the rate limits. Its meter records the request
/// whatever happens next, even when the client leaves.
pub struct Admitted {
    pub meter: Meter,
    pub limits: crate::ratelimit::Admitted,
}

pub fn authenticate(state: &AppState, req: &Request<Incoming>) -> Result<Caller, ApiError> {
    let cfg = state
        .config
        .get()
        .ok_or_else(|| ApiError::Unavailable("the gateway has not received its configuration yet".into()))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let key = auth::authenticate(&cfg, req.headers(), now)?.clone();
    tracing::Span::current().record("key_id", key.id.as_str());
    Ok(Caller { cfg, key })
}

impl Caller {
    /// Counts the request against its key, user and team; a refusal is
    /// recorded (429, `rate_limited`) and returned as the answer.
    pub fn admit(&self, state: &Arc<AppState>, rid: &str, operation: &'static str) -> Result<Admitted, ApiError> {
        let mut meter = Meter::start(rid, operation);
        // A client that leaves before the response makes hyper drop the
        // handler's future; the meter then still records the request.
        meter.record_on_drop(state.usage.clone());
        meter.record.key_id.clone_from(&self.key.id);
        meter.record.user_id.clone_from(&self.key.user_id);
        meter.record.team_id.clone_from(&self.key.team_id);
        let subjects = Subjects::of(&self.cfg, &self.key);
        match state.limiter.admit(subjects.as_slice(), std::time::Instant::now()) {
            Ok(limits) => {
                meter.record.tpm = subjects.tpm();
                Ok(Admitted { meter, limits })
            }
            Err(refused) => {
                state.usage.record(meter.finish(429, Outcome::RateLimited, Usage::default()));
                Err(ApiError::OverLimit(refused))
            }
        }
    }
}
