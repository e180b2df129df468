//! AuthService: login, identity, and API tokens for automation.

use std::sync::OnceLock;

use ccag_proto::admin::v1::auth_service_server::AuthService;
use ccag_proto::admin::v1::*;
use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use super::{expiry, ok, require, ts, ts_opt, ApiError, ApiResult, Change, Paging, Shared};
use crate::auth::{hash_password, verify_password};
use crate::store::entities::{api_tokens, users};
use crate::store::ids;
use crate::store::AuditAction;
use crate::store::{self as stored};

pub struct AuthApi(pub Shared);

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
    }
}

/// Checked when the user does not exist, so that a wrong username costs as
/// long as a wrong password and does not reveal which accounts exist.
fn decoy_hash() -> &'static str {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(|| hash_password("decoy password that matches nothing"))
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn login(&self, req: tonic::Request<LoginRequest>) -> ApiResult<LoginResponse> {
        let r = req.into_inner();
        let denied = || ApiError::Unauthenticated("invalid username or password".into());
        let throttle = &self.0.login_throttle;
        if let Err(wait) = throttle.check(&self.0.db, &r.username, chrono::Utc::now()).await.map_err(ApiError::from)? {
            return Err(ApiError::ResourceExhausted(format!(
                "too many failed sign-ins for this user; try again in {} s",
                wait.as_secs().max(1)
            ))
            .into());
        }
        let user = users::Entity::find()
            .filter(users::Column::Email.eq(r.username.trim()))
            .one(&self.0.db)
            .await
            .map_err(ApiError::from)?;
        let hash = user.as_ref().and_then(|u| u.password_hash.clone());
        let password = r.password.clone();
        let hash_for_check = hash.clone().unwrap_or_else(|| decoy_hash().to_owned());
        // Argon2 takes tens of milliseconds of CPU: keep it off the async workers.
        let matches = tokio::task::spawn_blocking(move || verify_password(&password, &hash_for_check))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let user = match user {
            Some(u)
                if matches && hash.is_some() && stored::UserStatus::parse(&u.status) == stored::UserStatus::Active =>
            {
                u
            }
            _ => {
                throttle.failed(&self.0.db, &r.username, chrono::Utc::now()).await.map_err(ApiError::from)?;
                return Err(denied().into());
            }
        };
        throttle.succeeded(&self.0.db, &r.username).await.map_err(ApiError::from)?;
        let (token, exp) = self.0.auth.issue_session(&user.id)?;
        ok(LoginResponse {
            token,
            expires_at: ts(exp),
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
            expires_at: Set(expiry(r.ttl_days)),
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
        ok(ListApiTokensResponse { api_tokens: rows.into_iter().map(to_proto).collect(), next_page_token })
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
