//! Replays the shipped rule set (`rules/`) against the labelled corpus (`attack-corpus/`) and
//! fails when detection or false-positive rates regress past the floors recorded in
//! `tests/corpus_floors.yaml`.
//!
//! Run with the table printed:
//! `cargo test -p palisade-waf --release --test corpus_replay -- --nocapture`
//!
//! * Every attack line is sent as a query argument value (`GET /search?q=<line>`; open-redirect
//!   payloads as `?next=<line>`, the only place an open redirect exists), and every tenth line
//!   also as a JSON body value and as a form field. A line counts as detected when the request
//!   reaches the blocking threshold.
//! * Every benign line is sent the same three ways; a false positive is any blocked request.
//! * Every raw request in `attack-corpus/requests/attack/*.http` must be blocked and every one in
//!   `attack-corpus/requests/benign/*.http` must pass, through `palisade_waf::explain`.
//! * Every rule's embedded tests must pass.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use http::HeaderMap;
use palisade_waf::{explain, Inspection, Policy, PolicyConfig, RequestHead, RuleSet, Verdict};
use serde::Deserialize;

/// Every `SAMPLE`th line is also replayed as a JSON value and a form field.
const SAMPLE: usize = 10;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn shipped_rules() -> RuleSet {
    match RuleSet::load_dir(&repo().join("rules")) {
        Ok(rs) => rs,
        Err(e) => panic!("rules/ does not load:\n{e}"),
    }
}

fn policy(rs: &RuleSet, paranoia: u8) -> Policy {
    let cfg = PolicyConfig {
        paranoia,
        ..PolicyConfig::default()
    };
    match Policy::compile(&cfg, rs) {
        Ok(p) => p,
        Err(e) => panic!("policy at paranoia {paranoia} does not compile: {e}"),
    }
}

/// Percent-encodes everything but RFC 3986 unreserved bytes.
fn pct(v: &[u8]) -> String {
    let mut s = String::with_capacity(v.len() * 3);
    for &b in v {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            s.push(char::from(b));
        } else {
            let _ = write!(s, "%{b:02X}");
        }
    }
    s
}

/// JSON string literal of `v` (lossy for invalid UTF-8, as a JSON client would be).
fn json_str(v: &[u8]) -> String {
    let text = String::from_utf8_lossy(v);
    let mut s = String::with_capacity(text.len() + 2);
    s.push('"');
    for c in text.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// Sends requests through one rule set and policy, reusing one inspection.
struct Replayer<'a> {
    rules: &'a RuleSet,
    policy: Policy,
    insp: Inspection,
    headers: HeaderMap,
}

impl<'a> Replayer<'a> {
    fn new(rules: &'a RuleSet, paranoia: u8) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::USER_AGENT,
            http::HeaderValue::from_static("Mozilla/5.0 (X11; Linux x86_64) corpus-replay"),
        );
        headers.insert(
            http::header::ACCEPT,
            http::HeaderValue::from_static("application/json"),
        );
        Replayer {
            rules,
            policy: policy(rules, paranoia),
            insp: Inspection::default(),
            headers,
        }
    }

    fn blocked(&self) -> bool {
        self.insp.verdict(&self.policy) == Verdict::Block
    }

    /// `GET /search?<arg>=<value>`.
    fn query(&mut self, arg: &str, value: &[u8]) -> bool {
        let q = format!("{arg}={}&page=1", pct(value));
        let head = RequestHead {
            method: "GET",
            path: b"/search",
            query: Some(q.as_bytes()),
            headers: &self.headers,
        };
        self.rules.inspect_head(&self.policy, &head, &mut self.insp);
        self.blocked()
    }

    /// `POST /api/comments` with `ct` and `body`.
    fn post(&mut self, ct: &[u8], body: &[u8]) -> bool {
        let head = RequestHead {
            method: "POST",
            path: b"/api/comments",
            query: None,
            headers: &self.headers,
        };
        self.rules.inspect_head(&self.policy, &head, &mut self.insp);
        self.rules
            .inspect_body(&self.policy, Some(ct), body, &mut self.insp);
        self.blocked()
    }

    fn json(&mut self, arg: &str, value: &[u8]) -> bool {
        let body = format!(
            "{{\"post\":{{\"title\":\"hello\",\"{arg}\":{}}},\"tags\":[\"a\",\"b\"]}}",
            json_str(value)
        );
        self.post(b"application/json", body.as_bytes())
    }

    fn form(&mut self, arg: &str, value: &[u8]) -> bool {
        let body = format!("title=hello&{arg}={}", pct(value));
        self.post(b"application/x-www-form-urlencoded", body.as_bytes())
    }
}

/// Counts for one corpus file at one paranoia level.
#[derive(Default, Clone, Copy)]
struct Rate {
    lines: usize,
    hits: usize,
    sample: usize,
    sample_json_hits: usize,
    sample_form_hits: usize,
}

impl Rate {
    fn pct(&self) -> f64 {
        if self.lines == 0 {
            0.0
        } else {
            100.0 * self.hits as f64 / self.lines as f64
        }
    }
    fn sample_pct(&self, hits: usize) -> f64 {
        if self.sample == 0 {
            0.0
        } else {
            100.0 * hits as f64 / self.sample as f64
        }
    }
}

fn corpus_lines(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec())
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .collect()
}

fn txt_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    v.sort();
    v
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The argument an attack class is replayed in.
fn arg_for(class: &str) -> &'static str {
    if class == "open-redirect" {
        "next"
    } else {
        "q"
    }
}

/// Replays one file; `misses` collects lines whose query-argument outcome differs from
/// `want_block`.
fn replay_file(
    r: &mut Replayer<'_>,
    path: &Path,
    arg: &str,
    want_block: bool,
    misses: &mut Vec<String>,
) -> Rate {
    let mut rate = Rate::default();
    for (i, line) in corpus_lines(path).iter().enumerate() {
        rate.lines += 1;
        let hit = r.query(arg, line);
        if hit {
            rate.hits += 1;
        }
        if hit != want_block {
            let text: String = String::from_utf8_lossy(line).chars().take(160).collect();
            misses.push(format!("{text}  (rules {:?})", r.insp.rule_ids()));
        }
        if i % SAMPLE == 0 {
            rate.sample += 1;
            if r.json(arg, line) {
                rate.sample_json_hits += 1;
            }
            if r.form(arg, line) {
                rate.sample_form_hits += 1;
            }
        }
    }
    rate
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Floors {
    /// Minimum detection in percent, per class, per paranoia level (`pl1`, `pl2`).
    detection: BTreeMap<String, BTreeMap<String, f64>>,
    /// Maximum false positives in percent, per benign file, per paranoia level.
    false_positives: BTreeMap<String, BTreeMap<String, f64>>,
}

fn floors() -> Floors {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus_floors.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn corpus_detection_and_false_positives_meet_floors() {
    let rules = shipped_rules();
    let floors = floors();
    // CORPUS_DIR: another corpus laid out the same way (attacks/, benign/), to see how the
    // rules do on payloads they were not written against (its floors apply by file name).
    let corpus =
        std::env::var_os("CORPUS_DIR").map_or_else(|| repo().join("attack-corpus"), PathBuf::from);
    let show_misses = std::env::var("CORPUS_SHOW").ok();
    let mut table = String::new();
    let mut failures = Vec::new();
    let _ = writeln!(
        table,
        "{:<24} {:>6} | {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8}",
        "file", "lines", "PL1 q", "PL1 json", "PL1 form", "PL2 q", "PL2 json", "PL2 form"
    );
    for (kind, dir, want_block) in [
        ("attack", corpus.join("attacks"), true),
        ("benign", corpus.join("benign"), false),
    ] {
        for path in txt_files(&dir) {
            let name = stem(&path);
            let arg = if want_block { arg_for(&name) } else { "q" };
            let mut row = format!("{:<24}", format!("{kind}/{name}"));
            for pl in [1u8, 2] {
                let mut r = Replayer::new(&rules, pl);
                let mut misses = Vec::new();
                let rate = replay_file(&mut r, &path, arg, want_block, &mut misses);
                if pl == 1 {
                    let _ = write!(row, " {:>6} |", rate.lines);
                }
                let _ = write!(
                    row,
                    " {:>7.2}% {:>7.2}% {:>7.2}% |",
                    rate.pct(),
                    rate.sample_pct(rate.sample_json_hits),
                    rate.sample_pct(rate.sample_form_hits)
                );
                if show_misses.as_deref() == Some(name.as_str()) && pl == 1 {
                    for m in &misses {
                        println!("  {} {m}", if want_block { "MISS" } else { "FP" });
                    }
                }
                let key = format!("pl{pl}");
                if want_block {
                    if let Some(min) = floors.detection.get(&name).and_then(|m| m.get(&key)) {
                        if rate.pct() + 1e-9 < *min {
                            failures.push(format!(
                                "{name} at {key}: detection {:.2}% is below the floor {min}%",
                                rate.pct()
                            ));
                        }
                    }
                } else if let Some(max) =
                    floors.false_positives.get(&name).and_then(|m| m.get(&key))
                {
                    let fp = rate.pct();
                    if fp > *max + 1e-9 {
                        failures.push(format!(
                            "{name} at {key}: false positives {fp:.3}% exceed the ceiling {max}% \
                             (first: {:?})",
                            misses.first()
                        ));
                    }
                }
            }
            let _ = writeln!(table, "{row}");
        }
    }
    println!("{table}");
    assert!(
        failures.is_empty(),
        "corpus regressions:\n{}",
        failures.join("\n")
    );
}

/// A rule author's probe, not a check: with `CORPUS_PROBE=<file>` set, prints for each line of
/// the file the PL1 and PL2 verdicts of the line sent as a query argument and the rules that
/// matched. Without the variable it does nothing.
///
/// `CORPUS_PROBE=/tmp/lines.txt cargo test -p palisade-waf --release --test corpus_replay probe -- --nocapture`
#[test]
fn probe_lines_from_env() {
    let Some(file) = std::env::var_os("CORPUS_PROBE") else {
        return;
    };
    let rules = shipped_rules();
    let mut pl1 = Replayer::new(&rules, 1);
    let mut pl2 = Replayer::new(&rules, 2);
    for line in corpus_lines(Path::new(&file)) {
        let b1 = pl1.query("q", &line);
        let b2 = pl2.query("q", &line);
        println!(
            "{} {} {:<24} {}",
            if b1 { "B1" } else { "--" },
            if b2 { "B2" } else { "--" },
            format!("{:?}", pl2.insp.rule_ids()),
            String::from_utf8_lossy(&line)
        );
    }
}

#[test]
fn every_floor_names_a_corpus_file() {
    let floors = floors();
    // The repository's floors name the repository's corpus (CORPUS_DIR does not apply).
    let corpus = repo().join("attack-corpus");
    for (set, dir) in [
        (&floors.detection, corpus.join("attacks")),
        (&floors.false_positives, corpus.join("benign")),
    ] {
        for (name, levels) in set {
            assert!(
                dir.join(format!("{name}.txt")).is_file(),
                "corpus_floors.yaml names {name}, which has no file in {}",
                dir.display()
            );
            for k in levels.keys() {
                assert!(
                    k == "pl1" || k == "pl2",
                    "{name}: unknown level {k} (pl1 or pl2)"
                );
            }
        }
    }
}

fn http_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "http"))
        .collect();
    v.sort();
    v
}

/// Raw requests are stored with LF line ends for readability; the wire uses CRLF.
fn to_wire(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 64);
    for (i, line) in raw.split(|&b| b == b'\n').enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
    }
    out
}

#[test]
fn whole_requests_attack_blocked_benign_allowed() {
    let rules = shipped_rules();
    let p = policy(&rules, 1);
    let base = repo().join("attack-corpus/requests");
    let mut failures = Vec::new();
    let mut counted = 0;
    for (dir, want) in [("attack", Verdict::Block), ("benign", Verdict::Allow)] {
        for path in http_files(&base.join(dir)) {
            counted += 1;
            let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            match explain(&rules, &p, &to_wire(&raw)) {
                Ok(ex) => {
                    if ex.verdict != want {
                        failures.push(format!(
                            "{}: expected {}, got {} (score {}, rules {:?})",
                            path.display(),
                            want.as_str(),
                            ex.verdict.as_str(),
                            ex.score,
                            ex.matches.iter().map(|m| m.rule_id).collect::<Vec<_>>()
                        ));
                    }
                }
                Err(e) => failures.push(format!("{}: {e}", path.display())),
            }
        }
    }
    assert!(counted >= 20, "only {counted} whole-request cases found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn shipped_rules_pass_their_embedded_tests() {
    let rules = shipped_rules();
    let report = rules.run_embedded_tests();
    assert!(report.passed(), "{report}");
    assert!(
        report.untested.is_empty(),
        "rules without embedded tests: {:?}",
        report.untested
    );
}

#[test]
fn every_shipped_rule_has_a_description_and_a_unique_id() {
    let rules = shipped_rules();
    for rule in rules.rules() {
        assert!(
            !rule.description.trim().is_empty(),
            "rule {} has no description",
            rule.id
        );
    }
    let ids: Vec<u32> = rules.rules().iter().map(|r| r.id).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len(), "duplicate rule ids");
}
