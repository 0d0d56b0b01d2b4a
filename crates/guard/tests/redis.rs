//! Shared state through a real `redis-server` (feature `redis`): two backends (two gateways)
//! on one Redis and one fake clock. Limits: local pre-admission within the documented error
//! bound, then one shared budget after a sync; bans made or lifted through one are enforced by
//! the other after a sync; violations add up across both; an outage is counted, answered from
//! memory per the failure policy, and recovered from.
//! Run: `cargo test -p palisade-guard --features redis --test redis`.
#![cfg(feature = "redis")]

use std::net::{IpAddr, TcpListener, TcpStream};
use std::num::NonZeroU32;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use std::sync::Arc;

use palisade_guard::redis_state::{FailurePolicy, RedisBackend, RedisState, RECONNECT_BACKOFF};
use palisade_guard::{
    AutoBanConfig, Clock, FakeClock, LimitKey, Rate, RateLimit, SharedClock, StateBackend,
    Timestamp,
};

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start_on(port: u16) -> Server {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("redis-server: {e}"));
        // Owned first, so a failed start is still killed and reaped (by Drop).
        let server = Server { child, port };
        // Wait for the process to accept connections (process start-up, not a time window).
        for _ in 0..500 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server did not start on {port}");
    }

    fn start() -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"));
        Self::start_on(port)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}
fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}
fn state(url: &str, policy: FailurePolicy, clock: &FakeClock) -> Arc<RedisState> {
    RedisState::new(
        url,
        "palisade-test",
        policy,
        Duration::from_millis(500),
        SharedClock::new(clock.clone()),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}
fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}
fn now_clock() -> FakeClock {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(1_700_000_000);
    FakeClock::new(Timestamp::from_secs(secs))
}

/// Two gateways (two states, two limiters) on one Redis, judged by one fake clock: before a
/// sync each admits from its own memory (the documented error bound: one burst plus one
/// interval's rate per other gateway); after both synced, the shared budget holds, the excess
/// is charged (the long-run total converges to the limit), and time refills it.
#[test]
fn shared_limit_error_bound_and_convergence() {
    let server = Server::start();
    let url = server.url();
    let rt = rt();
    let clock = now_clock();
    let sa = state(&url, FailurePolicy::Open, &clock);
    let sb = state(&url, FailurePolicy::Open, &clock);
    let (ba, bb) = (RedisBackend(sa.clone()), RedisBackend(sb.clone()));
    // 10 per second, burst 10; per IP.
    let rate = Rate::per_second(nz(10), nz(10));
    let a = ba.limiter("ip", rate, true, 1000);
    let b = bb.limiter("ip", rate, true, 1000);
    let client = LimitKey::Ip(ip("198.51.100.7"));
    let admitted =
        |l: &Arc<dyn RateLimit>, n: usize| (0..n).filter(|_| l.check(client).allowed).count();

    // Before any sync: each gateway admits its own burst (bound: one burst per other gateway).
    assert_eq!(admitted(&a, 15), 10);
    assert_eq!(admitted(&b, 15), 10);
    assert!(rt.block_on(sa.sync()) && rt.block_on(sb.sync()));
    // A pulls again (it pushed before B): both now see 20 admissions on a budget of 10.
    assert!(rt.block_on(sa.sync()));
    assert_eq!(admitted(&a, 5), 0, "A sees B's usage");
    assert_eq!(admitted(&b, 5), 0, "B sees A's usage");
    // The excess is owed: after 1 s (10 more tokens) the shared TAT is still ahead.
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        admitted(&a, 5) + admitted(&b, 5),
        0,
        "the 10 admitted beyond the limit are charged"
    );
    // After 2 s more, the bucket refills: 10 + 20 per second × 2 s … at most a burst again.
    clock.advance(Duration::from_secs(2));
    let mut total = 0;
    for _ in 0..3 {
        total += admitted(&a, 10) + admitted(&b, 10);
        assert!(rt.block_on(sa.sync()) && rt.block_on(sb.sync()) && rt.block_on(sa.sync()));
    }
    // Over the 3 s since the start: the limit allows 10 (burst) + 30 (rate); admitted 20 before
    // and `total` now. With one sync interval of staleness, the bound is one burst extra.
    assert!(total >= 10, "refilled: {total}");
    assert!(
        20 + total <= 10 + 30 + 10,
        "within the bound: {}",
        20 + total
    );
    // Other keys are untouched, unkeyed limits are one bucket for everyone.
    assert!(a.check(LimitKey::Ip(ip("198.51.100.8"))).allowed);
    let ga = ba.limiter("global", rate, false, 1);
    let gb = bb.limiter("global", rate, false, 1);
    assert_eq!(admitted(&ga, 6), 6);
    assert!(rt.block_on(sa.sync()));
    assert_eq!(admitted(&gb, 10), 10, "B has not synced: local burst");
    assert!(rt.block_on(sb.sync()));
    assert!(
        !gb.check(LimitKey::Ip(ip("192.0.2.1"))).allowed,
        "16 of 10: refused"
    );
}

#[test]
fn bans_are_shared_and_violations_add_up() {
    let server = Server::start();
    let url = server.url();
    let rt = rt();
    let clock = now_clock();
    let sa = state(&url, FailurePolicy::Open, &clock);
    let sb = state(&url, FailurePolicy::Open, &clock);
    let cfg = AutoBanConfig {
        threshold: 3,
        window_secs: 60,
        ban_secs: 600,
        ..AutoBanConfig::default()
    };
    let ba = RedisBackend(sa.clone()).bans(&cfg);
    let bb = RedisBackend(sb.clone()).bans(&cfg);
    let now = clock.now();
    // A manual ban through A: enforced by A at once, by B after A pushed and B pulled.
    ba.ban(ip("192.0.2.1"), Duration::from_secs(60), "manual", now);
    assert!(ba.is_banned(ip("192.0.2.1"), now));
    assert!(!bb.is_banned(ip("192.0.2.1"), now), "not yet synced");
    assert!(rt.block_on(sa.sync()) && rt.block_on(sb.sync()));
    assert!(bb.is_banned(ip("192.0.2.1"), now));
    assert_eq!(bb.list(now).len(), 1);
    // Lifted through B: gone from A after the syncs.
    assert!(bb.unban(ip("192.0.2.1")));
    assert!(rt.block_on(sb.sync()) && rt.block_on(sa.sync()));
    assert!(!ba.is_banned(ip("192.0.2.1"), now));

    // Two violations through A and one through B: three in the window, banned everywhere.
    let v = ip("192.0.2.9");
    assert!(ba.record_violation(v, now).is_none());
    assert!(ba.record_violation(v, now).is_none());
    assert!(bb.record_violation(v, now).is_none());
    assert!(!ba.is_banned(v, now) && !bb.is_banned(v, now));
    assert!(rt.block_on(sa.sync()) && rt.block_on(sb.sync()) && rt.block_on(sa.sync()));
    assert!(ba.is_banned(v, now) && bb.is_banned(v, now));
    assert_eq!(
        bb.get(v, now).map(|b| b.reason),
        Some("auto: 3 violations in 60s".to_string())
    );
    // Expired bans vanish on sync.
    clock.advance(Duration::from_secs(1000));
    let later = clock.now();
    assert!(rt.block_on(sb.sync()));
    assert!(bb.list(later).is_empty());
}

#[test]
fn outage_is_counted_local_answers_continue_and_service_recovers() {
    let mut server = Server::start();
    let url = server.url();
    let rt = rt();
    let clock = now_clock();
    let open = state(&url, FailurePolicy::Open, &clock);
    let closed = state(&url, FailurePolicy::Closed, &clock);
    let rate = Rate::per_second(nz(10), nz(10));
    let l = RedisBackend(open.clone()).limiter("ip", rate, true, 100);
    let lc = RedisBackend(closed.clone()).limiter("ip", rate, true, 100);
    let client = LimitKey::Ip(ip("198.51.100.7"));
    assert!(l.check(client).allowed && lc.check(client).allowed);
    assert!(rt.block_on(open.sync()) && rt.block_on(closed.sync()));
    assert!(open.is_up() && !closed.refuses());

    server.stop();
    assert!(!rt.block_on(open.sync()), "sync fails while Redis is down");
    assert!(!rt.block_on(closed.sync()));
    assert!(!open.is_up() && open.errors() >= 1);
    assert!(!open.refuses(), "open: serve");
    assert!(closed.refuses(), "closed: refuse");
    // Local answers go on, and what was admitted meanwhile is kept for the next sync.
    assert!(l.check(client).allowed);

    // Recovery: a fresh server on the same port (empty state); the connection is reopened
    // (after the reconnect backoff: a real-time wait for a real reconnect, bounded).
    let _server2 = Server::start_on(server.port);
    let mut recovered = false;
    for _ in 0..50 {
        if rt.block_on(closed.sync()) && rt.block_on(open.sync()) {
            recovered = true;
            break;
        }
        std::thread::sleep(RECONNECT_BACKOFF / 4);
    }
    assert!(recovered, "reconnected");
    assert!(open.is_up() && !closed.refuses());
}
