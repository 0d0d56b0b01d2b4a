//! What each fuzz target checks, shared with the regression test that replays the seeds and
//! the kept crash inputs (`crates/waf/tests/fuzz_regressions.rs` includes this file). Every
//! function must not panic on any input; the assertions state the properties beyond that.

use palisade_waf::transform::{apply_chain, Transform};
use palisade_waf::{protocol, Inspection, Policy, PolicyConfig, RuleSet};

/// Content types the `bodies` target picks from with its first byte.
pub const BODY_TYPES: [Option<&[u8]>; 6] = [
    Some(b"application/json"),
    Some(b"multipart/form-data; boundary=b"),
    Some(b"application/xml"),
    Some(b"application/x-www-form-urlencoded"),
    Some(b"text/plain"),
    None,
];

/// The shipped rule set at paranoia 4 (every rule active).
pub fn engine(rules_dir: &std::path::Path) -> (RuleSet, Policy) {
    let rs = match RuleSet::load_dir(rules_dir) {
        Ok(rs) => rs,
        Err(e) => panic!("shipped rules do not load:\n{e}"),
    };
    let cfg = PolicyConfig {
        paranoia: 4,
        ..PolicyConfig::default()
    };
    let p = match Policy::compile(&cfg, &rs) {
        Ok(p) => p,
        Err(e) => panic!("policy: {e}"),
    };
    (rs, p)
}

/// Every transform, and a chain picked by the first byte: a transform that reports a change
/// returned something else than its input.
pub fn transforms(data: &[u8]) {
    let mut out = Vec::new();
    for t in Transform::ALL {
        out.clear();
        if t.apply(data, &mut out) {
            assert_ne!(
                out,
                data,
                "{} reported a change but returned its input",
                t.name()
            );
        }
    }
    if let Some((&pick, rest)) = data.split_first() {
        let chain: Vec<Transform> = (0..4)
            .map(|i| Transform::ALL[usize::from(pick.rotate_left(i * 2)) % Transform::ALL.len()])
            .collect();
        let _ = apply_chain(&chain, rest);
    }
}

/// The SQL injection and XSS tokenizer detectors.
pub fn detectors(data: &[u8]) {
    let _ = palisade_detect::sqli::detect(data);
    let _ = palisade_detect::xss::detect(data);
}

/// A body of the type picked by the first byte through `inspect_body`, then the verdict.
pub fn bodies(rs: &RuleSet, p: &Policy, data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let ct = BODY_TYPES[usize::from(pick) % BODY_TYPES.len()];
    let mut out = Inspection::new();
    rs.inspect_body(p, ct, body, &mut out);
    let _ = out.verdict(p);
    let _ = out.body_error();
}

/// A whole raw request through `explain` (parse, `inspect_head`, `inspect_body`), de-chunking
/// and the raw-head protocol check.
pub fn raw_request(rs: &RuleSet, p: &Policy, data: &[u8]) {
    let _ = palisade_waf::explain(rs, p, data);
    let _ = palisade_waf::dechunk(data);
    let _ = protocol::check_raw_head(data);
}

/// A rule file: parse, validate, compile; an error renders.
pub fn rule_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let src = [("fuzz.yaml".to_string(), text.to_string())];
    if let Err(e) = RuleSet::from_sources(&src) {
        let _ = e.to_string();
    }
}
