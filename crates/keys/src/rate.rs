//! GCRA (generic cell rate algorithm) on one atomic: the theoretical arrival time (TAT) of the
//! next request, in Unix nanoseconds. A request at `t` is admitted when
//! `max(TAT, t) + T - t <= burst × T` (with `T = 1 / rate`), and then moves TAT to
//! `max(TAT, t) + T`. One compare-and-swap per admitted request, no lock, no allocation.
//!
//! With several gateways, [`RateBackend`] hands out [`SharedRate`] buckets instead (one per
//! plan scope and limit, keyed by key id), which decide in memory and synchronise in the
//! background (see `crate::remote::SharedRates` and `docs/REDIS.md`).

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use crate::plan::RateLimit;

/// One key's rate bucket (per plan-wide or per-route scope).
#[derive(Debug, Default)]
pub(crate) struct Gcra {
    tat: AtomicI64,
}

/// The outcome of a rate check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Admitted; this many more requests would be admitted right now.
    Allowed {
        /// Requests that would still be admitted right now.
        remaining: u32,
    },
    /// Refused; a request is admitted again after this many nanoseconds.
    Limited {
        /// Nanoseconds until a request is admitted again.
        retry_after_ns: i64,
    },
}

/// Rate buckets of one plan scope and limit shared by several gateways: one bucket per key id,
/// decided in this process's memory (no I/O) and synchronised in the background.
pub trait SharedRate: Send + Sync + fmt::Debug {
    /// Checks (and on admission records) one request of key `key_id` at `now_ns` (Unix
    /// nanoseconds).
    fn check(&self, key_id: &str, now_ns: i64) -> RateDecision;
}

/// Where [`crate::KeyAuth`] gets shared rate buckets (without one, each key has a local
/// [`Gcra`] bucket per scope).
pub trait RateBackend: Send + Sync + fmt::Debug {
    /// The buckets of scope `scope` (`*` for the plan's own rate, else a route) for `limit`.
    /// Called when keys or plans change, never per request.
    fn buckets(&self, scope: &str, limit: &RateLimit) -> Arc<dyn SharedRate>;
}

impl Gcra {
    /// Checks (and on admission records) one request at `now` (Unix nanoseconds).
    pub(crate) fn check(&self, limit: &RateLimit, now: i64) -> RateDecision {
        let t = limit.interval_ns;
        let tau = t.saturating_mul(i64::from(limit.burst));
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let new_tat = tat.max(now).saturating_add(t);
            let ahead = new_tat.saturating_sub(now);
            if ahead > tau {
                return RateDecision::Limited {
                    retry_after_ns: ahead - tau,
                };
            }
            match self
                .tat
                .compare_exchange_weak(tat, new_tat, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    let remaining = (tau - ahead) / t;
                    return RateDecision::Allowed {
                        remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
                    };
                }
                Err(actual) => tat = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{PlanSet, UsagePlan};

    fn limit(rate: f64, burst: u32) -> RateLimit {
        let p = UsagePlan {
            name: "p".into(),
            rate: Some(rate),
            burst: Some(burst),
            quota: None,
            routes: Default::default(),
        };
        PlanSet::compile(&[p])
            .unwrap()
            .get("p")
            .unwrap()
            .rate_on("x")
            .unwrap()
    }

    const S: i64 = 1_000_000_000;

    #[test]
    fn a_full_bucket_admits_burst_then_one_per_interval() {
        let l = limit(2.0, 3); // one every 500 ms, 3 at once
        let g = Gcra::default();
        let now = 1_000 * S;
        let got: Vec<_> = (0..4).map(|_| g.check(&l, now)).collect();
        assert_eq!(
            got,
            vec![
                RateDecision::Allowed { remaining: 2 },
                RateDecision::Allowed { remaining: 1 },
                RateDecision::Allowed { remaining: 0 },
                RateDecision::Limited {
                    retry_after_ns: S / 2
                },
            ]
        );
        // 499 ms later: still limited, 1 ms to go.
        assert_eq!(
            g.check(&l, now + S / 2 - 1_000_000),
            RateDecision::Limited {
                retry_after_ns: 1_000_000
            }
        );
        assert_eq!(
            g.check(&l, now + S / 2),
            RateDecision::Allowed { remaining: 0 }
        );
        // After a long idle time the bucket is full again, not fuller.
        assert_eq!(
            g.check(&l, now + 100 * S),
            RateDecision::Allowed { remaining: 2 }
        );
    }

    #[test]
    fn a_limited_request_does_not_move_the_bucket() {
        let l = limit(1.0, 1);
        let g = Gcra::default();
        assert!(matches!(g.check(&l, 10 * S), RateDecision::Allowed { .. }));
        for _ in 0..100 {
            assert!(matches!(g.check(&l, 10 * S), RateDecision::Limited { .. }));
        }
        assert!(matches!(g.check(&l, 11 * S), RateDecision::Allowed { .. }));
    }

    #[test]
    fn concurrent_checks_admit_exactly_the_burst() {
        let l = limit(0.001, 500);
        let g = Gcra::default();
        let admitted = std::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..200 {
                        if let RateDecision::Allowed { .. } = g.check(&l, 5 * S) {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(admitted.into_inner(), 500);
    }
}
