//! Quota counters in a real `redis-server` (feature `redis`): exact under concurrency, a retry
//! with the same nonce counts nothing twice, windows are separate counters, and
//! `KeyAuth::check_deferred` hands out the shared counter instead of counting it.
//! Run: `cargo test -p palisade-keys --features redis --test redis_quota`.
#![cfg(feature = "redis")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Server;
use palisade_keys::remote::acquire;
use palisade_keys::{
    KeyAuth, KeyStore, ManualClock, PendingQuota, Period, PlanSet, QuotaBackend, QuotaDecision,
    Rejection, RemoteQuotas, UsagePlan,
};

async fn conn(port: u16) -> palisade_keys::remote::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap_or_else(|e| panic!("{e}"))
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn pending(backend: &RemoteQuotas, at_secs: i64, limit: u64) -> PendingQuota {
    PendingQuota {
        counter: backend.counter("key_a", "*", Period::Day),
        window: Period::Day.window_at(at_secs),
        limit,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_under_concurrency_and_retries_count_once() {
    let server = Server::start();
    let backend = RemoteQuotas::new("quota-test");
    let day1 = 1_800_000_000;

    // 50 concurrent admissions on a quota of 20: exactly 20 granted, counts 1..=20 each once.
    let p = pending(&backend, day1, 20);
    let mut tasks = Vec::new();
    for i in 0..50u128 {
        let (p, port) = (p.clone(), server.1);
        tasks.push(tokio::spawn(async move {
            let mut c = conn(port).await;
            acquire(&mut c, &p, i + 1)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        }));
    }
    let mut used = Vec::new();
    for t in tasks {
        if let QuotaDecision::Granted { used: u } = t.await.unwrap_or_else(|e| panic!("{e}")) {
            used.push(u);
        }
    }
    used.sort_unstable();
    assert_eq!(used, (1..=20).collect::<Vec<u64>>());

    // A retry with the same nonce replays the first answer and counts nothing.
    let mut c = conn(server.1).await;
    let p2 = pending(&backend, day1 + 86_400, 2);
    assert_eq!(
        acquire(&mut c, &p2, 1000).await.ok(),
        Some(QuotaDecision::Granted { used: 1 })
    );
    assert_eq!(
        acquire(&mut c, &p2, 1000).await.ok(),
        Some(QuotaDecision::Granted { used: 1 })
    );
    assert_eq!(
        acquire(&mut c, &p2, 1001).await.ok(),
        Some(QuotaDecision::Granted { used: 2 })
    );
    assert_eq!(
        acquire(&mut c, &p2, 1002).await.ok(),
        Some(QuotaDecision::Exhausted)
    );
    assert_eq!(
        acquire(&mut c, &p2, 1000).await.ok(),
        Some(QuotaDecision::Granted { used: 1 })
    );
    // The next day is a new window.
    let p3 = pending(&backend, day1 + 2 * 86_400, 2);
    assert_eq!(
        acquire(&mut c, &p3, 1003).await.ok(),
        Some(QuotaDecision::Granted { used: 1 })
    );
}

#[test]
fn check_deferred_hands_out_the_shared_counter() {
    let raw: Vec<UsagePlan> =
        serde_json::from_str(r#"[{"name": "gold", "quota": {"limit": 1, "period": "month"}}]"#)
            .unwrap_or_else(|e| panic!("{e}"));
    let plans = PlanSet::compile(&raw).unwrap_or_else(|e| panic!("{e}"));
    let clock =
        Arc::new(ManualClock::at_utc(2028, 2, 29, 23, 0, 0).unwrap_or_else(|e| panic!("{e}")));
    let auth = KeyAuth::new(
        Arc::new(KeyStore::in_memory()),
        plans,
        Arc::new(RemoteQuotas::new("p")),
        clock.clone(),
    );
    let (rec, key) = auth
        .create("ci", "alice", "gold", None)
        .unwrap_or_else(|e| panic!("{e}"));
    let now = std::time::UNIX_EPOCH + Duration::from_secs(1_835_478_000); // 2028-02-29 23:00 UTC
    let (adm, pending) = auth
        .check_deferred(Some(&key), "orders", now)
        .unwrap_or_else(|e| panic!("{e}"));
    let pending = pending.unwrap_or_else(|| panic!("a shared quota is deferred"));
    assert_eq!(pending.key(), format!("p:quota:{}:*:month", rec.id));
    assert_eq!(pending.limit, 1);
    // The window is February 2028 (leap year): resets on 1 March.
    let ok = pending
        .resolve(adm.clone(), QuotaDecision::Granted { used: 1 })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ok.quota_remaining, Some(0));
    assert_eq!(
        ok.quota_reset_at,
        Some(std::time::UNIX_EPOCH + Duration::from_secs(1_835_481_600))
    );
    let refused = pending.resolve(adm, QuotaDecision::Exhausted).err();
    assert!(matches!(
        refused,
        Some(Rejection::QuotaExceeded { limit: 1, .. })
    ));
    // Without a round trip (`check`), a shared counter cannot count: refused, never admitted.
    assert!(matches!(
        auth.check(Some(&key), "orders", now),
        Err(Rejection::QuotaExceeded { .. })
    ));
}
