//! Shared state in Redis (issue 7, feature `redis`): a GCRA [`RedisLimiter`] and a
//! [`RedisBans`] store that several gateways share, behind the same [`RateLimit`] and
//! [`BanStore`] traits as the local types.
//!
//! - Limits: one Lua script per check runs GCRA atomically on the server, timed by the server's
//!   `TIME`, so every gateway judges on one clock and none double-counts. It costs one round
//!   trip per check; the `now` given to `check_at` is not used.
//! - Bans: a Redis hash is the truth; each gateway answers `is_banned` from a local copy that
//!   [`RedisBans::sync`] refreshes (call it every second from a background task): a ban made
//!   through another gateway is enforced within one sync interval. Violations are counted in a
//!   per-address sorted set (exact sliding window) by a script that also writes the ban.
//! - Failures: every Redis error is counted ([`RedisState::errors`]) and answered by the
//!   [`FailurePolicy`]: `open` lets requests through, `closed` refuses them. A broken
//!   connection is dropped and reopened on the next call, so service recovers when Redis does.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::autoban::{Ban, BanStore};
use crate::config::{AutoBanConfig, Rate};
use crate::error::GuardError;
use crate::limiter::{Decision, LimitKey, RateLimit};
use crate::lists::canonical_ip;
use crate::time::Timestamp;

/// What to answer when Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FailurePolicy {
    /// Let requests through (availability first).
    #[default]
    Open,
    /// Refuse requests (protection first).
    Closed,
}

/// A small pool of Redis connections with error counting.
pub struct RedisState {
    client: redis::Client,
    conns: Box<[Mutex<Option<redis::Connection>>]>,
    next: AtomicUsize,
    prefix: String,
    policy: FailurePolicy,
    timeout: Duration,
    errors: AtomicU64,
}

impl std::fmt::Debug for RedisState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisState")
            .field("prefix", &self.prefix)
            .field("policy", &self.policy)
            .field("pool", &self.conns.len())
            .field("errors", &self.errors())
            .finish()
    }
}

impl RedisState {
    /// Connects lazily to `url` (`redis://host:port/db`); keys start with `prefix`.
    pub fn new(
        url: &str,
        prefix: &str,
        policy: FailurePolicy,
        timeout: Duration,
        pool: usize,
    ) -> Result<Arc<Self>, GuardError> {
        let client = redis::Client::open(url)
            .map_err(|e| GuardError::Config(format!("invalid redis url {url:?}: {e}")))?;
        Ok(Arc::new(RedisState {
            client,
            conns: (0..pool.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
            prefix: prefix.to_string(),
            policy,
            timeout,
            errors: AtomicU64::new(0),
        }))
    }

    /// Redis errors since start (for `/metrics`).
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// The failure policy.
    pub fn policy(&self) -> FailurePolicy {
        self.policy
    }

    /// Runs `f` on a pooled connection; `None` (and one error counted) if Redis fails.
    fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Option<T> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        let slot = self.conns.get(i)?;
        let mut guard = slot.lock();
        if guard.is_none() {
            match self.client.get_connection_with_timeout(self.timeout) {
                Ok(c) => {
                    let _ = c.set_read_timeout(Some(self.timeout));
                    let _ = c.set_write_timeout(Some(self.timeout));
                    *guard = Some(c);
                }
                Err(_) => {
                    self.errors.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            }
        }
        let conn = guard.as_mut()?;
        match f(conn) {
            Ok(v) => Some(v),
            Err(_) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                *guard = None;
                None
            }
        }
    }
}

/// GCRA on the server, in microseconds. Returns {allowed, wait_us, tat_minus_now_us}.
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local T = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if now < tat - tau then
  return {0, tat - tau - now, tat - now}
end
local new = tat + T
redis.call('SET', KEYS[1], string.format('%d', new), 'PX', math.floor((new - now) / 1000) + 1)
return {1, 0, new - now}
"#;

/// A rate limit shared through Redis.
#[derive(Debug)]
pub struct RedisLimiter {
    state: Arc<RedisState>,
    name: String,
    rate: Rate,
    t_us: u64,
    tau_us: u64,
    script: redis::Script,
}

impl RedisLimiter {
    /// A limit named `name` (part of the Redis key, e.g. `ip` or `route:api`).
    pub fn new(state: Arc<RedisState>, name: &str, rate: Rate) -> Self {
        let t_us = u64::try_from(rate.replenish_interval().as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        RedisLimiter {
            state,
            name: name.to_string(),
            rate,
            t_us,
            tau_us: t_us.saturating_mul(u64::from(rate.burst.get() - 1)),
            script: redis::Script::new(GCRA),
        }
    }

    fn key(&self, key: LimitKey<'_>) -> String {
        match key {
            LimitKey::Ip(ip) => format!(
                "{}:rl:{}:{}",
                self.state.prefix,
                self.name,
                canonical_ip(ip)
            ),
            LimitKey::Str(s) => format!("{}:rl:{}:k:{}", self.state.prefix, self.name, s),
        }
    }

    fn on_failure(&self) -> Decision {
        let burst = self.rate.burst.get();
        match self.state.policy {
            FailurePolicy::Open => Decision {
                allowed: true,
                limit: burst,
                remaining: burst,
                reset_after: Duration::ZERO,
                retry_after: None,
            },
            FailurePolicy::Closed => Decision {
                allowed: false,
                limit: burst,
                remaining: 0,
                reset_after: Duration::from_secs(1),
                retry_after: Some(Duration::from_secs(1)),
            },
        }
    }
}

impl RateLimit for RedisLimiter {
    fn check(&self, key: LimitKey<'_>) -> Decision {
        let k = self.key(key);
        let r: Option<(i64, i64, i64)> = self.state.with_conn(|c| {
            self.script
                .key(&k)
                .arg(self.t_us)
                .arg(self.tau_us)
                .invoke(c)
        });
        let Some((allowed, wait, ahead)) = r else {
            return self.on_failure();
        };
        let burst = self.rate.burst.get();
        let us = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
        if allowed == 1 {
            let free = (self.tau_us + self.t_us).saturating_sub(u64::try_from(ahead).unwrap_or(0));
            let remaining = u32::try_from(free / self.t_us)
                .unwrap_or(u32::MAX)
                .min(burst);
            Decision {
                allowed: true,
                limit: burst,
                remaining,
                reset_after: us(ahead),
                retry_after: None,
            }
        } else {
            Decision {
                allowed: false,
                limit: burst,
                remaining: 0,
                reset_after: us(ahead),
                retry_after: Some(us(wait)),
            }
        }
    }

    /// Same as `check`: the server's clock judges.
    fn check_at(&self, key: LimitKey<'_>, _now: Timestamp) -> Decision {
        self.check(key)
    }

    fn rate(&self) -> Rate {
        self.rate
    }

    /// Keys expire in Redis by themselves; nothing is held locally.
    fn len(&self) -> usize {
        0
    }

    fn sweep(&self) {}
}

/// Counts a violation in a sliding window; bans when the count reaches the threshold.
/// KEYS: violations zset, bans hash. ARGV: now_ns, window_ns, threshold, member, ip, ban_json.
/// Returns 1 when this violation banned the address.
const VIOLATION: &str = r#"
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now - window))
redis.call('ZADD', KEYS[1], string.format('%d', now), ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.floor(window / 1000000) + 1)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], ARGV[5], ARGV[6])
  return 1
end
return 0
"#;

/// Bans shared through Redis, answered from a local copy refreshed by [`RedisBans::sync`].
#[derive(Debug)]
pub struct RedisBans {
    state: Arc<RedisState>,
    threshold: u32,
    window: Duration,
    ban_for: Duration,
    local: RwLock<HashMap<IpAddr, Ban>>,
    seq: AtomicU64,
    script: redis::Script,
}

impl RedisBans {
    /// A ban store with `cfg`'s threshold, window and duration (its `state_file` is unused).
    pub fn new(state: Arc<RedisState>, cfg: &AutoBanConfig) -> Self {
        RedisBans {
            state,
            threshold: cfg.threshold.max(1),
            window: Duration::from_secs(cfg.window_secs),
            ban_for: Duration::from_secs(cfg.ban_secs),
            local: RwLock::new(HashMap::new()),
            seq: AtomicU64::new(0),
            script: redis::Script::new(VIOLATION),
        }
    }

    fn bans_key(&self) -> String {
        format!("{}:bans", self.state.prefix)
    }

    /// Replaces the local copy with the bans in Redis in force at `now`, and deletes expired
    /// ones there. Returns false (and keeps the old copy) if Redis fails.
    pub fn sync(&self, now: Timestamp) -> bool {
        let key = self.bans_key();
        let all: Option<HashMap<String, String>> = self
            .state
            .with_conn(|c| redis::cmd("HGETALL").arg(&key).query(c));
        let Some(all) = all else { return false };
        let mut fresh = HashMap::new();
        let mut expired = Vec::new();
        for (field, json) in all {
            match serde_json::from_str::<Ban>(&json) {
                Ok(b) if b.active(now) => {
                    fresh.insert(canonical_ip(b.ip), b);
                }
                _ => expired.push(field),
            }
        }
        if !expired.is_empty() {
            let _: Option<i64> = self
                .state
                .with_conn(|c| redis::cmd("HDEL").arg(&key).arg(&expired).query(c));
        }
        *self.local.write() = fresh;
        true
    }

    fn store(&self, ban: &Ban) -> bool {
        let Ok(json) = serde_json::to_string(ban) else {
            return false;
        };
        let key = self.bans_key();
        let ip = ban.ip.to_string();
        self.state
            .with_conn(|c| {
                redis::cmd("HSET")
                    .arg(&key)
                    .arg(&ip)
                    .arg(&json)
                    .query::<i64>(c)
            })
            .is_some()
    }
}

impl BanStore for RedisBans {
    fn is_banned(&self, ip: IpAddr, now: Timestamp) -> bool {
        self.local
            .read()
            .get(&canonical_ip(ip))
            .is_some_and(|b| b.active(now))
    }

    fn get(&self, ip: IpAddr, now: Timestamp) -> Option<Ban> {
        self.local
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
        let json = serde_json::to_string(&ban).ok()?;
        let member = format!(
            "{}-{}",
            now.as_nanos(),
            self.seq.fetch_add(1, Ordering::Relaxed)
        );
        let zkey = format!("{}:viol:{}", self.state.prefix, ip);
        let bkey = self.bans_key();
        let window_ns = u64::try_from(self.window.as_nanos()).unwrap_or(u64::MAX);
        let banned: i64 = self.state.with_conn(|c| {
            self.script
                .key(&zkey)
                .key(&bkey)
                .arg(now.as_nanos())
                .arg(window_ns)
                .arg(self.threshold)
                .arg(&member)
                .arg(ip.to_string())
                .arg(&json)
                .invoke(c)
        })?;
        if banned != 1 {
            return None;
        }
        self.local.write().insert(ip, ban.clone());
        Some(ban)
    }

    fn ban(&self, ip: IpAddr, duration: Duration, reason: &str, now: Timestamp) -> Ban {
        let ban = Ban {
            ip: canonical_ip(ip),
            since: now,
            until: now.saturating_add(duration),
            reason: reason.to_string(),
        };
        self.store(&ban);
        self.local.write().insert(ban.ip, ban.clone());
        ban
    }

    fn unban(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        let key = self.bans_key();
        let removed: Option<i64> = self
            .state
            .with_conn(|c| redis::cmd("HDEL").arg(&key).arg(ip.to_string()).query(c));
        let local = self.local.write().remove(&ip).is_some();
        local || removed.unwrap_or(0) > 0
    }

    fn list(&self, now: Timestamp) -> Vec<Ban> {
        let mut v: Vec<Ban> = self
            .local
            .read()
            .values()
            .filter(|b| b.active(now))
            .cloned()
            .collect();
        v.sort_by(|a, b| a.until.cmp(&b.until).then(a.ip.cmp(&b.ip)));
        v
    }
}
