//! The blocks one search becomes: for the client, `web_search_tool_result`
//! as the API writes it; for Bedrock, the `tool_result` text the model reads.

use std::fmt::Write as _;

use ccag_websearch::Hit;
use serde_json::{json, Value};

use super::content::{ContentKey, Sealed};
use crate::usage::Usage;

/// One search call's outcome.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub query: String,
    /// The results, or the API's `error_code`.
    pub result: Result<Vec<Hit>, &'static str>,
}

impl Outcome {
    pub fn hits(query: String, hits: Vec<Hit>) -> Outcome {
        Outcome { query, result: Ok(hits) }
    }

    pub fn error(query: String, code: &'static str) -> Outcome {
        Outcome { query, result: Err(code) }
    }

    /// The `web_search_tool_result` block for `server_tool_use` `id`.
    pub fn client_block(&self, id: &str, key: &ContentKey) -> Value {
        let content = match &self.result {
            Ok(hits) => Value::Array(
                hits.iter()
                    .map(|h| {
                        let sealed = Sealed {
                            url: h.url.clone(),
                            title: h.title.clone(),
                            snippet: h.snippet.clone(),
                            page_age: h.page_age.clone(),
                        };
                        json!({
                            "type": "web_search_result",
                            "url": h.url,
                            "title": h.title,
                            "encrypted_content": key.seal(&sealed),
                            "page_age": h.page_age,
                        })
                    })
                    .collect(),
            ),
            Err(code) => json!({"type": "web_search_tool_result_error", "error_code": code}),
        };
        json!({"type": "web_search_tool_result", "tool_use_id": id, "content": content})
    }

    /// The `tool_result` Bedrock receives for its `tool_use` `id`.
    pub fn bedrock_block(&self, id: &str) -> Value {
        match &self.result {
            Ok(hits) => {
                let items: Vec<Sealed> = hits
                    .iter()
                    .map(|h| Sealed {
                        url: h.url.clone(),
                        title: h.title.clone(),
                        snippet: h.snippet.clone(),
                        page_age: h.page_age.clone(),
                    })
                    .collect();
                tool_result(id, &results_text(&self.query, &items), false)
            }
            Err(code) => tool_result(id, &failure_text(code), true),
        }
    }
}

/// Adds one model call's usage to a request's.
pub fn add_usage(total: &mut Usage, u: &Usage) {
    total.input_tokens += u.input_tokens;
    total.output_tokens += u.output_tokens;
    total.cache_creation_input_tokens += u.cache_creation_input_tokens;
    total.cache_read_input_tokens += u.cache_read_input_tokens;
    total.cache_creation_1h_input_tokens += u.cache_creation_1h_input_tokens;
}

/// The client's `usage`: every model call's, and the searches run.
pub fn usage_json(u: &Usage, searches: u64) -> Value {
    json!({
        "input_tokens": u.input_tokens,
        "cache_creation_input_tokens": u.cache_creation_input_tokens,
        "cache_read_input_tokens": u.cache_read_input_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": u.cache_creation_input_tokens.saturating_sub(u.cache_creation_1h_input_tokens),
            "ephemeral_1h_input_tokens": u.cache_creation_1h_input_tokens,
        },
        "output_tokens": u.output_tokens,
        "server_tool_use": {"web_search_requests": searches},
    })
}

pub fn tool_result(id: &str, text: &str, is_error: bool) -> Value {
    let mut v = json!({"type": "tool_result", "tool_use_id": id, "content": [{"type": "text", "text": text}]});
    if is_error {
        v["is_error"] = Value::Bool(true);
    }
    v
}

pub fn failure_text(code: &str) -> String {
    format!("Web search failed: {code}")
}

/// What the model reads of a search's results.
pub fn results_text(query: &str, items: &[Sealed]) -> String {
    if items.is_empty() {
        return format!("No results for {}.", quoted(query));
    }
    let mut out = format!("Web search results for {}:", quoted(query));
    for (i, r) in items.iter().enumerate() {
        let _ = write!(out, "\n\n[{}] {}\nURL: {}", i + 1, r.title, r.url);
        if let Some(age) = &r.page_age {
            let _ = write!(out, "\nAge: {age}");
        }
        if !r.snippet.is_empty() {
            out.push('\n');
            out.push_str(&r.snippet);
        }
    }
    out
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(n: u32) -> Hit {
        Hit {
            url: format!("https://e{n}.example/"),
            title: format!("T{n}"),
            snippet: format!("s{n}"),
            page_age: (n == 1).then(|| "2 days ago".into()),
        }
    }

    #[test]
    fn results_are_numbered_for_the_model() {
        let o = Outcome::hits("rust".into(), vec![hit(1), hit(2)]);
        let b = o.bedrock_block("toolu_1");
        assert_eq!(
            b["content"][0]["text"],
            "Web search results for \"rust\":\n\n[1] T1\nURL: https://e1.example/\nAge: 2 days ago\ns1\n\n[2] T2\nURL: https://e2.example/\ns2"
        );
        assert!(b.get("is_error").is_none());
    }

    #[test]
    fn a_failure_is_an_error_block_on_both_sides() {
        let o = Outcome::error("q".into(), "too_many_requests");
        let key = ContentKey::new(&[1; 32]).unwrap();
        assert_eq!(
            o.client_block("srvtoolu_1", &key)["content"],
            json!({"type": "web_search_tool_result_error", "error_code": "too_many_requests"})
        );
        assert_eq!(o.bedrock_block("t")["is_error"], true);
    }

    #[test]
    fn client_results_carry_url_title_age_and_sealed_content() {
        let key = ContentKey::new(&[1; 32]).unwrap();
        let b = Outcome::hits("q".into(), vec![hit(1), hit(2)]).client_block("srvtoolu_1", &key);
        assert_eq!(b["tool_use_id"], "srvtoolu_1");
        assert_eq!(b["content"][0]["page_age"], "2 days ago");
        assert_eq!(b["content"][1]["page_age"], Value::Null);
        let opened = key.open(b["content"][0]["encrypted_content"].as_str().unwrap()).unwrap();
        assert_eq!(opened.snippet, "s1");
    }

    #[test]
    fn no_results_is_said_plainly() {
        assert_eq!(results_text("q", &[]), "No results for \"q\".");
    }
}
