//! The gRPC admin API: one module per service, sharing the error type,
//! paging, timestamps and the audit writer defined here.

mod analytics;
mod audit_svc;
mod auth_svc;
mod budgets;
mod catalogue;
mod change;
mod endpoints;
pub mod idps;
mod keys;
mod managed;
mod models;
mod notifications;
mod scim_tokens;
mod search;
mod settings;
mod status;
mod teams;
mod usage;
mod users;

pub use analytics::AnalyticsApi;
pub use audit_svc::AuditApi;
pub(crate) use auth_svc::sign_in_with_password;
pub use auth_svc::AuthApi;
pub use budgets::BudgetsApi;
pub use change::Change;
pub use endpoints::EndpointsApi;
pub use idps::IdpsApi;
pub use keys::KeysApi;
pub use managed::ManagedApi;
pub use models::ModelsApi;
pub use notifications::NotificationsApi;
pub use scim_tokens::{ScimApi, TOKEN_PREFIX as SCIM_TOKEN_PREFIX};
pub use search::SearchApi;
pub use settings::SettingsApi;
pub use status::StatusApi;
pub use teams::TeamsApi;
pub(crate) use usage::{micro_to_usd, names as usage_names};
pub use usage::{PricingApi, UsageApi};
pub(crate) use users::keep_an_admin as users_keep_an_admin;
pub use users::UsersApi;
pub(crate) use users::{insert_user, looks_like_email, with_lowercase_domain, NewUser};

use std::collections::HashMap;
use std::sync::Arc;

use ccag_proto::admin::v1::Page;
use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select,
    SqlErr,
};
use tonic::{Code, Status};

use crate::auth::{Auth, Principal};
use crate::store::entities::team_members;
use crate::store::Backend;

/// Everything a service needs.
pub struct Ctx {
    pub db: DatabaseConnection,
    pub backend: Backend,
    pub auth: Auth,
    pub started_at: DateTime<Utc>,
    pub publisher: Arc<crate::fleet::Publisher>,
    pub registry: Arc<crate::fleet::Registry>,
    pub login_throttle: crate::auth::LoginThrottle,
    /// Sends `ccag notifications test` events, and seals webhook secrets.
    pub sender: Arc<crate::notify::send::Sender>,
    /// Single sign-on: providers' documents and keys, the public URL.
    pub identity: Arc<crate::identity::Identity>,
    /// Sign-ins started per client address and minute.
    pub login_limit: crate::http::PerIp,
    /// Device sign-ins started per client address and minute.
    pub device_limit: crate::http::PerIp,
    /// Codes tried on the device page per client address and minute.
    pub device_code_limit: crate::http::PerIp,
    /// Requests per minute of each SCIM token (`CCAG_SCIM_RPM`).
    pub scim_limit: crate::http::PerKey<String>,
    /// What data planes present: it vouches for the client address they forward.
    pub dataplane_token: String,
    /// This replica's metrics (`GET /metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl Ctx {
    pub async fn caller<T>(&self, req: &tonic::Request<T>) -> Result<Principal, ApiError> {
        Ok(self.auth.principal(&self.db, req.metadata()).await?)
    }
}

pub type Shared = Arc<Ctx>;

/// Each variant is one gRPC status code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// A database error whose unique-constraint case is told in the
    /// resource's own words ("a team with that name exists").
    pub fn exists(e: DbErr, message: &str) -> ApiError {
        match ApiError::from(e) {
            ApiError::AlreadyExists(_) => ApiError::AlreadyExists(message.to_owned()),
            other => other,
        }
    }
}

impl From<DbErr> for ApiError {
    fn from(e: DbErr) -> Self {
        match e.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => {
                ApiError::AlreadyExists("a record with that name already exists".into())
            }
            Some(SqlErr::ForeignKeyConstraintViolation(_)) => {
                ApiError::FailedPrecondition("a referenced record does not exist".into())
            }
            _ if is_unavailable(&e) => {
                tracing::error!(error = %e, "database unavailable");
                ApiError::Unavailable("the database is unavailable".into())
            }
            _ => {
                tracing::error!(error = %e, "database error");
                ApiError::Internal("internal database error".into())
            }
        }
    }
}

/// The database cannot be reached, or the connection broke mid-statement
/// (as opposed to an error in the statement): worth retrying later.
fn is_unavailable(e: &DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    use sea_orm::RuntimeErr;
    match e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(x)) | DbErr::Query(RuntimeErr::SqlxError(x)) => {
            matches!(x, Sqlx::Io(_) | Sqlx::Tls(_) | Sqlx::PoolTimedOut | Sqlx::PoolClosed | Sqlx::WorkerCrashed)
        }
        _ => false,
    }
}

impl From<crate::auth::AuthError> for ApiError {
    fn from(e: crate::auth::AuthError) -> Self {
        use crate::auth::AuthError;
        match e {
            AuthError::Unauthenticated(m) => ApiError::Unauthenticated(m),
            AuthError::PermissionDenied(m) => ApiError::PermissionDenied(m),
            AuthError::Internal(m) => ApiError::Internal(m),
            AuthError::Database(e) => ApiError::from(e),
        }
    }
}

impl From<crate::auth::AuthError> for Status {
    fn from(e: crate::auth::AuthError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        let code = match &e {
            ApiError::InvalidArgument(_) => Code::InvalidArgument,
            ApiError::NotFound(_) => Code::NotFound,
            ApiError::AlreadyExists(_) => Code::AlreadyExists,
            ApiError::PermissionDenied(_) => Code::PermissionDenied,
            ApiError::Unauthenticated(_) => Code::Unauthenticated,
            ApiError::FailedPrecondition(_) => Code::FailedPrecondition,
            ApiError::Unavailable(_) => Code::Unavailable,
            ApiError::ResourceExhausted(_) => Code::ResourceExhausted,
            ApiError::Internal(_) => Code::Internal,
        };
        Status::new(code, e.to_string())
    }
}

pub type ApiResult<T> = Result<tonic::Response<T>, Status>;

pub fn ok<T>(v: T) -> ApiResult<T> {
    Ok(tonic::Response::new(v))
}

pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn ts_opt(t: Option<DateTime<Utc>>) -> String {
    t.map(ts).unwrap_or_default()
}

pub const DEFAULT_PAGE: u64 = 50;
pub const MAX_PAGE: u64 = 500;

/// Offset paging: the token is the offset of the next page, opaque to clients.
pub struct Paging {
    pub offset: u64,
    pub limit: u64,
}

/// Beyond any table this gateway holds, and within every backend's OFFSET.
const MAX_OFFSET: u64 = 1 << 40;

impl Paging {
    pub fn from(p: Option<&Page>) -> Result<Self, ApiError> {
        let (size, token) = p.map(|p| (u64::from(p.page_size), p.page_token.as_str())).unwrap_or((0, ""));
        let limit = if size == 0 { DEFAULT_PAGE } else { size.min(MAX_PAGE) };
        let offset = if token.is_empty() {
            0
        } else {
            token
                .strip_prefix("o")
                .and_then(|n| n.parse().ok())
                .filter(|n: &u64| *n <= MAX_OFFSET)
                .ok_or_else(|| ApiError::InvalidArgument("page_token: not a token this server issued".into()))?
        };
        Ok(Paging { offset, limit })
    }

    /// Fetch one more than the page to learn whether another follows.
    pub fn fetch(&self) -> u64 {
        self.limit + 1
    }

    /// Runs an ordered query for this page: its rows and the next token.
    pub async fn page<E: EntityTrait>(
        &self,
        query: Select<E>,
        db: &DatabaseConnection,
    ) -> Result<(Vec<E::Model>, String), ApiError> {
        let rows = query.offset(self.offset).limit(self.fetch()).all(db).await?;
        Ok(self.finish(rows))
    }

    pub fn finish<T>(&self, mut rows: Vec<T>) -> (Vec<T>, String) {
        let more = rows.len() as u64 > self.limit;
        rows.truncate(self.limit as usize);
        let next = if more { format!("o{}", self.offset + self.limit) } else { String::new() };
        (rows, next)
    }
}

/// Team memberships of a page of users or teams, in one query: `column`
/// selects which side `ids` name, `pair` turns a row into (owner, other).
pub async fn members_by<C: ConnectionTrait>(
    c: &C,
    column: team_members::Column,
    ids: impl Iterator<Item = String>,
    pair: impl Fn(team_members::Model) -> (String, String),
) -> Result<HashMap<String, Vec<String>>, ApiError> {
    let ids: Vec<String> = ids.collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = team_members::Entity::find()
        .filter(column.is_in(ids))
        .order_by_asc(team_members::Column::TeamId)
        .order_by_asc(team_members::Column::UserId)
        .all(c)
        .await?;
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for (owner, other) in rows.into_iter().map(pair) {
        out.entry(owner).or_default().push(other);
    }
    Ok(out)
}

pub fn require(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ApiError::InvalidArgument(format!("{field}: must not be empty")));
    }
    if v.chars().count() > max {
        return Err(ApiError::InvalidArgument(format!("{field}: at most {max} characters")));
    }
    if v.chars().any(char::is_control) {
        return Err(ApiError::InvalidArgument(format!("{field}: control characters are not allowed")));
    }
    Ok(v.to_owned())
}

/// The id or name a Get/Update/Delete looks a row up by: an empty one is a
/// caller's mistake, not a row that is missing.
pub fn lookup<'a>(field: &str, what: &str, v: &'a str) -> Result<&'a str, ApiError> {
    let v = v.trim();
    if v.is_empty() {
        return Err(ApiError::InvalidArgument(format!("{field}: must not be empty (give {what})")));
    }
    Ok(v)
}

pub fn optional(field: &str, value: &str, max: usize) -> Result<Option<String>, ApiError> {
    if value.trim().is_empty() {
        Ok(None)
    } else {
        require(field, value, max).map(Some)
    }
}

/// Ten years: beyond it a date is no longer a lifetime but a typo (and far
/// enough beyond it, past what a timestamp holds).
pub const MAX_TTL_DAYS: u32 = 3650;

/// The expiry `ttl_days` from now; 0: never.
pub fn expiry(ttl_days: u32) -> Result<Option<DateTime<Utc>>, ApiError> {
    if ttl_days > MAX_TTL_DAYS {
        return Err(ApiError::InvalidArgument(format!("ttl_days: at most {MAX_TTL_DAYS} (0: never expires)")));
    }
    Ok((ttl_days > 0).then(|| Utc::now() + chrono::Duration::days(i64::from(ttl_days))))
}

pub fn limit(field: &str, v: u32) -> Result<i64, ApiError> {
    if v > 100_000_000 {
        return Err(ApiError::InvalidArgument(format!("{field}: at most 100000000 (0: unlimited)")));
    }
    Ok(i64::from(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_defaults_and_caps() {
        let p = Paging::from(None).unwrap();
        assert_eq!((p.offset, p.limit), (0, DEFAULT_PAGE));
        let p = Paging::from(Some(&Page { page_size: 10_000, page_token: "o20".into() })).unwrap();
        assert_eq!((p.offset, p.limit), (20, MAX_PAGE));
    }

    #[test]
    fn paging_rejects_foreign_tokens() {
        assert!(Paging::from(Some(&Page { page_size: 1, page_token: "x".into() })).is_err());
    }

    #[test]
    fn paging_reports_a_next_token_only_when_more_rows_exist() {
        let p = Paging { offset: 0, limit: 2 };
        assert_eq!(p.finish(vec![1, 2, 3]), (vec![1, 2], "o2".to_string()));
        assert_eq!(p.finish(vec![1, 2]), (vec![1, 2], String::new()));
    }

    #[test]
    fn a_connection_lost_mid_statement_is_unavailable_not_internal() {
        use sea_orm::sqlx::Error as Sqlx;
        use sea_orm::RuntimeErr;
        let lost = || Sqlx::Io(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "peer closed connection"));
        for e in [
            DbErr::Query(RuntimeErr::SqlxError(lost())),
            DbErr::Exec(RuntimeErr::SqlxError(lost())),
            DbErr::Query(RuntimeErr::SqlxError(Sqlx::PoolTimedOut)),
            DbErr::Conn(RuntimeErr::Internal("refused".into())),
        ] {
            assert!(matches!(ApiError::from(e), ApiError::Unavailable(_)));
        }
        let bad_statement = DbErr::Query(RuntimeErr::SqlxError(Sqlx::RowNotFound));
        assert!(matches!(ApiError::from(bad_statement), ApiError::Internal(_)));
    }

    #[test]
    fn required_fields_are_trimmed_and_bounded() {
        assert_eq!(require("name", "  a ", 5).unwrap(), "a");
        assert!(require("name", "   ", 5).is_err());
        assert!(require("name", "abcdef", 5).is_err());
        assert!(require("name", "a\u{0}b", 5).is_err());
    }
}
