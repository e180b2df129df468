//! KeyService: virtual API keys. The plaintext exists only in the
//! CreateKey response; the database holds its SHA-256.

use ccag_proto::admin::v1::key_service_server::KeyService;
use ccag_proto::admin::v1::*;
use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};

use super::{expiry, limit, ok, require, ts, ts_opt, ApiError, ApiResult, Change, Paging, Shared};
use crate::auth::Principal;
use crate::fleet::Touched;
use crate::notify::producers;
use crate::store::entities::{api_keys, team_members};
use crate::store::ids;
use crate::store::AuditAction;
use crate::store::{self as stored};

pub struct KeysApi(pub Shared);

fn status_of(s: &str) -> KeyStatus {
    match stored::KeyStatus::parse(s) {
        stored::KeyStatus::Active => KeyStatus::Active,
        stored::KeyStatus::Disabled => KeyStatus::Disabled,
        stored::KeyStatus::Revoked => KeyStatus::Revoked,
    }
}

/// Keys with their owners' emails and teams' names, looked up once for all.
async fn named<C: ConnectionTrait>(c: &C, keys: Vec<api_keys::Model>) -> Result<Vec<ApiKey>, ApiError> {
    let emails = crate::store::names::user_emails(c, keys.iter().map(|k| k.user_id.clone())).await?;
    let team_names = crate::store::names::team_names(c, keys.iter().filter_map(|k| k.team_id.clone())).await?;
    Ok(keys
        .into_iter()
        .map(|k| {
            let user_email = emails.get(&k.user_id).cloned().unwrap_or_default();
            let team_name = k.team_id.as_ref().and_then(|t| team_names.get(t)).cloned().unwrap_or_default();
            ApiKey { user_email, team_name, ..to_proto(k) }
        })
        .collect())
}

async fn named_one<C: ConnectionTrait>(c: &C, key: api_keys::Model) -> Result<ApiKey, ApiError> {
    Ok(named(c, vec![key]).await?.remove(0))
}

fn to_proto(k: api_keys::Model) -> ApiKey {
    ApiKey {
        user_email: String::new(),
        team_name: String::new(),
        status: status_of(&k.status) as i32,
        id: k.id,
        name: k.name,
        prefix: k.prefix,
        user_id: k.user_id,
        team_id: k.team_id.unwrap_or_default(),
        rpm: k.rpm as u32,
        tpm: k.tpm as u32,
        created_at: ts(k.created_at),
        last_used_at: ts_opt(k.last_used_at),
        expires_at: ts_opt(k.expires_at),
        updated_at: ts(k.updated_at),
    }
}

/// The key, by id or by name, if the caller may see it. Members asking for
/// another user's key get PERMISSION_DENIED whether or not it exists, and
/// their names reach only their own keys; a name several keys share is
/// refused with the candidates listed.
pub(super) async fn find_for<C: ConnectionTrait>(
    c: &C,
    who: &Principal,
    id_or_name: &str,
) -> Result<api_keys::Model, ApiError> {
    let wanted = super::lookup("id", "the key's id or name", id_or_name)?;
    if let Some(k) = api_keys::Entity::find_by_id(wanted).one(c).await? {
        return match k {
            k if who.is_admin() || k.user_id == who.user_id => Ok(k),
            _ => Err(ApiError::PermissionDenied("members may only act on their own keys".into())),
        };
    }
    let mut q = api_keys::Entity::find().filter(api_keys::Column::Name.eq(wanted)).order_by_asc(api_keys::Column::Id);
    if !who.is_admin() {
        q = q.filter(api_keys::Column::UserId.eq(who.user_id.clone()));
    }
    let mut named = q.limit(11).all(c).await?;
    match named.len() {
        1 => Ok(named.remove(0)),
        0 if !who.is_admin() => Err(ApiError::PermissionDenied("members may only act on their own keys".into())),
        0 => Err(ApiError::NotFound(format!("key {wanted:?} not found"))),
        n => {
            let emails = crate::store::names::user_emails(c, named.iter().map(|k| k.user_id.clone())).await?;
            let list: Vec<String> = named
                .iter()
                .take(10)
                .map(|k| format!("{} ({})", k.id, emails.get(&k.user_id).map(String::as_str).unwrap_or(&k.user_id)))
                .collect();
            let more = if n > 10 { ", …" } else { "" };
            Err(ApiError::InvalidArgument(format!(
                "id: the key name {wanted:?} is ambiguous: {}{more}; give the key's id",
                list.join(", ")
            )))
        }
    }
}

#[tonic::async_trait]
impl KeyService for KeysApi {
    async fn create_setup_token(
        &self,
        req: tonic::Request<CreateSetupTokenRequest>,
    ) -> ApiResult<CreateSetupTokenResponse> {
        let who = self.0.caller(&req).await?;
        let r = req.into_inner();
        let txn = Change::begin(&self.0, &who.user_id).await?;
        let owner = if r.user.trim().is_empty() {
            who.user_id.clone()
        } else {
            super::users::find(txn.db(), &r.user).await?.id
        };
        who.require_self_or_admin(&owner)?;
        let team_id = if r.team.trim().is_empty() {
            None
        } else {
            let team = super::teams::find(txn.db(), &r.team).await?;
            let member = team_members::Entity::find_by_id((team.id.clone(), owner.clone()))
                .one(txn.db())
                .await
                .map_err(ApiError::from)?;
            if !who.is_admin() && member.is_none() {
                return Err(ApiError::PermissionDenied("you are not a member of that team".into()).into());
            }
            Some(team.id)
        };
        let now = Utc::now();
        let key_name = match r.key_name.trim() {
            "" => format!("setup-{}", now.format("%Y-%m-%d")),
            n => require("key_name", n, 100)?,
        };
        let token = format!("st_{}", ids::random_base62(40));
        let row = crate::store::entities::setup_tokens::ActiveModel {
            id: Set(ids::new_id("stk")),
            token_hash: Set(ids::sha256_hex(&token)),
            user_id: Set(owner),
            team_id: Set(team_id),
            key_name: Set(key_name),
            created_by: Set(who.user_id.clone()),
            created_at: Set(now),
            expires_at: Set(now + chrono::Duration::minutes(10)),
            used_at: Set(None),
        }
        .insert(txn.db())
        .await
        .map_err(ApiError::from)?;
        txn.audit(AuditAction::SetupTokenCreate, "setup_token", &row.id, None, Some(&row)).await?;
        txn.commit().await?;
        let command = format!("curl -fsSL '{}/setup?token={token}' | sh", self.0.identity.public_url);
        ok(CreateSetupTokenResponse { token, expires_at: ts(row.expires_at), command })
    }

    async fn create_key(&self, req: tonic::Request<CreateKeyRequest>) -> ApiResult<CreateKeyResponse> {
        let who = self.0.caller(&req).await?;
        let r = req.into_inner();
        let name = require("name", &r.name, 100)?;
        let mut txn = Change::begin(&self.0, &who.user_id).await?;
        let owner = if r.user_id.trim().is_empty() {
            who.user_id.clone()
        } else {
            super::users::find(txn.db(), &r.user_id).await?.id
        };
        who.require_self_or_admin(&owner)?;
        if !who.is_admin() && (r.rpm != 0 || r.tpm != 0) {
            return Err(ApiError::PermissionDenied("only admins set key limits".into()).into());
        }
        let team_id = if r.team_id.trim().is_empty() {
            None
        } else {
            let team = super::teams::find(txn.db(), &r.team_id).await?;
            if !who.is_admin() {
                let member = team_members::Entity::find_by_id((team.id.clone(), owner.clone()))
                    .one(txn.db())
                    .await
                    .map_err(ApiError::from)?
                    .is_some();
                if !member {
                    return Err(ApiError::PermissionDenied("you are not a member of that team".into()).into());
                }
            }
            Some(team.id)
        };
        let key = ids::new_key();
        let now = Utc::now();
        let row = api_keys::ActiveModel {
            id: Set(ids::new_id("key")),
            name: Set(name),
            prefix: Set(ids::visible_prefix(&key)),
            key_hash: Set(ids::sha256_hex(&key)),
            user_id: Set(owner),
            team_id: Set(team_id),
            status: Set(stored::KeyStatus::Active.as_str().into()),
            rpm: Set(limit("rpm", r.rpm)?),
            tpm: Set(limit("tpm", r.tpm)?),
            created_at: Set(now),
            updated_at: Set(now),
            last_used_at: Set(None),
            expires_at: Set(expiry(r.ttl_days)?),
        }
        .insert(txn.db())
        .await
        .map_err(ApiError::from)?;
        txn.audit(AuditAction::KeyCreate, "key", &row.id, None, Some(&row)).await?;
        let email = owner_email(txn.db(), &row.user_id).await?;
        txn.emit(&producers::key_created(&row, &email, &who.email)).await?;
        txn.touch(Touched::Key(row.id.clone()));
        txn.commit().await?;
        ok(CreateKeyResponse { api_key: Some(named_one(&self.0.db, row).await?), key })
    }

    async fn get_key(&self, req: tonic::Request<GetKeyRequest>) -> ApiResult<ApiKey> {
        let who = self.0.caller(&req).await?;
        ok(named_one(&self.0.db, find_for(&self.0.db, &who, &req.get_ref().id).await?).await?)
    }

    async fn list_keys(&self, req: tonic::Request<ListKeysRequest>) -> ApiResult<ListKeysResponse> {
        let who = self.0.caller(&req).await?;
        let r = req.into_inner();
        let paging = Paging::from(r.page.as_ref())?;
        let mut q = api_keys::Entity::find();
        if !who.is_admin() {
            q = q.filter(api_keys::Column::UserId.eq(who.user_id.clone()));
        }
        if !r.user_id.trim().is_empty() {
            let user = super::users::find(&self.0.db, &r.user_id).await;
            let uid = match user {
                Ok(u) => u.id,
                Err(_) if !who.is_admin() => return ok(ListKeysResponse::default()),
                Err(e) => return Err(e.into()),
            };
            q = q.filter(api_keys::Column::UserId.eq(uid));
        }
        if !r.team_id.trim().is_empty() {
            let team = super::teams::find(&self.0.db, &r.team_id).await?;
            q = q.filter(api_keys::Column::TeamId.eq(team.id));
        }
        match KeyStatus::try_from(r.status) {
            Ok(KeyStatus::Unspecified) => {}
            Ok(s) => {
                q = q.filter(api_keys::Column::Status.eq(match s {
                    KeyStatus::Active => stored::KeyStatus::Active.as_str(),
                    KeyStatus::Disabled => stored::KeyStatus::Disabled.as_str(),
                    _ => stored::KeyStatus::Revoked.as_str(),
                }))
            }
            Err(_) => return Err(ApiError::InvalidArgument(format!("status: unknown value {}", r.status)).into()),
        }
        let (rows, next_page_token) = paging
            .page(q.order_by_asc(api_keys::Column::CreatedAt).order_by_asc(api_keys::Column::Id), &self.0.db)
            .await?;
        ok(ListKeysResponse { keys: named(&self.0.db, rows).await?, next_page_token })
    }

    async fn update_key(&self, req: tonic::Request<UpdateKeyRequest>) -> ApiResult<ApiKey> {
        let who = self.0.caller(&req).await?;
        let r = req.into_inner();
        let mut txn = Change::begin(&self.0, &who.user_id).await?;
        let before = find_for(txn.db(), &who, &r.id).await?;
        if !who.is_admin() && (r.rpm.is_some() || r.tpm.is_some() || r.team_id.is_some()) {
            return Err(ApiError::PermissionDenied("only admins change key limits and teams".into()).into());
        }
        let mut am: api_keys::ActiveModel = before.clone().into();
        if let Some(n) = &r.name {
            am.name = Set(require("name", n, 100)?);
        }
        match KeyStatus::try_from(r.status) {
            Ok(KeyStatus::Unspecified) => {}
            Ok(s @ (KeyStatus::Active | KeyStatus::Disabled)) => {
                if stored::KeyStatus::parse(&before.status) == stored::KeyStatus::Revoked {
                    return Err(ApiError::FailedPrecondition("a revoked key stays revoked".into()).into());
                }
                let next = if s == KeyStatus::Active { stored::KeyStatus::Active } else { stored::KeyStatus::Disabled };
                am.status = Set(next.as_str().into());
            }
            _ => return Err(ApiError::InvalidArgument("status: use RevokeKey to revoke a key".into()).into()),
        }
        if let Some(v) = r.rpm {
            am.rpm = Set(limit("rpm", v)?);
        }
        if let Some(v) = r.tpm {
            am.tpm = Set(limit("tpm", v)?);
        }
        if let Some(t) = &r.team_id {
            am.team_id = Set(if t.trim().is_empty() { None } else { Some(super::teams::find(txn.db(), t).await?.id) });
        }
        am.updated_at = Set(Utc::now());
        let after = am.update(txn.db()).await.map_err(ApiError::from)?;
        txn.audit(AuditAction::KeyUpdate, "key", &after.id, Some(&before), Some(&after)).await?;
        txn.touch(Touched::Key(after.id.clone()));
        txn.commit().await?;
        ok(named_one(&self.0.db, after).await?)
    }

    async fn revoke_key(&self, req: tonic::Request<RevokeKeyRequest>) -> ApiResult<ApiKey> {
        let who = self.0.caller(&req).await?;
        let mut txn = Change::begin(&self.0, &who.user_id).await?;
        let before = find_for(txn.db(), &who, &req.get_ref().id).await?;
        if stored::KeyStatus::parse(&before.status) == stored::KeyStatus::Revoked {
            return ok(named_one(&self.0.db, before).await?);
        }
        let mut am: api_keys::ActiveModel = before.clone().into();
        am.status = Set(stored::KeyStatus::Revoked.as_str().into());
        am.updated_at = Set(Utc::now());
        let after = am.update(txn.db()).await.map_err(ApiError::from)?;
        txn.audit(AuditAction::KeyRevoke, "key", &after.id, Some(&before), Some(&after)).await?;
        let email = owner_email(txn.db(), &after.user_id).await?;
        txn.emit(&producers::key_revoked(&after, &email, &who.email)).await?;
        txn.touch(Touched::Key(after.id.clone()));
        txn.commit().await?;
        ok(named_one(&self.0.db, after).await?)
    }

    async fn delete_key(&self, req: tonic::Request<DeleteKeyRequest>) -> ApiResult<DeleteResponse> {
        let who = self.0.caller(&req).await?;
        let mut txn = Change::begin(&self.0, &who.user_id).await?;
        let before = find_for(txn.db(), &who, &req.get_ref().id).await?;
        api_keys::Entity::delete_by_id(before.id.clone()).exec(txn.db()).await.map_err(ApiError::from)?;
        txn.audit(AuditAction::KeyDelete, "key", &before.id, Some(&before), None).await?;
        txn.touch(Touched::Key(before.id.clone()));
        txn.commit().await?;
        ok(DeleteResponse {})
    }
}

async fn owner_email<C: sea_orm::ConnectionTrait>(c: &C, user_id: &str) -> Result<String, ApiError> {
    Ok(crate::store::names::user_emails(c, [user_id.to_owned()]).await?.remove(user_id).unwrap_or_default())
}
