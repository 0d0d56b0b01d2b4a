//! Real traffic through the real gateway into the real ClickHouse (`scripts/start-clickhouse.sh`),
//! then every dashboard panel's SQL, macros expanded, against what arrived.

mod common;

use common::{client, pool_yaml, Gateway};
use palisade::demo_upstream::spawn_on;
use std::net::SocketAddr;
use std::time::Duration;

const CH: &str = "http://127.0.0.1:8123";

async fn ch_query(sql: &str) -> Option<String> {
    let r = reqwest::Client::new()
        .post(CH)
        .body(sql.to_string())
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.text().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_becomes_one_event_and_every_panel_returns_rows() {
    if ch_query("SELECT 1").await.is_none() {
        panic!("ClickHouse is not answering on {CH}; run scripts/start-clickhouse.sh (scripts/test.sh does)");
    }
    let (up, _rec, _h) = spawn_on(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("upstream");
    let db = format!("palisade_e2e_{}", std::process::id());
    let spool = tempfile::tempdir().expect("spool dir");
    let body = format!(
        "upstreams:\n{}waf:\n  rules_dir: {}/rules\nguard: {{}}\nanalytics:\n  sink:\n    clickhouse: {{url: \"{CH}\", database: {db}, flush_interval_ms: 200, batch_size: 100}}\n  spool: {{dir: {spool}}}\n  security_log: {{path: {spool}/security.log}}\napi_keys:\n  key_file: keys.json\n  plans:\n    - name: gold\n      quota: {{limit: 1000, period: month}}\nroutes:\n  - name: keyed\n    path: /keyed/*\n    upstream: demo\n    api_key: {{}}\n  - name: watch\n    path: /watch/*\n    upstream: demo\n    waf: {{mode: detect}}\n  - name: limited\n    path: /limited/*\n    upstream: demo\n    rate_limit: {{per_minute: 2, burst: 2}}\n  - name: api\n    path: /*\n    upstream: demo\n",
        pool_yaml("demo", &[up], ""),
        env!("CARGO_MANIFEST_DIR"),
        spool = spool.path().display()
    );
    let key = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let key_out = key.clone();
    let gw = Gateway::start_with(&body, move |d| {
        let store = palisade_keys::KeyStore::open(d.join("keys.json")).expect("key store");
        let (_, k) = store
            .create("dash", "tests", "gold", None)
            .expect("create key");
        *key_out.lock().expect("lock") = k;
    });
    let key = key.lock().expect("lock").clone();
    let c = client();
    let mut ids = Vec::new();
    let mut statuses = Vec::new();
    for i in 0..20 {
        let r = c
            .get(gw.url(&format!("/echo/item?page={i}")))
            .send()
            .await
            .expect("benign");
        statuses.push(r.status().as_u16());
        ids.push(
            r.headers()["x-request-id"]
                .to_str()
                .expect("id")
                .to_string(),
        );
    }
    // One request whose every column is checked below.
    let r = c
        .get(gw.url("/echo/one?x=1"))
        .header("user-agent", "palisade-e2e/1 (columns)")
        .send()
        .await
        .expect("benign with a user agent");
    assert_eq!(r.status(), 200);
    let one = r.headers()["x-request-id"]
        .to_str()
        .expect("id")
        .to_string();
    ids.push(one.clone());
    for q in [
        "1%27%20OR%20%271%27=%271",
        "%3Cscript%3Ealert(1)%3C/script%3E",
        "..%2f..%2fetc%2fpasswd",
    ] {
        let r = c
            .get(gw.url(&format!("/echo/s?q={q}")))
            .send()
            .await
            .expect("attack");
        statuses.push(r.status().as_u16());
        ids.push(
            r.headers()["x-request-id"]
                .to_str()
                .expect("id")
                .to_string(),
        );
    }
    for _ in 0..3 {
        let r = c
            .get(gw.url("/keyed/x"))
            .header("x-api-key", &key)
            .send()
            .await
            .expect("keyed");
        assert_eq!(r.status(), 404, "a keyed request reaches the upstream");
        ids.push(
            r.headers()["x-request-id"]
                .to_str()
                .expect("id")
                .to_string(),
        );
    }
    let r = c.get(gw.url("/keyed/x")).send().await.expect("no key");
    assert_eq!(r.status(), 401);
    ids.push(
        r.headers()["x-request-id"]
            .to_str()
            .expect("id")
            .to_string(),
    );
    let r = c
        .get(gw.url("/watch/s?q=1%27%20OR%20%271%27=%271"))
        .send()
        .await
        .expect("detect");
    assert_eq!(
        r.status(),
        404,
        "detect mode lets the attack through to the upstream"
    );
    ids.push(
        r.headers()["x-request-id"]
            .to_str()
            .expect("id")
            .to_string(),
    );
    for _ in 0..4 {
        let r = c.get(gw.url("/limited/x")).send().await.expect("limited");
        statuses.push(r.status().as_u16());
        ids.push(
            r.headers()["x-request-id"]
                .to_str()
                .expect("id")
                .to_string(),
        );
    }
    assert!(statuses.contains(&403) && statuses.contains(&429) && statuses.contains(&200));

    let list = ids
        .iter()
        .map(|i| format!("'{i}'"))
        .collect::<Vec<_>>()
        .join(",");
    let sql = format!(
        "SELECT count(), uniqExact(request_id) FROM {db}.events WHERE request_id IN ({list}) FORMAT TSV"
    );
    let mut last = String::new();
    let arrived = common::eventually(Duration::from_secs(30), async || {
        last = ch_query(&sql).await.unwrap_or_default();
        last.trim() == format!("{}\t{}", ids.len(), ids.len())
    })
    .await;
    assert!(
        arrived,
        "every request's event arrives exactly once; got {last:?}"
    );

    // The columns of one request, as the gateway saw it.
    let row = ch_query(&format!(
        "SELECT method, host, path, http_version, status, route, route_template, client_ip, user_agent, verdict, waf_mode, upstream_addr, upstream_attempts, bytes_out > 0 FROM {db}.events WHERE request_id = '{one}' FORMAT TSV"
    ))
    .await
    .unwrap_or_default();
    let want = format!(
        "GET\t{host}\t/echo/one\tHTTP/1.1\t200\tapi\t/*\t127.0.0.1\tpalisade-e2e/1 (columns)\tallow\tblock\t{up}\t1\t1",
        host = gw.addr(),
    );
    assert_eq!(row.trim(), want, "the event's columns");
    // An attack's findings.
    let attack = ch_query(&format!(
        "SELECT status, has(attack_classes, 'sqli'), length(rule_ids) > 0, anomaly_score > 0, decided_by, reason FROM {db}.events WHERE request_id = '{}' FORMAT TSV",
        ids[21]
    ))
    .await
    .unwrap_or_default();
    assert_eq!(
        attack.trim(),
        "403\t1\t1\t1\twaf\twaf_blocked",
        "the attack's columns"
    );

    let blocked = ch_query(&format!(
        "SELECT verdict, decided_by, reason, count() FROM {db}.events GROUP BY verdict, decided_by, reason ORDER BY verdict, reason FORMAT TSV"
    ))
    .await
    .unwrap_or_default();
    assert!(blocked.contains("block\twaf\twaf_blocked\t3"), "{blocked}");
    assert!(
        blocked.contains("block\tthrottle\trate_limited_route\t2"),
        "{blocked}"
    );
    assert!(blocked.contains("detect\twaf\twaf_blocked\t1"), "{blocked}");

    // Every dashboard panel, macros and variables expanded, against what arrived.
    let ch = clickhouse::Client::default()
        .with_url(CH)
        .with_database(&db)
        .with_validation(false);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards");
    let runs = palisade_analytics::dashboards::run_all(
        &ch,
        &dir,
        &palisade_analytics::dashboards::Expansion::last_day(),
    )
    .await
    .expect("dashboards load");
    assert!(runs.len() >= 10, "dashboards have panels");
    let mut empty = Vec::new();
    for run in &runs {
        match &run.rows {
            Ok(0) => empty.push(run.name.clone()),
            Ok(_) => {}
            Err(e) => panic!("panel {} failed: {e}\n{}", run.name, run.sql),
        }
    }
    assert!(empty.is_empty(), "panels without rows: {empty:?}");

    // Blocked and detect-mode requests are also in the structured security log, with the
    // matched rules, their targets and the matched text.
    let log_path = spool.path().join("security.log");
    let mut sec = String::new();
    let logged = common::eventually(Duration::from_secs(10), async || {
        sec = std::fs::read_to_string(&log_path).unwrap_or_default();
        sec.lines().count() >= 6
    })
    .await;
    assert!(
        logged,
        "3 WAF blocks, 1 detection and 2 throttles are logged: {sec}"
    );
    let waf_line = sec
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["decided_by"] == "waf" && v["verdict"] == "block")
        .expect("a WAF block in the security log");
    let first = &waf_line["matches"][0];
    assert!(first["rule_id"].as_u64().unwrap_or(0) > 0, "{waf_line}");
    assert!(
        first["target"].as_str().unwrap_or("").starts_with("args"),
        "{waf_line}"
    );
    assert!(
        !first["matched"].as_str().unwrap_or("").is_empty(),
        "{waf_line}"
    );
    let keyed = ch_query(&format!(
        "SELECT api_key_id != '', usage_plan, count() FROM {db}.events WHERE route = 'keyed' GROUP BY api_key_id != '', usage_plan ORDER BY usage_plan FORMAT TSV"
    ))
    .await
    .unwrap_or_default();
    assert!(
        keyed.contains("1\tgold\t3"),
        "keyed requests carry the key id and plan: {keyed}"
    );
    let _ = ch_query(&format!("DROP DATABASE IF EXISTS {db}")).await;
}
