//! Criterion benchmarks of both detectors on 100-byte benign and attack inputs.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

/// Pads or truncates `s` to exactly 100 bytes (padding with prose keeps the shape realistic).
fn hundred(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    let pad = b" and some more ordinary words to fill the value";
    while v.len() < 100 {
        v.extend_from_slice(pad);
    }
    v.truncate(100);
    v
}

fn bench(c: &mut Criterion) {
    let benign_text = hundred(
        "o'brien ordered a drop-down menu, 1-2 days shipping; \"select a plan\" and/or call us",
    );
    let benign_html =
        hundred("<b>bold</b> text with a <a href=\"/help\">link</a> and 1 < 2 > 0 in it");
    let sqli =
        hundred("1' and 4386=(select count(*) from sysusers as sys1,sysusers as sys2) and 'x'='x");
    let xss = hundred("\"><img src=x onerror=alert(document.cookie)><svg/onload=alert(1)>");

    let mut g = c.benchmark_group("sqli");
    g.bench_function("benign_100b", |b| {
        b.iter(|| palisade_detect::sqli::detect(black_box(&benign_text)))
    });
    g.bench_function("attack_100b", |b| {
        b.iter(|| palisade_detect::sqli::detect(black_box(&sqli)))
    });
    g.finish();

    let mut g = c.benchmark_group("xss");
    g.bench_function("benign_100b", |b| {
        b.iter(|| palisade_detect::xss::detect(black_box(&benign_html)))
    });
    g.bench_function("attack_100b", |b| {
        b.iter(|| palisade_detect::xss::detect(black_box(&xss)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
