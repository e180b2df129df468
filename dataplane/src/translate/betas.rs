//! Which `anthropic-beta` flags reach Bedrock. Bedrock takes betas only in the
//! body (`anthropic_beta`) and rejects any it does not know, so the request's
//! betas are filtered by an allow-list, and betas a model turned down are
//! remembered so that later requests do not pay for the same 400.

use std::collections::HashSet;

use dashmap::DashMap;
use http::HeaderMap;
use serde_json::Value;

/// Betas Bedrock accepts in the body (docs/protocol.md §2.3).
pub const BEDROCK_BETAS: &[&str] = &[
    "computer-use-2025-01-24",
    "token-efficient-tools-2025-02-19",
    "interleaved-thinking-2025-05-14",
    "output-128k-2025-02-19",
    "dev-full-thinking-2025-05-14",
    "context-1m-2025-08-07",
    "context-management-2025-06-27",
    "effort-2025-11-24",
    "tool-search-tool-2025-10-19",
    "tool-examples-2025-10-29",
];

/// First-party names whose Bedrock counterpart has another name.
const RENAMED: &[(&str, &str)] = &[("advanced-tool-use-2025-11-20", "tool-search-tool-2025-10-19")];

/// Every beta the client asked for: all `anthropic-beta` header lines, each
/// comma-separated, plus a stray `betas` array in the body.
pub fn requested<'a>(headers: &'a HeaderMap, body_betas: Option<&'a Value>) -> Vec<&'a str> {
    let mut out = Vec::new();
    for v in headers.get_all("anthropic-beta") {
        if let Ok(s) = v.to_str() {
            out.extend(s.split(',').map(str::trim).filter(|b| !b.is_empty()));
        }
    }
    if let Some(Value::Array(a)) = body_betas {
        out.extend(a.iter().filter_map(Value::as_str).map(str::trim).filter(|b| !b.is_empty()));
    }
    out
}

/// The betas to send: renamed, allowed, not known to be rejected by this
/// model, in request order, without duplicates.
pub fn select<S: AsRef<str>>(
    requested: &[S],
    context_1m: bool,
    extra: &HashSet<String>,
    rejected: &[String],
) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(requested.len() + 1);
    let wanted = requested.iter().map(AsRef::as_ref).chain(context_1m.then_some(crate::models::CONTEXT_1M_BETA));
    for beta in wanted {
        let beta = RENAMED.iter().find(|(from, _)| *from == beta).map_or(beta, |(_, to)| to);
        let allowed = BEDROCK_BETAS.contains(&beta) || extra.contains(beta);
        if allowed && !rejected.iter().any(|r| r == beta) && !out.iter().any(|b| b == beta) {
            out.push(beta.to_owned());
        }
    }
    out
}

/// Betas each Bedrock model turned down, learnt from its ValidationExceptions.
#[derive(Default)]
pub struct BetaMemory {
    rejected: DashMap<String, Vec<String>>,
}

impl BetaMemory {
    pub fn rejected(&self, model: &str) -> Vec<String> {
        self.rejected.get(model).map(|r| r.clone()).unwrap_or_default()
    }

    /// Records every sent beta that a ValidationException message names.
    /// Returns true when something new was learnt, which makes the request
    /// worth one retry without those betas.
    pub fn learn(&self, model: &str, message: &str, sent: &[String]) -> bool {
        let named: Vec<&String> = sent.iter().filter(|b| message.contains(b.as_str())).collect();
        if named.is_empty() {
            return false;
        }
        let mut entry = self.rejected.entry(model.to_owned()).or_default();
        let mut learnt = false;
        for b in named {
            if !entry.contains(b) {
                tracing::warn!(model, beta = %b, "Bedrock rejected a beta; it will no longer be sent to this model");
                entry.push(b.clone());
                learnt = true;
            }
        }
        learnt
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append("anthropic-beta", HeaderValue::from_str(l).unwrap());
        }
        h
    }

    #[test]
    fn betas_merge_across_header_lines_and_commas() {
        let h = headers(&["a, b", "c"]);
        assert_eq!(requested(&h, None), vec!["a", "b", "c"]);
    }

    #[test]
    fn body_betas_are_merged() {
        let h = headers(&["a"]);
        let body = serde_json::json!(["b"]);
        assert_eq!(requested(&h, Some(&body)), vec!["a", "b"]);
    }

    #[test]
    fn unknown_betas_are_dropped() {
        let got = select(&["claude-code-20250219", "interleaved-thinking-2025-05-14"], false, &HashSet::new(), &[]);
        assert_eq!(got, vec!["interleaved-thinking-2025-05-14"]);
    }

    #[test]
    fn snapshot_can_extend_the_allow_list() {
        let extra = HashSet::from(["thinking-token-count-2026-05-13".to_owned()]);
        let got = select(&["thinking-token-count-2026-05-13"], false, &extra, &[]);
        assert_eq!(got, vec!["thinking-token-count-2026-05-13"]);
    }

    #[test]
    fn advanced_tool_use_becomes_tool_search() {
        assert_eq!(
            select(&["advanced-tool-use-2025-11-20"], false, &HashSet::new(), &[]),
            vec!["tool-search-tool-2025-10-19"]
        );
    }

    #[test]
    fn one_million_context_adds_its_beta_once() {
        let got = select(&["context-1m-2025-08-07"], true, &HashSet::new(), &[]);
        assert_eq!(got, vec!["context-1m-2025-08-07"]);
    }

    #[test]
    fn rejected_betas_are_not_sent() {
        let got = select(&["effort-2025-11-24"], false, &HashSet::new(), &["effort-2025-11-24".to_owned()]);
        assert!(got.is_empty());
    }

    #[test]
    fn memory_learns_only_betas_named_in_the_error() {
        let mem = BetaMemory::default();
        let sent = vec!["context-1m-2025-08-07".to_owned(), "effort-2025-11-24".to_owned()];
        assert!(mem.learn("m", "invalid beta flag: context-1m-2025-08-07", &sent));
        assert_eq!(mem.rejected("m"), vec!["context-1m-2025-08-07"]);
        assert!(mem.rejected("other").is_empty());
        assert!(!mem.learn("m", "invalid beta flag: context-1m-2025-08-07", &sent));
        assert!(!mem.learn("m", "max_tokens: too large", &sent));
    }
}
