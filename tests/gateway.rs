//! Gateway core, end to end: a real `palisade run` process, real demo upstreams on OS-assigned
//! ports, real clients (HTTP/1.1, h2c, TLS with ALPN h2, WebSocket, gRPC over h2c).

mod common;

use bytes::Bytes;
use common::{client, eventually, pool_yaml, Gateway};
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use palisade::demo_upstream::{spawn_named, spawn_on};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn any() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn simple(upstream: SocketAddr, route_extra: &str) -> String {
    format!(
        "upstreams:\n{}routes:\n  - name: items\n    path: /api/items/{{id}}\n    methods: [GET]\n    upstream: demo\n  - name: all\n    path: /*\n    upstream: demo\n{route_extra}",
        pool_yaml("demo", &[upstream], "")
    )
}

async fn json(resp: reqwest::Response) -> serde_json::Value {
    resp.json().await.expect("json body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_http1_with_request_id_and_forwarded_headers() {
    let (up, rec, _h) = spawn_on(any()).await.expect("upstream");
    let gw = Gateway::start(&simple(up, ""));
    let c = client();

    let r = c.get(gw.url("/echo/hello?x=1")).send().await.expect("send");
    assert_eq!(r.status(), 200);
    let rid = r.headers()["x-request-id"]
        .to_str()
        .expect("id")
        .to_string();
    assert_eq!(rid.len(), 32, "generated ids are 128-bit hex");
    let got = rec.last().expect("upstream saw the request");
    assert_eq!(got.uri.to_string(), "/echo/hello?x=1");
    assert_eq!(got.header("x-request-id"), Some(rid.as_str()));
    assert_eq!(got.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(got.header("x-forwarded-proto"), Some("http"));

    // A propagated id is kept end to end.
    let r = c
        .get(gw.url("/echo/again"))
        .header("x-request-id", "client-chosen-42")
        .send()
        .await
        .expect("send");
    assert_eq!(r.headers()["x-request-id"], "client-chosen-42");
    assert_eq!(
        rec.last().expect("seen").header("x-request-id"),
        Some("client-chosen-42")
    );

    // Dot segments are resolved before routing and forwarding.
    let r = c.get(gw.url("/echo/a/../b")).send().await.expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(rec.last().expect("seen").path(), "/echo/b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_template_and_method_with_json_errors() {
    let (up, rec, _h) = spawn_on(any()).await.expect("upstream");
    let body = format!(
        "upstreams:\n{}routes:\n  - name: item\n    path: /api/items/{{id}}\n    methods: [GET]\n    upstream: demo\n  - name: other-host\n    hosts: [\"api.example.com\"]\n    path: /*\n    upstream: demo\n",
        pool_yaml("demo", &[up], "")
    );
    let gw = Gateway::start(&body);
    let c = client();

    let r = c
        .post(gw.url("/api/items"))
        .json(&serde_json::json!({"name": "a"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404, "no route for /api/items on this host");
    let rid = r.headers()["x-request-id"]
        .to_str()
        .expect("id")
        .to_string();
    let v = json(r).await;
    assert_eq!(v["reason"], "no_route");
    assert_eq!(v["request_id"], rid.as_str());

    let r = c.delete(gw.url("/api/items/1")).send().await.expect("send");
    assert_eq!(r.status(), 405);
    assert_eq!(json(r).await["reason"], "method_not_allowed");

    let before = rec.total();
    let r = c.get(gw.url("/api/items/7")).send().await.expect("send");
    assert_eq!(
        r.status(),
        404,
        "the demo store is empty, so the upstream answers 404"
    );
    assert_eq!(rec.total(), before + 1);

    let r = c
        .get(gw.url("/anything"))
        .header("host", "api.example.com")
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.status(),
        404,
        "demo has no /anything but the route matched"
    );
    assert_eq!(rec.last().expect("seen").path(), "/anything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_h2c_and_tls_with_alpn_h2() {
    let (up, rec, _h) = spawn_on(any()).await.expect("upstream");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let cert_pem = ck.cert.pem();
    let key_pem = ck.signing_key.serialize_pem();
    let tls_port = common::free_port();
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("cert.pem"), &cert_pem).expect("cert");
    std::fs::write(dir.path().join("key.pem"), &key_pem).expect("key");
    let plain_port = common::free_port();
    let admin_port = common::free_port();
    let cfg = format!(
        "listeners:\n  - address: 127.0.0.1:{plain_port}\n  - address: 127.0.0.1:{tls_port}\n    tls: {{cert: cert.pem, key: key.pem}}\nadmin:\n  address: 127.0.0.1:{admin_port}\n{}",
        simple(up, "")
    );
    let path = dir.path().join("p.yaml");
    std::fs::write(&path, cfg).expect("write");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["run", "--config"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let _guard = KillOnDrop(child.id());
    let ok = eventually(Duration::from_secs(20), async || {
        std::net::TcpStream::connect(("127.0.0.1", tls_port)).is_ok()
            && std::net::TcpStream::connect(("127.0.0.1", plain_port)).is_ok()
    })
    .await;
    assert!(ok, "gateway with TLS listener did not start");

    // h2c with prior knowledge.
    let h2c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let r = h2c
        .get(format!("http://127.0.0.1:{plain_port}/echo/h2c"))
        .send()
        .await
        .expect("h2c send");
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert_eq!(rec.last().expect("seen").path(), "/echo/h2c");

    // TLS, ALPN negotiates h2.
    let tls = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("pem"))
        .resolve("localhost", SocketAddr::from(([127, 0, 0, 1], tls_port)))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let r = tls
        .post(format!("https://localhost:{tls_port}/echo/tls"))
        .body(vec![b'x'; 100_000])
        .send()
        .await
        .expect("tls send");
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    let last = rec.last().expect("seen");
    assert_eq!(last.path(), "/echo/tls");
    assert_eq!(last.body_len, 100_000, "a 100 KB HTTP/2 body arrives whole");
    assert_eq!(last.header("x-forwarded-proto"), Some("https"));
    let _ = child.kill();
    let _ = child.wait();
}

/// Kills a process when the test ends, also when it panics.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg(self.0.to_string())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_websocket_upgrades() {
    let (up, _rec, _h) = spawn_on(any()).await.expect("upstream");
    let gw = Gateway::start(&simple(up, ""));
    let (mut ws, resp) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/ws", gw.port))
        .await
        .expect("ws connect through the gateway");
    assert_eq!(resp.status(), 101);
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        "ping through palisade",
    ))
    .await
    .expect("send");
    let echoed = ws.next().await.expect("frame").expect("ok");
    assert_eq!(
        echoed.into_text().expect("text").as_str(),
        "ping through palisade"
    );
    ws.close(None).await.expect("close");
}

fn grpc_frame(msg: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(msg);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_grpc_over_h2c_with_trailers() {
    let (up, rec, _h) = spawn_named(any(), "grpc").await.expect("upstream");
    let body = format!(
        "upstreams:\n{}routes:\n  - name: grpc\n    path: /*\n    upstream: grpc\n",
        pool_yaml("grpc", &[up], "http2: true")
    );
    let gw = Gateway::start(&body);
    let stream = tokio::net::TcpStream::connect(gw.addr())
        .await
        .expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let msg = grpc_frame(b"\x0a\x05hello");
    let req = http::Request::post(format!("http://127.0.0.1:{}/grpc.Echo/Echo", gw.port))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from(msg.clone())))
        .expect("req");
    let resp = sender.send_request(req).await.expect("grpc call");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-upstream-name"], "grpc");
    let collected = resp.into_body().collect().await.expect("body");
    let trailers = collected
        .trailers()
        .cloned()
        .expect("grpc trailers pass through");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(collected.to_bytes().as_ref(), msg.as_slice());
    assert_eq!(rec.last().expect("seen").version, http::Version::HTTP_2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_upstream_gets_json_502_and_slow_one_504() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let (slow, _rec, _h) = spawn_on(any()).await.expect("upstream");
    let body = format!(
        "upstreams:\n{}{}routes:\n  - name: dead\n    path: /dead/*\n    upstream: dead\n  - name: slow\n    path: /*\n    upstream: slow\n",
        pool_yaml("dead", &[dead], "retries: 0"),
        pool_yaml("slow", &[slow], "timeouts: {read_ms: 300}\nretries: 0")
    );
    let gw = Gateway::start(&body);
    let c = client();
    let r = c.get(gw.url("/dead/x")).send().await.expect("send");
    assert_eq!(r.status(), 502);
    // The connection is closed after a failed upstream attempt, and the client is told so.
    assert_eq!(r.headers()["connection"], "close");
    let rid = r.headers()["x-request-id"]
        .to_str()
        .expect("id")
        .to_string();
    let v = json(r).await;
    assert_eq!(v["reason"], "upstream_unavailable");
    assert_eq!(v["request_id"], rid.as_str());

    let r = c.get(gw.url("/slow?ms=3000")).send().await.expect("send");
    assert_eq!(r.status(), 504);
    assert_eq!(json(r).await["reason"], "upstream_timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_eject_and_recover_targets() {
    let (a, rec_a, ha) = spawn_named(any(), "a").await.expect("a");
    let (b, _rec_b, _hb) = spawn_named(any(), "b").await.expect("b");
    let body = format!(
        "upstreams:\n{}routes:\n  - name: all\n    path: /*\n    upstream: pool\n",
        pool_yaml(
            "pool",
            &[a, b],
            "health_check: {path: /health, interval_ms: 100, timeout_ms: 200, unhealthy_threshold: 1, healthy_threshold: 1}\nretries: 0\npassive: {max_failures: 0}"
        )
    );
    let gw = Gateway::start(&body);
    let c = client();
    let names = |c: reqwest::Client, url: String| async move {
        let mut v = Vec::new();
        for _ in 0..10 {
            if let Ok(r) = c.get(&url).send().await {
                v.push(
                    r.headers()
                        .get("x-upstream-name")
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or("-")
                        .to_string(),
                );
            }
        }
        v
    };
    let seen = names(c.clone(), gw.url("/health")).await;
    assert!(
        seen.contains(&"a".to_string()) && seen.contains(&"b".to_string()),
        "{seen:?}"
    );

    ha.shutdown().await;
    let url = gw.url("/echo/x");
    let ejected = eventually(Duration::from_secs(10), async || {
        names(c.clone(), url.clone()).await.iter().all(|n| n == "b")
    })
    .await;
    assert!(ejected, "traffic should leave the dead target");
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(&format!(
            "palisade_upstream_healthy{{pool=\"pool\",target=\"{a}\"}} 0"
        )),
        "{metrics}"
    );

    // Bring `a` back on the same port: it gets traffic again.
    let (_a2, rec_a2, _ha2) = spawn_named(a, "a").await.expect("a again");
    let recovered = eventually(Duration::from_secs(10), async || {
        names(c.clone(), url.clone()).await.iter().any(|n| n == "a")
    })
    .await;
    assert!(
        recovered,
        "the target should be used again after it recovers"
    );
    assert!(rec_a2.total() > 0);
    drop(rec_a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_failures_are_retried_and_targets_passively_ejected() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let (live, rec, _h) = spawn_on(any()).await.expect("live");
    let body = format!(
        "upstreams:\n{}routes:\n  - name: all\n    path: /*\n    upstream: pool\n",
        pool_yaml(
            "pool",
            &[dead, live],
            "retries: 1\npassive: {max_failures: 2, ejection_ms: 60000}"
        )
    );
    let gw = Gateway::start(&body);
    let c = client();
    for i in 0..6 {
        let r = if i % 2 == 0 {
            c.get(gw.url("/echo/get")).send().await.expect("send")
        } else {
            // nothing was sent to the dead target, so even POST is retried
            c.post(gw.url("/echo/post"))
                .body("x")
                .send()
                .await
                .expect("send")
        };
        assert_eq!(
            r.status(),
            200,
            "request {i} should be retried on the live target"
        );
    }
    assert_eq!(rec.total(), 6);
    let m = gw.metrics().await;
    let failures: u64 = m
        .lines()
        .find(|l| l.starts_with("palisade_upstream_failures_total{kind=\"connect\",pool=\"pool\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(
        (1..=2).contains(&failures),
        "the dead target is ejected after 2 failures; saw {failures}\n{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_hanging_up_do_not_eject_the_upstream() {
    let (up, _rec, _h) = spawn_on(any()).await.expect("upstream");
    let body = format!(
        "upstreams:\n{}routes:\n  - name: all\n    path: /*\n    upstream: pool\n",
        pool_yaml(
            "pool",
            &[up],
            "retries: 0\npassive: {max_failures: 1, ejection_ms: 60000}"
        )
    );
    let gw = Gateway::start(&body);
    // Clients that send a request and hang up while the upstream is still answering.
    for _ in 0..3 {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
            .await
            .expect("connect");
        s.write_all(b"GET /slow?ms=400 HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .expect("write");
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(s);
    }
    // Give the gateway time to notice the hang-ups (the upstream answers after 400 ms).
    tokio::time::sleep(Duration::from_millis(600)).await;
    let r = client().get(gw.url("/echo/x")).send().await.expect("send");
    assert_eq!(r.status(), 200, "the only target must not be ejected");
    let m = gw.metrics().await;
    assert!(
        !m.lines()
            .any(|l| l.starts_with("palisade_upstream_failures_total")
                && l.contains("pool=\"pool\"")
                && !l.ends_with(" 0")),
        "client hang-ups counted as upstream failures:\n{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_is_answered_at_the_gateway() {
    let (up, rec, _h) = spawn_on(any()).await.expect("upstream");
    let extra = "    cors:\n      allow_origins: [\"https://app.example.com\"]\n      expose_headers: [X-Request-Id]\n      allow_credentials: true\n";
    let gw = Gateway::start(&simple(up, extra));
    let c = client();
    let r = c
        .request(reqwest::Method::OPTIONS, gw.url("/echo/x"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "PUT")
        .header("access-control-request-headers", "x-api-key, content-type")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 204);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(
        r.headers()["access-control-allow-headers"],
        "x-api-key, content-type"
    );
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    assert_eq!(rec.total(), 0, "the preflight never reaches the upstream");

    let r = c
        .request(reqwest::Method::OPTIONS, gw.url("/echo/x"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "PUT")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("access-control-allow-origin").is_none());

    let r = c
        .get(gw.url("/echo/x"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(r.headers()["access-control-expose-headers"], "X-Request-Id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_rules_and_body_cap() {
    let (up, rec, _h) = spawn_on(any()).await.expect("upstream");
    let extra = "    max_body_bytes: 300000\n    request_headers:\n      add: {X-Gateway: palisade}\n      remove: [X-Internal]\n    response_headers:\n      add: {X-Frame-Options: DENY}\n      remove: [x-upstream-name]\n";
    let gw = Gateway::start(&simple(up, extra));
    let c = client();
    let r = c
        .get(gw.url("/echo/h"))
        .header("x-internal", "secret")
        .send()
        .await
        .expect("send");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert!(r.headers().get("x-upstream-name").is_none());
    let seen = rec.last().expect("seen");
    assert_eq!(seen.header("x-gateway"), Some("palisade"));
    assert_eq!(seen.header("x-internal"), None);

    let before = rec.total();
    let r = c
        .post(gw.url("/echo/big"))
        .body(vec![0u8; 400_000])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 413);
    assert_eq!(json(r).await["reason"], "body_too_large");
    // chunked, no declared length: counted while read
    let chunks =
        futures_util::stream::iter((0..40).map(|_| Ok::<_, std::io::Error>(vec![1u8; 10_000])));
    let r = c
        .post(gw.url("/echo/big-chunked"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await;
    if let Ok(r) = r {
        assert_eq!(r.status(), 413);
    }
    assert_eq!(
        rec.total(),
        before,
        "refused bodies never reach the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_of_every_shape_arrive_intact() {
    let (up, rec, _h) = spawn_on(any()).await.expect("upstream");
    let gw = Gateway::start(&simple(up, ""));
    let c = client();
    for size in [10usize, 40_000, 65_536, 130_000, 1_000_000] {
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let r = c
            .post(gw.url("/echo/cl"))
            .body(data.clone())
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200, "content-length body of {size}");
        let seen = rec.last().expect("seen");
        assert_eq!(
            seen.body_len, size,
            "content-length body of {size} arrives whole"
        );
        assert!(seen.body_error.is_none());

        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            data.chunks(16_000).map(|c| Ok(c.to_vec())).collect();
        let r = c
            .post(gw.url("/echo/chunked"))
            .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                chunks,
            )))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200, "chunked body of {size}");
        assert_eq!(
            rec.last().expect("seen").body_len,
            size,
            "chunked body of {size} arrives whole"
        );
    }

    // Expect: 100-continue over a raw socket: the gateway answers 100, reads, then forwards.
    let mut s = tokio::net::TcpStream::connect(gw.addr())
        .await
        .expect("connect");
    s.write_all(b"POST /echo/expect HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut buf = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("100 in time")
        .expect("read");
    assert!(std::str::from_utf8(&buf[..n])
        .unwrap_or("")
        .starts_with("HTTP/1.1 100"));
    s.write_all(b"hello").await.expect("body");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    assert!(String::from_utf8_lossy(&rest).contains("200 OK"));
    let seen = rec.last().expect("seen");
    assert_eq!(seen.body.as_ref(), b"hello");
    assert!(seen.header("expect").is_none());
}

fn write_reload_config(gw: &Gateway, up: SocketAddr, marker: &str) {
    gw.write_config(&simple(
        up,
        &format!("    response_headers:\n      add: {{X-Config: {marker}}}\n"),
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_lose_no_request() {
    let (up, _rec, _h) = spawn_on(any()).await.expect("upstream");
    let gw = Gateway::start(&simple(
        up,
        "    response_headers:\n      add: {X-Config: one}\n",
    ));
    let c = client();
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (c, url, stop, ok, failed) = (
            c.clone(),
            gw.url("/echo/load"),
            stop.clone(),
            ok.clone(),
            failed.clone(),
        );
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match c.get(&url).send().await {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    let header = |c: reqwest::Client, url: String| async move {
        c.get(url).send().await.ok().and_then(|r| {
            r.headers()
                .get("x-config")
                .map(|v| v.to_str().unwrap_or("").to_string())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Good reload through the admin API.
    write_reload_config(&gw, up, "two");
    let r = c.post(gw.admin_url("/reload")).send().await.expect("send");
    assert_eq!(r.status(), 401, "mutations need the bearer token");
    let r = c
        .post(gw.admin_url("/reload"))
        .bearer_auth(&gw.token)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(c.clone(), gw.url("/echo/h")).await.as_deref(),
        Some("two")
    );

    // Bad reload: rejected with the error, the old config keeps serving.
    gw.write_config("routes:\n  - name: x\n    path: /*\n    upstream: missing\n    typo_key: 1\n");
    let r = c
        .post(gw.admin_url("/reload"))
        .bearer_auth(&gw.token)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 422);
    let v = json(r).await;
    let errors = v["errors"].to_string();
    assert!(errors.contains("palisade.yaml:"), "{errors}");
    assert!(errors.contains("unknown field `typo_key`"), "{errors}");
    assert_eq!(
        header(c.clone(), gw.url("/echo/h")).await.as_deref(),
        Some("two")
    );

    // SIGHUP, bad then good.
    gw.signal("HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        header(c.clone(), gw.url("/echo/h")).await.as_deref(),
        Some("two")
    );
    write_reload_config(&gw, up, "three");
    gw.signal("HUP");
    let switched = eventually(Duration::from_secs(5), async || {
        header(c.clone(), gw.url("/echo/h")).await.as_deref() == Some("three")
    })
    .await;
    assert!(switched, "SIGHUP reload applied");
    tokio::time::sleep(Duration::from_millis(200)).await;

    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.expect("join");
    }
    assert!(ok.load(Ordering::Relaxed) > 50, "load ran");
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "no request failed across reloads"
    );
    let m = gw.metrics().await;
    assert!(
        m.contains("palisade_config_reloads_total{result=\"error\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("palisade_config_reloads_total{result=\"ok\"} 2"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_and_redaction() {
    let (up, _rec, _h) = spawn_on(any()).await.expect("upstream");
    let gw = Gateway::start(&simple(up, ""));
    let c = client();
    assert_eq!(
        c.get(gw.admin_url("/healthz"))
            .send()
            .await
            .expect("s")
            .status(),
        200
    );
    let ready = c.get(gw.admin_url("/readyz")).send().await.expect("s");
    assert_eq!(ready.status(), 200);
    let cfg = c
        .get(gw.admin_url("/config"))
        .send()
        .await
        .expect("s")
        .text()
        .await
        .expect("t");
    assert!(cfg.contains("<redacted>"), "{cfg}");
    assert!(
        !cfg.contains(common::TOKEN),
        "the admin token never appears in /config"
    );
    let _ = c.get(gw.url("/echo/m")).send().await.expect("s");
    let m = gw.metrics().await;
    assert!(
        m.contains("palisade_requests_total{route=\"all\",status=\"200\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("palisade_request_duration_seconds_bucket{route=\"all\""),
        "{m}"
    );
}

#[test]
fn check_prints_file_line_col_errors() {
    let dir = tempfile::tempdir().expect("dir");
    let p = dir.path().join("bad.yaml");
    std::fs::write(
        &p,
        "listeners:\n  - address: 127.0.0.1:8080\nupstreams:\n  demo:\n    targets: [{address: 127.0.0.1:9}]\nroutes:\n  - name: a\n    path: /a\n    upstream: demoo\n",
    )
    .expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
        .arg("check")
        .arg(&p)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        format!(
            "{}:9:15: unknown upstream `demoo` (defined upstreams: demo)",
            p.display()
        )
    );

    std::fs::write(&p, "listeners:\n  - address: 127.0.0.1:8080\n    tsl: {}\n").expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
        .arg("check")
        .arg(&p)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!("{}:3:5: unknown field `tsl`", p.display())),
        "{err}"
    );

    let ok = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args([
            "check",
            concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/palisade.example.yaml"),
        ])
        .output()
        .expect("run");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

/// Errors found after parsing (a WAF policy compiled against the rules, a usage plan, the
/// thread count) point at the key that holds them, not at line 0 or at no line.
#[test]
fn check_points_at_the_policy_plan_or_setting_that_is_wrong() {
    let dir = tempfile::tempdir().expect("dir");
    let p = dir.path().join("bad.yaml");
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");
    let check = |text: String| {
        std::fs::write(&p, text).expect("write");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
            .arg("check")
            .arg(&p)
            .output()
            .expect("run");
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).trim().to_string()
    };
    let head = "listeners:\n  - address: 127.0.0.1:8080\nupstreams:\n  demo:\n    targets: [{address: 127.0.0.1:9}]\n";
    // Inherited from `waf.defaults` (line 8), then a route's own (`waf:` on line 15, its
    // mapping on line 16).
    let err = check(format!(
        "{head}waf:\n  rules_dir: {rules}\n  defaults: {{paranoia: 7}}\nroutes:\n  - name: a\n    path: /a\n    upstream: demo\n  - name: b\n    path: /b\n    upstream: demo\n    waf:\n      exclusions: [{{rule_ids: [99999]}}]\n"
    ));
    assert!(
        err.starts_with(&format!(
            "{}:8:13: waf.defaults (route `a`): paranoia 7 out of range",
            p.display()
        )),
        "{err}"
    );
    let err = check(format!(
        "{head}waf:\n  rules_dir: {rules}\nroutes:\n  - name: a\n    path: /a\n    upstream: demo\n  - name: b\n    path: /b\n    upstream: demo\n    waf:\n      exclusions: [{{rule_ids: [99999]}}]\n"
    ));
    assert!(
        err.starts_with(&format!("{}:16:7: waf (route `b`): ", p.display()))
            && err.contains("99999"),
        "{err}"
    );
    // The second plan is the incomplete one; the third repeats the first's name.
    let err = check(format!(
        "{head}routes: []\napi_keys:\n  key_file: keys.json\n  plans:\n    - name: basic\n    - name: pro\n      rate: 10\n    - name: basic\n"
    ));
    assert_eq!(
        err,
        format!(
            "{f}:11:7: api_keys.plans: usage plan `pro`: `rate` is set without `burst` (set both, or neither for no rate limit)\n\
             {f}:13:7: api_keys.plans: usage plan `basic` is defined twice (plan names must be unique)",
            f = p.display()
        )
    );
    let err = check(format!("{head}routes: []\nserver:\n  threads: 0\n"));
    assert_eq!(
        err,
        format!("{}:8:12: server.threads must be at least 1", p.display())
    );
    // An address without a port is a syntax error, at the value (line 5, column 25).
    let err = check(
        "listeners:\n  - address: 127.0.0.1:8080\nupstreams:\n  demo:\n    targets: [{address: \"127.0.0.1\"}]\nroutes: []\n".to_string(),
    );
    assert_eq!(
        err,
        format!(
            "{}:5:25: invalid upstream target address `127.0.0.1` (expected host:port, e.g. 127.0.0.1:8080)",
            p.display()
        )
    );
    // A feed file that cannot be read, at its entry (the second, line 11).
    std::fs::write(dir.path().join("a.txt"), "192.0.2.0/24\n").expect("write feed");
    let err = check(format!(
        "{head}routes: []\nguard:\n  ip:\n    feeds:\n      - {{name: a, path: a.txt, format: plain}}\n      - {{name: b, path: missing.txt, format: plain}}\n"
    ));
    assert!(
        err.starts_with(&format!(
            "{}:11:9: guard.ip.feeds[1]: {}: cannot read feed",
            p.display(),
            dir.path().join("missing.txt").display()
        )),
        "{err}"
    );
}

/// SIGTERM: the gateway stops accepting, lets the request in flight finish within the grace
/// period, and exits cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_and_exits_cleanly() {
    let (up, rec, _h) = spawn_on(any()).await.expect("upstream");
    let mut gw = Gateway::start(&simple(up, ""));
    let url = gw.url("/slow?ms=500");
    let in_flight = tokio::spawn(async move {
        let r = client().get(url).send().await?;
        let status = r.status();
        let body = r.text().await?;
        Ok::<_, reqwest::Error>((status, body))
    });
    // The request is at the upstream before the signal.
    assert!(eventually(Duration::from_secs(5), async || rec.total() >= 1).await);
    gw.signal("TERM");
    let (status, body) = in_flight.await.expect("join").expect("in-flight request");
    assert_eq!(status, 200, "the request in flight must finish");
    assert_eq!(body, "slow\n");
    // The process exits by itself, successfully, within grace period + shutdown timeout.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let code = loop {
        if let Some(st) = gw.child.try_wait().expect("wait") {
            break st;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "gateway still running 15 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(code.success(), "exit status {code:?}\n{}", gw.log());
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
            .await
            .is_err(),
        "the listener is closed after exit"
    );
}

/// Fault injection: an upstream that dies in the middle of its response. The client sees a
/// cut response (never a made-up complete one), the gateway keeps serving, and the failure is
/// counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_dying_mid_response_is_contained() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let dying = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\nonly part of it")
                    .await;
                // and the process "dies": the connection is dropped mid-body
            });
        }
    });
    let (live, _rec, _h) = spawn_on(any()).await.expect("live");
    let body = format!(
        "upstreams:\n{}{}routes:\n  - name: dying\n    path: /dying/*\n    upstream: dying\n  - name: all\n    path: /*\n    upstream: live\n",
        pool_yaml("dying", &[dying], "retries: 0"),
        pool_yaml("live", &[live], "")
    );
    let gw = Gateway::start(&body);
    let c = client();
    for _ in 0..3 {
        // A closed connection (send error) is also a correct outcome.
        if let Ok(r) = c.get(gw.url("/dying/x")).send().await {
            // Headers may have been relayed already; the body must not arrive whole.
            let got = r.bytes().await;
            assert!(
                got.as_ref().map_or(true, |b| b.len() < 1000),
                "a cut upstream body arrived as complete: {got:?}"
            );
        }
    }
    let r = c.get(gw.url("/echo/after")).send().await.expect("send");
    assert_eq!(r.status(), 200, "the gateway keeps serving");
    let m = gw.metrics().await;
    assert!(
        m.lines()
            .any(|l| l.starts_with("palisade_upstream_failures_total")
                && l.contains("pool=\"dying\"")
                && !l.ends_with(" 0")),
        "the failure is counted:\n{m}"
    );
    assert!(!gw.log().contains("panicked"), "{}", gw.log());
}

/// The side runtime's threads (admin, analytics writer, health checks, ...) run at a lower
/// priority than the proxy workers, so that background work waits for requests, not the other
/// way round (`server::BACKGROUND_NICE`). Read from /proc: every `palisade-admin` thread has
/// nice 10, the threads that serve requests keep nice 0, and no clock thread runs.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_threads_yield_to_the_proxy_workers() {
    let (up, _rec, _h) = spawn_on(any()).await.expect("upstream");
    // With a guard that throttles: the guard reads the clock on every request.
    let guard = "guard:\n  throttle:\n    per_ip: {per_second: 1000, burst: 1000}\n";
    let gw = Gateway::start(&simple(up, guard));
    let r = client()
        .get(gw.url("/echo/nice"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let pid = gw.child.id();
    let mut background = 0;
    let mut foreground = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("/proc tasks") {
        let dir = task.expect("task").path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        // Fields after the `(comm)`: state is field 3, nice is field 19.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let nice: i32 = rest
            .split_whitespace()
            .nth(16)
            .and_then(|n| n.parse().ok())
            .expect("nice field");
        // The guard reads the system clock once per request: no coarse-clock thread (a
        // wake-up every millisecond on the proxy's CPU) runs, even with limits on.
        assert_ne!(comm.trim(), "palisade-clock", "{}", dir.display());
        if comm.trim() == "palisade-admin" {
            assert_eq!(nice, palisade::server::BACKGROUND_NICE, "{}", dir.display());
            background += 1;
        } else {
            assert_eq!(nice, 0, "{} ({})", dir.display(), comm.trim());
            foreground += 1;
        }
    }
    assert!(background >= 2, "the side runtime's threads: {background}");
    assert!(foreground >= 2, "the main and proxy threads: {foreground}");
}
