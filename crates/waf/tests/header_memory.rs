//! Header values and names, argument and cookie names and the method, found clean, are
//! remembered from request to request under one policy (`src/clean.rs`). The memory must never
//! hide an attack: not in another value of the same header, not in a value that matched before,
//! not under another policy, and not on any payload of either corpus.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use palisade_waf::{Inspection, Policy, RuleSet};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn shipped() -> RuleSet {
    match RuleSet::load_dir(&root().join("rules")) {
        Ok(rs) => rs,
        Err(e) => panic!("shipped rules do not load:\n{e}"),
    }
}

const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const SCANNER: &str = "sqlmap/1.7.2#stable (https://sqlmap.org)";

fn browser(ua: &str) -> Req {
    Req::get("/search?q=laptop&page=2")
        .header("user-agent", ua)
        .header("accept", "application/json")
        .header("accept-language", "en-GB,en;q=0.8")
}

#[test]
fn a_clean_header_is_remembered_and_an_attack_in_it_still_fires() {
    let rs = shipped();
    // Complete matches: the headers after the scanner's are looked at too (in block mode
    // inspection would stop at the threshold, and the counts below would say less).
    let p = policy(&rs, "complete_matches: true");
    let mut i = Inspection::new();
    browser(UA).run_into(&rs, &p, &mut i);
    assert_eq!(i.score(), 0);
    assert_eq!(
        i.header_memory_hits(),
        0,
        "the first request inspects everything"
    );
    browser(UA).run_into(&rs, &p, &mut i);
    assert_eq!(i.score(), 0);
    // The header block (three header values and their names, one look-up), the method, the
    // argument names q and page.
    assert_eq!(i.header_memory_hits(), 4);
    // The same header with an attack tool's value: inspected, and blocked.
    browser(SCANNER).run_into(&rs, &p, &mut i);
    assert!(
        i.score() >= p.threshold,
        "score {} {:?}",
        i.score(),
        ids(&i)
    );
    // A new block: header by header, only the scanner's value was inspected. The hits: the
    // two other header values, the method, the argument names q and page (the three header
    // names are common ones the policy found clean when it was compiled: never looked up).
    assert_eq!(
        i.header_memory_hits(),
        5,
        "a new block: header by header, only the scanner's value was inspected"
    );
    browser(UA).run_into(&rs, &p, &mut i);
    assert_eq!(i.score(), 0);
    assert_eq!(i.header_memory_hits(), 4);
    // A block in which something fired is never remembered whole.
    browser(SCANNER).run_into(&rs, &p, &mut i);
    assert!(i.score() >= p.threshold);
    assert_eq!(i.header_memory_hits(), 5);
}

#[test]
fn a_value_that_matched_is_inspected_and_scored_on_every_request() {
    let rs = shipped();
    let p = default_policy(&rs);
    let mut i = Inspection::new();
    let mut first = None;
    for round in 0..4 {
        browser(SCANNER).run_into(&rs, &p, &mut i);
        let got = (i.score(), ids(&i));
        assert!(got.0 >= p.threshold, "round {round}: {got:?}");
        assert_eq!(
            first.get_or_insert_with(|| got.clone()),
            &got,
            "round {round}"
        );
    }
}

#[test]
fn another_policy_starts_from_an_empty_memory() {
    let rs = shipped();
    let strict = default_policy(&rs);
    let scanner_rules: Vec<u32> = {
        let mut i = Inspection::new();
        browser(SCANNER).run_into(&rs, &strict, &mut i);
        ids(&i)
    };
    assert!(!scanner_rules.is_empty());
    // A route that excludes those rules for the user agent finds the scanner's value clean…
    let ids_yaml: Vec<String> = scanner_rules.iter().map(u32::to_string).collect();
    let lenient: Policy = policy(
        &rs,
        &format!(
            "exclusions:\n  - rule_ids: [{}]\n    targets: [\"headers:user-agent\"]\n",
            ids_yaml.join(", ")
        ),
    );
    let mut i = Inspection::new();
    browser(SCANNER).run_into(&rs, &lenient, &mut i);
    assert_eq!(i.score(), 0, "{:?}", ids(&i));
    browser(SCANNER).run_into(&rs, &lenient, &mut i);
    assert_eq!(i.score(), 0);
    assert_eq!(
        i.header_memory_hits(),
        4,
        "the block, the method and two argument names remembered clean under the lenient policy"
    );
    // …and the same accumulator on a route without the exclusion must still block it.
    browser(SCANNER).run_into(&rs, &strict, &mut i);
    assert_eq!(ids(&i), scanner_rules);
    assert!(i.score() >= strict.threshold);
    // A reloaded rule set (new uids) starts cold as well.
    let reloaded = shipped();
    let p2 = default_policy(&reloaded);
    browser(UA).run_into(&reloaded, &p2, &mut i);
    assert_eq!(i.header_memory_hits(), 0);
}

#[test]
fn cookie_and_argument_values_and_explain_are_never_remembered() {
    let rs = shipped();
    let p = default_policy(&rs);
    let mut i = Inspection::new();
    let req = Req::get("/search?q=laptop")
        .header("cookie", "session=3f9a1c77e2b5; theme=dark")
        .header("accept", "*/*");
    for _ in 0..3 {
        req.run_into(&rs, &p, &mut i);
    }
    assert_eq!(
        i.header_memory_hits(),
        5,
        "the header block (accept's value and name), the method, the argument name q and the \
         cookie names session and theme; not the cookie header, the argument's or the cookies' \
         values"
    );
    i.set_header_memory(false);
    req.run_into(&rs, &p, &mut i);
    assert_eq!(i.header_memory_hits(), 0, "turned off");
    i.set_header_memory(true);
    i.set_record_all(true);
    req.run_into(&rs, &p, &mut i);
    assert_eq!(i.header_memory_hits(), 0, "explain records every match");
}

fn lines(dir: &Path, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.filter_map(Result::ok) {
        let p = e.path();
        if p.is_dir() {
            lines(&p, out);
        } else if p.extension().is_some_and(|x| x == "txt") {
            if let Ok(text) = std::fs::read_to_string(&p) {
                out.extend(text.lines().map(str::to_string));
            }
        }
    }
}

/// Percent-encodes every byte outside the unreserved set.
fn pct(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// On every payload of both corpora sent as a header value, an argument name and a cookie name
/// (twice, through one accumulator), the second inspection finds exactly what the first found,
/// and what a fresh accumulator with the memory off finds.
#[test]
fn the_memory_never_changes_a_finding_on_the_corpora() {
    let rs = shipped();
    let p = default_policy(&rs);
    let mut payloads = Vec::new();
    lines(&root().join("attack-corpus"), &mut payloads);
    lines(&root().join("../shared/corpora"), &mut payloads);
    let payloads: Vec<String> = payloads
        .into_iter()
        .filter(|l| !l.is_empty() && http::HeaderValue::from_str(l).is_ok())
        .collect();
    assert!(payloads.len() > 5_000, "only {} payloads", payloads.len());
    let mut warm = Inspection::new();
    let mut cold = Inspection::new();
    cold.set_header_memory(false);
    let mut hits = 0u64;
    for round in 0..2 {
        for v in &payloads {
            let target = format!("/?{}=1", pct(v));
            let req = Req::get(&target)
                .header("x-data", v)
                .header("referer", v)
                .header("cookie", &format!("{v}=1"));
            req.run_into(&rs, &p, &mut cold);
            let want = (cold.score(), ids(&cold));
            req.run_into(&rs, &p, &mut warm);
            hits += u64::from(warm.header_memory_hits());
            assert_eq!((warm.score(), ids(&warm)), want, "round {round}: {v:?}");
        }
    }
    assert!(hits > 0, "the memory was never used");
}
