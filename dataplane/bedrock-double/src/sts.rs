//! Assumed-role sessions as moto's STS issued them.
//!
//! moto keeps every `AssumeRole` answer in memory and shows it at
//! `GET /moto-api/data.json` under `sts.AssumedRole` (one object per session
//! with `access_key_id`, `secret_access_key`, `session_token`, `role_arn`,
//! `session_name`, `external_id`, `arn`, …). The double reads that list to
//! learn the secret behind a temporary access key id, the way AWS would, so a
//! test can show that a gateway really assumed the role it was told to.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a fetch of moto's state may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// moto's state holds every service's resources; refuse anything absurd.
const MAX_STATE_BYTES: usize = 64 * 1024 * 1024;

/// One session from `sts.AssumedRole`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AssumedRole {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    /// The role assumed, `arn:aws:iam::ACCOUNT:role/NAME`.
    pub role_arn: String,
    pub session_name: String,
    #[serde(default)]
    pub external_id: Option<String>,
    /// The session's own ARN, `arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`.
    #[serde(default)]
    pub arn: Option<String>,
}

impl AssumedRole {
    /// The principal AWS names in an AccessDenied message.
    pub fn caller_arn(&self) -> String {
        if let Some(arn) = &self.arn {
            return arn.clone();
        }
        // Older moto versions omit `arn`; rebuild it from the role.
        let (prefix, name) = self.role_arn.rsplit_once(":role/").unwrap_or((&self.role_arn, ""));
        let account = prefix.rsplit(':').next().unwrap_or_default();
        let name = name.rsplit('/').next().unwrap_or(name);
        format!("arn:aws:sts::{account}:assumed-role/{name}/{}", self.session_name)
    }
}

/// The sessions in a `/moto-api/data.json` document. A document without STS
/// state (no session assumed yet) holds none.
pub fn parse_state(body: &[u8]) -> Result<Vec<AssumedRole>, String> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| format!("moto state is not JSON: {e}"))?;
    let Some(list) = doc.get("sts").and_then(|s| s.get("AssumedRole")) else {
        return Ok(Vec::new());
    };
    // Skip entries that lack a field rather than failing the whole list:
    // one odd session must not lock every caller out.
    let items = list.as_array().ok_or("sts.AssumedRole is not a list")?;
    Ok(items.iter().filter_map(|v| AssumedRole::deserialize(v).ok()).collect())
}

/// Sessions known so far, by access key id, refreshed from moto when a key
/// id arrives that is not among them.
pub struct RoleStore {
    url: String,
    known: Mutex<HashMap<String, AssumedRole>>,
    /// One fetch at a time: callers arriving together share its result.
    fetching: tokio::sync::Mutex<()>,
}

impl RoleStore {
    pub fn new(url: impl Into<String>) -> Self {
        RoleStore { url: url.into(), known: Mutex::default(), fetching: tokio::sync::Mutex::new(()) }
    }

    fn cached(&self, access_key_id: &str) -> Option<AssumedRole> {
        self.known.lock().unwrap_or_else(|e| e.into_inner()).get(access_key_id).cloned()
    }

    /// The session behind `access_key_id`, or `None` if moto never issued it.
    pub async fn lookup(&self, access_key_id: &str) -> Result<Option<AssumedRole>, String> {
        if let Some(r) = self.cached(access_key_id) {
            return Ok(Some(r));
        }
        let _one = self.fetching.lock().await;
        // Another caller may have fetched while this one waited.
        if let Some(r) = self.cached(access_key_id) {
            return Ok(Some(r));
        }
        let body = http_get(&self.url).await?;
        let roles = parse_state(&body)?;
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.extend(roles.into_iter().map(|r| (r.access_key_id.clone(), r)));
        Ok(known.get(access_key_id).cloned())
    }
}

/// `http://HOST:PORT/PATH` → (`HOST:PORT`, `/PATH`). Only plain HTTP: moto
/// runs on loopback next to the double.
pub fn split_url(url: &str) -> Result<(String, String), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("{url}: no host"));
    }
    let authority = if authority.contains(':') { authority.to_string() } else { format!("{authority}:80") };
    Ok((authority, path.to_string()))
}

/// A one-shot HTTP/1.1 GET (`Connection: close`), body returned on 200.
pub async fn http_get(url: &str) -> Result<Vec<u8>, String> {
    let (authority, path) = split_url(url)?;
    let exchange = async {
        let mut s = TcpStream::connect(&authority).await?;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await?;
        let mut raw = Vec::new();
        s.take(MAX_STATE_BYTES as u64 + 1).read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(FETCH_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("GET {url}: no answer within {FETCH_TIMEOUT:?}"))?
        .map_err(|e| format!("GET {url}: {e}"))?;
    if raw.len() > MAX_STATE_BYTES {
        return Err(format!("GET {url}: answer larger than {MAX_STATE_BYTES} bytes"));
    }
    response_body(&raw).map_err(|e| format!("GET {url}: {e}"))
}

/// The body of a complete HTTP/1.1 response, if its status is 200.
pub fn response_body(raw: &[u8]) -> Result<Vec<u8>, String> {
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("incomplete response head")?;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).unwrap_or_default().to_string();
    if status != "200" {
        return Err(format!("status {status}"));
    }
    let header = |name: &str| {
        head.split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_ascii_lowercase())
    };
    let rest = &raw[head_end + 4..];
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        return dechunk(rest);
    }
    match header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(n) if n <= rest.len() => Ok(rest[..n].to_vec()),
        Some(n) => Err(format!("body cut short: {} of {n} bytes", rest.len())),
        None => Ok(rest.to_vec()),
    }
}

fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").ok_or("chunk size line missing")?;
        let line = String::from_utf8_lossy(&raw[..line_end]);
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| format!("bad chunk size {size_text:?}"))?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if raw.len() < size {
            return Err("chunk cut short".into());
        }
        out.extend_from_slice(&raw[..size]);
        raw = raw.get(size + 2..).ok_or("chunk not terminated")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATE: &str = r#"{"s3": {}, "sts": {"AssumedRole": [
        {"access_key_id": "ASIAONE", "secret_access_key": "s1", "session_token": "t1",
         "role_arn": "arn:aws:iam::111111111111:role/x", "session_name": "ccag-a",
         "external_id": "ext", "arn": "arn:aws:sts::111111111111:assumed-role/x/ccag-a"},
        {"access_key_id": "ASIABROKEN"}
    ], "Token": []}}"#;

    #[test]
    fn state_lists_complete_sessions_only() {
        let roles = parse_state(STATE.as_bytes()).unwrap();
        assert_eq!(roles.len(), 1);
        assert_eq!(roles[0].secret_access_key, "s1");
        assert_eq!(roles[0].external_id.as_deref(), Some("ext"));
    }

    #[test]
    fn state_without_sts_has_no_sessions() {
        assert_eq!(parse_state(br#"{"s3": {}}"#).unwrap(), Vec::new());
        assert!(parse_state(b"<html>").is_err());
    }

    #[test]
    fn caller_arn_is_rebuilt_when_moto_omits_it() {
        let mut r = parse_state(STATE.as_bytes()).unwrap().remove(0);
        r.arn = None;
        assert_eq!(r.caller_arn(), "arn:aws:sts::111111111111:assumed-role/x/ccag-a");
    }

    #[test]
    fn urls_split_into_authority_and_path() {
        assert_eq!(
            split_url("http://127.0.0.1:5000/moto-api/data.json").unwrap(),
            ("127.0.0.1:5000".to_string(), "/moto-api/data.json".to_string())
        );
        assert_eq!(split_url("http://moto").unwrap(), ("moto:80".to_string(), "/".to_string()));
        assert!(split_url("https://moto/x").is_err());
    }

    /// Serves `state` as moto would and counts the fetches.
    async fn fake_moto(state: &'static str) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/moto-api/data.json", listener.local_addr().unwrap());
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let mut head = [0u8; 1024];
                let _ = s.read(&mut head).await;
                let resp = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{state}", state.len());
                let _ = s.write_all(resp.as_bytes()).await;
            }
        });
        (url, hits)
    }

    #[tokio::test]
    async fn known_keys_are_cached_and_unknown_ones_refetch() {
        use std::sync::atomic::Ordering;
        let (url, hits) = fake_moto(STATE).await;
        let store = RoleStore::new(url);
        assert_eq!(store.lookup("ASIAONE").await.unwrap().unwrap().session_token, "t1");
        assert_eq!(store.lookup("ASIAONE").await.unwrap().unwrap().session_name, "ccag-a");
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert_eq!(store.lookup("ASIANEW").await.unwrap(), None);
        assert_eq!(store.lookup("ASIANEW").await.unwrap(), None);
        assert_eq!(hits.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn unreachable_state_is_an_error_not_an_unknown_key() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/moto-api/data.json", listener.local_addr().unwrap());
        drop(listener);
        let err = RoleStore::new(url.clone()).lookup("ASIAONE").await.unwrap_err();
        assert!(err.starts_with(&format!("GET {url}")), "{err}");
    }

    #[test]
    fn response_bodies_are_read_by_length_or_chunks() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}extra";
        assert_eq!(response_body(plain).unwrap(), b"{}");
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n1\r\n}\r\n0\r\n\r\n";
        assert_eq!(response_body(chunked).unwrap(), b"{}");
        let missing = b"HTTP/1.1 404 NOT FOUND\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(response_body(missing), Err("status 404".to_string()));
    }
}
