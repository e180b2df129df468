//! `/Groups`: an identity provider's groups and their members. A group is
//! not a team: its displayName is looked up in the provider's admin groups
//! (the role) and team mappings (team memberships), exactly as the groups
//! claim of a sign-in is, after every membership change.

use std::collections::{BTreeSet, HashMap};

use chrono::Utc;
use http::Method;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde_json::{json, Value};

use super::schema::GROUP_SCHEMA;
use super::users::{field, patch_error};
use super::{check_if_match, etag, list_response, project, Client, Reply, Req, ScimError};
use crate::api::{Change, Ctx};
use crate::identity::verify::Verified;
use crate::store::entities::{scim_group_members, scim_groups, scim_users, users};
use crate::store::{ids, AuditAction};

/// More members than this in one document is refused; providers send
/// large groups as PATCHes of a few members each.
const MAX_MEMBERS: usize = 10_000;

pub async fn handle(ctx: &Ctx, client: &Client, req: &Req) -> Result<Reply, ScimError> {
    match (&req.method, req.segments.get(1)) {
        (&Method::GET, None) => list(ctx, client, req).await,
        (&Method::POST, None) => {
            let doc = Doc::parse(req.body()?)?;
            save(ctx, client, None, doc).await.map(Reply::created)
        }
        (&Method::GET, Some(id)) => {
            let g = load(&ctx.db, client, id).await?;
            let json = to_json(&ctx.db, client, &g).await?;
            Ok(Reply::ok(project(json, req)))
        }
        (&Method::PUT, Some(id)) => {
            let g = load(&ctx.db, client, id).await?;
            check_if_match(req, g.version)?;
            let doc = Doc::parse(req.body()?)?;
            save(ctx, client, Some(g), doc).await.map(Reply::ok)
        }
        (&Method::PATCH, Some(id)) => {
            let g = load(&ctx.db, client, id).await?;
            check_if_match(req, g.version)?;
            let ops = super::patch::parse_request(req.body()?).map_err(patch_error)?;
            let current = to_json(&ctx.db, client, &g).await?;
            let patched = super::patch::apply(&current, &ops).map_err(patch_error)?;
            save(ctx, client, Some(g), Doc::parse(&patched)?).await?;
            // Entra ID expects 204; RFC 7644 allows it.
            Ok(Reply::no_content())
        }
        (&Method::DELETE, Some(id)) => {
            let g = load(&ctx.db, client, id).await?;
            check_if_match(req, g.version)?;
            delete(ctx, client, g).await
        }
        _ => Err(ScimError::NotImplemented(format!("{} is not supported here", req.method))),
    }
}

async fn load<C: ConnectionTrait>(c: &C, client: &Client, id: &str) -> Result<scim_groups::Model, ScimError> {
    scim_groups::Entity::find_by_id(id.to_owned())
        .filter(scim_groups::Column::IdpId.eq(client.provider.id.clone()))
        .one(c)
        .await?
        .ok_or_else(|| ScimError::NotFound(format!("no group {id:?} at this identity provider")))
}

/// Members as `(user id, userName)`.
async fn members_of<C: ConnectionTrait>(
    c: &C,
    group_ids: &[String],
) -> Result<HashMap<String, Vec<(String, String)>>, ScimError> {
    let mut out: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for chunk in group_ids.chunks(500) {
        let rows = scim_group_members::Entity::find()
            .filter(scim_group_members::Column::GroupId.is_in(chunk.iter().cloned()))
            .order_by_asc(scim_group_members::Column::UserId)
            .all(c)
            .await?;
        let user_ids: Vec<String> = rows.iter().map(|m| m.user_id.clone()).collect();
        let mut names: HashMap<String, String> = HashMap::new();
        for ids in user_ids.chunks(500) {
            for s in
                scim_users::Entity::find().filter(scim_users::Column::UserId.is_in(ids.iter().cloned())).all(c).await?
            {
                names.insert(s.user_id, s.user_name);
            }
        }
        for m in rows {
            let name = names.get(&m.user_id).cloned().unwrap_or_default();
            out.entry(m.group_id).or_default().push((m.user_id, name));
        }
    }
    Ok(out)
}

async fn member_ids<C: ConnectionTrait>(c: &C, group_id: &str) -> Result<Vec<String>, ScimError> {
    let ids = [group_id.to_owned()];
    Ok(members_of(c, &ids).await?.remove(group_id).unwrap_or_default().into_iter().map(|(id, _)| id).collect())
}

fn json_of(client: &Client, g: &scim_groups::Model, members: &[(String, String)]) -> Value {
    let mut v = json!({
        "schemas": [GROUP_SCHEMA],
        "id": g.id,
        "displayName": g.display_name,
        "members": members.iter().map(|(id, name)| json!({"value": id, "display": name, "$ref": format!("{}/Users/{id}", client.base)})).collect::<Vec<_>>(),
        "meta": {
            "resourceType": "Group",
            "created": crate::api::ts(g.created_at),
            "lastModified": crate::api::ts(g.updated_at),
            "location": format!("{}/Groups/{}", client.base, g.id),
            "version": etag(g.version),
        },
    });
    if let Some(x) = &g.external_id {
        v["externalId"] = json!(x);
    }
    v
}

async fn to_json<C: ConnectionTrait>(c: &C, client: &Client, g: &scim_groups::Model) -> Result<Value, ScimError> {
    let members = members_of(c, std::slice::from_ref(&g.id)).await?;
    Ok(json_of(client, g, members.get(&g.id).map(Vec::as_slice).unwrap_or_default()))
}

async fn list(ctx: &Ctx, client: &Client, req: &Req) -> Result<Reply, ScimError> {
    list_response(all(ctx, client, req).await?, req)
}

/// Every group of this provider, as SCIM documents.
pub async fn all(ctx: &Ctx, client: &Client, req: &Req) -> Result<Vec<Value>, ScimError> {
    let groups = scim_groups::Entity::find()
        .filter(scim_groups::Column::IdpId.eq(client.provider.id.clone()))
        .order_by_asc(scim_groups::Column::CreatedAt)
        .order_by_asc(scim_groups::Column::Id)
        .all(&ctx.db)
        .await?;
    // Entra asks for groups without their members; do not load them then.
    let without_members =
        req.param("excludedAttributes").is_some_and(|a| a.split(',').any(|x| x.trim().eq_ignore_ascii_case("members")));
    let members = if without_members {
        HashMap::new()
    } else {
        members_of(&ctx.db, &groups.iter().map(|g| g.id.clone()).collect::<Vec<_>>()).await?
    };
    Ok(groups.iter().map(|g| json_of(client, g, members.get(&g.id).map(Vec::as_slice).unwrap_or_default())).collect())
}

struct Doc {
    display_name: String,
    external_id: Option<String>,
    members: BTreeSet<String>,
}

impl Doc {
    fn parse(v: &Value) -> Result<Doc, ScimError> {
        if !v.is_object() {
            return Err(ScimError::InvalidSyntax("a group is a JSON object".into()));
        }
        let display_name = field(v, "displayName")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ScimError::InvalidValue("displayName: required".into()))?;
        if display_name.chars().count() > 256 || display_name.chars().any(char::is_control) {
            return Err(ScimError::InvalidValue("displayName: at most 256 characters, no control characters".into()));
        }
        let external_id = match field(v, "externalId") {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().chars().take(255).collect()),
            _ => None,
        };
        let members = match field(v, "members") {
            None | Some(Value::Null) => BTreeSet::new(),
            Some(Value::Array(a)) if a.len() <= MAX_MEMBERS => a
                .iter()
                .map(|m| {
                    field(m, "value")
                        .and_then(Value::as_str)
                        .map(|s| s.trim().to_owned())
                        .ok_or_else(|| ScimError::InvalidValue("members: each needs a value, the user's id".into()))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(ScimError::InvalidValue(format!("members: an array of at most {MAX_MEMBERS}"))),
        };
        Ok(Doc { display_name: display_name.to_owned(), external_id, members })
    }
}

async fn save(ctx: &Ctx, client: &Client, before: Option<scim_groups::Model>, doc: Doc) -> Result<Value, ScimError> {
    let mut txn = Change::begin(ctx, &client.actor).await?;
    // Members must be users this provider provisioned.
    let wanted: Vec<String> = doc.members.iter().cloned().collect();
    let mut known = BTreeSet::new();
    for chunk in wanted.chunks(500) {
        for s in scim_users::Entity::find()
            .filter(scim_users::Column::IdpId.eq(client.provider.id.clone()))
            .filter(scim_users::Column::UserId.is_in(chunk.iter().cloned()))
            .all(txn.db())
            .await?
        {
            known.insert(s.user_id);
        }
    }
    if let Some(stranger) = doc.members.iter().find(|m| !known.contains(*m)) {
        return Err(ScimError::InvalidValue(format!(
            "members: {stranger:?} is not a user this identity provider provisioned"
        )));
    }
    let now = Utc::now();
    let (group, old_members, renamed) = match before {
        None => {
            let g = scim_groups::ActiveModel {
                id: Set(ids::new_id("grp")),
                idp_id: Set(client.provider.id.clone()),
                display_name: Set(doc.display_name.clone()),
                external_id: Set(doc.external_id.clone()),
                version: Set(1),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(txn.db())
            .await?;
            txn.audit(AuditAction::ScimGroupCreate, "scim_group", &g.id, None, Some(&g)).await?;
            (g, BTreeSet::new(), false)
        }
        Some(b) => {
            let old: BTreeSet<String> = member_ids(txn.db(), &b.id).await?.into_iter().collect();
            let renamed = b.display_name != doc.display_name;
            let mut am: scim_groups::ActiveModel = b.clone().into();
            am.display_name = Set(doc.display_name.clone());
            am.external_id = Set(doc.external_id.clone());
            am.version = Set(b.version + 1);
            am.updated_at = Set(now);
            let g = am.update(txn.db()).await?;
            txn.audit(AuditAction::ScimGroupUpdate, "scim_group", &g.id, Some(&b), Some(&g)).await?;
            (g, old, renamed)
        }
    };
    let joined: Vec<String> = doc.members.difference(&old_members).cloned().collect();
    let left: Vec<String> = old_members.difference(&doc.members).cloned().collect();
    for u in &joined {
        scim_group_members::ActiveModel { group_id: Set(group.id.clone()), user_id: Set(u.clone()) }
            .insert(txn.db())
            .await?;
    }
    for chunk in left.chunks(500) {
        scim_group_members::Entity::delete_many()
            .filter(scim_group_members::Column::GroupId.eq(group.id.clone()))
            .filter(scim_group_members::Column::UserId.is_in(chunk.iter().cloned()))
            .exec(txn.db())
            .await?;
    }
    // A rename can move every member in or out of a mapped group.
    let affected: Vec<String> = if renamed {
        doc.members.union(&old_members).cloned().collect()
    } else {
        joined.into_iter().chain(left).collect()
    };
    apply_memberships(&mut txn, ctx, client, &affected).await?;
    let json = to_json(txn.db(), client, &group).await?;
    txn.commit().await?;
    Ok(json)
}

async fn delete(ctx: &Ctx, client: &Client, g: scim_groups::Model) -> Result<Reply, ScimError> {
    let mut txn = Change::begin(ctx, &client.actor).await?;
    let members = member_ids(txn.db(), &g.id).await?;
    scim_groups::Entity::delete_by_id(g.id.clone()).exec(txn.db()).await?;
    txn.audit(AuditAction::ScimGroupDelete, "scim_group", &g.id, Some(&g), None::<&scim_groups::Model>).await?;
    apply_memberships(&mut txn, ctx, client, &members).await?;
    txn.commit().await?;
    Ok(Reply::no_content())
}

/// Each user's role and mapped teams from the groups they are in now at
/// this provider. A user in several mapped groups is in each of their
/// teams; the role is admin while any of their groups is an admin group
/// (and the last admin is never demoted).
pub async fn apply_memberships(
    txn: &mut Change<'_>,
    ctx: &Ctx,
    client: &Client,
    user_ids: &[String],
) -> Result<(), ScimError> {
    if user_ids.is_empty() {
        return Ok(());
    }
    let names: HashMap<String, String> = scim_groups::Entity::find()
        .filter(scim_groups::Column::IdpId.eq(client.provider.id.clone()))
        .all(txn.db())
        .await?
        .into_iter()
        .map(|g| (g.id, g.display_name))
        .collect();
    for user_id in user_ids {
        let Some(user) = users::Entity::find_by_id(user_id.clone()).one(txn.db()).await? else { continue };
        let groups: Vec<String> = scim_group_members::Entity::find()
            .filter(scim_group_members::Column::UserId.eq(user_id.clone()))
            .all(txn.db())
            .await?
            .into_iter()
            .filter_map(|m| names.get(&m.group_id).cloned())
            .collect();
        let v = Verified { subject: String::new(), email: user.email.clone(), name: None, groups: Some(groups) };
        crate::identity::provision::apply_groups(txn, &client.provider, &ctx.identity.admin_users, user, &v).await?;
    }
    Ok(())
}
