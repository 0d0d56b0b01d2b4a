//! The request path does not allocate on the allow path: a counting global allocator checks
//! `Guard::check` (pass and allow-list hits), `IpLists::lookup` and `client_ip`.
//! (One test per file, so no other thread allocates while counting.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::{HeaderMap, HeaderValue};
use palisade_guard::{FakeClock, Guard, GuardConfig, Rate, SharedClock, Timestamp, Verdict};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn allow_path_does_not_allocate() {
    let nz = |n| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
    let mut cfg = GuardConfig::default();
    cfg.ip.allow = vec!["10.0.0.0/8".parse().unwrap_or_else(|e| panic!("{e}"))];
    cfg.ip.deny = vec!["192.0.2.0/24".parse().unwrap_or_else(|e| panic!("{e}"))];
    cfg.ip.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap_or_else(|e| panic!("{e}"))];
    cfg.throttle.per_ip = Some(Rate::per_second(nz(1000), nz(1000)));
    cfg.throttle.global = Some(Rate::per_second(nz(100_000), nz(100_000)));
    cfg.autoban = Some(Default::default());
    let fake = FakeClock::new(Timestamp::from_secs(1_700_000_000));
    let g = Guard::new(
        &cfg,
        [("api", Rate::per_second(nz(1000), nz(1000)))],
        SharedClock::new(fake),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut h = HeaderMap::new();
    h.insert(
        "x-forwarded-for",
        HeaderValue::from_static("198.51.100.7, 127.0.0.1"),
    );
    let client = ip("198.51.100.7");
    let allowed = ip("10.1.2.3");
    // Warm up: the first request from a key inserts it into the limiter map.
    let _ = g.check(client, "api", g.now());

    let before = ALLOCS.load(Ordering::SeqCst);
    for _ in 0..100 {
        let c = g.client_ip(ip("127.0.0.1"), &h);
        let d = g.check(c, "api", g.now());
        assert_eq!(d.verdict, Verdict::Pass);
        let d = g.check(allowed, "api", g.now());
        assert!(d.short_circuits());
        assert!(g.feeds().lookup(client).is_none());
    }
    let after = ALLOCS.load(Ordering::SeqCst);
    assert_eq!(after - before, 0, "allocations on the allow path");

    // Sanity: the counter works (a denial builds no strings either, but a Vec does allocate).
    let v: Vec<u8> = Vec::with_capacity(16);
    assert!(ALLOCS.load(Ordering::SeqCst) > after);
    drop(v);
}
