//! UserService.

use ccag_proto::admin::v1::user_service_server::UserService;
use ccag_proto::admin::v1::*;
use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    Set,
};

use super::{limit, ok, optional, require, ts, ApiError, ApiResult, Change, Paging, Shared};
use crate::auth::hash_password;
use crate::fleet::Touched;
use crate::store::entities::{api_keys, team_members, users};
use crate::store::ids;
use crate::store::AuditAction;
use crate::store::{self as stored};

pub struct UsersApi(pub Shared);

pub fn role_str(r: i32) -> Result<Option<&'static str>, ApiError> {
    match Role::try_from(r) {
        Ok(Role::Unspecified) => Ok(None),
        Ok(Role::Admin) => Ok(Some(stored::Role::Admin.as_str())),
        Ok(Role::Member) => Ok(Some(stored::Role::Member.as_str())),
        Err(_) => Err(ApiError::InvalidArgument(format!("role: unknown value {r}"))),
    }
}

fn status_str(s: i32) -> Result<Option<&'static str>, ApiError> {
    match UserStatus::try_from(s) {
        Ok(UserStatus::Unspecified) => Ok(None),
        Ok(UserStatus::Active) => Ok(Some(stored::UserStatus::Active.as_str())),
        Ok(UserStatus::Disabled) => Ok(Some(stored::UserStatus::Disabled.as_str())),
        Err(_) => Err(ApiError::InvalidArgument(format!("status: unknown value {s}"))),
    }
}

fn email(v: &str) -> Result<String, ApiError> {
    let e = require("email", v, 254)?;
    if e.contains(char::is_whitespace) {
        return Err(ApiError::InvalidArgument("email: must not contain spaces".into()));
    }
    if !looks_like_email(&e) {
        return Err(ApiError::InvalidArgument(format!("email: {e:?} is not an address like name@example.com")));
    }
    Ok(with_lowercase_domain(&e))
}

/// Domains are case-insensitive; local parts, strictly, are not. One form
/// stored means `Ada@Example.com` and `Ada@example.com` are one user.
pub(crate) fn with_lowercase_domain(e: &str) -> String {
    match e.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_lowercase()),
        None => e.to_owned(),
    }
}

/// `local@domain`: one `@`, a local part of 1 to 64 characters, and a
/// domain of at least two dot-separated labels of letters, digits and
/// hyphens (not at a label's ends). Deliverability is not checked.
pub(crate) fn looks_like_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else { return false };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    // Characters that only a quoted local part may hold, which no one signs
    // in with and which break the lists emails are shown in.
    !local.is_empty()
        && !local.contains(['<', '>', ',', ';', '"', '(', ')', '[', ']', '\\', ':'])
        && local.chars().count() <= 64
        && !domain.contains('@')
        && domain.split('.').count() >= 2
        && domain.split('.').all(label_ok)
}

fn password(v: &str) -> Result<String, ApiError> {
    if v.chars().count() < 8 {
        return Err(ApiError::InvalidArgument("password: at least 8 characters".into()));
    }
    if v.len() > 1024 {
        return Err(ApiError::InvalidArgument("password: at most 1024 bytes".into()));
    }
    Ok(v.to_owned())
}

pub async fn to_proto<C: ConnectionTrait>(c: &C, u: users::Model) -> Result<User, ApiError> {
    Ok(to_protos(c, vec![u]).await?.pop().expect("one user in, one out"))
}

/// Users with their teams' ids and names, loaded for the whole page at once.
async fn to_protos<C: ConnectionTrait>(c: &C, rows: Vec<users::Model>) -> Result<Vec<User>, ApiError> {
    let mut teams = super::members_by(c, team_members::Column::UserId, rows.iter().map(|u| u.id.clone()), |m| {
        (m.user_id, m.team_id)
    })
    .await?;
    let names = crate::store::names::team_names(c, teams.values().flatten().cloned()).await?;
    Ok(rows
        .into_iter()
        .map(|u| {
            let team_ids = teams.remove(&u.id).unwrap_or_default();
            let team_names = team_ids.iter().map(|id| names.get(id).cloned().unwrap_or_default()).collect();
            User { team_names, ..proto(u, team_ids) }
        })
        .collect())
}

fn proto(u: users::Model, team_ids: Vec<String>) -> User {
    User {
        id: u.id,
        email: u.email.unwrap_or_default(),
        subject: u.subject.unwrap_or_default(),
        display_name: u.display_name,
        role: if stored::Role::parse(&u.role) == stored::Role::Admin { Role::Admin } else { Role::Member } as i32,
        status: if stored::UserStatus::parse(&u.status) == stored::UserStatus::Active {
            UserStatus::Active
        } else {
            UserStatus::Disabled
        } as i32,
        created_at: ts(u.created_at),
        updated_at: ts(u.updated_at),
        team_ids,
        team_names: Vec::new(),
        rpm: u.rpm as u32,
        tpm: u.tpm as u32,
    }
}

/// Finds a user by id or email.
pub async fn find<C: ConnectionTrait>(c: &C, id_or_email: &str) -> Result<users::Model, ApiError> {
    let id = super::lookup("user", "the user's id or email", id_or_email)?;
    // Rows from before emails were stored with a lower-case domain match as typed.
    let email = with_lowercase_domain(id);
    users::Entity::find()
        .filter(
            Condition::any()
                .add(users::Column::Id.eq(id))
                .add(users::Column::Email.eq(id))
                .add(users::Column::Email.eq(email)),
        )
        .one(c)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("user {id:?} not found")))
}

/// Refuses a change that would leave no active admin.
pub(crate) async fn keep_an_admin<C: ConnectionTrait>(c: &C, leaving: &users::Model) -> Result<(), ApiError> {
    if stored::Role::parse(&leaving.role) != stored::Role::Admin
        || stored::UserStatus::parse(&leaving.status) != stored::UserStatus::Active
    {
        return Ok(());
    }
    let others = users::Entity::find()
        .filter(users::Column::Role.eq(stored::Role::Admin.as_str()))
        .filter(users::Column::Status.eq(stored::UserStatus::Active.as_str()))
        .filter(users::Column::Id.ne(leaving.id.clone()))
        .count(c)
        .await?;
    if others == 0 {
        return Err(ApiError::FailedPrecondition("this is the last active admin".into()));
    }
    Ok(())
}

/// A user to create: by an admin, a first sign-in, or a SCIM client.
pub(crate) struct NewUser {
    pub email: Option<String>,
    pub subject: Option<String>,
    pub display_name: String,
    pub role: stored::Role,
    pub active: bool,
    pub password_hash: Option<String>,
    pub rpm: i64,
    pub tpm: i64,
}

/// Inserts the user, audited, with `user.created` sent (naming `actor`)
/// and the data planes told.
pub(crate) async fn insert_user(txn: &mut Change<'_>, u: NewUser, actor: &str) -> Result<users::Model, ApiError> {
    let now = Utc::now();
    let status = if u.active { stored::UserStatus::Active } else { stored::UserStatus::Disabled };
    let row = users::ActiveModel {
        id: Set(ids::new_id("usr")),
        email: Set(u.email),
        subject: Set(u.subject),
        display_name: Set(u.display_name),
        role: Set(u.role.as_str().into()),
        status: Set(status.as_str().into()),
        password_hash: Set(u.password_hash),
        created_at: Set(now),
        updated_at: Set(now),
        rpm: Set(u.rpm),
        tpm: Set(u.tpm),
    }
    .insert(txn.db())
    .await
    .map_err(|e| ApiError::exists(e, "a user with that email or subject exists"))?;
    txn.audit(AuditAction::UserCreate, "user", &row.id, None, Some(&row)).await?;
    txn.emit(&crate::notify::producers::user_created(&row, actor)).await?;
    txn.touch(Touched::User(row.id.clone()));
    Ok(row)
}

#[tonic::async_trait]
impl UserService for UsersApi {
    async fn create_user(&self, req: tonic::Request<CreateUserRequest>) -> ApiResult<User> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let r = req.into_inner();
        let email = optional("email", &r.email, 254)?.map(|e| email(&e)).transpose()?;
        let subject = optional("subject", &r.subject, 255)?;
        if email.is_none() && subject.is_none() {
            return Err(ApiError::InvalidArgument("email or subject: one is required".into()).into());
        }
        let display_name = optional("display_name", &r.display_name, 200)?.unwrap_or_default();
        let role = stored::Role::parse(role_str(r.role)?.unwrap_or(stored::Role::Member.as_str()));
        let password_hash = if r.password.is_empty() { None } else { Some(hash_password(&password(&r.password)?)) };
        let new = NewUser {
            email,
            subject,
            display_name,
            role,
            active: true,
            password_hash,
            rpm: limit("rpm", r.rpm)?,
            tpm: limit("tpm", r.tpm)?,
        };
        let mut txn = Change::begin(&self.0, &who.user_id).await?;
        let row = insert_user(&mut txn, new, &who.email).await?;
        txn.commit().await?;
        ok(to_proto(&self.0.db, row).await?)
    }

    async fn get_user(&self, req: tonic::Request<GetUserRequest>) -> ApiResult<User> {
        let who = self.0.caller(&req).await?;
        let u = find(&self.0.db, &req.get_ref().id).await;
        // A member asking about someone else learns nothing, not even existence.
        let u = match u {
            Ok(u) if who.is_admin() || u.id == who.user_id => u,
            Ok(_) | Err(ApiError::NotFound(_)) if !who.is_admin() => {
                return Err(ApiError::PermissionDenied("members may only read their own user".into()).into())
            }
            other => other?,
        };
        ok(to_proto(&self.0.db, u).await?)
    }

    async fn list_users(&self, req: tonic::Request<ListUsersRequest>) -> ApiResult<ListUsersResponse> {
        let who = self.0.caller(&req).await?;
        let r = req.into_inner();
        let paging = Paging::from(r.page.as_ref())?;
        let mut q = users::Entity::find();
        if !who.is_admin() {
            q = q.filter(users::Column::Id.eq(who.user_id.clone()));
        }
        if let Some(role) = role_str(r.role)? {
            q = q.filter(users::Column::Role.eq(role));
        }
        if let Some(status) = status_str(r.status)? {
            q = q.filter(users::Column::Status.eq(status));
        }
        if let Some(needle) = super::optional("query", &r.query, 200)? {
            q = q.filter(
                Condition::any()
                    .add(users::Column::Email.contains(needle.clone()))
                    .add(users::Column::DisplayName.contains(needle)),
            );
        }
        let (rows, next_page_token) =
            paging.page(q.order_by_asc(users::Column::CreatedAt).order_by_asc(users::Column::Id), &self.0.db).await?;
        ok(ListUsersResponse { users: to_protos(&self.0.db, rows).await?, next_page_token })
    }

    async fn update_user(&self, req: tonic::Request<UpdateUserRequest>) -> ApiResult<User> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let r = req.into_inner();
        let mut txn = Change::begin(&self.0, &who.user_id).await?;
        let before = find(txn.db(), &r.id).await?;
        let mut am: users::ActiveModel = before.clone().into();
        if let Some(e) = &r.email {
            am.email = Set(optional("email", e, 254)?.map(|e| email(&e)).transpose()?);
        }
        if let Some(s) = &r.subject {
            am.subject = Set(optional("subject", s, 255)?);
        }
        if let Some(d) = &r.display_name {
            am.display_name = Set(optional("display_name", d, 200)?.unwrap_or_default());
        }
        let new_role = role_str(r.role)?;
        let new_status = status_str(r.status)?;
        if new_role.is_some_and(|x| x != stored::Role::Admin.as_str())
            || new_status.is_some_and(|s| s != stored::UserStatus::Active.as_str())
        {
            keep_an_admin(txn.db(), &before).await?;
        }
        if let Some(role) = new_role {
            am.role = Set(role.into());
        }
        if let Some(status) = new_status {
            am.status = Set(status.into());
        }
        if let Some(p) = &r.password {
            am.password_hash = Set(Some(hash_password(&password(p)?)));
        }
        if let Some(v) = r.rpm {
            am.rpm = Set(limit("rpm", v)?);
        }
        if let Some(v) = r.tpm {
            am.tpm = Set(limit("tpm", v)?);
        }
        am.updated_at = Set(Utc::now());
        let after = am.update(txn.db()).await.map_err(ApiError::from)?;
        if after.email.is_none() && after.subject.is_none() {
            return Err(ApiError::InvalidArgument("email or subject: one is required".into()).into());
        }
        txn.audit(AuditAction::UserUpdate, "user", &after.id, Some(&before), Some(&after)).await?;
        let was_active = stored::UserStatus::parse(&before.status) == stored::UserStatus::Active;
        if was_active && stored::UserStatus::parse(&after.status) != stored::UserStatus::Active {
            txn.emit(&crate::notify::producers::user_deactivated(&after, &who.email, after.updated_at)).await?;
            // Their sessions end now, and stay ended if they are reactivated.
            crate::auth::session::revoke_all(txn.db(), &after.id).await.map_err(ApiError::from)?;
        }
        txn.touch(Touched::User(after.id.clone()));
        txn.commit().await?;
        ok(to_proto(&self.0.db, after).await?)
    }

    async fn delete_user(&self, req: tonic::Request<DeleteUserRequest>) -> ApiResult<DeleteResponse> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let mut txn = Change::begin(&self.0, &who.user_id).await?;
        let before = find(txn.db(), &req.get_ref().id).await?;
        if before.id == who.user_id {
            return Err(ApiError::FailedPrecondition("you cannot delete yourself".into()).into());
        }
        keep_an_admin(txn.db(), &before).await?;
        // Keys, tokens and memberships go with the user (ON DELETE CASCADE):
        // name the keys now, while the database still can.
        for k in api_keys::Entity::find()
            .filter(api_keys::Column::UserId.eq(before.id.clone()))
            .all(txn.db())
            .await
            .map_err(ApiError::from)?
        {
            txn.touch(Touched::Key(k.id));
        }
        users::Entity::delete_by_id(before.id.clone()).exec(txn.db()).await.map_err(ApiError::from)?;
        txn.audit(AuditAction::UserDelete, "user", &before.id, Some(&before), None).await?;
        txn.touch(Touched::User(before.id.clone()));
        txn.commit().await?;
        ok(DeleteResponse {})
    }
}

#[cfg(test)]
mod tests {
    use super::{email, looks_like_email};

    #[test]
    fn addresses_are_accepted_and_other_strings_refused() {
        for ok in ["ada@example.com", "a.b+c@sub.example.co.uk", "x@bücher.de", "u@xn--bcher-kva.de"] {
            assert!(looks_like_email(ok), "{ok}");
        }
        for bad in [
            "notanemail",
            "@example.com",
            "ada@",
            "ada@example",
            "ada@@example.com",
            "a@b@c.com",
            "ada@-x.com",
            "ada@x..com",
            "ada@x_y.com",
            "<ada>@example.com",
            "a,b@example.com",
            "\"ada\"@example.com",
        ] {
            assert!(!looks_like_email(bad), "{bad}");
        }
    }

    #[test]
    fn an_emails_domain_is_stored_in_lower_case_and_its_local_part_as_given() {
        assert_eq!(email(" Ada.Lovelace@Example.COM ").unwrap(), "Ada.Lovelace@example.com");
    }

    #[test]
    fn a_refused_email_names_the_field() {
        let e = email("notanemail").unwrap_err().to_string();
        assert!(e.starts_with("email: "), "{e}");
    }
}
