//! Calendar quota windows in UTC: a day starts at 00:00, a week on Monday 00:00, a month on the
//! 1st at 00:00. Pure integer arithmetic on Unix seconds (Howard Hinnant's `days_from_civil`), so
//! month lengths, leap years and year ends come out right and the per-request cost is a few
//! divisions.

use serde::{Deserialize, Serialize};

const SECS_PER_DAY: i64 = 86_400;

/// The length of a quota window, aligned to calendar boundaries in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// From 00:00 UTC to the next 00:00 UTC.
    Day,
    /// From Monday 00:00 UTC to the next Monday 00:00 UTC (ISO 8601 weeks).
    Week,
    /// From the 1st of the month 00:00 UTC to the 1st of the next month.
    Month,
}

impl Period {
    /// The lowercase name used in config and in persisted files.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }

    /// The window containing `unix_secs`. Times before 1970 are treated as 1970-01-01 00:00.
    pub fn window_at(self, unix_secs: i64) -> Window {
        let days = unix_secs.max(0).div_euclid(SECS_PER_DAY);
        match self {
            Period::Day => Window {
                id: days as u32,
                start: days * SECS_PER_DAY,
                end: (days + 1) * SECS_PER_DAY,
            },
            Period::Week => {
                // 1970-01-01 was a Thursday; 1969-12-29 (day -3) was a Monday.
                let week = (days + 3).div_euclid(7);
                let start_day = week * 7 - 3;
                Window {
                    id: week as u32,
                    start: start_day * SECS_PER_DAY,
                    end: (start_day + 7) * SECS_PER_DAY,
                }
            }
            Period::Month => {
                // The month of a day needs a civil-date conversion; remember the last one per
                // thread (requests of one day all hit it).
                thread_local! {
                    static LAST: std::cell::Cell<Option<(i64, Window)>> =
                        const { std::cell::Cell::new(None) };
                }
                if let Ok(Some((d, w))) = LAST.try_with(|c| c.get()) {
                    if d == days {
                        return w;
                    }
                }
                let w = month_window(days);
                let _ = LAST.try_with(|c| c.set(Some((days, w))));
                w
            }
        }
    }
}

/// The month window containing day `days` (since 1970-01-01).
fn month_window(days: i64) -> Window {
    let (y, m, _) = civil_from_days(days);
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    Window {
        id: ((y - 1970) * 12 + i64::from(m) - 1) as u32,
        start: days_from_civil(y, m, 1) * SECS_PER_DAY,
        end: days_from_civil(ny, nm, 1) * SECS_PER_DAY,
    }
}

impl Period {
    /// The window with id `id` (the inverse of `window_at(t).id`).
    pub fn window_by_id(self, id: u32) -> Window {
        let id = i64::from(id);
        let start_day = match self {
            Period::Day => id,
            Period::Week => (id * 7 - 3).max(0),
            Period::Month => days_from_civil(1970 + id / 12, (id % 12) as u32 + 1, 1),
        };
        self.window_at(start_day * SECS_PER_DAY)
    }
}

/// One quota window: `[start, end)` in Unix seconds, and an id that increases by one from each
/// window to the next of the same period (used to tell whether a stored counter is current).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Days, weeks (Monday-aligned) or months since 1970-01 for this window.
    pub id: u32,
    /// First second of the window (Unix seconds, inclusive).
    pub start: i64,
    /// First second of the next window (Unix seconds, exclusive): the quota reset time.
    pub end: i64,
}

/// Days since 1970-01-01 of the proleptic Gregorian date `y-m-d` (`m` in 1..=12, `d` in 1..=31).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // [0, 399]
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date `(year, month, day)` of `days` since 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::{Date, Month, OffsetDateTime, Weekday};

    fn ts(y: i32, m: u8, d: u8, hh: u8, mm: u8, ss: u8) -> i64 {
        let date = Date::from_calendar_date(y, Month::try_from(m).unwrap(), d).unwrap();
        date.with_hms(hh, mm, ss)
            .unwrap()
            .assume_utc()
            .unix_timestamp()
    }

    #[test]
    fn civil_conversions_agree_with_the_time_crate_for_every_day_1970_to_2200() {
        let mut date = Date::from_calendar_date(1970, Month::January, 1).unwrap();
        for days in 0..(230 * 366) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(
                (y, m, d),
                (
                    i64::from(date.year()),
                    u8::from(date.month()) as u32,
                    u32::from(date.day())
                ),
                "day {days}"
            );
            assert_eq!(days_from_civil(y, m, d), days);
            date = date.next_day().unwrap();
        }
    }

    #[test]
    fn every_window_contains_its_instant_and_starts_on_the_right_calendar_boundary() {
        // Every 7 hours and 13 minutes over 60 years: windows must contain the instant, start at
        // midnight, on a Monday (week) or the 1st (month), and consecutive windows must chain.
        let step = 7 * 3600 + 13 * 60;
        let mut t = ts(1999, 12, 25, 0, 0, 0);
        let end = ts(2060, 1, 1, 0, 0, 0);
        while t < end {
            for p in [Period::Day, Period::Week, Period::Month] {
                let w = p.window_at(t);
                assert!(w.start <= t && t < w.end, "{p:?} {t}");
                let start = OffsetDateTime::from_unix_timestamp(w.start).unwrap();
                let next = OffsetDateTime::from_unix_timestamp(w.end).unwrap();
                assert_eq!(start.time(), time::Time::MIDNIGHT);
                assert_eq!(next.time(), time::Time::MIDNIGHT);
                match p {
                    Period::Day => assert_eq!(next.date(), start.date().next_day().unwrap()),
                    Period::Week => {
                        assert_eq!(start.weekday(), Weekday::Monday);
                        assert_eq!(w.end - w.start, 7 * SECS_PER_DAY);
                    }
                    Period::Month => {
                        assert_eq!(start.day(), 1);
                        assert_eq!(next.day(), 1);
                        assert_eq!(next.month(), start.month().next());
                        let len = (w.end - w.start) / SECS_PER_DAY;
                        assert_eq!(
                            len,
                            i64::from(start.month().length(start.year())),
                            "{start}"
                        );
                    }
                }
                assert_eq!(p.window_by_id(w.id), w);
                let following = p.window_at(w.end);
                assert_eq!(following.id, w.id + 1);
                assert_eq!(following.start, w.end);
            }
            t += step;
        }
    }

    #[test]
    fn month_windows_have_the_right_lengths_including_leap_february() {
        let len = |y, m| {
            let w = Period::Month.window_at(ts(y, m, 1, 12, 0, 0));
            (w.end - w.start) / SECS_PER_DAY
        };
        assert_eq!(len(2027, 1), 31);
        assert_eq!(len(2027, 2), 28);
        assert_eq!(len(2028, 2), 29);
        assert_eq!(len(2100, 2), 28);
        assert_eq!(len(2000, 2), 29);
        assert_eq!(len(2027, 4), 30);
        assert_eq!(len(2027, 12), 31);
    }

    #[test]
    fn the_week_of_new_year_2027_starts_on_monday_2026_12_28() {
        let w = Period::Week.window_at(ts(2027, 1, 1, 9, 0, 0));
        assert_eq!(w.start, ts(2026, 12, 28, 0, 0, 0));
        assert_eq!(w.end, ts(2027, 1, 4, 0, 0, 0));
    }

    #[test]
    fn times_before_1970_clamp_to_the_first_window() {
        assert_eq!(Period::Day.window_at(-5).start, 0);
        assert_eq!(Period::Month.window_at(-5).id, 0);
    }
}
