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

use palisade_waf::replay::{self, Replayer};
use palisade_waf::{explain, Policy, PolicyConfig, RuleSet, Verdict};
use serde::Deserialize;

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

fn corpus_lines(path: &Path) -> Vec<Vec<u8>> {
    replay::read_lines(path).unwrap_or_else(|e| panic!("{e}"))
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
    let files = replay::corpus_files(&corpus).unwrap_or_else(|e| panic!("{e}"));
    for f in &files {
        let (name, want_block) = (&f.name, f.attack);
        let kind = if want_block { "attack" } else { "benign" };
        let arg = replay::arg_for(name, want_block);
        let lines = corpus_lines(&f.path);
        let mut row = format!("{:<24}", format!("{kind}/{name}"));
        for pl in [1u8, 2] {
            let mut r = Replayer::new(&rules, policy(&rules, pl));
            let mut differs = Vec::new();
            let rate = replay::replay_lines(
                &mut r,
                &lines,
                arg,
                want_block,
                replay::SAMPLE,
                &mut differs,
            );
            let misses: Vec<String> = differs
                .iter()
                .map(|(line, ids)| {
                    let text: String = String::from_utf8_lossy(line).chars().take(160).collect();
                    format!("{text}  (rules {ids:?})")
                })
                .collect();
            if pl == 1 {
                let _ = write!(row, " {:>6} |", rate.lines);
            }
            let _ = write!(
                row,
                " {:>7.2}% {:>7.2}% {:>7.2}% |",
                rate.pct(),
                rate.json_pct(),
                rate.form_pct()
            );
            if show_misses.as_deref() == Some(name.as_str()) && pl == 1 {
                for m in &misses {
                    println!("  {} {m}", if want_block { "MISS" } else { "FP" });
                }
            }
            let key = format!("pl{pl}");
            if want_block {
                if let Some(min) = floors.detection.get(name).and_then(|m| m.get(&key)) {
                    if rate.pct() + 1e-9 < *min {
                        failures.push(format!(
                            "{name} at {key}: detection {:.2}% is below the floor {min}%",
                            rate.pct()
                        ));
                    }
                }
            } else if let Some(max) = floors.false_positives.get(name).and_then(|m| m.get(&key)) {
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
    let mut pl1 = Replayer::new(&rules, policy(&rules, 1));
    let mut pl2 = Replayer::new(&rules, policy(&rules, 2));
    for line in corpus_lines(Path::new(&file)) {
        let b1 = pl1.query("q", &line);
        let b2 = pl2.query("q", &line);
        println!(
            "{} {} {:<24} {}",
            if b1 { "B1" } else { "--" },
            if b2 { "B2" } else { "--" },
            format!("{:?}", pl2.inspection().rule_ids()),
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

#[test]
fn whole_requests_attack_blocked_benign_allowed() {
    let rules = shipped_rules();
    let p = policy(&rules, 1);
    let files =
        replay::request_files(&repo().join("attack-corpus")).unwrap_or_else(|e| panic!("{e}"));
    let mut failures = Vec::new();
    let mut counted = 0;
    for (attack, path) in files {
        let want = if attack {
            Verdict::Block
        } else {
            Verdict::Allow
        };
        counted += 1;
        let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        match explain(&rules, &p, &replay::to_wire(&raw)) {
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
