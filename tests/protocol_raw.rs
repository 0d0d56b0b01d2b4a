//! Hostile HTTP/1 framing over raw sockets against the real gateway in front of the real demo
//! upstream: request smuggling shapes (CL.TE, TE.CL, obfuscated Transfer-Encoding, duplicate or
//! malformed Content-Length, bad chunk sizes, chunk extensions), obs-fold, forbidden bytes in
//! header names and values, oversized request lines and headers, HTTP/0.9, absolute-form
//! targets, missing or duplicated `Host`, and pipelined requests after a blocked one.
//!
//! Every case is one fresh connection: the raw bytes are written, then a `Connection: close`
//! terminator request (a half-close would read as a client abort to Pingora), and every response
//! is read until the gateway closes the connection. Then a sentinel request on another
//! connection makes sure the upstream has finished with anything the case let through, and the
//! demo upstream's record is checked:
//!
//! - no answer is a 5xx, the gateway never panics and is still serving afterwards;
//! - `Reject` cases get only the listed 4xx statuses and the upstream saw nothing;
//! - `Served` cases are normalised: one 200, one upstream request;
//! - in every case the upstream never got more requests than the client got answers, never the
//!   smuggled request (`/smuggled`) as a request of its own, and never a request with both
//!   `Content-Length` and `Transfer-Encoding`.
//!
//! Pingora 0.9.1 keeps HTTP/1.1 pipelining off: bytes pipelined behind a request make it close
//! the connection after the first answer, so most pipelined cases get one answer.

mod common;

use common::{pool_yaml, Gateway};
use palisade::demo_upstream::{spawn_on, RecordedRequest, Recorder};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The request a smuggling attempt tries to slip past the gateway.
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
/// How long one exchange may take before the test fails (a hang is a failure, not a pass).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a connection may stay silent before the exchange is reported as hung.
const IDLE_LIMIT: Duration = Duration::from_secs(5);

fn config(up: SocketAddr) -> String {
    format!(
        "upstreams:\n{}waf:\n  rules_dir: {}\n  defaults: {{mode: block, paranoia: 1, threshold: 5}}\nroutes:\n  - name: small\n    path: /small/*\n    upstream: demo\n    max_body_bytes: 1024\n  - name: all\n    path: /*\n    upstream: demo\n",
        pool_yaml("demo", &[up], ""),
        concat!(env!("CARGO_MANIFEST_DIR"), "/rules"),
    )
}

/// One HTTP response read back from the raw connection.
#[derive(Debug)]
struct Response {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// What a case must produce.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Every answer has one of these statuses and nothing reaches the upstream.
    Reject(&'static [u16]),
    /// The gateway may answer 4xx or pass a normalised request; never 5xx, never a smuggled one.
    Pass,
    /// Like `Pass`, and exactly these statuses come back, in order.
    Exactly(&'static [u16]),
    /// Normalised and served: one 200, and the upstream got exactly one request.
    Served,
}

/// The outcome of one raw exchange.
struct Outcome {
    responses: Vec<Response>,
    /// Bytes after the last complete response (a truncated answer).
    trailing: Vec<u8>,
    /// What the upstream received on behalf of this case.
    upstream: Vec<RecordedRequest>,
    /// The gateway kept the connection open without answering (waiting for more bytes).
    hung: bool,
    /// The terminator request after the case was answered on the same connection.
    terminated: bool,
}

impl Outcome {
    fn statuses(&self) -> Vec<u16> {
        self.responses.iter().map(|r| r.status).collect()
    }
}

/// Parse consecutive HTTP/1.1 responses (Content-Length, chunked or close-delimited bodies).
fn parse_responses(mut buf: &[u8]) -> (Vec<Response>, Vec<u8>) {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let Some(end) = find(buf, b"\r\n\r\n") else {
            break;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        let status = head
            .get(9..12)
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or(0);
        let rest = &buf[end + 4..];
        if (100..200).contains(&status) {
            buf = rest;
            continue;
        }
        let header = |name: &str| {
            head.lines().skip(1).find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let (body, used) = if let Some(n) = header("content-length").and_then(|v| v.parse().ok()) {
            let n: usize = n;
            if rest.len() < n {
                break;
            }
            (rest[..n].to_vec(), n)
        } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            match palisade_waf::dechunk(rest) {
                Some(body) => {
                    // Length of the chunked encoding: up to and including the last-chunk CRLFCRLF.
                    let used = find(rest, b"0\r\n\r\n").map_or(rest.len(), |i| i + 5);
                    (body, used)
                }
                None => break,
            }
        } else {
            (rest.to_vec(), rest.len())
        };
        out.push(Response { status, head, body });
        buf = &rest[used..];
    }
    (out, buf.to_vec())
}

/// The `reason` of a gateway's JSON error body, or `-` (Pingora's own answers have no body).
fn reason(r: &Response) -> String {
    serde_json::from_slice::<serde_json::Value>(&r.body)
        .ok()
        .and_then(|v| v["reason"].as_str().map(str::to_string))
        .unwrap_or_else(|| "-".into())
}

/// The last lines of the gateway's log, for failure messages.
fn log_tail(gw: &Gateway) -> String {
    let log = gw.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The harness: one gateway, one demo upstream, a sentinel request between cases.
struct Harness {
    gw: Gateway,
    rec: Arc<Recorder>,
    _upstream: palisade::demo_upstream::DemoHandle,
    sentinels: u32,
}

impl Harness {
    async fn start() -> Harness {
        let (up, rec, handle) = spawn_on(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("upstream");
        let gw = Gateway::start(&config(up));
        Harness {
            gw,
            rec,
            _upstream: handle,
            sentinels: 0,
        }
    }

    /// Write `bytes` and then a `Connection: close` terminator request on a fresh connection,
    /// and read every answer until the gateway closes the connection. The terminator makes the
    /// end of the exchange deterministic: the gateway either closed the connection itself (it
    /// rejected or gave up on the case) or answered the terminator and closed.
    async fn exchange(&mut self, bytes: &[u8]) -> Outcome {
        self.rec.clear();
        self.sentinels += 1;
        let end_path = format!("/echo/terminator-{}", self.sentinels);
        let mut wire = bytes.to_vec();
        wire.extend_from_slice(
            format!("GET {end_path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        let (raw, hung) = tokio::time::timeout(EXCHANGE_TIMEOUT, async {
            let s = tokio::net::TcpStream::connect(self.gw.addr())
                .await
                .expect("connect");
            let (mut rd, mut wr) = s.into_split();
            // The gateway may answer and close before it has read everything: a failed write
            // is an outcome, not a test failure. Writing runs beside reading so a gateway that
            // answers early never deadlocks against a full socket buffer.
            let writer = tokio::spawn(async move {
                let _ = wr.write_all(&wire).await;
                wr
            });
            let mut raw = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            let mut hung = false;
            loop {
                // A gateway still waiting for body bytes that will never come: bounded, and
                // reported, never silently passed.
                match tokio::time::timeout(IDLE_LIMIT, rd.read(&mut buf)).await {
                    Err(_) => {
                        hung = true;
                        break;
                    }
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Ok(Ok(n)) => raw.extend_from_slice(&buf[..n]),
                }
            }
            drop(writer.await);
            (raw, hung)
        })
        .await
        .expect("the exchange did not finish in time");
        let (mut responses, trailing) = parse_responses(&raw);
        let mut upstream = self.settle().await;
        // Take the terminator's answer and record out of the case's outcome.
        let terminated = upstream.last().is_some_and(|r| r.path() == end_path);
        if terminated {
            upstream.pop();
            let last = responses.pop().expect("the terminator was answered");
            assert_eq!(last.status, 200, "terminator answer");
            let v: serde_json::Value = serde_json::from_slice(&last.body).expect("echo json");
            assert_eq!(
                v["path"].as_str(),
                Some(end_path.as_str()),
                "answers line up"
            );
        }
        Outcome {
            responses,
            trailing,
            upstream,
            hung,
            terminated,
        }
    }

    /// A benign request on a new connection; returns what the upstream recorded before it.
    async fn settle(&mut self) -> Vec<RecordedRequest> {
        self.sentinels += 1;
        let path = format!("/echo/sentinel-{}", self.sentinels);
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let out = tokio::time::timeout(EXCHANGE_TIMEOUT, async {
            let mut s = tokio::net::TcpStream::connect(self.gw.addr())
                .await
                .expect("connect");
            s.write_all(req.as_bytes()).await.expect("write sentinel");
            let mut raw = Vec::new();
            s.read_to_end(&mut raw).await.expect("read sentinel");
            raw
        })
        .await
        .expect("sentinel timed out");
        let (responses, _) = parse_responses(&out);
        assert_eq!(
            responses.iter().map(|r| r.status).collect::<Vec<_>>(),
            vec![200],
            "the gateway must keep serving after a hostile request; log:\n{}",
            self.gw.log()
        );
        let all = self.rec.snapshot();
        let at = all
            .iter()
            .position(|r| r.path() == path)
            .expect("sentinel recorded");
        all[..at].to_vec()
    }

    /// Run one case and check the invariants every case shares plus its own expectation.
    async fn case(&mut self, name: &str, bytes: &[u8], expect: Expect) -> Outcome {
        let out = self.exchange(bytes).await;
        let statuses = out.statuses();
        let reasons: Vec<String> = out.responses.iter().map(reason).collect();
        eprintln!(
            "{name:<40} -> {statuses:?} {reasons:?} terminator={} upstream={}",
            out.terminated,
            out.upstream.len()
        );
        let ctx = || {
            format!(
                "case {name:?}: statuses {statuses:?} (terminator answered: {}), upstream saw {:?}, trailing {:?}\nrequest: {:?}",
                out.terminated,
                out.upstream
                    .iter()
                    .map(|r| format!("{} {}", r.method, r.uri))
                    .collect::<Vec<_>>(),
                String::from_utf8_lossy(&out.trailing),
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)]),
            ) + "\ngateway log (tail):\n" + &log_tail(&self.gw)
        };
        assert!(
            statuses.iter().all(|s| (200..500).contains(s)),
            "never a 5xx or garbage status: {}",
            ctx()
        );
        assert!(
            !out.hung,
            "the gateway neither answered nor closed: {}",
            ctx()
        );
        assert!(out.trailing.is_empty(), "no truncated answer: {}", ctx());
        assert!(
            out.upstream.iter().all(|r| !r.path().contains("smuggled")),
            "a smuggled request reached the upstream: {}",
            ctx()
        );
        assert!(
            out.upstream
                .iter()
                .all(|r| r.header("content-length").is_none()
                    || r.header("transfer-encoding").is_none()),
            "the upstream got both framing headers: {}",
            ctx()
        );
        // Each request the upstream saw was answered to the client (with its response or, when
        // the client broke the exchange mid-flight, a 4xx): nothing reached it unaccounted for.
        assert!(
            out.upstream.len() <= statuses.len(),
            "the upstream saw a request the gateway did not answer for: {}",
            ctx()
        );
        match expect {
            Expect::Reject(allowed) => {
                assert!(
                    !statuses.is_empty() && statuses.iter().all(|s| allowed.contains(s)),
                    "expected only {allowed:?}: {}",
                    ctx()
                );
                assert!(
                    out.upstream.is_empty(),
                    "nothing may reach the upstream: {}",
                    ctx()
                );
                for r in &out.responses {
                    if r.status != 400 || !r.head.contains("x-request-id") {
                        continue;
                    }
                    // The gateway's own answers carry the JSON error body.
                    let v: serde_json::Value =
                        serde_json::from_slice(&r.body).expect("json error body");
                    assert_eq!(v["status"], 400, "{}", ctx());
                }
            }
            Expect::Pass => {}
            Expect::Exactly(want) => assert_eq!(statuses, want, "{}", ctx()),
            Expect::Served => {
                assert_eq!(statuses, [200], "{}", ctx());
                assert_eq!(out.upstream.len(), 1, "{}", ctx());
                // The gateway's headers arrive whichever way the request was rebuilt (from its
                // parts, or through Pingora's header API for an absolute-form target).
                for name in ["x-request-id", "x-forwarded-for", "x-forwarded-proto"] {
                    assert!(
                        out.upstream.iter().all(|r| r.header(name).is_some()),
                        "the upstream request lacks {name}: {}",
                        ctx()
                    );
                }
            }
        }
        out
    }
}

fn post(path: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!("POST {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n").into_bytes();
    v.extend_from_slice(body);
    v
}

fn chunk(data: &str) -> String {
    format!("{:x}\r\n{data}\r\n", data.len())
}

const B400: &[u16] = &[400];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_shapes_are_refused_or_normalised_never_split() {
    let mut h = Harness::start().await;

    // Positive controls: the harness sees what a plain request and a plain pipeline produce.
    let out = h
        .case(
            "plain post",
            &post("/echo/plain", "Content-Length: 5\r\n", b"hello"),
            Expect::Exactly(&[200]),
        )
        .await;
    assert_eq!(out.upstream.len(), 1);
    assert_eq!(&out.upstream[0].body[..], b"hello");
    let mut two = post("/echo/one", "Content-Length: 5\r\n", b"hello");
    two.extend_from_slice(b"GET /echo/two HTTP/1.1\r\nHost: x\r\n\r\n");
    // Pingora answers the first and closes when bytes were pipelined behind it (pipelining is
    // off); answering both in order would be correct too.
    let out = h.case("plain pipeline", &two, Expect::Pass).await;
    assert!([200, 200].starts_with(&out.statuses()) && !out.statuses().is_empty());
    assert_eq!(out.upstream.len(), out.statuses().len());

    // CL.TE: a front end framing by Content-Length would forward the smuggled request as body;
    // one framing by Transfer-Encoding would see it as a second request.
    let cl_te_body = format!("0\r\n\r\n{SMUGGLED}");
    let cl_te = post(
        "/echo/clte",
        &format!(
            "Content-Length: {}\r\nTransfer-Encoding: chunked\r\n",
            cl_te_body.len()
        ),
        cl_te_body.as_bytes(),
    );
    // Pingora alone would drop Content-Length and frame by chunked; the gateway refuses the pair.
    let out = h.case("CL.TE", &cl_te, Expect::Reject(B400)).await;
    assert_eq!(reason(&out.responses[0]), "protocol_violation");

    // TE.CL: the smuggled request hidden in a chunk, Content-Length covering only the size line.
    let te_cl_body = format!("{}0\r\n\r\n", chunk(SMUGGLED));
    let te_cl = post(
        "/echo/tecl",
        "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
        te_cl_body.as_bytes(),
    );
    let out = h.case("TE.CL", &te_cl, Expect::Reject(B400)).await;
    assert_eq!(reason(&out.responses[0]), "protocol_violation");

    // TE.TE: obfuscated Transfer-Encoding alone (the listed outcome) and with a Content-Length
    // beside it (always refused: the CL.TE pair).
    let obfuscated: &[(&str, &str, Expect)] = &[
        (
            "xchunked",
            "Transfer-Encoding: xchunked\r\n",
            Expect::Reject(B400),
        ),
        (
            "chunked, identity",
            "Transfer-Encoding: chunked, identity\r\n",
            Expect::Reject(B400),
        ),
        (
            "identity, chunked",
            "Transfer-Encoding: identity, chunked\r\n",
            Expect::Reject(B400),
        ),
        (
            "chunked,chunked",
            "Transfer-Encoding: chunked, chunked\r\n",
            Expect::Reject(B400),
        ),
        (
            "tab before value",
            "Transfer-Encoding:\tchunked\r\n",
            Expect::Served,
        ),
        (
            "two spaces",
            "Transfer-Encoding:  chunked\r\n",
            Expect::Served,
        ),
        (
            "trailing space",
            "Transfer-Encoding: chunked \r\n",
            Expect::Served,
        ),
        (
            "upper case value",
            "Transfer-Encoding: CHUNKED\r\n",
            Expect::Reject(B400),
        ),
        (
            "space before colon",
            "Transfer-Encoding : chunked\r\n",
            Expect::Reject(B400),
        ),
        (
            "tab before colon",
            "Transfer-Encoding\t: chunked\r\n",
            Expect::Reject(B400),
        ),
        (
            "vertical tab",
            "Transfer-Encoding: \x0bchunked\r\n",
            Expect::Reject(B400),
        ),
        (
            "form feed",
            "Transfer-Encoding: chunked\x0c\r\n",
            Expect::Reject(B400),
        ),
        (
            "quoted",
            "Transfer-Encoding: \"chunked\"\r\n",
            Expect::Reject(B400),
        ),
        (
            "duplicate chunked+identity",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
            Expect::Reject(B400),
        ),
        (
            "duplicate identity+chunked",
            "Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n",
            Expect::Reject(B400),
        ),
        (
            "duplicate chunked twice",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            Expect::Reject(B400),
        ),
        (
            "folded value",
            "Transfer-Encoding:\r\n chunked\r\n",
            Expect::Reject(B400),
        ),
        (
            "folded header after another",
            "X-A: b\r\n Transfer-Encoding: chunked\r\n",
            Expect::Reject(B400),
        ),
        (
            "underscore name",
            "Transfer_Encoding: chunked\r\n",
            Expect::Reject(B400),
        ),
        (
            "bare LF line end",
            "Transfer-Encoding: chunked\n",
            Expect::Served,
        ),
        (
            "bare CR in name line",
            "Transfer-Encoding\r: chunked\r\n",
            Expect::Reject(B400),
        ),
    ];
    let body = format!("{}0\r\n\r\n{SMUGGLED}", chunk("hello"));
    for (name, te, expect) in obfuscated {
        let with_cl = post(
            "/echo/tete",
            &format!("{te}Content-Length: {}\r\n", body.len()),
            body.as_bytes(),
        );
        h.case(
            &format!("TE.TE {name} + CL"),
            &with_cl,
            Expect::Reject(B400),
        )
        .await;
        let alone = post("/echo/tete", te, body.as_bytes());
        h.case(&format!("TE.TE {name}"), &alone, *expect).await;
    }

    // Content-Length: duplicated, conflicting, signed, spaced, not decimal, overflowing.
    let lengths: &[(&str, &str, Expect)] = &[
        (
            "conflicting",
            "Content-Length: 5\r\nContent-Length: 6\r\n",
            Expect::Reject(B400),
        ),
        (
            "identical duplicate",
            "Content-Length: 5\r\nContent-Length: 5\r\n",
            Expect::Reject(B400),
        ),
        (
            "list identical",
            "Content-Length: 5, 5\r\n",
            Expect::Reject(B400),
        ),
        (
            "list conflicting",
            "Content-Length: 5, 6\r\n",
            Expect::Reject(B400),
        ),
        ("plus sign", "Content-Length: +5\r\n", Expect::Reject(B400)),
        ("minus sign", "Content-Length: -5\r\n", Expect::Reject(B400)),
        (
            "inner space",
            "Content-Length: 5 5\r\n",
            Expect::Reject(B400),
        ),
        ("leading spaces", "Content-Length:    5\r\n", Expect::Served),
        ("trailing space", "Content-Length: 5 \r\n", Expect::Served),
        ("hex", "Content-Length: 0x5\r\n", Expect::Reject(B400)),
        (
            "decimal point",
            "Content-Length: 5.0\r\n",
            Expect::Reject(B400),
        ),
        ("leading zeros", "Content-Length: 005\r\n", Expect::Served),
        ("empty", "Content-Length: \r\n", Expect::Reject(B400)),
        (
            "overflow",
            "Content-Length: 99999999999999999999999\r\n",
            Expect::Reject(&[400, 413]),
        ),
        (
            "u64 max",
            "Content-Length: 18446744073709551615\r\n",
            Expect::Reject(&[400, 413]),
        ),
        (
            "space before colon",
            "Content-Length : 5\r\n",
            Expect::Reject(B400),
        ),
        ("folded", "Content-Length:\r\n 5\r\n", Expect::Reject(B400)),
    ];
    for (name, cl, expect) in lengths {
        let mut body = b"hello".to_vec();
        body.extend_from_slice(SMUGGLED.as_bytes());
        let out = h
            .case(&format!("CL {name}"), &post("/echo/cl", cl, &body), *expect)
            .await;
        for r in &out.upstream {
            if r.path() == "/echo/cl" {
                assert_eq!(
                    &r.body[..],
                    b"hello",
                    "CL {name}: the body is the first 5 bytes"
                );
            }
        }
    }

    assert!(
        h.gw.child.try_wait().expect("wait").is_none(),
        "gateway alive"
    );
    assert!(!h.gw.log().contains("panicked"), "{}", h.gw.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_chunks_and_extension_abuse_never_reach_the_upstream_as_two_requests() {
    let mut h = Harness::start().await;
    let te = "Transfer-Encoding: chunked\r\n";

    // Positive control: an extension is legal and dropped; the upstream gets the data.
    let out = h
        .case(
            "extension",
            &post("/echo/ext", te, b"5;name=value\r\nhello\r\n0\r\n\r\n"),
            Expect::Exactly(&[200]),
        )
        .await;
    assert_eq!(&out.upstream[0].body[..], b"hello");

    let long_ext = format!("5;{}\r\nhello\r\n0\r\n\r\n", "a".repeat(100_000));
    let many_ext = format!("5{}\r\nhello\r\n0\r\n\r\n", ";a=b".repeat(20_000));
    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        (
            "size overflow",
            format!("ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n{SMUGGLED}").into_bytes(),
            Expect::Reject(B400),
        ),
        (
            "size u64 max",
            b"ffffffffffffffff\r\nhello\r\n0\r\n\r\n".to_vec(),
            Expect::Reject(&[400, 413]),
        ),
        (
            "negative size",
            format!("-5\r\nhello\r\n0\r\n\r\n{SMUGGLED}").into_bytes(),
            Expect::Reject(B400),
        ),
        (
            "0x prefix",
            format!("0x5\r\nhello\r\n0\r\n\r\n{SMUGGLED}").into_bytes(),
            Expect::Reject(B400),
        ),
        (
            "plus sign",
            b"+5\r\nhello\r\n0\r\n\r\n".to_vec(),
            Expect::Reject(B400),
        ),
        (
            "empty size",
            b"\r\nhello\r\n0\r\n\r\n".to_vec(),
            Expect::Served,
        ),
        (
            "not hex",
            b"g\r\nhello\r\n0\r\n\r\n".to_vec(),
            Expect::Reject(B400),
        ),
        (
            "leading space",
            b" 5\r\nhello\r\n0\r\n\r\n".to_vec(),
            Expect::Reject(B400),
        ),
        (
            "trailing space",
            b"5 \r\nhello\r\n0\r\n\r\n".to_vec(),
            Expect::Served,
        ),
        (
            "data longer than size",
            format!("3\r\nhello\r\n0\r\n\r\n{SMUGGLED}").into_bytes(),
            Expect::Reject(B400),
        ),
        (
            "data shorter than size",
            format!("9\r\nhello\r\n0\r\n\r\n{SMUGGLED}").into_bytes(),
            Expect::Reject(B400),
        ),
        (
            "no last chunk",
            format!("5\r\nhello\r\n{SMUGGLED}").into_bytes(),
            Expect::Reject(B400),
        ),
        (
            "bare LF lines",
            b"5\nhello\n0\n\n".to_vec(),
            Expect::Reject(B400),
        ),
        (
            "bare CR lines",
            b"5\rhello\r0\r\r".to_vec(),
            Expect::Reject(B400),
        ),
        (
            "long extension",
            long_ext.into_bytes(),
            Expect::Reject(B400),
        ),
        (
            "many extensions",
            many_ext.into_bytes(),
            Expect::Reject(B400),
        ),
        (
            "quoted CRLF in extension",
            format!("5;a=\"x\r\n{SMUGGLED}\"\r\nhello\r\n0\r\n\r\n").into_bytes(),
            Expect::Reject(B400),
        ),
        (
            "extension with NUL",
            b"5;a=\0\r\nhello\r\n0\r\n\r\n".to_vec(),
            Expect::Served,
        ),
        (
            "trailer",
            b"5\r\nhello\r\n0\r\nX-Trailer: a\r\n\r\n".to_vec(),
            Expect::Served,
        ),
        (
            "trailer smuggling framing",
            b"5\r\nhello\r\n0\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
            Expect::Served,
        ),
    ];
    for (name, body, expect) in &cases {
        let out = h
            .case(
                &format!("chunk {name}"),
                &post("/echo/chunk", te, body),
                *expect,
            )
            .await;
        for r in &out.upstream {
            assert!(
                r.body.is_empty() || &r.body[..] == b"hello",
                "chunk {name}: the upstream body is the decoded data, got {:?}",
                String::from_utf8_lossy(&r.body)
            );
        }
    }
    assert!(!h.gw.log().contains("panicked"), "{}", h.gw.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bytes_sizes_versions_and_hosts_get_4xx() {
    let mut h = Harness::start().await;
    let get = |extra: &[u8]| {
        let mut v = b"GET /echo/hdr HTTP/1.1\r\nHost: x\r\n".to_vec();
        v.extend_from_slice(extra);
        v.extend_from_slice(b"\r\n");
        v
    };
    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        ("NUL in name", get(b"X-\0A: b\r\n"), Expect::Reject(B400)),
        ("CR in name", get(b"X-\rA: b\r\n"), Expect::Reject(B400)),
        ("space in name", get(b"X A: b\r\n"), Expect::Reject(B400)),
        ("DEL in name", get(b"X-\x7fA: b\r\n"), Expect::Reject(B400)),
        (
            "high byte in name",
            get(b"X-\xffA: b\r\n"),
            Expect::Reject(B400),
        ),
        ("empty name", get(b": b\r\n"), Expect::Reject(B400)),
        ("NUL in value", get(b"X-A: a\0b\r\n"), Expect::Reject(B400)),
        (
            "bare CR in value",
            get(b"X-A: a\rb\r\n"),
            Expect::Reject(B400),
        ),
        (
            "DEL in value",
            get(b"X-A: a\x7fb\r\n"),
            Expect::Reject(B400),
        ),
        (
            "escape in value",
            get(b"X-A: a\x1bb\r\n"),
            Expect::Reject(B400),
        ),
        (
            "obs-text in value",
            get(b"X-A: caf\xc3\xa9 \x80\xff\r\n"),
            Expect::Served,
        ),
        ("obs-fold", get(b"X-A: a\r\n b\r\n"), Expect::Reject(B400)),
        (
            "obs-fold tab",
            get(b"X-A: a\r\n\tb\r\n"),
            Expect::Reject(B400),
        ),
        (
            "NUL in target",
            b"GET /echo/a\0b HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            Expect::Reject(&[403]),
        ),
        // Pingora percent-escapes the CR (`%0D`) and forwards the request; the terminator behind
        // it then trips Pingora's pipelining-off check, so the answer may be a 400 after the
        // upstream saw the (escaped) request.
        (
            "CR in target",
            b"GET /echo/a\rb HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            Expect::Pass,
        ),
        (
            "request line too long",
            format!(
                "GET /echo/{} HTTP/1.1\r\nHost: x\r\n\r\n",
                "a".repeat(16 * 1024)
            )
            .into_bytes(),
            Expect::Reject(&[414]),
        ),
        (
            // Past what `http::Uri` holds (64 KiB): Pingora answers 400 itself.
            "request line over 64 KiB",
            format!(
                "GET /echo/{} HTTP/1.1\r\nHost: x\r\n\r\n",
                "a".repeat(64 * 1024)
            )
            .into_bytes(),
            Expect::Reject(B400),
        ),
        (
            "query too long",
            format!(
                "GET /echo/q?a={} HTTP/1.1\r\nHost: x\r\n\r\n",
                "b".repeat(9 * 1024)
            )
            .into_bytes(),
            Expect::Reject(&[414]),
        ),
        (
            "one header too large",
            get(format!("X-Big: {}\r\n", "c".repeat(64 * 1024)).as_bytes()),
            Expect::Reject(&[431]),
        ),
        (
            "header section too large",
            get(
                "X-Big: cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\r\n"
                    .repeat(2000)
                    .as_bytes(),
            ),
            Expect::Reject(&[400, 431]),
        ),
        (
            "header section over a megabyte",
            get(format!("X-Big: {}\r\n", "c".repeat(2 * 1024 * 1024)).as_bytes()),
            Expect::Reject(&[400, 431]),
        ),
        (
            "too many headers",
            get("X-N: 1\r\n".repeat(300).as_bytes()),
            Expect::Reject(&[400, 431]),
        ),
        (
            "HTTP/0.9",
            b"GET /echo/09\r\n".to_vec(),
            Expect::Reject(B400),
        ),
        (
            "HTTP/2.0 over HTTP/1 framing",
            b"GET /echo/20 HTTP/2.0\r\nHost: x\r\n\r\n".to_vec(),
            Expect::Reject(&[400, 505]),
        ),
        (
            "HTTP/1.2",
            b"GET /echo/12 HTTP/1.2\r\nHost: x\r\n\r\n".to_vec(),
            Expect::Reject(&[400, 505]),
        ),
        (
            "lower-case version",
            b"GET /echo/v http/1.1\r\nHost: x\r\n\r\n".to_vec(),
            Expect::Reject(B400),
        ),
        (
            "HTTP/1.0 with Transfer-Encoding",
            b"POST /echo/10 HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            Expect::Reject(B400),
        ),
        (
            "absolute-form, same host",
            b"GET http://x/echo/abs HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            Expect::Served,
        ),
        (
            "absolute-form, other host",
            b"GET http://other.example/echo/abs HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            Expect::Reject(B400),
        ),
        (
            "absolute-form, userinfo",
            b"GET http://u@x/echo/abs HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            Expect::Reject(B400),
        ),
        (
            "absolute-form, no Host",
            b"GET http://x/echo/abs HTTP/1.1\r\n\r\n".to_vec(),
            Expect::Reject(B400),
        ),
        (
            "asterisk-form GET",
            b"GET * HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            Expect::Reject(B400),
        ),
        (
            "OPTIONS asterisk-form",
            b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            Expect::Pass,
        ),
        (
            "target without a slash",
            b"GET echo/x HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            Expect::Reject(B400),
        ),
        (
            "authority-form CONNECT",
            b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n".to_vec(),
            Expect::Reject(&[400, 405]),
        ),
        (
            "TRACE",
            b"TRACE /echo/t HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            Expect::Reject(&[400, 405]),
        ),
        (
            "HTTP/1.1 without Host",
            b"GET /echo/nohost HTTP/1.1\r\n\r\n".to_vec(),
            Expect::Reject(B400),
        ),
        (
            "HTTP/1.0 without Host",
            b"GET /echo/nohost10 HTTP/1.0\r\n\r\n".to_vec(),
            Expect::Served,
        ),
        (
            "duplicate Host",
            b"GET /echo/dup HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n".to_vec(),
            Expect::Reject(B400),
        ),
        (
            "Host list",
            b"GET /echo/dup HTTP/1.1\r\nHost: x, y\r\n\r\n".to_vec(),
            Expect::Reject(B400),
        ),
        (
            "empty Host",
            b"GET /echo/empty HTTP/1.1\r\nHost: \r\n\r\n".to_vec(),
            Expect::Served,
        ),
        (
            "Host with userinfo",
            b"GET /echo/ui HTTP/1.1\r\nHost: u@x\r\n\r\n".to_vec(),
            Expect::Reject(B400),
        ),
        (
            "Host with path",
            b"GET /echo/hp HTTP/1.1\r\nHost: x/y\r\n\r\n".to_vec(),
            Expect::Reject(B400),
        ),
        (
            "garbage line",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(),
            Expect::Reject(B400),
        ),
        (
            "empty lines before request",
            b"\r\n\r\nGET /echo/lead HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            Expect::Served,
        ),
    ];
    for (name, bytes, expect) in &cases {
        h.case(name, bytes, *expect).await;
    }
    assert!(!h.gw.log().contains("panicked"), "{}", h.gw.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_after_a_blocked_one_are_never_smuggled() {
    let mut h = Harness::start().await;
    let xss = "/echo/first?q=%3Cscript%3Ealert(document.cookie)%3C/script%3E";

    // Blocked on the head, then a benign request: answered separately (or the connection closed
    // after the 403); the upstream sees at most the second, never the first.
    let mut bytes = format!("GET {xss} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes();
    bytes.extend_from_slice(b"GET /echo/second HTTP/1.1\r\nHost: x\r\n\r\n");
    let out = h
        .case("blocked head, then benign", &bytes, Expect::Pass)
        .await;
    assert_eq!(out.statuses().first(), Some(&403), "{:?}", out.statuses());
    assert!(out.upstream.iter().all(|r| r.path() == "/echo/second"));

    // Blocked on the head with a Content-Length body that holds a whole request: the body is
    // body, however the gateway disposes of it.
    let bytes = post(
        "/echo/first?q=%3Cscript%3Ealert(1)%3C/script%3E",
        &format!("Content-Length: {}\r\n", SMUGGLED.len()),
        SMUGGLED.as_bytes(),
    );
    let out = h
        .case("blocked head, CL body", &bytes, Expect::Exactly(&[403]))
        .await;
    assert!(out.upstream.is_empty());

    // The same with a chunked body, and with a body the gateway never reads because the head
    // was enough to block it; a benign request follows.
    let mut bytes = post(
        xss,
        "Transfer-Encoding: chunked\r\n",
        format!("{}0\r\n\r\n", chunk(SMUGGLED)).as_bytes(),
    );
    bytes.extend_from_slice(b"GET /echo/after HTTP/1.1\r\nHost: x\r\n\r\n");
    let out = h
        .case("blocked head, chunked body", &bytes, Expect::Pass)
        .await;
    assert_eq!(out.statuses().first(), Some(&403));
    assert!(out.upstream.iter().all(|r| r.path() == "/echo/after"));

    // Blocked on the body (JSON attack), then a benign request.
    let json = format!(
        "{{\"q\":\"1' UNION SELECT password FROM users--\",\"pad\":{:?}}}",
        SMUGGLED
    );
    let mut bytes = post(
        "/echo/body",
        &format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            json.len()
        ),
        json.as_bytes(),
    );
    bytes.extend_from_slice(b"GET /echo/after-body HTTP/1.1\r\nHost: x\r\n\r\n");
    let out = h
        .case("blocked body, then benign", &bytes, Expect::Pass)
        .await;
    assert_eq!(out.statuses().first(), Some(&403));
    assert!(out.upstream.iter().all(|r| r.path() == "/echo/after-body"));

    // Over the route's body cap (413 from the declared length): the unread body, full of
    // requests, is never parsed as requests.
    let body = SMUGGLED.repeat(64);
    let bytes = post(
        "/small/x",
        &format!("Content-Length: {}\r\n", body.len()),
        body.as_bytes(),
    );
    let out = h
        .case(
            "413 with requests in the body",
            &bytes,
            Expect::Exactly(&[413]),
        )
        .await;
    assert!(out.upstream.is_empty());
    let bytes = post(
        "/small/x",
        "Transfer-Encoding: chunked\r\n",
        format!("{}0\r\n\r\n", chunk(&body)).as_bytes(),
    );
    let out = h
        .case(
            "413 chunked with requests in the body",
            &bytes,
            Expect::Exactly(&[413]),
        )
        .await;
    assert!(out.upstream.is_empty());

    // A protocol violation followed by a benign request: the connection is closed or the
    // second request is answered on its own.
    let mut bytes = post(
        "/echo/bad",
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        b"hello!",
    );
    bytes.extend_from_slice(b"GET /echo/after-bad HTTP/1.1\r\nHost: x\r\n\r\n");
    let out = h.case("400 then benign", &bytes, Expect::Pass).await;
    assert_eq!(out.statuses().first(), Some(&400));
    assert!(out.upstream.iter().all(|r| r.path() == "/echo/after-bad"));

    // Many pipelined requests with blocked ones in between: every answer lines up with its
    // request, and only the benign ones reach the upstream, in order.
    let mut bytes = Vec::new();
    let mut want = Vec::new();
    for i in 0..20 {
        if i % 3 == 1 {
            bytes.extend_from_slice(
                format!("GET {xss}&i={i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
            );
            want.push(403);
        } else {
            bytes.extend_from_slice(
                format!("GET /echo/p{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
            );
            want.push(200);
        }
    }
    let out = h.case("mixed pipeline", &bytes, Expect::Pass).await;
    let got = out.statuses();
    assert!(
        !got.is_empty() && want.starts_with(&got),
        "answers in order: {got:?}"
    );
    let paths: Vec<String> = out.upstream.iter().map(|r| r.path().to_string()).collect();
    let want_paths: Vec<String> = (0..got.len())
        .filter(|i| i % 3 != 1)
        .map(|i| format!("/echo/p{i}"))
        .collect();
    assert_eq!(paths, want_paths);
    for (r, resp) in out
        .responses
        .iter()
        .filter(|r| r.status == 200)
        .zip(&want_paths)
    {
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("echo json");
        assert_eq!(
            v["path"].as_str(),
            Some(resp.as_str()),
            "answer matches its request"
        );
    }
    assert!(!h.gw.log().contains("panicked"), "{}", h.gw.log());
}

/// One step of a conversation on a single keep-alive connection.
enum Step<'a> {
    /// Write these bytes.
    Send(&'a [u8]),
    /// Read until this many answers in all have arrived (or the gateway closed).
    Await(usize),
}

/// Play `steps` on one connection, then read until the gateway closes it; returns the answers.
async fn converse(gw: &Gateway, steps: &[Step<'_>]) -> Vec<Response> {
    tokio::time::timeout(EXCHANGE_TIMEOUT, async {
        let mut s = tokio::net::TcpStream::connect(gw.addr())
            .await
            .expect("connect");
        let mut raw = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut closed = false;
        for step in steps {
            match step {
                Step::Send(b) => {
                    if closed || s.write_all(b).await.is_err() {
                        closed = true;
                    }
                }
                Step::Await(n) => {
                    while !closed && parse_responses(&raw).0.len() < *n {
                        match tokio::time::timeout(IDLE_LIMIT, s.read(&mut buf)).await {
                            Err(_) => panic!("no answer within {IDLE_LIMIT:?}"),
                            Ok(Ok(0)) | Ok(Err(_)) => closed = true,
                            Ok(Ok(k)) => raw.extend_from_slice(&buf[..k]),
                        }
                    }
                }
            }
        }
        while !closed {
            match tokio::time::timeout(IDLE_LIMIT, s.read(&mut buf)).await {
                Err(_) => panic!("the gateway kept the connection open after Connection: close"),
                Ok(Ok(0)) | Ok(Err(_)) => closed = true,
                Ok(Ok(k)) => raw.extend_from_slice(&buf[..k]),
            }
        }
        let (responses, trailing) = parse_responses(&raw);
        assert!(trailing.is_empty(), "truncated answer {trailing:?}");
        responses
    })
    .await
    .expect("conversation timed out")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_after_a_blocked_request_never_parses_its_body_as_a_request() {
    let mut h = Harness::start().await;
    let next = b"GET /echo/next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let blocked = "/echo/first?q=%3Cscript%3Ealert(1)%3C/script%3E";

    // The head is blocked before the body is sent; the body (a whole request) arrives after the
    // 403 on the same connection, then a benign request.
    let cl_head = format!(
        "POST {blocked} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        SMUGGLED.len()
    );
    let chunked_body = format!("{}0\r\n\r\n", chunk(SMUGGLED));
    let te_head =
        format!("POST {blocked} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    let big = SMUGGLED.repeat(64);
    let over_cap = format!(
        "POST /small/x HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        big.len()
    );
    let conversations: Vec<(&str, Vec<Step>, u16)> = vec![
        (
            "403 on the head, CL body after the answer",
            vec![
                Step::Send(cl_head.as_bytes()),
                Step::Await(1),
                Step::Send(SMUGGLED.as_bytes()),
                Step::Send(next),
            ],
            403,
        ),
        (
            "403 on the head, chunked body after the answer",
            vec![
                Step::Send(te_head.as_bytes()),
                Step::Await(1),
                Step::Send(chunked_body.as_bytes()),
                Step::Send(next),
            ],
            403,
        ),
        (
            "413 on the declared length, body after the answer",
            vec![
                Step::Send(over_cap.as_bytes()),
                Step::Await(1),
                Step::Send(big.as_bytes()),
                Step::Send(next),
            ],
            413,
        ),
    ];
    for (name, steps, first) in &conversations {
        h.rec.clear();
        let answers = converse(&h.gw, steps).await;
        let upstream = h.settle().await;
        let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
        eprintln!("{name:<48} -> {statuses:?} upstream={}", upstream.len());
        let paths: Vec<&str> = upstream.iter().map(|r| r.path()).collect();
        assert_eq!(statuses.first(), Some(first), "{name}: {statuses:?}");
        assert!(statuses.len() <= 2, "{name}: {statuses:?}");
        if statuses.len() == 2 {
            assert_eq!(statuses[1], 200, "{name}: {statuses:?}");
            assert_eq!(paths, vec!["/echo/next"], "{name}");
        } else {
            assert!(paths.is_empty(), "{name}: {paths:?}");
        }
    }

    // A served request, then a blocked one, then a served one, on one connection.
    h.rec.clear();
    let blocked_get = format!("GET {blocked} HTTP/1.1\r\nHost: x\r\n\r\n");
    let answers = converse(
        &h.gw,
        &[
            Step::Send(b"GET /echo/a HTTP/1.1\r\nHost: x\r\n\r\n"),
            Step::Await(1),
            Step::Send(blocked_get.as_bytes()),
            Step::Await(2),
            Step::Send(next),
        ],
    )
    .await;
    let upstream = h.settle().await;
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert!(statuses.starts_with(&[200, 403]), "{statuses:?}");
    let paths: Vec<&str> = upstream.iter().map(|r| r.path()).collect();
    assert_eq!(
        paths,
        [&["/echo/a"][..], &["/echo/next"][..statuses.len() - 2]].concat()
    );
    assert!(!h.gw.log().contains("panicked"), "{}", h.gw.log());
}

/// Regression: bytes a client sends after its request while the gateway is proxying it
/// (pipelining across TCP segments; Pingora's pipelining is off) make Pingora fail the exchange
/// with a *downstream* error. The gateway counted that as an upstream failure: it retried the
/// request (the upstream could see it twice), answered 502, and after `max_failures` such
/// requests ejected a healthy target, so any client could take the upstream out of service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_bytes_after_the_request_never_count_against_the_upstream() {
    let mut h = Harness::start().await;
    for i in 0..4 {
        h.rec.clear();
        let answers = tokio::time::timeout(EXCHANGE_TIMEOUT, async {
            let mut s = tokio::net::TcpStream::connect(h.gw.addr())
                .await
                .expect("connect");
            let req = format!("GET /slow?ms=300&i={i} HTTP/1.1\r\nHost: x\r\n\r\n");
            s.write_all(req.as_bytes()).await.expect("write");
            // Once the upstream holds the request, the gateway is in its body/idle poll.
            assert!(h.rec.wait_for_started(1, EXCHANGE_TIMEOUT).await);
            let _ = s
                .write_all(b"GET /echo/second HTTP/1.1\r\nHost: x\r\n\r\n")
                .await;
            let mut raw = Vec::new();
            let _ = s.read_to_end(&mut raw).await;
            parse_responses(&raw).0
        })
        .await
        .expect("answered in time");
        let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
        let upstream = h.settle().await;
        eprintln!(
            "pipelined during proxying #{i} -> {statuses:?} upstream={}",
            upstream.len()
        );
        assert!(
            statuses.iter().all(|s| *s < 500),
            "a client's extra bytes are not an upstream failure: {statuses:?}\n{}",
            log_tail(&h.gw)
        );
        assert!(
            upstream.iter().filter(|r| r.path() == "/slow").count() <= 1,
            "never retried: {:?}",
            upstream
                .iter()
                .map(|r| r.uri.to_string())
                .collect::<Vec<_>>()
        );
        assert!(upstream.iter().all(|r| r.path() != "/echo/second"));
    }
    // `settle` already proved the target still serves: it was not ejected.
}
