//! Shared state through a real `redis-server` (feature `redis`): two limiter instances (two
//! gateways) share one budget, a ban made through one is enforced by the other after a sync,
//! violations add up across both, and a Redis outage follows the failure policy and recovers.
//! Run: `cargo test -p palisade-guard --features redis --test redis`.
#![cfg(feature = "redis")]

use std::net::{IpAddr, TcpListener, TcpStream};
use std::num::NonZeroU32;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use palisade_guard::redis_state::{FailurePolicy, RedisBans, RedisLimiter, RedisState};
use palisade_guard::{AutoBanConfig, BanStore, LimitKey, Rate, RateLimit, Timestamp};

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
fn state(url: &str, policy: FailurePolicy) -> std::sync::Arc<RedisState> {
    RedisState::new(url, "palisade-test", policy, Duration::from_millis(500), 2)
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn shared_limits_bans_and_failure_policy() {
    let mut server = Server::start();
    let url = server.url();
    let rate = Rate::per_minute(nz(1), nz(3));
    let a = RedisLimiter::new(state(&url, FailurePolicy::Open), "ip", rate);
    let b = RedisLimiter::new(state(&url, FailurePolicy::Open), "ip", rate);
    let client = LimitKey::Ip(ip("198.51.100.7"));

    // One budget of 3 across both gateways.
    let d1 = a.check(client);
    let d2 = b.check(client);
    let d3 = a.check(client);
    assert!(d1.allowed && d2.allowed && d3.allowed);
    assert_eq!((d1.remaining, d2.remaining, d3.remaining), (2, 1, 0));
    let d4 = b.check(client);
    assert!(!d4.allowed);
    let wait = d4.retry_after.unwrap_or_default();
    assert!(
        wait > Duration::from_secs(55) && wait <= Duration::from_secs(60),
        "{wait:?}"
    );
    assert!(
        a.check(LimitKey::Ip(ip("198.51.100.8"))).allowed,
        "other keys unaffected"
    );
    assert!(a.check(LimitKey::Str("key-1")).allowed);

    // Bans: made through one, enforced by the other after a sync; violations add up.
    let cfg = AutoBanConfig {
        threshold: 3,
        window_secs: 60,
        ban_secs: 600,
        ..AutoBanConfig::default()
    };
    let ba = RedisBans::new(state(&url, FailurePolicy::Open), &cfg);
    let bb = RedisBans::new(state(&url, FailurePolicy::Open), &cfg);
    let now = Timestamp::from_secs(1_700_000_000);
    ba.ban(ip("192.0.2.1"), Duration::from_secs(60), "manual", now);
    assert!(!bb.is_banned(ip("192.0.2.1"), now), "not yet synced");
    assert!(bb.sync(now));
    assert!(bb.is_banned(ip("192.0.2.1"), now));
    assert_eq!(bb.list(now).len(), 1);
    assert!(bb.unban(ip("192.0.2.1")));
    assert!(ba.sync(now));
    assert!(!ba.is_banned(ip("192.0.2.1"), now));

    let v = ip("192.0.2.9");
    assert!(ba.record_violation(v, now).is_none());
    assert!(bb
        .record_violation(v, now.saturating_add(Duration::from_secs(1)))
        .is_none());
    let ban = ba.record_violation(v, now.saturating_add(Duration::from_secs(2)));
    assert_eq!(
        ban.map(|b| b.reason),
        Some("auto: 3 violations in 60s".to_string())
    );
    assert!(bb.sync(now.saturating_add(Duration::from_secs(3))));
    assert!(bb.is_banned(v, now.saturating_add(Duration::from_secs(3))));
    // Expired bans vanish on sync.
    assert!(bb.sync(now.saturating_add(Duration::from_secs(1000))));
    assert!(bb
        .list(now.saturating_add(Duration::from_secs(1000)))
        .is_empty());

    // Outage: open lets through, closed refuses, both count errors.
    let open_state = state(&url, FailurePolicy::Open);
    let open = RedisLimiter::new(open_state.clone(), "ip", rate);
    let closed_state = state(&url, FailurePolicy::Closed);
    let closed = RedisLimiter::new(closed_state.clone(), "ip", rate);
    let port = server.port;
    server.stop();
    assert!(open.check(client).allowed);
    assert!(!closed.check(client).allowed);
    assert!(open_state.errors() >= 1 && closed_state.errors() >= 1);
    assert!(!ba.sync(now), "sync fails while Redis is down");
    assert!(
        ba.is_banned(v, now.saturating_add(Duration::from_secs(3))),
        "local copy kept"
    );

    // Recovery: a fresh server on the same port (empty state), connections reopen.
    let _server2 = Server::start_on(port);
    let before = closed_state.errors();
    assert!(closed.check(client).allowed, "recovered, fresh budget");
    assert_eq!(closed_state.errors(), before);
}
