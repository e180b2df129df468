use std::sync::Arc;
use std::time::Duration;

use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_types::service_config::ServiceConfigKey;
use aws_types::SdkConfig;
use dashmap::DashMap;
use http::HeaderValue;

use super::client::{http_client, tls_config, use_thread_pool, Auth, HttpClient, Runtime};
use super::credentials::CredentialCache;
use super::h2pool::H2Pool;
use super::sts::{RoleKey, RoleSessions, Sts};
use crate::routing::{Credentials, EndpointSpec};

/// The AWS environment every endpoint starts from: the data plane's region,
/// credentials and endpoint settings (`AWS_REGION`, profiles, IMDS,
/// `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`, `AWS_BEARER_TOKEN_BEDROCK`), one
/// pooled HTTP client, and the sessions of the roles endpoints assume, kept
/// across configuration changes.
pub struct Bedrock {
    http: HttpClient,
    /// What every HTTP/1.1 pool trusts: the shared one and each core's.
    tls: Arc<rustls::ClientConfig>,
    region: String,
    /// An explicit endpoint from the environment, which wins over the
    /// regional URL of every endpoint without its own.
    env_url: Option<String>,
    fips: bool,
    default_auth: Auth,
    sts: Sts,
    roles: DashMap<RoleKey, Arc<RoleSessions>>,
    /// HTTP/2 settings when it is on; the pools are per host and outlive
    /// configuration changes, as the HTTP/1.1 pool does.
    h2: Option<Http2>,
    /// The endpoint of a configuration that names none.
    default: Arc<Runtime>,
}

impl Bedrock {
    pub async fn from_env() -> Result<Self, String> {
        let region = RegionProviderChain::default_provider().or_else(Region::from_static("us-east-1"));
        let conf = aws_config::defaults(BehaviorVersion::latest())
            .region(region)
            // Claude Code and the SDKs already retry 429/5xx with backoff; an
            // SDK retry underneath would multiply every retry the client makes.
            .retry_config(RetryConfig::standard().with_max_attempts(1))
            .timeout_config(TimeoutConfig::builder().connect_timeout(Duration::from_secs(5)).build())
            .load()
            .await;
        let region = conf.region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".into());
        let env_url = service_setting(&conf, "Bedrock Runtime", "AWS_ENDPOINT_URL", "endpoint_url")
            .or_else(|| conf.endpoint_url().map(str::to_owned));
        let fips = conf.use_fips() == Some(true);
        let default_auth = match service_setting(&conf, "bedrock", "AWS_BEARER_TOKEN", "") {
            Some(token) => {
                Auth::Bearer(bearer(&token).map_err(|()| "AWS_BEARER_TOKEN_BEDROCK is not a valid header value")?)
            }
            None => Auth::SigV4(Arc::new(CredentialCache::new(conf.credentials_provider()))),
        };
        let ca_bundle = std::env::var_os("AWS_CA_BUNDLE").filter(|v| !v.is_empty()).map(std::path::PathBuf::from);
        let tls = tls_config(ca_bundle.as_deref())?;
        let http = http_client(&tls);
        let h2 = Http2::from_env(tls.clone())?;
        let url = env_url.clone().unwrap_or_else(|| regional_url(&region, fips));
        let pool = h2.as_ref().map(|h| h.pool(&url)).transpose()?.flatten();
        let default = Arc::new(Runtime::new(http.clone(), pool, &url, region.clone(), default_auth.clone())?);
        tracing::info!(endpoint = %url, %region, http2 = h2.is_some(), "Bedrock Runtime");
        Ok(Bedrock {
            http,
            tls: Arc::new(tls),
            region,
            env_url,
            fips,
            default_auth,
            sts: Sts::new(&conf),
            roles: DashMap::new(),
            h2,
            default,
        })
    }

    /// What gives a request core's thread a pool of its own for HTTP/1.1
    /// (HTTP/2's pools are shared by every core).
    pub fn thread_pool_maker(&self) -> impl Fn() + Send + Sync + 'static {
        let tls = self.tls.clone();
        move || use_thread_pool(http_client(&tls))
    }

    /// The data plane's own region (of the endpoint used when the
    /// configuration names none).
    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn default_endpoint(&self) -> &Arc<Runtime> {
        &self.default
    }

    /// The client of one configured endpoint. Its assumed role keeps the
    /// sessions it already has; the HTTP pool is shared, so it keeps its
    /// connections too.
    /// Where an endpoint's calls go: its own URL, else the environment's,
    /// else its region's.
    fn url_of(&self, spec: &EndpointSpec) -> String {
        match (&spec.url, &self.env_url) {
            (Some(u), _) | (None, Some(u)) => u.clone(),
            (None, None) => regional_url(&spec.region, self.fips),
        }
    }

    pub fn build(&self, spec: &EndpointSpec) -> Result<Runtime, String> {
        let url = self.url_of(spec);
        let auth = match &spec.credentials {
            Credentials::Default => self.default_auth.clone(),
            Credentials::MissingKey => {
                return Err(format!("endpoint {}: its API key did not reach this data plane", spec.name))
            }
            Credentials::ApiKey(key) => Auth::Bearer(
                bearer(key).map_err(|()| format!("endpoint {}: the API key is not a header value", spec.name))?,
            ),
            Credentials::AssumeRole { role_arn, external_id, per_user_sessions } => {
                let key = RoleKey { role_arn: role_arn.clone(), external_id: external_id.clone() };
                let sessions = self
                    .roles
                    .entry(key.clone())
                    .or_insert_with(|| RoleSessions::new(self.sts.clone(), key, &spec.name))
                    .clone();
                Auth::Role { sessions, per_user: *per_user_sessions }
            }
        };
        let pool = self.h2.as_ref().map(|h| h.pool(&url)).transpose()?.flatten();
        Runtime::new(self.http.clone(), pool, &url, spec.region.clone(), auth)
    }

    /// Forgets the sessions of roles no endpoint assumes any more, and the
    /// HTTP/2 connections of hosts no endpoint names (the default's stays).
    pub fn retain(&self, live: &[&EndpointSpec]) {
        if let Some(h2) = &self.h2 {
            let keys: Vec<String> = live
                .iter()
                .map(|s| self.url_of(s))
                .chain(std::iter::once(self.env_url.clone().unwrap_or_else(|| regional_url(&self.region, self.fips))))
                .filter_map(|u| host_port(&u))
                .collect();
            h2.pools.retain(|key, _| keys.contains(key));
        }
        self.roles.retain(|k, _| {
            live.iter().any(|s| {
                matches!(&s.credentials, Credentials::AssumeRole { role_arn, external_id, .. }
                    if *role_arn == k.role_arn && *external_id == k.external_id)
            })
        });
    }
}

/// `CCAG_BEDROCK_HTTP2`: Bedrock over HTTP/2 where ALPN offers it (an
/// endpoint that does not keeps HTTP/1.1), on our own pool of connections
/// with at most `CCAG_BEDROCK_HTTP2_MAX_STREAMS` streams each.
struct Http2 {
    tls: Arc<rustls::ClientConfig>,
    max_streams: usize,
    pools: DashMap<String, Arc<H2Pool>>,
}

/// Streams per connection: what RFC 9113 asks every server to allow at
/// least, so that no request waits for the server's own limit.
const DEFAULT_H2_STREAMS: usize = 100;

impl Http2 {
    fn from_env(mut tls: rustls::ClientConfig) -> Result<Option<Self>, String> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let on = match var("CCAG_BEDROCK_HTTP2").as_deref().map(str::trim) {
            None => false,
            Some("on" | "true" | "1") => true,
            Some("off" | "false" | "0") => false,
            Some(v) => return Err(format!("CCAG_BEDROCK_HTTP2={v:?}: on or off")),
        };
        if !on {
            return Ok(None);
        }
        let max_streams = match var("CCAG_BEDROCK_HTTP2_MAX_STREAMS") {
            None => DEFAULT_H2_STREAMS,
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if (1..=1000).contains(&n) => n,
                _ => return Err(format!("CCAG_BEDROCK_HTTP2_MAX_STREAMS={v:?}: a number from 1 to 1000")),
            },
        };
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Some(Http2 { tls: Arc::new(tls), max_streams, pools: DashMap::new() }))
    }

    /// The pool of an https URL's host (`None` for http://, which stays on
    /// HTTP/1.1: no ALPN without TLS).
    fn pool(&self, url: &str) -> Result<Option<Arc<H2Pool>>, String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("Bedrock endpoint {url:?}: {e}"))?;
        if uri.scheme_str() != Some("https") {
            return Ok(None);
        }
        let host = uri.host().ok_or_else(|| format!("Bedrock endpoint {url:?} has no host"))?;
        let port = uri.port_u16().unwrap_or(443);
        let key = format!("{host}:{port}");
        if let Some(p) = self.pools.get(&key) {
            return Ok(Some(p.clone()));
        }
        let pool = Arc::new(H2Pool::new(host.to_owned(), port, self.tls.clone(), self.max_streams)?);
        Ok(Some(self.pools.entry(key).or_insert(pool).clone()))
    }
}

/// `host:port` of an https URL: the key of its HTTP/2 pool (as `pool` makes it).
fn host_port(url: &str) -> Option<String> {
    let uri: http::Uri = url.parse().ok()?;
    Some(format!("{}:{}", uri.host()?, uri.port_u16().unwrap_or(443)))
}

fn bearer(token: &str) -> Result<HeaderValue, ()> {
    let mut v = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| ())?;
    v.set_sensitive(true);
    Ok(v)
}

/// A per-service setting as the SDKs read it: the service's own environment
/// variable (e.g. `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`), then its profile entry.
fn service_setting(conf: &SdkConfig, service_id: &str, env: &str, profile: &str) -> Option<String> {
    let key = ServiceConfigKey::builder().service_id(service_id).env(env).profile(profile).build().ok()?;
    conf.service_config()?.load_config(key).filter(|v| !v.is_empty())
}

/// The regional endpoint, as aws-sdk-bedrockruntime resolves it (FIPS when
/// `AWS_USE_FIPS_ENDPOINT` is set).
fn regional_url(region: &str, fips: bool) -> String {
    let fips = if fips { "-fips" } else { "" };
    let suffix = if region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" };
    format!("https://bedrock-runtime{fips}.{region}.{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regional_urls_follow_the_partition_and_fips() {
        assert_eq!(regional_url("eu-west-1", false), "https://bedrock-runtime.eu-west-1.amazonaws.com");
        assert_eq!(regional_url("us-east-1", true), "https://bedrock-runtime-fips.us-east-1.amazonaws.com");
        assert_eq!(regional_url("cn-north-1", false), "https://bedrock-runtime.cn-north-1.amazonaws.com.cn");
    }
}
