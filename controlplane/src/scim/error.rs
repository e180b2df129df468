//! SCIM errors: RFC 7644 §3.12 bodies, one HTTP status (and `scimType`)
//! per cause.

use http::StatusCode;
use serde_json::json;

use super::Reply;
use crate::api::ApiError;

pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

#[derive(Debug, thiserror::Error)]
pub enum ScimError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Uniqueness(String),
    #[error("{0}")]
    InvalidFilter(String),
    #[error("{0}")]
    InvalidValue(String),
    #[error("{0}")]
    InvalidSyntax(String),
    /// A PATCH that cannot apply; `scim_type` is the RFC's keyword.
    #[error("{detail}")]
    Patch { scim_type: &'static str, detail: String },
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    TooLarge(String),
    /// Seconds until the token may try again.
    #[error("too many requests for this SCIM token; retry in {0} s")]
    TooMany(u64),
    #[error("{0}")]
    NotImplemented(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl ScimError {
    fn status(&self) -> (StatusCode, Option<&'static str>) {
        match self {
            ScimError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, None),
            ScimError::Forbidden(_) => (StatusCode::FORBIDDEN, None),
            ScimError::NotFound(_) => (StatusCode::NOT_FOUND, None),
            ScimError::Uniqueness(_) => (StatusCode::CONFLICT, Some("uniqueness")),
            ScimError::InvalidFilter(_) => (StatusCode::BAD_REQUEST, Some("invalidFilter")),
            ScimError::InvalidValue(_) => (StatusCode::BAD_REQUEST, Some("invalidValue")),
            ScimError::InvalidSyntax(_) => (StatusCode::BAD_REQUEST, Some("invalidSyntax")),
            ScimError::Patch { scim_type, .. } => (StatusCode::BAD_REQUEST, Some(*scim_type)),
            ScimError::PreconditionFailed(_) => (StatusCode::PRECONDITION_FAILED, None),
            ScimError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, Some("tooMany")),
            ScimError::TooMany(_) => (StatusCode::TOO_MANY_REQUESTS, None),
            ScimError::NotImplemented(_) => (StatusCode::NOT_IMPLEMENTED, None),
            ScimError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, None),
            ScimError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, None),
            ScimError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, None),
        }
    }

    pub fn reply(self) -> Reply {
        let (status, scim_type) = self.status();
        if let ScimError::Internal(m) = &self {
            tracing::error!(error = %m, "SCIM request failed");
        }
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": status.as_u16().to_string(),
            "detail": self.to_string(),
        });
        if let Some(t) = scim_type {
            body["scimType"] = json!(t);
        }
        if let ScimError::TooMany(secs) = self {
            // Moved into the Retry-After header by `respond`.
            body["retryAfter"] = json!(secs);
        }
        Reply { status, body: Some(body), etag: None, location: None }
    }
}

impl From<sea_orm::DbErr> for ScimError {
    fn from(e: sea_orm::DbErr) -> Self {
        ApiError::from(e).into()
    }
}

impl From<ApiError> for ScimError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::InvalidArgument(m) => ScimError::InvalidValue(m),
            ApiError::NotFound(m) => ScimError::NotFound(m),
            ApiError::AlreadyExists(m) => ScimError::Uniqueness(m),
            ApiError::PermissionDenied(m) | ApiError::Unauthenticated(m) => ScimError::Forbidden(m),
            ApiError::FailedPrecondition(m) => ScimError::InvalidValue(m),
            ApiError::Unavailable(m) => ScimError::Unavailable(m),
            other => ScimError::Internal(other.to_string()),
        }
    }
}

impl From<crate::identity::IdentityError> for ScimError {
    fn from(e: crate::identity::IdentityError) -> Self {
        ScimError::Internal(e.to_string())
    }
}
