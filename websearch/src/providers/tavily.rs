//! Tavily: a JSON POST with a bearer key; domain lists are native.

use http::header::AUTHORIZATION;
use serde_json::json;

use crate::domains;
use crate::{Hit, Query, SearchError, Target};

pub(super) fn request(target: &Target, key: &str, query: &Query, n: usize) -> Result<super::Request, SearchError> {
    let mut body = json!({
        "query": query.text.trim(),
        "max_results": n,
        "search_depth": "basic",
    });
    // Tavily filters by host; a path in the list is enforced afterwards.
    let include = domains::hosts(&query.allowed_domains);
    if !include.is_empty() {
        body["include_domains"] = json!(include);
    }
    // Excluding the host of a blocked path would drop pages the list allows.
    let exclude = domains::whole_hosts(&query.blocked_domains);
    if !exclude.is_empty() {
        body["exclude_domains"] = json!(exclude);
    }
    let mut req = super::post_json(target, &body)?;
    super::set_secret(&mut req, AUTHORIZATION, &format!("Bearer {key}"))?;
    Ok(req)
}

pub(super) fn parse(body: &[u8]) -> Result<Vec<Hit>, SearchError> {
    super::content_results(body, "published_date")
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{body_json, header, target};
    use super::*;

    #[test]
    fn the_request_carries_the_key_the_count_and_native_domain_lists() {
        let q = Query {
            text: " rust 2024 edition ".into(),
            allowed_domains: vec!["doc.rust-lang.org/edition-guide".into(), "blog.rust-lang.org".into()],
            blocked_domains: vec!["reddit.com".into(), "github.com/spam".into()],
            location: None,
        };
        let req = request(&target("https://api.tavily.com/search"), "tvly-123", &q, 7).unwrap();
        assert_eq!(*req.method(), http::Method::POST);
        assert_eq!(req.uri().path(), "/search");
        assert_eq!(header(&req, "authorization"), "Bearer tvly-123");
        assert!(req.headers()["authorization"].is_sensitive());
        assert_eq!(header(&req, "content-type"), "application/json");
        let b = body_json(req);
        assert_eq!(b["query"], "rust 2024 edition");
        assert_eq!(b["max_results"], 7);
        assert_eq!(b["search_depth"], "basic");
        assert_eq!(b["include_domains"], json!(["doc.rust-lang.org", "blog.rust-lang.org"]));
        assert_eq!(b["exclude_domains"], json!(["reddit.com"]));
    }

    #[test]
    fn without_domain_lists_none_are_sent() {
        let q = Query { text: "x".into(), ..Default::default() };
        let b = body_json(request(&target("https://api.tavily.com/search"), "k", &q, 5).unwrap());
        assert!(b.get("include_domains").is_none() && b.get("exclude_domains").is_none());
    }

    #[test]
    fn results_become_hits_with_content_as_snippet() {
        let answer = br#"{
            "query": "rust 2024 edition",
            "answer": null,
            "images": [],
            "results": [
                {"title": "Rust 2024 - The Rust Edition Guide", "url": "https://doc.rust-lang.org/edition-guide/rust-2024/index.html",
                 "content": "The Rust 2024 Edition is the latest edition.", "score": 0.91, "raw_content": null},
                {"title": "", "url": "https://blog.rust-lang.org/2025/02/20/Rust-1.85.0.html",
                 "content": "Rust 1.85.0 stabilises the 2024 edition.", "score": 0.8, "published_date": "Thu, 20 Feb 2025 00:00:00 GMT"},
                {"title": "no url", "content": "dropped", "score": 0.1}
            ],
            "response_time": 1.23
        }"#;
        let hits = parse(answer).unwrap();
        assert_eq!(hits.len(), 2);
        assert_eq!(hits[0].title, "Rust 2024 - The Rust Edition Guide");
        assert_eq!(hits[0].snippet, "The Rust 2024 Edition is the latest edition.");
        assert_eq!(hits[0].page_age, None);
        assert_eq!(hits[1].title, hits[1].url);
        assert_eq!(hits[1].page_age.as_deref(), Some("Thu, 20 Feb 2025 00:00:00 GMT"));
    }

    #[test]
    fn an_answer_that_is_not_a_result_list_is_a_bad_answer() {
        assert!(matches!(parse(b"<html>oops</html>"), Err(SearchError::BadAnswer(_))));
        assert!(matches!(parse(br#"{"detail": {"error": "x"}}"#), Err(SearchError::BadAnswer(_))));
        assert!(parse(br#"{"results": []}"#).unwrap().is_empty());
    }
}
