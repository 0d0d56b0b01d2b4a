//! Shared state in Redis (issue 7, feature `redis`): rate limits and bans that several gateways
//! share, behind the same [`RateLimit`] and [`BanStore`] traits as the local types, handed out
//! by [`RedisBackend`] (a [`StateBackend`]). No Redis I/O happens on the request path: each
//! gateway answers from process memory and [`RedisState::sync`] (every `sync_interval`, from a
//! background task) exchanges what changed. See `docs/REDIS.md`.
//!
//! - **Limits** ([`SyncedLimiter`]): local pre-admission. Each gateway runs GCRA per key in
//!   memory and counts what it admitted; a sync pushes those counts to Redis, where one Lua
//!   script per batch advances each key's shared theoretical arrival time (TAT) by
//!   `count × interval`, and pulls the shared TAT back for every key active here (TAT ahead
//!   of now or counts to push), so every gateway then judges with the others' usage included. Error bound: between two syncs a gateway does not see what the
//!   others admitted, so across `N` gateways at most `(N − 1) × (burst + rate × sync_interval)`
//!   requests beyond the limit are admitted per sync interval; the excess is charged to the
//!   shared TAT, so over a long window the admitted total still converges to the limit.
//! - **Bans** ([`RedisBans`]): a Redis hash is the truth. Bans made here (auto-ban or the
//!   admin API) and unbans are applied locally at once and pushed at the next sync; violations
//!   are also counted in a per-address sorted set in Redis (exact sliding window, atomic
//!   script), so violations through different gateways add up. Each sync replaces the local
//!   copy with the hash: a ban made through another gateway is enforced within one interval.
//! - **Failures**: every failed Redis operation is counted ([`RedisState::errors`]); the first
//!   failure marks the state down (logged once), the next success marks it up (logged). While
//!   down, the limiters and bans keep answering from memory (each gateway then limits alone);
//!   the gateway applies the [`FailurePolicy`] to what needs Redis (`closed`: refuse). A broken
//!   connection is dropped and reopened (at most one attempt per [`RECONNECT_BACKOFF`]), so
//!   service recovers when Redis does.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisError};
use serde::{Deserialize, Serialize};

use crate::autoban::{AutoBan, Ban, BanStore};
use crate::backend::StateBackend;
use crate::config::{AutoBanConfig, Rate};
use crate::error::GuardError;
use crate::limiter::{Decision, LimitKey, RateLimit};
use crate::lists::canonical_ip;
use crate::time::{SharedClock, Timestamp};

pub use redis;

/// What the gateway does with requests that need Redis while it cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FailurePolicy {
    /// Serve them (availability first): limits and bans act per gateway from memory, quotas
    /// are not counted.
    #[default]
    Open,
    /// Refuse them with 503 (protection first).
    Closed,
}

/// Minimum time between two connection attempts while Redis is unreachable; calls in between
/// fail at once instead of waiting for a connect timeout.
pub const RECONNECT_BACKOFF: Duration = Duration::from_millis(200);

/// Keys sent to Redis per script call during a sync.
const SYNC_BATCH: usize = 500;

/// Local violations waiting for a sync, at most (more are counted locally only).
const MAX_PENDING_VIOLATIONS: usize = 10_000;

/// The connection to Redis (one multiplexed connection, reopened after failures), health and
/// error accounting, and the limiters and ban stores to synchronise.
pub struct RedisState {
    client: redis::Client,
    conn: ArcSwapOption<MultiplexedConnection>,
    connecting: AtomicBool,
    base: Instant,
    /// Milliseconds since `base` before which no new connection is attempted.
    next_attempt_ms: AtomicU64,
    prefix: String,
    policy: FailurePolicy,
    timeout: Duration,
    clock: SharedClock,
    errors: AtomicU64,
    up: AtomicBool,
    syncing: AtomicBool,
    /// Bumped when a connection error drops the connections (thread-local ones included).
    generation: AtomicU64,
    limiters: Mutex<Vec<Weak<SyncedLimiter>>>,
    bans: Mutex<Vec<Weak<RedisBans>>>,
    /// Distinguishes this process's violation records from other gateways'.
    node: u64,
}

impl std::fmt::Debug for RedisState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisState")
            .field("prefix", &self.prefix)
            .field("policy", &self.policy)
            .field("up", &self.is_up())
            .field("errors", &self.errors())
            .finish_non_exhaustive()
    }
}

thread_local! {
    /// The calling thread's connection: (state address, generation, connection).
    static LOCAL_CONN: RefCell<Option<(usize, u64, MultiplexedConnection)>> =
        const { RefCell::new(None) };
}

fn is_connection_error(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_unrecoverable_error()
}

impl RedisState {
    /// State for `url` (`redis://host:port/db`; nothing is connected yet); keys start with
    /// `prefix`; every Redis operation times out after `timeout`; syncs judge time by `clock`
    /// (give the guard the same clock).
    pub fn new(
        url: &str,
        prefix: &str,
        policy: FailurePolicy,
        timeout: Duration,
        clock: SharedClock,
    ) -> Result<Arc<Self>, GuardError> {
        let client = redis::Client::open(url)
            .map_err(|e| GuardError::Config(format!("invalid redis url: {e}")))?;
        let mut seed = std::collections::hash_map::RandomState::new().hash_one(url);
        seed ^= u64::from(std::process::id()) << 32;
        Ok(Arc::new(RedisState {
            client,
            conn: ArcSwapOption::empty(),
            connecting: AtomicBool::new(false),
            base: Instant::now(),
            next_attempt_ms: AtomicU64::new(0),
            prefix: prefix.to_string(),
            policy,
            timeout,
            clock,
            errors: AtomicU64::new(0),
            up: AtomicBool::new(true),
            syncing: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            limiters: Mutex::new(Vec::new()),
            bans: Mutex::new(Vec::new()),
            node: seed,
        }))
    }

    /// Failed Redis operations since start (for `/metrics`).
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Whether the last Redis operation succeeded (true until the first failure).
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// The failure policy.
    pub fn policy(&self) -> FailurePolicy {
        self.policy
    }

    /// Whether requests that need Redis must be refused now: it is down and the policy is
    /// `closed`.
    #[inline]
    pub fn refuses(&self) -> bool {
        self.policy == FailurePolicy::Closed && !self.up.load(Ordering::Relaxed)
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A handle on the shared connection (used by the sync task), connecting first if there
    /// is none. `None` is counted as a failure.
    pub async fn connection(&self) -> Option<MultiplexedConnection> {
        if let Some(c) = self.conn.load_full() {
            return Some((*c).clone());
        }
        let c = self.connect(true).await?;
        self.conn.store(Some(Arc::new(c.clone())));
        Some(c)
    }

    /// A connection of the calling thread, made on its first use there, for the request path:
    /// its I/O task runs on the calling thread's runtime (each Pingora worker has its own), so a
    /// call does not hop to another thread and back. Dropped with the others after a
    /// connection error. `None` is counted as a failure.
    pub async fn local_connection(&self) -> Option<MultiplexedConnection> {
        let id = self as *const Self as usize;
        let generation = self.generation.load(Ordering::Acquire);
        let cached = LOCAL_CONN.with(|l| match &*l.borrow() {
            Some((i, g, c)) if *i == id && *g == generation => Some(c.clone()),
            _ => None,
        });
        if cached.is_some() {
            return cached;
        }
        let c = self.connect(false).await?;
        LOCAL_CONN.with(|l| *l.borrow_mut() = Some((id, generation, c.clone())));
        Some(c)
    }

    /// Opens a connection. While Redis is down at most one attempt is made per
    /// [`RECONNECT_BACKOFF`]; other callers meanwhile get `None` at once (no request waits for
    /// a connect timeout). `single`: at most one such attempt at a time.
    async fn connect(&self, single: bool) -> Option<MultiplexedConnection> {
        let now_ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        if !self.is_up() && now_ms < self.next_attempt_ms.load(Ordering::Relaxed) {
            self.count_failure();
            return None;
        }
        if single
            && self
                .connecting
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            self.count_failure();
            return None;
        }
        let backoff = u64::try_from(RECONNECT_BACKOFF.as_millis()).unwrap_or(200);
        self.next_attempt_ms
            .store(now_ms.saturating_add(backoff), Ordering::Relaxed);
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let r = self
            .client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await;
        if single {
            self.connecting.store(false, Ordering::Release);
        }
        match r {
            Ok(c) => Some(c),
            Err(e) => {
                self.failed(&e);
                None
            }
        }
    }

    /// Records a failed operation: counted, the state marked down (logged on the change), and
    /// the connection dropped if the error concerns it.
    pub fn failed(&self, e: &RedisError) {
        if is_connection_error(e) {
            self.conn.store(None);
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        if self.count_failure() {
            tracing::warn!(error = %e, policy = ?self.policy, "redis unreachable: shared limits, quotas and bans degrade per the failure policy");
        }
    }

    /// Counts a failure; true if the state just went down.
    fn count_failure(&self) -> bool {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.up.swap(false, Ordering::AcqRel)
    }

    /// Records a successful operation (the state marked up, logged at warn level on the
    /// change, to pair with the failure line).
    pub fn succeeded(&self) {
        if !self.up.swap(true, Ordering::AcqRel) {
            tracing::warn!("redis reachable again: shared state resumed");
        }
    }

    /// Runs `f` on the shared connection, accounting for the outcome; `None` on failure.
    pub async fn run<T, F, Fut>(&self, f: F) -> Option<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.connection().await?;
        match f(conn).await {
            Ok(v) => {
                self.succeeded();
                Some(v)
            }
            Err(e) => {
                self.failed(&e);
                None
            }
        }
    }

    /// Exchanges state with Redis: pushes what every live limiter admitted and every ban
    /// change and violation, then pulls the shared TATs and bans. Call every sync interval
    /// from a background task (never from the request path). Returns false if Redis failed
    /// (what was not pushed is kept for the next sync). Concurrent calls return false at once.
    pub async fn sync(&self) -> bool {
        if self
            .syncing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        let ok = self.sync_inner().await;
        self.syncing.store(false, Ordering::Release);
        ok
    }

    async fn sync_inner(&self) -> bool {
        let now = self.clock.now();
        let limiters: Vec<Arc<SyncedLimiter>> = {
            let mut v = self.limiters.lock();
            v.retain(|w| w.strong_count() > 0);
            v.iter().filter_map(Weak::upgrade).collect()
        };
        let bans: Vec<Arc<RedisBans>> = {
            let mut v = self.bans.lock();
            v.retain(|w| w.strong_count() > 0);
            v.iter().filter_map(Weak::upgrade).collect()
        };
        let Some(mut conn) = self.connection().await else {
            return false;
        };
        let mut ok = true;
        for l in &limiters {
            if let Err(e) = l.sync(&mut conn, now).await {
                self.failed(&e);
                ok = false;
                break;
            }
        }
        if ok {
            for b in &bans {
                if let Err(e) = b.sync(&mut conn, now).await {
                    self.failed(&e);
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            // A ping proves the connection even when there was nothing to exchange.
            match redis::cmd("PING").query_async::<String>(&mut conn).await {
                Ok(_) => self.succeeded(),
                Err(e) => {
                    self.failed(&e);
                    ok = false;
                }
            }
        }
        ok
    }
}

/// The [`StateBackend`] that hands out Redis-synchronised limiters and bans.
#[derive(Debug, Clone)]
pub struct RedisBackend(pub Arc<RedisState>);

impl RedisBackend {
    /// A keyed limiter synchronised like the guard's, for limits whose rate is not a whole
    /// number per second or minute (API-key plans): one request per `interval`, `burst` at
    /// once, at most `max_keys` keys held here. Registered for the sync like
    /// [`StateBackend::limiter`]'s.
    pub fn keyed_limiter(
        &self,
        scope: &str,
        interval: Duration,
        burst: std::num::NonZeroU32,
        max_keys: usize,
    ) -> Arc<SyncedLimiter> {
        let l = Arc::new(SyncedLimiter::with_interval(
            self.0.clone(),
            scope,
            interval,
            burst,
            Some(max_keys),
        ));
        self.0.limiters.lock().push(Arc::downgrade(&l));
        l
    }
}

impl StateBackend for RedisBackend {
    fn limiter(&self, scope: &str, rate: Rate, keyed: bool, max_keys: usize) -> Arc<dyn RateLimit> {
        let l = Arc::new(SyncedLimiter::new(
            self.0.clone(),
            scope,
            rate,
            keyed.then_some(max_keys),
        ));
        self.0.limiters.lock().push(Arc::downgrade(&l));
        l
    }

    fn bans(&self, cfg: &AutoBanConfig) -> Arc<dyn BanStore> {
        let b = Arc::new(RedisBans::new(self.0.clone(), cfg));
        self.0.bans.lock().push(Arc::downgrade(&b));
        b
    }
}

/// Pushes admitted counts and pulls shared TATs, in microseconds.
/// KEYS: limiter keys. ARGV: now_us, interval_us, then one admitted count per key.
/// Returns, per key, the shared TAT minus now (µs, ≥ 0).
const GCRA_SYNC: &str = r#"
local now = tonumber(ARGV[1])
local T = tonumber(ARGV[2])
local out = {}
for i, k in ipairs(KEYS) do
  local n = tonumber(ARGV[i + 2])
  local tat = tonumber(redis.call('GET', k) or now)
  if tat < now then tat = now end
  if n > 0 then
    tat = tat + n * T
    redis.call('SET', k, string.format('%d', tat), 'PX', math.floor((tat - now) / 1000) + 1)
  end
  out[i] = tat - now
end
return out
"#;

static GCRA_SYNC_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(GCRA_SYNC));

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Theoretical arrival time, nanoseconds since the Unix epoch.
    tat: u64,
    /// Requests admitted here since the last sync.
    pending: u32,
    /// The key is a hashed string, not an address.
    is_str: bool,
}

type FastHash = foldhash::fast::RandomState;

/// A GCRA limit admitted locally and synchronised through Redis (see the module docs for the
/// error bound). Keyed state is capped at `max_keys` entries per gateway.
#[derive(Debug)]
pub struct SyncedLimiter {
    state: Arc<RedisState>,
    scope: String,
    rate: Rate,
    keyed: bool,
    t_ns: u64,
    tau_ns: u64,
    shards: Box<[Mutex<HashMap<u128, Slot, FastHash>>]>,
    shard_cap: usize,
    mask: usize,
    hasher: FastHash,
    /// Admitted counts lost to eviction before a sync (each one is an undercount of one).
    lost: AtomicU64,
}

/// Fixed seeds for string keys: every gateway must map a string to the same Redis key.
const STR_SEEDS: (u64, u64) = (0x5041_4c49_5341_4445, 0x7265_6469_735f_6b31);

impl SyncedLimiter {
    /// A limiter named `scope` (part of the Redis key): one bucket per key holding at most
    /// `Some(max_keys)` keys here, or one bucket for everyone (`None`).
    pub fn new(state: Arc<RedisState>, scope: &str, rate: Rate, keyed: Option<usize>) -> Self {
        Self::build(state, scope, rate, rate.replenish_interval(), keyed)
    }

    /// Like [`Self::new`] with one request per `interval` (at least 1 µs) and `burst` at once;
    /// [`RateLimit::rate`] then reports the nearest whole rate per second or minute (for
    /// display only: the limiter runs on `interval`).
    pub fn with_interval(
        state: Arc<RedisState>,
        scope: &str,
        interval: Duration,
        burst: std::num::NonZeroU32,
        keyed: Option<usize>,
    ) -> Self {
        let nanos = interval.as_nanos().max(1);
        let (amount, period) = if nanos <= 1_000_000_000 {
            (1_000_000_000 / nanos, crate::config::RatePeriod::Second)
        } else {
            (
                (60_000_000_000 / nanos).max(1),
                crate::config::RatePeriod::Minute,
            )
        };
        let amount = std::num::NonZeroU32::new(u32::try_from(amount).unwrap_or(u32::MAX))
            .unwrap_or(std::num::NonZeroU32::MIN);
        let rate = Rate {
            amount,
            period,
            burst,
        };
        Self::build(state, scope, rate, interval, keyed)
    }

    fn build(
        state: Arc<RedisState>,
        scope: &str,
        rate: Rate,
        interval: Duration,
        keyed: Option<usize>,
    ) -> Self {
        let max_keys = keyed.unwrap_or(1);
        let t_ns = u64::try_from(interval.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1_000);
        let max_keys = max_keys.max(1);
        let mut n = 16usize;
        while n > max_keys {
            n /= 2;
        }
        SyncedLimiter {
            state,
            scope: scope.to_string(),
            rate,
            keyed: keyed.is_some(),
            t_ns,
            tau_ns: t_ns.saturating_mul(u64::from(rate.burst.get() - 1)),
            shards: (0..n)
                .map(|_| Mutex::new(HashMap::with_hasher(FastHash::default())))
                .collect(),
            shard_cap: (max_keys / n).max(1),
            mask: n - 1,
            hasher: FastHash::default(),
            lost: AtomicU64::new(0),
        }
    }

    /// Admitted counts lost to eviction before they were synchronised.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// The map key and whether it is a hashed string.
    #[inline]
    fn slot_key(key: LimitKey<'_>) -> (u128, bool) {
        match key {
            LimitKey::Ip(ip) => match ip.to_canonical() {
                IpAddr::V4(a) => (u128::from(a.to_ipv6_mapped()), false),
                IpAddr::V6(a) => (u128::from(a), false),
            },
            LimitKey::Str(s) => {
                let a = foldhash::fast::FixedState::with_seed(STR_SEEDS.0).hash_one(s);
                let b = foldhash::fast::FixedState::with_seed(STR_SEEDS.1).hash_one(s);
                ((u128::from(a) << 64) | u128::from(b), true)
            }
        }
    }

    fn redis_key(&self, k: u128, is_str: bool) -> String {
        if !self.keyed {
            format!("{}:rl:{}", self.state.prefix, self.scope)
        } else if is_str {
            format!("{}:rl:{}:k:{k:032x}", self.state.prefix, self.scope)
        } else {
            let ip = IpAddr::V6(Ipv6Addr::from(k)).to_canonical();
            format!("{}:rl:{}:{ip}", self.state.prefix, self.scope)
        }
    }

    #[inline]
    fn shard(&self, k: u128) -> &Mutex<HashMap<u128, Slot, FastHash>> {
        let i = (self.hasher.hash_one(k) as usize) & self.mask;
        self.shards.get(i).unwrap_or(&self.shards[0])
    }

    #[cold]
    fn make_room(&self, m: &mut HashMap<u128, Slot, FastHash>, now: u64) {
        m.retain(|_, s| s.tat > now || s.pending > 0);
        if m.len() < self.shard_cap {
            return;
        }
        let mut tats: Vec<u64> = m.values().map(|s| s.tat).collect();
        let k = (tats.len() / 8).saturating_sub(1);
        let (_, cut, _) = tats.select_nth_unstable(k);
        let cut = *cut;
        let mut lost = 0u64;
        m.retain(|_, s| {
            let keep = s.tat > cut;
            if !keep {
                lost += u64::from(s.pending);
            }
            keep
        });
        self.lost.fetch_add(lost, Ordering::Relaxed);
    }

    /// One sync: push admitted counts, pull shared TATs (see [`RedisState::sync`]). On error
    /// the counts are put back for the next sync.
    async fn sync(
        &self,
        conn: &mut MultiplexedConnection,
        now: Timestamp,
    ) -> redis::RedisResult<()> {
        let now_ns = now.as_nanos();
        let mut batch: Vec<(u128, u32, bool)> = Vec::new();
        for s in self.shards.iter() {
            let mut m = s.lock();
            m.retain(|_, s| s.tat > now_ns || s.pending > 0);
            // What is left is active here (TAT ahead) or has counts to push: both are
            // exchanged, so a key busy on several gateways sees the others' usage each sync.
            for (k, slot) in m.iter_mut() {
                batch.push((*k, slot.pending, slot.is_str));
                slot.pending = 0;
            }
        }
        let script = &*GCRA_SYNC_SCRIPT;
        let now_us = now_ns / 1_000;
        let t_us = (self.t_ns / 1_000).max(1);
        for (i, chunk) in batch.chunks(SYNC_BATCH).enumerate() {
            let mut inv = script.prepare_invoke();
            inv.arg(now_us).arg(t_us);
            for (k, n, is_str) in chunk {
                inv.key(self.redis_key(*k, *is_str)).arg(*n);
            }
            match inv.invoke_async::<Vec<i64>>(conn).await {
                Ok(aheads) => {
                    for ((k, _, is_str), ahead) in chunk.iter().zip(aheads) {
                        let ahead_ns = u64::try_from(ahead).unwrap_or(0).saturating_mul(1_000);
                        let mut m = self.shard(*k).lock();
                        if let Some(slot) = m.get_mut(k) {
                            slot.tat = slot.tat.max(now_ns.saturating_add(ahead_ns));
                        } else if m.len() < self.shard_cap {
                            m.insert(
                                *k,
                                Slot {
                                    tat: now_ns.saturating_add(ahead_ns),
                                    pending: 0,
                                    is_str: *is_str,
                                },
                            );
                        }
                    }
                }
                Err(e) => {
                    // Not pushed (or unknown): keep the counts for the next sync.
                    for (k, n, is_str) in batch.iter().skip(i * SYNC_BATCH) {
                        let mut m = self.shard(*k).lock();
                        let slot = m.entry(*k).or_insert(Slot {
                            tat: now_ns,
                            pending: 0,
                            is_str: *is_str,
                        });
                        slot.pending = slot.pending.saturating_add(*n);
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

impl RateLimit for SyncedLimiter {
    fn check(&self, key: LimitKey<'_>) -> Decision {
        self.check_at(key, self.state.clock.now())
    }

    fn check_at(&self, key: LimitKey<'_>, now: Timestamp) -> Decision {
        let (k, is_str) = if !self.keyed {
            (0, false)
        } else {
            Self::slot_key(key)
        };
        let now = now.as_nanos();
        let burst = self.rate.burst.get();
        let mut m = self.shard(k).lock();
        if m.len() >= self.shard_cap && !m.contains_key(&k) {
            self.make_room(&mut m, now);
        }
        let slot = m.entry(k).or_insert(Slot {
            tat: now,
            pending: 0,
            is_str,
        });
        let tat = slot.tat.max(now);
        if now.saturating_add(self.tau_ns) < tat {
            let ahead = tat - now;
            return Decision {
                allowed: false,
                limit: burst,
                remaining: 0,
                reset_after: Duration::from_nanos(ahead),
                retry_after: Some(Duration::from_nanos(ahead - self.tau_ns)),
            };
        }
        let new = tat.saturating_add(self.t_ns);
        slot.tat = new;
        slot.pending = slot.pending.saturating_add(1);
        let ahead = new - now;
        let free = (self.tau_ns + self.t_ns).saturating_sub(ahead);
        Decision {
            allowed: true,
            limit: burst,
            remaining: u32::try_from(free / self.t_ns)
                .unwrap_or(u32::MAX)
                .min(burst),
            reset_after: Duration::from_nanos(ahead),
            retry_after: None,
        }
    }

    fn rate(&self) -> Rate {
        self.rate
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Past entries are dropped by each sync (those with counts to push are kept).
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

#[derive(Debug, Clone)]
enum BanOp {
    Ban(Ban),
    Unban(IpAddr),
}

/// Bans shared through Redis, answered from a local copy (see the module docs).
#[derive(Debug)]
pub struct RedisBans {
    state: Arc<RedisState>,
    local: AutoBan,
    threshold: u32,
    window: Duration,
    ban_for: Duration,
    outbox: Mutex<Vec<BanOp>>,
    violations: Mutex<Vec<(IpAddr, Timestamp)>>,
    seq: AtomicU64,
}

impl RedisBans {
    /// A ban store with `cfg`'s threshold, window and duration (its `state_file` is unused:
    /// Redis holds the bans).
    pub fn new(state: Arc<RedisState>, cfg: &AutoBanConfig) -> Self {
        let mut local_cfg = cfg.clone();
        local_cfg.state_file = None;
        RedisBans {
            state,
            local: AutoBan::new(&local_cfg),
            threshold: cfg.threshold.max(1),
            window: Duration::from_secs(cfg.window_secs),
            ban_for: Duration::from_secs(cfg.ban_secs),
            outbox: Mutex::new(Vec::new()),
            violations: Mutex::new(Vec::new()),
            seq: AtomicU64::new(0),
        }
    }

    fn bans_key(&self) -> String {
        format!("{}:bans", self.state.prefix)
    }

    fn auto_reason(&self) -> String {
        format!(
            "auto: {} violations in {}s",
            self.threshold,
            self.window.as_secs()
        )
    }

    /// One sync: push ban changes and violations, then replace the local copy with the bans in
    /// Redis in force at `now` (deleting expired ones there). On error what was not pushed is
    /// kept and the local copy stays.
    async fn sync(
        &self,
        conn: &mut MultiplexedConnection,
        now: Timestamp,
    ) -> redis::RedisResult<()> {
        let key = self.bans_key();
        let ops = std::mem::take(&mut *self.outbox.lock());
        for (i, op) in ops.iter().enumerate() {
            let r = match op {
                BanOp::Ban(b) => match serde_json::to_string(b) {
                    Ok(json) => redis::cmd("HSET")
                        .arg(&key)
                        .arg(b.ip.to_string())
                        .arg(json)
                        .query_async::<i64>(conn)
                        .await
                        .map(drop),
                    Err(_) => Ok(()),
                },
                BanOp::Unban(ip) => {
                    redis::pipe()
                        .cmd("HDEL")
                        .arg(&key)
                        .arg(ip.to_string())
                        .ignore()
                        .cmd("DEL")
                        .arg(format!("{}:viol:{ip}", self.state.prefix))
                        .ignore()
                        .query_async::<()>(conn)
                        .await
                }
            };
            if let Err(e) = r {
                let mut out = self.outbox.lock();
                let rest: Vec<BanOp> = ops.iter().skip(i).cloned().collect();
                out.splice(0..0, rest);
                return Err(e);
            }
        }
        let violations = std::mem::take(&mut *self.violations.lock());
        let window_ns = u64::try_from(self.window.as_nanos()).unwrap_or(u64::MAX);
        let reason = self.auto_reason();
        // Pipelined, `SYNC_BATCH` scripts per round trip (an attack brings many violations).
        for (i, chunk) in violations.chunks(SYNC_BATCH).enumerate() {
            let mut pipe = redis::pipe();
            for (ip, at) in chunk {
                let ban = Ban {
                    ip: *ip,
                    since: *at,
                    until: at.saturating_add(self.ban_for),
                    reason: reason.clone(),
                };
                let json = serde_json::to_string(&ban).unwrap_or_default();
                let member = format!(
                    "{:x}-{}",
                    self.state.node,
                    self.seq.fetch_add(1, Ordering::Relaxed)
                );
                pipe.cmd("EVAL")
                    .arg(VIOLATION)
                    .arg(2)
                    .arg(format!("{}:viol:{ip}", self.state.prefix))
                    .arg(&key)
                    .arg(at.as_nanos())
                    .arg(window_ns)
                    .arg(self.threshold)
                    .arg(member)
                    .arg(ip.to_string())
                    .arg(json)
                    .ignore();
            }
            if let Err(e) = pipe.query_async::<()>(conn).await {
                // Not counted (or unknown): keep them for the next sync.
                let mut v = self.violations.lock();
                let rest: Vec<(IpAddr, Timestamp)> =
                    violations.iter().skip(i * SYNC_BATCH).copied().collect();
                v.splice(0..0, rest);
                return Err(e);
            }
        }
        let all: HashMap<String, String> =
            redis::cmd("HGETALL").arg(&key).query_async(conn).await?;
        let mut fresh: HashMap<IpAddr, Ban> = HashMap::new();
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
            redis::cmd("HDEL")
                .arg(&key)
                .arg(&expired)
                .query_async::<i64>(conn)
                .await?;
        }
        // Changes made here since the push above are not in Redis yet: keep them.
        for op in self.outbox.lock().iter() {
            match op {
                BanOp::Ban(b) => {
                    fresh.insert(b.ip, b.clone());
                }
                BanOp::Unban(ip) => {
                    fresh.remove(ip);
                }
            }
        }
        self.local.replace_bans(fresh.into_values());
        Ok(())
    }
}

impl BanStore for RedisBans {
    #[inline]
    fn is_banned(&self, ip: IpAddr, now: Timestamp) -> bool {
        self.local.is_banned(ip, now)
    }

    fn get(&self, ip: IpAddr, now: Timestamp) -> Option<Ban> {
        self.local.get(ip, now)
    }

    fn record_violation(&self, ip: IpAddr, now: Timestamp) -> Option<Ban> {
        let ip = canonical_ip(ip);
        if self.local.is_banned(ip, now) {
            return None;
        }
        {
            let mut v = self.violations.lock();
            if v.len() < MAX_PENDING_VIOLATIONS {
                v.push((ip, now));
            }
        }
        let ban = self.local.record_violation(ip, now)?;
        self.outbox.lock().push(BanOp::Ban(ban.clone()));
        Some(ban)
    }

    fn ban(&self, ip: IpAddr, duration: Duration, reason: &str, now: Timestamp) -> Ban {
        let ban = self.local.ban(ip, duration, reason, now);
        self.outbox.lock().push(BanOp::Ban(ban.clone()));
        ban
    }

    fn unban(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        let had = self.local.unban(ip);
        self.outbox.lock().push(BanOp::Unban(ip));
        had
    }

    fn list(&self, now: Timestamp) -> Vec<Ban> {
        self.local.list(now)
    }
}
