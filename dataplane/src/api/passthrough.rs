//! The sign-in and onboarding routes (`ccag_proto::signin`), which the
//! control plane serves: the data plane passes them through, so that developers and Claude Code need
//! only the gateway's one URL. Thin and bounded: small bodies both ways, a
//! time limit, hop-by-hop headers dropped, and the client's address passed
//! on with the data-plane token that vouches for it. The data plane still
//! never touches the database.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::{read_body, AppState};
use crate::http::body::{full, ResBody};
use crate::http::error::ApiError;

const MAX_REQUEST_BYTES: u64 = 64 * 1024;
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// The portal's answers: its script bundles and CSV exports of up to
/// 100,000 usage records.
const MAX_PORTAL_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(15);

pub use ccag_proto::signin::is_signin_path;

type HttpsClient =
    Client<hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>, Full<Bytes>>;

pub struct ControlPlaneHttp {
    /// scheme://authority, no trailing slash.
    base: String,
    token: HeaderValue,
    client: HttpsClient,
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) and what the pass-through sets.
fn forwardable(name: &http::HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
            | "x-ccag-client-ip"
            | "x-ccag-dataplane-token"
    )
}

fn copy(from: &HeaderMap, to: &mut HeaderMap) {
    for (k, v) in from {
        if forwardable(k) {
            to.append(k.clone(), v.clone());
        }
    }
}

impl ControlPlaneHttp {
    /// `url`: the control plane's HTTP address (`CCAG_CONTROLPLANE_HTTP_URL`).
    pub fn new(url: &str, dataplane_token: &str) -> Result<Self, String> {
        let uri: http::Uri = url.trim().parse().map_err(|e| format!("CCAG_CONTROLPLANE_HTTP_URL={url:?}: {e}"))?;
        match (uri.scheme_str(), uri.authority()) {
            (Some("http" | "https"), Some(a)) if uri.path() == "/" || uri.path().is_empty() => {
                let base = format!("{}://{a}", uri.scheme_str().unwrap_or("http"));
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_native_roots()
                    .map_err(|e| format!("trust store: {e}"))?
                    .https_or_http()
                    .enable_http1()
                    .build();
                let client =
                    Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector);
                let token = HeaderValue::from_str(dataplane_token)
                    .map_err(|_| "the data-plane token is not ASCII".to_owned())?;
                Ok(ControlPlaneHttp { base, token, client })
            }
            _ => Err(format!(
                "CCAG_CONTROLPLANE_HTTP_URL={url:?}: an http(s) URL without a path, such as http://127.0.0.1:8081"
            )),
        }
    }

    pub async fn forward(
        &self,
        state: &AppState,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<Response<ResBody>, ApiError> {
        let max_response = if ccag_proto::signin::is_portal_path(req.uri().path()) {
            MAX_PORTAL_RESPONSE_BYTES
        } else {
            MAX_RESPONSE_BYTES
        };
        let (parts, body) = read_body(state, req, MAX_REQUEST_BYTES).await?;
        let pq = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let mut out = Request::builder()
            .method(parts.method.clone())
            .uri(format!("{}{pq}", self.base))
            .body(Full::new(body))
            .map_err(|e| ApiError::InvalidRequest(format!("cannot pass this request on: {e}")))?;
        copy(&parts.headers, out.headers_mut());
        let h = out.headers_mut();
        h.insert("x-ccag-client-ip", HeaderValue::from_str(&peer.ip().to_string()).expect("an address is ASCII"));
        h.insert("x-ccag-dataplane-token", self.token.clone());
        let unreachable = |e: String| {
            tracing::warn!(error = %e, "the control plane's sign-in cannot be reached");
            ApiError::Unavailable("sign-in is unavailable: the gateway's control plane cannot be reached".into())
        };
        let res = tokio::time::timeout(TIMEOUT, self.client.request(out))
            .await
            .map_err(|_| unreachable("no answer in time".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        let (rparts, rbody) = res.into_parts();
        let bytes = tokio::time::timeout(TIMEOUT, Limited::new(rbody, max_response).collect())
            .await
            .map_err(|_| unreachable("the answer did not finish in time".into()))?
            .map_err(|e| unreachable(e.to_string()))?
            .to_bytes();
        let mut answer = Response::new(full(bytes));
        *answer.status_mut() = rparts.status;
        copy(&rparts.headers, answer.headers_mut());
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_sign_in_paths_pass_through() {
        for p in [
            "/oauth/token",
            "/device",
            "/auth/oidc/callback",
            "/setup",
            "/.well-known/oauth-authorization-server",
            "/portal",
            "/portal/assets/index.js",
            "/ccag.admin.v1.KeyService/ListKeys",
        ] {
            assert!(is_signin_path(p), "{p}");
        }
        for p in [
            "/v1/messages",
            "/oauth",
            "/devices",
            "/authx",
            "/health",
            "/.well-known/openid-configuration",
            "/portalx",
            "/ccag.config.v1.DataPlaneService/Watch",
        ] {
            assert!(!is_signin_path(p), "{p}");
        }
    }

    #[test]
    fn hop_by_hop_and_vouching_headers_are_not_copied() {
        let mut from = HeaderMap::new();
        from.insert("connection", HeaderValue::from_static("close"));
        from.insert("x-ccag-dataplane-token", HeaderValue::from_static("forged"));
        from.insert("cookie", HeaderValue::from_static("a=b"));
        let mut to = HeaderMap::new();
        copy(&from, &mut to);
        assert_eq!(to.len(), 1);
        assert!(to.contains_key("cookie"));
    }
}
