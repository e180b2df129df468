//! Anthropic's server-side web search, which Bedrock does not have, run by
//! the gateway: the `web_search_*` tool becomes a plain tool for Bedrock
//! (`prepare`); when the model calls it, the gateway searches with the
//! user's provider, feeds the results back and calls the model again, and
//! the client sees what the Anthropic API would send: `server_tool_use`,
//! `web_search_tool_result`, the model's text, and usage summed over every
//! call (`respond` unstreamed, `stream` streamed as it happens). Search
//! blocks a client sends back in later turns are translated back for
//! Bedrock (`history`).

mod blocks;
mod content;
mod history;
mod respond;
mod stream;
mod tool;

use std::collections::HashMap;
use std::sync::Arc;

use ccag_proto::config::v1 as pb;
use ccag_websearch::{Provider, ProviderKind, MAX_QUERY_CHARS};
use serde_json::{Map, Value};

pub use content::ContentKey;
pub use respond::{respond, Failure};
pub use stream::{start, Start};
pub use tool::SearchTool;

use crate::http::error::ApiError;

/// Searches one request may run, whatever its `max_uses` says.
pub const MAX_SEARCHES: u32 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enabled,
    Disabled,
    Global,
}

/// Web search as the configuration sets it.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: Mode,
    pub org: Option<Provider>,
    pub users: HashMap<String, Provider>,
    pub key: ContentKey,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { mode: Mode::Enabled, org: None, users: HashMap::new(), key: ContentKey::process_default() }
    }
}

impl Settings {
    pub fn provider(p: &pb::SearchProvider) -> Result<Provider, String> {
        let kind = match pb::SearchProviderKind::try_from(p.kind) {
            Ok(pb::SearchProviderKind::Duckduckgo) | Ok(pb::SearchProviderKind::Unspecified) => {
                ProviderKind::DuckDuckGo
            }
            Ok(pb::SearchProviderKind::Tavily) => ProviderKind::Tavily,
            Ok(pb::SearchProviderKind::Serper) => ProviderKind::Serper,
            Ok(pb::SearchProviderKind::Brave) => ProviderKind::Brave,
            Ok(pb::SearchProviderKind::Searxng) => ProviderKind::SearXng,
            Ok(pb::SearchProviderKind::Custom) => ProviderKind::Custom,
            Err(_) => return Err(format!("unknown provider kind {}", p.kind)),
        };
        let nonempty = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        Ok(Provider { kind, url: nonempty(&p.url), api_key: nonempty(&p.api_key), max_results: p.max_results })
    }

    pub fn from_pb(w: Option<&pb::WebSearchConfig>, users: HashMap<String, Provider>) -> Result<Settings, String> {
        let Some(w) = w else {
            return Ok(Settings { users, ..Settings::default() });
        };
        let mode = match pb::WebSearchMode::try_from(w.mode) {
            Ok(pb::WebSearchMode::Disabled) => Mode::Disabled,
            Ok(pb::WebSearchMode::Global) => Mode::Global,
            _ => Mode::Enabled,
        };
        let org = w.org_provider.as_ref().map(Settings::provider).transpose()?;
        let key = match w.content_key.len() {
            0 => ContentKey::process_default(),
            _ => ContentKey::new(&w.content_key).ok_or("content_key: must be 32 bytes")?,
        };
        Ok(Settings { mode, org, users, key })
    }

    /// The provider a user's searches go to.
    pub fn provider_for(&self, user_id: &str) -> Provider {
        let own = match self.mode {
            Mode::Enabled => self.users.get(user_id),
            Mode::Global | Mode::Disabled => None,
        };
        own.or(self.org.as_ref()).cloned().unwrap_or_else(Provider::duckduckgo)
    }
}

/// A request whose search tool the gateway runs.
#[derive(Debug)]
pub struct Plan {
    pub tool: SearchTool,
    pub provider: Provider,
    /// The client forced the search tool: only the first call is forced,
    /// or every call would search again until `max_uses`.
    pub forced: bool,
    pub key: ContentKey,
}

/// Rewrites the request for Bedrock: the search tool becomes a plain tool
/// (or, with search disabled, goes), and search blocks in the history
/// become what Bedrock understands. `None`: nothing to emulate.
pub fn prepare(body: &mut Map<String, Value>, settings: &Settings, user_id: &str) -> Result<Option<Plan>, ApiError> {
    let found = tool::take(body, settings.mode == Mode::Disabled)?;
    history::translate(body, found.as_ref().map(|t| t.name.as_str()), &settings.key);
    let Some(tool) = found else { return Ok(None) };
    let forced = body.get("tool_choice").is_some_and(|c| {
        c.get("type").and_then(Value::as_str) == Some("tool")
            && c.get("name").and_then(Value::as_str) == Some(&tool.name)
    });
    Ok(Some(Plan { provider: settings.provider_for(user_id), tool, forced, key: settings.key.clone() }))
}

/// A fresh `srvtoolu_…` id, as the API names its server tool calls.
pub fn server_tool_id() -> String {
    crate::api::random_id("srvtoolu_01", 24)
}

/// What the searches of one request share: the searcher and its counts.
pub struct Runner {
    pub searcher: Arc<ccag_websearch::Searcher>,
    pub plan: Plan,
    /// Search calls that counted against `max_uses`.
    pub used: u32,
    /// Searches that gave an answer: the ones priced and reported.
    pub billed: u64,
}

impl Runner {
    pub fn new(searcher: Arc<ccag_websearch::Searcher>, plan: Plan) -> Runner {
        Runner { searcher, plan, used: 0, billed: 0 }
    }

    fn limit(&self) -> u32 {
        self.plan.tool.max_uses.unwrap_or(MAX_SEARCHES).min(MAX_SEARCHES)
    }

    /// Model calls one request may make: one per search allowed, one to
    /// read the errors of calls over the limit, one to answer.
    pub fn rounds(&self) -> u32 {
        self.limit() + 2
    }

    /// Puts one round's assistant turn and the search results into the
    /// conversation for the next call.
    pub fn next_round(&mut self, body: &mut Map<String, Value>, said: Vec<Value>, results: Vec<Value>) {
        if let Some(Value::Array(messages)) = body.get_mut("messages") {
            messages.push(serde_json::json!({"role": "assistant", "content": said}));
            messages.push(serde_json::json!({"role": "user", "content": results}));
        }
        if self.plan.forced {
            body.remove("tool_choice");
            self.plan.forced = false;
        }
    }

    /// Runs one search call of the model; its outcome for both sides.
    pub async fn run(&mut self, input: &Value) -> blocks::Outcome {
        let query = match input.get("query").and_then(Value::as_str).map(str::trim) {
            Some(q) if !q.is_empty() => q.to_owned(),
            _ => return blocks::Outcome::error(String::new(), "invalid_tool_input"),
        };
        if query.chars().count() > MAX_QUERY_CHARS {
            return blocks::Outcome::error(query, "query_too_long");
        }
        if self.used >= self.limit() {
            return blocks::Outcome::error(query, "max_uses_exceeded");
        }
        self.used += 1;
        let q = self.plan.tool.query(query.clone());
        match self.searcher.search(&self.plan.provider, &q).await {
            Ok(hits) => {
                self.billed += 1;
                blocks::Outcome::hits(query, hits)
            }
            Err(e) => {
                tracing::warn!(provider = %self.plan.provider.kind, error = %e, "web search failed");
                blocks::Outcome::error(query, e.error_code())
            }
        }
    }
}
