//! A SearXNG instance: a GET asking for JSON (the instance must list
//! `json` under `search.formats`); a key, when set, goes as a bearer
//! token for a proxy in front of it. Domains go into the query as `site:`
//! operators, which engines honour unevenly; the results are filtered
//! again afterwards.

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION};
use http_body_util::Full;

use crate::{Hit, Query, SearchError, Target};

pub(super) fn request(target: &Target, key: Option<&str>, query: &Query) -> Result<super::Request, SearchError> {
    let text = super::query_text(query);
    let path = super::with_params(&target.path, &[("q", text.as_str()), ("format", "json"), ("categories", "general")]);
    let mut req = http::Request::get(path)
        .header(ACCEPT, "application/json")
        .body(Full::new(Bytes::new()))
        .map_err(super::build_error)?;
    if let Some(key) = key {
        super::set_secret(&mut req, AUTHORIZATION, &format!("Bearer {key}"))?;
    }
    Ok(req)
}

pub(super) fn parse(body: &[u8]) -> Result<Vec<Hit>, SearchError> {
    super::content_results(body, "publishedDate")
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{header, target};
    use super::*;

    #[test]
    fn the_request_asks_for_json_general_results() {
        let q =
            Query { text: "zig allocator".into(), allowed_domains: vec!["ziglang.org".into()], ..Default::default() };
        let req = request(&target("https://search.example.org/search"), None, &q).unwrap();
        assert_eq!(*req.method(), http::Method::GET);
        assert_eq!(req.uri().to_string(), "/search?q=zig+allocator+site%3Aziglang.org&format=json&categories=general");
        assert!(req.headers().get("authorization").is_none());
    }

    #[test]
    fn a_key_is_sent_as_a_bearer_token() {
        let q = Query { text: "x".into(), ..Default::default() };
        let req = request(&target("http://127.0.0.1:8888/"), Some("s3cret"), &q).unwrap();
        assert_eq!(req.uri().to_string(), "/?q=x&format=json&categories=general");
        assert_eq!(header(&req, "authorization"), "Bearer s3cret");
    }

    #[test]
    fn results_become_hits_with_their_published_date() {
        let answer = br#"{
            "query": "zig allocator",
            "number_of_results": 0,
            "results": [
                {"url": "https://ziglang.org/documentation/master/#Memory", "title": "Documentation - The Zig Programming Language",
                 "content": "Zig has no default allocator...", "engine": "duckduckgo", "engines": ["duckduckgo", "brave"],
                 "score": 2.0, "category": "general", "publishedDate": null},
                {"url": "https://zig.news/allocators", "title": "Allocators in Zig", "content": "",
                 "publishedDate": "2024-05-01T00:00:00", "category": "general"},
                {"url": "", "title": "empty"}
            ],
            "answers": [], "corrections": [], "infoboxes": [], "suggestions": [], "unresponsive_engines": []
        }"#;
        let hits = parse(answer).unwrap();
        assert_eq!(hits.len(), 2);
        assert_eq!(hits[0].snippet, "Zig has no default allocator...");
        assert_eq!(hits[0].page_age, None);
        assert_eq!(hits[1].page_age.as_deref(), Some("2024-05-01T00:00:00"));
        assert_eq!(hits[1].snippet, "");
    }

    #[test]
    fn an_html_page_instead_of_json_is_a_bad_answer() {
        assert!(matches!(parse(b"<!DOCTYPE html><html></html>"), Err(SearchError::BadAnswer(_))));
        assert!(matches!(parse(br#"{"error": "x"}"#), Err(SearchError::BadAnswer(_))));
    }
}
