//! The engine's benchmark workload in a plain loop, for callgrind (instruction counts do not
//! depend on machine load): `profile head N` inspects the 1 KB request N times, `profile json N`
//! also a 64 KB JSON body, `profile get N` a small `GET /` with four headers from a repeat client
//! (its header values remembered clean, as the gateway does; the head pass of `scripts/bench.sh`'s
//! `get` shape), `profile args N` its `args` shape (10 query arguments, 5 cookies, a repeat
//! client), `profile file N PATH` the 1 KB request and the JSON body read from PATH (for
//! example `scripts/bench.sh`'s `post4k.json`), `profile write-body PATH` writes the 64 KB body
//! to PATH, `profile serde N PATH` times `serde_json` reading the body at PATH (a parse floor).
//! `PROFILE_MEMORY=1` turns the cross-request memory of clean names and header values on for
//! every workload, as the gateway runs.
//! `PROFILE_BLANK=note,email` (field names, or `all`) writes the `json` body with those fields'
//! values as `a`s of the same length: what each field costs is the difference. See
//! `crates/waf/PERF.md`.

use std::hint::black_box;

use palisade_waf::{Inspection, Policy, PolicyConfig, RequestHead, RuleSet};

mod workload;
use workload::{headers, json_body, json_body_blanking, rule_sources, QUERY};

fn main() {
    // `profile write-body PATH`: the 64 KB workload body written to PATH, nothing measured
    // (`scripts/detector-reference.sh` runs other detectors over its values).
    if std::env::args().nth(1).as_deref() == Some("write-body") {
        let path = std::env::args().nth(2).expect("profile write-body PATH");
        std::fs::write(&path, json_body(64 * 1024)).expect("write the body");
        return;
    }
    // `profile serde N PATH`: `serde_json` reading the body at PATH N times and keeping nothing,
    // a floor for any reader of it (no rule loaded, nothing inspected).
    if std::env::args().nth(1).as_deref() == Some("serde") {
        let n: u32 = std::env::args()
            .nth(2)
            .and_then(|a| a.parse().ok())
            .unwrap_or(300);
        let path = std::env::args().nth(3).expect("profile serde N PATH");
        let body = std::fs::read(&path).expect("read the body file");
        let t = std::time::Instant::now();
        for _ in 0..n.max(1) {
            let read = serde_json::from_slice::<serde::de::IgnoredAny>(black_box(&body));
            assert!(read.is_ok(), "{path} is not JSON");
        }
        println!("{:?} per iteration", t.elapsed() / n.max(1));
        return;
    }
    let (_, src) = rule_sources();
    let rs = RuleSet::from_sources(&src).expect("rules load");
    rs.wait_background();
    let policy = Policy::compile(&PolicyConfig::default(), &rs).expect("policy");
    // Parts of the 1 KB request can be swapped out to see what one value costs:
    // `PROFILE_QUERY` replaces its query string, `PROFILE_HEADERS` (comma-separated names)
    // keeps only those headers, `PROFILE_SET="name: value"` sets one.
    let mut h = headers();
    if let Ok(keep) = std::env::var("PROFILE_HEADERS") {
        let keep: Vec<&str> = keep.split(',').map(str::trim).collect();
        let names: Vec<http::HeaderName> = h.keys().cloned().collect();
        for n in names {
            if !keep.contains(&n.as_str()) {
                h.remove(&n);
            }
        }
    }
    // `PROFILE_SET="name: value"` sets one header.
    if let Some((n, v)) = std::env::var("PROFILE_SET")
        .ok()
        .as_deref()
        .and_then(|s| s.split_once(": "))
    {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(n.as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            h.insert(n, v);
        }
    }
    let query_override = std::env::var("PROFILE_QUERY").ok();
    let head = RequestHead {
        method: "GET",
        path: b"/api/v1/products/search",
        query: Some(query_override.as_deref().map_or(QUERY, str::as_bytes)),
        headers: &h,
        authority: None,
    };
    let which = std::env::args().nth(1).unwrap_or_default();
    let mut small = http::HeaderMap::new();
    for (n, v) in [
        ("host", "127.0.0.1:18401"),
        ("user-agent", "wrk/4.2.0 (palisade bench)"),
        ("accept", "*/*"),
        ("x-api-key", "pk_live_3f9a1c0e7b2d4a6f8e1c3b5d7f9a2c4e"),
    ] {
        small.append(
            http::HeaderName::from_static(n),
            http::HeaderValue::from_static(v),
        );
    }
    let get = RequestHead {
        method: "GET",
        path: b"/",
        query: None,
        headers: &small,
        authority: None,
    };
    let mut args_headers = small.clone();
    args_headers.insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static(
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
    );
    args_headers.insert(
        http::header::COOKIE,
        http::HeaderValue::from_static(
            "session=3f9a1c77e2b54d0c9e8f1a2b3c4d5e6f; theme=dark; lang=en-US; cart_id=98765; consent=analytics",
        ),
    );
    let args = RequestHead {
        method: "GET",
        path: b"/search",
        query: Some(b"q=laptop+bag&category=electronics&brand=acme&min_price=100&max_price=2000&sort=price_asc&page=2&per_page=50&color=silver&in_stock=true"),
        headers: &args_headers,
        authority: None,
    };
    let head = match which.as_str() {
        "get" => get,
        "args" => args,
        _ => head,
    };
    let mut out = Inspection::new();
    // `head` and `json`: every iteration is a cold request, the same headers are not remembered
    // clean from one iteration to the next (the gateway does remember them, see src/clean.rs).
    out.set_header_memory(
        which == "get" || which == "args" || std::env::var_os("PROFILE_MEMORY").is_some(),
    );
    let body = if which == "file" {
        let path = std::env::args().nth(3).expect("profile file N PATH");
        std::fs::read(&path).expect("read the body file")
    } else {
        // `PROFILE_BLANK=note,email` (or `all`): those fields' values as `a`s of the same
        // length, to see what each costs (workload::json_body_blanking).
        let blank = std::env::var("PROFILE_BLANK").unwrap_or_default();
        let blank: Vec<&str> = blank.split(',').filter(|f| !f.is_empty()).collect();
        if blank.is_empty() {
            json_body(64 * 1024)
        } else {
            json_body_blanking(64 * 1024, &blank)
        }
    };
    let with_body = which == "json" || which == "file";
    let t = std::time::Instant::now();
    let n: u32 = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(if with_body { 200 } else { 20000 });
    if std::env::var_os("PROFILE_WARM").is_some() {
        // One request before the measured ones: the lazy DFAs' caches filled, so a profile
        // of `measured` (`valgrind --tool=callgrind --toggle-collect='*measured*'`) shows the
        // steady state.
        rs.inspect_head(&policy, &head, &mut out);
        if with_body {
            rs.inspect_body(&policy, Some(b"application/json"), &body, &mut out);
        }
    }
    measured(
        &rs,
        &policy,
        &head,
        with_body.then_some(&body[..]),
        n,
        &mut out,
    );
    println!("{:?} per iteration", t.elapsed() / n);
    if with_body {
        // The workload must be a valid body with no finding, or the figure means nothing.
        assert!(out.body_error().is_none(), "{:?}", out.body_error());
        println!("{} byte body, score {}", body.len(), out.score());
    }
}

/// The measured requests (a function of its own, for callgrind's `--toggle-collect`).
#[inline(never)]
fn measured(
    rs: &RuleSet,
    policy: &Policy,
    head: &RequestHead<'_>,
    body: Option<&[u8]>,
    n: u32,
    out: &mut Inspection,
) {
    for _ in 0..n {
        rs.inspect_head(policy, black_box(head), out);
        if let Some(body) = body {
            rs.inspect_body(policy, Some(b"application/json"), body, out);
        }
    }
}
