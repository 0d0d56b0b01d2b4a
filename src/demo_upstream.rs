//! The demo upstream: a small echo/REST API that records every request it receives.
//!
//! It is the upstream of the quickstart (`palisade demo-upstream`) and of the integration
//! tests: one port serves HTTP/1.1 and h2c (HTTP/2 with prior knowledge), WebSocket upgrades
//! and a gRPC-shaped unary echo. Every request is written into a bounded in-memory
//! [`Recorder`], which tests read directly or over HTTP (`GET /__requests`), so a test can
//! assert what the gateway let through, byte for byte, and that a blocked request never
//! arrived.
//!
//! | endpoint | answer |
//! |---|---|
//! | `GET /health` | 200 `ok` |
//! | `ANY /echo`, `ANY /echo/*` | JSON: method, path, query, version, headers, body length, sha256, the body when small |
//! | `GET /api/items`, `POST /api/items` | list, create (201 + `Location`) |
//! | `GET/PUT/DELETE /api/items/{id}` | read, replace, delete one item |
//! | `GET /slow?ms=N[&phase=body]` | waits N ms (max 60 000) before the response, or before its body |
//! | `ANY /status/{code}` | answers that status (200 to 599) |
//! | `GET /bytes/{n}` | n bytes (max 64 MiB) of `a..z` repeated |
//! | `GET /ws` | WebSocket echo (text and binary) |
//! | `POST /grpc.Echo/Echo` | gRPC unary echo: the same length-prefixed messages, `grpc-status: 0` trailer |
//! | `GET /__requests[?path=PREFIX][&limit=N]`, `DELETE /__requests` | the record as JSON (oldest first); clear it. Not recorded |
//!
//! Every response carries `x-upstream-name` so tests can tell several upstreams apart.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future as _;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use parking_lot::Mutex;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

/// How many requests a [`Recorder`] keeps by default (older ones are evicted first).
pub const DEFAULT_RECORD_CAPACITY: usize = 1024;
/// How many body bytes a [`RecordedRequest`] keeps; the length and sha256 cover the whole body.
pub const RECORDED_BODY_LIMIT: usize = 1024 * 1024;
/// The largest request body the demo upstream reads; larger ones get 413 (and are recorded).
pub const MAX_REQUEST_BODY: usize = 64 * 1024 * 1024;
/// Bodies up to this size are returned verbatim by `/echo` (when they are UTF-8).
pub const ECHO_INLINE_BODY_LIMIT: usize = 4096;
/// The largest response `/bytes/{n}` produces.
pub const MAX_BYTES_RESPONSE: usize = 64 * 1024 * 1024;
/// The longest delay `/slow?ms=N` accepts.
pub const MAX_SLOW_MS: u64 = 60_000;
/// The most items `/api/items` holds.
pub const MAX_ITEMS: usize = 10_000;
/// The path of the gRPC-shaped unary echo.
pub const GRPC_ECHO_PATH: &str = "/grpc.Echo/Echo";
/// The response header naming the upstream.
pub const UPSTREAM_NAME_HEADER: &str = "x-upstream-name";
/// A request header asking the gRPC echo to answer with this `grpc-status` instead of 0.
pub const GRPC_STATUS_REQUEST_HEADER: &str = "x-echo-grpc-status";
/// The record's own path: never recorded.
pub const REQUESTS_PATH: &str = "/__requests";

/// One request as the demo upstream received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Position in arrival order, from 1; keeps counting across evictions and clears.
    pub seq: u64,
    /// Request method.
    pub method: Method,
    /// Request target as received (path and query for origin-form).
    pub uri: http::Uri,
    /// HTTP version (`HTTP/1.1`, `HTTP/2.0`).
    pub version: http::Version,
    /// Request headers as received (for HTTP/2 the pseudo-headers are not included).
    pub headers: HeaderMap,
    /// Body bytes, the first [`RECORDED_BODY_LIMIT`] of them.
    pub body: Bytes,
    /// Length of the whole body received (also when the body failed part-way).
    pub body_len: usize,
    /// Hex sha256 of the whole body received.
    pub body_sha256: String,
    /// Why the body could not be read completely (peer gone mid-body, larger than
    /// [`MAX_REQUEST_BODY`]), if it could not; `body` then holds what arrived.
    pub body_error: Option<String>,
    /// The TCP peer (the gateway, when proxied).
    pub peer: SocketAddr,
    /// When the request head arrived.
    pub received_at: SystemTime,
}

impl RecordedRequest {
    /// The request path (without the query).
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// The first value of header `name`, when present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The request as the JSON object served by `GET /__requests`.
    pub fn to_json(&self) -> Value {
        let received_ms = self
            .received_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        json!({
            "seq": self.seq,
            "method": self.method.as_str(),
            "uri": self.uri.to_string(),
            "path": self.path(),
            "query": self.uri.query(),
            "version": format!("{:?}", self.version),
            "headers": headers_to_pairs(&self.headers),
            "body": String::from_utf8_lossy(&self.body),
            "body_len": self.body_len,
            "body_sha256": self.body_sha256,
            "body_error": self.body_error,
            "peer": self.peer.to_string(),
            "received_at_ms": received_ms,
        })
    }
}

/// A bounded, thread-safe record of the requests an upstream received.
///
/// It also carries the upstream's name (sent as `x-upstream-name`). Requests to
/// [`REQUESTS_PATH`] and to paths given to [`Recorder::ignoring_paths`] are neither recorded
/// nor counted.
#[derive(Debug)]
pub struct Recorder {
    name: String,
    name_header: HeaderValue,
    capacity: usize,
    ignored_paths: Vec<String>,
    ring: Mutex<VecDeque<RecordedRequest>>,
    started: AtomicU64,
    completed: AtomicU64,
    changed: Notify,
}

impl Recorder {
    /// A recorder for the upstream called `name`, keeping [`DEFAULT_RECORD_CAPACITY`] requests.
    ///
    /// Characters that may not appear in a header value are dropped from the name.
    pub fn new(name: &str) -> Self {
        Self::with_capacity(name, DEFAULT_RECORD_CAPACITY)
    }

    /// A recorder keeping at most `capacity` requests (at least 1).
    pub fn with_capacity(name: &str, capacity: usize) -> Self {
        let clean: String = name
            .chars()
            .filter(|c| c.is_ascii_graphic() || *c == ' ')
            .collect();
        let clean = if clean.trim().is_empty() {
            "demo".to_string()
        } else {
            clean.trim().to_string()
        };
        let name_header =
            HeaderValue::from_str(&clean).unwrap_or_else(|_| HeaderValue::from_static("demo"));
        Recorder {
            name: clean,
            name_header,
            capacity: capacity.max(1),
            ignored_paths: Vec::new(),
            ring: Mutex::new(VecDeque::new()),
            started: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            changed: Notify::new(),
        }
    }

    /// Also ignore requests to these exact paths (e.g. a health-check path), so that
    /// "the upstream received nothing" can be asserted while health checks run.
    pub fn ignoring_paths<I, S>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.ignored_paths.extend(paths.into_iter().map(Into::into));
        self
    }

    /// The upstream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many requests are kept at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// A copy of the kept requests, oldest first.
    pub fn snapshot(&self) -> Vec<RecordedRequest> {
        self.ring.lock().iter().cloned().collect()
    }

    /// The kept requests whose path is exactly `path`, oldest first.
    pub fn with_path(&self, path: &str) -> Vec<RecordedRequest> {
        self.ring
            .lock()
            .iter()
            .filter(|r| r.path() == path)
            .cloned()
            .collect()
    }

    /// The most recent request kept, if any.
    pub fn last(&self) -> Option<RecordedRequest> {
        self.ring.lock().back().cloned()
    }

    /// How many requests are kept now.
    pub fn len(&self) -> usize {
        self.ring.lock().len()
    }

    /// Whether no request is kept now.
    pub fn is_empty(&self) -> bool {
        self.ring.lock().is_empty()
    }

    /// How many request heads arrived since start (counted before the body is read, so a
    /// request whose body never completes is counted too). Not reset by [`Recorder::clear`].
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::SeqCst)
    }

    /// How many requests were recorded since start. Not reset by [`Recorder::clear`].
    pub fn total(&self) -> u64 {
        self.completed.load(Ordering::SeqCst)
    }

    /// Wait until [`Recorder::total`] reaches `n` or `timeout` passes; returns whether it did.
    ///
    /// For tests: a request is recorded once its body is read, which can be after the client
    /// saw its response or gave up.
    pub async fn wait_for_total(&self, n: u64, timeout: Duration) -> bool {
        self.wait_until(|r| r.total() >= n, timeout).await
    }

    /// Wait until [`Recorder::started`] reaches `n` or `timeout` passes; returns whether it did.
    pub async fn wait_for_started(&self, n: u64, timeout: Duration) -> bool {
        self.wait_until(|r| r.started() >= n, timeout).await
    }

    async fn wait_until(&self, done: impl Fn(&Self) -> bool, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if done(self) {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return done(self);
            }
        }
    }

    /// Forget the kept requests (counters keep counting).
    pub fn clear(&self) {
        self.ring.lock().clear();
    }

    /// The record as served by `GET /__requests`.
    pub fn to_json(&self) -> Value {
        self.to_json_filtered(None, None)
    }

    /// The record as served by `GET /__requests?path=P&limit=N`: only requests whose path
    /// starts with `path_prefix`, and of those only the newest `limit`.
    pub fn to_json_filtered(&self, path_prefix: Option<&str>, limit: Option<usize>) -> Value {
        let ring = self.ring.lock();
        let mut requests: Vec<Value> = ring
            .iter()
            .rev()
            .filter(|r| path_prefix.is_none_or(|p| r.path().starts_with(p)))
            .take(limit.unwrap_or(usize::MAX))
            .map(RecordedRequest::to_json)
            .collect();
        drop(ring);
        requests.reverse();
        json!({
            "name": self.name,
            "started": self.started(),
            "total": self.total(),
            "capacity": self.capacity,
            "requests": requests,
        })
    }

    fn ignores(&self, path: &str) -> bool {
        path == REQUESTS_PATH || self.ignored_paths.iter().any(|p| p == path)
    }

    fn note_started(&self) {
        self.started.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    fn push(&self, mut req: RecordedRequest) {
        let mut ring = self.ring.lock();
        req.seq = self.completed.fetch_add(1, Ordering::SeqCst) + 1;
        while ring.len() >= self.capacity {
            ring.pop_front();
        }
        ring.push_back(req);
        drop(ring);
        self.changed.notify_waiters();
    }
}

/// The demo upstream's application: the recorder plus the `/api/items` store.
#[derive(Debug)]
pub struct DemoUpstream {
    recorder: Arc<Recorder>,
    items: Mutex<Items>,
}

#[derive(Debug, Default)]
struct Items {
    next_id: u64,
    map: BTreeMap<u64, Value>,
}

/// Stops a demo upstream started by [`spawn_on`]: stops accepting and closes every open
/// connection (WebSockets included). Dropping the handle does the same.
#[derive(Debug)]
pub struct DemoHandle {
    stop: Option<watch::Sender<bool>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl DemoHandle {
    /// Stop the upstream and wait until its listener is closed.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for DemoHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
    }
}

impl DemoUpstream {
    /// An application recording into `recorder`.
    pub fn new(recorder: Arc<Recorder>) -> Self {
        DemoUpstream {
            recorder,
            items: Mutex::new(Items {
                next_id: 1,
                map: BTreeMap::new(),
            }),
        }
    }

    /// The recorder this application writes into.
    pub fn recorder(&self) -> &Arc<Recorder> {
        &self.recorder
    }

    /// Serve connections from `listener` until `stop` turns true or its sender is dropped.
    pub async fn serve_until(
        self: Arc<Self>,
        listener: TcpListener,
        mut stop: watch::Receiver<bool>,
    ) -> io::Result<()> {
        let builder = auto::Builder::new(TokioExecutor::new());
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Out of descriptors or a connection reset before accept: keep serving.
                        tracing::debug!(error = %e, "demo upstream: accept failed");
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                },
                _ = stopped(&mut stop) => return Ok(()),
            };
            let _ = stream.set_nodelay(true);
            let app = Arc::clone(&self);
            let builder = builder.clone();
            let mut conn_stop = stop.clone();
            tokio::spawn(async move {
                let svc_stop = conn_stop.clone();
                let svc = service_fn(move |req| {
                    let app = Arc::clone(&app);
                    let stop = svc_stop.clone();
                    async move { Ok::<_, Infallible>(app.handle(req, peer, stop).await) }
                });
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                tokio::select! {
                    res = conn => {
                        if let Err(e) = res {
                            tracing::debug!(error = %e, "demo upstream: connection ended");
                        }
                    }
                    _ = stopped(&mut conn_stop) => {}
                }
            });
        }
    }

    async fn handle(
        &self,
        mut req: Request<Incoming>,
        peer: SocketAddr,
        stop: watch::Receiver<bool>,
    ) -> Response<DemoBody> {
        let path = req.uri().path().to_string();
        let record = !self.recorder.ignores(&path);
        if record {
            self.recorder.note_started();
        }
        let received_at = SystemTime::now();

        // A WebSocket upgrade: take the upgrade future before the request is consumed.
        let on_upgrade = if path == "/ws" && is_websocket_upgrade(&req) {
            Some(hyper::upgrade::on(&mut req))
        } else {
            None
        };

        let (parts, body) = req.into_parts();
        let (body, body_error) = read_body(body).await;
        let body_sha256 = sha256_hex(&body);
        if record {
            self.recorder.push(RecordedRequest {
                seq: 0,
                method: parts.method.clone(),
                uri: parts.uri.clone(),
                version: parts.version,
                headers: parts.headers.clone(),
                body: body.slice(..body.len().min(RECORDED_BODY_LIMIT)),
                body_len: body.len(),
                body_sha256: body_sha256.clone(),
                body_error: body_error.clone(),
                peer,
                received_at,
            });
        }

        let mut resp = if let Some(err) = body_error {
            json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                &json!({"error": "body_unreadable", "detail": err}),
            )
        } else if let Some(on_upgrade) = on_upgrade {
            websocket_accept(&parts.headers, on_upgrade, stop)
        } else {
            let ctx = Req {
                method: &parts.method,
                uri: &parts.uri,
                version: parts.version,
                headers: &parts.headers,
                body: &body,
                body_sha256: &body_sha256,
                peer,
            };
            self.route(&ctx).await
        };
        resp.headers_mut().insert(
            HeaderName::from_static(UPSTREAM_NAME_HEADER),
            self.recorder.name_header.clone(),
        );
        resp
    }

    async fn route(&self, req: &Req<'_>) -> Response<DemoBody> {
        let path = req.uri.path();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (req.method, segments.as_slice()) {
            (&Method::GET | &Method::HEAD, ["health"]) => text_response(StatusCode::OK, "ok"),
            (_, ["echo", ..]) => self.echo(req),
            (&Method::GET, ["__requests"]) => {
                let query = req.uri.query();
                let prefix = query_arg(query, "path");
                let limit = query_arg(query, "limit").and_then(|v| v.parse().ok());
                json_response(
                    StatusCode::OK,
                    &self.recorder.to_json_filtered(prefix, limit),
                )
            }
            (&Method::DELETE, ["__requests"]) => {
                self.recorder.clear();
                empty_response(StatusCode::NO_CONTENT)
            }
            (_, ["__requests"]) => method_not_allowed("GET, DELETE"),
            (&Method::GET, ["api", "items"]) => self.list_items(),
            (&Method::POST, ["api", "items"]) => self.create_item(req.body),
            (_, ["api", "items"]) => method_not_allowed("GET, POST"),
            (method, ["api", "items", id]) => match id.parse::<u64>() {
                Ok(id) => self.one_item(method, id, req.body),
                Err(_) => not_found(path),
            },
            (&Method::GET, ["slow"]) => slow(req.uri.query()).await,
            (_, ["status", code]) => status(code),
            (&Method::GET, ["bytes", n]) => bytes_response(n),
            (_, ["ws"]) => json_response(
                StatusCode::BAD_REQUEST,
                &json!({"error": "websocket_upgrade_required"}),
            ),
            (_, ["grpc.Echo", "Echo"]) => grpc_echo(req),
            _ => not_found(path),
        }
    }

    fn echo(&self, req: &Req<'_>) -> Response<DemoBody> {
        let inline = if req.body.len() <= ECHO_INLINE_BODY_LIMIT {
            std::str::from_utf8(req.body).ok()
        } else {
            None
        };
        json_response(
            StatusCode::OK,
            &json!({
                "upstream": self.recorder.name(),
                "method": req.method.as_str(),
                "path": req.uri.path(),
                "query": req.uri.query(),
                "version": format!("{:?}", req.version),
                "headers": headers_to_object(req.headers),
                "body_len": req.body.len(),
                "body_sha256": req.body_sha256,
                "body": inline,
                "peer": req.peer.to_string(),
            }),
        )
    }

    fn list_items(&self) -> Response<DemoBody> {
        let items: Vec<Value> = self.items.lock().map.values().cloned().collect();
        json_response(StatusCode::OK, &json!({ "items": items }))
    }

    fn create_item(&self, body: &Bytes) -> Response<DemoBody> {
        let Some(mut obj) = parse_object(body) else {
            return bad_json();
        };
        let mut items = self.items.lock();
        if items.map.len() >= MAX_ITEMS {
            return json_response(
                StatusCode::INSUFFICIENT_STORAGE,
                &json!({"error": "too_many_items", "max": MAX_ITEMS}),
            );
        }
        let id = items.next_id;
        items.next_id += 1;
        obj.insert("id".to_string(), json!(id));
        let item = Value::Object(obj);
        items.map.insert(id, item.clone());
        drop(items);
        let mut resp = json_response(StatusCode::CREATED, &item);
        if let Ok(loc) = HeaderValue::from_str(&format!("/api/items/{id}")) {
            resp.headers_mut().insert(header::LOCATION, loc);
        }
        resp
    }

    fn one_item(&self, method: &Method, id: u64, body: &Bytes) -> Response<DemoBody> {
        let path = format!("/api/items/{id}");
        match *method {
            Method::GET | Method::HEAD => match self.items.lock().map.get(&id) {
                Some(item) => json_response(StatusCode::OK, item),
                None => not_found(&path),
            },
            Method::PUT => {
                let Some(mut obj) = parse_object(body) else {
                    return bad_json();
                };
                obj.insert("id".to_string(), json!(id));
                let item = Value::Object(obj);
                let mut items = self.items.lock();
                match items.map.get_mut(&id) {
                    Some(slot) => {
                        *slot = item.clone();
                        drop(items);
                        json_response(StatusCode::OK, &item)
                    }
                    None => not_found(&path),
                }
            }
            Method::DELETE => match self.items.lock().map.remove(&id) {
                Some(_) => empty_response(StatusCode::NO_CONTENT),
                None => not_found(&path),
            },
            _ => method_not_allowed("GET, PUT, DELETE"),
        }
    }
}

/// Serve the demo upstream on `listener` forever, recording into `state` (whose name is
/// sent as `x-upstream-name`).
pub async fn serve(listener: TcpListener, state: Arc<Recorder>) -> io::Result<()> {
    let (_keep, stop) = watch::channel(false);
    Arc::new(DemoUpstream::new(state))
        .serve_until(listener, stop)
        .await
}

/// Bind `addr` (port 0 for an OS-assigned port) and serve a demo upstream named `demo` in the
/// background: returns the bound address, the recorder and the handle that stops it.
pub async fn spawn_on(addr: SocketAddr) -> io::Result<(SocketAddr, Arc<Recorder>, DemoHandle)> {
    spawn_with(addr, Arc::new(Recorder::new("demo"))).await
}

/// Like [`spawn_on`], with a name (sent as `x-upstream-name`).
pub async fn spawn_named(
    addr: SocketAddr,
    name: &str,
) -> io::Result<(SocketAddr, Arc<Recorder>, DemoHandle)> {
    spawn_with(addr, Arc::new(Recorder::new(name))).await
}

/// Like [`spawn_on`], recording into a recorder the caller built (e.g. with
/// [`Recorder::ignoring_paths`]).
pub async fn spawn_with(
    addr: SocketAddr,
    recorder: Arc<Recorder>,
) -> io::Result<(SocketAddr, Arc<Recorder>, DemoHandle)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let (tx, rx) = watch::channel(false);
    let app = Arc::new(DemoUpstream::new(Arc::clone(&recorder)));
    let task = tokio::spawn(app.serve_until(listener, rx));
    Ok((
        local,
        recorder,
        DemoHandle {
            stop: Some(tx),
            task: Some(task),
        },
    ))
}

/// `palisade demo-upstream --listen ADDR --name N`: serve until Ctrl-C.
pub async fn run(addr: SocketAddr, name: String) -> io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let recorder = Arc::new(Recorder::new(&name));
    println!(
        "demo upstream '{}' listening on http://{local} (HTTP/1.1 and h2c; \
         WebSocket at /ws, gRPC echo at {GRPC_ECHO_PATH}, record at {REQUESTS_PATH})",
        recorder.name()
    );
    let (tx, rx) = watch::channel(false);
    let app = Arc::new(DemoUpstream::new(recorder));
    let server = tokio::spawn(app.serve_until(listener, rx));
    tokio::signal::ctrl_c().await?;
    let _ = tx.send(true);
    match server.await {
        Ok(res) => res,
        Err(e) => Err(io::Error::other(e)),
    }
}

/// Read the whole request body, up to [`MAX_REQUEST_BODY`]; on failure, what arrived so far
/// and why it stopped.
async fn read_body(mut body: Incoming) -> (Bytes, Option<String>) {
    let mut buf = BytesMut::new();
    loop {
        match body.frame().await {
            None => return (buf.freeze(), None),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if buf.len() + data.len() > MAX_REQUEST_BODY {
                        return (
                            buf.freeze(),
                            Some(format!("body larger than {MAX_REQUEST_BODY} bytes")),
                        );
                    }
                    buf.extend_from_slice(&data);
                }
            }
            Some(Err(e)) => return (buf.freeze(), Some(e.to_string())),
        }
    }
}

/// Resolves when the stop flag turns true or its sender is gone.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// The parts of a request the routes read.
struct Req<'a> {
    method: &'a Method,
    uri: &'a http::Uri,
    version: http::Version,
    headers: &'a HeaderMap,
    body: &'a Bytes,
    body_sha256: &'a str,
    peer: SocketAddr,
}

/// The response body: an optional delay, then one data frame, then optional trailers.
struct DemoBody {
    delay: Option<Pin<Box<tokio::time::Sleep>>>,
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl DemoBody {
    fn full(data: impl Into<Bytes>) -> Self {
        let data: Bytes = data.into();
        DemoBody {
            delay: None,
            data: (!data.is_empty()).then_some(data),
            trailers: None,
        }
    }

    fn empty() -> Self {
        DemoBody {
            delay: None,
            data: None,
            trailers: None,
        }
    }
}

impl Body for DemoBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(delay) = self.delay.as_mut() {
            if delay.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.delay = None;
        }
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if let Some(trailers) = self.trailers.take() {
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.delay.is_none() && self.data.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if self.trailers.is_some() {
            // Trailers need a chunked (HTTP/1.1) or streamed body: no exact length.
            let mut hint = SizeHint::new();
            hint.set_lower(self.data.as_ref().map_or(0, |d| d.len() as u64));
            return hint;
        }
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

fn text_response(status: StatusCode, text: &'static str) -> Response<DemoBody> {
    let mut resp = Response::new(DemoBody::full(Bytes::from_static(text.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn json_response(status: StatusCode, value: &Value) -> Response<DemoBody> {
    let mut body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    body.push(b'\n');
    let mut resp = Response::new(DemoBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn empty_response(status: StatusCode) -> Response<DemoBody> {
    let mut resp = Response::new(DemoBody::empty());
    *resp.status_mut() = status;
    resp
}

fn not_found(path: &str) -> Response<DemoBody> {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"error": "not_found", "path": path}),
    )
}

fn bad_json() -> Response<DemoBody> {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"error": "bad_json", "hint": "send a JSON object"}),
    )
}

fn method_not_allowed(allow: &'static str) -> Response<DemoBody> {
    let mut resp = json_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &json!({"error": "method_not_allowed", "allow": allow}),
    );
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

fn parse_object(body: &Bytes) -> Option<serde_json::Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(obj)) => Some(obj),
        _ => None,
    }
}

/// The value of query argument `name` (no percent-decoding: the demo reads numbers and paths).
fn query_arg<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

async fn slow(query: Option<&str>) -> Response<DemoBody> {
    let Some(ms) = query_arg(query, "ms").and_then(|v| v.parse::<u64>().ok()) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": "bad_ms", "hint": "use /slow?ms=N with 0 <= N <= 60000"}),
        );
    };
    let delay = Duration::from_millis(ms.min(MAX_SLOW_MS));
    if query_arg(query, "phase") == Some("body") {
        // Headers now, the body after the delay.
        let mut resp = text_response(StatusCode::OK, "slow\n");
        resp.body_mut().delay = Some(Box::pin(tokio::time::sleep(delay)));
        return resp;
    }
    tokio::time::sleep(delay).await;
    text_response(StatusCode::OK, "slow\n")
}

fn status(code: &str) -> Response<DemoBody> {
    match code.parse::<u16>() {
        Ok(code @ 200..=599) => match StatusCode::from_u16(code) {
            Ok(status) => json_response(status, &json!({"status": code})),
            Err(_) => bad_status(),
        },
        _ => bad_status(),
    }
}

fn bad_status() -> Response<DemoBody> {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"error": "bad_status", "hint": "use /status/{code} with 200 <= code <= 599"}),
    )
}

fn bytes_response(n: &str) -> Response<DemoBody> {
    let Some(n) = n.parse::<usize>().ok().filter(|n| *n <= MAX_BYTES_RESPONSE) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": "bad_length", "max": MAX_BYTES_RESPONSE}),
        );
    };
    let body: Vec<u8> = (b'a'..=b'z').cycle().take(n).collect();
    let mut resp = Response::new(DemoBody::full(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    resp
}

fn is_websocket_upgrade<B>(req: &Request<B>) -> bool {
    let has_token = |name: header::HeaderName, token: &str| {
        req.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
                .unwrap_or(false)
        })
    };
    req.method() == Method::GET
        && has_token(header::CONNECTION, "upgrade")
        && has_token(header::UPGRADE, "websocket")
}

fn websocket_accept(
    headers: &HeaderMap,
    on_upgrade: hyper::upgrade::OnUpgrade,
    mut stop: watch::Receiver<bool>,
) -> Response<DemoBody> {
    let version_ok = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13");
    let Some(key) = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .filter(|_| version_ok)
    else {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({
                "error": "bad_websocket_handshake",
                "hint": "need Sec-WebSocket-Key and Sec-WebSocket-Version: 13",
            }),
        );
    };
    let accept = derive_accept_key(key.as_bytes());
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "demo upstream: websocket upgrade failed");
                return;
            }
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        tokio::select! {
            _ = websocket_echo(ws) => {}
            _ = stopped(&mut stop) => {}
        }
    });
    let mut resp = empty_response(StatusCode::SWITCHING_PROTOCOLS);
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    resp
}

/// Echo text and binary messages; pings are answered and closes acknowledged by tungstenite.
async fn websocket_echo<S>(mut ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(m) if m.is_text() || m.is_binary() => {
                if ws.send(m).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// Check that `body` is a sequence of complete gRPC length-prefixed messages.
fn grpc_frames_valid(body: &[u8]) -> bool {
    let mut rest = body;
    while !rest.is_empty() {
        let Some((head, tail)) = rest.split_first_chunk::<5>() else {
            return false;
        };
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if head[0] > 1 || tail.len() < len {
            return false;
        }
        rest = &tail[len..];
    }
    true
}

fn grpc_echo(req: &Req<'_>) -> Response<DemoBody> {
    if req.method != Method::POST {
        return method_not_allowed("POST");
    }
    let is_grpc = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"));
    if !is_grpc {
        return json_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &json!({"error": "not_grpc", "hint": "content-type: application/grpc"}),
        );
    }
    let (code, message, data) = if !grpc_frames_valid(req.body) {
        (
            "13",
            Some("malformed length-prefixed message"),
            Bytes::new(),
        )
    } else {
        let asked = req
            .headers
            .get(GRPC_STATUS_REQUEST_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|s| !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit()));
        match asked {
            Some(code) if code != "0" => {
                (code, Some("requested by x-echo-grpc-status"), Bytes::new())
            }
            _ => ("0", None, req.body.clone()),
        }
    };
    let mut trailers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(code) {
        trailers.insert(HeaderName::from_static("grpc-status"), v);
    }
    if let Some(m) = message {
        if let Ok(v) = HeaderValue::from_str(m) {
            trailers.insert(HeaderName::from_static("grpc-message"), v);
        }
    }
    let mut resp = Response::new(DemoBody {
        delay: None,
        data: (!data.is_empty()).then_some(data),
        trailers: Some(trailers),
    });
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    resp
}

fn sha256_hex(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    let mut out = String::with_capacity(64);
    for b in digest.iter() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn header_value_string(v: &HeaderValue) -> String {
    String::from_utf8_lossy(v.as_bytes()).into_owned()
}

fn headers_to_pairs(headers: &HeaderMap) -> Vec<[String; 2]> {
    headers
        .iter()
        .map(|(k, v)| [k.as_str().to_string(), header_value_string(v)])
        .collect()
}

/// Headers as a JSON object; a repeated header's values are joined with ", ".
fn headers_to_object(headers: &HeaderMap) -> Value {
    let mut map = serde_json::Map::new();
    for name in headers.keys() {
        let joined = headers
            .get_all(name)
            .iter()
            .map(header_value_string)
            .collect::<Vec<_>>()
            .join(", ");
        map.insert(name.as_str().to_string(), Value::String(joined));
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_framing_accepts_whole_messages_only() {
        assert!(grpc_frames_valid(b""));
        assert!(grpc_frames_valid(&[0, 0, 0, 0, 2, b'h', b'i']));
        assert!(grpc_frames_valid(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 1, b'x']));
        assert!(!grpc_frames_valid(&[0, 0, 0, 0, 3, b'h', b'i']));
        assert!(!grpc_frames_valid(&[0, 0, 0]));
        assert!(!grpc_frames_valid(&[7, 0, 0, 0, 0]));
    }

    #[test]
    fn query_arg_finds_named_argument() {
        assert_eq!(query_arg(Some("a=1&ms=250&phase=body"), "ms"), Some("250"));
        assert_eq!(query_arg(Some("ms"), "ms"), Some(""));
        assert_eq!(query_arg(Some("xms=3"), "ms"), None);
        assert_eq!(query_arg(None, "ms"), None);
    }

    #[test]
    fn recorder_ring_is_bounded_and_keeps_counting() {
        let rec = Recorder::with_capacity("r", 2);
        for i in 0..5 {
            rec.push(RecordedRequest {
                seq: 0,
                method: Method::GET,
                uri: http::Uri::from_static("/x"),
                version: http::Version::HTTP_11,
                headers: HeaderMap::new(),
                body: Bytes::from(vec![b'a'; i]),
                body_len: i,
                body_sha256: sha256_hex(&vec![b'a'; i]),
                body_error: None,
                peer: SocketAddr::from(([127, 0, 0, 1], 1)),
                received_at: SystemTime::now(),
            });
        }
        let kept = rec.snapshot();
        assert_eq!(kept.len(), 2);
        assert_eq!(kept.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![4, 5]);
        assert_eq!(rec.total(), 5);
        rec.clear();
        assert!(rec.is_empty());
        assert_eq!(rec.total(), 5);
    }

    #[test]
    fn recorder_name_is_sanitised_for_the_header() {
        assert_eq!(Recorder::new("a\nb").name(), "ab");
        assert_eq!(Recorder::new("\u{1}").name(), "demo");
        assert_eq!(Recorder::new("pool-a 1").name(), "pool-a 1");
    }

    #[test]
    fn sha256_matches_known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
