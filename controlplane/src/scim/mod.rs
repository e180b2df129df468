//! SCIM 2.0 (RFC 7643, RFC 7644) under `/scim/v2` on the HTTP address: an
//! identity provider's provisioning client (Entra ID, Okta …) creates,
//! updates and deactivates gateway users and pushes groups, which become
//! roles and team memberships through the provider's mappings. Each bearer
//! token is bound to one provider and sees only what that provider
//! provisioned. Every change is audited with `scim:<token id>` as actor.

mod error;
pub mod filter;
mod groups;
pub mod patch;
mod schema;
mod users;

use std::time::Instant;

use bytes::Bytes;
use chrono::Utc;
use http::{HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde_json::Value;

use crate::api::Ctx;
use crate::http::Response;
use crate::identity::Provider;
use crate::store::entities::{identity_providers, scim_tokens};

pub use error::ScimError;

pub const PREFIX: &str = "/scim/v2";
const CONTENT_TYPE: &str = "application/scim+json";
/// Larger than any user or group document; a group of many thousands of
/// members is sent in PATCHes of a few at a time.
const MAX_BODY: usize = 1 << 20;
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// The provider a request acts for, and who is audited.
pub struct Client {
    pub token_id: String,
    pub provider: Provider,
    /// `scim:<token id>`.
    pub actor: String,
    /// Where resources are, for `meta.location`.
    pub base: String,
}

/// A parsed request: what a handler needs from it.
pub struct Req {
    pub method: Method,
    /// The path below `/scim/v2`, split: `["Users", "usr_…"]`.
    pub segments: Vec<String>,
    pub query: Vec<(String, String)>,
    pub if_match: Option<String>,
    pub body: Option<Value>,
}

impl Req {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn body(&self) -> Result<&Value, ScimError> {
        self.body.as_ref().ok_or_else(|| ScimError::InvalidSyntax("the request needs a JSON body".into()))
    }
}

/// A handler's answer: a status, the document (none for 204) and its ETag.
pub struct Reply {
    pub status: StatusCode,
    pub body: Option<Value>,
    pub etag: Option<String>,
    pub location: Option<String>,
}

impl Reply {
    pub fn ok(body: Value) -> Reply {
        let etag = body["meta"]["version"].as_str().map(str::to_owned);
        Reply { status: StatusCode::OK, body: Some(body), etag, location: None }
    }

    pub fn created(body: Value) -> Reply {
        let location = body["meta"]["location"].as_str().map(str::to_owned);
        Reply { status: StatusCode::CREATED, location, ..Reply::ok(body) }
    }

    pub fn no_content() -> Reply {
        Reply { status: StatusCode::NO_CONTENT, body: None, etag: None, location: None }
    }
}

pub async fn handle(ctx: &Ctx, req: http::Request<hyper::body::Incoming>) -> Response {
    let rest = req.uri().path().strip_prefix(PREFIX).unwrap_or_default().trim_matches('/').to_owned();
    let segments: Vec<String> = rest.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect();
    // Discovery documents are public (RFC 7644 §4): they hold nothing a
    // client could not read in the RFC.
    if let Some(doc) = schema::discovery(ctx, &segments) {
        return respond(match *req.method() {
            Method::GET => doc.map(Reply::ok),
            _ => Err(ScimError::MethodNotAllowed("the discovery documents are read-only".into())),
        });
    }
    let client = match authenticate(ctx, req.headers()).await {
        Ok(c) => c,
        Err(e) => return respond(Err(e)),
    };
    if let Err(wait) = ctx.scim_limit.check(client.token_id.clone(), Instant::now()) {
        return respond(Err(ScimError::TooMany(wait)));
    }
    let parsed = match parse(req, segments).await {
        Ok(r) => r,
        Err(e) => return respond(Err(e)),
    };
    let parsed = match search_request(parsed) {
        Ok(r) => r,
        Err(e) => return respond(Err(e)),
    };
    let reply = match parsed.segments.first().map(String::as_str) {
        Some("Users") => users::handle(ctx, &client, &parsed).await,
        Some("Groups") => groups::handle(ctx, &client, &parsed).await,
        // A search of every resource type: users, then groups.
        Some(".search") if parsed.method == Method::GET => search_all(ctx, &client, &parsed).await,
        Some("Bulk") => Err(ScimError::NotImplemented("bulk operations are not supported".into())),
        Some("Me") => Err(ScimError::NotImplemented("/Me is not supported".into())),
        _ => Err(ScimError::NotFound(format!("no SCIM resource at {PREFIX}/{rest}"))),
    };
    respond(reply)
}

/// `POST …/.search` (RFC 7644 §3.4.3): a query whose parameters are in the
/// body, for filters too long for a URL. Becomes the GET it stands for.
fn search_request(mut req: Req) -> Result<Req, ScimError> {
    if req.method != Method::POST || req.segments.last().map(String::as_str) != Some(".search") {
        return Ok(req);
    }
    let body = req.body()?;
    let mut query = Vec::new();
    for name in ["filter", "startIndex", "count", "attributes", "excludedAttributes"] {
        match users::field(body, name) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => query.push((name.to_owned(), s.clone())),
            Some(Value::Number(n)) => query.push((name.to_owned(), n.to_string())),
            Some(Value::Array(a)) => {
                let list: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
                query.push((name.to_owned(), list.join(",")));
            }
            Some(_) => return Err(ScimError::InvalidValue(format!("{name}: not a search parameter's type"))),
        }
    }
    req.segments.pop();
    if req.segments.is_empty() {
        req.segments.push(".search".into());
    }
    req.method = Method::GET;
    req.query = query;
    req.body = None;
    Ok(req)
}

async fn search_all(ctx: &Ctx, client: &Client, req: &Req) -> Result<Reply, ScimError> {
    let mut all = users::all(ctx, client, req).await?;
    all.extend(groups::all(ctx, client, req).await?);
    list_response(all, req)
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

async fn parse(req: http::Request<hyper::body::Incoming>, segments: Vec<String>) -> Result<Req, ScimError> {
    let query =
        req.uri().query().map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    let if_match = req.headers().get(http::header::IF_MATCH).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let method = req.method().clone();
    let ct = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let bytes = http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| ScimError::TooLarge(format!("the body is larger than {MAX_BODY} bytes or was cut")))?
        .to_bytes();
    let body = if bytes.is_empty() {
        None
    } else {
        if !(ct.starts_with(CONTENT_TYPE) || ct.starts_with("application/json")) {
            return Err(ScimError::InvalidSyntax(format!(
                "the body must be {CONTENT_TYPE} or application/json, not {ct:?}"
            )));
        }
        Some(
            serde_json::from_slice(&bytes)
                .map_err(|e| ScimError::InvalidSyntax(format!("the body is not JSON: {e}")))?,
        )
    };
    Ok(Req { method, segments, query, if_match, body })
}

async fn authenticate(ctx: &Ctx, headers: &http::HeaderMap) -> Result<Client, ScimError> {
    let missing = || ScimError::Unauthorized("a SCIM bearer token is needed (ccag scim tokens create)".into());
    let token = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| t.starts_with(crate::api::SCIM_TOKEN_PREFIX))
        .ok_or_else(missing)?;
    // Tokens carry 238 random bits: looked up by their hash, which an
    // attacker cannot steer, rather than compared.
    let hash = crate::store::ids::sha256_hex(token);
    let row = scim_tokens::Entity::find()
        .filter(scim_tokens::Column::TokenHash.eq(hash))
        .filter(scim_tokens::Column::Revoked.eq(false))
        .one(&ctx.db)
        .await?
        .ok_or_else(|| ScimError::Unauthorized("the SCIM token is unknown or revoked".into()))?;
    let idp = identity_providers::Entity::find_by_id(row.idp_id.clone())
        .one(&ctx.db)
        .await?
        .ok_or_else(|| ScimError::Unauthorized("the SCIM token's identity provider is gone".into()))?;
    let provider = Provider::from_row(&idp, &ctx.identity.keyring).map_err(|e| ScimError::Internal(e.to_string()))?;
    let now = Utc::now();
    // One write a minute at most, not one per request.
    if row.last_used_at.is_none_or(|t| now - t > chrono::Duration::seconds(60)) {
        let mut am: scim_tokens::ActiveModel = row.clone().into();
        am.last_used_at = Set(Some(now));
        if let Err(e) = am.update(&ctx.db).await {
            tracing::warn!(error = %e, token = %row.id, "recording a SCIM token's last use failed");
        }
    }
    Ok(Client {
        actor: format!("scim:{}", row.id),
        token_id: row.id,
        provider,
        base: format!("{}{PREFIX}", ctx.identity.public_url.trim_end_matches('/')),
    })
}

fn respond(r: Result<Reply, ScimError>) -> Response {
    let reply = r.unwrap_or_else(|e| e.reply());
    let mut b = http::Response::builder().status(reply.status);
    if let Some(tag) = reply.etag.as_deref().and_then(|t| HeaderValue::from_str(t).ok()) {
        b = b.header(http::header::ETAG, tag);
    }
    if let Some(loc) = reply.location.as_deref().and_then(|t| HeaderValue::from_str(t).ok()) {
        b = b.header(http::header::LOCATION, loc);
    }
    if let Some(Value::Number(n)) = reply.body.as_ref().and_then(|v| v.get("retryAfter")) {
        if let Ok(v) = HeaderValue::from_str(&n.to_string()) {
            b = b.header(http::header::RETRY_AFTER, v);
        }
    }
    let body = match reply.body {
        Some(mut v) => {
            if let Some(o) = v.as_object_mut() {
                o.remove("retryAfter");
            }
            b = b.header(http::header::CONTENT_TYPE, CONTENT_TYPE);
            Bytes::from(v.to_string())
        }
        None => Bytes::new(),
    };
    b.body(Full::new(body)).unwrap_or_else(|_| http::Response::new(Full::new(Bytes::new())))
}

/// `W/"<n>"`, the weak ETag of a resource's version.
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// Refuses a change made against another version than the current one.
pub fn check_if_match(req: &Req, version: i64) -> Result<(), ScimError> {
    match req.if_match.as_deref().map(str::trim) {
        None | Some("*") => Ok(()),
        Some(tags)
            if tags
                .split(',')
                .any(|t| t.trim() == etag(version) || t.trim() == etag(version).trim_start_matches("W/")) =>
        {
            Ok(())
        }
        Some(_) => Err(ScimError::PreconditionFailed(format!("the resource is at version {}", etag(version)))),
    }
}

/// `attributes` / `excludedAttributes` (top-level names; `id`, `schemas`
/// and `meta` always stay).
pub fn project(mut v: Value, req: &Req) -> Value {
    let list = |name: &str| -> Option<Vec<String>> {
        req.param(name).map(|s| {
            s.split(',')
                .map(|a| a.trim().rsplit(':').next().unwrap_or("").split('.').next().unwrap_or("").to_ascii_lowercase())
                .filter(|a| !a.is_empty())
                .collect()
        })
    };
    let Some(obj) = v.as_object_mut() else { return v };
    let always = |k: &str| matches!(k.to_ascii_lowercase().as_str(), "id" | "schemas" | "meta");
    if let Some(keep) = list("attributes") {
        obj.retain(|k, _| always(k) || keep.contains(&k.to_ascii_lowercase()));
    }
    if let Some(drop) = list("excludedAttributes") {
        obj.retain(|k, _| always(k) || !drop.contains(&k.to_ascii_lowercase()));
    }
    v
}

/// `startIndex` (1-based) and `count` (at most `MAX_COUNT`).
pub fn paging(req: &Req) -> Result<(usize, usize), ScimError> {
    let num = |name: &str, default: usize| -> Result<usize, ScimError> {
        match req.param(name) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<i64>()
                .map(|n| n.max(0) as usize)
                .map_err(|_| ScimError::InvalidValue(format!("{name}: {v:?} is not a number"))),
        }
    };
    let start = num("startIndex", 1)?.max(1);
    let count = num("count", DEFAULT_COUNT)?.min(MAX_COUNT);
    Ok((start, count))
}

pub const DEFAULT_COUNT: usize = 100;
pub const MAX_COUNT: usize = 200;

/// A ListResponse of the matching resources, paged.
pub fn list_response(all: Vec<Value>, req: &Req) -> Result<Reply, ScimError> {
    let filter = match req.param("filter").map(str::trim).filter(|f| !f.is_empty()) {
        Some(f) => Some(filter::parse(f).map_err(|e| ScimError::InvalidFilter(e.to_string()))?),
        None => None,
    };
    let (start, count) = paging(req)?;
    let matching: Vec<Value> = all.into_iter().filter(|r| filter.as_ref().is_none_or(|f| f.matches(r))).collect();
    let total = matching.len();
    let page: Vec<Value> = matching.into_iter().skip(start - 1).take(count).map(|r| project(r, req)).collect();
    Ok(Reply::ok(serde_json::json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": page.len(),
        "Resources": page,
    })))
}
