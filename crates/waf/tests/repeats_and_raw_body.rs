//! Repeated values are inspected once per request, and the raw body of a JSON or urlencoded
//! body that parsed whole goes only to the rules that do not already see its keys and values.
//! Neither may hide an attack.

mod common;

use std::path::PathBuf;

use common::*;
use palisade_waf::RuleSet;

fn shipped() -> RuleSet {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../rules");
    match RuleSet::load_dir(&dir) {
        Ok(rs) => rs,
        Err(e) => panic!("shipped rules do not load:\n{e}"),
    }
}

#[test]
fn repeated_keys_are_inspected_once_and_a_later_attack_still_fires() {
    let rs = fixtures();
    // Complete matches: the values after the attack are looked at too (in block mode
    // inspection would stop at it, and the counts below would say less).
    let p = policy(&rs, "complete_matches: true");
    let mut body = String::from("[");
    for i in 0..200 {
        body.push_str(&format!(r#"{{"name":"n{i}","kind":"order"}},"#));
    }
    body.push_str(r#"{"name":"<script>alert(1)</script>","kind":"order"}]"#);
    // A plain inspection (`Req::run` records every match, which turns the memory off).
    let mut i = palisade_waf::Inspection::new();
    Req::post("/", "application/json", body.as_bytes()).run_into(&rs, &p, &mut i);
    assert!(
        fired(&i).contains(&(2002, "json:name".into())),
        "{:?}",
        fired(&i)
    );
    // Two keys and one value repeat in each of the 200 later elements: the value is skipped as
    // already inspected in this request, the keys (argument names, found clean) are remembered
    // by the memory that outlives the request (src/clean.rs).
    assert!(i.skipped() >= 200, "skipped {}", i.skipped());
    assert!(
        i.skipped() + i.header_memory_hits() >= 3 * 200,
        "skipped {} + remembered {}",
        i.skipped(),
        i.header_memory_hits()
    );
    // A new request starts with an empty memory.
    Req::post("/", "application/json", br#"{"name":"x"}"#).run_into(&rs, &p, &mut i);
    assert_eq!(i.skipped(), 0);
}

#[test]
fn an_excluded_name_does_not_hide_the_same_value_under_another_name() {
    let rs = fixtures();
    let p = policy(
        &rs,
        "exclusions:\n  - {rule_ids: [2002], targets: [\"json:a\"]}\n",
    );
    for body in [
        &br#"{"a":"<script>alert(1)</script>","b":"<script>alert(1)</script>"}"#[..],
        br#"{"b":"<script>alert(1)</script>","a":"<script>alert(1)</script>"}"#,
    ] {
        let i = Req::post("/", "application/json", body).run(&rs, &p);
        let f = fired(&i);
        assert!(f.contains(&(2002, "json:b".into())), "{f:?}");
        assert!(!f.contains(&(2002, "json:a".into())), "{f:?}");
    }
}

#[test]
fn a_value_repeated_under_another_kind_is_inspected_again() {
    let rs = fixtures();
    let p = default_policy(&rs);
    // The same bytes as a query argument and as a cookie, in a plain inspection: the cookie
    // is not skipped as "already seen" (the first match per rule is the argument; the rule
    // must still be able to fire on the cookie alone).
    let mut i = palisade_waf::Inspection::new();
    Req::get("/?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E")
        .header("cookie", "q=<script>alert(1)</script>")
        .run_into(&rs, &p, &mut i);
    assert_eq!(i.skipped(), 0, "{:?}", i.matches());
    Req::get("/")
        .header("cookie", "q=<script>alert(1)</script>")
        .run_into(&rs, &p, &mut i);
    assert!(i.score() > 0);
}

#[test]
fn a_rule_that_does_not_see_keys_still_reads_the_raw_body_of_a_parsed_json() {
    let rs = fixtures();
    let p = default_policy(&rs);
    // Fixture rule 2002 targets args and body, not args_names: an attack in a key reaches it
    // only through the raw body.
    let i = Req::post(
        "/",
        "application/json",
        br#"{"<script>alert(1)</script>":1}"#,
    )
    .run(&rs, &p);
    assert!(
        fired(&i).contains(&(2002, "body".into())),
        "{:?}",
        fired(&i)
    );
}

#[test]
fn shapes_that_span_a_key_and_its_value_still_fire_on_a_parsed_json() {
    let rs = shipped();
    let p = default_policy(&rs);
    // fastjson autoType: `"@type":"com.sun…"` spans a key and a value: rule 13005 reads the
    // value of the `@type` key (and 13002 the class name in it).
    let i = Req::post(
        "/",
        "application/json",
        br#"{"@type":"com.sun.rowset.JdbcRowSetImpl","dataSourceName":"rmi://x/y","autoCommit":true}"#,
    )
    .run(&rs, &p);
    assert!(
        fired(&i).contains(&(13005, "json:@type".into())),
        "{:?}",
        fired(&i)
    );
    // Json.NET `$type` gadgets, nested, and with the key's `$` written as a JSON escape, which
    // the raw text never showed as `"$type"`.
    for body in [
        &br#"{"$type":"System.Security.Principal.WindowsIdentity, mscorlib","name":"x"}"#[..],
        br#"{"a":{"\u0024type":"System.Windows.Data.ObjectDataProvider, PresentationFramework"}}"#,
    ] {
        let i = Req::post("/", "application/json", body).run(&rs, &p);
        assert!(
            fired(&i)
                .iter()
                .any(|(id, t)| *id == 13005 && t.ends_with("$type")),
            "{}: {:?}",
            String::from_utf8_lossy(body),
            fired(&i)
        );
    }
    // jsonpickle: a `py/object` key (rule 13006), whatever its value.
    let i = Req::post(
        "/",
        "application/json",
        br#"{"job":{"py/object":"tasks.Report"}}"#,
    )
    .run(&rs, &p);
    assert!(
        fired(&i).iter().any(|(id, _)| *id == 13006),
        "{:?}",
        fired(&i)
    );
    // An off-site redirect parameter in a form body (rule 16001 reads the redirect arguments,
    // not the raw body); in a JSON body a payment API's `success_url` is configuration.
    let i = Req::post(
        "/login",
        "application/x-www-form-urlencoded",
        b"user=a&next=https://evil.example/",
    )
    .run(&rs, &p);
    assert!(
        fired(&i).contains(&(16001, "args:next".into())),
        "{:?}",
        fired(&i)
    );
    let i = Req::post(
        "/v1/checkout/sessions",
        "application/json",
        br#"{"mode":"payment","success_url":"https://shop.example/ok","cancel_url":"https://shop.example/cart"}"#,
    )
    .run(&rs, &p);
    assert!(fired(&i).is_empty(), "{:?}", fired(&i));
}

#[test]
fn rules_that_see_keys_and_values_skip_the_raw_body_of_a_parsed_json() {
    let rs = shipped();
    let p = default_policy(&rs);
    let body = br#"{"__proto__":{"isAdmin":true}}"#;
    let mut out = palisade_waf::Inspection::new();
    out.set_record_all(true);
    Req::post("/", "application/json", body).run_into(&rs, &p, &mut out);
    let hits: Vec<(u32, String)> = out
        .matches()
        .iter()
        .map(|m| (m.rule_id, m.target.clone()))
        .collect();
    // Rule 13003 targets args, args_names and body: the key carries the finding …
    assert!(
        hits.contains(&(13003, "args_names:__proto__".into())),
        "{hits:?}"
    );
    // … and the raw body is not scanned again for it.
    assert!(!hits.contains(&(13003, "body".into())), "{hits:?}");
    // A body that does not parse is scanned raw by every body rule.
    let mut out = palisade_waf::Inspection::new();
    out.set_record_all(true);
    Req::post("/", "application/json", br#"{"__proto__":{"isAdmin":true}"#)
        .run_into(&rs, &p, &mut out);
    assert!(
        out.matches()
            .iter()
            .any(|m| m.rule_id == 13003 && m.target == "body"),
        "{:?}",
        out.matches()
    );
}

#[test]
fn keys_repeated_at_their_position_are_not_sent_again_and_a_new_key_there_still_fires() {
    let rs = shipped();
    let p = policy(&rs, "complete_matches: true");
    // An array of objects: from the second element on, each key has the bytes of the key at
    // its position in the element before, and the JSON reader does not send it again. The last
    // element has, at the position of `xxxxxxxxx`, a key of the same length that differs:
    // `__proto__` (rule 13003 reads argument names).
    let mut body = String::from("[");
    for i in 0..100 {
        body.push_str(&format!(r#"{{"name":"n{i}","xxxxxxxxx":{i}}},"#));
    }
    body.push_str(r#"{"name":"last","__proto__":{"isAdmin":true}}]"#);
    let mut i = palisade_waf::Inspection::new();
    Req::post("/", "application/json", body.as_bytes()).run_into(&rs, &p, &mut i);
    assert!(
        fired(&i).contains(&(13003, "args_names:__proto__".into())),
        "{:?}",
        fired(&i)
    );
    // Both keys of elements 2 to 100, and `name` in the last: counted as skipped repeats
    // (without the reader's memory they are found in the memory of clean names instead).
    assert!(i.skipped() >= 199, "skipped {}", i.skipped());
    // The same key in a nested object of another depth, or at another position, is sent: an
    // attack there is found in a body where the earlier key was clean.
    for body in [
        &br#"[{"a":1,"b":2},{"b":1,"__proto__":{"x":1}}]"#[..],
        br#"{"__proto_x":{"__proto__":{"x":1}}}"#,
    ] {
        let mut i = palisade_waf::Inspection::new();
        Req::post("/", "application/json", body).run_into(&rs, &p, &mut i);
        assert!(
            fired(&i).contains(&(13003, "args_names:__proto__".into())),
            "{}: {:?}",
            String::from_utf8_lossy(body),
            fired(&i)
        );
    }
}

#[test]
fn a_redirect_to_the_requests_own_host_passes_and_any_other_target_fires() {
    let rs = shipped();
    // Complete matches: in block mode inspection stops at the threshold, and rule 16002 (URL
    // tricks) may reach it first.
    let p = policy(&rs, "complete_matches: true");
    let run = |target: &str, host: Option<&str>, form: Option<&str>| {
        let mut r = match form {
            Some(body) => Req::post(target, "application/x-www-form-urlencoded", body.as_bytes()),
            None => Req::get(target),
        };
        if let Some(h) = host {
            r = r.header("host", h);
        }
        // A plain inspection on a pooled accumulator, as the gateway does.
        let mut i = palisade_waf::Inspection::new();
        r.run_into(&rs, &p, &mut i);
        i.rule_ids().contains(&16001)
    };
    // The site's own absolute URLs, in the query and in a form, with a port, a subdomain, any
    // case.
    for (target, host) in [
        (
            "/login?next=https%3A%2F%2Fapp.example.com%2Forders%2F42",
            "app.example.com",
        ),
        (
            "/login?next=https://app.example.com:8443/x",
            "app.example.com:8443",
        ),
        ("/login?returnUrl=//APP.example.com/home", "App.Example.com"),
        (
            "/login?continue=https://accounts.app.example.com/",
            "app.example.com",
        ),
    ] {
        assert!(!run(target, Some(host), None), "{target} on {host}");
    }
    assert!(!run(
        "/login",
        Some("app.example.com"),
        Some("user=a&next=https%3A%2F%2Fapp.example.com%2F")
    ));
    // Another host, the host's name inside another, userinfo, encoding layers, script schemes,
    // and any absolute URL when the request names no host.
    for (target, host) in [
        ("/login?next=https://evil.example/", Some("app.example.com")),
        (
            "/login?next=https://app.example.com.evil.example/",
            Some("app.example.com"),
        ),
        (
            "/login?next=https://app.example.com@evil.example/",
            Some("app.example.com"),
        ),
        (
            "/login?next=https://app.example.com%252f@evil.example/",
            Some("app.example.com"),
        ),
        (
            "/login?next=%252F%252Fevil.example",
            Some("app.example.com"),
        ),
        ("/login?next=javascript:alert(1)", Some("app.example.com")),
        ("/login?next=https://example.com/", Some("app.example.com")),
        ("/login?next=https://app.example.com/", None),
    ] {
        assert!(run(target, host, None), "{target} on {host:?}");
    }
    assert!(run(
        "/login",
        Some("app.example.com"),
        Some("user=a&next=https%3A%2F%2Fevil.example%2F")
    ));
    // HTTP/2: no Host header, the host in the target's authority; a Host header wins.
    let h2 = |target: &str, authority: &str, host: Option<&str>| {
        let mut r = Req::get(target).authority(authority);
        if let Some(h) = host {
            r = r.header("host", h);
        }
        let mut i = palisade_waf::Inspection::new();
        r.run_into(&rs, &p, &mut i);
        i.rule_ids().contains(&16001)
    };
    assert!(!h2(
        "/login?next=https://app.example.com/x",
        "app.example.com:443",
        None
    ));
    assert!(h2(
        "/login?next=https://evil.example/x",
        "app.example.com",
        None
    ));
    assert!(h2(
        "/login?next=https://app.example.com/x",
        "app.example.com",
        Some("other.example")
    ));
    // The host of one request is not the next one's: a pooled accumulator starts empty.
    let mut i = palisade_waf::Inspection::new();
    Req::get("/")
        .header("host", "evil.example")
        .run_into(&rs, &p, &mut i);
    Req::get("/login?next=https://evil.example/").run_into(&rs, &p, &mut i);
    assert!(i.rule_ids().contains(&16001));
}
