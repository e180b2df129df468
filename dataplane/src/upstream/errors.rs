use crate::http::error::ApiError;

/// How long a throttled client should wait. Bedrock sends no hint; a couple of
/// seconds lets per-minute quotas recover without stalling Claude Code.
const THROTTLE_RETRY_AFTER_SECS: u64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// A modelled Bedrock error: its code (e.g. `ThrottlingException`, or
    /// `throttlingException` inside a stream) and message.
    #[error("Bedrock {code}: {message}")]
    Service { code: String, message: String },
    #[error("Bedrock did not answer in time")]
    Timeout,
    #[error("could not reach Bedrock: {0}")]
    Unreachable(String),
    #[error("unexpected answer from Bedrock: {0}")]
    Protocol(String),
    /// The connection to Bedrock broke after the answer had started.
    #[error("the connection to Bedrock was lost: {0}")]
    Interrupted(String),
    #[error("no usable AWS credentials: {0}")]
    Credentials(String),
}

impl UpstreamError {
    /// What failing over to another endpoint could cure: throttling, the
    /// service's own failures, an endpoint that cannot be reached or did not
    /// answer in time, missing credentials, and an account or region that
    /// lacks the model. Never a request Bedrock found invalid.
    pub fn failover(&self) -> Failover {
        match self {
            UpstreamError::Timeout | UpstreamError::Unreachable(_) | UpstreamError::Credentials(_) => Failover::Failure,
            UpstreamError::Protocol(_) | UpstreamError::Interrupted(_) => Failover::Failure,
            UpstreamError::Service { code, .. } => {
                let code = code.split(':').next().unwrap_or(code);
                let is = |c: &str| code.eq_ignore_ascii_case(c);
                if is("ThrottlingException") || is("ServiceQuotaExceededException") || is("TooManyRequestsException") {
                    Failover::Throttled
                } else if is("InternalServerException")
                    || is("ServiceUnavailableException")
                    || is("ModelNotReadyException")
                    || is("ModelErrorException")
                    || is("ModelTimeoutException")
                    || is("ModelStreamErrorException")
                    || is("InternalFailure")
                    || is("ServiceFailure")
                    || is("UnrecognizedClientException")
                    || is("InvalidSignatureException")
                    || is("ExpiredTokenException")
                {
                    Failover::Failure
                } else if is("AccessDeniedException") || is("ResourceNotFoundException") {
                    Failover::Elsewhere
                } else {
                    Failover::No
                }
            }
        }
    }

    /// The ValidationException message, if this is one.
    pub fn validation_message(&self) -> Option<&str> {
        match self {
            UpstreamError::Service { code, message } if code.eq_ignore_ascii_case("ValidationException") => {
                Some(message)
            }
            _ => None,
        }
    }

    /// The error as the client sees it (docs/protocol.md §2.5). `mid_stream` errors
    /// arrive after the status was sent; there, server-side failures become
    /// `overloaded_error`, which Claude Code retries.
    pub fn to_api(&self, mid_stream: bool) -> ApiError {
        let (code, message) = match self {
            UpstreamError::Timeout => return ApiError::Timeout("Bedrock did not answer in time".into()),
            UpstreamError::Unreachable(_) => return ApiError::BadGateway("the gateway could not reach Bedrock".into()),
            UpstreamError::Protocol(_) => {
                return ApiError::BadGateway("the gateway received an unexpected answer from Bedrock".into())
            }
            // Claude Code and the SDKs retry an overloaded_error.
            UpstreamError::Interrupted(_) => {
                return ApiError::Overloaded("the connection to Bedrock was lost before the answer was complete".into())
            }
            UpstreamError::Credentials(_) => {
                return ApiError::Api("the gateway has no usable AWS credentials; see its log".into())
            }
            UpstreamError::Service { code, message } => (code.as_str(), message.as_str()),
        };
        let code = code.split(':').next().unwrap_or(code).to_ascii_lowercase();
        let message = sanitize(message);
        match code.as_str() {
            "validationexception" => ApiError::InvalidRequest(message),
            "accessdeniedexception" => ApiError::PermissionDenied(
                "Bedrock denied access to this model for the gateway's AWS account; ask an administrator to enable it"
                    .into(),
            ),
            "resourcenotfoundexception" => ApiError::NotFound(message),
            "throttlingexception" | "servicequotaexceededexception" => {
                ApiError::RateLimited { message, retry_after_secs: THROTTLE_RETRY_AFTER_SECS }
            }
            "modelnotreadyexception" | "serviceunavailableexception" | "modelstreamerrorexception" => {
                ApiError::Overloaded(message)
            }
            "modeltimeoutexception" => ApiError::Timeout(message),
            "internalserverexception" | "modelerrorexception" if mid_stream => ApiError::Overloaded(message),
            "unrecognizedclientexception" | "invalidsignatureexception" | "expiredtokenexception" => {
                ApiError::Api("Bedrock rejected the gateway's AWS credentials".into())
            }
            _ => ApiError::Api(message),
        }
    }
}

/// Bedrock messages can name ARNs and account ids; a client must not see them.
/// Context-length wordings (which Claude Code's auto-compact keys on) contain
/// neither and pass through verbatim.
fn sanitize(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for (i, word) in message.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let bare = word.trim_matches(|c: char| !c.is_ascii_alphanumeric());
        if word.contains("arn:aws") {
            out.push_str("<redacted-arn>");
        } else if bare.len() == 12 && bare.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&word.replace(bare, "<redacted-account>"));
        } else {
            out.push_str(word);
        }
    }
    out
}

/// Whether, and why, a failed call may move to another endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failover {
    /// The request itself is at fault: the same answer anywhere.
    No,
    /// Throttled: another endpoint has its own quota.
    Throttled,
    /// The endpoint failed; it counts against its circuit.
    Failure,
    /// This endpoint cannot serve the model (access or region), but it is
    /// healthy.
    Elsewhere,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_another_endpoint_could_cure_fail_over() {
        assert_eq!(svc("ThrottlingException", "x").failover(), Failover::Throttled);
        assert_eq!(svc("throttlingException", "x").failover(), Failover::Throttled);
        assert_eq!(svc("ServiceUnavailableException", "x").failover(), Failover::Failure);
        assert_eq!(svc("InternalServerException", "x").failover(), Failover::Failure);
        assert_eq!(UpstreamError::Timeout.failover(), Failover::Failure);
        assert_eq!(UpstreamError::Unreachable("x".into()).failover(), Failover::Failure);
        assert_eq!(svc("AccessDeniedException", "x").failover(), Failover::Elsewhere);
        assert_eq!(svc("ValidationException", "x").failover(), Failover::No);
    }

    fn svc(code: &str, msg: &str) -> UpstreamError {
        UpstreamError::Service { code: code.into(), message: msg.into() }
    }

    #[test]
    fn every_bedrock_error_maps_to_its_anthropic_status() {
        let cases = [
            ("ValidationException", 400, "invalid_request_error"),
            ("AccessDeniedException", 403, "permission_error"),
            ("ResourceNotFoundException", 404, "not_found_error"),
            ("ThrottlingException", 429, "rate_limit_error"),
            ("ServiceQuotaExceededException", 429, "rate_limit_error"),
            ("ModelNotReadyException", 529, "overloaded_error"),
            ("ModelTimeoutException", 504, "timeout_error"),
            ("ModelErrorException", 500, "api_error"),
            ("InternalServerException", 500, "api_error"),
            ("ServiceUnavailableException", 529, "overloaded_error"),
        ];
        for (code, status, kind) in cases {
            let e = svc(code, "m").to_api(false);
            assert_eq!((e.status().as_u16(), e.kind()), (status, kind), "{code}");
        }
    }

    #[test]
    fn stream_exceptions_map_to_retryable_error_types() {
        let cases = [
            ("throttlingException", "rate_limit_error"),
            ("serviceUnavailableException", "overloaded_error"),
            ("modelStreamErrorException", "overloaded_error"),
            ("internalServerException", "overloaded_error"),
            ("validationException", "invalid_request_error"),
            ("modelTimeoutException", "timeout_error"),
        ];
        for (code, kind) in cases {
            assert_eq!(svc(code, "m").to_api(true).kind(), kind, "{code}");
        }
    }

    #[test]
    fn throttling_carries_a_retry_after() {
        assert!(matches!(
            svc("ThrottlingException", "x").to_api(false),
            ApiError::RateLimited { retry_after_secs: 2, .. }
        ));
    }

    #[test]
    fn context_length_wording_is_relayed_verbatim() {
        let e = svc("ValidationException", "Input is too long for requested model.").to_api(false);
        assert_eq!(e.to_string(), "Input is too long for requested model.");
    }

    #[test]
    fn arns_and_account_ids_are_redacted() {
        let e = svc(
            "ValidationException",
            "Model arn:aws:bedrock:us-east-1:123456789012:inference-profile/x is bad for account 123456789012.",
        )
        .to_api(false);
        assert_eq!(e.to_string(), "Model <redacted-arn> is bad for account <redacted-account>.");
    }

    #[test]
    fn gateway_side_failures_are_not_blamed_on_the_client() {
        assert_eq!(UpstreamError::Timeout.to_api(false).status().as_u16(), 504);
        assert_eq!(UpstreamError::Unreachable("x".into()).to_api(false).status().as_u16(), 502);
        assert_eq!(svc("UnrecognizedClientException", "bad key").to_api(false).status().as_u16(), 500);
    }
}
