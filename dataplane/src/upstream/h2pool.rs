//! HTTP/2 to one Bedrock endpoint over a pool of connections of our own.
//!
//! hyper-util's pooled client keeps a single HTTP/2 connection per host: once
//! the server's SETTINGS_MAX_CONCURRENT_STREAMS is reached, further requests
//! queue behind the open streams, and a Claude Code stream lasts minutes, so a
//! busy gateway would stall. This pool opens another connection instead, as
//! soon as every connection it has carries `max_streams` streams.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

// As the HTTP/1.1 client's: the connect timeout applies to each address
// tried and to the handshakes; the idle timeout lets the connections a burst
// opened go once it has passed.
use super::client::{error_chain, CONNECT_TIMEOUT, POOL_IDLE_TIMEOUT};

/// Pings find a connection that died silently (a NAT or a load balancer
/// forgot it) before a request is sent on it, rather than after.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

type ReqBody = Full<Bytes>;

pub struct H2Pool {
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    tls: TlsConnector,
    max_streams: usize,
    /// Locked only for a pick or a push, never across an await, so that the
    /// hot path costs no more than a few atomic operations.
    conns: Mutex<Vec<Conn>>,
    /// One connection attempt at a time: a burst that finds the pool full
    /// would otherwise open a connection per request. It holds the last
    /// attempt's failure, so that the tasks that waited for that attempt
    /// share its error instead of each trying (and waiting) in turn.
    connecting: tokio::sync::Mutex<Option<Failure>>,
    http1_only: AtomicBool,
}

struct Conn {
    sender: SendRequest<ReqBody>,
    load: Arc<Load>,
}

/// What a connection carries, shared with the slots of its streams: they
/// end outside the pool's lock.
struct Load {
    streams: AtomicUsize,
    opened: Instant,
    /// When its last stream ended, in milliseconds after `opened`: how long
    /// an idle connection has been idle.
    last_end_ms: AtomicU64,
}

struct Failure {
    at: Instant,
    error: String,
}

/// Keeps its stream counted against its connection, so that the pool does
/// not put more than `max_streams` on one; the stream lasts as long as its
/// response body is read, not just until the response's head arrives.
pub struct StreamSlot(Arc<Load>);

/// A stream reserved on a connection: [`Ready::send`] uses it.
pub struct Ready {
    sender: SendRequest<ReqBody>,
    slot: StreamSlot,
}

impl Ready {
    /// Sends `req` (absolute https URI, Host set and signed by the caller;
    /// its headers go as they are). Keep the slot as long as the body is read.
    pub async fn send(mut self, req: Request<ReqBody>) -> Result<(Response<Incoming>, StreamSlot), H2Error> {
        // A connection that closed under the request (GOAWAY) fails it here:
        // the caller's failover retries, and the next pick drops the connection.
        let res = self.sender.send_request(req).await.map_err(|e| H2Error::Request(error_chain(&e)))?;
        Ok((res, self.slot))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum H2Error {
    /// The endpoint will only ever be reached over HTTP/1.1.
    #[error("the Bedrock endpoint negotiated no HTTP/2 (ALPN)")]
    NotHttp2,
    #[error("no connection to Bedrock: {0}")]
    Connect(String),
    #[error("HTTP/2 request to Bedrock failed: {0}")]
    Request(String),
}

impl H2Pool {
    /// `tls` must offer ALPN ["h2", "http/1.1"] (the caller builds it).
    /// `max_streams`: streams per connection before another is opened.
    pub fn new(host: String, port: u16, tls: Arc<rustls::ClientConfig>, max_streams: usize) -> Result<Self, String> {
        if max_streams == 0 {
            return Err("an HTTP/2 pool needs at least one stream per connection".into());
        }
        // A URI's IPv6 host comes bracketed; neither DNS nor TLS wants them.
        let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).map(str::to_owned);
        let host = bare.unwrap_or(host);
        let server_name = ServerName::try_from(host.clone())
            .map_err(|e| format!("Bedrock host {host:?} is neither a DNS name nor an IP address: {e}"))?;
        Ok(H2Pool {
            host,
            port,
            server_name,
            tls: TlsConnector::from(tls),
            max_streams,
            conns: Mutex::new(Vec::new()),
            connecting: tokio::sync::Mutex::new(None),
            http1_only: AtomicBool::new(false),
        })
    }

    /// True once the server answered ALPN without h2: the caller then uses
    /// its HTTP/1.1 client for this endpoint for good.
    pub fn http1_only(&self) -> bool {
        self.http1_only.load(Ordering::Relaxed)
    }

    /// A stream on a connection with room, opening one if none has any.
    /// Separate from the send, so that a caller told `NotHttp2` still has
    /// its request for HTTP/1.1.
    pub async fn ready(&self) -> Result<Ready, H2Error> {
        let (sender, slot) = match self.pick() {
            Some(picked) => picked,
            None => self.open().await?,
        };
        Ok(Ready { sender, slot })
    }

    #[cfg(test)]
    fn connections(&self) -> usize {
        self.lock_conns().len()
    }

    fn lock_conns(&self) -> MutexGuard<'_, Vec<Conn>> {
        // A panic elsewhere while holding the lock leaves a usable list.
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The least busy live connection with room, its stream counted; on the
    /// way, forgets closed connections and those idle for too long (but not
    /// the last one: the next request would wait for a handshake).
    fn pick(&self) -> Option<(SendRequest<ReqBody>, StreamSlot)> {
        let mut conns = self.lock_conns();
        let mut now = None;
        let mut i = 0;
        while i < conns.len() {
            let stale = conns[i].sender.is_closed()
                || (conns.len() > 1 && conns[i].load.idle_longer_than(POOL_IDLE_TIMEOUT, &mut now));
            if stale {
                drop(conns.swap_remove(i));
            } else {
                i += 1;
            }
        }
        let (best, _) = conns
            .iter()
            .map(|c| (c, c.load.streams.load(Ordering::Relaxed)))
            .filter(|&(_, streams)| streams < self.max_streams)
            .min_by_key(|&(_, streams)| streams)?;
        // Counted under the lock, so no two picks can both take the last slot.
        best.load.streams.fetch_add(1, Ordering::Relaxed);
        Some((best.sender.clone(), StreamSlot(best.load.clone())))
    }

    /// A stream on a new connection, or on one another task opened while
    /// this one waited for its turn.
    async fn open(&self) -> Result<(SendRequest<ReqBody>, StreamSlot), H2Error> {
        let asked = Instant::now();
        let mut last_failure = self.connecting.lock().await;
        if let Some(picked) = self.pick() {
            return Ok(picked);
        }
        if self.http1_only() {
            return Err(H2Error::NotHttp2);
        }
        if let Some(failure) = last_failure.as_ref().filter(|f| f.at >= asked) {
            return Err(H2Error::Connect(failure.error.clone()));
        }
        match self.connect().await {
            Ok(sender) => {
                *last_failure = None;
                Ok(self.adopt(sender))
            }
            Err(H2Error::Connect(error)) => {
                *last_failure = Some(Failure { at: Instant::now(), error: error.clone() });
                Err(H2Error::Connect(error))
            }
            Err(e) => Err(e),
        }
    }

    /// Pools a new connection with its first stream already counted, so
    /// that a concurrent pick cannot fill it before its opener uses it.
    fn adopt(&self, sender: SendRequest<ReqBody>) -> (SendRequest<ReqBody>, StreamSlot) {
        let load =
            Arc::new(Load { streams: AtomicUsize::new(1), opened: Instant::now(), last_end_ms: AtomicU64::new(0) });
        let slot = StreamSlot(load.clone());
        let mut conns = self.lock_conns();
        conns.push(Conn { sender: sender.clone(), load });
        tracing::debug!(host = %self.host, connections = conns.len(), "opened an HTTP/2 connection to Bedrock");
        (sender, slot)
    }

    async fn connect(&self) -> Result<SendRequest<ReqBody>, H2Error> {
        let lookup = tokio::net::lookup_host((self.host.as_str(), self.port));
        let addrs = match tokio::time::timeout(CONNECT_TIMEOUT, lookup).await {
            Ok(Ok(addrs)) => addrs,
            Ok(Err(e)) => return Err(self.connect_error("resolving", &e)),
            Err(_) => return Err(self.connect_error("resolving", &"timed out")),
        };
        let mut tcp = None;
        let mut last_error = String::from("no address");
        for addr in addrs {
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    tcp = Some(stream);
                    break;
                }
                Ok(Err(e)) => last_error = format!("{addr}: {e}"),
                Err(_) => last_error = format!("{addr}: timed out after {CONNECT_TIMEOUT:?}"),
            }
        }
        let Some(tcp) = tcp else {
            return Err(self.connect_error("connecting to", &last_error));
        };
        tcp.set_nodelay(true).map_err(|e| self.connect_error("setting TCP_NODELAY for", &e))?;
        match tokio::time::timeout(CONNECT_TIMEOUT, self.handshake(tcp)).await {
            Ok(handshaken) => handshaken,
            Err(_) => Err(self.connect_error("handshaking with", &"timed out")),
        }
    }

    /// TLS, then HTTP/2 if ALPN chose it; the connection then runs on a
    /// task of its own, for as long as a stream or a `SendRequest` needs it.
    async fn handshake(&self, tcp: TcpStream) -> Result<SendRequest<ReqBody>, H2Error> {
        let tls = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| self.connect_error("TLS with", &error_chain(&e)))?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            self.http1_only.store(true, Ordering::Relaxed);
            tracing::info!(host = %self.host, "the Bedrock endpoint negotiated no HTTP/2: using HTTP/1.1");
            return Err(H2Error::NotHttp2);
        }
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .keep_alive_interval(KEEP_ALIVE_INTERVAL)
            .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .adaptive_window(true);
        let (sender, conn) = builder
            .handshake::<_, ReqBody>(TokioIo::new(tls))
            .await
            .map_err(|e| self.connect_error("HTTP/2 with", &error_chain(&e)))?;
        let host = self.host.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%host, error = %error_chain(&e), "HTTP/2 connection to Bedrock ended");
            }
        });
        Ok(sender)
    }

    fn connect_error(&self, step: &str, e: &dyn std::fmt::Display) -> H2Error {
        H2Error::Connect(format!("{step} {}:{}: {e}", self.host, self.port))
    }
}

impl Load {
    /// Whether the connection carries no stream and has carried none for
    /// longer than `limit`; reads the clock (once per pick) only if idle.
    fn idle_longer_than(&self, limit: Duration, now: &mut Option<Instant>) -> bool {
        // Acquire: a slot writes `last_end_ms` before it lowers the count.
        if self.streams.load(Ordering::Acquire) != 0 {
            return false;
        }
        let now = *now.get_or_insert_with(Instant::now);
        let idle_ms = millis_since(self.opened, now).saturating_sub(self.last_end_ms.load(Ordering::Relaxed));
        Duration::from_millis(idle_ms) > limit
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let load = &self.0;
        load.last_end_ms.store(millis_since(load.opened, Instant::now()), Ordering::Relaxed);
        load.streams.fetch_sub(1, Ordering::Release);
    }
}

impl std::fmt::Debug for StreamSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StreamSlot").field(&self.0.streams.load(Ordering::Relaxed)).finish()
    }
}

fn millis_since(start: Instant, now: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(start).as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccag_bedrock_double::{spawn_tls, Double, DoubleConfig};
    use http_body_util::BodyExt as _;
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::CertificateDer;

    const H2_AND_H1: &[&str] = &["h2", "http/1.1"];

    async fn tls_double() -> (Double, String) {
        spawn_tls("127.0.0.1:0".parse().unwrap(), DoubleConfig::default()).await.expect("a TLS double")
    }

    /// A client that trusts only the double's certificate.
    fn client_tls(pem: &str, alpn: &[&str]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots.add(cert.expect("a PEM certificate")).expect("a usable root");
        }
        let mut config =
            rustls::ClientConfig::builder_with_provider(rustls::crypto::aws_lc_rs::default_provider().into())
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Arc::new(config)
    }

    fn pool(double: &Double, pem: &str, alpn: &[&str], max_streams: usize) -> H2Pool {
        H2Pool::new("127.0.0.1".into(), double.addr().port(), client_tls(pem, alpn), max_streams).expect("a pool")
    }

    async fn send(pool: &H2Pool, req: Request<ReqBody>) -> Result<(Response<Incoming>, StreamSlot), H2Error> {
        pool.ready().await?.send(req).await
    }

    /// The double answers it without authentication.
    fn stats_request(double: &Double) -> Request<ReqBody> {
        let authority = format!("127.0.0.1:{}", double.addr().port());
        Request::get(format!("https://{authority}/_double/stats"))
            .header(http::header::HOST, authority)
            .body(Full::new(Bytes::new()))
            .expect("a request")
    }

    #[tokio::test]
    async fn a_request_goes_over_http2() {
        let (double, pem) = tls_double().await;
        let pool = pool(&double, &pem, H2_AND_H1, 100);
        let (res, _slot) = send(&pool, stats_request(&double)).await.expect("an answer");
        assert_eq!(res.version(), http::Version::HTTP_2);
        assert_eq!(res.status(), http::StatusCode::OK);
        assert!(!pool.http1_only());
    }

    #[tokio::test]
    async fn streams_beyond_max_streams_open_another_connection() {
        let (double, pem) = tls_double().await;
        let pool = pool(&double, &pem, H2_AND_H1, 1);
        let (_first, first_slot) = send(&pool, stats_request(&double)).await.expect("the first answer");
        let (_second, second_slot) = send(&pool, stats_request(&double)).await.expect("the second answer");
        assert_eq!(pool.connections(), 2);
        drop((first_slot, second_slot));
    }

    #[tokio::test]
    async fn a_dropped_slot_frees_its_stream_for_the_next_request() {
        let (double, pem) = tls_double().await;
        let pool = pool(&double, &pem, H2_AND_H1, 1);
        let (res, slot) = send(&pool, stats_request(&double)).await.expect("the first answer");
        let _body = res.into_body().collect().await.expect("the first body");
        drop(slot);
        let (_res, _slot) = send(&pool, stats_request(&double)).await.expect("the second answer");
        assert_eq!(pool.connections(), 1);
    }

    #[tokio::test]
    async fn a_server_without_h2_gives_not_http2_and_marks_the_endpoint_http1_only() {
        let (double, pem) = tls_double().await;
        // Offering only http/1.1 makes the double choose it.
        let pool = pool(&double, &pem, &["http/1.1"], 100);
        assert!(matches!(send(&pool, stats_request(&double)).await, Err(H2Error::NotHttp2)));
        assert!(pool.http1_only());
        assert_eq!(pool.connections(), 0);
    }
}
