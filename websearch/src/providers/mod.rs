//! One module per provider, each a pure request builder and a pure answer
//! parser; the call itself, the status mapping and the shape of a hit are
//! shared here.

mod brave;
mod custom;
mod duckduckgo;
mod html;
mod searxng;
mod serper;
mod tavily;

use bytes::Bytes;
use ccag_outbound::client::{self, Answer, CallError, Overflow};
use http::header::{HeaderName, HeaderValue};
use http_body_util::Full;
use serde_json::Value;

use crate::{ConfigError, Hit, Policy, Provider, ProviderKind, Query, SearchError, Target, MAX_ANSWER_BYTES};

type Request = http::Request<Full<Bytes>>;

pub(crate) async fn search(
    policy: &Policy,
    target: &Target,
    provider: &Provider,
    query: &Query,
) -> Result<Vec<Hit>, SearchError> {
    let n = provider.results();
    let key = key(provider);
    match provider.kind {
        ProviderKind::DuckDuckGo => {
            let a = send(policy, target, duckduckgo::request(target, query)?).await?;
            // The HTML endpoint's way of saying "slow down": a 202 with a
            // challenge page instead of results.
            if a.status == 202 {
                return Err(SearchError::RateLimited);
            }
            check_status(a.status, false)?;
            Ok(duckduckgo::parse(&a.body))
        }
        ProviderKind::Tavily => {
            let a = send(policy, target, tavily::request(target, required(provider)?, query, n)?).await?;
            check_status(a.status, true)?;
            tavily::parse(&a.body)
        }
        ProviderKind::Serper => {
            let a = send(policy, target, serper::request(target, required(provider)?, query, n)?).await?;
            check_status(a.status, true)?;
            serper::parse(&a.body)
        }
        ProviderKind::Brave => {
            let a = send(policy, target, brave::request(target, required(provider)?, query, n)?).await?;
            check_status(a.status, true)?;
            brave::parse(&a.body)
        }
        ProviderKind::SearXng => {
            let a = send(policy, target, searxng::request(target, key, query)?).await?;
            // A 403 from SearXNG usually means the JSON format is not
            // enabled on the instance, not a refused key.
            check_status(a.status, false)?;
            searxng::parse(&a.body)
        }
        ProviderKind::Custom => {
            let a = send(policy, target, custom::request(target, key, query, n)?).await?;
            check_status(a.status, key.is_some())?;
            custom::parse(&a.body)
        }
    }
}

fn key(provider: &Provider) -> Option<&str> {
    provider.api_key.as_deref().map(str::trim).filter(|k| !k.is_empty())
}

fn required(provider: &Provider) -> Result<&str, SearchError> {
    key(provider).ok_or(SearchError::Config(ConfigError::KeyRequired(provider.kind)))
}

/// One exchange with `target`, at the path and query the request names.
async fn send(policy: &Policy, target: &Target, req: Request) -> Result<Answer, SearchError> {
    let path = req.uri().path_and_query().map_or_else(|| target.path.clone(), |p| p.as_str().to_owned());
    let target = Target { path, ..target.clone() };
    client::call(policy, &target, req, MAX_ANSWER_BYTES, Overflow::Fail).await.map_err(|e| match e {
        CallError::Outbound(o) => SearchError::Refused(o),
        CallError::TooLarge(n) => SearchError::BadAnswer(format!("larger than {n} bytes")),
        other => SearchError::Unreachable(other.to_string()),
    })
}

/// A non-2xx status as an error; `keyed`: 401 and 403 mean the key.
fn check_status(status: u16, keyed: bool) -> Result<(), SearchError> {
    match status {
        200..=299 => Ok(()),
        429 => Err(SearchError::RateLimited),
        401 | 403 if keyed => Err(SearchError::BadKey(status)),
        n => Err(SearchError::Status(n)),
    }
}

/// The text sent to providers that filter domains only through the query.
fn query_text(q: &Query) -> String {
    format!("{}{}", q.text.trim(), crate::domains::site_operators(&q.allowed_domains, &q.blocked_domains))
}

/// The location's country, upper case, when it is two letters.
fn country(q: &Query) -> Option<String> {
    let c = q.location.as_ref()?.country.as_deref()?.trim();
    (c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic())).then(|| c.to_ascii_uppercase())
}

/// `path` (which may already carry a query) with `params` appended.
fn with_params(path: &str, params: &[(&str, &str)]) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        form.append_pair(k, v);
    }
    let encoded = form.finish();
    let sep = match path.find('?') {
        None => "?",
        Some(i) if i + 1 == path.len() || path.ends_with('&') => "",
        Some(_) => "&",
    };
    format!("{path}{sep}{encoded}")
}

fn build_error(e: http::Error) -> SearchError {
    // http's message names what was malformed, never the value (a key).
    SearchError::Unreachable(format!("cannot build the request: {e}"))
}

/// A JSON POST to the target's path.
fn post_json(target: &Target, body: &Value) -> Result<Request, SearchError> {
    http::Request::post(target.path.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(build_error)
}

/// Sets a header holding a secret, kept out of debug output.
fn set_secret(req: &mut Request, name: HeaderName, value: &str) -> Result<(), SearchError> {
    let mut v = HeaderValue::from_str(value)
        .map_err(|_| SearchError::Unreachable("the API key is not a valid header value".into()))?;
    v.set_sensitive(true);
    req.headers_mut().insert(name, v);
    Ok(())
}

fn bad(reason: &str) -> SearchError {
    SearchError::BadAnswer(reason.to_owned())
}

fn json(body: &[u8]) -> Result<Value, SearchError> {
    serde_json::from_slice(body).map_err(|_| bad("not JSON"))
}

/// The first of `names` that `item` holds as a non-empty string.
fn opt<'a>(item: &'a Value, names: &[&str]) -> Option<&'a str> {
    names.iter().filter_map(|n| item.get(*n)?.as_str()).map(str::trim).find(|s| !s.is_empty())
}

fn field<'a>(item: &'a Value, names: &[&str]) -> &'a str {
    opt(item, names).unwrap_or("")
}

/// A hit, or None when the URL is not an absolute http(s) one.
/// The `results` array of a JSON answer, each item `url`, `title`,
/// `content` and a date under `date` (Tavily's and SearXNG's shape).
fn content_results(body: &[u8], date: &str) -> Result<Vec<Hit>, SearchError> {
    let v = json(body)?;
    let results = v.get("results").and_then(Value::as_array).ok_or_else(|| bad("no results array"))?;
    Ok(results
        .iter()
        .filter_map(|r| hit(field(r, &["url"]), field(r, &["title"]), field(r, &["content"]), opt(r, &[date])))
        .collect())
}

fn hit(url: &str, title: &str, snippet: &str, page_age: Option<&str>) -> Option<Hit> {
    let url = url.trim();
    let rest = strip_prefix_ignoring_case(url, "https://").or_else(|| strip_prefix_ignoring_case(url, "http://"))?;
    if rest.is_empty() || url.chars().any(char::is_whitespace) {
        return None;
    }
    let title = html::collapse(title);
    Some(Hit {
        url: url.to_owned(),
        title: if title.is_empty() { url.to_owned() } else { title },
        snippet: html::collapse(snippet),
        page_age: page_age.map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned),
    })
}

fn strip_prefix_ignoring_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod test_support {
    use http_body_util::BodyExt;

    pub fn body(req: super::Request) -> String {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let bytes = rt.block_on(req.into_body().collect()).unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    pub fn body_json(req: super::Request) -> serde_json::Value {
        serde_json::from_str(&body(req)).unwrap()
    }

    pub fn target(url: &str) -> crate::Target {
        ccag_outbound::webhook_target(url).unwrap()
    }

    pub fn header<'a>(req: &'a super::Request, name: &str) -> &'a str {
        req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_errors_and_only_keyed_providers_blame_the_key() {
        assert!(check_status(200, true).is_ok());
        assert!(matches!(check_status(429, false), Err(SearchError::RateLimited)));
        assert!(matches!(check_status(401, true), Err(SearchError::BadKey(401))));
        assert!(matches!(check_status(403, true), Err(SearchError::BadKey(403))));
        assert!(matches!(check_status(403, false), Err(SearchError::Status(403))));
        assert!(matches!(check_status(302, true), Err(SearchError::Status(302))));
        assert!(matches!(check_status(500, true), Err(SearchError::Status(500))));
    }

    #[test]
    fn parameters_are_appended_after_an_existing_query() {
        let p = [("q", "rust & go"), ("n", "5")];
        assert_eq!(with_params("/search", &p), "/search?q=rust+%26+go&n=5");
        assert_eq!(with_params("/search?x=1", &p), "/search?x=1&q=rust+%26+go&n=5");
        assert_eq!(with_params("/search?", &p), "/search?q=rust+%26+go&n=5");
        assert_eq!(with_params("/s?x=1&", &p), "/s?x=1&q=rust+%26+go&n=5");
    }

    #[test]
    fn hits_need_an_absolute_http_url_and_fall_back_to_it_for_a_title() {
        assert!(hit("", "t", "s", None).is_none());
        assert!(hit("ftp://x.example/", "t", "s", None).is_none());
        assert!(hit("/relative", "t", "s", None).is_none());
        assert!(hit("https://", "t", "s", None).is_none());
        let h = hit(" HTTPS://x.example/a ", "  ", " a \n b ", Some(" ")).unwrap();
        assert_eq!(
            (h.url.as_str(), h.title.as_str(), h.snippet.as_str()),
            ("HTTPS://x.example/a", "HTTPS://x.example/a", "a b")
        );
        assert_eq!(h.page_age, None);
    }

    #[test]
    fn the_country_is_used_only_when_it_is_two_letters() {
        let mut q = Query::default();
        assert_eq!(country(&q), None);
        q.location = Some(crate::Location { country: Some("gb".into()), ..Default::default() });
        assert_eq!(country(&q).as_deref(), Some("GB"));
        q.location = Some(crate::Location { country: Some("GBR".into()), ..Default::default() });
        assert_eq!(country(&q), None);
    }
}
