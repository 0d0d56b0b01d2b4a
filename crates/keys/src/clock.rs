//! Time source. Limiters, quotas and expiry read the time through [`Clock`], so tests cross rate
//! windows, quota windows and expiry dates with a [`ManualClock`] instead of sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time (UTC).
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to; shared between threads.
#[derive(Debug)]
pub struct ManualClock {
    unix_nanos: AtomicI64,
}

impl ManualClock {
    /// A clock showing `at`.
    pub fn new(at: SystemTime) -> Self {
        Self {
            unix_nanos: AtomicI64::new(unix_nanos(at)),
        }
    }

    /// A clock showing the given UTC date and time. Out-of-range fields are an error.
    pub fn at_utc(
        year: i32,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
    ) -> Result<Self, time::error::ComponentRange> {
        let month = time::Month::try_from(month)?;
        let t = time::Date::from_calendar_date(year, month, day)?
            .with_hms(hour, minute, second)?
            .assume_utc();
        Ok(Self::new(t.into()))
    }

    /// Moves the clock to `at` (backwards too).
    pub fn set(&self, at: SystemTime) {
        self.unix_nanos.store(unix_nanos(at), Ordering::SeqCst);
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_nanos()).unwrap_or(i64::MAX);
        let _ = self
            .unix_nanos
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_add(by))
            });
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        from_unix_nanos(self.unix_nanos.load(Ordering::SeqCst))
    }
}

/// Nanoseconds since the Unix epoch, saturating at the ends of `i64` (years 1677 and 2262).
pub(crate) fn unix_nanos(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_nanos()).map_or(i64::MIN, |n| -n),
    }
}

/// The inverse of [`unix_nanos`].
pub(crate) fn from_unix_nanos(n: i64) -> SystemTime {
    if n >= 0 {
        UNIX_EPOCH + Duration::from_nanos(n as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(n.unsigned_abs())
    }
}

/// Unix seconds as a `SystemTime`.
pub(crate) fn from_unix_secs(s: i64) -> SystemTime {
    if s >= 0 {
        UNIX_EPOCH + Duration::from_secs(s as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(s.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::at_utc(2028, 2, 29, 23, 59, 59).unwrap();
        let t0 = c.now();
        assert_eq!(c.now(), t0);
        c.advance(Duration::from_secs(1));
        let t1 = time::OffsetDateTime::from(c.now());
        assert_eq!((t1.month() as u8, t1.day(), t1.hour()), (3, 1, 0));
        c.set(UNIX_EPOCH - Duration::from_secs(3));
        assert_eq!(unix_nanos(c.now()), -3_000_000_000);
    }

    #[test]
    fn manual_clock_rejects_impossible_dates() {
        assert!(ManualClock::at_utc(2027, 2, 29, 0, 0, 0).is_err());
        assert!(ManualClock::at_utc(2027, 13, 1, 0, 0, 0).is_err());
    }
}
