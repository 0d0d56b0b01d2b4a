//! Runs `KeyAuth::check_now` N times in one function (the setup of `benches/keys.rs`: 100,000
//! keys, plan `gold` with rate, burst and a monthly quota), so its instructions can be counted
//! apart from the setup:
//!
//! ```text
//! cargo build --release -p palisade-keys --example key_check_cost
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*run_checks*' \
//!     target/release/examples/key_check_cost 100000
//! ```
//! Instructions per check = the reported total / N. Without valgrind it prints ns per check
//! (best of 20 batches).

use std::hint::black_box;
use std::sync::Arc;

use palisade_keys::{
    KeyAuth, KeyHash, KeyStore, PlanSet, QuotaBackend, QuotaStore, SystemClock, UsagePlan,
};

const KEYS: usize = 100_000;
const B62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn base62(mut n: usize, len: usize) -> String {
    let mut out = vec![b'0'; len];
    for slot in out.iter_mut().rev() {
        *slot = B62.get(n % 62).copied().unwrap_or(b'0');
        n /= 62;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[inline(never)]
fn run_checks(auth: &KeyAuth, key: &str, route: &str, n: usize) -> usize {
    let mut ok = 0;
    for _ in 0..n {
        if auth
            .check_now(black_box(Some(key)), black_box(route))
            .is_ok()
        {
            ok += 1;
        }
    }
    ok
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let route = std::env::args().nth(2).unwrap_or_else(|| "users".into());
    let dir = tempfile::tempdir()?;
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
    let path = dir.path().join("keys.json");
    std::fs::write(
        &path,
        serde_json::json!({"version": 1, "keys": keys}).to_string(),
    )?;
    let plans: Vec<UsagePlan> = serde_json::from_str(
        r#"[{"name":"gold","rate":1e9,"burst":1000000,
             "quota":{"limit":1000000000000,"period":"month"},
             "routes":{"export":{"rate":1e9,"burst":1000,"quota":{"limit":1000000000000,"period":"day"}}}}]"#,
    )?;
    let auth = KeyAuth::new(
        Arc::new(KeyStore::open(&path)?),
        PlanSet::compile(&plans)?,
        Arc::new(QuotaStore::in_memory()) as Arc<dyn QuotaBackend>,
        Arc::new(SystemClock),
    );
    // Warm up (verification cache, thread-local month window).
    let ok = run_checks(&auth, &sample, &route, 1000);
    let batch = n.max(1);
    let (mut best, mut best_cpu) = (f64::MAX, f64::MAX);
    let rounds = if std::env::var_os("CALLGRIND").is_some() {
        1
    } else {
        20
    };
    for _ in 0..rounds {
        let c = cpu_ns();
        let t = std::time::Instant::now();
        run_checks(&auth, &sample, &route, batch);
        best = best.min(t.elapsed().as_nanos() as f64 / batch as f64);
        if let (Some(a), Some(b)) = (c, cpu_ns()) {
            best_cpu = best_cpu.min(b.saturating_sub(a) as f64 / batch as f64);
        }
    }
    println!(
        "{ok} warm-up checks passed; best batch of {batch}: {best:.1} ns per check wall clock, {best_cpu:.1} ns on CPU"
    );
    Ok(())
}

/// Nanoseconds this thread spent on a CPU (Linux /proc/thread-self/schedstat), so a loaded
/// machine inflates the figure less than wall-clock time does.
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}
