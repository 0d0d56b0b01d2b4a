//! Replays every fuzz seed (`fuzz/seeds/TARGET/*`) and every kept crash input
//! (`fuzz/regressions/TARGET/*`, each named after the bug it found) through the same checks the
//! fuzz targets run (`fuzz/src/checks.rs`, included here), so a fixed crash stays fixed in the
//! ordinary test suite without libFuzzer. The `config` target's inputs are replayed by the
//! gateway crate's config tests, not here.

#[path = "../../../fuzz/src/checks.rs"]
mod checks;

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut out = Vec::new();
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_file() {
                let data = std::fs::read(&path).expect("read input");
                out.push((path, data));
            }
        }
    }
    out.sort();
    out
}

fn replay(target: &str, f: impl Fn(&[u8])) -> usize {
    let all = inputs(target);
    for (path, data) in &all {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(data)));
        assert!(r.is_ok(), "{target}: {} panics again", path.display());
    }
    all.len()
}

#[test]
fn fuzz_seeds_and_kept_crashes_pass_every_target() {
    let (rs, p) = checks::engine(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules"));
    let mut n = 0;
    n += replay("transforms", checks::transforms);
    n += replay("detectors", checks::detectors);
    n += replay("bodies", |d| checks::bodies(&rs, &p, d));
    n += replay("raw_request", |d| checks::raw_request(&rs, &p, d));
    n += replay("rule_file", checks::rule_file);
    assert!(n >= 10, "the seed corpus went missing: {n} inputs");
}
