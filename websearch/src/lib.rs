//! Web search providers behind one call: a query in, at most
//! `max_results` hits out, or a typed error the gateway turns into a
//! `web_search_tool_result_error`. Every call goes through the outbound
//! check (`ccag-outbound`): the resolved address must be public unless
//! `CCAG_OUTBOUND_ALLOW_CIDRS` allows it, plain HTTP only to loopback, no
//! redirects followed, bounded answers and a total time limit. A
//! provider's error body is never passed on: only its status.

mod domains;
mod providers;

use std::time::Duration;

pub use ccag_outbound::{OutboundError, Policy, Target};
pub use domains::{domain_matches, valid_domain};

/// At most this many results per search, whatever a provider is set to.
pub const MAX_RESULTS_LIMIT: u32 = 20;
/// Results per search when the provider does not say.
pub const DEFAULT_MAX_RESULTS: u32 = 5;
/// The longest answer a provider may give.
pub const MAX_ANSWER_BYTES: usize = 2 * 1024 * 1024;
/// The longest query sent to a provider; a longer one is the API's
/// `query_too_long`.
pub const MAX_QUERY_CHARS: usize = 500;
/// The longest a whole search may take.
pub const SEARCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Characters kept of a result's title and of its snippet.
pub const MAX_TITLE_CHARS: usize = 300;
pub const MAX_SNIPPET_CHARS: usize = 2_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    DuckDuckGo,
    Tavily,
    Serper,
    Brave,
    SearXng,
    Custom,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 6] = [
        ProviderKind::DuckDuckGo,
        ProviderKind::Tavily,
        ProviderKind::Serper,
        ProviderKind::Brave,
        ProviderKind::SearXng,
        ProviderKind::Custom,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::DuckDuckGo => "duckduckgo",
            ProviderKind::Tavily => "tavily",
            ProviderKind::Serper => "serper",
            ProviderKind::Brave => "brave",
            ProviderKind::SearXng => "searxng",
            ProviderKind::Custom => "custom",
        }
    }

    pub fn parse(s: &str) -> Option<ProviderKind> {
        ProviderKind::ALL.into_iter().find(|k| k.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// The endpoint called when no URL is set; `None`: a URL is required.
    pub fn default_url(self) -> Option<&'static str> {
        match self {
            ProviderKind::DuckDuckGo => Some("https://html.duckduckgo.com/html/"),
            ProviderKind::Tavily => Some("https://api.tavily.com/search"),
            ProviderKind::Serper => Some("https://google.serper.dev/search"),
            ProviderKind::Brave => Some("https://api.search.brave.com/res/v1/web/search"),
            ProviderKind::SearXng | ProviderKind::Custom => None,
        }
    }

    /// Whether the provider cannot work without an API key.
    pub fn needs_key(self) -> bool {
        matches!(self, ProviderKind::Tavily | ProviderKind::Serper | ProviderKind::Brave)
    }

    /// Whether only an administrator may set it: a URL chosen freely is
    /// an outbound call aimed by whoever sets it.
    pub fn admin_only(self) -> bool {
        matches!(self, ProviderKind::SearXng | ProviderKind::Custom)
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One configured provider.
#[derive(Clone, PartialEq, Eq)]
pub struct Provider {
    pub kind: ProviderKind,
    /// The endpoint to call (the whole URL, query string added by the
    /// call); `None`: the provider's default.
    pub url: Option<String>,
    pub api_key: Option<String>,
    /// 0: [`DEFAULT_MAX_RESULTS`]; more than [`MAX_RESULTS_LIMIT`] is clamped.
    pub max_results: u32,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("kind", &self.kind)
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("max_results", &self.max_results)
            .finish()
    }
}

impl Provider {
    pub fn duckduckgo() -> Provider {
        Provider { kind: ProviderKind::DuckDuckGo, url: None, api_key: None, max_results: 0 }
    }

    pub fn results(&self) -> usize {
        match self.max_results {
            0 => DEFAULT_MAX_RESULTS as usize,
            n => n.min(MAX_RESULTS_LIMIT) as usize,
        }
    }

    /// The endpoint, checked as an outbound target (not yet resolved).
    pub fn target(&self) -> Result<Target, ConfigError> {
        let url = match (&self.url, self.kind.default_url()) {
            (Some(u), _) => u.as_str(),
            (None, Some(d)) => d,
            (None, None) => return Err(ConfigError::UrlRequired(self.kind)),
        };
        ccag_outbound::search_target(url).map_err(ConfigError::Url)
    }

    /// What is wrong with this provider as configured, before any call.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.kind.needs_key() && self.api_key.as_deref().is_none_or(str::is_empty) {
            return Err(ConfigError::KeyRequired(self.kind));
        }
        if self.max_results > MAX_RESULTS_LIMIT {
            return Err(ConfigError::MaxResults(self.max_results));
        }
        self.target().map(|_| ())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("url: the {0} provider needs a URL (--url)")]
    UrlRequired(ProviderKind),
    #[error("api_key: the {0} provider needs an API key")]
    KeyRequired(ProviderKind),
    #[error("max_results: 1 to {MAX_RESULTS_LIMIT}, not {0}")]
    MaxResults(u32),
    #[error("url: {0}")]
    Url(OutboundError),
}

/// `user_location` of the search tool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    pub city: Option<String>,
    pub region: Option<String>,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: Option<String>,
    /// IANA time zone.
    pub timezone: Option<String>,
}

/// One search, as the model asked for it and the tool restricts it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub text: String,
    /// Bare domains, optionally with a path (`example.com/docs`); a result
    /// must match one. Empty: any.
    pub allowed_domains: Vec<String>,
    /// A result matching one is dropped.
    pub blocked_domains: Vec<String>,
    pub location: Option<Location>,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub url: String,
    pub title: String,
    pub snippet: String,
    /// As the provider gives it ("2 days ago", "2026-11-20"), if it does.
    pub page_age: Option<String>,
}

/// Why a search gave no results. Provider bodies are never kept: a bad
/// key's error page can echo the key.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("the search provider is rate-limiting the gateway")]
    RateLimited,
    #[error("the search provider refused its API key (HTTP {0})")]
    BadKey(u16),
    #[error("the search provider answered HTTP {0}")]
    Status(u16),
    #[error("the search provider's answer could not be read: {0}")]
    BadAnswer(String),
    #[error("the search provider could not be reached: {0}")]
    Unreachable(String),
    #[error("the search provider did not answer within {}s", SEARCH_TIMEOUT.as_secs())]
    Timeout,
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the search provider may not be called: {0}")]
    Refused(OutboundError),
}

impl SearchError {
    /// The `error_code` of the `web_search_tool_result_error` it becomes.
    pub fn error_code(&self) -> &'static str {
        match self {
            SearchError::RateLimited => "too_many_requests",
            _ => "unavailable",
        }
    }
}

/// Runs searches under one outbound policy.
#[derive(Debug, Clone)]
pub struct Searcher {
    policy: Policy,
}

impl Searcher {
    pub fn new(policy: Policy) -> Searcher {
        Searcher { policy }
    }

    /// At most `provider.results()` hits, filtered by the query's domains.
    pub async fn search(&self, provider: &Provider, query: &Query) -> Result<Vec<Hit>, SearchError> {
        let target = provider.target()?;
        let work = providers::search(&self.policy, &target, provider, query);
        let mut hits = match tokio::time::timeout(SEARCH_TIMEOUT, work).await {
            Ok(r) => r?,
            Err(_) => return Err(SearchError::Timeout),
        };
        hits.retain(|h| domains::admitted(&h.url, &query.allowed_domains, &query.blocked_domains));
        hits.truncate(provider.results());
        for h in &mut hits {
            truncate_chars(&mut h.title, MAX_TITLE_CHARS);
            truncate_chars(&mut h.snippet, MAX_SNIPPET_CHARS);
        }
        Ok(hits)
    }
}

fn truncate_chars(s: &mut String, max: usize) {
    if let Some((at, _)) = s.char_indices().nth(max) {
        s.truncate(at);
    }
}
