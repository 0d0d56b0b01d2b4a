//! Shared state for several gateways (issue 7): the `state: {backend: redis, …}` section made
//! into the Redis connection, the guard's [`StateBackend`] (limits and bans synchronised in the
//! background), the quota backend (one atomic round trip per keyed request), the failure
//! policy, the sync loop and the `/metrics` lines. See `docs/REDIS.md`.

use crate::config::StateConfig;
use crate::metrics::name;
use palisade_guard::redis_state::{FailurePolicy, RedisBackend, RedisState};
use palisade_guard::{SharedClock, StateBackend};
use palisade_keys::{
    KeyAuth, PendingQuota, QuotaBackend, QuotaDecision, QuotaUsage, RateBackend, RemoteQuotas,
    SharedRates,
};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The Redis backend of one gateway process.
#[derive(Debug)]
pub struct SharedState {
    /// The connection, health and synchronised objects.
    pub redis: Arc<RedisState>,
    /// The settings it was built from.
    pub config: StateConfig,
    /// Requests served without their quota counted because Redis was unreachable (`open`).
    fail_open: AtomicU64,
    /// Requests refused because Redis was unreachable (`closed`).
    refused: AtomicU64,
}

impl SharedState {
    /// Builds the backend (nothing is connected until the first sync).
    pub fn new(cfg: &StateConfig, clock: SharedClock) -> Result<Arc<Self>, String> {
        let redis = RedisState::new(&cfg.url, &cfg.prefix, cfg.on_failure, cfg.timeout, clock)
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(SharedState {
            redis,
            config: cfg.clone(),
            fail_open: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }))
    }

    /// The guard's backend: limiters and bans synchronised through Redis.
    pub fn guard_backend(&self) -> Arc<dyn StateBackend> {
        Arc::new(RedisBackend(self.redis.clone()))
    }

    /// The quota backend: counters in Redis.
    pub fn quota_backend(&self) -> Arc<dyn QuotaBackend> {
        Arc::new(RemoteQuotas::new(&self.config.prefix))
    }

    /// The API-key rate backend: plan rate limits synchronised through Redis like the guard's.
    pub fn rate_backend(&self) -> Arc<dyn RateBackend> {
        Arc::new(SharedRates(self.redis.clone()))
    }

    /// Quota usage of key `id` at `now` with the counters read from Redis (one `MGET`, for the
    /// admin API, never on the request path). `Ok(None)`: no such key; `Err`: Redis failed.
    pub async fn read_usage(
        &self,
        auth: &KeyAuth,
        id: &str,
        now: std::time::SystemTime,
    ) -> Result<Option<Vec<QuotaUsage>>, String> {
        let Some(entries) = auth.usage_with_keys(id, now) else {
            return Ok(None);
        };
        self.redis
            .run(|mut conn| async move { palisade_keys::remote::read_usage(&mut conn, entries).await })
            .await
            .map(Some)
            .ok_or_else(|| "redis unreachable: usage unknown".to_string())
    }

    /// Whether a request that needs Redis must be refused now (down and `closed`); counts it.
    #[inline]
    pub fn refuse_now(&self) -> bool {
        let refuse = self.redis.refuses();
        if refuse {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        refuse
    }

    /// Counts `pending` in Redis: one script call, retried once with the same nonce after a
    /// connection error or timeout (the nonce makes the retry count nothing twice). `None`
    /// when Redis cannot answer: the caller applies [`Self::on_quota_failure`].
    pub async fn acquire_quota(&self, pending: &PendingQuota) -> Option<QuotaDecision> {
        let nonce: u128 = rand::random();
        for _ in 0..2 {
            let Some(mut conn) = self.redis.local_connection().await else {
                continue;
            };
            match palisade_keys::remote::acquire(&mut conn, pending, nonce).await {
                Ok(d) => {
                    self.redis.succeeded();
                    return Some(d);
                }
                Err(e) => {
                    self.redis.failed(&e);
                    if !(e.is_io_error() || e.is_timeout() || e.is_connection_dropped()) {
                        return None;
                    }
                }
            }
        }
        None
    }

    /// The failure policy for a quota Redis could not count: `true` to serve the request
    /// uncounted (`open`, counted in `/metrics`), `false` to refuse it (`closed`, 503).
    pub fn on_quota_failure(&self) -> bool {
        match self.config.on_failure {
            FailurePolicy::Open => {
                self.fail_open.fetch_add(1, Ordering::Relaxed);
                true
            }
            FailurePolicy::Closed => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Synchronises limits and bans every `sync_interval`, forever (run on the side runtime).
    pub async fn run_sync(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.config.sync_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.redis.sync().await;
        }
    }

    /// Appends the shared-state metrics in the Prometheus text format.
    pub fn render_prometheus(&self, out: &mut String) {
        let up = i32::from(self.redis.is_up());
        let _ = writeln!(
            out,
            "# HELP {0} Whether the shared state (Redis) answered the last operation\n# TYPE {0} gauge\n{0} {up}",
            name::STATE_UP
        );
        let _ = writeln!(
            out,
            "# HELP {0} Failed shared-state (Redis) operations\n# TYPE {0} counter\n{0} {1}",
            name::STATE_ERRORS,
            self.redis.errors()
        );
        let _ = writeln!(
            out,
            "# HELP {0} Requests served with their quota uncounted because Redis was unreachable (on_failure: open)\n# TYPE {0} counter\n{0} {1}",
            name::STATE_FAIL_OPEN,
            self.fail_open.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP {0} Requests refused because Redis was unreachable (on_failure: closed)\n# TYPE {0} counter\n{0} {1}",
            name::STATE_REFUSED,
            self.refused.load(Ordering::Relaxed)
        );
    }
}
