//! The demo upstream over real sockets on OS-assigned ports: HTTP/1.1 and h2c through
//! reqwest, WebSocket through tokio-tungstenite, gRPC through a raw hyper HTTP/2 client, and
//! the recorder read directly and over HTTP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use palisade::demo_upstream::{
    spawn_named, spawn_on, spawn_with, Recorder, GRPC_ECHO_PATH, UPSTREAM_NAME_HEADER,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::Message;

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn h1() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .build()
        .expect("client")
}

fn h2c() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .expect("client")
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A body whose bytes differ by position, so truncation or reordering changes the hash.
fn patterned(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test]
async fn http1_echo_returns_request_and_is_recorded() {
    let (addr, rec, _h) = spawn_named(any_port(), "alpha").await.unwrap();
    let resp = h1()
        .post(format!("http://{addr}/echo/a/b?x=1&y=two"))
        .header("x-test", "one")
        .body("hello body")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_eq!(resp.headers()[UPSTREAM_NAME_HEADER], "alpha");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["method"], "POST");
    assert_eq!(v["path"], "/echo/a/b");
    assert_eq!(v["query"], "x=1&y=two");
    assert_eq!(v["version"], "HTTP/1.1");
    assert_eq!(v["headers"]["x-test"], "one");
    assert_eq!(v["body"], "hello body");
    assert_eq!(v["body_len"], 10);
    assert_eq!(v["body_sha256"], sha256_hex(b"hello body"));
    assert_eq!(v["upstream"], "alpha");

    let recorded = rec.snapshot();
    assert_eq!(recorded.len(), 1);
    let r = &recorded[0];
    assert_eq!(r.method, http::Method::POST);
    assert_eq!(r.uri.to_string(), "/echo/a/b?x=1&y=two");
    assert_eq!(r.version, http::Version::HTTP_11);
    assert_eq!(r.header("x-test"), Some("one"));
    assert_eq!(&r.body[..], b"hello body");
    assert_eq!(r.body_len, 10);
    assert!(r.body_error.is_none());
    assert_eq!(r.peer.ip(), addr.ip());
    assert_eq!(rec.started(), 1);
    assert_eq!(rec.total(), 1);
}

#[tokio::test]
async fn echo_of_large_body_gives_hash_not_body() {
    let (addr, rec, _h) = spawn_on(any_port()).await.unwrap();
    let body = patterned(200 * 1024);
    let v: Value = h1()
        .put(format!("http://{addr}/echo"))
        .body(body.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["body_len"], body.len());
    assert_eq!(v["body_sha256"], sha256_hex(&body));
    assert!(v["body"].is_null());
    let r = rec.last().unwrap();
    assert_eq!(r.body_len, body.len());
    assert_eq!(r.body_sha256, sha256_hex(&body));
    assert_eq!(&r.body[..], &body[..]);
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served_on_the_same_port() {
    let (addr, rec, _h) = spawn_named(any_port(), "h2").await.unwrap();
    let body = patterned(100 * 1024);
    let resp = h2c()
        .post(format!("http://{addr}/echo/h2"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.headers()[UPSTREAM_NAME_HEADER], "h2");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["version"], "HTTP/2.0");
    assert_eq!(v["body_sha256"], sha256_hex(&body));
    let r = rec.last().unwrap();
    assert_eq!(r.version, http::Version::HTTP_2);
    assert_eq!(r.path(), "/echo/h2");
    assert_eq!(r.body_sha256, sha256_hex(&body));

    // And HTTP/1.1 still works on the same listener.
    let resp = h1()
        .get(format!("http://{addr}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_eq!(resp.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn items_resource_supports_create_read_update_delete() {
    let (addr, _rec, _h) = spawn_on(any_port()).await.unwrap();
    let c = h1();
    let base = format!("http://{addr}/api/items");

    let v: Value = c.get(&base).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["items"], json!([]));

    let resp = c
        .post(&base)
        .json(&json!({"name": "O'Brien"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let created: Value = resp.json().await.unwrap();
    let id = created["id"].as_u64().unwrap();
    assert_eq!(location, format!("/api/items/{id}"));
    assert_eq!(created["name"], "O'Brien");

    let resp = c
        .post(&base)
        .json(&json!({"name": "second"}))
        .send()
        .await
        .unwrap();
    let id2 = resp.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
    assert_ne!(id, id2);

    let got: Value = c
        .get(format!("http://{addr}{location}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got, created);

    let resp = c
        .put(format!("{base}/{id}"))
        .json(&json!({"name": "renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let all: Value = c.get(&base).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        all["items"],
        json!([{"id": id, "name": "renamed"}, {"id": id2, "name": "second"}])
    );

    let resp = c.delete(format!("{base}/{id}")).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    let resp = c.get(format!("{base}/{id}")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "not_found");

    let resp = c.post(&base).body("not json").send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let resp = c.get(format!("{base}/abc")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let resp = c.patch(&base).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET, POST");
}

#[tokio::test]
async fn status_bytes_and_slow_endpoints() {
    let (addr, _rec, _h) = spawn_on(any_port()).await.unwrap();
    let c = h1();
    for code in [200u16, 204, 302, 404, 429, 500, 503] {
        let resp = c
            .get(format!("http://{addr}/status/{code}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), code);
        assert_eq!(resp.headers()[UPSTREAM_NAME_HEADER], "demo");
    }
    for bad in ["99", "600", "abc"] {
        let resp = c
            .get(format!("http://{addr}/status/{bad}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "/status/{bad}");
    }

    let body = c
        .get(format!("http://{addr}/bytes/70000"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.len(), 70000);
    let expected: Vec<u8> = (b'a'..=b'z').cycle().take(70000).collect();
    assert_eq!(&body[..], &expected[..]);
    let resp = c
        .get(format!("http://{addr}/bytes/999999999999"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    // The upstream waits at least the asked time (only a lower bound is asserted).
    for phase in ["", "&phase=body"] {
        let start = Instant::now();
        let resp = c
            .get(format!("http://{addr}/slow?ms=120{phase}"))
            .send()
            .await
            .unwrap();
        let text = resp.text().await.unwrap();
        assert_eq!(text, "slow\n");
        assert!(
            start.elapsed() >= Duration::from_millis(120),
            "phase {phase:?}"
        );
    }
    let resp = c
        .get(format!("http://{addr}/slow?ms=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn slow_body_phase_sends_headers_before_the_delay() {
    let (addr, _rec, _h) = spawn_on(any_port()).await.unwrap();
    let start = Instant::now();
    let resp = h1()
        .get(format!("http://{addr}/slow?ms=5000&phase=body"))
        .send()
        .await
        .unwrap();
    // The head arrived well before the body's 5 s delay.
    assert_eq!(resp.status(), 200);
    assert!(start.elapsed() < Duration::from_millis(4000));
}

#[tokio::test]
async fn record_is_served_over_http_and_cleared() {
    let (addr, rec, _h) = spawn_on(any_port()).await.unwrap();
    let c = h1();
    c.post(format!("http://{addr}/echo/one"))
        .header("x-k", "v")
        .body("b1")
        .send()
        .await
        .unwrap();
    c.get(format!("http://{addr}/health")).send().await.unwrap();

    let v: Value = c
        .get(format!("http://{addr}/__requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["name"], "demo");
    let reqs = v["requests"].as_array().unwrap();
    assert_eq!(reqs.len(), 2, "/__requests itself is not recorded: {v}");
    assert_eq!(reqs[0]["method"], "POST");
    assert_eq!(reqs[0]["path"], "/echo/one");
    assert_eq!(reqs[0]["body"], "b1");
    assert_eq!(reqs[0]["body_len"], 2);
    assert!(reqs[0]["headers"]
        .as_array()
        .unwrap()
        .contains(&json!(["x-k", "v"])));
    assert_eq!(reqs[1]["path"], "/health");
    assert_eq!(reqs[0]["seq"], 1);
    assert_eq!(reqs[1]["seq"], 2);

    // Filtered by path prefix, and limited to the newest N.
    c.get(format!("http://{addr}/echo/two"))
        .send()
        .await
        .unwrap();
    let v: Value = c
        .get(format!("http://{addr}/__requests?path=/echo&limit=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reqs = v["requests"].as_array().unwrap();
    assert_eq!(reqs.len(), 1, "{v}");
    assert_eq!(reqs[0]["path"], "/echo/two");
    let v: Value = c
        .get(format!("http://{addr}/__requests?path=/echo"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths: Vec<&str> = v["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/echo/one", "/echo/two"]);

    let resp = c
        .delete(format!("http://{addr}/__requests"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(rec.is_empty());
    assert_eq!(rec.total(), 3);
    let v: Value = c
        .get(format!("http://{addr}/__requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["requests"], json!([]));
}

#[tokio::test]
async fn ring_keeps_only_the_newest_requests() {
    let rec = Arc::new(Recorder::with_capacity("small", 3));
    let (addr, rec, _h) = spawn_with(any_port(), rec).await.unwrap();
    let c = h1();
    for i in 0..5 {
        c.get(format!("http://{addr}/echo/{i}"))
            .send()
            .await
            .unwrap();
    }
    let paths: Vec<String> = rec
        .snapshot()
        .iter()
        .map(|r| r.path().to_string())
        .collect();
    assert_eq!(paths, ["/echo/2", "/echo/3", "/echo/4"]);
    assert_eq!(rec.total(), 5);
}

#[tokio::test]
async fn ignored_paths_are_neither_recorded_nor_counted() {
    let rec = Arc::new(Recorder::new("hc").ignoring_paths(["/health"]));
    let (addr, rec, _h) = spawn_with(any_port(), rec).await.unwrap();
    let c = h1();
    for _ in 0..3 {
        c.get(format!("http://{addr}/health")).send().await.unwrap();
    }
    assert_eq!(rec.started(), 0);
    assert!(rec.is_empty());
    c.get(format!("http://{addr}/api/items"))
        .send()
        .await
        .unwrap();
    assert_eq!(rec.started(), 1);
    assert_eq!(rec.with_path("/api/items").len(), 1);
}

#[tokio::test]
async fn websocket_echo_over_http1_upgrade() {
    let (addr, rec, _h) = spawn_named(any_port(), "ws").await.unwrap();
    let (mut ws, resp) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    assert_eq!(resp.headers()[UPSTREAM_NAME_HEADER], "ws");

    ws.send(Message::text("hello ws")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hello ws"));
    let bin = patterned(70_000);
    ws.send(Message::binary(bin.clone())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(bin));
    ws.send(Message::Ping(Bytes::from_static(b"p")))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::Pong(Bytes::from_static(b"p"))
    );
    ws.close(None).await.unwrap();
    while let Some(msg) = ws.next().await {
        if msg.is_err() {
            break;
        }
    }

    let r = rec.with_path("/ws");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].header("upgrade"), Some("websocket"));

    // A plain GET on /ws is refused.
    let resp = h1().get(format!("http://{addr}/ws")).send().await.unwrap();
    assert_eq!(resp.status(), 400);
}

/// One gRPC unary call over h2c with a raw hyper client; returns status, data and trailers.
async fn grpc_call(
    addr: SocketAddr,
    body: Vec<u8>,
    extra: Option<(&str, &str)>,
) -> (u16, Bytes, http::HeaderMap, http::HeaderMap) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::post(format!("http://{addr}{GRPC_ECHO_PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some((k, v)) = extra {
        req = req.header(k, v);
    }
    let req = req.body(Full::new(Bytes::from(body))).unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().unwrap_or_default();
    (status, collected.to_bytes(), headers, trailers)
}

fn grpc_frame(msg: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(msg);
    out
}

#[tokio::test]
async fn grpc_unary_echo_with_trailers() {
    let (addr, rec, _h) = spawn_named(any_port(), "grpc").await.unwrap();
    let mut body = grpc_frame(b"\x0a\x05hello");
    body.extend(grpc_frame(b"second message"));
    let (status, data, headers, trailers) = grpc_call(addr, body.clone(), None).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/grpc");
    assert_eq!(headers[UPSTREAM_NAME_HEADER], "grpc");
    assert_eq!(&data[..], &body[..]);
    assert_eq!(trailers["grpc-status"], "0");

    let r = rec.last().unwrap();
    assert_eq!(r.path(), GRPC_ECHO_PATH);
    assert_eq!(r.version, http::Version::HTTP_2);
    assert_eq!(&r.body[..], &body[..]);

    // A truncated frame is answered with INTERNAL (13) and no data.
    let (_, data, _, trailers) = grpc_call(addr, vec![0, 0, 0, 0, 9, 1, 2], None).await;
    assert!(data.is_empty());
    assert_eq!(trailers["grpc-status"], "13");

    // A status can be asked for, to test how the gateway passes gRPC errors.
    let (_, _, _, trailers) =
        grpc_call(addr, grpc_frame(b"x"), Some(("x-echo-grpc-status", "14"))).await;
    assert_eq!(trailers["grpc-status"], "14");
}

#[tokio::test]
async fn grpc_needs_grpc_content_type() {
    let (addr, _rec, _h) = spawn_on(any_port()).await.unwrap();
    let resp = h2c()
        .post(format!("http://{addr}{GRPC_ECHO_PATH}"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
}

#[tokio::test]
async fn two_upstreams_are_told_apart_by_name() {
    let (a, ra, _ha) = spawn_named(any_port(), "pool-a").await.unwrap();
    let (b, rb, _hb) = spawn_named(any_port(), "pool-b").await.unwrap();
    let c = h1();
    let na = c.get(format!("http://{a}/health")).send().await.unwrap();
    let nb = c.get(format!("http://{b}/health")).send().await.unwrap();
    assert_eq!(na.headers()[UPSTREAM_NAME_HEADER], "pool-a");
    assert_eq!(nb.headers()[UPSTREAM_NAME_HEADER], "pool-b");
    assert_eq!(ra.total(), 1);
    assert_eq!(rb.total(), 1);
}

#[tokio::test]
async fn shutdown_closes_listener_and_open_connections() {
    let (addr, _rec, handle) = spawn_on(any_port()).await.unwrap();
    // An open HTTP/1.1 keep-alive connection, and an open WebSocket.
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let conn_task = tokio::spawn(conn);
    let req = http::Request::get("/health")
        .header("host", "x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(sender.send_request(req).await.unwrap().status(), 200);
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();

    handle.shutdown().await;

    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    // The server side closed the keep-alive connection: the client connection task ends.
    tokio::time::timeout(Duration::from_secs(5), conn_task)
        .await
        .expect("keep-alive connection closed")
        .unwrap()
        .ok();
    // The WebSocket ends too.
    let end = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("websocket closed");
    assert!(!matches!(end, Some(Ok(Message::Text(_)))));
}

#[tokio::test]
async fn unknown_path_is_json_404_and_recorded() {
    let (addr, rec, _h) = spawn_on(any_port()).await.unwrap();
    let resp = h1()
        .get(format!("http://{addr}/nope?q=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"], "not_found");
    assert_eq!(rec.last().unwrap().uri.to_string(), "/nope?q=1");
}

#[tokio::test]
async fn body_cut_short_is_recorded_with_what_arrived() {
    use tokio::io::AsyncWriteExt;
    let (addr, rec, _h) = spawn_on(any_port()).await.unwrap();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /echo/cut HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n0123456789")
        .await
        .unwrap();
    s.flush().await.unwrap();
    // The head is counted as soon as it arrives, before the body completes.
    assert!(
        rec.wait_for_started(1, Duration::from_secs(5)).await,
        "request head was not counted"
    );
    assert_eq!(rec.total(), 0, "not recorded before the body ends");
    drop(s);
    assert!(rec.wait_for_total(1, Duration::from_secs(5)).await);
    let r = rec.last().unwrap();
    assert_eq!(r.path(), "/echo/cut");
    assert_eq!(&r.body[..], b"0123456789");
    assert_eq!(r.body_len, 10);
    assert!(r.body_error.is_some());
}

#[tokio::test]
async fn chunked_request_body_is_recorded_whole() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (addr, rec, _h) = spawn_on(any_port()).await.unwrap();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"POST /echo/chunked HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n\
          5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    .await
    .unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.unwrap();
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("\"body\":\"hello world\""), "{text}");
    let r = rec.last().unwrap();
    assert_eq!(&r.body[..], b"hello world");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
}
