//! Injected time: [`Timestamp`] (nanoseconds since the Unix epoch), the [`Clock`] trait, a
//! monotonic [`SystemClock`] for production and a settable [`FakeClock`] for tests.
//!
//! Every limiter, ban and body-rate check in this crate reads time through a [`Clock`], so tests
//! move time forward instead of sleeping.

use std::fmt;
use std::ops::Add;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use governor::nanos::Nanos;
use serde::{Deserialize, Serialize};

/// A point in time: nanoseconds since the Unix epoch (saturating, good until year 2554).
/// Serialised as that number.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// A timestamp `nanos` nanoseconds after the epoch.
    pub const fn from_nanos(nanos: u64) -> Self {
        Timestamp(nanos)
    }

    /// A timestamp `secs` seconds after the epoch (saturating).
    pub const fn from_secs(secs: u64) -> Self {
        Timestamp(secs.saturating_mul(1_000_000_000))
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Whole seconds since the epoch.
    pub const fn as_secs(self) -> u64 {
        self.0 / 1_000_000_000
    }

    /// `self + d`, saturating at the maximum.
    pub fn saturating_add(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_add(duration_nanos(d)))
    }

    /// `self - earlier`, or zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:09}",
            self.0 / 1_000_000_000,
            self.0 % 1_000_000_000
        )
    }
}

/// A duration in nanoseconds, saturating at `u64::MAX`.
pub(crate) fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Add<Nanos> for Timestamp {
    type Output = Timestamp;
    fn add(self, rhs: Nanos) -> Timestamp {
        Timestamp(self.0.saturating_add(rhs.as_u64()))
    }
}

impl governor::clock::Reference for Timestamp {
    fn duration_since(&self, earlier: Self) -> Nanos {
        Nanos::new(self.0.saturating_sub(earlier.0))
    }
    fn saturating_sub(&self, duration: Nanos) -> Self {
        Timestamp(self.0.saturating_sub(duration.as_u64()))
    }
}

/// A source of time. Implementations must be monotonic (never go backwards).
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The production clock: wall time read once at creation, advanced by the monotonic
/// `std::time::Instant`, so it never jumps backwards when the system clock is adjusted.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    anchor_unix: u64,
    anchor: std::time::Instant,
}

impl SystemClock {
    /// A clock anchored at the current wall time.
    pub fn new() -> Self {
        let anchor_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(duration_nanos)
            .unwrap_or(0);
        SystemClock {
            anchor_unix,
            anchor: std::time::Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp(
            self.anchor_unix
                .saturating_add(duration_nanos(self.anchor.elapsed())),
        )
    }
}

/// A clock that is read with one atomic load: a background thread stores the time of a
/// [`SystemClock`] every `resolution`. Use it in the gateway when reading the system clock is
/// expensive (it costs ~90 ns on some virtual machines); limits and bans are then judged at
/// that resolution. The thread ends when the last clone of the clock is dropped.
///
/// [`CoarseClock::lazy`] starts the thread on the first read instead, so a gateway whose
/// configuration never reads the clock (no guard, no shared state) runs no thread that wakes
/// a thousand times a second on the proxy's CPU.
#[derive(Debug, Clone)]
pub struct CoarseClock(Arc<CoarseInner>);

#[derive(Debug)]
struct CoarseInner {
    /// The last stored time; 0 until the thread has started (or when it could not start).
    now: AtomicU64,
    started: std::sync::Once,
    resolution: Duration,
    src: SystemClock,
}

impl CoarseClock {
    /// Starts the updating thread now.
    pub fn start(resolution: Duration) -> std::io::Result<Self> {
        let clock = Self::lazy(resolution);
        let mut res = Ok(());
        clock.0.started.call_once(|| res = clock.spawn());
        res.map(|()| clock)
    }

    /// A clock whose updating thread starts on the first read. Should the thread fail to
    /// start, every read falls back to the system clock.
    pub fn lazy(resolution: Duration) -> Self {
        CoarseClock(Arc::new(CoarseInner {
            now: AtomicU64::new(0),
            started: std::sync::Once::new(),
            resolution: resolution.max(Duration::from_micros(100)),
            src: SystemClock::new(),
        }))
    }

    /// True once the updating thread runs.
    pub fn is_running(&self) -> bool {
        self.0.now.load(Ordering::Relaxed) != 0
    }

    fn spawn(&self) -> std::io::Result<()> {
        let inner = &self.0;
        let (src, resolution) = (inner.src, inner.resolution);
        inner.now.fetch_max(src.now().0.max(1), Ordering::Relaxed);
        let weak = Arc::downgrade(&self.0);
        let spawned = std::thread::Builder::new()
            .name("palisade-clock".into())
            .spawn(move || {
                while let Some(inner) = weak.upgrade() {
                    inner.now.fetch_max(src.now().0, Ordering::Relaxed);
                    drop(inner);
                    std::thread::sleep(resolution);
                }
            });
        if spawned.is_err() {
            inner.now.store(0, Ordering::Relaxed);
        }
        spawned.map(drop)
    }

    #[cold]
    fn first_read(&self) -> Timestamp {
        self.0.started.call_once(|| {
            // A thread that cannot start leaves the clock on the system clock.
            let _ = self.spawn();
        });
        match self.0.now.load(Ordering::Relaxed) {
            0 => self.0.src.now(),
            n => Timestamp(n),
        }
    }
}

impl Clock for CoarseClock {
    #[inline]
    fn now(&self) -> Timestamp {
        match self.0.now.load(Ordering::Relaxed) {
            0 => self.first_read(),
            n => Timestamp(n),
        }
    }
}

/// A clock for tests: starts where it is told and moves only when advanced. Clones share time.
#[derive(Debug, Clone, Default)]
pub struct FakeClock(Arc<AtomicU64>);

impl FakeClock {
    /// A fake clock reading `start`.
    pub fn new(start: Timestamp) -> Self {
        FakeClock(Arc::new(AtomicU64::new(start.0)))
    }

    /// Moves time forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(duration_nanos(d), Ordering::SeqCst);
    }

    /// Sets the time (tests only; moving backwards breaks the monotonic contract).
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

/// A shareable clock handle; also governor's clock for the limiters in this crate.
#[derive(Debug, Clone)]
pub struct SharedClock(Arc<dyn Clock>);

impl SharedClock {
    /// Wraps a clock.
    pub fn new<C: Clock + 'static>(clock: C) -> Self {
        SharedClock(Arc::new(clock))
    }

    /// The current time.
    #[inline]
    pub fn now(&self) -> Timestamp {
        self.0.now()
    }
}

impl Default for SharedClock {
    fn default() -> Self {
        SharedClock::new(SystemClock::new())
    }
}

thread_local! {
    /// The time pinned by [`with_pinned_now`] on this thread; 0 when none.
    static PINNED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Runs `f` with `now` as the time governor's clock (`SharedClock`) reads on this thread. The
/// limiters of this crate take `now` as an argument and no longer need it; kept for code that
/// drives governor types directly (tests).
#[cfg(test)]
pub(crate) fn with_pinned_now<R>(now: Timestamp, f: impl FnOnce() -> R) -> R {
    struct Restore(u64);
    impl Drop for Restore {
        fn drop(&mut self) {
            PINNED.with(|p| p.set(self.0));
        }
    }
    let _restore = Restore(PINNED.with(|p| p.replace(now.0.max(1))));
    f()
}

/// The time pinned on this thread by `with_pinned_now`, if any.
#[inline]
pub(crate) fn pinned_now() -> Option<Timestamp> {
    let p = PINNED.with(|p| p.get());
    (p != 0).then_some(Timestamp(p))
}

impl governor::clock::Clock for SharedClock {
    type Instant = Timestamp;
    /// The pinned request time if there is one (see `with_pinned_now`), else the clock.
    #[inline]
    fn now(&self) -> Timestamp {
        let pinned = PINNED.with(|p| p.get());
        if pinned != 0 {
            Timestamp(pinned)
        } else {
            self.0.now()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_clock_clones_share_time() {
        let c = FakeClock::new(Timestamp::from_secs(10));
        let d = c.clone();
        c.advance(Duration::from_millis(1500));
        assert_eq!(d.now(), Timestamp::from_nanos(11_500_000_000));
        assert_eq!(d.now().as_secs(), 11);
    }

    #[test]
    fn system_clock_is_monotonic_and_near_wall_time() {
        let c = SystemClock::new();
        let a = c.now();
        let b = c.now();
        assert!(b >= a);
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        assert!(a.as_secs().abs_diff(wall) <= 2);
    }

    #[test]
    fn coarse_clock_follows_the_system_clock() {
        let c = CoarseClock::start(Duration::from_millis(1)).unwrap_or_else(|e| panic!("{e}"));
        let sys = SystemClock::new();
        let a = c.now();
        assert!(sys.now().saturating_duration_since(a) < Duration::from_secs(1));
        assert!(c.now() >= a);
    }

    #[test]
    fn lazy_coarse_clock_starts_its_thread_on_the_first_read() {
        let c = CoarseClock::lazy(Duration::from_millis(1));
        assert!(!c.is_running(), "no thread before the first read");
        let sys = SystemClock::new();
        let a = c.now();
        assert!(c.is_running(), "the first read starts the thread");
        assert!(sys.now().saturating_duration_since(a) < Duration::from_secs(1));
        let before = c.now();
        std::thread::sleep(Duration::from_millis(20));
        assert!(c.now() > before, "the thread moves the time on");
    }

    #[test]
    fn pinned_now_is_seen_by_governor_clock_and_restored() {
        let fake = FakeClock::new(Timestamp::from_secs(5));
        let shared = SharedClock::new(fake);
        let inside = with_pinned_now(Timestamp::from_secs(9), || {
            governor::clock::Clock::now(&shared)
        });
        assert_eq!(inside, Timestamp::from_secs(9));
        assert_eq!(
            governor::clock::Clock::now(&shared),
            Timestamp::from_secs(5)
        );
    }

    #[test]
    fn saturating_arithmetic() {
        let t = Timestamp::from_nanos(u64::MAX - 1);
        assert_eq!(
            t.saturating_add(Duration::from_secs(5)).as_nanos(),
            u64::MAX
        );
        assert_eq!(
            Timestamp::from_secs(1).saturating_duration_since(Timestamp::from_secs(2)),
            Duration::ZERO
        );
    }
}
