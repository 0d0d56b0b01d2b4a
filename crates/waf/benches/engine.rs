//! Engine benchmarks: a 1 KB request with 10 arguments and cookies, 16 KB and 64 KB JSON
//! bodies, and rule-set compilation. Loads the shipped `rules/` directory when it exists and
//! loads cleanly, else the test fixtures (the name of the set used is printed).
//!
//! `cargo bench -p palisade-waf --bench engine`

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http::{HeaderMap, HeaderName, HeaderValue};
use palisade_waf::{Inspection, Policy, PolicyConfig, RequestHead, RuleSet};

fn sources(dir: &Path) -> Vec<(String, String)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    paths.retain(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"));
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| Some((p.display().to_string(), std::fs::read_to_string(&p).ok()?)))
        .collect()
}

fn rule_sources() -> (String, Vec<(String, String)>) {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shipped = manifest.join("../../rules");
    let src = sources(&shipped);
    if !src.is_empty() {
        match RuleSet::from_sources(&src) {
            Ok(rs) if !rs.is_empty() => return ("shipped rules/".into(), src),
            Ok(_) => eprintln!("shipped rules/ has no rules; using fixtures"),
            Err(e) => eprintln!(
                "shipped rules/ do not load ({} errors); using fixtures",
                e.len()
            ),
        }
    }
    (
        "tests/fixtures/rules".into(),
        sources(&manifest.join("tests/fixtures/rules")),
    )
}

fn headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in [
        ("host", "shop.example.com"),
        ("user-agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"),
        ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"),
        ("accept-language", "en-GB,en;q=0.9,fr;q=0.8"),
        ("accept-encoding", "gzip, deflate, br"),
        ("referer", "https://shop.example.com/catalog/shoes?color=black&size=42"),
        ("cookie", "session=3f9a1c0e7b2d4a6f8e1c3b5d7f9a2c4e; cart=items%3A3%2Ctotal%3A129.90; theme=dark; consent=analytics%3Dno; last_seen=2026-11-24T21%3A04%3A11Z"),
        ("x-request-id", "0f8e7d6c-5b4a-3928-1706-f5e4d3c2b1a0"),
    ] {
        h.append(HeaderName::from_static(n), HeaderValue::from_static(v));
    }
    h
}

const QUERY: &[u8] = b"q=running+shoes+for+men%27s+trail&category=sports&brand=Salomon&min_price=50&max_price=180&sort=price_asc&page=2&per_page=48&color=black&ref=homepage_banner";

fn json_body(target: usize) -> Vec<u8> {
    let mut s = String::from("{\"orders\":[");
    let mut i = 0;
    while s.len() < target - 400 {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            "{{\"id\":{i},\"customer\":{{\"name\":\"Seán O'Brien\",\"email\":\"sean.obrien{i}@example.org\",\"address\":{{\"street\":\"{i} Main Street\",\"city\":\"Dublin\"}}}},\"note\":\"Please select the blue one; leave it at the door if nobody answers. Thanks!\",\"items\":[{{\"sku\":\"SKU-{i}-A\",\"qty\":2,\"price\":19.99}},{{\"sku\":\"SKU-{i}-B\",\"qty\":1,\"price\":5.5}}],\"gift\":false}}"
        ));
        i += 1;
    }
    s.push_str("],\"meta\":{\"source\":\"web\",\"version\":\"2.1\"}}");
    s.into_bytes()
}

fn bench(c: &mut Criterion) {
    let (name, src) = rule_sources();
    let rs = RuleSet::from_sources(&src).expect("rules load");
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
    };
    let mut out = Inspection::new();
    rs.inspect_head(&policy, &head, &mut out);
    eprintln!("1 KB request: score {} {:?}", out.score(), out.rule_ids());

    let mut g = c.benchmark_group("waf");
    g.bench_function("request_1k_10_args_cookies", |b| {
        b.iter(|| {
            rs.inspect_head(&policy, black_box(&head), &mut out);
            black_box(out.score())
        })
    });
    let post_head = RequestHead {
        method: "POST",
        path: b"/api/v1/orders",
        query: None,
        headers: &h,
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
    let mut g = c.benchmark_group("waf_compile");
    g.sample_size(10);
    g.bench_function("rule_set_compile", |b| {
        b.iter(|| RuleSet::from_sources(black_box(&src)).map(|r| r.len()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
