//! The check every outbound call a user can aim (webhooks, identity
//! providers, web search providers) goes through: the host must resolve to public
//! addresses only, unless `CCAG_OUTBOUND_ALLOW_CIDRS` (comma-separated CIDR
//! ranges) allows a range; the call then connects to the address that was
//! checked, so a second DNS answer cannot point it elsewhere.

pub mod client;
pub mod probe;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum OutboundError {
    #[error("not a valid URL: {0}")]
    BadUrl(String),
    #[error("{0}")]
    Scheme(String),
    #[error("{}, which outbound calls may not reach (CCAG_OUTBOUND_ALLOW_CIDRS can allow a range)", forbidden(.host, .ip, .what))]
    Forbidden { host: String, ip: IpAddr, what: &'static str },
    #[error("cannot resolve {0}")]
    Unresolved(String),
}

fn forbidden(host: &str, ip: &IpAddr, what: &str) -> String {
    if host.trim_matches(['[', ']']) == ip.to_string() {
        format!("{ip} is a {what} address")
    } else {
        format!("{host} resolves to {ip}, a {what} address")
    }
}

/// A URL taken apart once, as the call will use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, at least "/".
    pub path: String,
}

#[derive(Debug, Clone, Default)]
pub struct Policy {
    allow: Vec<IpNet>,
}

impl Policy {
    pub fn from_env() -> Result<Policy, String> {
        Policy::parse(&std::env::var("CCAG_OUTBOUND_ALLOW_CIDRS").unwrap_or_default())
            .map_err(|e| format!("CCAG_OUTBOUND_ALLOW_CIDRS: {e}"))
    }

    pub fn parse(list: &str) -> Result<Policy, String> {
        let mut allow = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = item
                .parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{item:?} is not a CIDR range such as 10.0.0.0/8 or 127.0.0.1/32"))?;
            allow.push(net);
        }
        Ok(Policy { allow })
    }

    /// Why `ip` may not be called, or nothing when it may.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        let what = classify(ip)?;
        if self.allow.iter().any(|n| n.contains(&ip)) {
            return None;
        }
        Some(what)
    }

    /// Every address `host` resolves to, all of them permitted; any one
    /// refused refuses the call (a mixed answer is how rebinding starts).
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, OutboundError> {
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = match literal.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => {
                let found = tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((host, port)))
                    .await
                    .map_err(|_| OutboundError::Unresolved(host.to_owned()))?
                    .map_err(|_| OutboundError::Unresolved(host.to_owned()))?;
                found.collect()
            }
        };
        if addrs.is_empty() {
            return Err(OutboundError::Unresolved(host.to_owned()));
        }
        for a in &addrs {
            if let Some(what) = self.refusal(a.ip()) {
                return Err(OutboundError::Forbidden { host: host.to_owned(), ip: a.ip(), what });
            }
        }
        Ok(addrs)
    }
}

/// The kind of non-public address `ip` is, or None for a public one.
fn classify(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return classify_v4(v4);
            }
            let seg = v6.segments();
            // NAT64 (64:ff9b::/96) reaches the IPv4 address it embeds.
            if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
                let o = v6.octets();
                return classify_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
            }
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if seg[0] == 0xfd00 && seg[1..7] == [0xec2, 0, 0, 0, 0, 0] {
                Some("cloud metadata")
            } else if (seg[0] & 0xfe00) == 0xfc00 {
                Some("private")
            } else if (seg[0] & 0xffc0) == 0xfe80 {
                Some("link-local")
            } else if (seg[0] & 0xff00) == 0xff00 {
                Some("multicast")
            } else if seg[0] == 0x2001 && seg[1] == 0x0db8 {
                Some("documentation")
            } else if v6 == Ipv6Addr::from(0u128) || seg[0..6] == [0, 0, 0, 0, 0, 0] {
                // IPv4-compatible (deprecated) and other ::/96 forms.
                Some("reserved")
            } else {
                None
            }
        }
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if o == [169, 254, 169, 254] || o == [169, 254, 170, 2] || o == [100, 100, 100, 200] {
        Some("cloud metadata")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_private() {
        Some("private")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("shared (carrier-grade NAT)")
    } else if o[0] == 0 {
        Some("unspecified")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if ip.is_broadcast() || o[0] >= 240 {
        Some("reserved")
    } else if o[0] == 198 && (o[1] & 0xfe) == 18 {
        Some("benchmarking")
    } else if ip.is_documentation() {
        Some("documentation")
    } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        Some("reserved")
    } else {
        None
    }
}

/// Whether a URL's host is loopback (where plain http is acceptable).
pub fn is_loopback_url(url: &str) -> bool {
    url.parse::<http::Uri>().ok().and_then(|u| u.host().map(is_loopback_host)).unwrap_or(false)
}

fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A webhook URL: HTTPS, or plain HTTP to a loopback host (for tests and
/// sidecars); no credentials in it. Addresses are checked at call time
/// (and at creation, by the caller), not here.
pub fn webhook_target(url: &str) -> Result<Target, OutboundError> {
    target(url, "a webhook URL")
}

/// A URL of an identity provider (issuer, or an endpoint its discovery
/// document names), with the same rules as a webhook's.
pub fn idp_target(url: &str) -> Result<Target, OutboundError> {
    target(url, "an identity provider's URL")
}

/// A search provider's URL, with the same rules as a webhook's.
pub fn search_target(url: &str) -> Result<Target, OutboundError> {
    target(url, "a search provider's URL")
}

/// A Bedrock Runtime endpoint URL (VPC endpoints, FIPS, tests): the same
/// rules as a webhook's, and nothing but a host (no path, query or
/// fragment). Calls to it are signed with AWS credentials.
pub fn bedrock_target(url: &str) -> Result<Target, OutboundError> {
    let t = target(url, "a Bedrock endpoint URL")?;
    if t.path != "/" || url.contains('#') {
        return Err(OutboundError::BadUrl("a Bedrock endpoint URL names a host only, without a path or query".into()));
    }
    Ok(t)
}

/// An AWS service host (`*.amazonaws.com`, `*.amazonaws.com.cn`,
/// `*.api.aws`): its addresses may be private (VPC endpoints with private
/// DNS), so they are not checked against the policy.
pub fn is_aws_host(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    [".amazonaws.com", ".amazonaws.com.cn", ".api.aws"].iter().any(|s| h.ends_with(s) && h.len() > s.len())
}

fn target(url: &str, what: &str) -> Result<Target, OutboundError> {
    let uri: http::Uri = url.trim().parse().map_err(|e: http::uri::InvalidUri| OutboundError::BadUrl(e.to_string()))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(OutboundError::Scheme(format!("{what} starts with https://"))),
    };
    let auth = uri.authority().ok_or_else(|| OutboundError::BadUrl("no host".into()))?;
    if auth.as_str().contains('@') {
        return Err(OutboundError::BadUrl(
            "credentials in the URL; put a secret in the path or rely on the signature".into(),
        ));
    }
    let host = auth.host().to_owned();
    if host.is_empty() {
        return Err(OutboundError::BadUrl("no host".into()));
    }
    if !https && !is_loopback_host(&host) {
        return Err(OutboundError::Scheme("plain http:// is allowed only to a loopback host; use https://".into()));
    }
    let port = auth.port_u16().unwrap_or(if https { 443 } else { 80 });
    let path = uri.path_and_query().map(|p| p.as_str().to_owned()).filter(|p| !p.is_empty()).unwrap_or("/".into());
    Ok(Target { https, host, port, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bedrock_endpoint_url_is_a_host_only() {
        assert!(bedrock_target("https://vpce-1.bedrock-runtime.us-east-1.vpce.amazonaws.com").is_ok());
        assert!(bedrock_target("http://127.0.0.1:9000/").is_ok());
        assert!(bedrock_target("https://x.example/model").is_err());
        assert!(bedrock_target("https://x.example/?a=1").is_err());
        assert!(bedrock_target("http://bedrock.example").is_err());
        assert!(bedrock_target("https://u:p@x.example").is_err());
    }

    #[test]
    fn aws_hosts_are_recognised_by_their_suffix() {
        assert!(is_aws_host("bedrock-runtime.us-east-1.amazonaws.com"));
        assert!(is_aws_host("bedrock-runtime.cn-north-1.amazonaws.com.cn"));
        assert!(is_aws_host("bedrock-runtime.us-east-1.api.aws"));
        assert!(!is_aws_host("amazonaws.com.evil.example"));
        assert!(!is_aws_host(".amazonaws.com"));
    }

    fn refused(p: &Policy, ip: &str) -> Option<&'static str> {
        p.refusal(ip.parse().unwrap())
    }

    #[test]
    fn public_addresses_are_permitted() {
        let p = Policy::default();
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "100.128.0.1"] {
            assert_eq!(refused(&p, ip), None, "{ip}");
        }
    }

    #[test]
    fn loopback_private_link_local_and_metadata_addresses_are_refused() {
        let p = Policy::default();
        for (ip, what) in [
            ("127.0.0.1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "cloud metadata"),
            ("169.254.1.1", "link-local"),
            ("100.64.0.1", "shared (carrier-grade NAT)"),
            ("0.0.0.0", "unspecified"),
            ("::1", "loopback"),
            ("fd00:ec2::254", "cloud metadata"),
            ("fc00::1", "private"),
            ("fe80::1", "link-local"),
            ("::ffff:10.0.0.1", "private"),
            ("64:ff9b::a9fe:a9fe", "cloud metadata"),
        ] {
            assert_eq!(refused(&p, ip), Some(what), "{ip}");
        }
    }

    #[test]
    fn an_allowed_range_lets_its_addresses_through_and_no_others() {
        let p = Policy::parse("127.0.0.1/32, 10.0.0.0/8").unwrap();
        assert_eq!(refused(&p, "127.0.0.1"), None);
        assert_eq!(refused(&p, "10.200.0.1"), None);
        assert_eq!(refused(&p, "127.0.0.2"), Some("loopback"));
        assert_eq!(refused(&p, "192.168.0.1"), Some("private"));
    }

    #[test]
    fn a_malformed_allow_list_is_refused_naming_the_item() {
        let e = Policy::parse("10.0.0.0/8,ten").unwrap_err();
        assert!(e.contains("\"ten\""), "{e}");
        assert!(Policy::parse("::1").is_ok());
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_unless_allowed() {
        let e = Policy::default().resolve("localhost", 80).await.unwrap_err();
        assert!(matches!(e, OutboundError::Forbidden { what: "loopback", .. }), "{e:?}");
        let ok = Policy::parse("127.0.0.0/8,::1/128").unwrap().resolve("localhost", 80).await.unwrap();
        assert!(ok.iter().all(|a| a.ip().is_loopback()));
    }

    #[test]
    fn webhook_urls_are_https_or_loopback_http() {
        let t = webhook_target("https://hooks.example.com/x?y=1").unwrap();
        assert_eq!((t.https, t.host.as_str(), t.port, t.path.as_str()), (true, "hooks.example.com", 443, "/x?y=1"));
        let t = webhook_target("http://127.0.0.1:8080").unwrap();
        assert_eq!((t.https, t.port, t.path.as_str()), (false, 8080, "/"));
        assert!(matches!(webhook_target("http://hooks.example.com/"), Err(OutboundError::Scheme(_))));
        assert!(matches!(webhook_target("ftp://x/"), Err(OutboundError::Scheme(_))));
        assert!(matches!(webhook_target("https://u:p@x.example/"), Err(OutboundError::BadUrl(_))));
        assert!(matches!(webhook_target("not a url"), Err(OutboundError::BadUrl(_))));
    }
}
