//! SearchService: the web search mode and providers (`crate::websearch`),
//! and a test search run from the control plane.

use std::time::Instant;

use ccag_proto::admin::v1::search_service_server::SearchService;
use ccag_proto::admin::v1::*;
use ccag_websearch::{Provider, ProviderKind, Query, Searcher};
use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::{ok, ts, ApiError, ApiResult, Change, Shared};
use crate::auth::Principal;
use crate::fleet::Touched;
use crate::store::entities::{search_providers as rows, users, web_search_settings as settings};
use crate::store::AuditAction;
use crate::websearch::{self, Mode};

pub struct SearchApi(pub Shared);

/// The scope of a request's `user`: "" (the organisation), or a user id.
/// A member may only name themselves.
async fn scope<C: sea_orm::ConnectionTrait>(
    c: &C,
    who: &Principal,
    user: &str,
    empty_is_caller: bool,
) -> Result<(String, String), ApiError> {
    if user.trim().is_empty() {
        if who.is_admin() && !empty_is_caller {
            return Ok((String::new(), String::new()));
        }
        if !who.is_admin() && !empty_is_caller {
            return Err(ApiError::PermissionDenied("the organisation's search provider is set by admins".into()));
        }
        return Ok((who.user_id.clone(), who.email.clone()));
    }
    let u = super::users::find(c, user).await?;
    if !who.is_admin() && u.id != who.user_id {
        return Err(ApiError::PermissionDenied("members may only set their own search provider".into()));
    }
    Ok((u.id, u.email.unwrap_or_default()))
}

fn info(r: &rows::Model, email: String) -> SearchProviderInfo {
    SearchProviderInfo {
        user_id: r.scope.clone(),
        user_email: email,
        kind: r.kind.clone(),
        url: r.url.clone(),
        has_api_key: !r.api_key_enc.is_empty(),
        max_results: r.max_results.max(0) as u32,
        updated_at: ts(r.updated_at),
    }
}

impl SearchApi {
    async fn settings(&self, who: &Principal) -> Result<SearchSettings, ApiError> {
        let db = &self.0.db;
        let mode = websearch::mode(db).await?;
        let mut q = rows::Entity::find().order_by_asc(rows::Column::Scope);
        if !who.is_admin() {
            q = q.filter(rows::Column::Scope.is_in([String::new(), who.user_id.clone()]));
        }
        let all = q.all(db).await?;
        let ids: Vec<String> = all.iter().filter(|r| !r.scope.is_empty()).map(|r| r.scope.clone()).collect();
        let emails: std::collections::HashMap<String, String> = users::Entity::find()
            .filter(users::Column::Id.is_in(ids))
            .all(db)
            .await?
            .into_iter()
            .map(|u| (u.id, u.email.unwrap_or_default()))
            .collect();
        let mut out = SearchSettings { mode: mode.as_str().into(), org_provider: None, users: Vec::new() };
        for r in &all {
            if r.scope.is_empty() {
                out.org_provider = Some(info(r, String::new()));
            } else {
                out.users.push(info(r, emails.get(&r.scope).cloned().unwrap_or_default()));
            }
        }
        Ok(out)
    }

    /// The provider `scope` gets, as the data planes would choose it.
    async fn effective(&self, scope: &str) -> Result<Provider, ApiError> {
        let db = &self.0.db;
        let keyring = &self.0.sender.keyring;
        let mode = websearch::mode(db).await?;
        let own = match (mode, scope.is_empty()) {
            (Mode::Enabled, false) => rows::Entity::find_by_id(scope.to_owned()).one(db).await?,
            _ => None,
        };
        let row = match own {
            Some(r) => Some(r),
            None => rows::Entity::find_by_id(String::new()).one(db).await?,
        };
        Ok(row.and_then(|r| websearch::provider(&r, keyring)).unwrap_or_else(Provider::duckduckgo))
    }
}

#[tonic::async_trait]
impl SearchService for SearchApi {
    async fn get_search_settings(&self, req: tonic::Request<GetSearchSettingsRequest>) -> ApiResult<SearchSettings> {
        let who = self.0.caller(&req).await?;
        ok(self.settings(&who).await?)
    }

    async fn set_search_mode(&self, req: tonic::Request<SetSearchModeRequest>) -> ApiResult<SearchSettings> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let mode = Mode::parse(&req.get_ref().mode)
            .ok_or_else(|| ApiError::InvalidArgument("mode: enabled, disabled or global".into()))?;
        let mut txn = Change::begin(&self.0, &who.user_id).await?;
        if mode == Mode::Global
            && rows::Entity::find_by_id(String::new()).one(txn.db()).await.map_err(ApiError::from)?.is_none()
        {
            return Err(ApiError::FailedPrecondition(
                "global mode needs the organisation's provider: ccag search set --org --provider NAME".into(),
            )
            .into());
        }
        let before = settings::Entity::find_by_id(1).one(txn.db()).await.map_err(ApiError::from)?;
        let after = match &before {
            Some(b) => {
                let mut am: settings::ActiveModel = b.clone().into();
                am.mode = sea_orm::Set(mode.as_str().into());
                am.updated_at = sea_orm::Set(Utc::now());
                am.update(txn.db()).await.map_err(ApiError::from)?
            }
            None => settings::ActiveModel {
                id: sea_orm::Set(1),
                mode: sea_orm::Set(mode.as_str().into()),
                content_key_enc: sea_orm::Set(String::new()),
                updated_at: sea_orm::Set(Utc::now()),
            }
            .insert(txn.db())
            .await
            .map_err(ApiError::from)?,
        };
        txn.touch(Touched::WebSearch);
        txn.audit(AuditAction::SearchModeSet, "web_search", "mode", before.as_ref(), Some(&after)).await?;
        txn.commit().await?;
        ok(self.settings(&who).await?)
    }

    async fn set_search_provider(
        &self,
        req: tonic::Request<SetSearchProviderRequest>,
    ) -> ApiResult<SearchProviderInfo> {
        let who = self.0.caller(&req).await?;
        let r = req.into_inner();
        let kind = ProviderKind::parse(&r.kind).ok_or_else(|| {
            ApiError::InvalidArgument("kind: duckduckgo, tavily, serper, brave, searxng or custom".into())
        })?;
        let url = super::optional("url", &r.url, 2048)?.unwrap_or_default();
        super::optional("api_key", &r.api_key, 4096)?;
        if !who.is_admin() && (kind.admin_only() || !url.is_empty()) {
            return Err(ApiError::PermissionDenied(
                "only admins may set a searxng or custom provider, or a provider URL".into(),
            )
            .into());
        }
        let keyring = self.0.sender.keyring.clone();
        let mut txn = Change::begin(&self.0, &who.user_id).await?;
        let (scope, email) = scope(txn.db(), &who, &r.user, false).await?;
        let before = rows::Entity::find_by_id(scope.clone()).one(txn.db()).await.map_err(ApiError::from)?;
        let new_key = r.api_key.trim();
        let api_key_enc = if !new_key.is_empty() {
            keyring
                .seal(new_key, &websearch::key_aad(&scope))
                .map_err(|e| ApiError::FailedPrecondition(e.to_string()))?
        } else {
            // The same provider keeps its key when none is given.
            before.as_ref().filter(|b| b.kind == kind.as_str()).map(|b| b.api_key_enc.clone()).unwrap_or_default()
        };
        let provider = Provider {
            kind,
            url: (!url.is_empty()).then(|| url.clone()),
            api_key: (!api_key_enc.is_empty()).then(|| "set".to_owned()),
            max_results: r.max_results,
        };
        provider.validate().map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
        // An address the gateway may not call is refused now; a name that
        // does not resolve from here is accepted (the data planes may see
        // another DNS), since every search checks it again.
        let target = provider.target().map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
        match self.0.sender.policy.resolve(&target.host, target.port).await {
            Ok(_) => {}
            Err(ccag_websearch::OutboundError::Unresolved(h)) => {
                tracing::warn!(host = %h, "search provider host does not resolve from the control plane")
            }
            Err(e) => return Err(ApiError::InvalidArgument(format!("url: {e}")).into()),
        }
        let row = rows::Model {
            scope: scope.clone(),
            user_id: (!scope.is_empty()).then(|| scope.clone()),
            kind: kind.as_str().into(),
            url,
            api_key_enc,
            max_results: r.max_results as i32,
            updated_at: Utc::now(),
        };
        let am = rows::ActiveModel::from(row).reset_all();
        let after = if before.is_some() { am.update(txn.db()).await } else { am.insert(txn.db()).await }
            .map_err(ApiError::from)?;
        txn.touch(if scope.is_empty() { Touched::WebSearch } else { Touched::UserSearch(scope.clone()) });
        let target_name = if scope.is_empty() { "org" } else { scope.as_str() };
        txn.audit(AuditAction::SearchProviderSet, "search_provider", target_name, before.as_ref(), Some(&after))
            .await?;
        txn.commit().await?;
        ok(info(&after, email))
    }

    async fn delete_search_provider(
        &self,
        req: tonic::Request<DeleteSearchProviderRequest>,
    ) -> ApiResult<DeleteResponse> {
        let who = self.0.caller(&req).await?;
        let mut txn = Change::begin(&self.0, &who.user_id).await?;
        let (scope, _) = scope(txn.db(), &who, &req.get_ref().user, false).await?;
        let before = rows::Entity::find_by_id(scope.clone())
            .one(txn.db())
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("no search provider is set there".into()))?;
        if scope.is_empty() && websearch::mode(txn.db()).await.map_err(ApiError::from)? == Mode::Global {
            return Err(ApiError::FailedPrecondition(
                "global mode uses the organisation's provider: set another mode first".into(),
            )
            .into());
        }
        rows::Entity::delete_by_id(scope.clone()).exec(txn.db()).await.map_err(ApiError::from)?;
        txn.touch(if scope.is_empty() { Touched::WebSearch } else { Touched::UserSearch(scope.clone()) });
        let target_name = if scope.is_empty() { "org" } else { scope.as_str() };
        txn.audit(AuditAction::SearchProviderDelete, "search_provider", target_name, Some(&before), None).await?;
        txn.commit().await?;
        ok(DeleteResponse {})
    }

    async fn test_search(&self, req: tonic::Request<TestSearchRequest>) -> ApiResult<TestSearchResponse> {
        let who = self.0.caller(&req).await?;
        let r = req.into_inner();
        let (scope, _) = scope(&self.0.db, &who, &r.user, !who.is_admin()).await?;
        let provider = self.effective(&scope).await?;
        let text = if r.query.trim().is_empty() { "test search query".to_owned() } else { r.query.trim().to_owned() };
        if text.chars().count() > ccag_websearch::MAX_QUERY_CHARS {
            return Err(ApiError::InvalidArgument(format!(
                "query: at most {} characters",
                ccag_websearch::MAX_QUERY_CHARS
            ))
            .into());
        }
        let searcher = Searcher::new(self.0.sender.policy.clone());
        let started = Instant::now();
        let result = searcher.search(&provider, &Query { text, ..Default::default() }).await;
        let elapsed_ms = started.elapsed().as_millis().min(u128::from(u32::MAX)) as u32;
        let txn = Change::begin(&self.0, &who.user_id).await?;
        let outcome = serde_json::json!({"provider": provider.kind.as_str(), "ok": result.is_ok()});
        txn.audit(
            AuditAction::SearchTest,
            "search_provider",
            if scope.is_empty() { "org" } else { &scope },
            None::<&serde_json::Value>,
            Some(&outcome),
        )
        .await?;
        txn.commit().await?;
        let (hits, error, error_code) = match result {
            Ok(h) => (h, String::new(), String::new()),
            Err(e) => (Vec::new(), e.to_string(), e.error_code().to_owned()),
        };
        ok(TestSearchResponse {
            provider: provider.kind.as_str().into(),
            results: hits
                .into_iter()
                .map(|h| SearchResultInfo {
                    url: h.url,
                    title: h.title,
                    snippet: h.snippet,
                    page_age: h.page_age.unwrap_or_default(),
                })
                .collect(),
            error,
            error_code,
            elapsed_ms,
        })
    }
}
