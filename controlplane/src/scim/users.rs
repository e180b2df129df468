//! `/Users`: the gateway users an identity provider provisions. The SCIM
//! id is the gateway user's id; the gateway user holds the email, display
//! name, role and status, `scim_users` what only SCIM has (userName,
//! externalId, name parts, the emails as sent, the version).

use std::collections::HashMap;

use chrono::Utc;
use http::Method;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde_json::{json, Value};

use super::schema::USER_SCHEMA;
use super::{check_if_match, etag, list_response, project, Client, Reply, Req, ScimError};
use crate::api::{Change, Ctx};
use crate::fleet::Touched;
use crate::store::entities::{api_keys, scim_group_members, scim_groups, scim_users, users};
use crate::store::{AuditAction, KeyStatus, UserStatus};

pub async fn handle(ctx: &Ctx, client: &Client, req: &Req) -> Result<Reply, ScimError> {
    match (&req.method, req.segments.get(1)) {
        (&Method::GET, None) => list(ctx, client, req).await,
        (&Method::POST, None) => create(ctx, client, req).await,
        (&Method::GET, Some(id)) => {
            let row = load(&ctx.db, client, id).await?;
            Ok(Reply::ok(project(one_json(&ctx.db, client, &row).await?, req)))
        }
        (&Method::PUT, Some(id)) => {
            let row = load(&ctx.db, client, id).await?;
            check_if_match(req, row.scim.version)?;
            let doc = Doc::parse(req.body()?)?;
            update(ctx, client, row, doc).await
        }
        (&Method::PATCH, Some(id)) => {
            let row = load(&ctx.db, client, id).await?;
            check_if_match(req, row.scim.version)?;
            let ops = super::patch::parse_request(req.body()?).map_err(patch_error)?;
            let current = one_json(&ctx.db, client, &row).await?;
            let patched = super::patch::apply(&current, &ops).map_err(patch_error)?;
            update(ctx, client, row, Doc::parse(&patched)?).await
        }
        (&Method::DELETE, Some(id)) => {
            let row = load(&ctx.db, client, id).await?;
            check_if_match(req, row.scim.version)?;
            delete(ctx, client, row).await
        }
        _ => Err(ScimError::NotImplemented(format!("{} is not supported here", req.method))),
    }
}

pub fn patch_error(e: super::patch::PatchError) -> ScimError {
    ScimError::Patch { scim_type: e.scim_type(), detail: e.to_string() }
}

pub struct Row {
    pub scim: scim_users::Model,
    pub user: users::Model,
}

/// A user this client's provider provisioned; anything else is not there.
pub async fn load<C: ConnectionTrait>(c: &C, client: &Client, id: &str) -> Result<Row, ScimError> {
    let missing = || ScimError::NotFound(format!("no user {id:?} provisioned by this identity provider"));
    let scim = scim_users::Entity::find_by_id(id.to_owned())
        .filter(scim_users::Column::IdpId.eq(client.provider.id.clone()))
        .one(c)
        .await?
        .ok_or_else(missing)?;
    let user = users::Entity::find_by_id(scim.user_id.clone()).one(c).await?.ok_or_else(missing)?;
    Ok(Row { scim, user })
}

/// Each user's groups at this provider, `(id, displayName)`.
async fn groups_of<C: ConnectionTrait>(
    c: &C,
    client: &Client,
    user_ids: &[String],
) -> Result<HashMap<String, Vec<(String, String)>>, ScimError> {
    let groups: HashMap<String, String> = scim_groups::Entity::find()
        .filter(scim_groups::Column::IdpId.eq(client.provider.id.clone()))
        .all(c)
        .await?
        .into_iter()
        .map(|g| (g.id, g.display_name))
        .collect();
    let mut out: HashMap<String, Vec<(String, String)>> = HashMap::new();
    if groups.is_empty() || user_ids.is_empty() {
        return Ok(out);
    }
    for chunk in user_ids.chunks(500) {
        let rows = scim_group_members::Entity::find()
            .filter(scim_group_members::Column::UserId.is_in(chunk.iter().cloned()))
            .order_by_asc(scim_group_members::Column::GroupId)
            .all(c)
            .await?;
        for m in rows {
            if let Some(name) = groups.get(&m.group_id) {
                out.entry(m.user_id).or_default().push((m.group_id, name.clone()));
            }
        }
    }
    Ok(out)
}

async fn one_json<C: ConnectionTrait>(c: &C, client: &Client, row: &Row) -> Result<Value, ScimError> {
    let groups = groups_of(c, client, std::slice::from_ref(&row.scim.user_id)).await?;
    Ok(to_json(client, row, groups.get(&row.scim.user_id).map(Vec::as_slice).unwrap_or_default()))
}

pub fn to_json(client: &Client, row: &Row, groups: &[(String, String)]) -> Value {
    let s = &row.scim;
    let emails: Value = serde_json::from_str(&s.emails_json).unwrap_or_else(|_| json!([]));
    let emails = match emails {
        Value::Array(a) if !a.is_empty() => Value::Array(a),
        // A provider that sent none still sees the address the gateway uses.
        _ => row.user.email.as_ref().map_or(json!([]), |e| json!([{"value": e, "type": "work", "primary": true}])),
    };
    let mut v = json!({
        "schemas": [USER_SCHEMA],
        "id": s.user_id,
        "userName": s.user_name,
        "emails": emails,
        "active": UserStatus::parse(&row.user.status) == UserStatus::Active,
        "groups": groups.iter().map(|(id, name)| json!({"value": id, "display": name, "$ref": format!("{}/Groups/{id}", client.base)})).collect::<Vec<_>>(),
        "meta": {
            "resourceType": "User",
            "created": crate::api::ts(s.created_at),
            "lastModified": crate::api::ts(s.updated_at),
            "location": format!("{}/Users/{}", client.base, s.user_id),
            "version": etag(s.version),
        },
    });
    if let Some(x) = &s.external_id {
        v["externalId"] = json!(x);
    }
    // Unset attributes are left out, not sent empty (RFC 7643 §2.5).
    let mut name = serde_json::Map::new();
    for (k, part) in [("givenName", &s.given_name), ("familyName", &s.family_name)] {
        if !part.is_empty() {
            name.insert(k.into(), json!(part));
        }
    }
    if !name.is_empty() {
        name.insert("formatted".into(), json!(format!("{} {}", s.given_name, s.family_name).trim()));
        v["name"] = Value::Object(name);
    }
    if !row.user.display_name.is_empty() {
        v["displayName"] = json!(row.user.display_name);
    }
    v
}

/// A user document as sent, checked.
pub struct Doc {
    user_name: String,
    external_id: Option<String>,
    given: String,
    family: String,
    display_name: String,
    emails: Vec<Value>,
    /// The address the gateway knows the user by.
    email: String,
    active: bool,
}

/// A member of an object, its name compared case-insensitively (SCIM
/// attribute names are).
pub fn field<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

fn text(v: Option<&Value>, what: &str, max: usize) -> Result<Option<String>, ScimError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let s = s.trim();
            if s.chars().count() > max || s.chars().any(char::is_control) {
                return Err(ScimError::InvalidValue(format!(
                    "{what}: at most {max} characters, no control characters"
                )));
            }
            Ok((!s.is_empty()).then(|| s.to_owned()))
        }
        Some(_) => Err(ScimError::InvalidValue(format!("{what}: must be a string"))),
    }
}

/// `true`, or Entra ID's `"True"`/`"False"` strings.
pub fn boolean(v: Option<&Value>, what: &str) -> Result<Option<bool>, ScimError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(_) => Err(ScimError::InvalidValue(format!("{what}: must be true or false"))),
    }
}

impl Doc {
    pub fn parse(v: &Value) -> Result<Doc, ScimError> {
        if !v.is_object() {
            return Err(ScimError::InvalidSyntax("a user is a JSON object".into()));
        }
        let user_name = text(field(v, "userName"), "userName", 254)?
            .ok_or_else(|| ScimError::InvalidValue("userName: required".into()))?;
        let name = field(v, "name");
        let part = |k: &str| -> Result<String, ScimError> {
            Ok(text(name.and_then(|n| field(n, k)), &format!("name.{k}"), 100)?.unwrap_or_default())
        };
        let (given, family) = (part("givenName")?, part("familyName")?);
        let formatted = part("formatted")?;
        let emails: Vec<Value> = match field(v, "emails") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) if a.len() <= 20 => a.clone(),
            Some(_) => return Err(ScimError::InvalidValue("emails: an array of at most 20 addresses".into())),
        };
        for e in &emails {
            text(field(e, "value"), "emails.value", 254)?;
        }
        fn address(e: &Value) -> Option<&str> {
            field(e, "value").and_then(Value::as_str).map(str::trim).filter(|s| crate::api::looks_like_email(s))
        }
        let chosen = if crate::api::looks_like_email(&user_name) {
            Some(user_name.clone())
        } else {
            // The primary address, else the work one, else the first.
            let primary = emails.iter().find(|e| field(e, "primary").and_then(Value::as_bool) == Some(true));
            let work = emails.iter().find(|e| field(e, "type").and_then(Value::as_str) == Some("work"));
            primary
                .and_then(address)
                .or_else(|| work.and_then(address))
                .or_else(|| emails.iter().find_map(address))
                .map(str::to_owned)
        };
        let email = chosen.ok_or_else(|| {
            ScimError::InvalidValue(
                "userName: the gateway knows users by email: send an address as userName or in emails".into(),
            )
        })?;
        let display_name = text(field(v, "displayName"), "displayName", 200)?
            .or_else(|| (!formatted.is_empty()).then(|| formatted.clone()))
            .unwrap_or_else(|| format!("{given} {family}").trim().to_owned());
        Ok(Doc {
            external_id: text(field(v, "externalId"), "externalId", 255)?,
            active: boolean(field(v, "active"), "active")?.unwrap_or(true),
            email: crate::api::with_lowercase_domain(&email),
            user_name,
            given,
            family,
            display_name,
            emails,
        })
    }

    fn key(&self) -> String {
        self.user_name.to_lowercase()
    }
}

async fn list(ctx: &Ctx, client: &Client, req: &Req) -> Result<Reply, ScimError> {
    list_response(all(ctx, client, req).await?, req)
}

/// Every user of this provider (those a `userName eq` filter names, when
/// it is one), as SCIM documents.
pub async fn all(ctx: &Ctx, client: &Client, req: &Req) -> Result<Vec<Value>, ScimError> {
    let mut q = scim_users::Entity::find().filter(scim_users::Column::IdpId.eq(client.provider.id.clone()));
    // The provisioning clients' everyday question, answered by the index.
    if let Some(Ok(f)) = req.param("filter").map(super::filter::parse) {
        if let Some((attr, value)) = f.simple_eq() {
            if attr.eq_ignore_ascii_case("userName") {
                q = q.filter(scim_users::Column::UserNameKey.eq(value.to_lowercase()));
            }
        }
    }
    let scims =
        q.order_by_asc(scim_users::Column::CreatedAt).order_by_asc(scim_users::Column::UserId).all(&ctx.db).await?;
    let ids: Vec<String> = scims.iter().map(|s| s.user_id.clone()).collect();
    let mut people: HashMap<String, users::Model> = HashMap::new();
    for chunk in ids.chunks(500) {
        for u in users::Entity::find().filter(users::Column::Id.is_in(chunk.iter().cloned())).all(&ctx.db).await? {
            people.insert(u.id.clone(), u);
        }
    }
    let groups = groups_of(&ctx.db, client, &ids).await?;
    Ok(scims
        .into_iter()
        .filter_map(|scim| {
            let user = people.remove(&scim.user_id)?;
            let g = groups.get(&scim.user_id).map(Vec::as_slice).unwrap_or_default();
            Some(to_json(client, &Row { scim, user }, g))
        })
        .collect())
}

async fn unique_user_name<C: ConnectionTrait>(
    c: &C,
    client: &Client,
    doc: &Doc,
    except: Option<&str>,
) -> Result<(), ScimError> {
    let taken = scim_users::Entity::find()
        .filter(scim_users::Column::IdpId.eq(client.provider.id.clone()))
        .filter(scim_users::Column::UserNameKey.eq(doc.key()))
        .one(c)
        .await?;
    match taken {
        Some(t) if Some(t.user_id.as_str()) != except => {
            Err(ScimError::Uniqueness(format!("userName: {:?} is already provisioned", doc.user_name)))
        }
        _ => Ok(()),
    }
}

async fn create(ctx: &Ctx, client: &Client, req: &Req) -> Result<Reply, ScimError> {
    let doc = Doc::parse(req.body()?)?;
    let mut txn = Change::begin(ctx, &client.actor).await?;
    unique_user_name(txn.db(), client, &doc, None).await?;
    let now = Utc::now();
    let existing = users::Entity::find().filter(users::Column::Email.eq(doc.email.clone())).one(txn.db()).await?;
    let user = match existing {
        Some(u) => {
            // An account an admin made, or one that signed in before SCIM,
            // is linked rather than duplicated, unless a provider has it.
            if scim_users::Entity::find_by_id(u.id.clone()).one(txn.db()).await?.is_some() {
                return Err(ScimError::Uniqueness(format!(
                    "userName: {} belongs to a user another identity provider provisions",
                    doc.email
                )));
            }
            set_user(&mut txn, client, u, &doc).await?
        }
        None => {
            let new = crate::api::NewUser {
                email: Some(doc.email.clone()),
                subject: None,
                display_name: doc.display_name.clone(),
                role: client.provider.default_role,
                active: doc.active,
                password_hash: None,
                rpm: 0,
                tpm: 0,
            };
            crate::api::insert_user(&mut txn, new, &client.actor).await?
        }
    };
    let scim = scim_users::ActiveModel {
        user_id: Set(user.id.clone()),
        idp_id: Set(client.provider.id.clone()),
        user_name: Set(doc.user_name.clone()),
        user_name_key: Set(doc.key()),
        external_id: Set(doc.external_id.clone()),
        given_name: Set(doc.given.clone()),
        family_name: Set(doc.family.clone()),
        emails_json: Set(Value::Array(doc.emails.clone()).to_string()),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(txn.db())
    .await
    .map_err(|e| crate::api::ApiError::exists(e, "userName: already provisioned"))?;
    txn.commit().await?;
    Ok(Reply::created(to_json(client, &Row { scim, user }, &[])))
}

/// The gateway user's email, name and status from the document, with what
/// a deactivation entails (sessions ended, the event sent, never the last
/// admin).
async fn set_user(
    txn: &mut Change<'_>,
    client: &Client,
    before: users::Model,
    doc: &Doc,
) -> Result<users::Model, ScimError> {
    let was_active = UserStatus::parse(&before.status) == UserStatus::Active;
    let mut am: users::ActiveModel = before.clone().into();
    let mut changed = false;
    if before.email.as_deref() != Some(doc.email.as_str()) {
        am.email = Set(Some(doc.email.clone()));
        changed = true;
    }
    if before.display_name != doc.display_name {
        am.display_name = Set(doc.display_name.clone());
        changed = true;
    }
    if was_active != doc.active {
        if !doc.active {
            crate::api::users_keep_an_admin(txn.db(), &before).await?;
        }
        am.status = Set(if doc.active { UserStatus::Active } else { UserStatus::Disabled }.as_str().into());
        changed = true;
    }
    if !changed {
        return Ok(before);
    }
    am.updated_at = Set(Utc::now());
    let after = am
        .update(txn.db())
        .await
        .map_err(|e| crate::api::ApiError::exists(e, "emails: another user has that address"))?;
    txn.audit(AuditAction::UserUpdate, "user", &after.id, Some(&before), Some(&after)).await?;
    if was_active && !doc.active {
        txn.emit(&crate::notify::producers::user_deactivated(&after, &client.actor, after.updated_at)).await?;
        crate::auth::session::revoke_all(txn.db(), &after.id).await?;
        if crate::gateway_settings::flag(txn.db(), "scim.revoke_keys_on_deprovision").await? {
            revoke_keys(txn, &after.id).await?;
        }
    }
    txn.touch(Touched::User(after.id.clone()));
    Ok(after)
}

/// Every key of the user, revoked for good (audited one by one).
async fn revoke_keys(txn: &mut Change<'_>, user_id: &str) -> Result<(), ScimError> {
    let keys = api_keys::Entity::find()
        .filter(api_keys::Column::UserId.eq(user_id.to_owned()))
        .filter(api_keys::Column::Status.ne(KeyStatus::Revoked.as_str()))
        .all(txn.db())
        .await?;
    for k in keys {
        let mut am: api_keys::ActiveModel = k.clone().into();
        am.status = Set(KeyStatus::Revoked.as_str().into());
        am.updated_at = Set(Utc::now());
        let after = am.update(txn.db()).await?;
        txn.audit(AuditAction::KeyRevoke, "key", &after.id, Some(&k), Some(&after)).await?;
        txn.touch(Touched::Key(after.id.clone()));
    }
    Ok(())
}

async fn update(ctx: &Ctx, client: &Client, row: Row, doc: Doc) -> Result<Reply, ScimError> {
    let mut txn = Change::begin(ctx, &client.actor).await?;
    unique_user_name(txn.db(), client, &doc, Some(&row.scim.user_id)).await?;
    let user = set_user(&mut txn, client, row.user, &doc).await?;
    let mut am: scim_users::ActiveModel = row.scim.clone().into();
    am.user_name = Set(doc.user_name.clone());
    am.user_name_key = Set(doc.key());
    am.external_id = Set(doc.external_id.clone());
    am.given_name = Set(doc.given.clone());
    am.family_name = Set(doc.family.clone());
    am.emails_json = Set(Value::Array(doc.emails.clone()).to_string());
    am.version = Set(row.scim.version + 1);
    am.updated_at = Set(Utc::now());
    let scim =
        am.update(txn.db()).await.map_err(|e| crate::api::ApiError::exists(e, "userName: already provisioned"))?;
    let groups = groups_of(txn.db(), client, std::slice::from_ref(&scim.user_id)).await?;
    txn.commit().await?;
    let g = groups.get(&scim.user_id).map(Vec::as_slice).unwrap_or_default();
    Ok(Reply::ok(to_json(client, &Row { scim, user }, g)))
}

/// Deprovisioning: the user is deactivated, not deleted (their history and
/// spend stay), leaves this provider's groups and the teams they gave, and
/// is no longer this provider's: a later POST of the same userName links
/// the same account again.
async fn delete(ctx: &Ctx, client: &Client, row: Row) -> Result<Reply, ScimError> {
    let mut txn = Change::begin(ctx, &client.actor).await?;
    let mut doc = Doc::parse(&to_json(client, &row, &[]))?;
    doc.active = false;
    let user = set_user(&mut txn, client, row.user, &doc).await?;
    let group_ids: Vec<String> = scim_groups::Entity::find()
        .filter(scim_groups::Column::IdpId.eq(client.provider.id.clone()))
        .all(txn.db())
        .await?
        .into_iter()
        .map(|g| g.id)
        .collect();
    if !group_ids.is_empty() {
        scim_group_members::Entity::delete_many()
            .filter(scim_group_members::Column::UserId.eq(user.id.clone()))
            .filter(scim_group_members::Column::GroupId.is_in(group_ids))
            .exec(txn.db())
            .await?;
    }
    super::groups::apply_memberships(&mut txn, ctx, client, std::slice::from_ref(&user.id)).await?;
    scim_users::Entity::delete_by_id(row.scim.user_id.clone()).exec(txn.db()).await?;
    txn.audit(AuditAction::ScimUserDelete, "user", &user.id, Some(&row.scim), None::<&scim_users::Model>).await?;
    txn.commit().await?;
    Ok(Reply::no_content())
}
