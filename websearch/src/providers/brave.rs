//! Brave Search: a GET with an `X-Subscription-Token`; domains go into
//! the query as `site:` operators. Descriptions carry `<strong>` marks.

use bytes::Bytes;
use http::header::{HeaderName, ACCEPT};
use http_body_util::Full;
use serde_json::Value;

use super::html;
use crate::{Hit, Query, SearchError, Target};

pub(super) fn request(target: &Target, key: &str, query: &Query, n: usize) -> Result<super::Request, SearchError> {
    let text = super::query_text(query);
    let count = n.to_string();
    let cc = super::country(query);
    let mut params = vec![("q", text.as_str()), ("count", count.as_str())];
    if let Some(cc) = &cc {
        params.push(("country", cc.as_str()));
    }
    let mut req = http::Request::get(super::with_params(&target.path, &params))
        .header(ACCEPT, "application/json")
        .body(Full::new(Bytes::new()))
        .map_err(super::build_error)?;
    super::set_secret(&mut req, HeaderName::from_static("x-subscription-token"), key)?;
    Ok(req)
}

/// An answer without web results (only news, say) has no `web` at all.
pub(super) fn parse(body: &[u8]) -> Result<Vec<Hit>, SearchError> {
    let v = super::json(body)?;
    if !v.is_object() {
        return Err(super::bad("not a JSON object"));
    }
    let Some(results) = v.get("web").and_then(|w| w.get("results")).and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    Ok(results
        .iter()
        .filter_map(|r| {
            super::hit(
                super::field(r, &["url"]),
                &html::decode_entities(super::field(r, &["title"])),
                &html::text(super::field(r, &["description"])),
                super::opt(r, &["age", "page_age"]),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{body, header, target};
    use super::*;

    #[test]
    fn the_request_is_a_get_with_the_query_count_and_country_in_the_url() {
        let q = Query {
            text: "serde flatten".into(),
            blocked_domains: vec!["w3schools.com".into()],
            location: Some(crate::Location { country: Some("us".into()), ..Default::default() }),
            ..Default::default()
        };
        let req = request(&target("https://api.search.brave.com/res/v1/web/search"), "BSA-key", &q, 5).unwrap();
        assert_eq!(*req.method(), http::Method::GET);
        assert_eq!(
            req.uri().to_string(),
            "/res/v1/web/search?q=serde+flatten+-site%3Aw3schools.com&count=5&country=US"
        );
        assert_eq!(header(&req, "x-subscription-token"), "BSA-key");
        assert_eq!(header(&req, "accept"), "application/json");
        assert!(body(req).is_empty());
    }

    #[test]
    fn an_existing_query_string_on_the_endpoint_is_kept() {
        let q = Query { text: "x".into(), ..Default::default() };
        let req = request(&target("https://brave.example/search?safesearch=strict"), "k", &q, 3).unwrap();
        assert_eq!(req.uri().to_string(), "/search?safesearch=strict&q=x&count=3");
    }

    #[test]
    fn web_results_lose_their_markup_and_keep_their_age() {
        let answer = br#"{
            "type": "search",
            "query": {"original": "serde flatten", "more_results_available": true},
            "mixed": {"type": "mixed", "main": [{"type": "web", "index": 0, "all": false}]},
            "web": {"type": "search", "family_friendly": true, "results": [
                {"title": "Struct flattening &middot; Serde", "url": "https://serde.rs/attr-flatten.html",
                 "description": "The <strong>flatten</strong> attribute inlines keys from a field into the containing struct.",
                 "page_age": "2023-08-15T00:00:00", "age": "August 15, 2023", "language": "en"},
                {"title": "serde - Rust", "url": "https://docs.rs/serde/latest/serde/",
                 "description": "Serde is a framework for <strong>ser</strong>ializing &amp; <strong>de</strong>serializing.",
                 "page_age": "2024-01-02T10:00:00"},
                {"title": "No URL", "description": "dropped"}
            ]}
        }"#;
        let hits = parse(answer).unwrap();
        assert_eq!(hits.len(), 2);
        assert_eq!(hits[0].title, "Struct flattening \u{b7} Serde");
        assert_eq!(hits[0].snippet, "The flatten attribute inlines keys from a field into the containing struct.");
        assert_eq!(hits[0].page_age.as_deref(), Some("August 15, 2023"));
        assert_eq!(hits[1].snippet, "Serde is a framework for serializing & deserializing.");
        assert_eq!(hits[1].page_age.as_deref(), Some("2024-01-02T10:00:00"));
    }

    #[test]
    fn an_answer_without_web_results_is_empty() {
        assert!(parse(br#"{"type": "search", "query": {"original": "x"}}"#).unwrap().is_empty());
        assert!(matches!(parse(b"\"x\""), Err(SearchError::BadAnswer(_))));
    }
}
