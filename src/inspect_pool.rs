//! A per-thread pool of WAF accumulators ([`palisade_waf::Inspection`]).
//!
//! An `Inspection` keeps its buffers from request to request (bitsets, the transform memo, the
//! variant buffers, the set of values already seen, the body parser's buffers): that reuse is
//! what the engine's own benchmark measures. A fresh one per request allocates every buffer
//! again and grows it as the request is inspected. The gateway takes one from this pool when the
//! WAF starts on a request and gives it back when the request's context is dropped (after the
//! logging phase), on whichever thread that happens.
//!
//! Bounded: at most [`POOL_MAX`] idle accumulators per thread; more are freed. An accumulator
//! holds no data of the request it served once [`palisade_waf::RuleSet::inspect_head`] has
//! reset it for the next one, and nothing reads it before that.

use palisade_waf::Inspection;
use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

/// Idle accumulators kept per thread (about the requests one worker has in flight at once).
pub const POOL_MAX: usize = 64;

thread_local! {
    // Boxed: the accumulator moves between the pool and a request's context by pointer, not by
    // copying the whole struct each way.
    #[allow(clippy::vec_box)]
    static POOL: RefCell<Vec<Box<Inspection>>> = const { RefCell::new(Vec::new()) };
}

/// An accumulator on loan from the thread's pool; it goes back when dropped.
#[derive(Debug)]
pub struct PooledInspection(Option<Box<Inspection>>);

impl PooledInspection {
    /// An idle accumulator of this thread's pool, or a new one when the pool is empty.
    pub fn take() -> PooledInspection {
        let reused = POOL.try_with(|p| p.borrow_mut().pop()).ok().flatten();
        PooledInspection(Some(reused.unwrap_or_default()))
    }

    /// Idle accumulators in this thread's pool (for tests).
    pub fn idle() -> usize {
        POOL.try_with(|p| p.borrow().len()).unwrap_or(0)
    }
}

impl Deref for PooledInspection {
    type Target = Inspection;
    fn deref(&self) -> &Inspection {
        // Some from construction until drop.
        self.0.as_deref().unwrap_or_else(|| unreachable!())
    }
}

impl DerefMut for PooledInspection {
    fn deref_mut(&mut self) -> &mut Inspection {
        self.0.as_deref_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for PooledInspection {
    fn drop(&mut self) {
        if let Some(insp) = self.0.take() {
            // During thread teardown the pool is gone: the accumulator is simply freed.
            let _ = POOL.try_with(|p| {
                if let Ok(mut p) = p.try_borrow_mut() {
                    if p.len() < POOL_MAX {
                        p.push(insp);
                    }
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_accumulator_goes_back_and_is_reused() {
        let before = PooledInspection::idle();
        let a = PooledInspection::take();
        let addr = &*a as *const Inspection;
        drop(a);
        assert_eq!(PooledInspection::idle(), before + 1);
        let b = PooledInspection::take();
        assert_eq!(
            &*b as *const Inspection, addr,
            "the pooled accumulator is handed out again"
        );
        assert_eq!(PooledInspection::idle(), before);
    }

    #[test]
    fn the_pool_is_bounded() {
        let many: Vec<_> = (0..POOL_MAX + 10)
            .map(|_| PooledInspection::take())
            .collect();
        drop(many);
        assert_eq!(PooledInspection::idle(), POOL_MAX);
    }
}
