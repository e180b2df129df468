//! Serper (Google results): a JSON POST with an `X-API-KEY`; domains go
//! into the query as `site:` operators.

use http::header::HeaderName;
use serde_json::{json, Value};

use crate::{Hit, Query, SearchError, Target};

pub(super) fn request(target: &Target, key: &str, query: &Query, n: usize) -> Result<super::Request, SearchError> {
    let mut body = json!({ "q": super::query_text(query), "num": n });
    if let Some(cc) = super::country(query) {
        body["gl"] = json!(cc.to_ascii_lowercase());
    }
    let mut req = super::post_json(target, &body)?;
    super::set_secret(&mut req, HeaderName::from_static("x-api-key"), key)?;
    Ok(req)
}

/// A search with no organic results may leave the list out.
pub(super) fn parse(body: &[u8]) -> Result<Vec<Hit>, SearchError> {
    let v = super::json(body)?;
    if !v.is_object() {
        return Err(super::bad("not a JSON object"));
    }
    let Some(organic) = v.get("organic").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    Ok(organic
        .iter()
        .filter_map(|r| {
            super::hit(
                super::field(r, &["link"]),
                super::field(r, &["title"]),
                super::field(r, &["snippet"]),
                super::opt(r, &["date"]),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{body_json, header, target};
    use super::*;

    #[test]
    fn the_request_carries_the_key_operators_count_and_country() {
        let q = Query {
            text: "tokio select".into(),
            allowed_domains: vec!["docs.rs".into(), "tokio.rs".into()],
            blocked_domains: vec![],
            location: Some(crate::Location {
                country: Some("DE".into()),
                city: Some("Berlin".into()),
                ..Default::default()
            }),
        };
        let req = request(&target("https://google.serper.dev/search"), "serper-key", &q, 10).unwrap();
        assert_eq!(*req.method(), http::Method::POST);
        assert_eq!(header(&req, "x-api-key"), "serper-key");
        assert!(req.headers()["x-api-key"].is_sensitive());
        let b = body_json(req);
        assert_eq!(b, json!({"q": "tokio select (site:docs.rs OR site:tokio.rs)", "num": 10, "gl": "de"}));
    }

    #[test]
    fn organic_results_become_hits_and_other_blocks_are_ignored() {
        let answer = br#"{
            "searchParameters": {"q": "tokio select", "gl": "us", "type": "search", "engine": "google"},
            "knowledgeGraph": {"title": "Tokio", "website": "https://tokio.rs/"},
            "organic": [
                {"title": "select in tokio - Rust", "link": "https://docs.rs/tokio/latest/tokio/macro.select.html",
                 "snippet": "Waits on multiple concurrent branches, returning when the first branch completes.", "position": 1},
                {"title": "Select | Tokio", "link": "https://tokio.rs/tokio/tutorial/select",
                 "snippet": "So far, when we wanted to add concurrency...", "date": "Mar 3, 2024", "position": 2,
                 "sitelinks": [{"title": "Spawning", "link": "https://tokio.rs/tokio/tutorial/spawning"}]},
                {"title": "Broken", "link": "mailto:someone@example.com", "position": 3}
            ],
            "peopleAlsoAsk": [{"question": "What is tokio select?", "link": "https://example.com/q"}],
            "credits": 1
        }"#;
        let hits = parse(answer).unwrap();
        assert_eq!(hits.len(), 2);
        assert_eq!(hits[0].url, "https://docs.rs/tokio/latest/tokio/macro.select.html");
        assert_eq!(hits[1].title, "Select | Tokio");
        assert_eq!(hits[1].page_age.as_deref(), Some("Mar 3, 2024"));
    }

    #[test]
    fn an_answer_without_organic_results_is_empty_but_a_non_object_is_bad() {
        assert!(parse(br#"{"searchParameters": {"q": "zzzz"}, "credits": 1}"#).unwrap().is_empty());
        assert!(matches!(parse(b"[]"), Err(SearchError::BadAnswer(_))));
        assert!(matches!(parse(b"not json"), Err(SearchError::BadAnswer(_))));
    }
}
