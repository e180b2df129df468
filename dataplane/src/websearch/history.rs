//! Search blocks a client sends back in a later turn, made into what
//! Bedrock understands: with the search tool in the request, each
//! `server_tool_use` becomes a `tool_use` and its `web_search_tool_result`
//! a `tool_result` in a user turn of its own (the assistant turn is split
//! there, since Bedrock wants results from the user); without the tool,
//! both become text. The results' sealed content gives the model the same
//! excerpts it read when it searched.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::blocks::{failure_text, results_text, tool_result};
use super::content::{ContentKey, Sealed};

pub fn translate(body: &mut Map<String, Value>, tool: Option<&str>, key: &ContentKey) {
    let Some(Value::Array(messages)) = body.get_mut("messages") else { return };
    if !messages.iter().any(has_search_blocks) {
        return;
    }
    let old = std::mem::take(messages);
    let mut out = Vec::with_capacity(old.len() + 2);
    for m in old {
        if !has_search_blocks(&m) {
            push_merged(&mut out, m);
            continue;
        }
        let Some(Value::Array(blocks)) = m.get("content").cloned() else { continue };
        match tool {
            Some(name) => split(blocks, name, key, &mut out),
            None => push_merged(&mut out, message("assistant", flatten(blocks, key))),
        }
    }
    *messages = out;
}

fn has_search_blocks(m: &Value) -> bool {
    if m.get("role").and_then(Value::as_str) != Some("assistant") {
        return false;
    }
    let Some(Value::Array(blocks)) = m.get("content") else { return false };
    blocks.iter().any(|b| match b.get("type").and_then(Value::as_str) {
        Some("server_tool_use" | "web_search_tool_result") => true,
        Some("text") => has_search_citations(b),
        _ => false,
    })
}

fn has_search_citations(b: &Value) -> bool {
    b.get("citations")
        .and_then(Value::as_array)
        .is_some_and(|c| c.iter().any(|c| c.get("type").and_then(Value::as_str) == Some("web_search_result_location")))
}

/// Bedrock knows no web search citations; the text stays.
fn clean(mut b: Value) -> Value {
    if has_search_citations(&b) {
        if let Some(m) = b.as_object_mut() {
            m.remove("citations");
        }
    }
    b
}

fn message(role: &str, content: Vec<Value>) -> Value {
    json!({"role": role, "content": content})
}

/// Appends `m`, joining it to the last message when both have the same
/// role (a split leaves a user turn of results before the client's next).
fn push_merged(out: &mut Vec<Value>, m: Value) {
    let same = out.last().and_then(|l| l.get("role")).is_some_and(|r| Some(r) == m.get("role"));
    if !same {
        out.push(m);
        return;
    }
    let last = out.last_mut().expect("checked above");
    let mut content = blocks_of(last.get_mut("content").map(Value::take));
    content.extend(blocks_of(m.get("content").cloned()));
    last["content"] = Value::Array(content);
}

fn blocks_of(content: Option<Value>) -> Vec<Value> {
    match content {
        Some(Value::Array(b)) => b,
        Some(Value::String(s)) => vec![json!({"type": "text", "text": s})],
        _ => Vec::new(),
    }
}

fn query_of(b: &Value) -> String {
    b.get("input").and_then(|i| i.get("query")).and_then(Value::as_str).unwrap_or_default().to_owned()
}

/// The text of a `web_search_tool_result`, and whether it is an error.
fn result_text(b: &Value, query: &str, key: &ContentKey) -> (String, bool) {
    match b.get("content") {
        Some(Value::Array(items)) => {
            let items: Vec<Sealed> = items
                .iter()
                .map(|r| {
                    let text = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
                    r.get("encrypted_content").and_then(Value::as_str).and_then(|c| key.open(c)).unwrap_or_else(|| {
                        Sealed { url: text("url"), title: text("title"), snippet: String::new(), page_age: None }
                    })
                })
                .collect();
            (results_text(query, &items), false)
        }
        Some(err) => (failure_text(err.get("error_code").and_then(Value::as_str).unwrap_or("unavailable")), true),
        None => (failure_text("unavailable"), true),
    }
}

fn split(blocks: Vec<Value>, name: &str, key: &ContentKey, out: &mut Vec<Value>) {
    let mut said = Vec::new();
    let mut results = Vec::new();
    // Calls of the current assistant chunk still without a result.
    let mut open: Vec<String> = Vec::new();
    let mut queries: HashMap<String, String> = HashMap::new();
    let flush = |said: &mut Vec<Value>, results: &mut Vec<Value>, open: &mut Vec<String>, out: &mut Vec<Value>| {
        for id in open.drain(..) {
            results.push(tool_result(&id, &failure_text("unavailable"), true));
        }
        if !said.is_empty() {
            push_merged(out, message("assistant", std::mem::take(said)));
        }
        if !results.is_empty() {
            push_merged(out, message("user", std::mem::take(results)));
        }
    };
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("server_tool_use") => {
                if !results.is_empty() {
                    flush(&mut said, &mut results, &mut open, out);
                }
                let id = b.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
                queries.insert(id.clone(), query_of(&b));
                let input = b.get("input").cloned().unwrap_or_else(|| json!({}));
                said.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
                open.push(id);
            }
            Some("web_search_tool_result") => {
                let id = b.get("tool_use_id").and_then(Value::as_str).unwrap_or_default();
                let Some(at) = open.iter().position(|o| o == id) else { continue };
                open.remove(at);
                let (text, is_error) = result_text(&b, queries.get(id).map(String::as_str).unwrap_or(""), key);
                results.push(tool_result(id, &text, is_error));
            }
            _ => {
                if !results.is_empty() {
                    flush(&mut said, &mut results, &mut open, out);
                }
                said.push(clean(b));
            }
        }
    }
    flush(&mut said, &mut results, &mut open, out);
}

fn flatten(blocks: Vec<Value>, key: &ContentKey) -> Vec<Value> {
    let mut queries: HashMap<String, String> = HashMap::new();
    let mut out = Vec::with_capacity(blocks.len());
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("server_tool_use") => {
                let q = query_of(&b);
                out.push(json!({"type": "text", "text": format!("(Searched the web for {}.)", serde_json::to_string(&q).unwrap_or_default())}));
                if let Some(id) = b.get("id").and_then(Value::as_str) {
                    queries.insert(id.to_owned(), q);
                }
            }
            Some("web_search_tool_result") => {
                let id = b.get("tool_use_id").and_then(Value::as_str).unwrap_or_default();
                let (text, _) = result_text(&b, queries.get(id).map(String::as_str).unwrap_or(""), key);
                out.push(json!({"type": "text", "text": text}));
            }
            _ => out.push(clean(b)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ContentKey {
        ContentKey::new(&[3; 32]).unwrap()
    }

    fn history(key: &ContentKey) -> Map<String, Value> {
        let sealed = key.seal(&Sealed {
            url: "https://a.example/".into(),
            title: "A".into(),
            snippet: "the excerpt".into(),
            page_age: None,
        });
        let Value::Object(m) = json!({"messages": [
            {"role": "user", "content": "find it"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Searching."},
                {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "it"}},
                {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": [
                    {"type": "web_search_result", "url": "https://a.example/", "title": "A", "encrypted_content": sealed, "page_age": null}]},
                {"type": "text", "text": "Found it.", "citations": [{"type": "web_search_result_location", "url": "https://a.example/"}]}
            ]},
            {"role": "user", "content": "thanks"}
        ]}) else {
            unreachable!()
        };
        m
    }

    #[test]
    fn search_blocks_become_a_tool_use_and_a_result_turn() {
        let k = key();
        let mut b = history(&k);
        translate(&mut b, Some("web_search"), &k);
        let m = b["messages"].as_array().unwrap();
        let roles: Vec<&str> = m.iter().map(|m| m["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["user", "assistant", "user", "assistant", "user"]);
        assert_eq!(
            m[1]["content"][1],
            json!({"type": "tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "it"}})
        );
        assert_eq!(m[2]["content"][0]["tool_use_id"], "srvtoolu_1");
        assert!(m[2]["content"][0]["content"][0]["text"].as_str().unwrap().contains("the excerpt"));
        assert_eq!(m[3]["content"], json!([{"type": "text", "text": "Found it."}]));
    }

    #[test]
    fn results_at_the_end_of_a_turn_join_the_next_user_turn() {
        let k = key();
        let Value::Object(mut b) = json!({"messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": [
                {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}},
                {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": {"type": "web_search_tool_result_error", "error_code": "unavailable"}}
            ]},
            {"role": "user", "content": "again"}
        ]}) else {
            unreachable!()
        };
        translate(&mut b, Some("web_search"), &k);
        let m = b["messages"].as_array().unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[2]["content"][0]["type"], "tool_result");
        assert_eq!(m[2]["content"][0]["is_error"], true);
        assert_eq!(m[2]["content"][1], json!({"type": "text", "text": "again"}));
    }

    #[test]
    fn without_the_tool_search_blocks_become_text() {
        let k = key();
        let mut b = history(&k);
        translate(&mut b, None, &k);
        let m = b["messages"].as_array().unwrap();
        assert_eq!(m.len(), 3);
        let types: Vec<&str> =
            m[1]["content"].as_array().unwrap().iter().map(|b| b["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["text"; 4]);
        assert!(m[1]["content"][2]["text"].as_str().unwrap().contains("the excerpt"));
    }

    #[test]
    fn an_altered_result_keeps_its_title_and_url_only() {
        let k = key();
        let mut b = history(&k);
        b["messages"][1]["content"][2]["content"][0]["encrypted_content"] = json!("AAAA");
        translate(&mut b, Some("web_search"), &k);
        let text = b["messages"][2]["content"][0]["content"][0]["text"].as_str().unwrap().to_owned();
        assert!(text.contains("https://a.example/") && !text.contains("the excerpt"));
    }

    #[test]
    fn a_history_without_search_blocks_is_untouched() {
        let Value::Object(mut b) =
            json!({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]})
        else {
            unreachable!()
        };
        let before = b.clone();
        translate(&mut b, Some("web_search"), &key());
        assert_eq!(b, before);
    }
}
