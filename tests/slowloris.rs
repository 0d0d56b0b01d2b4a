//! Connection guards through the running gateway, from raw sockets: slowloris (headers sent a
//! byte at a time), keep-alive slowloris, slow POST bodies, the per-IP connection cap and the
//! header caps. Normal clients (another loopback address) must be served meanwhile. Real gateway
//! process, real demo upstream; short timeouts in the config keep the test bounded.

mod common;

use common::{eventually, pool_yaml, Gateway};
use palisade::demo_upstream::spawn_on;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const HEADER_TIMEOUT: Duration = Duration::from_millis(2000);

fn any() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn config(up: SocketAddr, connections: &str) -> String {
    format!(
        "upstreams:\n{}guard:\n  connections: {connections}\nroutes:\n  - name: all\n    path: /*\n    upstream: demo\n",
        pool_yaml("demo", &[up], ""),
    )
}

/// A raw connection to the gateway from the loopback address `from`.
async fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().expect("socket");
    s.bind(SocketAddr::from((from, 0))).expect("bind");
    s.connect(to).await.expect("connect")
}

fn client_from(ip: [u8; 4], timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from(ip))
        .timeout(timeout)
        .build()
        .expect("client")
}

/// How a raw connection ended.
#[derive(Debug)]
struct Ended {
    /// Time from the start of the slow phase to the server's close.
    after: Duration,
    /// Everything the server sent.
    reply: Vec<u8>,
}

/// Sends `head` first, then `drip` one byte every 100 ms (cycling), until the server closes
/// the connection or `limit` passes (then `None`).
async fn drip(mut s: TcpStream, head: &[u8], drip: &[u8], limit: Duration) -> Option<Ended> {
    s.write_all(head).await.ok()?;
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    let mut i = 0usize;
    loop {
        tokio::select! {
            r = s.read(&mut buf) => match r {
                Ok(0) | Err(_) => return Some(Ended { after: start.elapsed(), reply }),
                Ok(n) => reply.extend_from_slice(buf.get(..n).unwrap_or_default()),
            },
            _ = tick.tick() => {
                if start.elapsed() > limit {
                    return None;
                }
                let b = drip.get(i % drip.len().max(1)).copied().unwrap_or(b'x');
                i += 1;
                if s.write_all(&[b]).await.is_err() {
                    // Closed by the server; collect what it sent.
                    let _ = tokio::time::timeout(Duration::from_secs(1), s.read_to_end(&mut reply)).await;
                    return Some(Ended { after: start.elapsed(), reply });
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_and_slow_bodies_are_cut_off_while_normal_clients_are_served() {
    let (up, rec, _h) = spawn_on(any()).await.expect("upstream");
    let gw = Gateway::start(&config(
        up,
        "{ max_per_ip: 1000, header_timeout_ms: 2000, body_timeout_ms: 10000, min_body_rate_bps: 1000, body_rate_grace_ms: 1000 }",
    ));
    let addr = gw.addr();
    let limit = Duration::from_secs(15);

    // 200 slowloris connections from 127.0.0.2: a request line, then header bytes forever.
    let mut slow_headers = Vec::new();
    for _ in 0..200 {
        let s = connect_from([127, 0, 0, 2], addr).await;
        slow_headers.push(tokio::spawn(drip(
            s,
            b"GET /echo HTTP/1.1\r\nHost: a\r\n",
            b"X-Slow: aaaaaaaaaa\r\n",
            limit,
        )));
    }
    // 5 keep-alive slowloris: one complete request, then the next one's header dripped.
    let mut keepalive = Vec::new();
    for _ in 0..5 {
        let mut s = connect_from([127, 0, 0, 2], addr).await;
        s.write_all(b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .expect("write");
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("first response in time")
            .expect("read");
        assert!(
            buf.get(..n)
                .unwrap_or_default()
                .starts_with(b"HTTP/1.1 200"),
            "first keep-alive request served"
        );
        keepalive.push(tokio::spawn(drip(
            s,
            b"",
            b"GET /echo HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa\r\n",
            limit,
        )));
    }
    // 20 slow bodies from 127.0.0.3: complete headers, then one body byte every 100 ms
    // (10 B/s, the floor is 1000 B/s after a 1 s grace).
    let mut slow_bodies = Vec::new();
    for _ in 0..20 {
        let s = connect_from([127, 0, 0, 3], addr).await;
        slow_bodies.push(tokio::spawn(drip(
            s,
            b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n",
            b"a",
            limit,
        )));
    }

    // Meanwhile a normal client from 127.0.0.1 is served, each request well within the
    // header timeout (the bound is generous: it only fails if the slow clients stall us).
    let normal = client_from([127, 0, 0, 1], HEADER_TIMEOUT);
    let mut served = 0u64;
    for i in 0..20 {
        let r = normal
            .post(gw.url(&format!("/echo/normal/{i}")))
            .body("a normal body")
            .send()
            .await
            .unwrap_or_else(|e| panic!("normal request {i} not served in time: {e}"));
        assert_eq!(r.status(), 200, "normal request {i}");
        served += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Every slowloris connection is closed by the gateway, not before the header timeout.
    for (name, tasks) in [
        ("slow header", slow_headers),
        ("keep-alive slow header", keepalive),
    ] {
        for t in tasks {
            let ended = t
                .await
                .expect("task")
                .unwrap_or_else(|| panic!("a {name} connection was still open after {limit:?}"));
            assert!(
                ended.after + Duration::from_millis(150) >= HEADER_TIMEOUT,
                "{name} connection closed after {:?}, before the header timeout",
                ended.after
            );
        }
    }
    // Every slow body gets a 408 with a JSON reason, and the upstream never saw those requests.
    for t in slow_bodies {
        let ended = t
            .await
            .expect("task")
            .unwrap_or_else(|| panic!("a slow body was still open after {limit:?}"));
        let text = String::from_utf8_lossy(&ended.reply);
        assert!(
            text.starts_with("HTTP/1.1 408"),
            "slow body answered: {text}"
        );
        assert!(text.contains("\"body_too_slow\""), "reason in {text}");
        assert!(
            ended.after >= Duration::from_millis(900),
            "cut before the grace period: {:?}",
            ended.after
        );
    }
    // Upstream saw the normal requests and the 5 first keep-alive requests only.
    assert_eq!(
        rec.started(),
        served + 5,
        "slow requests reached the upstream"
    );

    let m = gw.metrics().await;
    let line = m
        .lines()
        .find(|l| l.contains("reason=\"header_timeout\""))
        .unwrap_or_else(|| panic!("no header_timeout metric in\n{m}"));
    let n: f64 = line
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(n >= 205.0, "header timeouts counted: {line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_ip_connection_cap_and_header_caps() {
    let (up, _rec, _h) = spawn_on(any()).await.expect("upstream");
    let gw = Gateway::start(&config(
        up,
        "{ max_per_ip: 5, header_timeout_ms: 20000, max_header_count: 20, max_header_bytes: 2048 }",
    ));
    let addr = gw.addr();

    // Five idle connections from 127.0.0.4 fill its cap.
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(connect_from([127, 0, 0, 4], addr).await);
    }
    // The gateway counts a connection when it starts serving it: wait until all 5 are in.
    let c4 = client_from([127, 0, 0, 4], Duration::from_secs(5));
    assert!(
        eventually(Duration::from_secs(10), async || {
            c4.get(gw.url("/echo")).send().await.is_err()
        })
        .await,
        "a sixth connection from the same address must be refused"
    );
    // A raw sixth connection is closed at once, without an answer.
    let mut sixth = connect_from([127, 0, 0, 4], addr).await;
    let _ = sixth
        .write_all(b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(10), sixth.read_to_end(&mut buf)).await;
    assert!(
        matches!(r, Ok(Ok(0)) | Ok(Err(_))),
        "sixth connection closed without a response: {r:?} {:?}",
        String::from_utf8_lossy(&buf)
    );

    // Other addresses are unaffected.
    let c1 = client_from([127, 0, 0, 1], Duration::from_secs(10));
    let r = c1.get(gw.url("/echo")).send().await.expect("other address");
    assert_eq!(r.status(), 200);

    // Closing one connection frees a slot.
    drop(held.pop());
    assert!(
        eventually(Duration::from_secs(10), async || {
            matches!(c4.get(gw.url("/echo")).send().await, Ok(r) if r.status() == 200)
        })
        .await,
        "a slot is freed when a connection closes"
    );

    let m = gw.metrics().await;
    assert!(
        m.lines()
            .any(|l| l.contains("reason=\"too_many_connections\"")
                && l.contains("stage=\"connection\"")),
        "cap refusals counted:\n{m}"
    );

    // Header caps: 431 with a JSON reason.
    let mut req = c1.get(gw.url("/echo"));
    for i in 0..30 {
        req = req.header(format!("x-h{i}"), "v");
    }
    let r = req.send().await.expect("many headers");
    assert_eq!(r.status(), 431);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["reason"], "headers_too_large", "{body}");
    let r = c1
        .get(gw.url("/echo"))
        .header("x-big", "b".repeat(3000))
        .send()
        .await
        .expect("big header");
    assert_eq!(r.status(), 431);
    let r = c1
        .get(gw.url("/echo"))
        .header("x-ok", "b".repeat(500))
        .send()
        .await
        .expect("normal header");
    assert_eq!(r.status(), 200, "under the caps");
}
