//! Events per second the writer sustains into the local ClickHouse (DESIGN.md §8: ≥ 100,000/s),
//! and the cost of `Analytics::record` on the request path.
//!
//! Run: `cargo bench -p palisade-analytics --bench writer` with ClickHouse on 127.0.0.1:8123
//! (`PALISADE_CLICKHOUSE_URL` overrides). Each sample sends 200,000 events through `record`
//! (the producer only yields when the queue is more than half full, so nothing is dropped) and
//! stops the clock when ClickHouse acknowledged all of them. Criterion's "thrpt" line is the
//! figure. A fresh database is created and dropped.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use palisade_analytics::config::{ClickHouseConfig, SpoolConfig};
use palisade_analytics::names::{reason, stage, verdict};
use palisade_analytics::{start, AnalyticsConfig, Event, SinkConfig};

const PER_SAMPLE: u64 = 200_000;

fn url() -> String {
    std::env::var("PALISADE_CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:8123".into())
}

fn event(i: u64, now_ms: u64) -> Event {
    let blocked = i % 10 == 1;
    Event {
        ts_ms: now_ms,
        request_id: format!("bench-{i:012}"),
        route: "api".into(),
        route_template: "/api/items/{id}".into(),
        method: "GET".into(),
        host: "example.test".into(),
        path: format!("/api/items/{}", i % 1000),
        http_version: "HTTP/1.1".into(),
        status: if blocked { 403 } else { 200 },
        bytes_in: 420,
        bytes_out: 1800,
        latency_us: 300 + i % 900,
        upstream_latency_us: 250 + i % 800,
        client_ip: format!("198.51.100.{}", i % 200),
        country: "DE".into(),
        user_agent: "Mozilla/5.0 (X11; Linux x86_64) bench".into(),
        verdict: if blocked {
            verdict::BLOCK
        } else {
            verdict::ALLOW
        }
        .into(),
        decided_by: if blocked { stage::WAF } else { "" }.into(),
        reason: if blocked { reason::WAF_BLOCKED } else { "" }.into(),
        waf_mode: "block".into(),
        anomaly_score: if blocked { 10 } else { 0 },
        rule_ids: if blocked {
            vec![942_100, 942_190]
        } else {
            Vec::new()
        },
        attack_classes: if blocked {
            vec!["sqli".into()]
        } else {
            Vec::new()
        },
        upstream_addr: "127.0.0.1:18080".into(),
        upstream_attempts: 1,
        ..Event::default()
    }
}

fn bench(c: &mut Criterion) {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e}"),
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let db = format!("palisade_bench_{nanos}");
    let spool = std::env::temp_dir().join(format!("palisade-bench-spool-{nanos}"));
    let batch_size = std::env::var("PALISADE_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    // PALISADE_BENCH_LZ4=1 compresses the INSERT bodies (off by default, as in the config).
    let compression = std::env::var("PALISADE_BENCH_LZ4").is_ok_and(|v| v == "1");
    let cfg = AnalyticsConfig {
        sink: SinkConfig::Clickhouse(ClickHouseConfig {
            url: url(),
            database: db.clone(),
            batch_size,
            flush_interval_ms: 200,
            compression,
            ..ClickHouseConfig::default()
        }),
        queue_capacity: 262_144,
        spool: SpoolConfig {
            dir: spool.clone(),
            ..SpoolConfig::default()
        },
        security_log: None,
    };
    let analytics = rt
        .block_on(start(cfg))
        .unwrap_or_else(|e| panic!("start: {e}"));
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut next = 0u64;

    let mut g = c.benchmark_group("analytics_writer");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(PER_SAMPLE));
    g.bench_function(format!("events_into_clickhouse_batch_{batch_size}"), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let base = analytics.stats().events_written;
                    let t = Instant::now();
                    for _ in 0..PER_SAMPLE {
                        while analytics.queue_depth() > 131_072 {
                            tokio::task::yield_now().await;
                        }
                        analytics.record(event(next, now_ms));
                        next += 1;
                    }
                    while analytics.stats().events_written < base + PER_SAMPLE {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    total += t.elapsed();
                }
                total
            })
        });
    });
    // The server's share: the same events pre-encoded, inserted directly in 50,000-row INSERTs.
    let client = palisade_analytics::writer::client_for(&ClickHouseConfig {
        url: url(),
        compression,
        ..ClickHouseConfig::default()
    });
    let sql = palisade_analytics::writer::insert_statement(&db);
    let batches: Vec<bytes::Bytes> = (0..PER_SAMPLE / 50_000)
        .map(|b| {
            let mut data = Vec::new();
            for i in 0..50_000 {
                event(b * 50_000 + i, now_ms).encode_row_binary(7, &mut data);
            }
            bytes::Bytes::from(data)
        })
        .collect();
    g.bench_function("server_only_preencoded_inserts", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let t = Instant::now();
                for _ in 0..iters {
                    for data in &batches {
                        let mut ins = client.insert_formatted_with(sql.clone());
                        let sent = ins.send(data.clone()).await;
                        assert!(sent.is_ok() && ins.end().await.is_ok());
                    }
                }
                t.elapsed()
            })
        });
    });
    g.finish();
    let s = analytics.stats();
    assert_eq!(
        s.dropped_queue_full + s.dropped_spool_full,
        0,
        "the bench dropped events: {s:?}"
    );
    eprintln!("writer stats: {s:?}");
    rt.block_on(analytics.shutdown());
    rt.block_on(async {
        let client = clickhouse::Client::default()
            .with_url(url())
            .with_validation(false);
        let _ = client
            .query(&format!("DROP DATABASE IF EXISTS {db}"))
            .execute()
            .await;
    });
    let _ = std::fs::remove_dir_all(&spool);

    // The request path's share: one `record` call (event already built), sink off.
    let off = rt
        .block_on(start(AnalyticsConfig {
            sink: SinkConfig::Off,
            security_log: None,
            ..AnalyticsConfig::default()
        }))
        .unwrap_or_else(|e| panic!("start: {e}"));
    let proto = event(1, now_ms);
    let mut g = c.benchmark_group("analytics_record");
    g.throughput(Throughput::Elements(1));
    g.bench_function("record_one_event", |b| {
        b.iter_batched(
            || proto.clone(),
            |ev| off.record(ev),
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
    rt.block_on(off.shutdown());
}

criterion_group!(benches, bench);
criterion_main!(benches);
