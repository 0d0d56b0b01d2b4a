//! Load errors: each asserted by its exact `file:line:col: message (hint)`.

use palisade_waf::RuleSet;

fn errors(files: &[(&str, &str)]) -> Vec<String> {
    let src: Vec<(String, String)> = files
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    match RuleSet::from_sources(&src) {
        Ok(_) => vec![],
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

const GOOD: &str = "class: sqli
rules:
  - id: 1
    name: n
    severity: critical
    paranoia: 1
    targets: [args]
    transforms: [lowercase]
    match:
      contains_any: [\"x\"]
";

fn one(text: &str) -> Vec<String> {
    errors(&[("r.yaml", text)])
}

#[test]
fn good_file_loads() {
    assert!(one(GOOD).is_empty());
}

#[test]
fn unknown_key_is_an_error_with_location() {
    assert_eq!(
        one(&GOOD.replace("    name: n\n", "    name: n\n    nmae: typo\n")),
        ["r.yaml:5:5: unknown field `nmae`, expected one of id, name, description, severity, paranoia, tags, targets, transforms, match, negate, tests (unknown keys are errors so that a typo cannot disable a rule)"]
    );
}

#[test]
fn unknown_transform_target_detector() {
    let known_t = "url_decode, url_decode_uni, url_decode_repeat, html_entity_decode, js_decode, base64_decode_detect, lowercase, compress_whitespace, remove_whitespace, remove_comments, replace_comments, normalize_path, remove_nulls, cmd_line, utf8_overlong, fold_lookalikes, decode_all";
    assert_eq!(
        one(&GOOD.replace(
            "transforms: [lowercase]",
            "transforms: [lowercase, url_decod]"
        )),
        [format!(
            "r.yaml:8:29: unknown transform \"url_decod\" (known transforms: {known_t})"
        )]
    );
    assert_eq!(
        one(&GOOD.replace("targets: [args]", "targets: [args, argz]")),
        ["r.yaml:7:21: unknown target \"argz\" (known targets: path, uri, query, args, args_names, query_args, body_args, headers, header_names, cookies, cookie_names, filenames, body, method, headers:<name>, args:<name>, json:<key>)"]
    );
    assert_eq!(
        one(&GOOD.replace("targets: [args]", "targets: [args, \"args:\"]")),
        ["r.yaml:7:21: unknown target \"args:\" (\"args:\" needs a name after `args:` (printable ASCII, at most 63 bytes))"]
    );
    assert_eq!(
        one(&GOOD.replace("contains_any: [\"x\"]", "detector: sqly")),
        ["r.yaml:10:17: unknown detector \"sqly\" (known detectors: sqli, xss, redirect)"]
    );
}

#[test]
fn bad_regex_shows_the_regex_error() {
    assert_eq!(
        one(&GOOD.replace("contains_any: [\"x\"]", "regex: 'a(b'")),
        ["r.yaml:10:14: invalid regex: unclosed group (Rust regex syntax: no look-around, no backreferences)"]
    );
    let look = one(&GOOD.replace("contains_any: [\"x\"]", "regex: '(?=a)b'"));
    assert_eq!(look.len(), 1);
    assert!(
        look[0].starts_with("r.yaml:10:14: invalid regex: look-around"),
        "{look:?}"
    );
}

#[test]
fn paranoia_out_of_range_and_empty_phrases() {
    assert_eq!(
        one(&GOOD.replace("paranoia: 1", "paranoia: 7")),
        ["r.yaml:6:15: paranoia 7 out of range (use 1, 2, 3 or 4)"]
    );
    assert_eq!(
        one(&GOOD.replace("contains_any: [\"x\"]", "contains_any: []")),
        ["r.yaml:10:21: empty contains_any list (give at least one phrase)"]
    );
    assert_eq!(
        one(&GOOD.replace("contains_any: [\"x\"]", "contains_any: [\"x\", \"\"]")),
        ["r.yaml:10:27: empty phrase in contains_any (an empty phrase would match every value)"]
    );
}

#[test]
fn severity_and_matcher_shape() {
    assert_eq!(
        one(&GOOD.replace("severity: critical", "severity: huge")),
        ["r.yaml:5:15: unknown variant `huge`, expected one of critical, error, warning, notice"]
    );
    assert_eq!(
        one(&GOOD.replace("contains_any: [\"x\"]", "contains_any: [\"x\"]\n      regex: 'y'")),
        ["r.yaml:10:7: match has more than one matcher (give exactly one of detector, regex, or contains_any/contains_word/equals_any phrases)"]
    );
}

#[test]
fn duplicate_ids_across_files_name_both_places() {
    assert_eq!(
        errors(&[("a.yaml", GOOD), ("b.yaml", GOOD)]),
        ["b.yaml:3:9: duplicate rule id 1 (already defined at a.yaml:3:9; ids must be unique across all files)"]
    );
}

#[test]
fn all_errors_of_all_files_are_reported_one_per_line() {
    let bad1 = GOOD.replace("paranoia: 1", "paranoia: 0");
    let bad2 = GOOD
        .replace("id: 1", "id: 2")
        .replace("targets: [args]", "targets: [nope]");
    let src = vec![("x.yaml".to_string(), bad1), ("y.yaml".to_string(), bad2)];
    let e = RuleSet::from_sources(&src).expect_err("errors");
    assert_eq!(e.len(), 2);
    let text = e.to_string();
    assert_eq!(text.lines().count(), 2);
    assert!(text
        .lines()
        .next()
        .is_some_and(|l| l.starts_with("x.yaml:6:15: paranoia 0")));
    assert!(text
        .lines()
        .nth(1)
        .is_some_and(|l| l.starts_with("y.yaml:7:15: unknown target \"nope\"")));
}

#[test]
fn missing_directory_is_an_error() {
    let e = RuleSet::load_dir(std::path::Path::new("/nonexistent/rules")).expect_err("error");
    assert!(
        e.to_string()
            .starts_with("/nonexistent/rules: cannot read rule directory"),
        "{e}"
    );
}
