//! The `web_search_*` server tool of a request: read, checked as the API
//! checks it, and swapped for a plain tool Bedrock accepts.

use ccag_websearch::{valid_domain, Location, Query};
use serde_json::{json, Map, Value};

use crate::http::error::ApiError;

/// The tool versions the gateway emulates.
const VERSIONS: &[&str] = &["web_search_20250305", "web_search_20260209", "web_search_20260318"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchTool {
    pub name: String,
    pub max_uses: Option<u32>,
    pub allowed_domains: Vec<String>,
    pub blocked_domains: Vec<String>,
    pub location: Option<Location>,
}

impl SearchTool {
    pub fn query(&self, text: String) -> Query {
        Query {
            text,
            allowed_domains: self.allowed_domains.clone(),
            blocked_domains: self.blocked_domains.clone(),
            location: self.location.clone(),
        }
    }

    /// The plain tool the model sees in its place.
    fn plain(&self) -> Value {
        json!({
            "name": self.name,
            "description": "Search the web for current information. Returns result titles, URLs and excerpts. \
                Use it for facts that may have changed after your training or that you do not know.",
            "input_schema": {
                "type": "object",
                "properties": {"query": {"type": "string", "description": "The search query"}},
                "required": ["query"]
            }
        })
    }
}

fn is_search(tool: &Value) -> bool {
    tool.get("type").and_then(Value::as_str).is_some_and(|t| t.starts_with("web_search_"))
}

/// Takes the search tool out of `tools` (in its place, unless `remove`, the
/// plain tool). A request without one is not touched.
pub fn take(body: &mut Map<String, Value>, remove: bool) -> Result<Option<SearchTool>, ApiError> {
    let Some(Value::Array(tools)) = body.get_mut("tools") else { return Ok(None) };
    let Some(at) = tools.iter().position(is_search) else { return Ok(None) };
    if tools.iter().filter(|t| is_search(t)).count() > 1 {
        return Err(bad("tools: only one web_search tool may be given"));
    }
    let tool = parse(&tools[at])?;
    if remove {
        tools.remove(at);
        let empty = tools.is_empty();
        let chosen = body.get("tool_choice").and_then(|c| c.get("name")).and_then(Value::as_str);
        if empty || chosen == Some(tool.name.as_str()) {
            body.remove("tool_choice");
        }
        if empty {
            body.remove("tools");
        }
        return Ok(None);
    }
    tools[at] = tool.plain();
    Ok(Some(tool))
}

fn parse(v: &Value) -> Result<SearchTool, ApiError> {
    let kind = v.get("type").and_then(Value::as_str).unwrap_or_default();
    if !VERSIONS.contains(&kind) {
        return Err(bad(format!("tools: {kind} is not a supported web search tool version ({})", VERSIONS.join(", "))));
    }
    let name = match v.get("name") {
        None => "web_search".to_owned(),
        Some(Value::String(n)) if !n.is_empty() => n.clone(),
        Some(_) => return Err(bad("tools.web_search.name: must be a non-empty string")),
    };
    let max_uses = match v.get("max_uses") {
        None | Some(Value::Null) => None,
        Some(n) => match n.as_u64() {
            Some(n @ 1..) => Some(u32::try_from(n).unwrap_or(u32::MAX)),
            _ => return Err(bad("tools.web_search.max_uses: must be a positive integer")),
        },
    };
    let allowed = domains(v, "allowed_domains")?;
    let blocked = domains(v, "blocked_domains")?;
    if !allowed.is_empty() && !blocked.is_empty() {
        return Err(bad("tools.web_search: allowed_domains and blocked_domains cannot both be set"));
    }
    let location = match v.get("user_location") {
        None | Some(Value::Null) => None,
        Some(Value::Object(l)) => Some(location(l)?),
        Some(_) => return Err(bad("tools.web_search.user_location: must be an object")),
    };
    Ok(SearchTool { name, max_uses, allowed_domains: allowed, blocked_domains: blocked, location })
}

fn domains(v: &Value, field: &str) -> Result<Vec<String>, ApiError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|d| match d.as_str() {
                Some(d) if valid_domain(d) => Ok(d.to_ascii_lowercase()),
                _ => Err(bad(format!(
                    "tools.web_search.{field}: {d} is not a domain (a bare domain such as example.com, optionally with a path, and no scheme)"
                ))),
            })
            .collect(),
        Some(_) => Err(bad(format!("tools.web_search.{field}: must be an array of domains"))),
    }
}

fn location(l: &Map<String, Value>) -> Result<Location, ApiError> {
    if let Some(t) = l.get("type").and_then(Value::as_str) {
        if t != "approximate" {
            return Err(bad("tools.web_search.user_location.type: must be \"approximate\""));
        }
    }
    let text = |k: &str| -> Result<Option<String>, ApiError> {
        match l.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.chars().count() <= 255 => {
                Ok(Some(s.trim().to_owned()).filter(|s| !s.is_empty()))
            }
            Some(_) => {
                Err(bad(format!("tools.web_search.user_location.{k}: must be a string of at most 255 characters")))
            }
        }
    };
    let country = text("country")?;
    if let Some(c) = &country {
        if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(bad("tools.web_search.user_location.country: must be an ISO 3166-1 alpha-2 code such as US"));
        }
    }
    Ok(Location {
        city: text("city")?,
        region: text("region")?,
        country: country.map(|c| c.to_ascii_uppercase()),
        timezone: text("timezone")?,
    })
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::InvalidRequest(msg.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(tool: Value) -> Map<String, Value> {
        let Value::Object(m) = json!({"tools": [{"name": "Bash", "input_schema": {"type": "object"}}, tool]}) else {
            unreachable!()
        };
        m
    }

    #[test]
    fn the_server_tool_becomes_a_plain_tool_of_the_same_name() {
        let mut b = body(json!({"type": "web_search_20250305", "name": "web_search", "max_uses": 3}));
        let t = take(&mut b, false).unwrap().unwrap();
        assert_eq!((t.name.as_str(), t.max_uses), ("web_search", Some(3)));
        assert_eq!(b["tools"][1]["name"], "web_search");
        assert!(b["tools"][1].get("type").is_none());
        assert_eq!(b["tools"][1]["input_schema"]["required"], json!(["query"]));
    }

    #[test]
    fn both_domain_lists_are_refused() {
        let mut b = body(json!({"type": "web_search_20250305", "name": "web_search",
            "allowed_domains": ["a.com"], "blocked_domains": ["b.com"]}));
        assert!(matches!(take(&mut b, false), Err(ApiError::InvalidRequest(m)) if m.contains("cannot both")));
    }

    #[test]
    fn a_domain_with_a_scheme_is_refused() {
        let mut b = body(json!({"type": "web_search_20250305", "allowed_domains": ["https://a.com"]}));
        assert!(take(&mut b, false).is_err());
    }

    #[test]
    fn an_unknown_country_code_is_refused_and_a_known_one_kept() {
        let mut b =
            body(json!({"type": "web_search_20260209", "user_location": {"type": "approximate", "country": "USA"}}));
        assert!(take(&mut b, false).is_err());
        let mut b = body(
            json!({"type": "web_search_20260209", "user_location": {"type": "approximate", "country": "gb", "city": "London"}}),
        );
        let loc = take(&mut b, false).unwrap().unwrap().location.unwrap();
        assert_eq!((loc.country.as_deref(), loc.city.as_deref()), (Some("GB"), Some("London")));
    }

    #[test]
    fn disabled_search_removes_the_tool_and_a_choice_forcing_it() {
        let Value::Object(mut b) = json!({"tools": [{"type": "web_search_20250305", "name": "web_search"}],
            "tool_choice": {"type": "tool", "name": "web_search"}})
        else {
            unreachable!()
        };
        assert!(take(&mut b, true).unwrap().is_none());
        assert!(b.get("tools").is_none() && b.get("tool_choice").is_none());
    }

    #[test]
    fn a_request_without_a_search_tool_is_untouched() {
        let mut b = body(json!({"name": "Read", "input_schema": {"type": "object"}}));
        let before = b.clone();
        assert!(take(&mut b, false).unwrap().is_none());
        assert_eq!(b, before);
    }
}
