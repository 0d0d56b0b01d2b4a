//! Auto-ban: `threshold` violations (blocked or throttled requests) from one address within
//! `window_secs` ban it for `ban_secs`. Bans can also be added and removed by hand (admin API,
//! `palisade bans`), and are persisted to a JSON file by [`AutoBan::persist`], which the gateway
//! calls from a background task (write to a temporary file, fsync, rename: a crash never leaves
//! a torn file). [`AutoBan::load`] reads it at startup and drops expired bans.
//!
//! Memory: bans are few (each is a deliberate decision); the violation tracker holds at most
//! `max_tracked` addresses with at most `threshold` timestamps each, evicting the address whose
//! latest violation is oldest.
//!
//! The store sits behind the [`BanStore`] trait so a shared backend (Redis, issue 7) can be
//! added later.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::config::AutoBanConfig;
use crate::error::GuardError;
use crate::lists::canonical_ip;
use crate::time::Timestamp;

/// One ban.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ban {
    /// The banned address.
    pub ip: IpAddr,
    /// When the ban started (nanoseconds since the Unix epoch).
    pub since: Timestamp,
    /// When the ban ends (nanoseconds since the Unix epoch).
    pub until: Timestamp,
    /// Why: `auto: 20 violations in 60s`, or the reason given to [`BanStore::ban`].
    pub reason: String,
}

impl Ban {
    /// Whether the ban is in force at `now`.
    pub fn active(&self, now: Timestamp) -> bool {
        now < self.until
    }
}

/// Storage of bans and violation counts. [`AutoBan`] is the in-process implementation.
pub trait BanStore: Send + Sync + fmt::Debug {
    /// Whether `ip` is banned at `now`. Cheap; called on every request.
    fn is_banned(&self, ip: IpAddr, now: Timestamp) -> bool;
    /// The ban on `ip` in force at `now`, if any.
    fn get(&self, ip: IpAddr, now: Timestamp) -> Option<Ban>;
    /// Counts one violation; returns the ban if this one triggered it.
    fn record_violation(&self, ip: IpAddr, now: Timestamp) -> Option<Ban>;
    /// Bans `ip` for `duration` from `now` (replacing any ban on it).
    fn ban(&self, ip: IpAddr, duration: Duration, reason: &str, now: Timestamp) -> Ban;
    /// Lifts the ban on `ip`; returns whether there was one.
    fn unban(&self, ip: IpAddr) -> bool;
    /// Bans in force at `now`, soonest to expire first.
    fn list(&self, now: Timestamp) -> Vec<Ban>;
}

/// The state file's shape.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    version: u32,
    bans: Vec<Ban>,
}

const STATE_VERSION: u32 = 1;

/// In-process auto-ban with optional JSON persistence.
#[derive(Debug)]
pub struct AutoBan {
    threshold: usize,
    window: Duration,
    ban_for: Duration,
    max_tracked: usize,
    state_file: Option<PathBuf>,
    bans: RwLock<HashMap<IpAddr, Ban>>,
    /// Number of entries in `bans`, read without the lock on the request path.
    ban_count: AtomicUsize,
    strikes: Mutex<HashMap<IpAddr, VecDeque<Timestamp>>>,
    dirty: AtomicBool,
}

/// Addresses sampled when the violation tracker is full.
const EVICTION_SAMPLE: usize = 8;

impl AutoBan {
    /// An empty auto-ban (no state loaded).
    pub fn new(cfg: &AutoBanConfig) -> Self {
        AutoBan {
            threshold: cfg.threshold.max(1) as usize,
            window: Duration::from_secs(cfg.window_secs),
            ban_for: Duration::from_secs(cfg.ban_secs),
            max_tracked: cfg.max_tracked.max(1),
            state_file: cfg.state_file.clone(),
            bans: RwLock::new(HashMap::new()),
            ban_count: AtomicUsize::new(0),
            strikes: Mutex::new(HashMap::new()),
            dirty: AtomicBool::new(false),
        }
    }

    /// Creates the auto-ban and loads `state_file` if configured and present; bans expired at
    /// `now` are dropped. A missing file is not an error; an unreadable or invalid one is.
    pub fn load(cfg: &AutoBanConfig, now: Timestamp) -> Result<Self, GuardError> {
        let ab = AutoBan::new(cfg);
        if let Some(path) = &cfg.state_file {
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    let st: StateFile =
                        serde_json::from_str(&text).map_err(|e| GuardError::BanState {
                            path: path.clone(),
                            line: e.line(),
                            col: e.column(),
                            msg: e.to_string(),
                        })?;
                    if st.version != STATE_VERSION {
                        return Err(GuardError::BanState {
                            path: path.clone(),
                            line: 1,
                            col: 1,
                            msg: format!(
                                "unsupported version {} (expected {STATE_VERSION})",
                                st.version
                            ),
                        });
                    }
                    let mut bans = ab.bans.write();
                    for b in st.bans.into_iter().filter(|b| b.active(now)) {
                        bans.insert(canonical_ip(b.ip), b);
                    }
                    ab.ban_count.store(bans.len(), Ordering::Release);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(GuardError::io(path, "cannot read ban state", e)),
            }
        }
        Ok(ab)
    }

    /// A new auto-ban with `cfg`'s settings and this one's bans (for config reload).
    pub fn reconfigured(&self, cfg: &AutoBanConfig) -> Self {
        let ab = AutoBan::new(cfg);
        {
            let mut bans = ab.bans.write();
            bans.extend(self.bans.read().iter().map(|(k, v)| (*k, v.clone())));
            ab.ban_count.store(bans.len(), Ordering::Release);
        }
        ab.dirty.store(true, Ordering::Release);
        ab
    }

    /// Writes the bans in force at `now` to the state file if they changed since the last
    /// write. Returns whether a file was written. Blocking I/O: call from a background task.
    pub fn persist(&self, now: Timestamp) -> Result<bool, GuardError> {
        let Some(path) = &self.state_file else {
            return Ok(false);
        };
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(false);
        }
        self.purge_expired(now);
        let st = StateFile {
            version: STATE_VERSION,
            bans: self.list(now),
        };
        let r = write_atomically(path, &st);
        if r.is_err() {
            self.dirty.store(true, Ordering::Release);
        }
        r.map(|()| true)
    }

    /// Removes bans expired at `now` and violation records older than the window.
    pub fn purge_expired(&self, now: Timestamp) {
        {
            let mut bans = self.bans.write();
            let before = bans.len();
            bans.retain(|_, b| b.active(now));
            if bans.len() != before {
                self.dirty.store(true, Ordering::Release);
            }
            self.ban_count.store(bans.len(), Ordering::Release);
        }
        let horizon = self.horizon(now);
        self.strikes
            .lock()
            .retain(|_, q| q.back().is_some_and(|t| *t > horizon));
    }

    /// Replaces every ban with `bans` (a shared store's copy, see `redis_state`); violation
    /// counts are kept and nothing is marked for the state file.
    pub fn replace_bans(&self, bans: impl IntoIterator<Item = Ban>) {
        let mut map = self.bans.write();
        map.clear();
        for b in bans {
            map.insert(canonical_ip(b.ip), b);
        }
        self.ban_count.store(map.len(), Ordering::Release);
    }

    /// Addresses whose violations are being counted.
    pub fn tracked(&self) -> usize {
        self.strikes.lock().len()
    }

    /// Violations at or before this instant are outside the window.
    fn horizon(&self, now: Timestamp) -> Timestamp {
        Timestamp::from_nanos(
            now.as_nanos()
                .saturating_sub(crate::time::duration_nanos(self.window)),
        )
    }

    fn insert_ban(&self, ban: Ban) {
        let mut bans = self.bans.write();
        bans.insert(ban.ip, ban);
        self.ban_count.store(bans.len(), Ordering::Release);
        self.dirty.store(true, Ordering::Release);
    }
}

fn write_atomically(path: &Path, st: &StateFile) -> Result<(), GuardError> {
    let json = serde_json::to_vec_pretty(st)
        .map_err(|e| GuardError::io(path, "cannot encode ban state", e.into()))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&json)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Make the rename durable; not all platforms allow opening a directory.
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    };
    write().map_err(|e| GuardError::io(path, "cannot write ban state", e))
}

impl BanStore for AutoBan {
    #[inline]
    fn is_banned(&self, ip: IpAddr, now: Timestamp) -> bool {
        if self.ban_count.load(Ordering::Acquire) == 0 {
            return false;
        }
        self.bans
            .read()
            .get(&canonical_ip(ip))
            .is_some_and(|b| b.active(now))
    }

    fn get(&self, ip: IpAddr, now: Timestamp) -> Option<Ban> {
        if self.ban_count.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.bans
            .read()
            .get(&canonical_ip(ip))
            .filter(|b| b.active(now))
            .cloned()
    }

    fn record_violation(&self, ip: IpAddr, now: Timestamp) -> Option<Ban> {
        let ip = canonical_ip(ip);
        if self.is_banned(ip, now) {
            return None;
        }
        let horizon = self.horizon(now);
        let triggered = {
            let mut strikes = self.strikes.lock();
            if !strikes.contains_key(&ip) && strikes.len() >= self.max_tracked {
                strikes.retain(|_, q| q.back().is_some_and(|t| *t > horizon));
                if strikes.len() >= self.max_tracked {
                    let victim = strikes
                        .iter()
                        .take(EVICTION_SAMPLE)
                        .min_by_key(|(_, q)| q.back().copied())
                        .map(|(k, _)| *k);
                    if let Some(v) = victim {
                        strikes.remove(&v);
                    }
                }
            }
            let q = strikes.entry(ip).or_default();
            while q.front().is_some_and(|t| *t <= horizon) {
                q.pop_front();
            }
            q.push_back(now);
            while q.len() > self.threshold {
                q.pop_front();
            }
            let hit = q.len() >= self.threshold;
            if hit {
                strikes.remove(&ip);
            }
            hit
        };
        if !triggered {
            return None;
        }
        let ban = Ban {
            ip,
            since: now,
            until: now.saturating_add(self.ban_for),
            reason: format!(
                "auto: {} violations in {}s",
                self.threshold,
                self.window.as_secs()
            ),
        };
        self.insert_ban(ban.clone());
        Some(ban)
    }

    fn ban(&self, ip: IpAddr, duration: Duration, reason: &str, now: Timestamp) -> Ban {
        let ban = Ban {
            ip: canonical_ip(ip),
            since: now,
            until: now.saturating_add(duration),
            reason: reason.to_string(),
        };
        self.insert_ban(ban.clone());
        ban
    }

    fn unban(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        self.strikes.lock().remove(&ip);
        let mut bans = self.bans.write();
        let had = bans.remove(&ip).is_some();
        self.ban_count.store(bans.len(), Ordering::Release);
        if had {
            self.dirty.store(true, Ordering::Release);
        }
        had
    }

    fn list(&self, now: Timestamp) -> Vec<Ban> {
        let mut v: Vec<Ban> = self
            .bans
            .read()
            .values()
            .filter(|b| b.active(now))
            .cloned()
            .collect();
        v.sort_by(|a, b| a.until.cmp(&b.until).then(a.ip.cmp(&b.ip)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }
    fn cfg(state_file: Option<PathBuf>) -> AutoBanConfig {
        AutoBanConfig {
            threshold: 3,
            window_secs: 10,
            ban_secs: 60,
            state_file,
            max_tracked: 1000,
        }
    }
    const T0: Timestamp = Timestamp::from_secs(1_700_000_000);
    fn at(secs: u64) -> Timestamp {
        T0.saturating_add(Duration::from_secs(secs))
    }

    #[test]
    fn bans_after_threshold_violations_within_the_window() {
        let ab = AutoBan::new(&cfg(None));
        let a = ip("198.51.100.7");
        assert_eq!(ab.record_violation(a, at(0)), None);
        assert_eq!(ab.record_violation(a, at(1)), None);
        assert!(!ab.is_banned(a, at(1)));
        let ban = ab
            .record_violation(a, at(2))
            .unwrap_or_else(|| panic!("third violation must ban"));
        assert_eq!(ban.until, at(62));
        assert_eq!(ban.reason, "auto: 3 violations in 10s");
        assert!(ab.is_banned(a, at(2)));
        assert!(
            ab.is_banned(ip("::ffff:198.51.100.7"), at(30)),
            "mapped form is the same IP"
        );
        assert!(!ab.is_banned(ip("198.51.100.8"), at(2)));
        // Further violations while banned do not re-ban.
        assert_eq!(ab.record_violation(a, at(3)), None);
    }

    #[test]
    fn violations_outside_the_window_do_not_count() {
        let ab = AutoBan::new(&cfg(None));
        let a = ip("2001:db8::1");
        ab.record_violation(a, at(0));
        ab.record_violation(a, at(5));
        // at(10): the violation at 0 is exactly one window old: out.
        assert_eq!(ab.record_violation(a, at(10)), None);
        assert!(ab.record_violation(a, at(11)).is_some());
    }

    #[test]
    fn bans_expire() {
        let ab = AutoBan::new(&cfg(None));
        let a = ip("10.0.0.1");
        ab.ban(a, Duration::from_secs(5), "manual", at(0));
        assert!(ab.is_banned(a, at(4)));
        assert!(!ab.is_banned(a, at(5)));
        assert_eq!(ab.list(at(5)), vec![]);
        ab.purge_expired(at(5));
        assert_eq!(ab.bans.read().len(), 0);
    }

    #[test]
    fn unban_lifts_a_ban_and_resets_strikes() {
        let ab = AutoBan::new(&cfg(None));
        let a = ip("10.0.0.1");
        for s in 0..3 {
            ab.record_violation(a, at(s));
        }
        assert!(ab.is_banned(a, at(3)));
        assert!(ab.unban(a));
        assert!(!ab.unban(a));
        assert!(!ab.is_banned(a, at(3)));
        assert_eq!(
            ab.record_violation(a, at(4)),
            None,
            "strikes start again from zero"
        );
    }

    #[test]
    fn bans_survive_a_reload_from_file_and_expired_ones_are_dropped() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("bans.json");
        let ab = AutoBan::load(&cfg(Some(file.clone())), at(0)).unwrap_or_else(|e| panic!("{e}"));
        ab.ban(
            ip("10.0.0.1"),
            Duration::from_secs(100),
            "manual: abuse report",
            at(0),
        );
        ab.ban(ip("10.0.0.2"), Duration::from_secs(10), "short", at(0));
        for s in 0..3 {
            ab.record_violation(ip("2001:db8::9"), at(s));
        }
        assert_eq!(ab.persist(at(3)).ok(), Some(true));
        assert_eq!(ab.persist(at(3)).ok(), Some(false), "unchanged: no write");
        assert!(!dir.path().join("bans.json.tmp").exists());

        let reloaded =
            AutoBan::load(&cfg(Some(file.clone())), at(20)).unwrap_or_else(|e| panic!("{e}"));
        let list: Vec<String> = reloaded
            .list(at(20))
            .iter()
            .map(|b| format!("{} {}", b.ip, b.reason))
            .collect();
        assert_eq!(
            list,
            [
                "2001:db8::9 auto: 3 violations in 10s",
                "10.0.0.1 manual: abuse report"
            ]
        );
        assert!(reloaded.is_banned(ip("10.0.0.1"), at(20)));
        assert!(
            !reloaded.is_banned(ip("10.0.0.2"), at(20)),
            "expired ban dropped"
        );
    }

    #[test]
    fn invalid_state_file_error_names_line_and_column() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("bans.json");
        std::fs::write(
            &file,
            "{\"version\": 1,\n \"bans\": [ {\"ip\": \"nope\"} ]}",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let e = AutoBan::load(&cfg(Some(file.clone())), at(0))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("bans.json:2:"), "{e}");
        assert!(e.contains("invalid ban state"), "{e}");
    }

    #[test]
    fn violation_tracker_is_bounded() {
        let mut c = cfg(None);
        c.max_tracked = 100;
        c.threshold = 5;
        let ab = AutoBan::new(&c);
        for i in 0..10_000u32 {
            ab.record_violation(IpAddr::V4(i.into()), at(u64::from(i % 5)));
            assert!(ab.tracked() <= 100);
        }
    }
}
