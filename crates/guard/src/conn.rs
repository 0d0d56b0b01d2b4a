//! Connection guards: a per-IP cap on concurrent connections ([`ConnGuard`], RAII
//! [`ConnPermit`]), a minimum body rate ([`BodyRate`]) and request header caps
//! ([`check_headers`]). Read timeouts are plain config values the gateway applies.
//!
//! Memory: the connection counter holds one entry per address with at least one open
//! connection, removed when its last permit drops, so it is bounded by the number of open
//! sockets (itself bounded by the process's file-descriptor limit).

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use parking_lot::Mutex;

use crate::config::ConnectionConfig;
use crate::lists::canonical_ip;
use crate::time::{duration_nanos, Timestamp};

const SHARDS: usize = 16;

#[derive(Debug)]
struct ConnInner {
    max_per_ip: AtomicU32,
    shards: [Mutex<HashMap<IpAddr, u32>>; SHARDS],
    hasher: RandomState,
}

impl ConnInner {
    fn shard(&self, ip: &IpAddr) -> &Mutex<HashMap<IpAddr, u32>> {
        let i = (self.hasher.hash_one(ip) as usize) % SHARDS;
        &self.shards[i]
    }
}

/// Per-IP concurrent connection counter with a cap. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct ConnGuard {
    inner: Arc<ConnInner>,
}

/// Held for the life of one connection; releases its slot when dropped.
#[must_use = "the connection slot is released when the permit is dropped"]
pub struct ConnPermit {
    inner: Option<Arc<ConnInner>>,
    ip: IpAddr,
}

impl fmt::Debug for ConnPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnPermit").field("ip", &self.ip).finish()
    }
}

impl ConnPermit {
    /// The address this permit counts against.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }
}

impl ConnGuard {
    /// A counter allowing `max_per_ip` concurrent connections per address (0 = unlimited).
    pub fn new(max_per_ip: u32) -> Self {
        ConnGuard {
            inner: Arc::new(ConnInner {
                max_per_ip: AtomicU32::new(max_per_ip),
                shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
                hasher: RandomState::new(),
            }),
        }
    }

    /// Changes the cap (config reload); open connections keep their permits.
    pub fn set_max_per_ip(&self, max_per_ip: u32) {
        self.inner.max_per_ip.store(max_per_ip, Ordering::Release);
    }

    /// A permit for one more connection from `ip`, or `None` if it is at the cap (answer by
    /// closing the connection, or 429 with `too_many_connections`).
    pub fn try_acquire(&self, ip: IpAddr) -> Option<ConnPermit> {
        let ip = canonical_ip(ip);
        let max = self.inner.max_per_ip.load(Ordering::Acquire);
        if max == 0 {
            return Some(ConnPermit { inner: None, ip });
        }
        let mut m = self.inner.shard(&ip).lock();
        let n = m.entry(ip).or_insert(0);
        if *n >= max {
            if *n == 0 {
                m.remove(&ip);
            }
            return None;
        }
        *n += 1;
        Some(ConnPermit {
            inner: Some(Arc::clone(&self.inner)),
            ip,
        })
    }

    /// Open connections counted for `ip`.
    pub fn count(&self, ip: IpAddr) -> u32 {
        let ip = canonical_ip(ip);
        self.inner.shard(&ip).lock().get(&ip).copied().unwrap_or(0)
    }

    /// Addresses with at least one counted connection.
    pub fn tracked(&self) -> usize {
        self.inner.shards.iter().map(|s| s.lock().len()).sum()
    }
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        if let Some(inner) = &self.inner {
            let mut m = inner.shard(&self.ip).lock();
            if let Some(n) = m.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    m.remove(&self.ip);
                }
            }
        }
    }
}

/// Tracks one request body's arrival and tells whether it is slower than a minimum average
/// rate once a grace period has passed (slow-POST / R.U.D.Y. protection).
///
/// The rule: after `grace`, the bytes received since `start` must be at least
/// `min_bps × elapsed`. A rate of 0 disables the check.
#[derive(Debug, Clone, Copy)]
pub struct BodyRate {
    start: Timestamp,
    grace: Duration,
    min_bps: u64,
    bytes: u64,
}

impl BodyRate {
    /// Starts tracking at `start` (when the headers were complete).
    pub fn new(min_bps: u64, grace: Duration, start: Timestamp) -> Self {
        BodyRate {
            start,
            grace,
            min_bps,
            bytes: 0,
        }
    }

    /// From the connection config.
    pub fn from_config(cfg: &ConnectionConfig, start: Timestamp) -> Self {
        Self::new(
            cfg.min_body_rate_bps,
            Duration::from_millis(cfg.body_rate_grace_ms),
            start,
        )
    }

    /// Counts `n` more body bytes.
    #[inline]
    pub fn record(&mut self, n: usize) {
        self.bytes = self.bytes.saturating_add(n as u64);
    }

    /// Body bytes counted so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether the body is arriving too slowly at `now`.
    pub fn is_too_slow(&self, now: Timestamp) -> bool {
        if self.min_bps == 0 {
            return false;
        }
        let elapsed = now.saturating_duration_since(self.start);
        if elapsed <= self.grace {
            return false;
        }
        // bytes < min_bps × elapsed_s  ⇔  bytes × 1e9 < min_bps × elapsed_ns (in u128).
        u128::from(self.bytes) * 1_000_000_000 < u128::from(self.min_bps) * elapsed.as_nanos()
    }

    /// The instant at which the body becomes too slow unless more bytes arrive: use it as the
    /// deadline of the next read. `None` when the check is disabled.
    pub fn deadline(&self) -> Option<Timestamp> {
        if self.min_bps == 0 {
            return None;
        }
        let allowed_ns = u128::from(self.bytes) * 1_000_000_000 / u128::from(self.min_bps);
        let allowed = u64::try_from(allowed_ns).unwrap_or(u64::MAX);
        let grace = duration_nanos(self.grace);
        Some(Timestamp::from_nanos(
            self.start.as_nanos().saturating_add(allowed.max(grace)),
        ))
    }
}

/// A request header cap that was exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderViolation {
    /// More header fields than `max_header_count`.
    TooMany {
        /// Fields received.
        count: usize,
        /// The cap.
        max: usize,
    },
    /// Header names and values larger than `max_header_bytes` in total.
    TooLarge {
        /// Bytes counted (name + value + 4 per field, as on the wire).
        bytes: usize,
        /// The cap.
        max: usize,
    },
}

impl fmt::Display for HeaderViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderViolation::TooMany { count, max } => {
                write!(f, "{count} request header fields (at most {max} allowed)")
            }
            HeaderViolation::TooLarge { bytes, max } => {
                write!(
                    f,
                    "{bytes} bytes of request headers (at most {max} allowed)"
                )
            }
        }
    }
}

/// Checks the header count and total size caps (answer 431 on a violation).
pub fn check_headers(headers: &HeaderMap, cfg: &ConnectionConfig) -> Result<(), HeaderViolation> {
    let bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    check_header_totals(headers.len(), bytes, cfg)
}

/// [`check_headers`] on totals already counted: `count` fields, `bytes` the sum of each name's
/// and value's length plus 4 per field (the gateway counts them in its one pass over the head).
pub fn check_header_totals(
    count: usize,
    bytes: usize,
    cfg: &ConnectionConfig,
) -> Result<(), HeaderViolation> {
    if count > cfg.max_header_count {
        return Err(HeaderViolation::TooMany {
            count,
            max: cfg.max_header_count,
        });
    }
    if bytes > cfg.max_header_bytes {
        return Err(HeaderViolation::TooLarge {
            bytes,
            max: cfg.max_header_bytes,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn per_ip_cap_and_release_on_drop() {
        let g = ConnGuard::new(2);
        let a = ip("198.51.100.7");
        let p1 = g.try_acquire(a);
        let p2 = g.try_acquire(ip("::ffff:198.51.100.7"));
        assert!(p1.is_some() && p2.is_some());
        assert!(g.try_acquire(a).is_none(), "third connection refused");
        assert!(
            g.try_acquire(ip("198.51.100.8")).is_some(),
            "other IPs unaffected"
        );
        assert_eq!(g.count(a), 2);
        drop(p1);
        assert_eq!(g.count(a), 1);
        let p3 = g.try_acquire(a);
        assert!(p3.is_some());
        drop(p2);
        drop(p3);
        assert_eq!(g.count(a), 0);
        assert_eq!(g.tracked(), 0, "entries are removed with the last permit");
    }

    #[test]
    fn unlimited_and_reconfigured_caps() {
        let g = ConnGuard::new(0);
        let permits: Vec<_> = (0..1000)
            .filter_map(|_| g.try_acquire(ip("10.0.0.1")))
            .collect();
        assert_eq!(permits.len(), 1000);
        assert_eq!(g.tracked(), 0, "unlimited: nothing tracked");
        g.set_max_per_ip(1);
        let p = g.try_acquire(ip("10.0.0.1"));
        assert!(p.is_some());
        assert!(g.try_acquire(ip("10.0.0.1")).is_none());
    }

    #[test]
    fn counter_memory_follows_open_connections() {
        let g = ConnGuard::new(4);
        let mut held = Vec::new();
        for i in 0..10_000u32 {
            held.push(g.try_acquire(IpAddr::V4(i.into())));
            if held.len() > 100 {
                held.remove(0);
            }
        }
        assert_eq!(g.tracked(), 100);
        held.clear();
        assert_eq!(g.tracked(), 0);
    }

    #[test]
    fn body_rate_after_grace() {
        let t0 = Timestamp::from_secs(1000);
        let s = |x: u64| t0.saturating_add(Duration::from_millis(x));
        let mut r = BodyRate::new(100, Duration::from_secs(2), t0);
        assert!(!r.is_too_slow(s(2000)), "within grace");
        assert!(r.is_too_slow(s(2001)), "nothing after grace");
        r.record(300);
        assert!(!r.is_too_slow(s(3000)), "300 B in 3 s = 100 B/s");
        assert!(r.is_too_slow(s(3001)));
        assert_eq!(r.deadline(), Some(s(3000)));
        let fresh = BodyRate::new(100, Duration::from_secs(2), t0);
        assert_eq!(fresh.deadline(), Some(s(2000)), "grace is the floor");
        let off = BodyRate::new(0, Duration::ZERO, t0);
        assert!(!off.is_too_slow(s(1_000_000)));
        assert_eq!(off.deadline(), None);
    }

    #[test]
    fn header_caps() {
        let cfg = ConnectionConfig {
            max_header_count: 3,
            max_header_bytes: 40,
            ..ConnectionConfig::default()
        };
        let mut h = HeaderMap::new();
        h.append("host", HeaderValue::from_static("example.com"));
        h.append("a", HeaderValue::from_static("1"));
        assert_eq!(check_headers(&h, &cfg), Ok(()));
        h.append("a", HeaderValue::from_static("2"));
        h.append("b", HeaderValue::from_static("3"));
        assert_eq!(
            check_headers(&h, &cfg).map_err(|e| e.to_string()),
            Err("4 request header fields (at most 3 allowed)".to_string())
        );
        let mut big = HeaderMap::new();
        big.append(
            "x-big",
            HeaderValue::from_static("0123456789012345678901234567890123456789"),
        );
        assert_eq!(
            check_headers(&big, &cfg),
            Err(HeaderViolation::TooLarge { bytes: 49, max: 40 })
        );
    }
}
