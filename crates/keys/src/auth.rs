//! [`KeyAuth`]: the per-request check of a presented API key against its record and usage plan.
//!
//! Order of checks, and what each refusal costs the key:
//! 1. no key → [`Rejection::Missing`] (401);
//! 2. malformed key, unknown id, wrong secret, or a key whose plan does not exist →
//!    [`Rejection::Unknown`] (401);
//! 3. revoked → [`Rejection::Revoked`] (403), then expired → [`Rejection::Expired`] (403). These
//!    come after the secret is verified, so nobody learns a key's state without holding the key;
//! 4. rate (GCRA) → [`Rejection::RateLimited`] (429). A request refused here is **not** counted
//!    against the quota;
//! 5. quota → [`Rejection::QuotaExceeded`] (429). A request refused here has used a rate cell
//!    (it did arrive), but is not counted against the quota.
//!
//! The hot path takes no lock and allocates nothing: the index of keys (with each key's plan,
//! rate buckets and quota counters already resolved) is swapped atomically whenever keys or
//! plans change.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use palisade_analytics::names::reason;
use parking_lot::Mutex;
use siphasher::sip128::SipHasher13;
use subtle::ConstantTimeEq;

use crate::clock::{from_unix_secs, unix_nanos, Clock};
use crate::name::ShortName;
use crate::plan::RateLimit;
use crate::plan::{CompiledPlan, PlanSet};
use crate::quota::{QuotaBackend, QuotaCounter, QuotaDecision};
use crate::rate::{Gcra, RateBackend, RateDecision, SharedRate};
use crate::store::{KeyRecord, KeyStore, StoreError};
use crate::token::{self, IdBuildHasher, IdChars, KeyHash};

/// A request the key check let through, with what the gateway puts in response headers
/// (`X-RateLimit-Limit/-Remaining`, `X-Quota-Limit/-Remaining/-Reset`) and in the analytics event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// The key's public id (never the key).
    pub key_id: ShortName,
    /// The key's usage plan.
    pub plan: ShortName,
    /// Burst of the rate limit applied on this route, if any.
    pub rate_limit: Option<u32>,
    /// Requests that would still be admitted right now by the rate limit.
    pub rate_remaining: Option<u32>,
    /// Quota of the current window on this route, if any.
    pub quota_limit: Option<u64>,
    /// Requests left in the current quota window after this one.
    pub quota_remaining: Option<u64>,
    /// When the current quota window ends and the quota resets.
    pub quota_reset_at: Option<SystemTime>,
}

/// One quota counter of a key, for the admin API and `palisade keys list` ("usage vs quota").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QuotaUsage {
    /// `*` for the plan-wide quota, else the route whose override it is.
    pub scope: String,
    /// The quota's limit.
    pub limit: u64,
    /// The quota's period.
    pub period: crate::calendar::Period,
    /// Requests counted in the current window.
    pub used: u64,
    /// When the current window ends (Unix seconds).
    pub reset_at_unix: i64,
}

/// Why a request's key was refused. [`Rejection::status`] and [`Rejection::reason`] give the
/// HTTP status and the reason code for the JSON body and the analytics event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No key was presented (401).
    #[error("no API key was presented")]
    Missing,
    /// The key is malformed, unknown, or its secret is wrong (401).
    #[error("the API key is not valid")]
    Unknown,
    /// The key was revoked (403).
    #[error("API key {key_id} has been revoked")]
    Revoked {
        /// The key's id.
        key_id: ShortName,
    },
    /// The key has expired (403).
    #[error("API key {key_id} has expired")]
    Expired {
        /// The key's id.
        key_id: ShortName,
    },
    /// Over the plan's (or route's) rate (429).
    #[error("API key {key_id} is over its rate limit; retry after {retry_after:?}")]
    RateLimited {
        /// The key's id.
        key_id: ShortName,
        /// When a request would be admitted again (for `Retry-After`).
        retry_after: Duration,
        /// The burst of the limit that refused.
        limit: u32,
    },
    /// The quota of the current window is used up (429).
    #[error("API key {key_id} has used its quota of {limit} requests")]
    QuotaExceeded {
        /// The key's id.
        key_id: ShortName,
        /// When the window ends and the quota resets.
        reset_at: SystemTime,
        /// The quota that refused.
        limit: u64,
    },
}

impl Rejection {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            Rejection::Missing | Rejection::Unknown => 401,
            Rejection::Revoked { .. } | Rejection::Expired { .. } => 403,
            Rejection::RateLimited { .. } | Rejection::QuotaExceeded { .. } => 429,
        }
    }

    /// The reason code (from `palisade_analytics::names::reason`).
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Missing => reason::API_KEY_MISSING,
            Rejection::Unknown => reason::API_KEY_INVALID,
            Rejection::Revoked { .. } => reason::API_KEY_REVOKED,
            Rejection::Expired { .. } => reason::API_KEY_EXPIRED,
            Rejection::RateLimited { .. } => reason::RATE_LIMITED_KEY,
            Rejection::QuotaExceeded { .. } => reason::QUOTA_EXCEEDED,
        }
    }

    /// The id of the refused key, when the key was genuine.
    pub fn key_id(&self) -> Option<&str> {
        match self {
            Rejection::Missing | Rejection::Unknown => None,
            Rejection::Revoked { key_id }
            | Rejection::Expired { key_id }
            | Rejection::RateLimited { key_id, .. }
            | Rejection::QuotaExceeded { key_id, .. } => Some(key_id.as_str()),
        }
    }

    /// Seconds for a `Retry-After` header (rounded up, at least 1): until the rate admits again,
    /// or until the quota resets when measured from `now`.
    pub fn retry_after_secs(&self, now: SystemTime) -> Option<u64> {
        let d = match self {
            Rejection::RateLimited { retry_after, .. } => *retry_after,
            Rejection::QuotaExceeded { reset_at, .. } => {
                reset_at.duration_since(now).unwrap_or_default()
            }
            _ => return None,
        };
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        Some(secs.max(1))
    }
}

/// One key, ready for the per-request check.
struct Entry {
    id: ShortName,
    hash: KeyHash,
    /// The previous key's hash and the end of its grace period (ns since the epoch).
    previous: Option<(KeyHash, i64)>,
    /// SipHash-1-3-128 (process-random key) of the last key that passed the SHA-256 check, so
    /// that later requests with the same key skip SHA-256. Zero until then.
    verified: [AtomicU64; 2],
    revoked: bool,
    expires_ns: Option<i64>,
    plan: Option<Arc<CompiledPlan>>,
    /// Indexed like the plan's `rate_scopes`.
    rates: Box<[Bucket]>,
    /// Indexed like the plan's `quota_scopes`.
    quotas: Box<[Arc<dyn QuotaCounter>]>,
}

/// A key's rate bucket of one scope: its own GCRA, or its share of buckets synchronised with
/// other gateways (checked with the key id).
enum Bucket {
    Local(Arc<Gcra>),
    Shared(Arc<dyn SharedRate>),
}

impl Bucket {
    #[inline]
    fn check(&self, id: &ShortName, limit: &RateLimit, now_ns: i64) -> RateDecision {
        match self {
            Bucket::Local(g) => g.check(limit, now_ns),
            Bucket::Shared(s) => s.check(id.as_str(), now_ns),
        }
    }
}

#[derive(Default)]
struct Index {
    by_id: HashMap<IdChars, Entry, IdBuildHasher>,
    without_plan: Vec<(String, String)>,
}

type RateRegistry = HashMap<(Arc<str>, Arc<str>), Arc<Gcra>>;

/// Shared buckets by (scope, interval, burst), kept across rebuilds so that admissions not yet
/// synchronised survive key and plan changes.
type SharedRegistry = HashMap<(Arc<str>, i64, u32), Arc<dyn SharedRate>>;

/// API key authentication with usage plans. Cheap to share (`Arc<KeyAuth>`); every method takes
/// `&self`.
pub struct KeyAuth {
    store: Arc<KeyStore>,
    plans: ArcSwap<PlanSet>,
    quotas: Arc<dyn QuotaBackend>,
    clock: Arc<dyn Clock>,
    index: ArcSwap<Index>,
    /// Rate buckets by (key id, scope), kept across rebuilds; held while rebuilding.
    rates: Mutex<RateRegistry>,
    /// Shared rate buckets (several gateways), when a [`RateBackend`] is set.
    shared_rates: Option<(Arc<dyn RateBackend>, Mutex<SharedRegistry>)>,
    /// Keyed hash for the verified-key cache; `None` if the OS gave no randomness (then every
    /// request pays SHA-256).
    mac: Option<SipHasher13>,
}

fn new_mac() -> Option<SipHasher13> {
    let mut k = [0u8; 16];
    getrandom::fill(&mut k).ok()?;
    let (a, b) = k.split_at(8);
    Some(SipHasher13::new_with_keys(
        u64::from_le_bytes(a.try_into().ok()?),
        u64::from_le_bytes(b.try_into().ok()?),
    ))
}

impl std::fmt::Debug for KeyAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyAuth")
            .field("store", &self.store)
            .field("keys", &self.index.load().by_id.len())
            .finish_non_exhaustive()
    }
}

impl KeyAuth {
    /// Builds the checker over `store`'s keys and `plans`, counting quotas in `quotas` (a
    /// [`crate::QuotaStore`] for one gateway) and reading the time from `clock` in
    /// [`Self::check_now`].
    pub fn new(
        store: Arc<KeyStore>,
        plans: PlanSet,
        quotas: Arc<dyn QuotaBackend>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self::build(store, plans, quotas, None, clock)
    }

    /// Like [`Self::new`], with the plans' rate limits held in `rates` (shared by several
    /// gateways, e.g. `crate::remote::SharedRates`) instead of one local bucket per key.
    pub fn with_shared_rates(
        store: Arc<KeyStore>,
        plans: PlanSet,
        quotas: Arc<dyn QuotaBackend>,
        rates: Arc<dyn RateBackend>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self::build(store, plans, quotas, Some(rates), clock)
    }

    fn build(
        store: Arc<KeyStore>,
        plans: PlanSet,
        quotas: Arc<dyn QuotaBackend>,
        rates: Option<Arc<dyn RateBackend>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let auth = Self {
            store,
            plans: ArcSwap::from_pointee(plans),
            quotas,
            clock,
            index: ArcSwap::from_pointee(Index::default()),
            rates: Mutex::new(HashMap::new()),
            shared_rates: rates.map(|r| (r, Mutex::new(HashMap::new()))),
            mac: new_mac(),
        };
        auth.rebuild();
        auth
    }

    /// Checks the key presented with a request to `route` at `now`. On admission the request has
    /// been counted against the rate limit and the quota.
    pub fn check(
        &self,
        presented: Option<&str>,
        route: &str,
        now: SystemTime,
    ) -> Result<Admission, Rejection> {
        self.check_inner(presented, route, now, false)
            .map(|(admission, _)| admission)
    }

    /// Like [`Self::check`], except that a quota held by a shared backend (a counter with a
    /// [`QuotaCounter::remote_key`]) is not counted here: it is returned as a
    /// [`crate::PendingQuota`] for the caller to count with one round trip (see
    /// `crate::remote`) and resolve. Local quotas are counted as by `check`.
    pub fn check_deferred(
        &self,
        presented: Option<&str>,
        route: &str,
        now: SystemTime,
    ) -> Result<(Admission, Option<crate::remote::PendingQuota>), Rejection> {
        self.check_inner(presented, route, now, true)
    }

    fn check_inner(
        &self,
        presented: Option<&str>,
        route: &str,
        now: SystemTime,
        defer: bool,
    ) -> Result<(Admission, Option<crate::remote::PendingQuota>), Rejection> {
        let presented = match presented {
            Some(p) if !p.is_empty() => p,
            _ => return Err(Rejection::Missing),
        };
        let id = token::parse_key(presented).ok_or(Rejection::Unknown)?;
        let index = self.index.load();
        let e = index.by_id.get(&id).ok_or(Rejection::Unknown)?;
        let now_ns = unix_nanos(now);
        if !self.verify(e, presented) && !Self::verify_previous(e, presented, now_ns) {
            return Err(Rejection::Unknown);
        }
        if e.revoked {
            return Err(Rejection::Revoked { key_id: e.id });
        }
        if e.expires_ns.is_some_and(|x| now_ns >= x) {
            return Err(Rejection::Expired { key_id: e.id });
        }
        let plan = e.plan.as_ref().ok_or(Rejection::Unknown)?;
        let limits = plan.limits(route);
        let mut admission = Admission {
            key_id: e.id,
            plan: plan.short_name,
            rate_limit: None,
            rate_remaining: None,
            quota_limit: None,
            quota_remaining: None,
            quota_reset_at: None,
        };
        if let Some((limit, slot)) = &limits.rate {
            if let Some(bucket) = e.rates.get(*slot) {
                match bucket.check(&e.id, limit, now_ns) {
                    RateDecision::Allowed { remaining } => {
                        admission.rate_limit = Some(limit.burst);
                        admission.rate_remaining = Some(remaining);
                    }
                    RateDecision::Limited { retry_after_ns } => {
                        return Err(Rejection::RateLimited {
                            key_id: admission.key_id,
                            retry_after: Duration::from_nanos(
                                u64::try_from(retry_after_ns).unwrap_or(0),
                            ),
                            limit: limit.burst,
                        });
                    }
                }
            }
        }
        if let Some((quota, slot)) = &limits.quota {
            if let Some(counter) = e.quotas.get(*slot) {
                let window = quota.period.window_at(now_ns.div_euclid(1_000_000_000));
                if defer && counter.remote_key().is_some() {
                    let pending = crate::remote::PendingQuota {
                        counter: counter.clone(),
                        window,
                        limit: quota.limit,
                    };
                    return Ok((admission, Some(pending)));
                }
                match counter.try_acquire(&window, quota.limit) {
                    QuotaDecision::Granted { used } => {
                        admission.quota_limit = Some(quota.limit);
                        admission.quota_remaining = Some(quota.limit.saturating_sub(used));
                        admission.quota_reset_at = Some(from_unix_secs(window.end));
                    }
                    QuotaDecision::Exhausted => {
                        return Err(Rejection::QuotaExceeded {
                            key_id: admission.key_id,
                            reset_at: from_unix_secs(window.end),
                            limit: quota.limit,
                        });
                    }
                }
            }
        }
        Ok((admission, None))
    }

    /// Whether `presented` is the key `e` had before a rotation with a grace period still
    /// running. Never cached: the SHA-256 comparison runs on every request with the old key, so
    /// the grace ends exactly.
    #[cold]
    fn verify_previous(e: &Entry, presented: &str, now_ns: i64) -> bool {
        match &e.previous {
            Some((hash, until)) if now_ns < *until => hash.matches(presented),
            _ => false,
        }
    }

    /// Whether `presented` is the key of `e`: the cached keyed hash of the last verified key, or
    /// else a constant-time SHA-256 comparison (whose success fills the cache).
    fn verify(&self, e: &Entry, presented: &str) -> bool {
        let Some(mac) = &self.mac else {
            return e.hash.matches(presented);
        };
        let h = mac.hash(presented.as_bytes());
        let cached = [
            e.verified[0].load(Ordering::Relaxed),
            e.verified[1].load(Ordering::Relaxed),
        ];
        let fresh = [h.h1, h.h2];
        if cached != [0, 0] && bool::from(cached.ct_eq(&fresh)) {
            return true;
        }
        if !e.hash.matches(presented) {
            return false;
        }
        e.verified[0].store(h.h1, Ordering::Relaxed);
        e.verified[1].store(h.h2, Ordering::Relaxed);
        true
    }

    /// [`Self::check`] at the injected clock's current time.
    pub fn check_now(&self, presented: Option<&str>, route: &str) -> Result<Admission, Rejection> {
        self.check(presented, route, self.clock.now())
    }

    /// The key store (for `list` and `get`). Change keys through [`Self::create`],
    /// [`Self::rotate`] and [`Self::revoke`] so the check sees the change at once; after changing
    /// the store directly, call [`Self::refresh`].
    pub fn store(&self) -> &KeyStore {
        &self.store
    }

    /// The current plans.
    pub fn plans(&self) -> Arc<PlanSet> {
        self.plans.load_full()
    }

    /// Creates a key on an existing plan; returns its record and the key, shown once.
    pub fn create(
        &self,
        name: &str,
        owner: &str,
        plan: &str,
        expires: Option<time::OffsetDateTime>,
    ) -> Result<(KeyRecord, String), StoreError> {
        let plans = self.plans.load();
        if plans.get(plan).is_none() {
            return Err(StoreError::UnknownPlan {
                plan: plan.to_owned(),
                known: plans.names().join(", "),
            });
        }
        let out = self.store.create(name, owner, plan, expires)?;
        self.rebuild();
        Ok(out)
    }

    /// Replaces key `id`'s secret; returns the new key, shown once. Rate and quota usage stay.
    pub fn rotate(&self, id: &str) -> Result<String, StoreError> {
        self.rotate_with_grace(id, Duration::ZERO)
    }

    /// Replaces key `id`'s secret; the old key keeps working for `grace`. Returns the new key.
    pub fn rotate_with_grace(&self, id: &str, grace: Duration) -> Result<String, StoreError> {
        let out = self.store.rotate_with_grace(id, grace)?;
        self.rebuild();
        Ok(out)
    }

    /// Revokes key `id`; its next request gets 403.
    pub fn revoke(&self, id: &str) -> Result<KeyRecord, StoreError> {
        let out = self.store.revoke(id)?;
        self.rebuild();
        Ok(out)
    }

    /// Re-reads the key file (after `palisade keys …` changed it) and applies what changed.
    /// On error the keys in force stay as they were.
    pub fn reload_keys(&self) -> Result<bool, StoreError> {
        let changed = self.store.reload()?;
        if changed {
            self.rebuild();
        }
        Ok(changed)
    }

    /// Replaces the plans (config reload). Usage carries over for every (key, scope) whose quota
    /// period is unchanged.
    pub fn set_plans(&self, plans: PlanSet) {
        self.plans.store(Arc::new(plans));
        self.rebuild();
    }

    /// Rebuilds the index from the store's current keys.
    pub fn refresh(&self) {
        self.rebuild();
    }

    /// Quota usage of key `id` in the windows containing `now`, one entry per quota scope of its
    /// plan; `None` when the key or its plan does not exist.
    pub fn usage(&self, id: &str, now: SystemTime) -> Option<Vec<QuotaUsage>> {
        self.usage_with_keys(id, now)
            .map(|v| v.into_iter().map(|(u, _)| u).collect())
    }

    /// Like [`Self::usage`], each entry with the Redis key of its window's counter when the
    /// counter is shared (its `used` is then 0 here: read it from Redis, see
    /// `crate::remote::read_usage`).
    pub fn usage_with_keys(
        &self,
        id: &str,
        now: SystemTime,
    ) -> Option<Vec<(QuotaUsage, Option<String>)>> {
        let chars = token::parse_id(id)?;
        let index = self.index.load();
        let e = index.by_id.get(&chars)?;
        let plan = e.plan.as_ref()?;
        let secs = unix_nanos(now).div_euclid(1_000_000_000);
        Some(
            plan.quota_scopes
                .iter()
                .zip(e.quotas.iter())
                .map(|((scope, q), counter)| {
                    let window = q.period.window_at(secs);
                    let usage = QuotaUsage {
                        scope: scope.to_string(),
                        limit: q.limit,
                        period: q.period,
                        used: counter.used(&window),
                        reset_at_unix: window.end,
                    };
                    let key = counter
                        .remote_key()
                        .map(|k| crate::remote::window_key(k, &window));
                    (usage, key)
                })
                .collect(),
        )
    }

    /// `(key id, plan)` of keys whose plan does not exist; their requests get 401. For
    /// `palisade check` and a warning at reload.
    pub fn keys_without_plan(&self) -> Vec<(String, String)> {
        self.index.load().without_plan.clone()
    }

    fn rebuild(&self) {
        let mut registry = self.rates.lock();
        let mut shared = self.shared_rates.as_ref().map(|(b, r)| (b, r.lock()));
        let mut live_shared: SharedRegistry = HashMap::new();
        let keys = self.store.snapshot();
        let plans = self.plans.load_full();
        let mut by_id = HashMap::with_capacity_and_hasher(keys.len(), IdBuildHasher::default());
        let mut without_plan = Vec::new();
        let mut live: RateRegistry = HashMap::with_capacity(registry.len());
        for k in keys.iter() {
            let Some(chars) = token::parse_id(&k.record.id) else {
                continue;
            };
            let Some(short_id) = ShortName::new(&k.record.id) else {
                continue;
            };
            let id: Arc<str> = Arc::from(k.record.id.as_str());
            let plan = plans.get(&k.record.plan).cloned();
            let (rates, quotas) = match &plan {
                Some(p) => {
                    let rates: Box<[Bucket]> = p
                        .rate_scopes
                        .iter()
                        .enumerate()
                        .map(|(i, scope)| match (&mut shared, p.rate_of_slot(i)) {
                            (Some((backend, reg)), Some(limit)) => {
                                let slot = (scope.clone(), limit.interval_ns, limit.burst);
                                let b = live_shared
                                    .get(&slot)
                                    .cloned()
                                    .or_else(|| reg.remove(&slot))
                                    .unwrap_or_else(|| backend.buckets(scope, &limit));
                                live_shared.insert(slot, b.clone());
                                Bucket::Shared(b)
                            }
                            _ => {
                                let slot = (id.clone(), scope.clone());
                                let bucket = registry.remove(&slot).unwrap_or_default();
                                live.insert(slot, bucket.clone());
                                Bucket::Local(bucket)
                            }
                        })
                        .collect();
                    let quotas: Box<[Arc<dyn QuotaCounter>]> = p
                        .quota_scopes
                        .iter()
                        .map(|(scope, q)| self.quotas.counter(&id, scope, q.period))
                        .collect();
                    (rates, quotas)
                }
                None => {
                    without_plan.push((k.record.id.clone(), k.record.plan.clone()));
                    (Box::default(), Box::default())
                }
            };
            let expires_ns = k
                .record
                .expires
                .map(|e| unix_nanos(std::time::SystemTime::from(e)));
            by_id.insert(
                chars,
                Entry {
                    id: short_id,
                    hash: k.hash,
                    previous: k.previous.map(|(h, until)| {
                        (
                            h,
                            i64::try_from(until.unix_timestamp_nanos()).unwrap_or(i64::MAX),
                        )
                    }),
                    verified: [AtomicU64::new(0), AtomicU64::new(0)],
                    revoked: k.record.revoked,
                    expires_ns,
                    plan,
                    rates,
                    quotas,
                },
            );
        }
        *registry = live;
        if let Some((_, reg)) = &mut shared {
            **reg = live_shared;
        }
        self.index.store(Arc::new(Index {
            by_id,
            without_plan,
        }));
    }
}
