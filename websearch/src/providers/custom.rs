//! A search service of the operator's own, called with this contract.
//!
//! Request: `POST` to the configured URL, `Content-Type: application/json`,
//! with `Authorization: Bearer <key>` when a key is set:
//!
//! ```json
//! {
//!   "query": "what the model searched for",
//!   "count": 5,
//!   "allowed_domains": ["example.com", "docs.example.org/api"],
//!   "blocked_domains": [],
//!   "user_location": {"city": "Berlin", "region": null, "country": "DE", "timezone": "Europe/Berlin"}
//! }
//! ```
//!
//! `user_location` is `null` when the tool sets none. The domain lists are
//! passed as the tool gives them (bare domains, optionally with a path);
//! the gateway filters the results by them again, so honouring them is
//! an optimisation, not a duty.
//!
//! Answer: `200` with either `{"results": [...]}` or a bare array, each
//! item `{"url" (or "link"), "title", "snippet" (or "content" or
//! "description"), "page_age"}`, all strings, only `url` required; items
//! without an absolute http(s) URL are skipped, and the first `count`
//! of the rest are used. `429` means rate-limited; `401` or `403`, when a
//! key is set, a refused key. The body of an error is never shown.

use http::header::AUTHORIZATION;
use serde_json::{json, Value};

use crate::{Hit, Query, SearchError, Target};

pub(super) fn request(
    target: &Target,
    key: Option<&str>,
    query: &Query,
    n: usize,
) -> Result<super::Request, SearchError> {
    let location = match &query.location {
        Some(l) => json!({"city": l.city, "region": l.region, "country": l.country, "timezone": l.timezone}),
        None => Value::Null,
    };
    let body = json!({
        "query": query.text.trim(),
        "count": n,
        "allowed_domains": query.allowed_domains,
        "blocked_domains": query.blocked_domains,
        "user_location": location,
    });
    let mut req = super::post_json(target, &body)?;
    if let Some(key) = key {
        super::set_secret(&mut req, AUTHORIZATION, &format!("Bearer {key}"))?;
    }
    Ok(req)
}

pub(super) fn parse(body: &[u8]) -> Result<Vec<Hit>, SearchError> {
    let v = super::json(body)?;
    let items = match &v {
        Value::Array(items) => items,
        other => other.get("results").and_then(Value::as_array).ok_or_else(|| super::bad("no results array"))?,
    };
    Ok(items
        .iter()
        .filter_map(|r| {
            super::hit(
                super::field(r, &["url", "link"]),
                super::field(r, &["title"]),
                super::field(r, &["snippet", "content", "description"]),
                super::opt(r, &["page_age"]),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{body_json, header, target};
    use super::*;
    use crate::Location;

    #[test]
    fn the_request_follows_the_contract() {
        let q = Query {
            text: "gateway search".into(),
            allowed_domains: vec!["example.com/docs".into()],
            blocked_domains: vec!["bad.example".into()],
            location: Some(Location {
                city: Some("Berlin".into()),
                country: Some("DE".into()),
                timezone: Some("Europe/Berlin".into()),
                region: None,
            }),
        };
        let req = request(&target("https://search.internal.example/v1/search?tenant=a"), Some("k1"), &q, 8).unwrap();
        assert_eq!(*req.method(), http::Method::POST);
        assert_eq!(req.uri().to_string(), "/v1/search?tenant=a");
        assert_eq!(header(&req, "authorization"), "Bearer k1");
        assert_eq!(
            body_json(req),
            json!({
                "query": "gateway search",
                "count": 8,
                "allowed_domains": ["example.com/docs"],
                "blocked_domains": ["bad.example"],
                "user_location": {"city": "Berlin", "region": null, "country": "DE", "timezone": "Europe/Berlin"}
            })
        );
    }

    #[test]
    fn without_a_key_or_location_neither_is_sent() {
        let q = Query { text: "x".into(), ..Default::default() };
        let req = request(&target("https://search.internal.example/"), None, &q, 5).unwrap();
        assert!(req.headers().get("authorization").is_none());
        assert_eq!(body_json(req)["user_location"], Value::Null);
    }

    #[test]
    fn a_results_object_is_read_with_its_alternative_field_names() {
        let answer = br#"{"results": [
            {"url": "https://a.example/1", "title": "One", "snippet": "first", "page_age": "3 days ago"},
            {"link": "https://b.example/2", "title": "Two", "content": "second"},
            {"url": "https://c.example/3", "description": "third"},
            {"title": "no url"},
            "not an object"
        ]}"#;
        let hits = parse(answer).unwrap();
        let got: Vec<(&str, &str, &str)> =
            hits.iter().map(|h| (h.url.as_str(), h.title.as_str(), h.snippet.as_str())).collect();
        assert_eq!(
            got,
            [
                ("https://a.example/1", "One", "first"),
                ("https://b.example/2", "Two", "second"),
                ("https://c.example/3", "https://c.example/3", "third"),
            ]
        );
        assert_eq!(hits[0].page_age.as_deref(), Some("3 days ago"));
    }

    #[test]
    fn a_bare_array_is_accepted() {
        let hits = parse(br#"[{"url": "https://a.example/", "title": "A"}]"#).unwrap();
        assert_eq!(hits.len(), 1);
    }

    #[test]
    fn anything_else_is_a_bad_answer() {
        assert!(matches!(parse(br#"{"items": []}"#), Err(SearchError::BadAnswer(_))));
        assert!(matches!(parse(b"42"), Err(SearchError::BadAnswer(_))));
        assert!(matches!(parse(b""), Err(SearchError::BadAnswer(_))));
    }
}
