//! The one error type a client ever sees. Each variant maps to exactly one
//! HTTP status and one Anthropic `error.type`.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};

use super::body::{full, ResBody};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    Authentication(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("request body is {0} bytes or larger; the limit is {1} bytes")]
    RequestTooLarge(u64, u64),
    #[error("{message}")]
    RateLimited { message: String, retry_after_secs: u64 },
    /// A gateway rate limit (key, user or team) is exhausted.
    #[error("{0}")]
    OverLimit(crate::ratelimit::Refused),
    /// A budget is spent: not worth retrying before `retry_after_secs`.
    #[error("{message}")]
    BudgetExhausted { message: String, retry_after_secs: u64, standing: crate::budget::Standing },
    /// This data plane has spent its part of a budget's headroom and waits
    /// for the control plane's next count.
    #[error(
        "the budget's spend is being counted across the gateway's data planes; retry in {} s",
        crate::budget::HOLD_RETRY_SECS
    )]
    BudgetHeld { standing: crate::budget::Standing },
    /// A budget past its `shape` threshold, at its reduced rate.
    #[error("budget past its shaping threshold: limited to {} requests per minute; retry after {} s", .refused.limit, .refused.retry_after_secs)]
    BudgetShaped { refused: crate::ratelimit::Refused, standing: crate::budget::Standing },
    #[error("{0}")]
    Api(String),
    #[error("{0}")]
    NotSupported(String),
    #[error("{0}")]
    BadGateway(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Overloaded(String),
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Authentication(_) => StatusCode::UNAUTHORIZED,
            ApiError::PermissionDenied(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RequestTooLarge(..) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RateLimited { .. }
            | ApiError::OverLimit(_)
            | ApiError::BudgetExhausted { .. }
            | ApiError::BudgetHeld { .. }
            | ApiError::BudgetShaped { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Api(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::NotSupported(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            // 529 is Anthropic's "overloaded"; clients retry it.
            ApiError::Overloaded(_) => StatusCode::from_u16(529).expect("529 is a valid status"),
        }
    }

    /// The Anthropic `error.type`.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(_) | ApiError::MethodNotAllowed(_) => "invalid_request_error",
            ApiError::Authentication(_) => "authentication_error",
            ApiError::PermissionDenied(_) => "permission_error",
            ApiError::NotFound(_) => "not_found_error",
            ApiError::RequestTooLarge(..) => "request_too_large",
            ApiError::RateLimited { .. }
            | ApiError::OverLimit(_)
            | ApiError::BudgetHeld { .. }
            | ApiError::BudgetShaped { .. } => "rate_limit_error",
            // Not a throttle: Claude Code must not retry it.
            ApiError::BudgetExhausted { .. } => "billing_error",
            ApiError::Api(_) | ApiError::BadGateway(_) | ApiError::Unavailable(_) => "api_error",
            ApiError::NotSupported(_) => "not_supported",
            ApiError::Timeout(_) => "timeout_error",
            ApiError::Overloaded(_) => "overloaded_error",
        }
    }

    /// Errors that a retry cannot fix carry `x-should-retry: false`, so that
    /// Claude Code does not spend minutes retrying them.
    fn should_retry(&self) -> Option<&'static str> {
        match self {
            ApiError::Authentication(_)
            | ApiError::PermissionDenied(_)
            | ApiError::NotSupported(_)
            | ApiError::BudgetExhausted { .. } => Some("false"),
            _ => None,
        }
    }

    /// `{"type":"error","error":{...},"request_id":...}`
    pub fn body_json(&self, request_id: &str) -> String {
        serde_json::json!({
            "type": "error",
            "error": {"type": self.kind(), "message": self.to_string()},
            "request_id": request_id,
        })
        .to_string()
    }

    /// The same error as one SSE `error` event, for failures after the
    /// response status has already been sent.
    pub fn sse_event(&self, request_id: &str) -> Bytes {
        let mut out = String::with_capacity(128);
        out.push_str("event: error\ndata: ");
        out.push_str(&self.body_json(request_id));
        out.push_str("\n\n");
        Bytes::from(out)
    }

    pub fn into_response(self, request_id: &str) -> Response<ResBody> {
        let mut res = Response::new(full(self.body_json(request_id)));
        *res.status_mut() = self.status();
        let h = res.headers_mut();
        h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(v) = self.should_retry() {
            h.insert("x-should-retry", HeaderValue::from_static(v));
        }
        match &self {
            ApiError::RateLimited { retry_after_secs, .. } => {
                h.insert(http::header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            ApiError::OverLimit(r) => {
                h.insert(http::header::RETRY_AFTER, HeaderValue::from(r.retry_after_secs));
                super::ratelimit_headers::budget_headers(h, "requests", r.requests.as_ref());
                super::ratelimit_headers::budget_headers(h, "tokens", r.tokens.as_ref());
            }
            ApiError::BudgetExhausted { retry_after_secs, standing, .. } => {
                h.insert(http::header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
                super::budget_headers::add(h, standing);
            }
            ApiError::BudgetHeld { standing } => {
                h.insert(http::header::RETRY_AFTER, HeaderValue::from(crate::budget::HOLD_RETRY_SECS));
                super::budget_headers::add(h, standing);
            }
            ApiError::BudgetShaped { refused, standing } => {
                h.insert(http::header::RETRY_AFTER, HeaderValue::from(refused.retry_after_secs));
                super::budget_headers::add(h, standing);
            }
            _ => {}
        }
        res
    }
}
