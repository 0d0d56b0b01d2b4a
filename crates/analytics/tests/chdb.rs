//! The DDL (every migration, and the TTL statements a current server gets) and every dashboard
//! query run on chdb, the embedded ClickHouse 26.x from PyPI (`pip install chdb-core`), through
//! `scripts/chdb_check.py`. Skipped with a printed notice only when python3 or chdb is missing.

mod common;

use std::process::Command;

use common::*;
use palisade_analytics::dashboards;
use palisade_analytics::names::column;
use palisade_analytics::schema;

fn chdb_available() -> bool {
    Command::new("python3")
        .args(["-c", "import chdb"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn ddl_and_dashboards_run_on_chdb() {
    if !chdb_available() {
        eprintln!("NOTICE: skipping the chdb check: python3 with chdb is not available (pip install chdb-core)");
        return;
    }
    let db = "palisade";
    let mut ddl = schema::all_statements(db);
    for (table, col) in schema::RETAINED_TABLES {
        ddl.push(schema::ttl_statement(db, table, col, 30));
    }
    // Events go in as the NDJSON sink writes them: this also checks that format.
    let mut lines = Vec::new();
    for ev in synthetic(2_000) {
        if let Err(e) = ev.write_json_line(&mut lines) {
            panic!("json: {e}");
        }
    }
    let insert = format!(
        "INSERT INTO {db}.events FORMAT JSONEachRow\n{}",
        String::from_utf8_lossy(&lines)
    );
    let queries =
        dashboards::dashboard_queries(&dashboards_dir()).unwrap_or_else(|e| panic!("{e}"));
    let mut checks: Vec<(String, String)> = queries;
    checks.push((
        "rollup equals raw".into(),
        format!(
            "SELECT 1 WHERE (SELECT countMerge(requests) FROM {db}.events_1m) = (SELECT count() FROM {db}.events) \
             AND (SELECT count() FROM {db}.events) = 2000 AND (SELECT sum({}) FROM {db}.events) > 0",
            column::ANOMALY_SCORE
        ),
    ));
    let spec = serde_json::json!({
        "database": db,
        "ddl": ddl,
        "inserts": [insert],
        "queries": checks,
        "must_return_rows": true,
    });
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("check.json");
    std::fs::write(&file, spec.to_string()).unwrap_or_else(|e| panic!("{e}"));
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/chdb_check.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("python3: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "chdb check failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}
