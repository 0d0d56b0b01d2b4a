//! The protection stages through the running gateway: the WAF blocks attacks in every target
//! before the upstream sees a byte, detect mode lets them through, the guard denies listed
//! addresses, throttles, and bans repeat offenders. Real gateway process, real demo upstream.

mod common;

use common::{client, pool_yaml, Gateway};
use palisade::demo_upstream::spawn_on;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

fn any() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn rules_dir() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/rules").to_string()
}

fn config(up: SocketAddr, mode: &str, guard: &str) -> String {
    format!(
        "upstreams:\n{}waf:\n  rules_dir: {}\n  defaults: {{mode: {mode}, paranoia: 1, threshold: 5}}\n{guard}routes:\n  - name: limited\n    path: /limited/*\n    upstream: demo\n    rate_limit: {{per_minute: 3, burst: 3}}\n  - name: all\n    path: /*\n    upstream: demo\n",
        pool_yaml("demo", &[up], ""),
        rules_dir()
    )
}

fn from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from(ip))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

fn multipart(field: &str, value: &str) -> (String, Vec<u8>) {
    let boundary = "----palisadetest";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"\r\n\r\n{value}\r\n--{boundary}--\r\n"
    );
    (
        format!("multipart/form-data; boundary={boundary}"),
        body.into_bytes(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacks_in_every_target_get_403_and_never_reach_the_upstream() {
    let (up, rec, _h) = spawn_on(any()).await.expect("upstream");
    let gw = Gateway::start(&config(up, "block", "guard: {}\n"));
    let c = client();

    // Benign traffic passes (including SQL-ish words and an O'Brien).
    let r = c
        .get(gw.url("/echo/search?q=O%27Brien%20select%20a%20plan&page=2"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let r = c
        .post(gw.url("/echo/items"))
        .json(&serde_json::json!({"name": "Drop-down menu", "bio": "I like <b>bold</b> text and 1-2 days"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let benign_seen = rec.started();

    let big_attack = {
        let mut v = serde_json::json!({"pad": "a".repeat(100_000)});
        v["q"] = serde_json::json!("1' UNION SELECT password FROM users--");
        v
    };
    let (mp_type, mp_body) = multipart("comment", "<script>alert(document.cookie)</script>");
    let attacks: Vec<(&str, reqwest::RequestBuilder)> = vec![
        (
            "query",
            c.get(gw.url("/echo/s?id=1%27%20OR%20%271%27=%271")),
        ),
        (
            "header",
            c.get(gw.url("/echo/h"))
                .header("user-agent", "sqlmap/1.7.2#stable (https://sqlmap.org)"),
        ),
        (
            "cookie",
            c.get(gw.url("/echo/c"))
                .header("cookie", "session=abc; pref=<script>alert(1)</script>"),
        ),
        (
            "json body",
            c.post(gw.url("/echo/j"))
                .json(&serde_json::json!({"user": {"name": "x", "q": "1; DROP TABLE users--"}})),
        ),
        (
            "multipart field",
            c.post(gw.url("/echo/m"))
                .header("content-type", mp_type)
                .body(mp_body),
        ),
        ("path", c.get(gw.url("/echo/..%2f..%2f..%2fetc%2fpasswd"))),
        (
            "large json body",
            c.post(gw.url("/echo/big")).json(&big_attack),
        ),
        (
            "form body",
            c.post(gw.url("/echo/f"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("cmd=%3Bcat%20%2Fetc%2Fpasswd"),
        ),
    ];
    for (target, req) in attacks {
        let r = req.send().await.expect("send");
        assert_eq!(r.status(), 403, "attack in {target} must be blocked");
        let rid = r.headers()["x-request-id"]
            .to_str()
            .expect("id")
            .to_string();
        let v: serde_json::Value = r.json().await.expect("json");
        assert_eq!(v["reason"], "waf_blocked", "{target}");
        assert_eq!(v["request_id"], rid.as_str(), "{target}");
        assert!(
            v.get("rules").is_none(),
            "the block page never leaks rule details"
        );
    }
    assert_eq!(
        rec.started(),
        benign_seen,
        "no blocked request reached the upstream, not even its headers"
    );

    // Protocol enforcement: both Content-Length and Transfer-Encoding is either refused (400) or
    // normalised to chunked framing, so the upstream never sees the ambiguous pair.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(gw.addr())
        .await
        .expect("connect");
    s.write_all(b"POST /echo/smuggle HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n")
        .await
        .expect("write");
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("answer")
        .expect("read");
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    if head.starts_with("HTTP/1.1 200") {
        let seen = rec.last().expect("normalised request reached the upstream");
        assert_eq!(seen.path(), "/echo/smuggle");
        assert!(
            seen.header("content-length").is_none() || seen.header("transfer-encoding").is_none(),
            "the upstream must not receive both framing headers"
        );
        assert_eq!(seen.body_len, 0);
    } else {
        assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    }
}

/// The WAF's per-request accumulators are pooled and reused (src/inspect_pool.rs): nothing of
/// one request's inspection (score, matches, parsed body) may carry over to the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_waf_accumulator_carries_nothing_over() {
    let (up, rec, _h) = spawn_on(any()).await.expect("upstream");
    let gw = Gateway::start(&config(up, "block", "guard: {}\n"));
    let c = client(); // one keep-alive connection: the same worker, the same pool
    for round in 0..12 {
        let attack = if round % 2 == 0 {
            c.get(gw.url("/echo/s?id=1%27%20OR%20%271%27=%271"))
        } else {
            c.post(gw.url("/echo/j"))
                .json(&serde_json::json!({"q": "1; DROP TABLE users--", "note": "x"}))
        };
        let r = attack.send().await.expect("send");
        assert_eq!(r.status(), 403, "round {round}: the attack is blocked");
        let before = rec.total();
        let r = c
            .get(gw.url("/echo/search?q=laptop&page=2"))
            .send()
            .await
            .expect("send");
        assert_eq!(
            r.status(),
            200,
            "round {round}: a benign GET after an attack"
        );
        let r = c
            .post(gw.url("/echo/orders"))
            .json(&serde_json::json!({"name": "O'Brien", "note": "ship before noon"}))
            .send()
            .await
            .expect("send");
        assert_eq!(
            r.status(),
            200,
            "round {round}: a benign JSON body after an attack"
        );
        assert_eq!(
            rec.total(),
            before + 2,
            "round {round}: both benign requests arrived"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detect_mode_lets_attacks_through() {
    let (up, rec, _h) = spawn_on(any()).await.expect("upstream");
    let gw = Gateway::start(&config(up, "detect", "guard: {}\n"));
    let r = client()
        .get(gw.url("/echo/s?id=1%27%20OR%20%271%27=%271"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(rec.total(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_denies_lists_honours_trusted_proxies_throttles_and_bans() {
    let (up, rec, _h) = spawn_on(any()).await.expect("upstream");
    let guard = "guard:\n  ip:\n    deny: [127.0.0.2/32]\n    trusted_proxies: [127.0.0.3/32]\n  autoban: {threshold: 2, window_secs: 60, ban_secs: 600}\n";
    let gw = Gateway::start(&config(up, "block", guard));

    // Deny list by socket address.
    let r = from([127, 0, 0, 2])
        .get(gw.url("/echo/x"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403);
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["reason"], "ip_denied");
    assert_eq!(
        from([127, 0, 0, 1])
            .get(gw.url("/echo/x"))
            .send()
            .await
            .expect("send")
            .status(),
        200
    );

    // X-Forwarded-For counts only from a trusted proxy.
    let r = from([127, 0, 0, 3])
        .get(gw.url("/echo/x"))
        .header("x-forwarded-for", "127.0.0.2")
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.status(),
        403,
        "a trusted proxy's forwarded address is judged"
    );
    let r = from([127, 0, 0, 1])
        .get(gw.url("/echo/x"))
        .header("x-forwarded-for", "127.0.0.2")
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.status(),
        200,
        "a spoofed header from an untrusted peer is ignored"
    );

    // Per-route throttle: 3 per minute, burst 3.
    let c = from([127, 0, 0, 5]);
    for i in 0..3 {
        let r = c.get(gw.url("/limited/x")).send().await.expect("send");
        assert_eq!(
            r.status(),
            404,
            "request {i} within the limit reaches the upstream"
        );
        assert!(r.headers().contains_key("ratelimit-remaining"));
    }
    let r = c.get(gw.url("/limited/x")).send().await.expect("send");
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(r.headers()["ratelimit-remaining"], "0");
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["reason"], "rate_limited_route");

    // Auto-ban: two WAF blocks from one address ban it, even for benign requests.
    let bad = from([127, 0, 0, 6]);
    for _ in 0..2 {
        let r = bad
            .get(gw.url("/echo/s?id=1%27%20OR%20%271%27=%271"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 403);
    }
    let before = rec.started();
    let r = bad.get(gw.url("/echo/benign")).send().await.expect("send");
    assert_eq!(r.status(), 403);
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["reason"], "ip_banned");
    assert_eq!(rec.started(), before);
    assert_eq!(
        from([127, 0, 0, 1])
            .get(gw.url("/echo/x"))
            .send()
            .await
            .expect("send")
            .status(),
        200
    );
}

/// `s` percent-encoded as a query value (every byte but letters, digits and `-._~`).
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Rule 16001 (open redirect) lets a redirect to the request's own host through and blocks one
/// to any other, over HTTP/1.1 (the `Host` header) and over h2c, where the host comes as
/// `:authority` and there is no `Host` header: the gateway hands the WAF the URI's authority.
/// Fails when the gateway drops the authority (the h2c request to its own host is then
/// blocked: with no host known, every absolute target counts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_the_requests_own_host_passes_over_http1_and_h2c() {
    let (up, rec, _h) = spawn_on(any()).await.expect("upstream");
    let gw = Gateway::start(&config(up, "block", "guard: {}\n"));
    let addr = SocketAddr::from(([127, 0, 0, 1], gw.port));
    let client = |b: reqwest::ClientBuilder| {
        b.resolve("app.example", addr)
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client")
    };
    let h1 = client(reqwest::Client::builder().http1_only());
    let h2c = client(reqwest::Client::builder().http2_prior_knowledge());
    let url = format!("http://app.example:{}/echo/login", gw.port);
    for (name, c, version) in [
        ("HTTP/1.1", &h1, reqwest::Version::HTTP_11),
        ("h2c", &h2c, reqwest::Version::HTTP_2),
    ] {
        let before = rec.started();
        let r = c
            .get(format!(
                "{url}?next={}",
                enc("https://app.example/account?tab=orders")
            ))
            .send()
            .await
            .expect("send");
        assert_eq!(r.version(), version, "{name}");
        assert_eq!(r.status(), 200, "{name}: a redirect to the site itself");
        assert_eq!(rec.started(), before + 1, "{name}: the upstream got it");
        for target in [
            "https://evil.example/account",
            "https://app.example.evil.example/",
            "//evil.example/",
        ] {
            let r = c
                .get(format!("{url}?next={}", enc(target)))
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 403, "{name}: {target}");
        }
        assert_eq!(
            rec.started(),
            before + 1,
            "{name}: nothing blocked got through"
        );
    }
}
