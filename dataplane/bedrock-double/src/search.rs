//! How the double searches the web, as a model would with a search tool:
//!
//! - With a plain tool named `web_search` (the gateway's stand-in for
//!   Anthropic's server tool) and either a `tool_choice` forcing it or a
//!   `[double:search]`, `[double:search=QUERY]` or `[double:searches=N]`
//!   marker in a user message, or Claude Code's "Perform a web search for
//!   the query: …" as the first user message, it calls the tool until the conversation
//!   holds N (default 1) of its results, then answers from the last one.
//!   The query is QUERY, else the first user message without its markers
//!   and without Claude Code's "Perform a web search for the query: ";
//!   search k ≥ 2 gets " (k)" appended.
//! - With `[double:websearch]` in a user message (Claude Code's main
//!   conversation), it loads Claude Code's deferred `WebSearch` tool with
//!   `ToolSearch` if it must, calls `WebSearch` with the prompt, and
//!   answers from its result.

use serde_json::{json, Value};

use crate::behaviour::{message_text, ReplyContent};

const CLAUDE_CODE_PREFIX: &str = "Perform a web search for the query:";

fn tools(body: &Value) -> impl Iterator<Item = &Value> {
    body.get("tools").and_then(Value::as_array).into_iter().flatten()
}

fn has_tool(body: &Value, name: &str) -> bool {
    tools(body).any(|t| t.get("name").and_then(Value::as_str) == Some(name))
}

fn has_plain_search_tool(body: &Value) -> bool {
    tools(body).any(|t| {
        t.get("name").and_then(Value::as_str) == Some("web_search")
            && t.get("type").and_then(Value::as_str).is_none_or(|k| k == "custom")
    })
}

fn user_messages(body: &Value) -> impl Iterator<Item = &Value> {
    body.get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("user"))
}

/// The text of every user message (tool results excluded).
fn user_text(body: &Value) -> String {
    user_messages(body).map(message_text).collect::<Vec<_>>().join("\n")
}

/// `Some(value)` for `[double:KEY=value]`, `Some("")` for `[double:KEY]`.
fn marker(text: &str, key: &str) -> Option<String> {
    let open = format!("[double:{key}");
    let at = text.find(&open)?;
    let rest = &text[at + open.len()..];
    let end = rest.find(']')?;
    match &rest[..end] {
        "" => Some(String::new()),
        v => v.strip_prefix('=').map(|v| v.trim().to_owned()),
    }
}

fn without_markers(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("[double:") {
        out.push_str(&rest[..at]);
        match rest[at..].find(']') {
            Some(end) => rest = &rest[at + end + 1..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Ids of the assistant's calls of `tool`.
fn calls_of<'a>(body: &'a Value, tool: &str) -> Vec<&'a str> {
    body.get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
        .filter_map(|m| m.get("content").and_then(Value::as_array))
        .flatten()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_use"))
        .filter(|b| b.get("name").and_then(Value::as_str) == Some(tool))
        .filter_map(|b| b.get("id").and_then(Value::as_str))
        .collect()
}

/// Results in the conversation for calls of `tool`.
fn results_of(body: &Value, tool: &str) -> usize {
    let calls = calls_of(body, tool);
    user_messages(body)
        .filter_map(|m| m.get("content").and_then(Value::as_array))
        .flatten()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
        .filter(|b| b.get("tool_use_id").and_then(Value::as_str).is_some_and(|id| calls.contains(&id)))
        .count()
}

fn forced_search(body: &Value) -> bool {
    body.get("tool_choice").is_some_and(|c| {
        c.get("type").and_then(Value::as_str) == Some("tool")
            && c.get("name").and_then(Value::as_str) == Some("web_search")
    })
}

/// The double's next move in a search conversation, if it is one.
pub fn step(body: &Value) -> Option<ReplyContent> {
    let text = user_text(body);
    if has_plain_search_tool(body) {
        let wanted = match (marker(&text, "searches"), marker(&text, "search")) {
            (Some(n), _) => n.parse().unwrap_or(1),
            (None, Some(_)) => 1,
            // A model asked in so many words searches, forced or not
            // (Claude Code's WebSearch sends `tool_choice` auto).
            (None, None) if forced_search(body) || text.trim_start().starts_with(CLAUDE_CODE_PREFIX) => 1,
            (None, None) => 0,
        };
        let done = results_of(body, "web_search");
        if done < wanted {
            let query = match marker(&text, "search").filter(|q| !q.is_empty()) {
                Some(q) => q,
                None => {
                    let first = user_messages(body).next().map(message_text).unwrap_or_default();
                    let plain = without_markers(&first);
                    plain.strip_prefix(CLAUDE_CODE_PREFIX).unwrap_or(&plain).trim().to_owned()
                }
            };
            let query = if done == 0 { query } else { format!("{query} ({})", done + 1) };
            return Some(ReplyContent::tool_with("web_search", &json!({"query": query})));
        }
        return None;
    }
    if marker(&text, "websearch").is_some() && results_of(body, "WebSearch") == 0 {
        if has_tool(body, "WebSearch") {
            // The prompt's own block: Claude Code puts reminders in blocks of their own.
            let prompt = user_messages(body)
                .flat_map(|m| match m.get("content") {
                    Some(Value::String(s)) => vec![s.clone()],
                    Some(Value::Array(blocks)) => {
                        blocks.iter().filter_map(|b| b.get("text").and_then(Value::as_str)).map(str::to_owned).collect()
                    }
                    _ => Vec::new(),
                })
                .find(|t| t.contains("[double:websearch]"));
            let query = without_markers(&prompt.unwrap_or_default());
            return Some(ReplyContent::tool_with("WebSearch", &json!({"query": query})));
        }
        if has_tool(body, "ToolSearch") {
            return Some(ReplyContent::tool_with(
                "ToolSearch",
                &json!({"query": "select:WebSearch", "max_results": 1}),
            ));
        }
        return Some(ReplyContent::Text("No web search tool is available.".into()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain_tool() -> Value {
        json!({"name": "web_search", "input_schema": {"type": "object"}})
    }

    fn query_of(c: &ReplyContent) -> Value {
        let ReplyContent::ToolUse { input, .. } = c else { panic!("a tool call expected") };
        serde_json::from_str(&input.concat()).unwrap()
    }

    #[test]
    fn a_forced_search_tool_is_called_with_claude_codes_query() {
        let body = json!({"tools": [plain_tool()], "tool_choice": {"type": "tool", "name": "web_search"},
            "messages": [{"role": "user", "content": "Perform a web search for the query: rust news"}]});
        assert_eq!(query_of(&step(&body).unwrap())["query"], "rust news");
    }

    #[test]
    fn searches_continue_until_n_results_are_in() {
        let body = json!({"tools": [plain_tool()], "messages": [
            {"role": "user", "content": "look [double:searches=2]"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "web_search", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "r"}]}]});
        assert_eq!(query_of(&step(&body).unwrap())["query"], "look (2)");
        let mut done = body.clone();
        done["messages"].as_array_mut().unwrap().extend([
            json!({"role": "assistant", "content": [{"type": "tool_use", "id": "t2", "name": "web_search", "input": {}}]}),
            json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t2", "content": "r"}]}),
        ]);
        assert!(step(&done).is_none());
    }

    #[test]
    fn claude_codes_deferred_web_search_is_loaded_first() {
        let body = json!({"tools": [{"name": "ToolSearch"}], "messages": [{"role": "user", "content": "[double:websearch] find x"}]});
        let ReplyContent::ToolUse { name, .. } = step(&body).unwrap() else { panic!() };
        assert_eq!(name, "ToolSearch");
        let body = json!({"tools": [{"name": "ToolSearch"}, {"name": "WebSearch"}], "messages": [{"role": "user", "content": "[double:websearch] find x"}]});
        assert_eq!(query_of(&step(&body).unwrap())["query"], "find x");
    }

    #[test]
    fn a_conversation_without_search_is_not_one() {
        let body = json!({"tools": [plain_tool()], "messages": [{"role": "user", "content": "hi"}]});
        assert!(step(&body).is_none());
    }
}
