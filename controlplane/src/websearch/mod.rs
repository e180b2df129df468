//! Web search emulation's stored side: the mode, the providers (the
//! organisation's and users'), their API keys sealed at rest, and the key
//! that seals search results, all published to the data planes as the
//! `WebSearchConfig` and `SearchProvider` resources. The searches
//! themselves run on the data planes (`ccag-websearch`).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ccag_proto::config::v1 as pb;
use ccag_websearch::{Provider, ProviderKind};
use chrono::Utc;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};

use crate::secrets::Keyring;
use crate::store::entities::{search_providers as providers, web_search_settings as settings};

/// The one settings row.
const ROW: i32 = 1;
const CONTENT_KEY_AAD: &str = "web_search_content_key";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enabled,
    Disabled,
    Global,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "enabled" => Mode::Enabled,
            "disabled" => Mode::Disabled,
            "global" => Mode::Global,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enabled => "enabled",
            Mode::Disabled => "disabled",
            Mode::Global => "global",
        }
    }

    fn pb(self) -> pb::WebSearchMode {
        match self {
            Mode::Enabled => pb::WebSearchMode::Enabled,
            Mode::Disabled => pb::WebSearchMode::Disabled,
            Mode::Global => pb::WebSearchMode::Global,
        }
    }
}

pub fn kind_pb(k: ProviderKind) -> pb::SearchProviderKind {
    match k {
        ProviderKind::DuckDuckGo => pb::SearchProviderKind::Duckduckgo,
        ProviderKind::Tavily => pb::SearchProviderKind::Tavily,
        ProviderKind::Serper => pb::SearchProviderKind::Serper,
        ProviderKind::Brave => pb::SearchProviderKind::Brave,
        ProviderKind::SearXng => pb::SearchProviderKind::Searxng,
        ProviderKind::Custom => pb::SearchProviderKind::Custom,
    }
}

/// The AAD binding a sealed API key to its row.
pub fn key_aad(scope: &str) -> String {
    format!("search_provider:{scope}")
}

pub async fn mode<C: ConnectionTrait>(c: &C) -> Result<Mode, DbErr> {
    let row = settings::Entity::find_by_id(ROW).one(c).await?;
    Ok(row.and_then(|r| Mode::parse(&r.mode)).unwrap_or(Mode::Enabled))
}

/// Creates the settings row and its content key once; every replica may
/// call it at start (the first insert wins). A replica that cannot seal
/// leaves the key to one that can.
pub async fn ensure_content_key<C: ConnectionTrait>(c: &C, keyring: &Keyring) -> Result<(), DbErr> {
    let existing = settings::Entity::find_by_id(ROW).one(c).await?;
    if existing.as_ref().is_some_and(|r| !r.content_key_enc.is_empty()) || keyring.usable().is_err() {
        return Ok(());
    }
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| DbErr::Custom(format!("random: {e}")))?;
    let sealed = keyring.seal(&B64.encode(raw), CONTENT_KEY_AAD).map_err(|e| DbErr::Custom(e.to_string()))?;
    if existing.is_none() {
        let row = settings::ActiveModel {
            id: Set(ROW),
            mode: Set(Mode::Enabled.as_str().into()),
            content_key_enc: Set(sealed),
            updated_at: Set(Utc::now()),
        };
        settings::Entity::insert(row)
            .on_conflict(OnConflict::column(settings::Column::Id).do_nothing().to_owned())
            .exec_without_returning(c)
            .await?;
    } else {
        settings::Entity::update_many()
            .col_expr(settings::Column::ContentKeyEnc, sea_orm::sea_query::Expr::value(sealed))
            .filter(settings::Column::Id.eq(ROW))
            .filter(settings::Column::ContentKeyEnc.eq(""))
            .exec(c)
            .await?;
    }
    Ok(())
}

/// A stored provider as the library takes it; its key opened.
pub fn provider(row: &providers::Model, keyring: &Keyring) -> Option<Provider> {
    let kind = ProviderKind::parse(&row.kind)?;
    let api_key = if row.api_key_enc.is_empty() {
        None
    } else {
        match keyring.open(&row.api_key_enc, &key_aad(&row.scope)) {
            Ok(k) => Some(k),
            Err(e) => {
                tracing::warn!(scope = %row.scope, error = %e, "cannot open a search provider's API key");
                None
            }
        }
    };
    Some(Provider {
        kind,
        url: (!row.url.is_empty()).then(|| row.url.clone()),
        api_key,
        max_results: row.max_results.max(0) as u32,
    })
}

fn provider_pb(id: &str, p: Provider) -> pb::SearchProvider {
    pb::SearchProvider {
        id: id.to_owned(),
        kind: kind_pb(p.kind) as i32,
        url: p.url.unwrap_or_default(),
        api_key: p.api_key.unwrap_or_default(),
        max_results: p.max_results,
    }
}

/// The `WebSearchConfig` resource.
pub async fn resource<C: ConnectionTrait>(c: &C, keyring: &Keyring) -> Result<pb::WebSearchConfig, DbErr> {
    let row = settings::Entity::find_by_id(ROW).one(c).await?;
    let org = providers::Entity::find_by_id(String::new()).one(c).await?;
    let content_key = row
        .as_ref()
        .filter(|r| !r.content_key_enc.is_empty())
        .and_then(|r| keyring.open(&r.content_key_enc, CONTENT_KEY_AAD).ok())
        .and_then(|b| B64.decode(b).ok())
        .unwrap_or_default();
    Ok(pb::WebSearchConfig {
        mode: row.and_then(|r| Mode::parse(&r.mode)).unwrap_or(Mode::Enabled).pb() as i32,
        org_provider: org.as_ref().and_then(|r| provider(r, keyring)).map(|p| provider_pb("", p)),
        content_key,
    })
}

/// Users' providers: those of `users`, or all.
pub async fn user_resources<C: ConnectionTrait>(
    c: &C,
    keyring: &Keyring,
    users: Option<Vec<String>>,
) -> Result<Vec<(String, Option<pb::SearchProvider>)>, DbErr> {
    let mut q = providers::Entity::find().filter(providers::Column::Scope.ne(""));
    if let Some(ids) = &users {
        q = q.filter(providers::Column::Scope.is_in(ids.clone()));
    }
    let rows = q.all(c).await?;
    let mut out: Vec<(String, Option<pb::SearchProvider>)> =
        rows.iter().map(|r| (r.scope.clone(), provider(r, keyring).map(|p| provider_pb(&r.scope, p)))).collect();
    // A user named but without a row: a removal.
    for id in users.unwrap_or_default() {
        if !out.iter().any(|(s, _)| *s == id) {
            out.push((id, None));
        }
    }
    Ok(out)
}
