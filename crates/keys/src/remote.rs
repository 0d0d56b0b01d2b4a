//! Quota counters shared by several gateways (issue 7): the counter lives in Redis and every
//! admission costs one round trip, so a quota of N admits exactly N requests across all
//! gateways.
//!
//! - [`RemoteQuotas`] is the [`QuotaBackend`] whose counters only name their Redis key
//!   (`<prefix>:quota:<key id>:<scope>:<period>`); [`crate::KeyAuth::check_deferred`] hands
//!   such a counter back as a [`PendingQuota`] instead of counting it.
//! - [`acquire`] (feature `redis`) counts it with one atomic Lua script on the key of the
//!   calendar window (`…:<window start>`): read, compare with the limit, increment, all in one
//!   step on the server, so concurrent gateways never pass the limit.
//! - No double counting on retries: each admission carries a random nonce chosen by the
//!   gateway (never the client's request id, which a client could replay); the script stores
//!   its answer under the nonce for 10 s (far longer than a call's timeout), so re-sending the same call after a timeout
//!   returns the first answer instead of counting again.
//! - [`PendingQuota::resolve`] turns the answer into the admission (remaining quota, reset
//!   time) or the `quota_exceeded` rejection, exactly as a local counter would.
//! - [`read_usage`] (feature `redis`) fills usage views with the counters held in Redis (one
//!   `MGET`).
//! - [`SharedRates`] (feature `redis`): the plans' rate limits shared across gateways, on the
//!   guard's synchronised limiter (local GCRA pre-admission, pushed and pulled every sync
//!   interval by `RedisState::sync`; same error bound as the guard's shared limits).

use std::sync::Arc;

use crate::auth::{Admission, Rejection};
use crate::calendar::{Period, Window};
use crate::clock::from_unix_secs;
use crate::quota::{QuotaBackend, QuotaCounter, QuotaDecision};

/// The shared quota backend: counters named after their Redis keys.
#[derive(Debug, Clone)]
pub struct RemoteQuotas {
    prefix: String,
}

impl RemoteQuotas {
    /// Counters under `<prefix>:quota:`.
    pub fn new(prefix: &str) -> Self {
        RemoteQuotas {
            prefix: prefix.to_string(),
        }
    }
}

impl QuotaBackend for RemoteQuotas {
    fn counter(&self, key_id: &str, scope: &str, period: Period) -> Arc<dyn QuotaCounter> {
        Arc::new(RemoteCounter {
            key: format!("{}:quota:{key_id}:{scope}:{}", self.prefix, period.as_str()),
        })
    }
}

/// A counter kept in Redis. It cannot count synchronously: [`crate::KeyAuth::check`] (which
/// has no round trip) refuses with `quota_exceeded`; use `check_deferred`.
#[derive(Debug)]
struct RemoteCounter {
    key: String,
}

impl QuotaCounter for RemoteCounter {
    fn try_acquire(&self, _window: &Window, _limit: u64) -> QuotaDecision {
        QuotaDecision::Exhausted
    }

    fn used(&self, _window: &Window) -> u64 {
        0
    }

    fn remote_key(&self) -> Option<&str> {
        Some(&self.key)
    }
}

/// The Redis key of a shared counter (`remote_key`) in calendar window `window`.
pub fn window_key(remote_key: &str, window: &Window) -> String {
    format!("{remote_key}:{}", window.start)
}

/// A quota admission still to be counted in Redis: the counter, the calendar window the
/// request falls in and the limit.
#[derive(Clone)]
pub struct PendingQuota {
    /// The counter (its [`QuotaCounter::remote_key`] is set).
    pub counter: Arc<dyn QuotaCounter>,
    /// The window containing the request's time.
    pub window: Window,
    /// The quota of the window.
    pub limit: u64,
}

impl std::fmt::Debug for PendingQuota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingQuota")
            .field("key", &self.key())
            .field("window", &self.window)
            .field("limit", &self.limit)
            .finish()
    }
}

impl PendingQuota {
    /// The counter's Redis key without the window (empty for a local counter).
    pub fn key(&self) -> &str {
        self.counter.remote_key().unwrap_or("")
    }

    /// The admission with its quota fields filled, or the `quota_exceeded` rejection.
    pub fn resolve(
        &self,
        mut admission: Admission,
        decision: QuotaDecision,
    ) -> Result<Admission, Rejection> {
        let reset_at = from_unix_secs(self.window.end);
        match decision {
            QuotaDecision::Granted { used } => {
                admission.quota_limit = Some(self.limit);
                admission.quota_remaining = Some(self.limit.saturating_sub(used));
                admission.quota_reset_at = Some(reset_at);
                Ok(admission)
            }
            QuotaDecision::Exhausted => Err(Rejection::QuotaExceeded {
                key_id: admission.key_id,
                reset_at,
                limit: self.limit,
            }),
        }
    }
}

/// Counts one request unless the window's limit is reached; replays the stored answer for a
/// nonce already seen. KEYS: counter of the window, nonce. ARGV: limit, counter expiry (Unix
/// ms), nonce lifetime (ms). Returns the count including this request, or 0 when exhausted.
#[cfg(feature = "redis")]
const ACQUIRE: &str = r#"
local prev = redis.call('GET', KEYS[2])
if prev then return tonumber(prev) end
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local res = 0
if used < tonumber(ARGV[1]) then
  res = redis.call('INCR', KEYS[1])
  redis.call('PEXPIREAT', KEYS[1], ARGV[2])
end
redis.call('SET', KEYS[2], res, 'PX', ARGV[3])
return res
"#;

/// The script, hashed once (its SHA-1 names it in `EVALSHA`).
#[cfg(feature = "redis")]
static ACQUIRE_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(ACQUIRE));

/// The multiplexed async Redis connection type (re-exported for callers and tests).
#[cfg(feature = "redis")]
pub type Connection = redis::aio::MultiplexedConnection;

/// How long an answer is kept for a nonce, in milliseconds.
#[cfg(feature = "redis")]
const NONCE_TTL_MS: u64 = 10_000;

/// Counters are kept this long past the end of their window (for usage views), in seconds.
#[cfg(feature = "redis")]
const COUNTER_GRACE_SECS: i64 = 86_400;

/// Counts `pending` in Redis with one atomic script call. `nonce` identifies this admission:
/// calling again with the same nonce (a retry after a timeout) returns the first answer and
/// counts nothing.
#[cfg(feature = "redis")]
pub async fn acquire(
    conn: &mut impl redis::aio::ConnectionLike,
    pending: &PendingQuota,
    nonce: u128,
) -> redis::RedisResult<QuotaDecision> {
    let key = pending.key();
    let expire_ms = pending
        .window
        .end
        .saturating_add(COUNTER_GRACE_SECS)
        .saturating_mul(1000);
    let used: i64 = ACQUIRE_SCRIPT
        .key(window_key(key, &pending.window))
        .key(format!("{key}:nonce:{nonce:032x}"))
        .arg(pending.limit)
        .arg(expire_ms)
        .arg(NONCE_TTL_MS)
        .invoke_async(conn)
        .await?;
    Ok(match u64::try_from(used) {
        Ok(used) if used > 0 => QuotaDecision::Granted { used },
        _ => QuotaDecision::Exhausted,
    })
}

/// Fills the `used` of every entry that has a Redis key (from
/// [`crate::KeyAuth::usage_with_keys`]) with the counter in Redis, in one `MGET`; a missing
/// counter is 0. Entries without a key keep their local count.
#[cfg(feature = "redis")]
pub async fn read_usage(
    conn: &mut impl redis::aio::ConnectionLike,
    entries: Vec<(crate::QuotaUsage, Option<String>)>,
) -> redis::RedisResult<Vec<crate::QuotaUsage>> {
    let keys: Vec<&str> = entries.iter().filter_map(|(_, k)| k.as_deref()).collect();
    let mut values: std::vec::IntoIter<Option<u64>> = if keys.is_empty() {
        Vec::new().into_iter()
    } else {
        redis::cmd("MGET")
            .arg(&keys)
            .query_async::<Vec<Option<u64>>>(conn)
            .await?
            .into_iter()
    };
    Ok(entries
        .into_iter()
        .map(|(mut u, k)| {
            if k.is_some() {
                u.used = values.next().flatten().unwrap_or(0);
            }
            u
        })
        .collect())
}

/// Keys of one scope held here per shared rate limiter, at most (beyond that the least
/// recently active are evicted; see `SyncedLimiter`).
#[cfg(feature = "redis")]
pub const MAX_RATE_KEYS: usize = 1 << 20;

/// The [`crate::RateBackend`] of several gateways: each plan scope and limit gets one of the
/// guard's Redis-synchronised limiters (`SyncedLimiter`, scope `key:<scope>`), keyed by key
/// id. Requests are decided in memory; `RedisState::sync` exchanges the counts.
#[cfg(feature = "redis")]
#[derive(Debug, Clone)]
pub struct SharedRates(pub Arc<palisade_guard::redis_state::RedisState>);

#[cfg(feature = "redis")]
impl crate::RateBackend for SharedRates {
    fn buckets(&self, scope: &str, limit: &crate::RateLimit) -> Arc<dyn crate::rate::SharedRate> {
        let interval =
            std::time::Duration::from_nanos(u64::try_from(limit.interval_ns).unwrap_or(1));
        let burst = std::num::NonZeroU32::new(limit.burst).unwrap_or(std::num::NonZeroU32::MIN);
        Arc::new(KeyLimiter(
            palisade_guard::redis_state::RedisBackend(self.0.clone()).keyed_limiter(
                &format!("key:{scope}"),
                interval,
                burst,
                MAX_RATE_KEYS,
            ),
        ))
    }
}

/// One scope's shared buckets, checked by key id.
#[cfg(feature = "redis")]
#[derive(Debug)]
struct KeyLimiter(Arc<palisade_guard::redis_state::SyncedLimiter>);

#[cfg(feature = "redis")]
impl crate::rate::SharedRate for KeyLimiter {
    fn check(&self, key_id: &str, now_ns: i64) -> crate::RateDecision {
        use palisade_guard::{LimitKey, RateLimit as _, Timestamp};
        let now = Timestamp::from_nanos(u64::try_from(now_ns).unwrap_or(0));
        let d = self.0.check_at(LimitKey::Str(key_id), now);
        if d.allowed {
            crate::RateDecision::Allowed {
                remaining: d.remaining,
            }
        } else {
            let ns = d.retry_after.unwrap_or_default().as_nanos();
            crate::RateDecision::Limited {
                retry_after_ns: i64::try_from(ns).unwrap_or(i64::MAX),
            }
        }
    }
}
