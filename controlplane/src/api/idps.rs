//! IdentityProviderService: the OpenID Connect providers people sign in
//! with. A provider is checked when it is saved: its issuer URL passes the
//! outbound check and its discovery document is fetched and must name that
//! issuer, unless the caller says the provider is not reachable yet.

use std::collections::{BTreeMap, HashMap};

use ccag_proto::admin::v1::identity_provider_service_server::IdentityProviderService;
use ccag_proto::admin::v1::{self as pb, *};
use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use super::{ok, require, ts, ApiError, ApiResult, Change, Ctx, Paging, Shared};
use crate::identity::provider::{self, secret_aad, split_list};
use crate::store::entities::{identity_providers as idps, sessions, user_identities};
use crate::store::{ids, AuditAction, Role};

pub struct IdpsApi(pub Shared);

/// Provider names appear in URLs (`?idp=NAME`).
fn name(v: &str) -> Result<String, ApiError> {
    let n = require("name", v, 64)?;
    if !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(ApiError::InvalidArgument("name: letters, digits, '-' and '_' only (it goes in URLs)".into()));
    }
    Ok(n)
}

fn issuer(v: &str) -> Result<String, ApiError> {
    let i = require("issuer", v, 1024)?;
    ccag_outbound::idp_target(&i).map_err(|e| ApiError::InvalidArgument(format!("issuer: {e}")))?;
    if i.contains(['?', '#']) {
        return Err(ApiError::InvalidArgument("issuer: no query or fragment".into()));
    }
    Ok(i)
}

fn scopes(v: &[String]) -> Result<String, ApiError> {
    let mut out: Vec<String> = v.iter().flat_map(|s| split_list(s)).collect();
    if out.is_empty() {
        return Ok(provider::DEFAULT_SCOPES.into());
    }
    if let Some(bad) = out.iter().find(|s| !s.chars().all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')) {
        return Err(ApiError::InvalidArgument(format!("scopes: {bad:?} is not a scope")));
    }
    if out.len() > 50 || out.iter().any(|s| s.len() > 200) {
        return Err(ApiError::InvalidArgument("scopes: at most 50, each at most 200 characters".into()));
    }
    if !out.iter().any(|s| s == "openid") {
        out.insert(0, "openid".into());
    }
    out.dedup();
    Ok(out.join(" "))
}

/// Sealed as given (a secret is not trimmed), but bounded.
fn client_secret(v: &str) -> Result<(), ApiError> {
    if v.len() > 4096 || v.chars().any(char::is_control) {
        return Err(ApiError::InvalidArgument("client_secret: at most 4096 characters, no control characters".into()));
    }
    Ok(())
}

fn claim(field: &str, v: &str) -> Result<String, ApiError> {
    let c = v.trim();
    if c.len() > 200 || c.chars().any(char::is_control) {
        return Err(ApiError::InvalidArgument(format!(
            "{field}: a claim name or a JSON Pointer such as /realm_access/roles"
        )));
    }
    Ok(c.to_owned())
}

fn domains(v: &[String]) -> Result<String, ApiError> {
    let mut out = Vec::new();
    for d in v.iter().flat_map(|s| split_list(s)) {
        let d = d.trim_start_matches('@').to_ascii_lowercase();
        if !super::users::looks_like_email(&format!("x@{d}")) {
            return Err(ApiError::InvalidArgument(format!("allowed_domains: {d:?} is not a domain like example.com")));
        }
        out.push(d);
    }
    Ok(out.join(","))
}

fn groups(field: &str, v: &[String]) -> Result<String, ApiError> {
    let mut out = Vec::new();
    for g in v.iter().flat_map(|s| s.split(',')).map(str::trim).filter(|s| !s.is_empty()) {
        if g.len() > 256 || g.chars().any(char::is_control) {
            return Err(ApiError::InvalidArgument(format!("{field}: {g:?} is not a group name")));
        }
        out.push(g.to_owned());
    }
    Ok(out.join(","))
}

fn role(r: i32, field: &str) -> Result<Option<Role>, ApiError> {
    match pb::Role::try_from(r) {
        Ok(pb::Role::Unspecified) => Ok(None),
        Ok(pb::Role::Admin) => Ok(Some(Role::Admin)),
        Ok(pb::Role::Member) => Ok(Some(Role::Member)),
        Err(_) => Err(ApiError::InvalidArgument(format!("{field}: admin or member"))),
    }
}

/// Group -> team id, each team named by id or name.
async fn mappings<C: ConnectionTrait>(c: &C, m: &HashMap<String, String>) -> Result<String, ApiError> {
    let mut out = BTreeMap::new();
    for (g, team) in m {
        let g = g.trim();
        if g.is_empty() || g.len() > 256 || g.chars().any(char::is_control) {
            return Err(ApiError::InvalidArgument(format!(
                "team_mappings: {g:?} is not a group name (1 to 256 characters, no control characters)"
            )));
        }
        let t = super::teams::find(c, team).await.map_err(|e| match e {
            ApiError::NotFound(m) => ApiError::InvalidArgument(format!("team_mappings: {g}: {m}")),
            other => other,
        })?;
        out.insert(g.to_owned(), t.id);
    }
    Ok(if out.is_empty() { String::new() } else { serde_json::to_string(&out).expect("a map of strings") })
}

pub async fn find<C: ConnectionTrait>(c: &C, id_or_name: &str) -> Result<idps::Model, ApiError> {
    let k = super::lookup("id", "the identity provider's id or name", id_or_name)?;
    idps::Entity::find()
        .filter(Condition::any().add(idps::Column::Id.eq(k)).add(idps::Column::Name.eq(k)))
        .one(c)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("identity provider {k:?} not found")))
}

/// Fetches the discovery document of the row as it would be saved.
async fn discover(ctx: &Ctx, row: &idps::Model) -> Result<(), ApiError> {
    let p = crate::identity::Provider::from_row(row, &ctx.identity.keyring)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    ctx.identity.forget(&p.issuer);
    ctx.identity.metadata(&p).await.map(|_| ()).map_err(|e| {
        ApiError::FailedPrecondition(format!("issuer: {e} (pass skip_discovery / --skip-discovery to save it anyway)"))
    })
}

async fn protos(ctx: &Ctx, rows: Vec<idps::Model>) -> Result<Vec<IdentityProvider>, ApiError> {
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let counts: HashMap<String, i64> = if ids.is_empty() {
        HashMap::new()
    } else {
        user_identities::Entity::find()
            .select_only()
            .column(user_identities::Column::IdpId)
            .column_as(user_identities::Column::UserId.count(), "n")
            .filter(user_identities::Column::IdpId.is_in(ids))
            .group_by(user_identities::Column::IdpId)
            .into_tuple::<(String, i64)>()
            .all(&ctx.db)
            .await?
            .into_iter()
            .collect()
    };
    Ok(rows
        .into_iter()
        .map(|r| {
            let mappings: HashMap<String, String> = serde_json::from_str(&r.team_mappings).unwrap_or_default();
            IdentityProvider {
                login_url: ctx.identity.login_url(&r.name),
                redirect_uri: ctx.identity.redirect_uri(),
                users: counts.get(&r.id).copied().unwrap_or(0) as u64,
                has_client_secret: !r.client_secret_enc.is_empty(),
                scopes: split_list(if r.scopes.is_empty() { provider::DEFAULT_SCOPES } else { &r.scopes }),
                email_claim: if r.email_claim.is_empty() {
                    provider::DEFAULT_EMAIL_CLAIM.into()
                } else {
                    r.email_claim
                },
                groups_claim: if r.groups_claim.is_empty() {
                    provider::DEFAULT_GROUPS_CLAIM.into()
                } else {
                    r.groups_claim
                },
                allowed_domains: split_list(&r.allowed_domains),
                default_role: if Role::parse(&r.default_role) == Role::Admin {
                    pb::Role::Admin
                } else {
                    pb::Role::Member
                } as i32,
                admin_groups: r.admin_groups.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
                team_mappings: mappings,
                id: r.id,
                name: r.name,
                issuer: r.issuer,
                client_id: r.client_id,
                auto_provision: r.auto_provision,
                enabled: r.enabled,
                source: r.source,
                created_at: ts(r.created_at),
                updated_at: ts(r.updated_at),
            }
        })
        .collect())
}

async fn one(ctx: &Ctx, row: idps::Model) -> Result<IdentityProvider, ApiError> {
    Ok(protos(ctx, vec![row]).await?.remove(0))
}

/// What `OIDC_ISSUER`, `OIDC_CLIENT_ID` and `OIDC_CLIENT_SECRET` (with the
/// optional `OIDC_NAME`, `OIDC_SCOPES`, `OIDC_EMAIL_CLAIM`,
/// `OIDC_GROUPS_CLAIM`, `OIDC_ALLOWED_DOMAINS`, `OIDC_ADMIN_GROUPS`) set
/// up at start-up.
#[derive(Debug, Clone, Default)]
pub struct FromEnv {
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    pub scopes: String,
    pub email_claim: String,
    pub groups_claim: String,
    pub allowed_domains: String,
    pub admin_groups: String,
}

/// Creates the provider named in the environment, or brings one made
/// from the environment before up to date; a provider of that name made
/// through the API is left alone.
pub async fn bootstrap(ctx: &Ctx, env: &FromEnv) -> Result<(), String> {
    let err = |e: ApiError| format!("OIDC_ISSUER: {e}");
    let name = name(&env.name).map_err(err)?;
    let issuer = issuer(&env.issuer).map_err(err)?;
    let client_id = require("client_id", &env.client_id, 1024).map_err(err)?;
    let txn = Change::begin(ctx, "env").await.map_err(err)?;
    let existing = idps::Entity::find()
        .filter(idps::Column::Name.eq(name.clone()))
        .one(txn.db())
        .await
        .map_err(|e| e.to_string())?;
    let now = Utc::now();
    let (before, mut am) = match existing {
        Some(r) if r.source != "env" => {
            tracing::warn!(idp = %name, "OIDC_ISSUER names a provider made through the API; the environment is ignored");
            return Ok(());
        }
        Some(r) => (Some(r.clone()), idps::ActiveModel::from(r)),
        None => (
            None,
            idps::ActiveModel {
                id: Set(ids::new_id("idp")),
                name: Set(name.clone()),
                auto_provision: Set(true),
                default_role: Set(Role::Member.as_str().into()),
                team_mappings: Set(String::new()),
                enabled: Set(true),
                source: Set("env".into()),
                created_at: Set(now),
                ..Default::default()
            },
        ),
    };
    let id = match &am.id {
        sea_orm::ActiveValue::Set(v) | sea_orm::ActiveValue::Unchanged(v) => v.clone(),
        _ => unreachable!("the id is always present"),
    };
    // The same secret is not sealed again (a new ciphertext would look like a change).
    let same_secret = before.as_ref().is_some_and(|b| {
        let held = if b.client_secret_enc.is_empty() {
            Some(String::new())
        } else {
            ctx.identity.keyring.open(&b.client_secret_enc, &secret_aad(&id)).ok()
        };
        held.as_deref() == Some(env.client_secret.as_str())
    });
    let secret = match (&before, same_secret) {
        (Some(b), true) => b.client_secret_enc.clone(),
        _ if env.client_secret.is_empty() => String::new(),
        _ => ctx.identity.keyring.seal(&env.client_secret, &secret_aad(&id)).map_err(|e| e.to_string())?,
    };
    am.issuer = Set(issuer);
    am.client_id = Set(client_id);
    am.client_secret_enc = Set(secret);
    am.scopes = Set(scopes(std::slice::from_ref(&env.scopes)).map_err(err)?);
    am.email_claim = Set(claim("email_claim", &env.email_claim).map_err(err)?);
    am.groups_claim = Set(claim("groups_claim", &env.groups_claim).map_err(err)?);
    am.allowed_domains = Set(domains(std::slice::from_ref(&env.allowed_domains)).map_err(err)?);
    am.admin_groups = Set(groups("admin_groups", std::slice::from_ref(&env.admin_groups)).map_err(err)?);
    if let Some(b) = &before {
        // A restart with the same environment changes nothing and audits nothing.
        let unchanged = am.issuer.as_ref() == &b.issuer
            && am.client_id.as_ref() == &b.client_id
            && am.client_secret_enc.as_ref() == &b.client_secret_enc
            && am.scopes.as_ref() == &b.scopes
            && am.email_claim.as_ref() == &b.email_claim
            && am.groups_claim.as_ref() == &b.groups_claim
            && am.allowed_domains.as_ref() == &b.allowed_domains
            && am.admin_groups.as_ref() == &b.admin_groups;
        if unchanged {
            return Ok(());
        }
    }
    am.updated_at = Set(now);
    let after = if before.is_some() { am.update(txn.db()).await } else { am.insert(txn.db()).await }
        .map_err(|e| e.to_string())?;
    let action = if before.is_some() { AuditAction::IdpUpdate } else { AuditAction::IdpCreate };
    txn.audit(action, "identity_provider", &after.id, before.as_ref(), Some(&after)).await.map_err(err)?;
    txn.commit().await.map_err(err)?;
    ctx.identity.forget(&after.issuer);
    tracing::info!(idp = %after.name, issuer = %after.issuer, "identity provider from the environment");
    Ok(())
}

#[tonic::async_trait]
impl IdentityProviderService for IdpsApi {
    async fn create_identity_provider(
        &self,
        req: tonic::Request<CreateIdentityProviderRequest>,
    ) -> ApiResult<IdentityProvider> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let r = req.into_inner();
        let id = ids::new_id("idp");
        let now = Utc::now();
        client_secret(&r.client_secret)?;
        let secret = if r.client_secret.is_empty() {
            String::new()
        } else {
            self.0
                .identity
                .keyring
                .seal(&r.client_secret, &secret_aad(&id))
                .map_err(|e| ApiError::Internal(e.to_string()))?
        };
        let txn = Change::begin(&self.0, &who.user_id).await?;
        let row = idps::Model {
            id,
            name: name(&r.name)?,
            issuer: issuer(&r.issuer)?,
            client_id: require("client_id", &r.client_id, 1024)?,
            client_secret_enc: secret,
            scopes: scopes(&r.scopes)?,
            email_claim: claim("email_claim", &r.email_claim)?,
            groups_claim: claim("groups_claim", &r.groups_claim)?,
            allowed_domains: domains(&r.allowed_domains)?,
            auto_provision: r.auto_provision.unwrap_or(true),
            default_role: role(r.default_role, "default_role")?.unwrap_or(Role::Member).as_str().into(),
            admin_groups: groups("admin_groups", &r.admin_groups)?,
            team_mappings: mappings(txn.db(), &r.team_mappings).await?,
            enabled: r.enabled.unwrap_or(true),
            source: "admin".into(),
            created_at: now,
            updated_at: now,
        };
        if !r.skip_discovery {
            discover(&self.0, &row).await?;
        }
        let row = idps::ActiveModel::from(row)
            .reset_all()
            .insert(txn.db())
            .await
            .map_err(|e| ApiError::exists(e, "an identity provider with that name exists"))?;
        txn.audit(AuditAction::IdpCreate, "identity_provider", &row.id, None, Some(&row)).await?;
        txn.commit().await?;
        ok(one(&self.0, row).await?)
    }

    async fn get_identity_provider(
        &self,
        req: tonic::Request<GetIdentityProviderRequest>,
    ) -> ApiResult<IdentityProvider> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let row = find(&self.0.db, &req.get_ref().idp).await?;
        ok(one(&self.0, row).await?)
    }

    async fn list_identity_providers(
        &self,
        req: tonic::Request<ListIdentityProvidersRequest>,
    ) -> ApiResult<ListIdentityProvidersResponse> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let paging = Paging::from(req.get_ref().page.as_ref())?;
        let (rows, next_page_token) =
            paging.page(idps::Entity::find().order_by_asc(idps::Column::Name), &self.0.db).await?;
        ok(ListIdentityProvidersResponse { identity_providers: protos(&self.0, rows).await?, next_page_token })
    }

    async fn update_identity_provider(
        &self,
        req: tonic::Request<UpdateIdentityProviderRequest>,
    ) -> ApiResult<IdentityProvider> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let r = req.into_inner();
        let txn = Change::begin(&self.0, &who.user_id).await?;
        let before = find(txn.db(), &r.idp).await?;
        let mut row = before.clone();
        if let Some(v) = &r.name {
            row.name = name(v)?;
        }
        if let Some(v) = &r.issuer {
            row.issuer = issuer(v)?;
        }
        if let Some(v) = &r.client_id {
            row.client_id = require("client_id", v, 1024)?;
        }
        if let Some(v) = &r.client_secret {
            client_secret(v)?;
            row.client_secret_enc = if v.is_empty() {
                String::new()
            } else {
                self.0.identity.keyring.seal(v, &secret_aad(&row.id)).map_err(|e| ApiError::Internal(e.to_string()))?
            };
        }
        if r.set_scopes {
            row.scopes = scopes(&r.scopes)?;
        }
        if let Some(v) = &r.email_claim {
            row.email_claim = claim("email_claim", v)?;
        }
        if let Some(v) = &r.groups_claim {
            row.groups_claim = claim("groups_claim", v)?;
        }
        if r.set_allowed_domains {
            row.allowed_domains = domains(&r.allowed_domains)?;
        }
        if let Some(v) = r.auto_provision {
            row.auto_provision = v;
        }
        if let Some(v) = role(r.default_role, "default_role")? {
            row.default_role = v.as_str().into();
        }
        if r.set_admin_groups {
            row.admin_groups = groups("admin_groups", &r.admin_groups)?;
        }
        if r.set_team_mappings {
            row.team_mappings = mappings(txn.db(), &r.team_mappings).await?;
        }
        if let Some(v) = r.enabled {
            row.enabled = v;
        }
        row.updated_at = Utc::now();
        let reach_changed = row.issuer != before.issuer || row.client_id != before.client_id;
        if reach_changed && !r.skip_discovery {
            discover(&self.0, &row).await?;
        }
        let after = idps::ActiveModel::from(row)
            .reset_all()
            .update(txn.db())
            .await
            .map_err(|e| ApiError::exists(e, "an identity provider with that name exists"))?;
        txn.audit(AuditAction::IdpUpdate, "identity_provider", &after.id, Some(&before), Some(&after)).await?;
        txn.commit().await?;
        self.0.identity.forget(&before.issuer);
        ok(one(&self.0, after).await?)
    }

    async fn delete_identity_provider(
        &self,
        req: tonic::Request<DeleteIdentityProviderRequest>,
    ) -> ApiResult<DeleteResponse> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let txn = Change::begin(&self.0, &who.user_id).await?;
        let before = find(txn.db(), &req.get_ref().idp).await?;
        // Its sessions end with it; the users it brought in stay.
        sessions::Entity::update_many()
            .col_expr(sessions::Column::RevokedAt, sea_orm::sea_query::Expr::value(Some(Utc::now())))
            .filter(sessions::Column::IdpId.eq(before.id.clone()))
            .filter(sessions::Column::RevokedAt.is_null())
            .exec(txn.db())
            .await
            .map_err(ApiError::from)?;
        idps::Entity::delete_by_id(before.id.clone()).exec(txn.db()).await.map_err(ApiError::from)?;
        txn.audit(AuditAction::IdpDelete, "identity_provider", &before.id, Some(&before), None).await?;
        txn.commit().await?;
        self.0.identity.forget(&before.issuer);
        ok(DeleteResponse {})
    }
}
