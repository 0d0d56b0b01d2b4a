//! `palisade rules replay`: a corpus of one's own through the shipped rules, with the exit code
//! a CI job can gate on.

use std::path::Path;
use std::process::{Command, Output};

fn rules_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")
}

fn replay(corpus: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["rules", "replay"])
        .arg(corpus)
        .arg("--rules")
        .arg(rules_dir())
        .args(extra)
        .output()
        .expect("run palisade")
}

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(p, text).expect("write");
}

/// The row of `file` in the printed table, split into its cells.
fn row<'a>(stdout: &'a str, file: &str) -> Vec<&'a str> {
    let line = stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(file))
        .unwrap_or_else(|| panic!("no row for {file} in:\n{stdout}"));
    line.split_whitespace().filter(|c| *c != "|").collect()
}

#[test]
fn replay_reports_each_file_and_gates_on_thresholds() {
    let dir = tempfile::tempdir().expect("dir");
    let c = dir.path();
    write(
        c,
        "attacks/sqli.txt",
        "' or 1=1--\r\n1 union select password from users\n\n",
    );
    write(c, "attacks/open-redirect.txt", "//evil.example/\n");
    write(c, "benign/names.txt", "O'Brien\nhello world\n");
    // Whole requests, stored with LF line ends.
    write(
        c,
        "requests/attack/sqli-cookie.http",
        "GET /account HTTP/1.1\nHost: shop.example\nCookie: id=1' UNION SELECT password FROM users--\n\n",
    );
    write(
        c,
        "requests/benign/order.http",
        "POST /orders HTTP/1.1\nHost: shop.example\nContent-Type: application/json\nContent-Length: 31\n\n{\"note\":\"leave it at the door\"}",
    );

    let out = replay(
        c,
        &[
            "--paranoia",
            "1",
            "--min-detection",
            "100",
            "--max-false-positives",
            "0",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    // Two lines (the blank one skipped), both blocked as a query argument; the first line is
    // the one sampled as a JSON value and a form field, and is blocked there too.
    assert_eq!(
        row(&stdout, "attacks/sqli"),
        ["attacks/sqli", "2", "100.00%", "100.00%", "100.00%"]
    );
    // An open-redirect line is sent as `next=`, where a redirect lives.
    assert_eq!(row(&stdout, "attacks/open-redirect")[2], "100.00%");
    assert_eq!(
        row(&stdout, "benign/names"),
        ["benign/names", "2", "0.00%", "0.00%", "0.00%"]
    );
    assert_eq!(
        row(&stdout, "requests/attack"),
        ["requests/attack", "1", "100.00%"]
    );
    assert_eq!(
        row(&stdout, "requests/benign"),
        ["requests/benign", "1", "0.00%"]
    );

    // A benign line the rules block: the gate fails, and --show names the line and the rule.
    write(
        c,
        "benign/names.txt",
        "O'Brien\nhello world\n<script>alert(1)</script>\n",
    );
    let out = replay(
        c,
        &[
            "--paranoia",
            "1,2",
            "--max-false-positives",
            "0",
            "--show",
            "names",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert_eq!(row(&stdout, "benign/names")[2], "33.33%");
    assert!(stdout.contains("PL2 q"), "{stdout}");
    assert!(
        stdout.contains("  FP <script>alert(1)</script>  (rules ["),
        "{stdout}"
    );
    assert!(
        stderr.contains("benign/names at PL1: 33.33 % blocked, over --max-false-positives 0"),
        "{stderr}"
    );

    // Only the first of the three lines is sampled as a JSON value and a form field by default;
    // `--every 1` sends every line in all three shapes.
    assert_eq!(
        row(&stdout, "benign/names")[2..5],
        ["33.33%", "0.00%", "0.00%"]
    );
    let out = replay(c, &["--paranoia", "1", "--every", "1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        row(&stdout, "benign/names")[2..5],
        ["33.33%", "33.33%", "33.33%"]
    );

    // Detection under the floor fails too.
    write(c, "attacks/sqli.txt", "' or 1=1--\nhello\n");
    let out = replay(c, &["--paranoia", "1", "--min-detection", "90"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("attacks/sqli at PL1: 50.00 % blocked, under --min-detection 90"));

    // A whole benign request the rules block fails the gate too, under its directory's name.
    write(
        c,
        "requests/benign/search.http",
        "GET /search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E HTTP/1.1\nHost: shop.example\n\n",
    );
    let out = replay(c, &["--paranoia", "1", "--max-false-positives", "0"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        row(&String::from_utf8_lossy(&out.stdout), "requests/benign")[2],
        "50.00%"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("requests/benign at PL1: 50.00 % blocked, over --max-false-positives 0"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Not a corpus: a clear error.
    let empty = tempfile::tempdir().expect("dir");
    let out = replay(empty.path(), &[]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("no attacks/, benign/ or requests/ directory"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
