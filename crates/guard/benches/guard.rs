//! Per-request cost of the guard: IP list lookup with 100,000 CIDRs loaded, the per-IP limiter,
//! and `Guard::check` as the gateway calls it (lists + per-IP + global limiter).
//! Run: `cargo bench -p palisade-guard --bench guard`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;

use criterion::{criterion_group, criterion_main, Criterion};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use palisade_guard::{
    Action, CoarseClock, Guard, GuardConfig, IpListsBuilder, LimitKey, Limiter, Rate, RateLimit,
    SharedClock, SystemClock,
};

/// Deterministic xorshift so runs are comparable.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// 100,000 prefixes shaped like real feeds: mostly /24s and /16–/22s, 10% IPv6 /32–/48.
fn cidrs(n: usize) -> Vec<IpNet> {
    let mut r = Rng(0x2545_F491_4F6C_DD1D);
    (0..n)
        .filter_map(|i| {
            let x = r.next();
            if i % 10 == 9 {
                let len = 32 + (x % 17) as u8;
                Ipv6Net::new(Ipv6Addr::from(u128::from(x) << 64 | 0x2000 << 112), len)
                    .ok()
                    .map(|n| IpNet::V6(n.trunc()))
            } else {
                let len = [24, 24, 24, 22, 20, 16, 24, 32][(x >> 40) as usize % 8];
                Ipv4Net::new(Ipv4Addr::from(x as u32), len)
                    .ok()
                    .map(|n| IpNet::V4(n.trunc()))
            }
        })
        .collect()
}

fn addrs(n: usize) -> Vec<IpAddr> {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    (0..n)
        .map(|_| IpAddr::V4(Ipv4Addr::from(r.next() as u32)))
        .collect()
}

fn limiter_now() -> palisade_guard::Timestamp {
    SharedClock::default().now()
}

fn bench(c: &mut Criterion) {
    let nz = |n| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
    let nets = cidrs(100_000);
    let ips = addrs(4096);

    let mut b = IpListsBuilder::new();
    let name = "feed".into();
    b.extend(&name, Action::Deny, nets.iter().copied());
    let lists = b.build();
    let hits = ips.iter().filter(|ip| lists.lookup(**ip).is_some()).count();
    eprintln!(
        "100k CIDRs: {} runs, {hits}/{} sample addresses listed",
        lists.runs(),
        ips.len()
    );

    let mut i = 0usize;
    c.bench_function("lists_lookup_100k", |bch| {
        bch.iter(|| {
            i = (i + 1) & 4095;
            black_box(lists.lookup(black_box(ips[i])))
        })
    });

    let limiter = Limiter::keyed(
        Rate::per_second(nz(1_000_000), nz(1_000_000)),
        100_000,
        SharedClock::default(),
    );
    let now = limiter_now();
    c.bench_function("per_ip_limiter_check", |bch| {
        bch.iter(|| {
            i = (i + 1) & 4095;
            black_box(limiter.check_at(LimitKey::Ip(black_box(ips[i])), now))
        })
    });

    // The figure the budget is about: Guard::check with 100k CIDRs, per-IP and global limits.
    let mut cfg = GuardConfig::default();
    cfg.ip.deny = nets.clone();
    cfg.throttle.per_ip = Some(Rate::per_second(nz(1_000_000), nz(1_000_000)));
    cfg.throttle.global = Some(Rate::per_second(nz(1_000_000_000), nz(1_000_000_000)));
    cfg.autoban = Some(Default::default());
    // The gateway's request-path clock, read once per request (`Guard::now`): the system clock.
    // What one read costs, against the coarse clock's atomic load (whose thread wakes every
    // millisecond instead):
    let system = SharedClock::new(SystemClock::new());
    c.bench_function("clock_read_system", |bch| {
        bch.iter(|| black_box(system.now()))
    });
    let coarse = SharedClock::new(
        CoarseClock::start(std::time::Duration::from_millis(1)).unwrap_or_else(|e| panic!("{e}")),
    );
    c.bench_function("clock_read_coarse", |bch| {
        bch.iter(|| black_box(coarse.now()))
    });
    let g = Guard::new(&cfg, [], system).unwrap_or_else(|e| panic!("{e}"));
    let clean: Vec<IpAddr> = ips
        .iter()
        .copied()
        .filter(|ip| g.feeds().lookup(*ip).is_none())
        .collect();
    let n = clean.len();
    c.bench_function("guard_check_100k_cidrs_ip_and_global_limits", |bch| {
        bch.iter(|| {
            i = (i + 1) % n;
            black_box(g.check(black_box(clean[i]), "r", g.now()))
        })
    });

    // Worst case for the limiter: every request from a new address (spray, eviction path).
    let spray = Limiter::keyed(
        Rate::per_second(nz(10), nz(10)),
        10_000,
        SharedClock::default(),
    );
    let mut k: u32 = 0;
    let now = limiter_now();
    c.bench_function("per_ip_limiter_spray_new_key_each_time", |bch| {
        bch.iter(|| {
            k = k.wrapping_add(1);
            black_box(spray.check_at(LimitKey::Ip(IpAddr::V4(k.into())), now))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
