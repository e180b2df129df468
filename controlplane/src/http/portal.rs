//! The portal: the single-page application built in `portal/` and
//! embedded in this binary (`build.rs`), served at `/portal/`. Hashed
//! assets are cached for good; every other path under `/portal/` is a
//! page of the application and gets its `index.html`, so deep links work.

use bytes::Bytes;
use http_body_util::Full;

use super::Response;

pub struct Asset {
    pub path: &'static str,
    pub body: &'static [u8],
    pub gzip: Option<&'static [u8]>,
    pub mime: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/portal_assets.rs"));

pub const PREFIX: &str = "/portal/";

/// Scripts, styles, images and API calls from this origin only; nothing
/// inline, no frames, no plug-ins.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

pub fn serve(path: &str, headers: &http::HeaderMap) -> Response {
    if !BUILT {
        return super::page::html(
            503,
            "Portal not built",
            &format!("<p>{}</p>", super::page::escape("This control plane was built without its portal. Build it with `npm ci --prefix portal && npm run build \
             --prefix portal`, then rebuild the control plane (./start.sh does both).")),
        );
    }
    let rel = path.strip_prefix(PREFIX).unwrap_or_default();
    let (asset, immutable) = match find(rel) {
        Some(a) if !rel.is_empty() => (a, rel.starts_with("assets/")),
        // An unknown asset is a 404, not the application.
        _ if rel.starts_with("assets/") => return super::json(404, r#"{"error":"no such portal asset"}"#.into()),
        _ => match find("index.html") {
            Some(a) => (a, false),
            None => return super::json(404, r#"{"error":"not found"}"#.into()),
        },
    };
    let gzip_ok = headers
        .get_all(http::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|e| e.trim().split(';').next() == Some("gzip")));
    let (body, gz) = match asset.gzip {
        Some(g) if gzip_ok => (g, true),
        _ => (asset.body, false),
    };
    let mut res = http::Response::new(Full::new(Bytes::from_static(body)));
    let h = res.headers_mut();
    h.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(asset.mime));
    if gz {
        h.insert(http::header::CONTENT_ENCODING, http::HeaderValue::from_static("gzip"));
    }
    h.insert(http::header::VARY, http::HeaderValue::from_static("accept-encoding"));
    h.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static(if immutable { "public, max-age=31536000, immutable" } else { "no-cache" }),
    );
    h.insert("content-security-policy", http::HeaderValue::from_static(CSP));
    res
}
