//! Quota counters: exact under concurrency, persisted off the request path.
//!
//! A counter is one `AtomicU64` holding `(window id << 40) | used`. Acquiring is a
//! compare-and-swap loop: if the stored window is not the current one the count starts from 0
//! (a new window resets it), if the count has reached the limit the request is refused, otherwise
//! the count goes up by one. So with a quota of N, exactly N concurrent requests succeed.
//!
//! [`QuotaBackend`] and [`QuotaCounter`] are the seam for a shared (Redis) backend (issue 7);
//! [`QuotaStore`] is the local one: counters in memory, written to a JSON file by
//! [`QuotaStore::flush`], which the gateway calls every second from a background task and at
//! shutdown. Crash window: what was counted since the last flush (at most one flush interval) is
//! lost on a crash, so a key may get up to one interval's worth of extra requests after it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::calendar::{Period, Window};
use crate::fsutil::write_atomic;

const COUNT_BITS: u32 = 40;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

fn pack(window: u32, used: u64) -> u64 {
    (u64::from(window) << COUNT_BITS) | (used & COUNT_MASK)
}

fn unpack(state: u64) -> (u32, u64) {
    ((state >> COUNT_BITS) as u32, state & COUNT_MASK)
}

/// The outcome of a quota check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaDecision {
    /// Counted; `used` requests of this window so far, this one included.
    Granted {
        /// Requests counted in the window.
        used: u64,
    },
    /// The window's quota is used up; nothing was counted.
    Exhausted,
}

/// One quota counter: a (key, scope) pair's usage in its current window.
pub trait QuotaCounter: Send + Sync + 'static {
    /// Counts one request in `window` unless `limit` requests are already counted there.
    fn try_acquire(&self, window: &Window, limit: u64) -> QuotaDecision;
    /// Requests counted in `window` so far.
    fn used(&self, window: &Window) -> u64;
    /// The shared (Redis) key of a counter kept outside this process, counted by the caller
    /// of [`crate::KeyAuth::check_deferred`]; `None` (the default) for local counters.
    fn remote_key(&self) -> Option<&str> {
        None
    }
}

/// Where quota counters live. Counters are resolved once per key when the key set or the plans
/// change, never per request.
pub trait QuotaBackend: Send + Sync + 'static {
    /// The counter of `key_id` for `scope` (`*` for the plan-wide quota, else a route name)
    /// counting in windows of `period`. The same arguments give the same counter.
    fn counter(&self, key_id: &str, scope: &str, period: Period) -> Arc<dyn QuotaCounter>;
}

/// A counter in process memory.
#[derive(Debug)]
struct LocalCounter {
    period: Period,
    state: AtomicU64,
}

impl QuotaCounter for LocalCounter {
    fn try_acquire(&self, window: &Window, limit: u64) -> QuotaDecision {
        let mut cur = self.state.load(Ordering::Relaxed);
        loop {
            let (w, used) = unpack(cur);
            let used = if w == window.id { used } else { 0 };
            if used >= limit {
                return QuotaDecision::Exhausted;
            }
            match self.state.compare_exchange_weak(
                cur,
                pack(window.id, used + 1),
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return QuotaDecision::Granted { used: used + 1 },
                Err(actual) => cur = actual,
            }
        }
    }

    fn used(&self, window: &Window) -> u64 {
        let (w, used) = unpack(self.state.load(Ordering::Acquire));
        if w == window.id {
            used
        } else {
            0
        }
    }
}

/// Why loading or flushing quota counters failed.
#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    /// Reading or writing the counter file failed.
    #[error("{path}: {source}")]
    Io {
        /// The counter file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The counter file is not valid JSON of the expected shape.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The counter file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The counter file parsed but holds something impossible.
    #[error("{path}: {message}")]
    Invalid {
        /// The counter file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CounterFile {
    version: u32,
    counters: Vec<FileCounter>,
}

#[derive(Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(deny_unknown_fields)]
struct FileCounter {
    key: String,
    scope: String,
    period: Period,
    /// First second of the window, Unix seconds.
    window_start: i64,
    used: u64,
}

const FILE_VERSION: u32 = 1;

type CounterMap = HashMap<(Box<str>, Box<str>), Arc<LocalCounter>>;

/// The local quota backend: counters in memory, persisted to a JSON file by [`Self::flush`].
#[derive(Debug)]
pub struct QuotaStore {
    path: Option<PathBuf>,
    counters: Mutex<CounterMap>,
    /// What the last flush wrote, to skip rewriting an unchanged file.
    last_written: Mutex<Vec<u8>>,
}

impl QuotaStore {
    /// Opens the counter file at `path`, loading its counters; a missing file starts empty.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, QuotaError> {
        let path = path.as_ref().to_path_buf();
        let (counters, bytes) = read_file(&path)?;
        Ok(Self {
            path: Some(path),
            counters: Mutex::new(counters),
            last_written: Mutex::new(bytes),
        })
    }

    /// Counters that are never persisted (tests, benchmarks).
    pub fn in_memory() -> Self {
        Self {
            path: None,
            counters: Mutex::new(HashMap::new()),
            last_written: Mutex::new(Vec::new()),
        }
    }

    /// Writes every counter with a non-zero count to the file (atomically, write-then-rename),
    /// unless nothing changed since the last flush. Returns whether the file was written.
    /// Call it from a background task every second and once at shutdown; never per request.
    pub fn flush(&self) -> Result<bool, QuotaError> {
        let Some(path) = &self.path else {
            return Ok(false);
        };
        let mut counters: Vec<FileCounter> = self
            .counters
            .lock()
            .iter()
            .filter_map(|((key, scope), c)| {
                let (w, used) = unpack(c.state.load(Ordering::Acquire));
                (used > 0).then(|| FileCounter {
                    key: key.to_string(),
                    scope: scope.to_string(),
                    period: c.period,
                    window_start: c.period.window_by_id(w).start,
                    used,
                })
            })
            .collect();
        counters.sort_unstable();
        let file = CounterFile {
            version: FILE_VERSION,
            counters,
        };
        let bytes = serde_json::to_vec(&file).map_err(|e| QuotaError::Invalid {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let mut last = self.last_written.lock();
        if *last == bytes {
            return Ok(false);
        }
        write_atomic(path, &bytes).map_err(|source| QuotaError::Io {
            path: path.clone(),
            source,
        })?;
        *last = bytes;
        Ok(true)
    }

    /// Requests counted for `(key_id, scope)` in `window`, or 0 (for admin views and tests).
    pub fn used(&self, key_id: &str, scope: &str, window: &Window) -> u64 {
        self.counters
            .lock()
            .get(&(Box::from(key_id), Box::from(scope)))
            .map_or(0, |c| c.used(window))
    }
}

impl QuotaBackend for QuotaStore {
    fn counter(&self, key_id: &str, scope: &str, period: Period) -> Arc<dyn QuotaCounter> {
        let mut map = self.counters.lock();
        let slot = map
            .entry((Box::from(key_id), Box::from(scope)))
            .or_insert_with(|| {
                Arc::new(LocalCounter {
                    period,
                    state: AtomicU64::new(0),
                })
            });
        if slot.period != period {
            // The plan changed the period: counts of the old windows mean nothing in the new ones.
            *slot = Arc::new(LocalCounter {
                period,
                state: AtomicU64::new(0),
            });
        }
        slot.clone()
    }
}

fn read_file(path: &Path) -> Result<(CounterMap, Vec<u8>), QuotaError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((HashMap::new(), Vec::new()))
        }
        Err(source) => {
            return Err(QuotaError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let file: CounterFile = serde_json::from_slice(&bytes).map_err(|e| QuotaError::Parse {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: crate::fsutil::json_message(&e),
    })?;
    let invalid = |message: String| QuotaError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    if file.version != FILE_VERSION {
        return Err(invalid(format!(
            "quota file version {} is not supported (this build reads version {FILE_VERSION})",
            file.version
        )));
    }
    let mut map = HashMap::with_capacity(file.counters.len());
    for c in file.counters {
        let w = c.period.window_at(c.window_start);
        if w.start != c.window_start {
            return Err(invalid(format!(
                "counter of `{}` scope `{}`: window_start {} is not the start of a {} window",
                c.key,
                c.scope,
                c.window_start,
                c.period.as_str()
            )));
        }
        if c.used > COUNT_MASK {
            return Err(invalid(format!(
                "counter of `{}` scope `{}`: used {} is too large",
                c.key, c.scope, c.used
            )));
        }
        let counter = Arc::new(LocalCounter {
            period: c.period,
            state: AtomicU64::new(pack(w.id, c.used)),
        });
        if map
            .insert((c.key.clone().into(), c.scope.clone().into()), counter)
            .is_some()
        {
            return Err(invalid(format!(
                "counter of `{}` scope `{}` appears twice",
                c.key, c.scope
            )));
        }
    }
    Ok((map, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_window_resets_the_count_and_limits_hold_within_one() {
        let s = QuotaStore::in_memory();
        let c = s.counter("key_a", "*", Period::Day);
        let d1 = Period::Day.window_at(1_800_000_000);
        let d2 = Period::Day.window_at(d1.end);
        assert_eq!(c.try_acquire(&d1, 2), QuotaDecision::Granted { used: 1 });
        assert_eq!(c.try_acquire(&d1, 2), QuotaDecision::Granted { used: 2 });
        assert_eq!(c.try_acquire(&d1, 2), QuotaDecision::Exhausted);
        assert_eq!(c.used(&d1), 2);
        assert_eq!(c.used(&d2), 0);
        assert_eq!(c.try_acquire(&d2, 2), QuotaDecision::Granted { used: 1 });
        // A lower limit (plan changed) refuses at once; a zero limit refuses everything.
        assert_eq!(c.try_acquire(&d2, 1), QuotaDecision::Exhausted);
        assert_eq!(c.try_acquire(&d2, 0), QuotaDecision::Exhausted);
    }

    #[test]
    fn racing_threads_never_lose_a_count_nor_pass_the_limit() {
        // Tight loops on one counter from several threads: a non-atomic read-then-write would
        // lose increments (used < admitted) and so admit more than the limit.
        let s = QuotaStore::in_memory();
        let c = s.counter("key_a", "*", Period::Day);
        let w = Period::Day.window_at(0);
        let limit = 300_000;
        let admitted = std::sync::atomic::AtomicU64::new(0);
        let start = std::sync::Barrier::new(4);
        std::thread::scope(|sc| {
            for _ in 0..4 {
                sc.spawn(|| {
                    start.wait();
                    let mut mine = 0;
                    for _ in 0..100_000 {
                        if let QuotaDecision::Granted { .. } = c.try_acquire(&w, limit) {
                            mine += 1;
                        }
                    }
                    admitted.fetch_add(mine, Ordering::Relaxed);
                });
            }
        });
        assert_eq!(admitted.into_inner(), limit);
        assert_eq!(c.used(&w), limit);
    }

    #[test]
    fn the_same_key_and_scope_share_one_counter_until_the_period_changes() {
        let s = QuotaStore::in_memory();
        let w = Period::Day.window_at(0);
        let a = s.counter("key_a", "*", Period::Day);
        let b = s.counter("key_a", "*", Period::Day);
        a.try_acquire(&w, 10);
        assert_eq!(b.used(&w), 1);
        assert_eq!(s.counter("key_a", "search", Period::Day).used(&w), 0);
        let m = s.counter("key_a", "*", Period::Month);
        assert_eq!(m.used(&Period::Month.window_at(0)), 0);
    }

    #[test]
    fn flush_and_reopen_restores_counts_and_skips_unchanged_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quota.json");
        let w = Period::Month.window_at(1_835_000_000);
        {
            let s = QuotaStore::open(&path).unwrap();
            let c = s.counter("key_a", "*", Period::Month);
            for _ in 0..7 {
                c.try_acquire(&w, 100);
            }
            s.counter("key_b", "export", Period::Month); // unused: not written
            assert!(s.flush().unwrap());
            assert!(!s.flush().unwrap(), "nothing changed, nothing written");
            c.try_acquire(&w, 100);
            assert!(s.flush().unwrap());
        }
        let s = QuotaStore::open(&path).unwrap();
        assert_eq!(s.used("key_a", "*", &w), 8);
        assert!(!s.flush().unwrap(), "freshly loaded state equals the file");
        let c = s.counter("key_a", "*", Period::Month);
        assert_eq!(c.try_acquire(&w, 9), QuotaDecision::Granted { used: 9 });
        assert_eq!(c.try_acquire(&w, 9), QuotaDecision::Exhausted);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("key_b"), "{text}");
    }

    #[test]
    fn a_corrupt_counter_file_is_an_error_naming_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quota.json");
        std::fs::write(&path, "{\"version\":1,\n\"counters\":[{\"key\":1}]}").unwrap();
        let e = QuotaStore::open(&path).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:2:", path.display())), "{e}");
        std::fs::write(
            &path,
            r#"{"version":1,"counters":[{"key":"k","scope":"*","period":"day","window_start":5,"used":1}]}"#,
        )
        .unwrap();
        let e = QuotaStore::open(&path).unwrap_err().to_string();
        assert!(
            e.contains("window_start 5 is not the start of a day window"),
            "{e}"
        );
    }
}
