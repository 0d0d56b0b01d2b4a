//! Plan rate limits shared by two gateways through a real `redis-server` (feature `redis`), on
//! one fake clock: two `KeyAuth`s (two gateways) over two `RedisState`s with `SharedRates`.
//! Before a sync each admits from its own memory (the documented error bound), after a sync
//! the budget is shared, the long-run total converges to the plan's rate (far below what two
//! independent gateways admit), and usage views read the Redis quota counters.
//! Run: `cargo test -p palisade-keys --features redis --test redis_rate`.
#![cfg(feature = "redis")]

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::Server;
use palisade_guard::redis_state::{FailurePolicy, RedisState};
use palisade_guard::{FakeClock, SharedClock, Timestamp};
use palisade_keys::remote::{acquire, read_usage};
use palisade_keys::{
    KeyAuth, KeyStore, PlanSet, QuotaDecision, QuotaStore, Rejection, RemoteQuotas, SharedRates,
    SystemClock, UsagePlan,
};

fn plans(json: &str) -> PlanSet {
    let raw: Vec<UsagePlan> = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"));
    PlanSet::compile(&raw).unwrap_or_else(|e| panic!("{e}"))
}

fn state(url: &str, clock: &FakeClock) -> Arc<RedisState> {
    RedisState::new(
        url,
        "keys-rate-test",
        FailurePolicy::Open,
        Duration::from_millis(500),
        SharedClock::new(clock.clone()),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn gateway(store: &Arc<KeyStore>, plans: PlanSet, st: &Arc<RedisState>) -> KeyAuth {
    KeyAuth::with_shared_rates(
        store.clone(),
        plans,
        Arc::new(RemoteQuotas::new("keys-rate-test")),
        Arc::new(SharedRates(st.clone())),
        Arc::new(SystemClock),
    )
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn system_time(clock: &FakeClock) -> SystemTime {
    use palisade_guard::Clock as _;
    UNIX_EPOCH + Duration::from_nanos(clock.now().as_nanos())
}

/// Requests of `key` on `route` through `auth` at the clock's time: how many were admitted.
/// Every refusal must be the rate limit.
fn admitted(auth: &KeyAuth, key: &str, route: &str, n: usize, clock: &FakeClock) -> usize {
    (0..n)
        .filter(
            |_| match auth.check_deferred(Some(key), route, system_time(clock)) {
                Ok(_) => true,
                Err(Rejection::RateLimited { .. }) => false,
                Err(other) => panic!("unexpected refusal {other:?}"),
            },
        )
        .count()
}

/// A plan of 1 per minute, burst 10, on two gateways: the documented bound before a sync,
/// one shared budget after it, the excess charged, and a long-run total that follows the
/// plan's rate (half of what two independent gateways admit). A route override is its own
/// shared bucket; another key is untouched.
#[test]
fn shared_key_rate_error_bound_and_convergence() {
    let server = Server::start();
    let url = server.url();
    let rt = rt();
    let clock = FakeClock::new(Timestamp::from_secs(1_800_000_000));
    let (sa, sb) = (state(&url, &clock), state(&url, &clock));
    let json = r#"[{"name": "p", "rate": 0.0166666667, "burst": 10,
        "routes": {"search": {"rate": 1, "burst": 2}}}]"#;
    let store = Arc::new(KeyStore::in_memory());
    let a = gateway(&store, plans(json), &sa);
    let b = gateway(&store, plans(json), &sb);
    let (_, key) = a
        .create("k", "tests", "p", None)
        .unwrap_or_else(|e| panic!("{e}"));
    let (_, other) = a
        .create("o", "tests", "p", None)
        .unwrap_or_else(|e| panic!("{e}"));
    b.refresh();
    let sync =
        || assert!(rt.block_on(sa.sync()) && rt.block_on(sb.sync()) && rt.block_on(sa.sync()));

    // Before any sync each gateway admits from its own memory: one burst per other gateway
    // beyond the limit (the bound (N − 1) × (burst + rate × interval)).
    assert_eq!(admitted(&a, &key, "orders", 15, &clock), 10);
    assert_eq!(admitted(&b, &key, "orders", 15, &clock), 10);
    sync();
    assert_eq!(
        admitted(&a, &key, "orders", 5, &clock),
        0,
        "A sees B's usage"
    );
    assert_eq!(
        admitted(&b, &key, "orders", 5, &clock),
        0,
        "B sees A's usage"
    );
    // The 10 admitted beyond the limit are owed: 5 minutes later (5 cells) still nothing.
    clock.advance(Duration::from_secs(300));
    assert_eq!(
        admitted(&a, &key, "orders", 3, &clock) + admitted(&b, &key, "orders", 3, &clock),
        0,
        "the excess is charged to the shared bucket"
    );
    // Other keys and route overrides have their own buckets.
    assert_eq!(admitted(&a, &other, "orders", 12, &clock), 10);
    assert_eq!(admitted(&a, &key, "search", 3, &clock), 2);
    sync();
    // B has not used this bucket yet: its first request is admitted from memory (documented).
    assert_eq!(admitted(&b, &key, "search", 1, &clock), 1);
    sync();
    assert_eq!(
        admitted(&a, &key, "search", 1, &clock) + admitted(&b, &key, "search", 1, &clock),
        0,
        "route bucket shared"
    );

    // Convergence: one request per gateway per second and a sync each second, for an hour.
    // The plan allows one per minute; two independent gateways would admit 2 per minute.
    let mut total = 0;
    let mut second_half = 0;
    for s in 0..3600 {
        clock.advance(Duration::from_secs(1));
        let n = admitted(&a, &key, "orders", 1, &clock) + admitted(&b, &key, "orders", 1, &clock);
        total += n;
        if s >= 1800 {
            second_half += n;
        }
        sync();
    }
    // Since the start (3900 s): burst 10 + 65 cells = 75 allowed; admitted 20 at first and
    // `total` since. Bound: one burst + one interval's rate (rounded up) per other gateway.
    assert!(
        20 + total <= 75 + 10 + 1,
        "within the bound: {}",
        20 + total
    );
    // The last 30 minutes, saturated from both sides: the plan's 30 (± the staleness of one
    // sync), where two independent gateways would admit 60.
    assert!(
        (29..=32).contains(&second_half),
        "converges to the plan's rate: {second_half} in 30 min"
    );
}

/// Usage views read the counters held in Redis: after N admissions counted through one
/// gateway's script calls, another gateway's `usage_with_keys` + `read_usage` shows N.
#[test]
fn usage_reads_the_redis_counters() {
    let server = Server::start();
    let rt = rt();
    let json = r#"[{"name": "q", "quota": {"limit": 50, "period": "day"},
        "routes": {"export": {"quota": {"limit": 5, "period": "month"}}}}]"#;
    let store = Arc::new(KeyStore::in_memory());
    let quotas = || Arc::new(RemoteQuotas::new("keys-usage-test"));
    let a = KeyAuth::new(store.clone(), plans(json), quotas(), Arc::new(SystemClock));
    let b = KeyAuth::new(store.clone(), plans(json), quotas(), Arc::new(SystemClock));
    let (rec, key) = a
        .create("k", "tests", "q", None)
        .unwrap_or_else(|e| panic!("{e}"));
    b.refresh();
    let now = SystemTime::now();
    let mut conn = rt.block_on(async {
        redis::Client::open(server.url())
            .unwrap_or_else(|e| panic!("{e}"))
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    });
    for (i, route) in ["orders", "orders", "orders", "export"].iter().enumerate() {
        let (_, pending) = a
            .check_deferred(Some(&key), route, now)
            .unwrap_or_else(|e| panic!("{e}"));
        let pending = pending.unwrap_or_else(|| panic!("a shared quota is deferred"));
        let d = rt
            .block_on(acquire(&mut conn, &pending, i as u128))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(d, QuotaDecision::Granted { .. }));
    }
    let entries = b
        .usage_with_keys(&rec.id, now)
        .unwrap_or_else(|| panic!("known key"));
    assert!(entries.iter().all(|(u, k)| u.used == 0 && k.is_some()));
    let usage = rt
        .block_on(read_usage(&mut conn, entries))
        .unwrap_or_else(|e| panic!("{e}"));
    let got: Vec<(&str, u64, u64)> = usage
        .iter()
        .map(|u| (u.scope.as_str(), u.limit, u.used))
        .collect();
    assert_eq!(got, vec![("*", 50, 3), ("export", 5, 1)]);
    // A local quota store: no Redis key, the local count stays.
    let local = KeyAuth::new(
        store,
        plans(json),
        Arc::new(QuotaStore::in_memory()),
        Arc::new(SystemClock),
    );
    assert!(local.check(Some(&key), "orders", now).is_ok());
    let entries = local
        .usage_with_keys(&rec.id, now)
        .unwrap_or_else(|| panic!("known key"));
    assert!(entries.iter().all(|(_, k)| k.is_none()));
    let usage = rt
        .block_on(read_usage(&mut conn, entries))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(usage[0].used, 1);
}
