//! The rule author's tools (`explain`, embedded tests) and protocol enforcement.

mod common;

use common::*;
use http::{HeaderMap, HeaderValue};
use palisade_waf::protocol::{check, Violation};
use palisade_waf::{explain, RuleSet, Verdict};

#[test]
fn explain_prints_rule_target_transforms_match_score_and_verdict() {
    let rs = fixtures();
    let p = default_policy(&rs);
    let raw = b"POST /login?next=%2Fhome HTTP/1.1\r\nHost: x\r\nUser-Agent: sqlmap/1.7\r\n\
Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 26\r\n\r\nuser=1%27+or+%271%27%3D%271";
    let e = explain(&rs, &p, raw).expect("parses");
    let text = e.to_string();
    assert!(
        text.starts_with(
            "request: POST /login?next=%2Fhome (4 headers, 26 body bytes)\nprotocol: ok\n"
        ),
        "{text}"
    );
    assert!(text.contains("rule 4001 [scanner] \"scanner user agent\" critical +5\n    target:     headers:user-agent\n    transforms: lowercase\n    value:      \"sqlmap/1.7\"\n    matched:    \"sqlmap\"\n"), "{text}");
    assert!(
        text.contains("    target:     args:user\n    transforms: decode_all, remove_nulls\n"),
        "{text}"
    );
    assert!(text.contains("(fingerprint "), "{text}");
    assert!(
        text.ends_with("score: 10 (threshold 5, paranoia 1)\nverdict: block"),
        "{text}"
    );
    assert_eq!(e.verdict, Verdict::Block);
}

/// A URL in the query of an origin-form target is part of the query: `explain` once took the
/// first `://` anywhere in the target for an absolute-form target's scheme, cut the request
/// down to what followed the URL's host, and missed the injection before it.
#[test]
fn explain_keeps_a_url_in_the_query() {
    let rs = fixtures();
    let p = default_policy(&rs);
    let raw =
        b"GET /run?foo=1%27+or+%271%27%3D%271&next=http://x.example/a HTTP/1.1\r\nHost: x\r\n\r\n";
    let e = explain(&rs, &p, raw).expect("parses");
    let text = e.to_string();
    assert!(
        text.starts_with("request: GET /run?foo=1%27+or+%271%27%3D%271&next=http://x.example/a "),
        "{text}"
    );
    assert_eq!(e.verdict, Verdict::Block, "{text}");
    // An absolute-form target still loses its scheme and host.
    let e = explain(&rs, &p, b"GET http://x.example/a?q=1 HTTP/1.1\r\n\r\n").expect("parses");
    assert!(e.to_string().starts_with("request: GET /a?q=1 "), "{e}");
}

#[test]
fn explain_reports_protocol_violations_and_bad_input() {
    let rs = fixtures();
    let p = default_policy(&rs);
    let raw =
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    let e = explain(&rs, &p, raw).expect("parses");
    assert_eq!(e.protocol, Err(Violation::ContentLengthAndTransferEncoding));
    assert!(e.to_string().contains("protocol: both content-length and transfer-encoding [smuggling_cl_te] (the gateway answers 400)"));
    assert_eq!(
        explain(&rs, &p, b"garbage\r\n\r\n")
            .err()
            .map(|e| e.to_string()),
        Some(
            "line 1: bad request line \"garbage\" (expected e.g. `GET /path?q=1 HTTP/1.1`)".into()
        )
    );
    let e = explain(&rs, &p, b"GET / HTTP/1.1\nno colon here\n\n")
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        e,
        Some("line 2: bad header line \"no colon here\" (expected `Name: value`)".into())
    );
}

#[test]
fn embedded_test_failures_name_file_line_and_rule() {
    let text = "class: xss
rules:
  - id: 7
    name: t
    severity: notice
    paranoia: 1
    targets: [args]
    transforms: [lowercase]
    match:
      contains_any: [\"<script\"]
    tests:
      match: [\"<SCRIPT>\", \"<scr ipt>\"]
      no_match:
        - \"fine\"
        - \"<script src=x>\"
";
    let rs = RuleSet::from_sources(&[("t.yaml".into(), text.into())]).expect("loads");
    let r = rs.run_embedded_tests();
    assert!(!r.passed());
    assert_eq!(
        r.to_string(),
        "t.yaml:12: rule 7: expected a match on \"<scr ipt>\", got none (after transforms: \"<scr ipt>\")\n\
t.yaml:15: rule 7: expected no match on \"<script src=x>\", but matched \"<script\" (after transforms: \"<script src=x>\")\n\
1 rules, 4 tests, 2 failed"
    );
}

/// A regex listing more words than one gate holds loses its gate's second clause to the cap
/// and runs on every value with its byte class: `palisade rules test` says so, naming the file,
/// line and rule, and a rule of a few words gets no note.
#[test]
fn embedded_tests_note_a_gate_the_factor_cap_dropped() {
    let words: Vec<String> = (0..70).map(|i| format!("fn{i:02}x")).collect();
    let text = format!(
        "class: code-injection
rules:
  - id: 8
    name: many
    severity: notice
    paranoia: 1
    targets: [args]
    transforms: [lowercase]
    match:
      regex: '(?:{})\\('
    tests:
      match: [\"fn07x(\"]
  - id: 9
    name: few
    severity: notice
    paranoia: 1
    targets: [args]
    transforms: [lowercase]
    match:
      regex: '(?:fn01x|fn02x)\\('
    tests:
      match: [\"fn02x(\"]
",
        words.join("|")
    );
    let rs = RuleSet::from_sources(&[("c.yaml".into(), text)]).expect("loads");
    let r = rs.run_embedded_tests();
    assert!(r.passed(), "{r}");
    let text = r.to_string();
    assert!(
        text.ends_with("\nnote: c.yaml:3: rule 8: its regex lists more words than one gate holds, so its second clause was dropped and it runs on many more values than it needs to: splitting it in two may pay (measure it)"),
        "{text}"
    );
    assert_eq!(text.matches("note:").count(), 1, "{text}");
}

fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(n.as_bytes()).expect("name"),
            HeaderValue::from_bytes(v).expect("value"),
        );
    }
    h
}

#[test]
fn protocol_smuggling_shapes_are_violations() {
    assert_eq!(check("GET", &headers(&[("host", b"x")])), Ok(()));
    assert_eq!(
        check("POST", &headers(&[("transfer-encoding", b"chunked")])),
        Ok(())
    );
    assert_eq!(
        check(
            "POST",
            &headers(&[("content-length", b"5"), ("transfer-encoding", b"chunked")])
        ),
        Err(Violation::ContentLengthAndTransferEncoding)
    );
    assert_eq!(
        check(
            "POST",
            &headers(&[("content-length", b"5"), ("content-length", b"6")])
        ),
        Err(Violation::DuplicateContentLength)
    );
    assert_eq!(
        check("POST", &headers(&[("content-length", b"5, 5")])),
        Err(Violation::DuplicateContentLength)
    );
    assert_eq!(
        check("POST", &headers(&[("content-length", b"+5")])),
        Err(Violation::InvalidContentLength)
    );
    for te in [
        &b"Chunked"[..],
        b"chunked, identity",
        b"xchunked",
        b"gzip, chunked",
    ] {
        assert!(
            matches!(
                check("POST", &headers(&[("transfer-encoding", te)])),
                Err(Violation::UnsupportedTransferEncoding(_))
            ),
            "{te:?}"
        );
    }
    assert_eq!(
        check(
            "POST",
            &headers(&[
                ("transfer-encoding", b"chunked"),
                ("transfer-encoding", b"chunked")
            ])
        ),
        Err(Violation::UnsupportedTransferEncoding(
            "several headers".into()
        ))
    );
    // `http::HeaderValue` already refuses control bytes; obs-text (0x80-0xFF) is allowed.
    assert_eq!(check("GET", &headers(&[("x-a", b"caf\xc3\xa9")])), Ok(()));
    for m in ["CONNECT", "TRACE", "TRACK", "FOO"] {
        assert_eq!(
            check(m, &HeaderMap::new()),
            Err(Violation::DisallowedMethod(m.into()))
        );
    }
    assert_eq!(
        Violation::DuplicateContentLength.code(),
        "duplicate_content_length"
    );
}
