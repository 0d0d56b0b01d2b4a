//! The `Guard` facade end to end: precedence of lists, bans and limiters, auto-ban from
//! throttling, persistence across a rebuild, and reconfiguration keeping state.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::Path;
use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use palisade_guard::{
    Action, AutoBanConfig, FakeClock, FeedConfig, FeedFormat, Guard, GuardConfig, Rate,
    SharedClock, ThrottleScope, Timestamp, Verdict,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}
fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

fn config(dir: &Path) -> GuardConfig {
    std::fs::write(
        dir.join("drop.txt"),
        "; Spamhaus DROP\n1.2.3.0/24 ; SBL1\n10.9.0.0/16 ; SBL2\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let yaml = format!(
        r#"
ip:
  allow: [10.9.9.0/24]
  deny: [203.0.113.0/24]
  feeds:
    - {{ name: spamhaus-drop, path: {}, format: spamhaus }}
  trusted_proxies: [127.0.0.1/32]
throttle:
  per_ip: {{ per_second: 1, burst: 2 }}
  global: {{ per_second: 1000, burst: 1000 }}
  max_keys: 1000
autoban: {{ threshold: 3, window_secs: 60, ban_secs: 600, state_file: {} }}
"#,
        dir.join("drop.txt").display(),
        dir.join("bans.json").display()
    );
    serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("{e}"))
}

fn setup() -> (tempfile::TempDir, FakeClock, Guard) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fake = FakeClock::new(Timestamp::from_secs(1_700_000_000));
    let g = Guard::new(
        &config(dir.path()),
        [("api", Rate::per_second(nz(1), nz(3)))],
        SharedClock::new(fake.clone()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    (dir, fake, g)
}

#[test]
fn lists_decide_first_with_their_keys() {
    let (_dir, _fake, g) = setup();
    let now = g.now();
    let d = g.check(ip("1.2.3.4"), "api", now);
    assert_eq!(d.to_string(), "deny:spamhaus-drop 1.2.3.0/24");
    assert_eq!(
        (d.status(), d.reason(), d.stage()),
        (Some(403), Some("ip_denied"), Some("ip_reputation"))
    );
    let d = g.check(ip("203.0.113.9"), "api", now);
    assert_eq!(d.to_string(), "deny:config-deny 203.0.113.0/24");
    // Allow wins over deny: 10.9.9.0/24 (allowed) lies inside the denied feed prefix 10.9.0.0/16.
    let d = g.check(ip("10.9.9.9"), "api", now);
    assert_eq!(d.to_string(), "allow:config-allow 10.9.9.0/24");
    assert!(d.short_circuits() && !d.is_blocked());
    assert_eq!(d.status(), None);
    let d = g.check(ip("10.9.8.8"), "api", now);
    assert_eq!(d.to_string(), "deny:spamhaus-drop 10.9.0.0/16");
    let d = g.check(ip("198.51.100.1"), "api", now);
    assert_eq!(d.verdict, Verdict::Pass);
    assert_eq!(d.to_string(), "pass");
    assert_eq!(
        d.rate_limit.map(|r| r.remaining),
        Some(1),
        "tightest: per-IP burst 2"
    );
}

#[test]
fn throttling_scopes_and_keys() {
    let (_dir, fake, g) = setup();
    let a = ip("198.51.100.1");
    assert!(!g.check(a, "other", g.now()).is_blocked());
    assert!(!g.check(a, "other", g.now()).is_blocked());
    let d = g.check(a, "other", g.now());
    assert_eq!(d.to_string(), "throttle:ip 198.51.100.1");
    assert_eq!(
        (d.status(), d.reason()),
        (Some(429), Some("rate_limited_ip"))
    );
    let rl = d.rate_limit.unwrap_or_else(|| panic!("rate info"));
    assert_eq!(rl.retry_after_secs(), Some(1));
    assert_eq!(rl.limit, 2);

    // The route limit (burst 3) across several addresses.
    fake.advance(Duration::from_secs(10));
    for i in 1..=3u8 {
        let d = g.check(IpAddr::from([192, 0, 2, i]), "api", g.now());
        assert!(!d.is_blocked(), "{d}");
    }
    let d = g.check(ip("192.0.2.4"), "api", g.now());
    assert_eq!(d.to_string(), "throttle:route api 192.0.2.4");
    assert_eq!(d.reason(), Some("rate_limited_route"));
    assert!(
        matches!(d.verdict, Verdict::Throttled { scope: ThrottleScope::Route(ref r), .. } if &**r == "api")
    );
}

#[test]
fn global_limit_applies_to_everyone() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut cfg = config(dir.path());
    cfg.throttle.per_ip = None;
    cfg.throttle.global = Some(Rate::per_minute(nz(2), nz(2)));
    let fake = FakeClock::new(Timestamp::from_secs(1_700_000_000));
    let g = Guard::new(&cfg, [], SharedClock::new(fake.clone())).unwrap_or_else(|e| panic!("{e}"));
    assert!(!g.check(ip("192.0.2.1"), "r", g.now()).is_blocked());
    assert!(!g.check(ip("192.0.2.2"), "r", g.now()).is_blocked());
    let d = g.check(ip("192.0.2.3"), "r", g.now());
    assert_eq!(d.to_string(), "throttle:global 192.0.2.3");
    assert_eq!(
        d.rate_limit.and_then(|r| r.retry_after),
        Some(Duration::from_secs(30))
    );
    fake.advance(Duration::from_secs(30));
    assert!(!g.check(ip("192.0.2.3"), "r", g.now()).is_blocked());
}

#[test]
fn repeated_throttling_bans_and_the_ban_survives_a_restart() {
    let (dir, fake, g) = setup();
    let a = ip("198.51.100.7");
    let mut bans = Vec::new();
    for _ in 0..5 {
        let d = g.check(a, "x", g.now());
        bans.extend(d.new_ban);
    }
    // Two allowed, then three throttled = three violations = one ban.
    assert_eq!(bans.len(), 1);
    assert_eq!(bans[0].reason, "auto: 3 violations in 60s");
    let d = g.check(a, "x", g.now());
    assert_eq!(d.to_string(), "ban 198.51.100.7");
    assert_eq!(d.reason(), Some("ip_banned"));
    fake.advance(Duration::from_secs(30));
    assert_eq!(g.persist_bans().ok(), Some(true));

    // A new process (same clock time) loads the ban.
    let g2 = Guard::new(&config(dir.path()), [], SharedClock::new(fake.clone()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(g2.check(a, "x", g2.now()).to_string(), "ban 198.51.100.7");
    // It expires after ban_secs.
    fake.advance(Duration::from_secs(571));
    assert_eq!(g2.check(a, "x", g2.now()).to_string(), "pass");

    // Manual ban and unban through the store (admin API).
    let store = g2.bans().unwrap_or_else(|| panic!("autoban configured"));
    store.ban(
        ip("192.0.2.50"),
        Duration::from_secs(60),
        "manual",
        g2.now(),
    );
    assert_eq!(
        g2.check(ip("192.0.2.50"), "x", g2.now()).to_string(),
        "ban 192.0.2.50"
    );
    assert!(store.unban(ip("192.0.2.50")));
    assert_eq!(
        g2.check(ip("192.0.2.50"), "x", g2.now()).to_string(),
        "pass"
    );
}

#[test]
fn waf_violations_count_but_allow_listed_addresses_are_never_banned() {
    let (_dir, _fake, g) = setup();
    let now = g.now();
    assert!(g.record_violation(ip("192.0.2.9"), now).is_none());
    assert!(g.record_violation(ip("192.0.2.9"), now).is_none());
    assert!(g.record_violation(ip("192.0.2.9"), now).is_some());
    for _ in 0..10 {
        assert!(g.record_violation(ip("10.9.9.1"), now).is_none());
    }
}

#[test]
fn allow_without_short_circuit_is_still_throttled_but_not_banned() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut cfg = config(dir.path());
    cfg.ip.allow_short_circuits = false;
    let fake = FakeClock::new(Timestamp::from_secs(1_700_000_000));
    let g = Guard::new(&cfg, [], SharedClock::new(fake)).unwrap_or_else(|e| panic!("{e}"));
    let a = ip("10.9.9.9");
    let d = g.check(a, "x", g.now());
    assert!(matches!(
        d.verdict,
        Verdict::Allowed {
            short_circuit: false,
            ..
        }
    ));
    assert!(!d.short_circuits());
    g.check(a, "x", g.now());
    for _ in 0..10 {
        let d = g.check(a, "x", g.now());
        assert_eq!(d.to_string(), "throttle:ip 10.9.9.9");
        assert!(d.new_ban.is_none());
    }
}

#[test]
fn reconfigure_keeps_bans_and_unchanged_limiter_state() {
    let (dir, _fake, g) = setup();
    let a = ip("198.51.100.1");
    g.check(a, "api", g.now());
    g.check(a, "api", g.now());
    assert!(g.check(a, "api", g.now()).is_blocked());
    if let Some(b) = g.bans() {
        b.ban(ip("192.0.2.77"), Duration::from_secs(60), "manual", g.now());
    }
    let mut cfg = config(dir.path());
    let g2 = g
        .reconfigure(&cfg, [("api", Rate::per_second(nz(1), nz(3)))])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        g2.check(a, "api", g2.now()).is_blocked(),
        "per-IP state kept"
    );
    assert_eq!(
        g2.check(ip("192.0.2.77"), "x", g2.now()).to_string(),
        "ban 192.0.2.77"
    );
    // A changed rate starts fresh; changed autoban settings keep the bans.
    cfg.throttle.per_ip = Some(Rate::per_second(nz(5), nz(5)));
    if let Some(ab) = cfg.autoban.as_mut() {
        ab.threshold = 9;
    }
    let g3 = g2.reconfigure(&cfg, []).unwrap_or_else(|e| panic!("{e}"));
    assert!(!g3.check(a, "api", g3.now()).is_blocked());
    assert_eq!(
        g3.check(ip("192.0.2.77"), "x", g3.now()).to_string(),
        "ban 192.0.2.77"
    );
}

#[test]
fn bad_feed_rejects_the_config_and_the_old_guard_keeps_serving() {
    let (dir, _fake, g) = setup();
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, "1.2.3.0/24\nnope\n").unwrap_or_else(|e| panic!("{e}"));
    let mut cfg = config(dir.path());
    cfg.ip.feeds.push(FeedConfig {
        name: "bad".into(),
        path: bad,
        format: FeedFormat::Plain,
        action: Action::Deny,
    });
    let e = g
        .reconfigure(&cfg, [])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.ends_with("bad.txt:2:1: invalid address or CIDR \"nope\" (expected e.g. 192.0.2.0/24, 2001:db8::/32 or 192.0.2.1)"), "{e}");
    assert_eq!(
        g.check(ip("1.2.3.4"), "x", g.now()).to_string(),
        "deny:spamhaus-drop 1.2.3.0/24"
    );
}

#[test]
fn client_ip_through_the_guard() {
    let (_dir, _fake, g) = setup();
    let mut h = HeaderMap::new();
    h.insert(
        "x-forwarded-for",
        HeaderValue::from_static("6.6.6.6, 1.2.3.4"),
    );
    assert_eq!(g.client_ip(ip("127.0.0.1"), &h), ip("1.2.3.4"));
    assert_eq!(
        g.client_ip(ip("192.0.2.1"), &h),
        ip("192.0.2.1"),
        "untrusted peer"
    );
    let client = g.client_ip(ip("127.0.0.1"), &h);
    assert_eq!(
        g.check(client, "x", g.now()).to_string(),
        "deny:spamhaus-drop 1.2.3.0/24"
    );
}

#[test]
fn no_autoban_configured() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut cfg = config(dir.path());
    cfg.autoban = None::<AutoBanConfig>;
    let g = Guard::new(&cfg, [], SharedClock::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(g.bans().is_none());
    assert!(g.record_violation(ip("192.0.2.1"), g.now()).is_none());
    assert_eq!(g.persist_bans().ok(), Some(false));
}

#[test]
fn guard_types_are_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Guard>();
    assert_send_sync::<palisade_guard::FeedSet>();
    assert_send_sync::<palisade_guard::ConnGuard>();
    assert_send_sync::<palisade_guard::ConnPermit>();
    assert_send_sync::<palisade_guard::GuardDecision>();
}
