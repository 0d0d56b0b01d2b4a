//! The default sink (rotating NDJSON files), the security log, and the non-blocking queue.

mod common;

use std::collections::HashSet;

use common::*;
use palisade_analytics::config::{NdjsonConfig, SecurityLogConfig};
use palisade_analytics::{
    schema, start, AnalyticsConfig, Event, SecurityMatch, SecurityRecord, SinkConfig,
};

fn ndjson_config(dir: &std::path::Path, max_file_bytes: u64, max_files: usize) -> AnalyticsConfig {
    AnalyticsConfig {
        sink: SinkConfig::Ndjson(NdjsonConfig {
            dir: dir.to_path_buf(),
            max_file_bytes,
            max_files,
            batch_size: 100,
            flush_interval_ms: 20,
        }),
        security_log: None,
        ..AnalyticsConfig::default()
    }
}

fn read_lines(dir: &std::path::Path) -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn ndjson_files_rotate_and_hold_every_event_once() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let a = start(ndjson_config(dir.path(), 64 << 10, 1_000))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for ev in synthetic(3_000) {
        a.record(ev);
    }
    a.shutdown().await;
    assert_eq!(a.stats().events_written, 3_000, "{:?}", a.stats());
    let rotated = std::fs::read_dir(dir.path())
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("events-"))
                .count()
        })
        .unwrap_or(0);
    assert!(
        rotated >= 5,
        "expected size-based rotation, got {rotated} rotated files"
    );
    let lines = read_lines(dir.path());
    assert_eq!(lines.len(), 3_000);
    let ids: HashSet<String> = lines
        .iter()
        .map(|l| {
            serde_json::from_str::<Event>(l)
                .map(|e| e.request_id)
                .unwrap_or_else(|e| panic!("{e}: {l}"))
        })
        .collect();
    assert_eq!(ids.len(), 3_000);
}

#[tokio::test]
async fn ndjson_keeps_only_max_files() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let a = start(ndjson_config(dir.path(), 16 << 10, 3))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for ev in synthetic(3_000) {
        a.record(ev);
    }
    a.shutdown().await;
    let files = std::fs::read_dir(dir.path())
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(files, 4, "3 rotated files plus the live one");
    let lines = read_lines(dir.path());
    assert!(!lines.is_empty() && lines.len() < 3_000);
    // The newest events survive: the last one recorded is in the live file.
    let live = std::fs::read_to_string(dir.path().join("events.ndjson")).unwrap_or_default();
    assert!(live.contains("\"request_id\":\"req-00002999\""));
}

#[tokio::test]
async fn ndjson_lines_load_into_clickhouse_18_16() {
    require_clickhouse().await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let a = start(ndjson_config(dir.path(), 1 << 20, 10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for ev in synthetic(1_000) {
        a.record(ev);
    }
    a.shutdown().await;
    let db = FreshDb::new("ndjson");
    let m = schema::migrate(&client(), &db.name, None).await;
    assert!(m.is_ok(), "{m:?}");
    let body = read_lines(dir.path()).join("\n");
    let mut ins = client()
        .insert_formatted_with(format!("INSERT INTO {}.events FORMAT JSONEachRow", db.name));
    let sent = ins.send(bytes::Bytes::from(body)).await;
    let ended = ins.end().await;
    assert!(sent.is_ok() && ended.is_ok(), "{sent:?} {ended:?}");
    let raw = q(&format!(
        "SELECT count(), uniqExact(request_id), sum(length(rule_ids)) > 0 FROM {}.events",
        db.name
    ))
    .await;
    assert_eq!(raw.trim(), "1000\t1000\t1");
    let rolled = q(&format!(
        "SELECT countMerge(requests) FROM {}.events_1m",
        db.name
    ))
    .await;
    assert_eq!(rolled.trim(), "1000");
}

#[tokio::test]
async fn full_queue_drops_and_counts_without_blocking() {
    let cfg = AnalyticsConfig {
        sink: SinkConfig::Off,
        queue_capacity: 5,
        security_log: None,
        ..AnalyticsConfig::default()
    };
    let a = start(cfg).await.unwrap_or_else(|e| panic!("{e}"));
    // Current-thread runtime: the writer cannot run between these calls, so the queue fills.
    for ev in synthetic(20) {
        a.record(ev);
    }
    let s = a.stats();
    assert_eq!(
        (
            s.events_received,
            s.dropped_queue_full,
            s.queue_depth,
            s.queue_capacity
        ),
        (20, 15, 5, 5)
    );
    a.shutdown().await;
    assert_eq!(a.stats().queue_depth, 0);
}

#[tokio::test]
async fn security_log_writes_truncated_matches_and_counts_drops() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("security.log");
    let cfg = AnalyticsConfig {
        sink: SinkConfig::Off,
        security_log: Some(SecurityLogConfig {
            path: path.clone(),
            max_matched_bytes: 16,
            queue_capacity: 3,
            ..SecurityLogConfig::default()
        }),
        ..AnalyticsConfig::default()
    };
    let a = start(cfg).await.unwrap_or_else(|e| panic!("{e}"));
    let rec = |i: u32| SecurityRecord {
        ts_ms: 1_000,
        request_id: format!("r{i}"),
        client_ip: "203.0.113.7".into(),
        verdict: "block".into(),
        decided_by: "waf".into(),
        reason: "waf_blocked".into(),
        anomaly_score: 10,
        threshold: 5,
        matches: vec![SecurityMatch {
            rule_id: 942_100,
            attack_class: "sqli".into(),
            target: "args:q".into(),
            transforms: vec!["url_decode".into(), "lowercase".into()],
            matched: "1' UNION SELECT password FROM users -- and much more text".into(),
            score: 5,
            ..SecurityMatch::default()
        }],
        ..SecurityRecord::default()
    };
    let accepted: Vec<bool> = (0..5).map(|i| a.security(rec(i))).collect();
    assert_eq!(accepted, vec![true, true, true, false, false]);
    a.shutdown().await;
    let s = a.stats();
    assert_eq!((s.security_written, s.security_dropped), (3, 2));
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_default())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["request_id"], "r0");
    assert_eq!(lines[0]["matches"][0]["target"], "args:q");
    assert_eq!(lines[0]["matches"][0]["matched"], "1' UNION SELECT …");
    assert_eq!(lines[0]["anomaly_score"], 10);
}
