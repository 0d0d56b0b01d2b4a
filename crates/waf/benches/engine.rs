//! Engine benchmarks: a 1 KB request with 10 arguments and cookies, 16 KB and 64 KB JSON
//! bodies, and rule-set compilation; and reference points for the 64 KB body (`waf_reference`):
//! the engine on the same document with every string value blanked (its structure alone),
//! `serde_json` walking the document without keeping anything (a parse floor), and each of
//! palisade's two detectors over the body's string values alone (all of them, and the distinct
//! ones: the engine checks a value repeated in a request once). Loads the shipped `rules/`
//! directory when it exists and loads cleanly, else the test fixtures (the name of the set used
//! is printed).
//!
//! `cargo bench -p palisade-waf --bench engine`

use std::hint::black_box;

/// The gateway's allocator (`src/main.rs`): the engine is measured as it runs there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use palisade_waf::{Inspection, Policy, PolicyConfig, RequestHead, RuleSet};

#[path = "../examples/workload/mod.rs"]
mod workload;
use workload::{headers, json_body, json_body_blanking, rule_sources, QUERY};

fn bench(c: &mut Criterion) {
    let (name, src) = rule_sources();
    let rs = RuleSet::from_sources(&src).expect("rules load");
    rs.wait_background();
    let policy = Policy::compile(&PolicyConfig::default(), &rs).expect("policy");
    eprintln!(
        "rule set: {name}: {} rules, {} transform chains",
        rs.len(),
        rs.chain_count()
    );
    let h = headers();
    let head = RequestHead {
        method: "GET",
        path: b"/api/v1/products/search",
        query: Some(QUERY),
        headers: &h,
        authority: None,
    };
    // Cold requests: the same headers are not remembered clean from one iteration to the next
    // (src/clean.rs); `request_1k_headers_remembered` measures a repeat client.
    let mut out = Inspection::new();
    out.set_header_memory(false);
    rs.inspect_head(&policy, &head, &mut out);
    eprintln!("1 KB request: score {} {:?}", out.score(), out.rule_ids());

    let mut g = c.benchmark_group("waf");
    g.bench_function("request_1k_10_args_cookies", |b| {
        b.iter(|| {
            rs.inspect_head(&policy, black_box(&head), &mut out);
            black_box(out.score())
        })
    });
    let mut warm = Inspection::new();
    rs.inspect_head(&policy, &head, &mut warm);
    g.bench_function("request_1k_headers_remembered", |b| {
        b.iter(|| {
            rs.inspect_head(&policy, black_box(&head), &mut warm);
            black_box(warm.score())
        })
    });
    let post_head = RequestHead {
        method: "POST",
        path: b"/api/v1/orders",
        query: None,
        headers: &h,
        authority: None,
    };
    for size in [16 * 1024, 64 * 1024] {
        let body = json_body(size);
        rs.inspect_head(&policy, &post_head, &mut out);
        rs.inspect_body(&policy, Some(b"application/json"), &body, &mut out);
        eprintln!(
            "{} KB JSON: score {} {:?} error {:?}",
            size / 1024,
            out.score(),
            out.rule_ids(),
            out.body_error()
        );
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(format!("json_body_{}k", size / 1024), |b| {
            b.iter(|| {
                rs.inspect_head(&policy, &post_head, &mut out);
                rs.inspect_body(
                    &policy,
                    Some(b"application/json"),
                    black_box(&body),
                    &mut out,
                );
                black_box(out.score())
            })
        });
    }
    g.finish();

    // Reference points for the 64 KB body's budget (docs/BENCHMARKS.md, issue 3 item 11).
    let body = json_body(64 * 1024);
    let blanked = json_body_blanking(64 * 1024, &["all"]);
    let mut values = Vec::new();
    let doc: serde_json::Value = serde_json::from_slice(&body).expect("the workload is JSON");
    string_values(&doc, &mut values);
    let mut g = c.benchmark_group("waf_reference");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("json_body_64k_values_blanked", |b| {
        b.iter(|| {
            rs.inspect_head(&policy, &post_head, &mut out);
            rs.inspect_body(
                &policy,
                Some(b"application/json"),
                black_box(&blanked),
                &mut out,
            );
            black_box(out.score())
        })
    });
    g.bench_function("serde_json_ignored_any_64k", |b| {
        b.iter(|| serde_json::from_slice::<serde::de::IgnoredAny>(black_box(&body)).is_ok())
    });
    type Detector = fn(&[u8]) -> Option<palisade_detect::Detection>;
    let detectors: [(&str, Detector); 2] = [
        ("sqli", palisade_detect::sqli::detect),
        ("xss", palisade_detect::xss::detect),
    ];
    let mut distinct = values.clone();
    distinct.sort_unstable();
    distinct.dedup();
    for (name, detect) in detectors {
        for (which, vals) in [("each_value", &values), ("each_distinct_value", &distinct)] {
            g.bench_function(format!("{name}_detector_{which}_64k"), |b| {
                b.iter(|| {
                    vals.iter()
                        .filter(|v| detect(black_box(v.as_bytes())).is_some())
                        .count()
                })
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("waf_compile");
    g.sample_size(10);
    // Until the rule set is ready to inspect; the fast path's chain groups, which a compile
    // leaves to a thread of its own, are waited for outside the timed part, so that one
    // iteration's groups do not share the CPU with the next compile.
    g.bench_function("rule_set_compile", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iters {
                let t = std::time::Instant::now();
                let rs = RuleSet::from_sources(black_box(&src));
                total += t.elapsed();
                if let Ok(rs) = rs {
                    rs.wait_background();
                }
            }
            total
        })
    });
    g.finish();
}

/// The string values of `v`, depth first (keys left out).
fn string_values<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match v {
        serde_json::Value::String(s) => out.push(s),
        serde_json::Value::Array(a) => a.iter().for_each(|v| string_values(v, out)),
        serde_json::Value::Object(o) => o.values().for_each(|v| string_values(v, out)),
        _ => {}
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
