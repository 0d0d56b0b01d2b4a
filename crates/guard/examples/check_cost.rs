//! Runs `Guard::check` (100,000 CIDRs, per-IP and global limits) N times in one function, so
//! its instructions can be counted apart from the setup:
//!
//! ```text
//! cargo build --release -p palisade-guard --example check_cost
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*run_checks*' \
//!     target/release/examples/check_cost 100000 [lookup|limiter|guard]
//! ```
//! Instructions per check = the reported total / N.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;

use ipnet::{IpNet, Ipv4Net};
use palisade_guard::{
    CoarseClock, Guard, GuardConfig, LimitKey, Limiter, Rate, RateLimit, SharedClock,
};

#[inline(never)]
fn run_lookups(g: &Guard, ips: &[IpAddr], n: usize) -> usize {
    let lists = g.feeds().lists();
    let mut hits = 0;
    for i in 0..n {
        if lists.lookup(black_box(ips[i % ips.len()])).is_some() {
            hits += 1;
        }
    }
    hits
}

#[inline(never)]
fn run_limiter(l: &Limiter, ips: &[IpAddr], n: usize) -> usize {
    let mut ok = 0;
    let now = SharedClock::default().now();
    for i in 0..n {
        if l.check_at(LimitKey::Ip(black_box(ips[i % ips.len()])), now)
            .allowed
        {
            ok += 1;
        }
    }
    ok
}

#[inline(never)]
fn run_checks(g: &Guard, ips: &[IpAddr], n: usize) -> usize {
    let mut blocked = 0;
    for i in 0..n {
        let ip = ips[i % ips.len()];
        if g.check(black_box(ip), "r", g.now()).is_blocked() {
            blocked += 1;
        }
    }
    blocked
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let nz = |n| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let nets: Vec<IpNet> = (0..100_000)
        .filter_map(|_| {
            let r = rnd();
            let len = [24, 24, 24, 22, 20, 16, 24, 32][(r >> 40) as usize % 8];
            Ipv4Net::new(Ipv4Addr::from(r as u32), len)
                .ok()
                .map(IpNet::V4)
        })
        .collect();
    let mut cfg = GuardConfig::default();
    cfg.ip.deny = nets;
    cfg.throttle.per_ip = Some(Rate::per_second(nz(1_000_000), nz(1_000_000)));
    cfg.throttle.global = Some(Rate::per_second(nz(1_000_000_000), nz(1_000_000_000)));
    cfg.autoban = Some(Default::default());
    // The clock the gateway is meant to use on the request path (one atomic load).
    let clock = match CoarseClock::start(std::time::Duration::from_millis(1)) {
        Ok(c) => SharedClock::new(c),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let built = std::time::Instant::now();
    let g = match Guard::new(&cfg, [], clock) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    eprintln!(
        "built lists of {} prefixes ({} runs) in {:?}",
        g.feeds().lists().deny_len(),
        g.feeds().lists().runs(),
        built.elapsed()
    );
    let ips: Vec<IpAddr> = (0..4096)
        .map(|_| IpAddr::V4(Ipv4Addr::from(rnd() as u32)))
        .filter(|ip| g.feeds().lookup(*ip).is_none())
        .collect();
    // Warm the limiter with every address once.
    run_checks(&g, &ips, ips.len());
    let mode = std::env::args().nth(2).unwrap_or_else(|| "guard".into());
    let limiter = Limiter::keyed(
        Rate::per_second(nz(1_000_000), nz(1_000_000)),
        100_000,
        SharedClock::default(),
    );
    run_limiter(&limiter, &ips, ips.len());
    let t = std::time::Instant::now();
    let cpu0 = cpu_ns();
    let counted = match mode.as_str() {
        "lookup" => run_lookups(&g, &ips, n),
        "limiter" => run_limiter(&limiter, &ips, n),
        _ => run_checks(&g, &ips, n),
    };
    let cpu = cpu_ns().zip(cpu0).map(|(b, a)| b.saturating_sub(a));
    let el = t.elapsed();
    println!(
        "{mode:>7}: {n} checks ({counted} listed/allowed/blocked): {:.1} ns/check on CPU, {:.1} ns/check wall clock",
        cpu.map_or(f64::NAN, |c| c as f64 / n as f64),
        el.as_nanos() as f64 / n as f64
    );
}

/// Nanoseconds this thread spent on a CPU (Linux /proc/thread-self/schedstat), so a loaded
/// machine inflates the figure less than wall-clock time does.
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}
