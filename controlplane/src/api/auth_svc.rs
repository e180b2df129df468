//! AuthService: login, identity, and API tokens for automation.

use std::sync::OnceLock;

use ccag_proto::admin::v1::auth_service_server::AuthService;
use ccag_proto::admin::v1::*;
use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use super::{expiry, ok, require, ts, ts_opt, ApiError, ApiResult, Change, Paging, Shared};
use crate::auth::{hash_password, session, verify_password};
use crate::store::entities::{api_tokens, identity_providers, sessions, users};
use crate::store::ids;
use crate::store::AuditAction;
use crate::store::{self as stored};

pub struct AuthApi(pub Shared);

/// What the server can tell of who opens a session.
pub fn origin<T>(req: &tonic::Request<T>) -> session::Origin {
    session::Origin {
        user_agent: req.metadata().get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned(),
        ip: req.remote_addr().map(|a| a.ip().to_string()).unwrap_or_default(),
    }
}

async fn session_protos(
    ctx: &super::Ctx,
    rows: Vec<sessions::Model>,
    current: Option<&str>,
) -> Result<Vec<Session>, ApiError> {
    let emails = crate::store::names::user_emails(&ctx.db, rows.iter().map(|r| r.user_id.clone())).await?;
    let idp_ids: Vec<String> = rows.iter().filter(|r| !r.idp_id.is_empty()).map(|r| r.idp_id.clone()).collect();
    let idps: std::collections::HashMap<String, String> = if idp_ids.is_empty() {
        Default::default()
    } else {
        identity_providers::Entity::find()
            .filter(identity_providers::Column::Id.is_in(idp_ids))
            .all(&ctx.db)
            .await
            .map_err(ApiError::from)?
            .into_iter()
            .map(|i| (i.id, i.name))
            .collect()
    };
    Ok(rows
        .into_iter()
        .map(|r| Session {
            current: current == Some(r.id.as_str()),
            user_email: emails.get(&r.user_id).cloned().unwrap_or_default(),
            idp: idps.get(&r.idp_id).cloned().unwrap_or_default(),
            id: r.id,
            user_id: r.user_id,
            via: r.via,
            user_agent: r.user_agent,
            ip: r.ip,
            created_at: ts(r.created_at),
            expires_at: ts(r.expires_at),
            last_seen_at: ts(r.last_seen_at),
            revoked_at: ts_opt(r.revoked_at),
        })
        .collect())
}

fn to_proto(t: api_tokens::Model) -> ApiToken {
    ApiToken {
        id: t.id,
        name: t.name,
        user_id: t.user_id,
        prefix: t.prefix,
        created_at: ts(t.created_at),
        expires_at: ts_opt(t.expires_at),
        revoked: t.revoked,
        last_used_at: ts_opt(t.last_used_at),
        user_email: String::new(),
    }
}

/// Tokens with their owners' emails.
async fn token_protos<C: sea_orm::ConnectionTrait>(
    c: &C,
    rows: Vec<api_tokens::Model>,
) -> Result<Vec<ApiToken>, ApiError> {
    let emails = crate::store::names::user_emails(c, rows.iter().map(|t| t.user_id.clone())).await?;
    Ok(rows
        .into_iter()
        .map(|t| {
            let user_email = emails.get(&t.user_id).cloned().unwrap_or_default();
            ApiToken { user_email, ..to_proto(t) }
        })
        .collect())
}

/// Checked when the user does not exist, so that a wrong username costs as
/// long as a wrong password and does not reveal which accounts exist.
fn decoy_hash() -> &'static str {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(|| hash_password("decoy password that matches nothing"))
}

/// Checks a password and opens a session: for `Login` (the CLI) and the
/// portal's sign-in form (`crate::http`, which puts the token in a cookie).
/// Failed attempts are throttled per username; an unknown user costs as
/// long as a wrong password.
pub(crate) async fn sign_in_with_password(
    ctx: &super::Ctx,
    username: &str,
    password: &str,
    origin: &session::Origin,
) -> Result<(String, sessions::Model, users::Model), ApiError> {
    let denied = || ApiError::Unauthenticated("invalid username or password".into());
    // No password is longer (CreateUser refuses it): nothing to hash.
    if password.len() > 1024 || username.len() > 254 {
        return Err(denied());
    }
    let throttle = &ctx.login_throttle;
    if let Err(wait) = throttle.check(&ctx.db, username, chrono::Utc::now()).await? {
        return Err(ApiError::ResourceExhausted(format!(
            "too many failed sign-ins for this user; try again in {} s",
            wait.as_secs().max(1)
        )));
    }
    let name = username.trim();
    let user = users::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(users::Column::Email.eq(name))
                .add(users::Column::Email.eq(super::users::with_lowercase_domain(name))),
        )
        .one(&ctx.db)
        .await?;
    let hash = user.as_ref().and_then(|u| u.password_hash.clone());
    let password = password.to_owned();
    let hash_for_check = hash.clone().unwrap_or_else(|| decoy_hash().to_owned());
    // Argon2 takes tens of milliseconds of CPU: keep it off the async workers.
    let matches = tokio::task::spawn_blocking(move || verify_password(&password, &hash_for_check))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let user = match user {
        Some(u) if matches && hash.is_some() && stored::UserStatus::parse(&u.status) == stored::UserStatus::Active => u,
        _ => {
            throttle.failed(&ctx.db, username, chrono::Utc::now()).await?;
            return Err(denied());
        }
    };
    throttle.succeeded(&ctx.db, username).await?;
    let (token, session) =
        session::open(&ctx.db, &user.id, session::Via::Password, "", ctx.auth.session_ttl, origin).await?;
    Ok((token, session, user))
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn login(&self, req: tonic::Request<LoginRequest>) -> ApiResult<LoginResponse> {
        let origin = origin(&req);
        let r = req.into_inner();
        let (token, session, user) = sign_in_with_password(&self.0, &r.username, &r.password, &origin).await?;
        ok(LoginResponse {
            token,
            expires_at: ts(session.expires_at),
            principal: Some(Principal {
                role: if stored::Role::parse(&user.role) == stored::Role::Admin { Role::Admin } else { Role::Member }
                    as i32,
                email: user.email.unwrap_or_default(),
                user_id: user.id,
                via: "session".into(),
            }),
        })
    }

    async fn who_am_i(&self, req: tonic::Request<WhoAmIRequest>) -> ApiResult<Principal> {
        let who = self.0.caller(&req).await?;
        ok(Principal { user_id: who.user_id, email: who.email, role: who.role as i32, via: who.via.into() })
    }

    async fn list_sessions(&self, req: tonic::Request<ListSessionsRequest>) -> ApiResult<ListSessionsResponse> {
        let who = self.0.caller(&req).await?;
        let r = req.into_inner();
        let paging = Paging::from(r.page.as_ref())?;
        let mut q = sessions::Entity::find();
        let user = if r.user.trim().is_empty() {
            (!who.is_admin()).then(|| who.user_id.clone())
        } else {
            Some(super::users::find(&self.0.db, &r.user).await?.id)
        };
        if let Some(u) = user {
            who.require_self_or_admin(&u)?;
            q = q.filter(sessions::Column::UserId.eq(u));
        }
        if !r.include_ended {
            q = q.filter(sessions::Column::RevokedAt.is_null()).filter(sessions::Column::ExpiresAt.gt(Utc::now()));
        }
        let (rows, next_page_token) = paging
            .page(q.order_by_desc(sessions::Column::CreatedAt).order_by_asc(sessions::Column::Id), &self.0.db)
            .await?;
        let sessions = session_protos(&self.0, rows, who.session_id.as_deref()).await?;
        ok(ListSessionsResponse { sessions, next_page_token })
    }

    async fn revoke_session(&self, req: tonic::Request<RevokeSessionRequest>) -> ApiResult<Session> {
        let who = self.0.caller(&req).await?;
        let txn = Change::begin(&self.0, &who.user_id).await?;
        let before = sessions::Entity::find_by_id(req.get_ref().id.trim())
            .one(txn.db())
            .await
            .map_err(ApiError::from)?
            .filter(|s| who.is_admin() || s.user_id == who.user_id)
            .ok_or_else(|| ApiError::NotFound("session not found".into()))?;
        session::revoke(txn.db(), &before.id).await.map_err(ApiError::from)?;
        let after = sessions::Entity::find_by_id(before.id.clone())
            .one(txn.db())
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("session not found".into()))?;
        txn.audit(AuditAction::SessionRevoke, "session", &after.id, Some(&before), Some(&after)).await?;
        txn.commit().await?;
        let mut out = session_protos(&self.0, vec![after], who.session_id.as_deref()).await?;
        ok(out.remove(0))
    }

    async fn start_device_login(
        &self,
        req: tonic::Request<StartDeviceLoginRequest>,
    ) -> ApiResult<StartDeviceLoginResponse> {
        let ip = req.remote_addr().map(|a| a.ip()).unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
        if let Err(wait) = self.0.device_limit.check(ip, std::time::Instant::now()) {
            return Err(ApiError::ResourceExhausted(format!(
                "too many sign-ins from this address; try again in {wait} s"
            ))
            .into());
        }
        let started = crate::identity::device::start(&self.0.db, crate::identity::device::Client::Cli, &ip.to_string())
            .await
            .map_err(ApiError::from)?;
        let base = &self.0.identity.public_url;
        ok(StartDeviceLoginResponse {
            verification_uri: format!("{base}/device"),
            verification_uri_complete: format!("{base}/device?user_code={}", started.user_code),
            device_code: started.device_code,
            user_code: started.user_code,
            expires_in: crate::identity::device::EXPIRES_IN_SECS as u32,
            interval: crate::identity::device::INTERVAL_SECS as u32,
        })
    }

    async fn poll_device_login(
        &self,
        req: tonic::Request<PollDeviceLoginRequest>,
    ) -> ApiResult<PollDeviceLoginResponse> {
        use crate::identity::device::{poll, Client, Poll};
        let origin = origin(&req);
        let code = req.into_inner().device_code;
        let error = |e: &str| ok(PollDeviceLoginResponse { error: e.into(), login: None });
        let user_id = match poll(&self.0.db, Client::Cli, &code, Utc::now()).await.map_err(ApiError::from)? {
            Poll::Pending => return error("authorization_pending"),
            Poll::SlowDown => return error("slow_down"),
            Poll::Denied => return error("access_denied"),
            Poll::Expired => return error("expired_token"),
            Poll::Approved { user_id } => user_id,
        };
        let user = users::Entity::find_by_id(user_id)
            .one(&self.0.db)
            .await
            .map_err(ApiError::from)?
            .filter(|u| stored::UserStatus::parse(&u.status) == stored::UserStatus::Active)
            .ok_or_else(|| ApiError::Unauthenticated("this user is disabled".into()))?;
        let (token, session) =
            session::open(&self.0.db, &user.id, session::Via::Oidc, "", self.0.auth.session_ttl, &origin)
                .await
                .map_err(ApiError::from)?;
        let role = if stored::Role::parse(&user.role) == stored::Role::Admin { Role::Admin } else { Role::Member };
        ok(PollDeviceLoginResponse {
            error: String::new(),
            login: Some(LoginResponse {
                token,
                expires_at: ts(session.expires_at),
                principal: Some(Principal {
                    role: role as i32,
                    email: user.email.unwrap_or_default(),
                    user_id: user.id,
                    via: "session".into(),
                }),
            }),
        })
    }

    async fn logout(&self, req: tonic::Request<LogoutRequest>) -> ApiResult<LogoutResponse> {
        let who = self.0.caller(&req).await?;
        let id = who
            .session_id
            .ok_or_else(|| ApiError::FailedPrecondition("this call is made with an API token, not a session".into()))?;
        session::revoke(&self.0.db, &id).await.map_err(ApiError::from)?;
        ok(LogoutResponse {})
    }

    async fn create_api_token(&self, req: tonic::Request<CreateApiTokenRequest>) -> ApiResult<CreateApiTokenResponse> {
        let who = self.0.caller(&req).await?;
        let r = req.into_inner();
        let name = require("name", &r.name, 100)?;
        let txn = Change::begin(&self.0, &who.user_id).await?;
        let owner = if r.user_id.trim().is_empty() {
            who.user_id.clone()
        } else {
            super::users::find(txn.db(), &r.user_id).await?.id
        };
        who.require_self_or_admin(&owner)?;
        let token = ids::new_api_token();
        let row = api_tokens::ActiveModel {
            id: Set(ids::new_id("tok")),
            name: Set(name),
            prefix: Set(ids::visible_prefix(&token)),
            token_hash: Set(ids::sha256_hex(&token)),
            user_id: Set(owner),
            revoked: Set(false),
            created_at: Set(Utc::now()),
            last_used_at: Set(None),
            expires_at: Set(expiry(r.ttl_days)?),
        }
        .insert(txn.db())
        .await
        .map_err(ApiError::from)?;
        txn.audit(AuditAction::ApiTokenCreate, "api_token", &row.id, None, Some(&row)).await?;
        txn.commit().await?;
        ok(CreateApiTokenResponse { api_token: Some(to_proto(row)), token })
    }

    async fn list_api_tokens(&self, req: tonic::Request<ListApiTokensRequest>) -> ApiResult<ListApiTokensResponse> {
        let who = self.0.caller(&req).await?;
        let r = req.into_inner();
        let paging = Paging::from(r.page.as_ref())?;
        let mut q = api_tokens::Entity::find();
        if !who.is_admin() {
            q = q.filter(api_tokens::Column::UserId.eq(who.user_id.clone()));
        }
        if !r.user_id.trim().is_empty() {
            q = q.filter(api_tokens::Column::UserId.eq(r.user_id.trim()));
        }
        let (rows, next_page_token) = paging
            .page(q.order_by_asc(api_tokens::Column::CreatedAt).order_by_asc(api_tokens::Column::Id), &self.0.db)
            .await?;
        ok(ListApiTokensResponse { api_tokens: token_protos(&self.0.db, rows).await?, next_page_token })
    }

    async fn revoke_api_token(&self, req: tonic::Request<RevokeApiTokenRequest>) -> ApiResult<ApiToken> {
        let who = self.0.caller(&req).await?;
        let txn = Change::begin(&self.0, &who.user_id).await?;
        let before = api_tokens::Entity::find_by_id(req.get_ref().id.trim())
            .one(txn.db())
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("api token not found".into()))?;
        who.require_self_or_admin(&before.user_id)?;
        let mut am: api_tokens::ActiveModel = before.clone().into();
        am.revoked = Set(true);
        let after = am.update(txn.db()).await.map_err(ApiError::from)?;
        txn.audit(AuditAction::ApiTokenRevoke, "api_token", &after.id, Some(&before), Some(&after)).await?;
        txn.commit().await?;
        ok(to_proto(after))
    }
}
