//! Named cases for the SQL injection rules: attacks that must be found, prose that must not.

use super::*;

fn hit(s: &str) -> Option<Detection> {
    detect(s.as_bytes())
}

#[track_caller]
fn attack(s: &str) {
    assert!(hit(s).is_some(), "missed attack: {s:?}");
}

#[track_caller]
fn benign(s: &str) {
    assert_eq!(hit(s), None, "false positive: {s:?}");
}

#[test]
fn placeholder() {
    attack("1' or '1'='1");
    benign("O'Brien");
}
