//! Cost of the per-request API key check: key parse + lookup by id + SHA-256 verification +
//! revoked/expiry checks + GCRA rate check + quota compare-and-increment, with 100,000 keys
//! loaded from a key file. Run: `cargo bench -p palisade-keys --bench keys`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use palisade_keys::{
    KeyAuth, KeyHash, KeyStore, PlanSet, QuotaBackend, QuotaStore, SystemClock, UsagePlan,
};

const KEYS: usize = 100_000;
const B62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn base62(mut n: usize, len: usize) -> String {
    let mut out = vec![b'0'; len];
    for slot in out.iter_mut().rev() {
        *slot = B62[n % 62];
        n /= 62;
    }
    String::from_utf8(out).unwrap()
}

/// Writes a key file of `KEYS` keys and returns (file dir, one key in the middle).
fn key_file() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut keys = Vec::with_capacity(KEYS);
    let mut sample = String::new();
    for i in 0..KEYS {
        let id = base62(i * 7919, 12);
        let key = format!("pk_{id}_{}", base62(i * 104_729 + 17, 32));
        if i == KEYS / 2 {
            sample = key.clone();
        }
        keys.push(serde_json::json!({
            "id": format!("key_{id}"), "name": format!("bench {i}"), "owner": "bench",
            "plan": "gold", "created": "2026-11-24T00:00:00Z", "revoked": false,
            "hash": KeyHash::of(&key),
        }));
    }
    let file = serde_json::json!({"version": 1, "keys": keys});
    std::fs::write(dir.path().join("keys.json"), file.to_string()).unwrap();
    (dir, sample)
}

fn bench(c: &mut Criterion) {
    let (dir, key) = key_file();
    let plans: Vec<UsagePlan> = serde_json::from_str(
        r#"[{"name":"gold","rate":1e9,"burst":1000000,
             "quota":{"limit":1000000000000,"period":"month"},
             "routes":{"export":{"rate":1e9,"burst":1000,"quota":{"limit":1000000000000,"period":"day"}}}}]"#,
    )
    .unwrap();
    let store = KeyStore::open(dir.path().join("keys.json")).unwrap();
    let auth = KeyAuth::new(
        Arc::new(store),
        PlanSet::compile(&plans).unwrap(),
        Arc::new(QuotaStore::in_memory()) as Arc<dyn QuotaBackend>,
        Arc::new(SystemClock),
    );
    assert!(auth.check_now(Some(&key), "users").is_ok());

    let mut g = c.benchmark_group("keys");
    g.bench_function("check_now_plan_route", |b| {
        b.iter(|| auth.check_now(black_box(Some(key.as_str())), black_box("users")))
    });
    g.bench_function("check_now_route_override", |b| {
        b.iter(|| auth.check_now(black_box(Some(key.as_str())), black_box("export")))
    });
    let wrong = format!("{}{}", &key[..16], "x".repeat(32));
    g.bench_function("check_now_wrong_secret", |b| {
        b.iter(|| auth.check_now(black_box(Some(wrong.as_str())), black_box("users")))
    });
    let unknown = format!("pk_zzzzzzzzzzzz_{}", "x".repeat(32));
    g.bench_function("check_now_unknown_id", |b| {
        b.iter(|| auth.check_now(black_box(Some(unknown.as_str())), black_box("users")))
    });
    g.bench_function("sha256_of_a_key", |b| {
        b.iter(|| KeyHash::of(black_box(key.as_str())))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
