//! Named cases for the XSS rules: attacks that must be found, markup and prose that must not.

use super::*;

#[track_caller]
fn attack(s: &str) {
    assert!(detect(s.as_bytes()).is_some(), "missed attack: {s:?}");
}

#[track_caller]
fn benign(s: &str) {
    assert_eq!(detect(s.as_bytes()), None, "false positive: {s:?}");
}

#[test]
fn placeholder() {
    attack("<script>alert(1)</script>");
    benign("<b>bold</b>");
}
