//! Memory stays bounded under an address-spraying attack: a million distinct keys through the
//! per-IP limiter (via the `Guard`) and through a string-keyed limiter (API keys) never hold
//! more entries than the cap, and resident memory stops growing once the cap is reached.
//! (One test per file: RSS is per process, so nothing else runs beside it.)

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;

use palisade_guard::{
    FakeClock, Guard, GuardConfig, LimitKey, Limiter, Rate, RateLimit, SharedClock, Timestamp,
};

/// Resident set size in bytes, from /proc/self/statm (Linux).
fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[test]
fn a_million_sprayed_keys_stay_within_the_cap() {
    const CAP: usize = 10_000;
    const KEYS: u32 = 1_000_000;
    let nz = |n| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
    let fake = FakeClock::new(Timestamp::from_secs(1_700_000_000));
    let clock = SharedClock::new(fake.clone());
    let mut cfg = GuardConfig::default();
    cfg.throttle.per_ip = Some(Rate::per_minute(nz(1), nz(1)));
    cfg.throttle.max_keys = CAP;
    let g = Guard::new(&cfg, [], clock.clone()).unwrap_or_else(|e| panic!("{e}"));
    let api = Limiter::keyed(Rate::per_minute(nz(1), nz(1)), CAP, clock);

    let mut key = String::with_capacity(32);
    let mut rss_at_cap = None;
    let mut max_entries = 0;
    for i in 0..KEYS {
        // Alternate IPv4 and IPv6 sources; every one is new.
        let ip = if i % 2 == 0 {
            IpAddr::V4(i.into())
        } else {
            IpAddr::V6(Ipv6Addr::from(u128::from(i) << 64 | 0x2001_0db8))
        };
        let d = g.check(ip, "r", g.now());
        assert!(!d.is_blocked(), "a new key always has its burst");
        key.clear();
        use std::fmt::Write;
        let _ = write!(key, "apikey-{i}");
        assert!(api.check(LimitKey::Str(&key)).allowed);
        if i % 1000 == 0 {
            max_entries = max_entries.max(g.limiter_keys()).max(api.len());
            assert!(
                g.limiter_keys() <= CAP,
                "per-IP entries {} > cap",
                g.limiter_keys()
            );
            assert!(api.len() <= CAP, "API-key entries {} > cap", api.len());
        }
        if i == 100_000 {
            rss_at_cap = rss_bytes();
        }
    }
    assert!(
        max_entries >= CAP / 2,
        "the cap was actually reached: {max_entries}"
    );
    if let (Some(before), Some(after)) = (rss_at_cap, rss_bytes()) {
        let growth = after.saturating_sub(before);
        eprintln!(
            "rss at 100k keys: {} KiB, after 1M: {} KiB, growth {} KiB",
            before / 1024,
            after / 1024,
            growth / 1024
        );
        assert!(
            growth < 8 * 1024 * 1024,
            "RSS grew by {growth} bytes after the cap"
        );
    }
    // Nothing was throttled, so after the window everything is information-free and a sweep
    // empties the limiter.
    fake.advance(std::time::Duration::from_secs(120));
    g.sweep();
    api.sweep();
    assert_eq!(g.limiter_keys(), 0);
    assert_eq!(api.len(), 0);
}
