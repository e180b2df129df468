//! DuckDuckGo's HTML endpoint: no key, a form POST, a results page to
//! pick apart. It serves browsers, so the request looks like one.

use bytes::Bytes;
use http::header::{ACCEPT, ACCEPT_LANGUAGE, CONTENT_TYPE, REFERER, USER_AGENT};
use http_body_util::Full;

use super::html;
use crate::{Hit, Query, SearchError, Target};

const BROWSER: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";

/// Elements that never have content, so never wait for a closing tag.
const VOID: [&str; 14] =
    ["area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"];

pub(super) fn request(target: &Target, query: &Query) -> Result<super::Request, SearchError> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("q", &super::query_text(query));
    if let Some(cc) = super::country(query) {
        // DuckDuckGo's region codes are country-language; its code for
        // the United Kingdom is "uk", not "gb".
        let region = if cc == "GB" { "uk".to_owned() } else { cc.to_ascii_lowercase() };
        form.append_pair("kl", &format!("{region}-en"));
    }
    http::Request::post(target.path.as_str())
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(USER_AGENT, BROWSER)
        .header(ACCEPT, "text/html")
        .header(ACCEPT_LANGUAGE, "en-US,en;q=0.9")
        .header(REFERER, "https://html.duckduckgo.com/")
        .body(Full::new(Bytes::from(form.finish())))
        .map_err(super::build_error)
}

struct Pending {
    /// None for an ad or a link that leads nowhere usable.
    url: Option<String>,
    title: String,
    snippet: String,
}

/// The organic results of a results page; a page without any (no
/// results, or a layout not recognised) gives none.
pub(super) fn parse(body: &[u8]) -> Vec<Hit> {
    let doc = String::from_utf8_lossy(body);
    let doc = doc.as_ref();
    let mut hits = Vec::new();
    let mut current: Option<Pending> = None;
    // Open elements, to know when an ad's container ends; `ad_depth` is
    // the stack length while inside one.
    let mut open: Vec<String> = Vec::new();
    let mut ad_depth: Option<usize> = None;
    let mut pos = 0;
    while let Some(tag) = html::next_tag(doc, pos) {
        pos = tag.end;
        if tag.name.starts_with('!') {
            continue;
        }
        if tag.closing {
            if let Some(i) = open.iter().rposition(|n| *n == tag.name) {
                open.truncate(i);
                if ad_depth.is_some_and(|d| open.len() < d) {
                    ad_depth = None;
                }
            }
            continue;
        }
        let ad_here = tag.has_class("result--ad");
        // A new result container ends any ad, even if a stray unclosed
        // tag kept the stack from seeing the ad's end.
        if !ad_here && tag.has_class("result") {
            ad_depth = None;
        }
        if tag.name == "a" && tag.has_class("result__a") {
            flush(&mut hits, current.take());
            let (inner, end) = inner(doc, tag.end, "a");
            pos = end;
            let href = tag.attr("href").unwrap_or_default();
            let ad = ad_here || ad_depth.is_some() || is_ad(&href);
            current = Some(Pending {
                url: if ad { None } else { target_url(&href) },
                title: html::text(inner),
                snippet: String::new(),
            });
            continue;
        }
        if tag.has_class("result__snippet") {
            let (inner, end) = inner(doc, tag.end, &tag.name);
            pos = end;
            if let Some(p) = current.as_mut().filter(|p| p.snippet.is_empty()) {
                p.snippet = html::text(inner);
            }
            continue;
        }
        if !tag.self_closing && !VOID.contains(&tag.name.as_str()) {
            open.push(tag.name);
            if ad_here && ad_depth.is_none() {
                ad_depth = Some(open.len());
            }
        }
    }
    flush(&mut hits, current);
    hits
}

fn flush(hits: &mut Vec<Hit>, pending: Option<Pending>) {
    let Some(Pending { url: Some(url), title, snippet }) = pending else {
        return;
    };
    hits.extend(super::hit(&url, &title, &snippet, None));
}

/// The content of the element whose start tag ends at `from`, and the
/// offset past its closing tag (or past what ends it implicitly).
fn inner<'a>(doc: &'a str, from: usize, name: &str) -> (&'a str, usize) {
    let mut depth = 0usize;
    let mut pos = from;
    while let Some(t) = html::next_tag(doc, pos) {
        if t.name == name {
            if t.closing {
                if depth == 0 {
                    return (&doc[from..t.start], t.end);
                }
                depth -= 1;
            } else if name == "a" {
                // Links do not nest: a new one ends an unclosed one.
                return (&doc[from..t.start], t.start);
            } else if !t.self_closing {
                depth += 1;
            }
        }
        pos = t.end;
    }
    (&doc[from..], doc.len())
}

fn is_ad(href: &str) -> bool {
    href.contains("duckduckgo.com/y.js") || href.contains("ad_provider")
}

/// Where a result link leads: the `uddg` target of a DuckDuckGo redirect,
/// or the link itself when it is a plain http(s) one.
fn target_url(href: &str) -> Option<String> {
    let href = href.trim();
    let abs = if let Some(rest) = href.strip_prefix("//") {
        format!("https://{rest}")
    } else if href.starts_with('/') {
        format!("https://duckduckgo.com{href}")
    } else {
        href.to_owned()
    };
    if let Some(query) = redirect_query(&abs) {
        return form_urlencoded::parse(query.as_bytes()).find(|(k, _)| *k == "uddg").map(|(_, v)| v.into_owned());
    }
    let lower = abs.to_ascii_lowercase();
    (lower.starts_with("http://") || lower.starts_with("https://")).then_some(abs)
}

/// The query string of a redirect link (`https://duckduckgo.com/l/?uddg=…`).
fn redirect_query(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    let (host, path) = rest.split_at(rest.find('/')?);
    let host = host.to_ascii_lowercase();
    if host != "duckduckgo.com" && !host.ends_with(".duckduckgo.com") {
        return None;
    }
    let query = path.strip_prefix("/l/").or_else(|| path.strip_prefix("/l"))?.strip_prefix('?')?;
    Some(query.split('#').next().unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{body, header, target};
    use super::*;

    const PAGE: &str = r##"<!DOCTYPE html><html><body><div class="serp__results"><div id="links" class="results">
<div class="result results_links results_links_deep result--ad result--ad--small">
  <div class="links_main links_deep result__body">
    <h2 class="result__title"><a rel="nofollow" class="result__a" href="https://duckduckgo.com/y.js?ad_domain=shop.example&amp;ad_provider=bingv7aa&amp;u3=x">Buy <b>Rust</b> Now</a></h2>
    <a class="result__snippet" href="https://duckduckgo.com/y.js?ad_domain=shop.example">Ad text.</a>
  </div>
</div>
<div class="result results_links results_links_deep web-result ">
  <div class="links_main links_deep result__body">
    <h2 class="result__title">
      <a rel="nofollow" class="result__a" href="//duckduckgo.com/l/?uddg=https%3A%2F%2Fwww.rust%2Dlang.org%2Flearn%3Fa%3D1%26b%3D2&amp;rut=5f1e">Learn <b>Rust</b> &amp; Cargo</a>
    </h2>
    <div class="result__extras"><div class="result__extras__url"><img class="result__icon__img" src="//external-content.duckduckgo.com/ip3/www.rust-lang.org.ico" /><a class="result__url" href="//duckduckgo.com/l/?uddg=x">www.rust-lang.org/learn</a></div></div>
    <a class="result__snippet" href="//duckduckgo.com/l/?uddg=x">Get started with <b>Rust</b>&#x27;s   book &#8212; free.</a>
    <div class="clear"></div>
  </div>
</div>
<div class='web-result result'>
  <div class="result__body"><h2><a href='https://doc.rust-lang.org/std/' class='result__a' rel=nofollow>The Rust Standard Library</a></h2>
  <div class="result__snippet">The <b>standard</b> library &lt;std&gt;.</div></div>
</div>
<div class="result"><h2><a class="result__a" href="javascript:alert(1)">Not a link</a></h2></div>
</div></div></body></html>"##;

    #[test]
    fn organic_results_are_read_in_order_and_ads_are_skipped() {
        let hits = parse(PAGE.as_bytes());
        let urls: Vec<&str> = hits.iter().map(|h| h.url.as_str()).collect();
        assert_eq!(urls, ["https://www.rust-lang.org/learn?a=1&b=2", "https://doc.rust-lang.org/std/"]);
    }

    #[test]
    fn a_redirect_href_is_decoded_to_the_target_url() {
        let href = "//duckduckgo.com/l/?uddg=https%3A%2F%2Fexample.com%2Fa%20b%3Fx%3D1&rut=abc";
        assert_eq!(target_url(href).as_deref(), Some("https://example.com/a b?x=1"));
        assert_eq!(target_url("https://example.com/x").as_deref(), Some("https://example.com/x"));
        assert_eq!(target_url("/l/?uddg=https%3A%2F%2Fe.org%2F").as_deref(), Some("https://e.org/"));
        assert_eq!(target_url("javascript:void(0)"), None);
    }

    #[test]
    fn titles_and_snippets_lose_their_markup_and_entities() {
        let hits = parse(PAGE.as_bytes());
        assert_eq!(hits[0].title, "Learn Rust & Cargo");
        assert_eq!(hits[0].snippet, "Get started with Rust's book \u{2014} free.");
        assert_eq!(hits[1].snippet, "The standard library <std>.");
        assert_eq!(hits[1].page_age, None);
    }

    #[test]
    fn a_page_without_results_gives_none() {
        let page = r#"<html><body><div class="no-results">No results.</div></body></html>"#;
        assert!(parse(page.as_bytes()).is_empty());
        assert!(parse(b"").is_empty());
    }

    #[test]
    fn an_ad_link_outside_an_ad_container_is_still_skipped() {
        let page =
            r#"<div class="result"><a class="result__a" href="https://duckduckgo.com/y.js?ad_provider=x">Ad</a></div>"#;
        assert!(parse(page.as_bytes()).is_empty());
    }

    #[test]
    fn the_request_is_a_browser_like_form_post_with_operators_and_region() {
        let q = Query {
            text: "rust async".into(),
            allowed_domains: vec!["docs.rs".into()],
            blocked_domains: vec!["spam.example".into()],
            location: Some(crate::Location { country: Some("GB".into()), ..Default::default() }),
        };
        let req = request(&target("https://html.duckduckgo.com/html/"), &q).unwrap();
        assert_eq!(*req.method(), http::Method::POST);
        assert_eq!(req.uri().path(), "/html/");
        assert_eq!(header(&req, "content-type"), "application/x-www-form-urlencoded");
        assert!(header(&req, "user-agent").starts_with("Mozilla/5.0"));
        assert_eq!(header(&req, "referer"), "https://html.duckduckgo.com/");
        assert_eq!(body(req), "q=rust+async+site%3Adocs.rs+-site%3Aspam.example&kl=uk-en");
    }

    #[test]
    fn without_a_location_no_region_is_sent() {
        let q = Query { text: "x".into(), ..Default::default() };
        assert_eq!(body(request(&target("https://html.duckduckgo.com/html/"), &q).unwrap()), "q=x");
    }
}
