//! Against the real local ClickHouse (18.16 on 127.0.0.1:8123; `PALISADE_CLICKHOUSE_URL`
//! overrides): migrations, the writer, the spool across an outage, replay deduplication,
//! retention.

mod common;

use std::time::Duration;

use common::*;
use palisade_analytics::config::{ClickHouseConfig, FsyncPolicy, SpoolConfig};
use palisade_analytics::schema::{self, Retention};
use palisade_analytics::spool::{Spool, SpoolRecord};
use palisade_analytics::{start, AnalyticsConfig, SinkConfig};

fn ch_config(url: &str, db: &str, spool_dir: &std::path::Path, batch: usize) -> AnalyticsConfig {
    AnalyticsConfig {
        sink: SinkConfig::Clickhouse(ClickHouseConfig {
            url: url.into(),
            database: db.into(),
            batch_size: batch,
            flush_interval_ms: 50,
            insert_timeout_ms: 3_000,
            retry_min_ms: 50,
            ..ClickHouseConfig::default()
        }),
        queue_capacity: 100_000,
        spool: SpoolConfig {
            dir: spool_dir.to_path_buf(),
            max_bytes: 256 << 20,
            segment_bytes: 64 << 10,
            fsync: FsyncPolicy::Batch,
        },
        security_log: None,
    }
}

#[tokio::test]
async fn migrations_apply_once_and_are_idempotent() {
    require_clickhouse().await;
    let db = FreshDb::new("mig");
    let c = client();
    let r = schema::migrate(
        &c,
        &db.name,
        Some(Retention {
            raw_days: 7,
            rollup_days: 90,
        }),
    )
    .await;
    let r = r.unwrap_or_else(|e| panic!("first migrate: {e}"));
    assert_eq!(r.applied, vec![1, 2]);
    let again = schema::migrate(
        &c,
        &db.name,
        Some(Retention {
            raw_days: 7,
            rollup_days: 90,
        }),
    )
    .await;
    assert_eq!(again.map(|r| r.applied).ok(), Some(vec![]));
    let tables = q(&format!(
        "SELECT name FROM system.tables WHERE database = '{}' ORDER BY name",
        db.name
    ))
    .await;
    let mut expected: Vec<&str> = palisade_analytics::names::table::ALL.to_vec();
    expected.sort_unstable();
    assert_eq!(tables.lines().collect::<Vec<_>>(), expected);
    if r.ttl {
        let engine = q(&format!(
            "SELECT engine_full FROM system.tables WHERE database = '{}' AND name = 'events'",
            db.name
        ))
        .await;
        assert!(engine.contains("toIntervalDay(7)"), "{engine}");
    }
}

#[tokio::test]
async fn writer_delivers_every_event_once_and_rollups_follow() {
    require_clickhouse().await;
    let db = FreshDb::new("writer");
    let spool = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut cfg = ch_config(&clickhouse_url(), &db.name, spool.path(), 1_000);
    // LZ4-compressed INSERT bodies (off by default) must work against 18.16 too.
    if let SinkConfig::Clickhouse(ch) = &mut cfg.sink {
        ch.compression = true;
    }
    let a = start(cfg).await;
    let a = a.unwrap_or_else(|e| panic!("start: {e}"));
    let now = now_ms();
    for i in 0..5_000 {
        a.record(event(i, now));
    }
    a.shutdown().await;
    let s = a.stats();
    assert_eq!(s.events_written, 5_000, "{s:?}");
    assert_eq!(s.dropped_queue_full + s.dropped_spool_full, 0, "{s:?}");
    let counts = q(&format!(
        "SELECT count(), uniqExact(request_id) FROM {}.events",
        db.name
    ))
    .await;
    assert_eq!(counts.trim(), "5000\t5000");
    let rolled = q(&format!(
        "SELECT countMerge(requests) FROM {}.events_1m",
        db.name
    ))
    .await;
    assert_eq!(rolled.trim(), "5000");
    let blocked_sqli = q(&format!(
        "SELECT countMerge(requests) FROM {}.attacks_1m WHERE attack_class = 'sqli'",
        db.name
    ))
    .await;
    let raw_sqli = q(&format!(
        "SELECT count() FROM {}.events WHERE has(attack_classes, 'sqli')",
        db.name
    ))
    .await;
    assert_eq!(blocked_sqli.trim(), raw_sqli.trim());
    let keyed = q(&format!(
        "SELECT countMerge(requests) FROM {}.api_keys_1m",
        db.name
    ))
    .await;
    let raw_keyed = q(&format!(
        "SELECT count() FROM {}.events WHERE api_key_id != ''",
        db.name
    ))
    .await;
    assert_eq!(keyed.trim(), raw_keyed.trim());
    // A sample row reads back as written.
    let row = q(&format!(
        "SELECT route, status, rule_ids, attack_classes, decided_by FROM {}.events WHERE request_id = 'req-00000001'",
        db.name
    ))
    .await;
    assert_eq!(row.trim(), "login\t403\t[942100,942191]\t['sqli']\twaf");
}

#[tokio::test]
async fn outage_spools_and_replays_every_event_exactly_once() {
    require_clickhouse().await;
    let db = FreshDb::new("outage");
    // Create the schema directly so the writer's target can be cut from the start.
    let m = schema::migrate(&client(), &db.name, None).await;
    assert!(m.is_ok(), "{m:?}");
    let proxy = Proxy::start(&clickhouse_url()).await;
    let spool = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let a = start(ch_config(&proxy.url(), &db.name, spool.path(), 200)).await;
    let a = a.unwrap_or_else(|e| panic!("start: {e}"));
    let now = now_ms();
    let mut next = 0u64;
    let mut send = |n: u64| {
        for _ in 0..n {
            a.record(event(next, now));
            next += 1;
        }
    };
    send(1_000);
    let a2 = a.clone();
    assert!(
        wait_until(Duration::from_secs(20), || async {
            a2.stats().events_written >= 1_000
        })
        .await,
        "{:?}",
        a.stats()
    );

    proxy.cut();
    send(3_000);
    let a2 = a.clone();
    let spooled = wait_until(Duration::from_secs(30), || async {
        let s = a2.stats();
        s.events_spooled >= 3_000
    })
    .await;
    assert!(spooled, "events did not reach the spool: {:?}", a.stats());
    let s = a.stats();
    assert!(
        s.write_errors > 0 && s.spool_bytes > 0 && s.spool_segments > 0,
        "{s:?}"
    );
    send(1_000); // more traffic during the outage

    proxy.restore();
    send(2_000);
    // ClickHouse is back: the writer replays the spool on its own, then catches up.
    let a2 = a.clone();
    let drained = wait_until(Duration::from_secs(60), || async {
        let s = a2.stats();
        // An INSERT cut mid-flight may have been committed by the server: its replay is then
        // skipped as a duplicate, so the written and deduplicated counts add up to the total.
        s.spool_segments == 0 && s.events_written + s.events_deduplicated >= 7_000
    })
    .await;
    assert!(
        drained,
        "spool not replayed after recovery: {:?}",
        a.stats()
    );
    a.shutdown().await;
    let s = a.stats();
    assert_eq!(s.dropped_queue_full + s.dropped_spool_full, 0, "{s:?}");
    assert_eq!(s.events_written + s.events_deduplicated, 7_000, "{s:?}");
    assert!(s.events_replayed + s.events_deduplicated >= 3_000, "{s:?}");
    let counts = q(&format!(
        "SELECT count(), uniqExact(request_id) FROM {}.events",
        db.name
    ))
    .await;
    assert_eq!(
        counts.trim(),
        "7000\t7000",
        "every request id exactly once; stats {s:?}"
    );
}

#[tokio::test]
async fn spool_left_at_shutdown_is_replayed_by_the_next_start() {
    require_clickhouse().await;
    let db = FreshDb::new("restart");
    let m = schema::migrate(&client(), &db.name, None).await;
    assert!(m.is_ok(), "{m:?}");
    let proxy = Proxy::start(&clickhouse_url()).await;
    proxy.cut();
    let spool = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let a = start(ch_config(&proxy.url(), &db.name, spool.path(), 100)).await;
    let a = a.unwrap_or_else(|e| panic!("start: {e}"));
    let now = now_ms();
    for i in 0..1_000 {
        a.record(event(i, now));
    }
    a.shutdown().await;
    let s = a.stats();
    assert_eq!(s.events_spooled, 1_000, "{s:?}");
    assert_eq!(s.events_written, 0, "{s:?}");
    let b = start(ch_config(&clickhouse_url(), &db.name, spool.path(), 100)).await;
    let b = b.unwrap_or_else(|e| panic!("restart: {e}"));
    let b2 = b.clone();
    assert!(
        wait_until(Duration::from_secs(30), || async {
            b2.stats().spool_segments == 0
        })
        .await,
        "{:?}",
        b.stats()
    );
    b.shutdown().await;
    assert_eq!(b.stats().events_replayed, 1_000);
    let counts = q(&format!(
        "SELECT count(), uniqExact(request_id) FROM {}.events",
        db.name
    ))
    .await;
    assert_eq!(counts.trim(), "1000\t1000");
}

#[tokio::test]
async fn replay_skips_rows_clickhouse_already_has() {
    require_clickhouse().await;
    let db = FreshDb::new("dedupe");
    let m = schema::migrate(&client(), &db.name, None).await;
    assert!(m.is_ok(), "{m:?}");
    let now = now_ms();
    let encode = |ids: std::ops::Range<u64>, batch_id: u64| {
        let mut data = Vec::new();
        for i in ids {
            common::event(i, now).encode_row_binary(batch_id, &mut data);
        }
        data
    };
    let sql = palisade_analytics::writer::insert_statement(&db.name);
    // Batch 1 fully landed (the INSERT timed out on our side but the server kept it), batch 2
    // landed in part, batch 3 never landed.
    for (range, id) in [(0..100, 1u64), (100..150, 2)] {
        let mut ins = client().insert_formatted_with(sql.clone());
        let sent = ins.send(bytes::Bytes::from(encode(range, id))).await;
        assert!(sent.is_ok() && ins.end().await.is_ok());
    }
    let spool_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let spool_cfg = SpoolConfig {
        dir: spool_dir.path().to_path_buf(),
        max_bytes: 1 << 30,
        segment_bytes: 1 << 20,
        fsync: FsyncPolicy::Batch,
    };
    {
        let mut sp = Spool::open(&spool_cfg).unwrap_or_else(|e| panic!("{e}"));
        let min_ts = ((now - 600_000) / 1000) as u32;
        let max_ts = (now / 1000) as u32;
        for (range, id) in [(0..100, 1u64), (100..200, 2), (200..300, 3)] {
            let rec = SpoolRecord {
                batch_id: id,
                rows: 100,
                min_ts,
                max_ts,
                data: encode(range, id),
            };
            assert!(matches!(sp.append(&rec), Ok(true)));
        }
    }
    let a = start(ch_config(
        &clickhouse_url(),
        &db.name,
        spool_dir.path(),
        100,
    ))
    .await;
    let a = a.unwrap_or_else(|e| panic!("start: {e}"));
    let a2 = a.clone();
    assert!(
        wait_until(Duration::from_secs(20), || async {
            a2.stats().spool_segments == 0
        })
        .await,
        "{:?}",
        a.stats()
    );
    a.shutdown().await;
    let s = a.stats();
    assert_eq!(s.events_deduplicated, 150, "{s:?}");
    assert_eq!(s.events_replayed, 150, "{s:?}");
    let counts = q(&format!(
        "SELECT count(), uniqExact(request_id) FROM {}.events",
        db.name
    ))
    .await;
    assert_eq!(counts.trim(), "300\t300");
}

#[tokio::test]
async fn janitor_drops_partitions_past_retention() {
    require_clickhouse().await;
    let db = FreshDb::new("janitor");
    let m = schema::migrate(&client(), &db.name, None).await;
    assert!(m.is_ok(), "{m:?}");
    let day_ms = 86_400_000;
    // Injected "now": 2026-03-10 12:00 UTC; events on Mar 1, Mar 5 and Mar 10.
    let now_secs: u64 = 1_773_144_000;
    let mut data = Vec::new();
    for (i, age_days) in [(0u64, 9u64), (1, 5), (2, 0)] {
        let mut ev = common::event(i, now_secs * 1000 - age_days * day_ms);
        ev.ts_ms = now_secs * 1000 - age_days * day_ms;
        ev.encode_row_binary(1, &mut data);
    }
    let mut ins =
        client().insert_formatted_with(palisade_analytics::writer::insert_statement(&db.name));
    assert!(ins.send(bytes::Bytes::from(data)).await.is_ok() && ins.end().await.is_ok());
    let dropped = schema::drop_expired_partitions(
        &client(),
        &db.name,
        Retention {
            raw_days: 7,
            rollup_days: 30,
        },
        now_secs,
    )
    .await;
    let dropped = dropped.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(dropped, vec!["events/20260301".to_string()]);
    let left = q(&format!(
        "SELECT request_id FROM {}.events ORDER BY ts",
        db.name
    ))
    .await;
    assert_eq!(
        left.lines().collect::<Vec<_>>(),
        vec!["req-00000001", "req-00000002"]
    );
    let rollups = q(&format!(
        "SELECT countMerge(requests) FROM {}.events_1m",
        db.name
    ))
    .await;
    assert_eq!(rollups.trim(), "3", "rollups keep their longer retention");
}

#[tokio::test]
async fn dropped_database_is_recreated_and_nothing_is_lost() {
    require_clickhouse().await;
    let db = FreshDb::new("recreate");
    let spool = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let a = start(ch_config(&clickhouse_url(), &db.name, spool.path(), 100)).await;
    let a = a.unwrap_or_else(|e| panic!("start: {e}"));
    let now = now_ms();
    for i in 0..100 {
        a.record(event(i, now));
    }
    let a2 = a.clone();
    assert!(
        wait_until(Duration::from_secs(20), || async {
            a2.stats().events_written >= 100
        })
        .await
    );
    q(&format!("DROP DATABASE {}", db.name)).await;
    for i in 100..300 {
        a.record(event(i, now));
    }
    let a2 = a.clone();
    let ok = wait_until(Duration::from_secs(30), || async {
        let s = a2.stats();
        s.events_written >= 300 && s.spool_segments == 0
    })
    .await;
    assert!(ok, "{:?}", a.stats());
    a.shutdown().await;
    let counts = q(&format!(
        "SELECT count(), uniqExact(request_id) FROM {}.events",
        db.name
    ))
    .await;
    assert_eq!(
        counts.trim(),
        "200\t200",
        "the 200 events sent after the drop arrived once"
    );
    let applied = q(&format!(
        "SELECT count() FROM {}.schema_migrations",
        db.name
    ))
    .await;
    assert_eq!(applied.trim(), "2");
}

#[tokio::test]
async fn full_spool_drops_whole_batches_and_counts_them() {
    let proxy = Proxy::start(&clickhouse_url()).await;
    proxy.cut(); // ClickHouse unreachable for the whole test
    let spool = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut cfg = ch_config(&proxy.url(), "palisade_never_created", spool.path(), 100);
    // Room for a few 100-event batches only.
    cfg.spool.max_bytes = 100_000;
    cfg.spool.segment_bytes = 30_000;
    let a = start(cfg).await.unwrap_or_else(|e| panic!("start: {e}"));
    let now = now_ms();
    for i in 0..2_000 {
        a.record(event(i, now));
    }
    a.shutdown().await;
    let s = a.stats();
    assert_eq!(s.events_written, 0, "{s:?}");
    assert!(s.events_spooled > 0 && s.dropped_spool_full > 0, "{s:?}");
    assert_eq!(
        s.events_spooled + s.dropped_spool_full,
        2_000,
        "every event is spooled or counted as dropped: {s:?}"
    );
    assert_eq!(s.events_spooled % 100, 0, "whole batches: {s:?}");
    assert!(s.spool_bytes <= 100_000, "{s:?}");
    let on_disk: u64 = std::fs::read_dir(spool.path())
        .map(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    assert_eq!(on_disk, s.spool_bytes);
}

#[tokio::test]
async fn late_acks_time_out_to_the_spool_and_committed_batches_are_not_replayed() {
    require_clickhouse().await;
    let db = FreshDb::new("stall");
    let m = schema::migrate(&client(), &db.name, None).await;
    assert!(m.is_ok(), "{m:?}");
    let proxy = Proxy::start(&clickhouse_url()).await;
    let spool = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut cfg = ch_config(&proxy.url(), &db.name, spool.path(), 100);
    if let SinkConfig::Clickhouse(ch) = &mut cfg.sink {
        ch.insert_timeout_ms = 300;
    }
    let a = start(cfg).await.unwrap_or_else(|e| panic!("start: {e}"));
    proxy.stall();
    let now = now_ms();
    for i in 0..1_000 {
        a.record(event(i, now));
    }
    let a2 = a.clone();
    let spooled = wait_until(Duration::from_secs(30), || async {
        a2.stats().events_spooled >= 1_000
    })
    .await;
    assert!(spooled, "{:?}", a.stats());
    assert!(a.stats().write_errors > 0);
    proxy.release();
    let a2 = a.clone();
    let done = wait_until(Duration::from_secs(60), || async {
        let s = a2.stats();
        s.spool_segments == 0 && s.events_written + s.events_deduplicated >= 1_000
    })
    .await;
    assert!(done, "{:?}", a.stats());
    a.shutdown().await;
    let counts = q(&format!(
        "SELECT count(), uniqExact(request_id) FROM {}.events",
        db.name
    ))
    .await;
    assert_eq!(counts.trim(), "1000\t1000", "stats {:?}", a.stats());
    // The server had every timed-out batch: the replay skipped them instead of inserting twice.
    assert!(a.stats().events_deduplicated > 0, "{:?}", a.stats());
}
