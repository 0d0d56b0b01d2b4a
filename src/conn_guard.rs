//! Stage 1, connection guards, applied where Pingora 0.9 gives (or lacks) a hook:
//!
//! | guard | where | how |
//! |---|---|---|
//! | per-IP concurrent connections | [`GuardedApp::process_new`] | a [`ConnPermit`] held for the whole connection (every keep-alive request, every h2 stream); over the cap the connection is closed before a byte is read |
//! | request header read timeout (slowloris) | [`GuardedStream`] | one deadline for the whole header block, counted from the connection's start or from the first byte of a keep-alive request; on expiry the read fails and Pingora closes the connection |
//! | body read timeout, minimum body rate | [`BodyTimer`] | every body read the gateway makes runs under `min(body_timeout, rate deadline)`; on expiry the gateway answers 408 and closes |
//! | header count and size caps | [`check_headers`] | after parsing, in `request_filter`: 431 |
//!
//! Pingora's own knobs do not fit: `ConnectionFilter` sees a connection's accept but not its
//! close (no counting), and `Session::set_read_timeout` bounds each read, not the whole header
//! block, so a client sending one byte every few seconds would never time out.

use crate::state::Shared;
use async_trait::async_trait;
use bytes::Bytes;
use palisade_guard::{BodyRate, ConnectionConfig, HeaderViolation, Timestamp};
use pingora::apps::ServerApp;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use pingora::proxy::{HttpProxy, ProxyHttp, Session};
use pingora::server::ShutdownWatch;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The connection settings in force: the guard's, or the defaults when no `guard:` is set.
pub fn connection_config(shared: &Shared) -> ConnectionConfig {
    match shared.guard.load().as_ref() {
        Some(g) => g.config().connections.clone(),
        None => ConnectionConfig::default(),
    }
}

/// Checks the request header count and size caps (answer 431 on `Err`), on the totals of the
/// request's [`palisade_waf::protocol::HeadScan`].
pub fn check_headers(
    shared: &Shared,
    head: &palisade_waf::protocol::HeadScan<'_>,
) -> Result<(), HeaderViolation> {
    let (count, bytes) = (head.count, head.section_bytes);
    match shared.guard.load().as_ref() {
        Some(g) => palisade_guard::check_header_totals(count, bytes, &g.config().connections),
        None => palisade_guard::check_header_totals(count, bytes, &DEFAULT_CONNECTIONS),
    }
}

static DEFAULT_CONNECTIONS: std::sync::LazyLock<ConnectionConfig> =
    std::sync::LazyLock::new(ConnectionConfig::default);

/// The Pingora application with connection guards around the proxy: counts each connection
/// against its peer's cap and wraps its stream in a [`GuardedStream`].
pub struct GuardedApp<SV: ProxyHttp> {
    inner: Arc<HttpProxy<SV>>,
    shared: Arc<Shared>,
}

impl<SV: ProxyHttp> GuardedApp<SV> {
    /// Wrap a proxy application.
    pub fn new(inner: HttpProxy<SV>, shared: Arc<Shared>) -> Self {
        GuardedApp {
            inner: Arc::new(inner),
            shared,
        }
    }
}

#[async_trait]
impl<SV> ServerApp for GuardedApp<SV>
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
    HttpProxy<SV>: ServerApp,
{
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let peer = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
        let guard = self.shared.guard.load_full();
        // Trusted proxies carry many clients: they are not capped.
        let permit = match (&guard, peer) {
            (Some(g), Some(ip)) if !g.is_trusted_proxy(ip) => match g.conns().try_acquire(ip) {
                Some(p) => Some(p),
                None => {
                    self.shared
                        .metrics
                        .blocked
                        .with_label_values(&[
                            palisade_analytics::names::stage::CONNECTION,
                            palisade_analytics::names::reason::TOO_MANY_CONNECTIONS,
                        ])
                        .inc();
                    tracing::debug!(peer = %ip, "connection refused: per-IP connection cap");
                    return None;
                }
            },
            _ => None,
        };
        drop(guard);
        let cfg = connection_config(&self.shared);
        let header_timeout = Duration::from_millis(cfg.header_timeout_ms);
        let guarded = GuardedStream::new(stream, header_timeout, self.shared.clone());
        let out = ServerApp::process_new(&self.inner, Box::new(guarded), shutdown).await;
        drop(permit);
        out
    }

    async fn cleanup(&self) {
        ServerApp::cleanup(self.inner.as_ref()).await;
    }
}

const PHASE_HEADERS: u8 = 0;
const PHASE_BUSY: u8 = 1;
const PHASE_IDLE: u8 = 2;
const PHASE_OFF: u8 = 3;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A downstream stream with a deadline on each request's header block.
///
/// Phases: `headers` (deadline armed) from the connection's start; `busy` once the gateway has
/// the parsed header ([`headers_done`]); `idle` after the request ends ([`request_done`]); the
/// first byte read while idle starts the next request's `headers` phase with a fresh deadline.
/// An HTTP/2 connection (the full client preface read) turns the deadline off: HTTP/2 header
/// frames are bounded by the h2 crate's own limits, not by this timer.
pub struct GuardedStream {
    inner: Stream,
    phase: AtomicU8,
    timeout: Duration,
    deadline: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
    preface_seen: usize,
    shared: Arc<Shared>,
}

impl fmt::Debug for GuardedStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedStream")
            .field("inner", &self.inner)
            .field("phase", &self.phase.load(Ordering::Relaxed))
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl GuardedStream {
    /// Wrap `inner`; the header deadline starts now (0 = no deadline).
    pub fn new(inner: Stream, timeout: Duration, shared: Arc<Shared>) -> Self {
        GuardedStream {
            inner,
            phase: AtomicU8::new(if timeout.is_zero() {
                PHASE_OFF
            } else {
                PHASE_HEADERS
            }),
            timeout,
            deadline: Instant::now() + timeout,
            sleep: None,
            preface_seen: 0,
            shared,
        }
    }

    fn set_phase(&self, from: &[u8], to: u8) {
        let cur = self.phase.load(Ordering::Acquire);
        if from.contains(&cur) {
            self.phase.store(to, Ordering::Release);
        }
    }

    /// Tracks the HTTP/2 client preface at the start of the connection.
    fn watch_preface(&mut self, read: &[u8]) {
        if self.preface_seen >= H2_PREFACE.len() || self.preface_seen == usize::MAX {
            return;
        }
        let want = &H2_PREFACE[self.preface_seen..];
        let n = want.len().min(read.len());
        if read.get(..n) == want.get(..n) {
            self.preface_seen += n;
            if self.preface_seen == H2_PREFACE.len() {
                self.phase.store(PHASE_OFF, Ordering::Release);
            }
        } else {
            self.preface_seen = usize::MAX;
        }
    }
}

/// Tell the connection of an HTTP/1 `session` that its request header has been read.
pub fn headers_done(session: &Session) {
    if let Some(g) = guarded(session) {
        g.set_phase(&[PHASE_HEADERS], PHASE_BUSY);
    }
}

/// Tell the connection of an HTTP/1 `session` that its request is over (the next byte read
/// starts a new header deadline).
pub fn request_done(session: &Session) {
    if let Some(g) = guarded(session) {
        g.set_phase(&[PHASE_HEADERS, PHASE_BUSY], PHASE_IDLE);
    }
}

fn guarded(session: &Session) -> Option<&GuardedStream> {
    session
        .as_ref()
        .stream()
        .and_then(|s| s.as_any().downcast_ref::<GuardedStream>())
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        let phase = this.phase.load(Ordering::Acquire);
        match &res {
            Poll::Ready(Ok(())) => {
                let got = buf.filled().get(before..).unwrap_or_default();
                if !got.is_empty() {
                    if this.preface_seen < H2_PREFACE.len() {
                        this.watch_preface(got);
                    }
                    if phase == PHASE_IDLE {
                        this.deadline = Instant::now() + this.timeout;
                        this.phase.store(PHASE_HEADERS, Ordering::Release);
                    }
                }
                res
            }
            Poll::Ready(Err(_)) => res,
            Poll::Pending => {
                if phase != PHASE_HEADERS {
                    return Poll::Pending;
                }
                let deadline = this.deadline;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if sleep.deadline() != deadline {
                    sleep.as_mut().reset(deadline);
                }
                match sleep.as_mut().poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(()) => {
                        this.phase.store(PHASE_OFF, Ordering::Release);
                        this.shared
                            .metrics
                            .blocked
                            .with_label_values(&[
                                palisade_analytics::names::stage::CONNECTION,
                                palisade_analytics::names::reason::HEADER_TIMEOUT,
                            ])
                            .inc();
                        Poll::Ready(Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("request header not received within {:?}", this.timeout),
                        )))
                    }
                }
            }
        }
    }
}

use std::future::Future;

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for GuardedStream {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for GuardedStream {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for GuardedStream {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }
    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for GuardedStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for GuardedStream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for GuardedStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, d: SocketDigest) {
        self.inner.set_socket_digest(d)
    }
}

#[async_trait]
impl Peek for GuardedStream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

/// Why a body read was cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyTimeout {
    /// No body byte within `body_timeout_ms`.
    Idle,
    /// The body's average rate fell under `min_body_rate_bps` after the grace period.
    TooSlow,
}

impl BodyTimeout {
    /// The reason code of the 408 answer.
    pub fn reason(self) -> &'static str {
        match self {
            BodyTimeout::Idle => palisade_analytics::names::reason::BODY_TIMEOUT,
            BodyTimeout::TooSlow => palisade_analytics::names::reason::BODY_TOO_SLOW,
        }
    }
}

/// Times one request body: each read must bring bytes within `body_timeout_ms`, and the body
/// must keep an average of `min_body_rate_bps` once `body_rate_grace_ms` has passed.
#[derive(Debug)]
pub struct BodyTimer {
    rate: BodyRate,
    idle: Duration,
}

fn now_ts() -> Timestamp {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    Timestamp::from_nanos(ns)
}

impl BodyTimer {
    /// Starts timing now (the header has been read).
    pub fn new(cfg: &ConnectionConfig) -> Self {
        BodyTimer {
            rate: BodyRate::from_config(cfg, now_ts()),
            idle: if cfg.body_timeout_ms == 0 {
                Duration::MAX
            } else {
                Duration::from_millis(cfg.body_timeout_ms)
            },
        }
    }

    /// Reads the next body chunk under the timers: `Ok(Err(_))` when a timer expired.
    pub async fn read(
        &mut self,
        session: &mut Session,
    ) -> pingora::Result<Result<Option<Bytes>, BodyTimeout>> {
        let (limit, why) = match self.rate.deadline() {
            Some(d) => {
                let left = d.saturating_duration_since(now_ts());
                if left < self.idle {
                    (left, BodyTimeout::TooSlow)
                } else {
                    (self.idle, BodyTimeout::Idle)
                }
            }
            None => (self.idle, BodyTimeout::Idle),
        };
        if limit.is_zero() {
            return Ok(Err(why));
        }
        // A body that cannot be read (bad chunking, reset) is the client's fault: 400, not 5xx.
        let down = |mut e: Box<pingora::Error>| {
            e.as_down();
            e
        };
        let read = session.as_mut().read_request_body();
        let chunk = if limit == Duration::MAX {
            read.await.map_err(down)?
        } else {
            match tokio::time::timeout(limit, read).await {
                Ok(r) => r.map_err(down)?,
                Err(_) => return Ok(Err(why)),
            }
        };
        if let Some(c) = &chunk {
            self.rate.record(c.len());
        }
        Ok(Ok(chunk))
    }
}
