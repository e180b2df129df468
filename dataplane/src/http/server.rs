//! The accept loop: HTTP/1.1 and cleartext HTTP/2 on one port, explicit
//! limits on header size, header count, header read time and stalled
//! writes, and a graceful drain on shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::Sleep;

use super::body::ResBody;
use super::cores::Cores;
use super::gauges::ConnectionGuard;
use super::Gauges;

/// What the server serves: it hands every request to `handle`.
pub trait App: Send + Sync + 'static {
    fn gauges(&self) -> &Gauges;
    fn timeouts(&self) -> Timeouts;
    /// `peer` is the client's address (the sign-in pass-through forwards it).
    fn handle(
        self: Arc<Self>,
        req: http::Request<hyper::body::Incoming>,
        peer: std::net::SocketAddr,
    ) -> impl Future<Output = Result<http::Response<ResBody>, std::convert::Infallible>> + Send;
}

/// At most this many request headers (Claude Code sends about 20).
pub const MAX_HEADERS: usize = 128;
/// At most this many bytes of request line and headers.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// How long in-flight requests may finish after a shutdown signal, unless
/// `CCAG_DATAPLANE_DRAIN_TIMEOUT_MS` says otherwise.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connections cut at the end of a drain get to let go.
const CUT_GRACE: Duration = Duration::from_secs(2);

/// The per-connection time limits. Each can be changed through the
/// environment (docs/dataplane.md); the defaults suit production.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A client must send its first bytes, and then finish its request
    /// head, within this time; an idle keep-alive connection is closed after
    /// it too. `CCAG_DATAPLANE_HEADER_TIMEOUT_MS`.
    pub header_read: Duration,
    /// A client must deliver its whole request body within this time.
    /// `CCAG_DATAPLANE_BODY_TIMEOUT_MS`.
    pub body_read: Duration,
    /// A client that takes no response bytes for this long (it stopped
    /// reading) is disconnected, which cancels its Bedrock call.
    /// `CCAG_DATAPLANE_WRITE_TIMEOUT_MS`.
    pub write_stall: Duration,
    /// After a shutdown signal, requests in flight (streams included) may
    /// finish within this time; what is left is then cut. Kubernetes'
    /// `terminationGracePeriodSeconds` must exceed it.
    /// `CCAG_DATAPLANE_DRAIN_TIMEOUT_MS`.
    pub drain: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            header_read: Duration::from_secs(30),
            body_read: Duration::from_secs(60),
            write_stall: Duration::from_secs(120),
            drain: DRAIN_TIMEOUT,
        }
    }
}

impl Timeouts {
    /// The defaults, overridden by whichever variables are set.
    pub fn from_env() -> Result<Self, String> {
        let d = Timeouts::default();
        let ms = |name: &str, default: Duration| -> Result<Duration, String> {
            match std::env::var(name).ok().filter(|v| !v.trim().is_empty()) {
                None => Ok(default),
                Some(v) => match v.trim().parse::<u64>() {
                    Ok(n) if n > 0 => Ok(Duration::from_millis(n)),
                    _ => Err(format!("{name}={v:?}: a positive number of milliseconds")),
                },
            }
        };
        Ok(Timeouts {
            header_read: ms("CCAG_DATAPLANE_HEADER_TIMEOUT_MS", d.header_read)?,
            body_read: ms("CCAG_DATAPLANE_BODY_TIMEOUT_MS", d.body_read)?,
            write_stall: ms("CCAG_DATAPLANE_WRITE_TIMEOUT_MS", d.write_stall)?,
            drain: ms("CCAG_DATAPLANE_DRAIN_TIMEOUT_MS", d.drain)?,
        })
    }
}

/// Connections the kernel may hold for `accept` (capped by
/// `net.core.somaxconn`). tokio's `TcpListener::bind` asks for 128, and a
/// burst beyond that (clients reconnecting after a restart) has SYNs
/// dropped and retried a second later.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds the client listener with [`LISTEN_BACKLOG`].
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves `listener` until `shutdown`, then drains. With `cores`, each
/// connection is served on the core with the fewest; without, on tokio's
/// runtime as it schedules it.
pub async fn serve<A: App>(
    listener: TcpListener,
    state: Arc<A>,
    cores: Option<Arc<Cores>>,
    shutdown: impl Future<Output = ()>,
) {
    let timeouts = state.timeouts();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header_read)
        .max_buf_size(MAX_HEADER_BYTES.max(8192))
        .max_headers(MAX_HEADERS);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_concurrent_streams(1024)
        // HTTP/2 has no header timeout: a client that sent the preface and
        // then nothing (not even its SETTINGS) would be held for ever. A
        // connection silent for the header timeout is pinged, and closed
        // when the ping is not answered within it.
        .keep_alive_interval(timeouts.header_read)
        .keep_alive_timeout(timeouts.header_read);
    let graceful = GracefulShutdown::new();
    // Ends every connection still open when the drain is over.
    let (cut, cut_rx) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        // SSE events are small writes that must leave at once.
        let _ = stream.set_nodelay(true);
        let conn = Connection {
            peer,
            open: state.gauges().connection_opened(),
            state: state.clone(),
            builder: builder.clone(),
            watcher: graceful.watcher(),
            cut: cut_rx.clone(),
            timeouts,
        };
        match &cores {
            Some(cores) => cores.spawn(stream, move |stream, load| conn.serve(stream, load)),
            None => {
                tokio::spawn(conn.serve(stream, ()));
            }
        }
    }
    // New connections are refused from now on, rather than queued.
    drop(listener);
    state.gauges().set_draining();
    tracing::info!(
        in_flight = state.gauges().requests(),
        timeout_ms = timeouts.drain.as_millis() as u64,
        "shutting down: draining in-flight requests"
    );
    if tokio::time::timeout(timeouts.drain, graceful.shutdown()).await.is_err() {
        tracing::warn!(in_flight = state.gauges().requests(), "drain timed out; cutting the remaining requests");
    }
    // Also ends connections that never sent a request (graceful shutdown
    // does not know them).
    let _ = cut.send(true);
    let deadline = tokio::time::Instant::now() + CUT_GRACE;
    while state.gauges().connections() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One accepted connection and what serving it needs.
struct Connection<A> {
    peer: SocketAddr,
    open: ConnectionGuard,
    state: Arc<A>,
    builder: auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    cut: tokio::sync::watch::Receiver<bool>,
    timeouts: Timeouts,
}

impl<A: App> Connection<A> {
    /// `held` (the connection's count against its core) is dropped with it.
    async fn serve<H: Send>(self, mut stream: TcpStream, held: H) {
        let Connection { peer, open, state, builder, watcher, mut cut, timeouts } = self;
        let _held = (open, held);
        let served = async {
            let prefix = match read_prefix(&mut stream, timeouts.header_read).await {
                Ok(Some(p)) => p,
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "connection closed before its first request");
                    return;
                }
            };
            let io = ConnIo { inner: Some(stream), prefix, stall_limit: timeouts.write_stall, stalled: None };
            let svc = service_fn(move |req| state.clone().handle(req, peer));
            let conn = builder.serve_connection(TokioIo::new(io), svc);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        };
        // Dropping the connection drops its requests: their meters
        // record them as cut short.
        tokio::select! {
            _ = served => {}
            _ = crate::observe::admin::stopped(&mut cut) => tracing::debug!(%peer, "connection cut at the end of the drain"),
        }
    }
}

const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The first bytes of a connection, enough to tell HTTP/1 from HTTP/2.
///
/// hyper-util's auto builder reads them itself with no time limit, so a
/// client that connects and sends nothing (or part of the HTTP/2 preface)
/// would hold its connection for ever. They are read here under the header
/// timeout instead, and replayed to hyper. `None`: closed, or timed out.
async fn read_prefix(stream: &mut TcpStream, limit: Duration) -> io::Result<Option<Prefix>> {
    let mut p = Prefix { buf: [0; 24], len: 0, pos: 0 };
    let read = async {
        loop {
            let n = stream.read(&mut p.buf[p.len..]).await?;
            if n == 0 {
                return Ok(false);
            }
            p.len += n;
            // Decided once the bytes are the whole preface or differ from it.
            if p.len == H2_PREFACE.len() || p.buf[..p.len] != H2_PREFACE[..p.len] {
                return Ok(true);
            }
        }
    };
    match tokio::time::timeout(limit, read).await {
        Ok(Ok(true)) => Ok(Some(p)),
        Ok(Ok(false)) => Ok(None),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "no request within the header timeout")),
    }
}

struct Prefix {
    buf: [u8; 24],
    len: usize,
    pos: usize,
}

/// A client connection as hyper sees it: the prefix bytes replayed first,
/// and writes that make no progress for `stall_limit` failed.
///
/// hyper polls a response body only when the socket takes more bytes, so a
/// client that stops reading exerts backpressure all the way to Bedrock and
/// nothing piles up in memory. Without a limit, such a client would also
/// hold its Bedrock stream open for ever (the stream's own timers run only
/// while the body is polled).
struct ConnIo {
    /// Taken by `Drop`, for the lingering close.
    inner: Option<TcpStream>,
    prefix: Prefix,
    stall_limit: Duration,
    /// Running while the socket refuses bytes.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl ConnIo {
    fn io(&mut self) -> Pin<&mut TcpStream> {
        Pin::new(self.inner.as_mut().expect("the stream is only taken on drop"))
    }

    fn on_write(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        match r {
            Poll::Pending => {
                let limit = self.stall_limit;
                let timer = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client took no response bytes within the write timeout",
                    )));
                }
                Poll::Pending
            }
            done => {
                self.stalled = None;
                done
            }
        }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let p = &mut this.prefix;
        if p.pos < p.len {
            let n = (p.len - p.pos).min(buf.remaining());
            buf.put_slice(&p.buf[p.pos..p.pos + n]);
            p.pos += n;
            return Poll::Ready(Ok(()));
        }
        this.io().poll_read(cx, buf)
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = this.io().poll_write(cx, buf);
        this.on_write(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = this.io().poll_write_vectored(cx, bufs);
        this.on_write(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().io().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().io().poll_shutdown(cx)
    }
}

/// At most this long, a closed connection's late request bytes are read
/// and discarded; and at most this long between two of them.
const LINGER: Duration = Duration::from_secs(5);
const LINGER_IDLE: Duration = Duration::from_secs(1);

impl Drop for ConnIo {
    /// A lingering close (RFC 9112, 9.6). Closing a socket with request bytes
    /// still unread, or still arriving (a body refused with 413 from its
    /// Content-Length, a request behind one that failed), makes the kernel
    /// answer with a reset, and the client often loses the response it was
    /// sent, seeing a broken pipe instead. So the write side is shut, and
    /// what the client still sends is drained until it closes, or for a few
    /// seconds at most.
    fn drop(&mut self) {
        let Some(stream) = self.inner.take() else { return };
        let mut probe = [0u8; 1];
        if matches!(stream.try_read(&mut probe), Ok(0)) {
            return; // the client closed first: nothing can be lost
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(linger(stream));
        }
    }
}

async fn linger(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt;
    let _ = stream.shutdown().await;
    let deadline = tokio::time::Instant::now() + LINGER;
    let mut sink = [0u8; 16 * 1024];
    loop {
        let wait = deadline.min(tokio::time::Instant::now() + LINGER_IDLE);
        match tokio::time::timeout_at(wait, stream.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return,
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A connected (client, server) pair on loopback.
    pub(crate) async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (server, _) = l.accept().await.unwrap();
        (client, server)
    }

    #[tokio::test]
    async fn the_listener_holds_a_burst_of_connections_beyond_128() {
        let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn").ok();
        if somaxconn.and_then(|v| v.trim().parse::<u32>().ok()).is_some_and(|n| n < 300) {
            return; // the kernel caps every backlog below this test's burst
        }
        let l = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        // Nobody accepts: every connection waits in the kernel's queue.
        let mut held = Vec::new();
        for _ in 0..300 {
            let c = tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(addr)).await;
            held.push(c.expect("connected without a SYN retry").unwrap());
        }
    }

    #[tokio::test]
    async fn a_connection_that_sends_nothing_times_out() {
        let (_client, mut server) = pair().await;
        let e = read_prefix(&mut server, Duration::from_millis(50)).await.err().expect("a timeout");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn part_of_the_http2_preface_is_not_enough() {
        let (mut client, mut server) = pair().await;
        client.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        assert!(read_prefix(&mut server, Duration::from_millis(50)).await.is_err());
    }

    #[tokio::test]
    async fn http1_is_recognised_from_its_first_byte_and_replayed() {
        let (mut client, server) = pair().await;
        client.write_all(b"G").await.unwrap();
        let mut server = server;
        let p = read_prefix(&mut server, Duration::from_secs(5)).await.unwrap().expect("a prefix");
        assert_eq!(&p.buf[..p.len], b"G");
        client.write_all(b"ET / HTTP/1.1\r\n").await.unwrap();
        let mut io = ConnIo { inner: Some(server), prefix: p, stall_limit: Duration::from_secs(5), stalled: None };
        let mut got = vec![0u8; 16];
        io.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"GET / HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn the_whole_http2_preface_is_replayed() {
        let (mut client, mut server) = pair().await;
        client.write_all(H2_PREFACE).await.unwrap();
        let p = read_prefix(&mut server, Duration::from_secs(5)).await.unwrap().expect("a prefix");
        assert_eq!(&p.buf[..p.len], H2_PREFACE);
    }

    #[tokio::test]
    async fn a_closed_connection_gives_no_prefix() {
        let (client, mut server) = pair().await;
        drop(client);
        assert!(read_prefix(&mut server, Duration::from_secs(5)).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_response_survives_request_bytes_left_unread() {
        let (client, server) = pair().await;
        let p = Prefix { buf: [0; 24], len: 0, pos: 0 };
        let mut io = ConnIo { inner: Some(server), prefix: p, stall_limit: Duration::from_secs(5), stalled: None };
        io.write_all(b"HTTP/1.1 413 Payload Too Large\r\n\r\n").await.unwrap();
        drop(io); // closed with nothing read
        let (mut r, mut w) = client.into_split();
        // Without a lingering close, these bytes meet a reset.
        w.write_all(&vec![b'x'; 8 << 20]).await.expect("the upload ends without a reset");
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.expect("the response is still there");
        assert_eq!(got, b"HTTP/1.1 413 Payload Too Large\r\n\r\n");
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_fails_the_write_after_the_limit() {
        let (_client, server) = pair().await;
        let p = Prefix { buf: [0; 24], len: 0, pos: 0 };
        let mut io = ConnIo { inner: Some(server), prefix: p, stall_limit: Duration::from_millis(200), stalled: None };
        let chunk = vec![0u8; 1 << 20];
        let started = std::time::Instant::now();
        let e = loop {
            if let Err(e) = io.write_all(&chunk).await {
                break e;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "the write never stalled");
        };
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
