//! The search tool's `allowed_domains` / `blocked_domains`: bare domains,
//! optionally with a path (`example.com`, `docs.example.com/api`). A
//! domain covers its subdomains; a path covers what starts with it, and
//! may hold one `*` standing for anything.

/// Whether `d` is a bare domain with an optional path: no scheme, no
/// spaces, no port, no query.
pub fn valid_domain(d: &str) -> bool {
    if d.is_empty() || d.contains("://") || d.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    if d.contains(['?', '#']) || d.matches('*').count() > 1 {
        return false;
    }
    let (host, _path) = d.split_at(d.find('/').unwrap_or(d.len()));
    // Labels of letters, digits, '-' and '_' (some real hosts have one);
    // anything else in the host ('@', ':', '*') is a URL, not a domain.
    !host.is_empty()
        && host.split('.').all(|l| !l.is_empty() && l.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_'))
}

/// Whether `url`'s host is `domain`'s host or a subdomain of it, and its
/// path starts with `domain`'s path when it has one.
pub fn domain_matches(url: &str, domain: &str) -> bool {
    let Some((host, path)) = url_host_path(url) else {
        return false;
    };
    let (dhost, dpath) = split_domain(domain);
    if dhost.is_empty() {
        return false;
    }
    let host_ok = host == dhost
        || (host.len() > dhost.len()
            && host.ends_with(dhost.as_str())
            && host.as_bytes()[host.len() - dhost.len() - 1] == b'.');
    host_ok && path_matches(path, dpath)
}

/// Whether a result at `url` may be shown.
pub(crate) fn admitted(url: &str, allowed: &[String], blocked: &[String]) -> bool {
    (allowed.is_empty() || allowed.iter().any(|d| domain_matches(url, d)))
        && !blocked.iter().any(|d| domain_matches(url, d))
}

/// A query suffix restricting results the way the lists do, for
/// providers with no filter of their own. `site:` takes a host only: an
/// allowed path widens to its host (the results are filtered again
/// afterwards), while a blocked path is left out, since blocking its
/// whole host would drop results the list allows.
pub(crate) fn site_operators(allowed: &[String], blocked: &[String]) -> String {
    let mut out = String::new();
    let allow = hosts(allowed);
    match allow.as_slice() {
        [] => {}
        [one] => {
            out.push_str(" site:");
            out.push_str(one);
        }
        many => {
            let sites: Vec<String> = many.iter().map(|h| format!("site:{h}")).collect();
            out.push_str(" (");
            out.push_str(&sites.join(" OR "));
            out.push(')');
        }
    }
    for h in whole_hosts(blocked) {
        out.push_str(" -site:");
        out.push_str(&h);
    }
    out
}

/// The distinct hosts of `domains`, lower case, paths dropped.
pub(crate) fn hosts(domains: &[String]) -> Vec<String> {
    distinct(domains.iter().map(|d| split_domain(d).0))
}

/// The distinct hosts of those `domains` that name a whole host (no path).
pub(crate) fn whole_hosts(domains: &[String]) -> Vec<String> {
    distinct(domains.iter().map(|d| split_domain(d)).filter(|(_, p)| p.is_empty() || *p == "/").map(|(h, _)| h))
}

fn distinct(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for h in items {
        if !h.is_empty() && !out.contains(&h) {
            out.push(h);
        }
    }
    out
}

/// A domain's host (lower case, no trailing dot) and its path ("" if none).
fn split_domain(d: &str) -> (String, &str) {
    let d = d.trim();
    // Lenient on a scheme here: validation refuses one, matching need not.
    let d = d.split_once("://").map_or(d, |(_, rest)| rest);
    let (host, path) = d.split_at(d.find('/').unwrap_or(d.len()));
    (host.trim_end_matches('.').to_lowercase(), path)
}

/// An absolute URL's host (lower case, no trailing dot, brackets kept on
/// IPv6) and path ("/" when it has none).
fn url_host_path(url: &str) -> Option<(String, &str)> {
    let (scheme, rest) = url.trim().split_once("://")?;
    if scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) {
        return None;
    }
    let (authority, after) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if hostport.starts_with('[') {
        &hostport[..hostport.find(']')? + 1]
    } else {
        hostport.split(':').next().unwrap_or("")
    };
    let host = host.trim_end_matches('.').to_lowercase();
    if host.is_empty() {
        return None;
    }
    let path = &after[..after.find(['?', '#']).unwrap_or(after.len())];
    Some((host, if path.is_empty() { "/" } else { path }))
}

fn path_matches(path: &str, pattern: &str) -> bool {
    match pattern.split_once('*') {
        None => path.starts_with(pattern),
        Some((prefix, suffix)) => path.starts_with(prefix) && path[prefix.len()..].contains(suffix),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn bare_domains_with_or_without_a_path_are_valid() {
        for d in ["example.com", "docs.example.com/api", "EXAMPLE.com", "localhost", "my_host.example.org/a/*/b"] {
            assert!(valid_domain(d), "{d}");
        }
    }

    #[test]
    fn schemes_spaces_ports_queries_and_empty_labels_are_invalid() {
        for d in [
            "",
            "https://example.com",
            "example .com",
            " example.com",
            "example.com:8080",
            "user@example.com",
            "*.example.com",
            "example..com",
            ".example.com",
            "/docs",
            "example.com/a?b=1",
            "example.com/*/x/*",
        ] {
            assert!(!valid_domain(d), "{d:?}");
        }
    }

    #[test]
    fn a_domain_covers_itself_and_its_subdomains_only() {
        assert!(domain_matches("https://example.com/x", "example.com"));
        assert!(domain_matches("https://docs.Example.COM/x", "example.com"));
        assert!(domain_matches("http://a.b.example.com", "EXAMPLE.com"));
        assert!(!domain_matches("https://notexample.com/", "example.com"));
        assert!(!domain_matches("https://example.com.evil.net/", "example.com"));
        assert!(!domain_matches("https://example.com/", "docs.example.com"));
    }

    #[test]
    fn www_is_just_another_subdomain() {
        assert!(domain_matches("https://www.example.com/", "example.com"));
        assert!(!domain_matches("https://example.com/", "www.example.com"));
    }

    #[test]
    fn userinfo_port_query_and_fragment_do_not_confuse_the_host() {
        assert!(domain_matches("https://user:pw@example.com:8443/a?q=1#f", "example.com"));
        assert!(!domain_matches("https://example.com@evil.net/", "example.com"));
        assert!(domain_matches("https://example.com.:443", "example.com"));
        assert!(domain_matches("https://[::1]:8080/x", "[::1]"));
    }

    #[test]
    fn a_domain_path_must_prefix_the_url_path() {
        assert!(domain_matches("https://example.com/docs/intro", "example.com/docs"));
        assert!(domain_matches("https://api.example.com/docs?x=1", "example.com/docs"));
        assert!(!domain_matches("https://example.com/blog/docs", "example.com/docs"));
        assert!(!domain_matches("https://example.com?docs", "example.com/docs"));
        assert!(domain_matches("https://example.com", "example.com/"));
    }

    #[test]
    fn a_wildcard_in_the_path_stands_for_anything() {
        assert!(domain_matches("https://example.com/en/articles/1", "example.com/*/articles"));
        assert!(!domain_matches("https://example.com/en/news/1", "example.com/*/articles"));
    }

    #[test]
    fn urls_that_are_not_absolute_match_nothing() {
        assert!(!domain_matches("example.com/x", "example.com"));
        assert!(!domain_matches("//example.com/x", "example.com"));
        assert!(!domain_matches("https:///x", "example.com"));
        assert!(!domain_matches("", "example.com"));
    }

    #[test]
    fn admission_needs_an_allowed_match_and_no_blocked_one() {
        let allowed = list(&["example.com", "rust-lang.org/learn"]);
        let blocked = list(&["ads.example.com"]);
        assert!(admitted("https://www.example.com/", &allowed, &blocked));
        assert!(admitted("https://rust-lang.org/learn/get-started", &allowed, &blocked));
        assert!(!admitted("https://rust-lang.org/tools", &allowed, &blocked));
        assert!(!admitted("https://ads.example.com/x", &allowed, &blocked));
        assert!(admitted("https://anything.net/", &[], &[]));
        assert!(!admitted("https://ads.example.com/", &[], &blocked));
    }

    #[test]
    fn a_single_allowed_domain_becomes_a_bare_site_operator() {
        assert_eq!(site_operators(&list(&["Example.com/docs"]), &[]), " site:example.com");
    }

    #[test]
    fn several_allowed_domains_are_joined_with_or_in_parentheses() {
        let ops = site_operators(&list(&["a.com", "b.org/x", "a.com/y"]), &[]);
        assert_eq!(ops, " (site:a.com OR site:b.org)");
    }

    #[test]
    fn blocked_hosts_are_excluded_but_blocked_paths_are_left_to_the_filter() {
        let ops = site_operators(&[], &list(&["x.com", "y.com/private", "z.net/"]));
        assert_eq!(ops, " -site:x.com -site:z.net");
        assert_eq!(site_operators(&[], &[]), "");
    }
}
