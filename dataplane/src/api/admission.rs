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
    /// How the request's budgets stand, for the response headers.
    pub budget: Option<crate::budget::Standing>,
}

pub fn authenticate(state: &AppState, req: &Request<Incoming>) -> Result<Caller, ApiError> {
    let cfg = state
        .config
        .get()
        .ok_or_else(|| ApiError::Unavailable("the gateway has not received its configuration yet".into()))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let key = auth::authenticate(&cfg, &state.tokens, req.headers(), now)?;
    tracing::Span::current().record("key_id", key.id.as_str());
    Ok(Caller { cfg, key })
}

impl Caller {
    /// Counts the request against its key, user and team; a refusal is
    /// recorded (429, `rate_limited`) and returned as the answer. Budgets do
    /// not apply (token counting is never blocked).
    pub fn admit(&self, state: &Arc<AppState>, rid: &str, operation: &'static str) -> Result<Admitted, ApiError> {
        self.admit_under(state, rid, operation, false)
    }

    /// As `admit`, for a request that spends: its budgets are judged first,
    /// and a spent budget refuses it (recorded as `budget_blocked`).
    pub fn admit_spending(
        &self,
        state: &Arc<AppState>,
        rid: &str,
        operation: &'static str,
    ) -> Result<Admitted, ApiError> {
        self.admit_under(state, rid, operation, true)
    }

    fn admit_under(
        &self,
        state: &Arc<AppState>,
        rid: &str,
        operation: &'static str,
        spending: bool,
    ) -> Result<Admitted, ApiError> {
        use crate::budget::Verdict;
        let mut meter = Meter::start(rid, operation);
        // A client that leaves before the response makes hyper drop the
        // handler's future; the meter then still records the request.
        meter.record_on_drop(state.usage.clone());
        meter.record.key_id.clone_from(&self.key.id);
        meter.record.user_id.clone_from(&self.key.user_id);
        meter.record.team_id.clone_from(&self.key.team_id);
        let verdict = if spending {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
            state.config.budgets.judge(&self.key.user_id, &self.key.team_id, now)
        } else {
            Verdict::Unbudgeted
        };
        let mut subjects = Subjects::of(&self.cfg, &self.key);
        let budget = verdict.standing().copied();
        match verdict {
            Verdict::Block { standing, message, retry_after_secs } => {
                state.observer.metrics.budget_refused("exhausted");
                state.usage.record(meter.finish(429, Outcome::BudgetBlocked, Usage::default()));
                return Err(ApiError::BudgetExhausted { message, retry_after_secs, standing });
            }
            Verdict::Hold { standing } => {
                state.observer.metrics.budget_refused("held");
                state.usage.record(meter.finish(429, Outcome::RateLimited, Usage::default()));
                return Err(ApiError::BudgetHeld { standing });
            }
            Verdict::Shape { rpm, scope, .. } => {
                let id = if scope == ccag_proto::config::v1::LimitScope::Team {
                    &self.key.team_id
                } else {
                    &self.key.user_id
                };
                subjects.shape(id, rpm);
            }
            Verdict::Admit(_) | Verdict::Unbudgeted => {}
        }
        match state.limiter.admit(subjects.as_slice(), std::time::Instant::now()) {
            Ok(limits) => {
                meter.record.tpm = subjects.tpm();
                Ok(Admitted { meter, limits, budget })
            }
            Err(refused) => {
                state.usage.record(meter.finish(429, Outcome::RateLimited, Usage::default()));
                use crate::ratelimit::Scope;
                match (refused.scope, budget) {
                    (Scope::Shape, Some(standing)) => {
                        state.observer.metrics.budget_refused("shaped");
                        Err(ApiError::BudgetShaped { refused, standing })
                    }
                    (scope, _) => {
                        state.observer.metrics.rate_limited(match scope {
                            Scope::Key => "key",
                            Scope::User => "user",
                            Scope::Team => "team",
                            Scope::Shape => "shape",
                        });
                        Err(ApiError::OverLimit(refused))
                    }
                }
            }
        }
    }
}
