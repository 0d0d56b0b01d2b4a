//! The runtime snapshot (config compiled into what the request path uses) and the shared state
//! that holds it. A reload builds a new [`Runtime`] off the request path and swaps it atomically;
//! every request keeps the snapshot it started with until it ends.

use crate::config::{self, Config, ConfigErrors};
use crate::metrics::Metrics;
use crate::router::Router;
use crate::upstream::{HealthRegistry, Pool};
use arc_swap::{ArcSwap, ArcSwapOption};
use palisade_guard::{Guard, SharedClock, SystemClock};
use palisade_waf::{Policy, RuleSet};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a runtime could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The config file is invalid.
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// The WAF rule files are invalid.
    #[error("{0}")]
    Rules(String),
    /// The change cannot be applied by a reload (the message names the file and the keys).
    #[error("{0}")]
    NeedsRestart(String),
}

/// The `state` keys that differ between `old` and `new` (`state` when the section appears or
/// goes), for the reload refusal.
fn state_changes(
    old: Option<&crate::config::StateConfig>,
    new: Option<&crate::config::StateConfig>,
) -> Vec<&'static str> {
    match (old, new) {
        (None, None) => Vec::new(),
        (Some(o), Some(n)) => [
            ("state.url", o.url != n.url),
            ("state.on_failure", o.on_failure != n.on_failure),
            ("state.prefix", o.prefix != n.prefix),
            ("state.timeout_ms", o.timeout != n.timeout),
            ("state.sync_interval_ms", o.sync_interval != n.sync_interval),
        ]
        .into_iter()
        .filter_map(|(k, changed)| changed.then_some(k))
        .collect(),
        _ => vec!["state"],
    }
}

/// One route's runtime view.
pub struct RouteRuntime {
    /// Index in config order.
    pub index: usize,
    /// The route's pool.
    pub pool: Arc<Pool>,
    /// The route's compiled WAF policy (`None`: no rules configured).
    pub waf: Option<Policy>,
    /// The route's name and path template as the analytics event's columns (shared, not
    /// copied per event).
    pub name: Arc<str>,
    /// See `name`.
    pub template: Arc<str>,
    /// This route's request counters and latency histogram, looked up once.
    pub metrics: crate::metrics::RouteMetrics,
}

/// Everything a request needs, compiled from one config.
pub struct Runtime {
    /// The validated config.
    pub config: Config,
    /// The route table.
    pub router: Router,
    /// Routes in config order.
    pub routes: Vec<RouteRuntime>,
    /// Pools by name.
    pub pools: HashMap<String, Arc<Pool>>,
    /// Reload generation (1 for the first config).
    pub generation: u64,
    /// The compiled WAF rule set, when `waf.rules_dir` is set.
    pub rules: Option<Arc<RuleSet>>,
}

impl Runtime {
    /// Compile a validated config.
    pub fn build(
        config: Config,
        health: &HealthRegistry,
        generation: u64,
    ) -> Result<Self, BuildError> {
        let pools: HashMap<String, Arc<Pool>> = config
            .pools
            .iter()
            .map(|(name, p)| (name.clone(), Arc::new(Pool::new(p.clone(), health))))
            .collect();
        let router = Router::new(
            config
                .routes
                .iter()
                .map(|r| (r.hosts.as_slice(), &r.path, r.methods.as_slice())),
        );
        let rules = match &config.rules_dir {
            Some(dir) => Some(Arc::new(
                RuleSet::load_dir(dir).map_err(|e| BuildError::Rules(e.to_string()))?,
            )),
            None => None,
        };
        let mut routes = Vec::with_capacity(config.routes.len());
        for (index, r) in config.routes.iter().enumerate() {
            let pool = pools.get(&r.upstream).cloned().ok_or_else(|| {
                BuildError::Rules(format!(
                    "route `{}`: unknown upstream `{}`",
                    r.name, r.upstream
                ))
            })?;
            let waf = match (&rules, &r.waf) {
                (Some(rs), Some(cfg)) => Some(Policy::compile(cfg, rs).map_err(|e| {
                    let file = config.source.display();
                    BuildError::Rules(match &r.waf_origin {
                        Some(o) => format!(
                            "{file}:{}:{}: {} (route `{}`): {e}",
                            o.line, o.col, o.key, r.name
                        ),
                        None => format!("{file}: waf (route `{}`): {e}", r.name),
                    })
                })?),
                _ => None,
            };
            routes.push(RouteRuntime {
                index,
                pool,
                waf,
                name: r.name.as_str().into(),
                template: r.path.as_str().into(),
                metrics: crate::metrics::RouteMetrics::default(),
            });
        }
        Ok(Self {
            config,
            router,
            routes,
            pools,
            generation,
            rules,
        })
    }
}

/// State shared by the proxy, the admin listener and the background tasks.
pub struct Shared {
    runtime: ArcSwap<Runtime>,
    /// Upstream health, kept across reloads.
    pub health: HealthRegistry,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// The config file reloads read.
    pub config_path: PathBuf,
    reload_lock: Mutex<()>,
    /// Admin bearer token, fixed at start.
    pub admin_token: Option<String>,
    /// IP reputation, throttling and auto-ban; reconfigured (state kept) on reload.
    pub guard: ArcSwapOption<Guard>,
    /// The clock the guard judges requests by.
    pub clock: SharedClock,
    /// The analytics writer, once started on the side runtime.
    pub analytics: std::sync::OnceLock<palisade_analytics::Analytics>,
    /// API keys and usage plans; plans and keys are reloaded in place on reload.
    pub keys: ArcSwapOption<palisade_keys::KeyAuth>,
    /// Quota counters, flushed to disk by a background task (`None` with a Redis backend).
    pub quotas: ArcSwapOption<palisade_keys::QuotaStore>,
    /// Shared state through Redis (`state:` section), fixed at start.
    pub state: Option<Arc<crate::shared_state::SharedState>>,
}

type KeyParts = (
    Option<Arc<palisade_keys::KeyAuth>>,
    Option<Arc<palisade_keys::QuotaStore>>,
);

fn build_keys(
    config: &Config,
    state: Option<&crate::shared_state::SharedState>,
) -> Result<KeyParts, BuildError> {
    let Some(k) = &config.api_keys else {
        return Ok((None, None));
    };
    let err = |e: String| BuildError::Rules(format!("{}: api_keys: {e}", config.source.display()));
    let store =
        Arc::new(palisade_keys::KeyStore::open(&k.key_file).map_err(|e| err(e.to_string()))?);
    let plans = palisade_keys::PlanSet::compile(&k.plans).map_err(|e| err(e.to_string()))?;
    let (backend, quotas): (Arc<dyn palisade_keys::QuotaBackend>, _) = match state {
        Some(st) => (st.quota_backend(), None),
        None => {
            let q = Arc::new(
                palisade_keys::QuotaStore::open(&k.quota_file).map_err(|e| err(e.to_string()))?,
            );
            (q.clone(), Some(q))
        }
    };
    let clock = Arc::new(palisade_keys::SystemClock);
    let auth = match state {
        Some(st) => palisade_keys::KeyAuth::with_shared_rates(
            store,
            plans,
            backend,
            st.rate_backend(),
            clock,
        ),
        None => palisade_keys::KeyAuth::new(store, plans, backend, clock),
    };
    Ok((Some(Arc::new(auth)), quotas))
}

/// A guard for `g`, with the shared backend when there is one.
fn new_guard(
    config: &Config,
    g: &palisade_guard::GuardConfig,
    clock: &SharedClock,
    state: Option<&crate::shared_state::SharedState>,
) -> Result<Guard, BuildError> {
    match state {
        Some(st) => Guard::with_backend(g, route_rates(config), clock.clone(), st.guard_backend()),
        None => Guard::new(g, route_rates(config), clock.clone()),
    }
    .map_err(|e| guard_error(config, e))
}

fn route_rates(config: &Config) -> Vec<(&str, palisade_guard::Rate)> {
    config
        .routes
        .iter()
        .filter_map(|r| r.rate_limit.map(|rate| (r.name.as_str(), rate)))
        .collect()
}

/// A guard error as `file: guard: …`, or at the feed's entry (`file:line:col: guard.ip.feeds[i]:
/// …`) when a feed file cannot be read.
fn guard_error(config: &Config, e: palisade_guard::GuardError) -> BuildError {
    let feed = match &e {
        palisade_guard::GuardError::Io { path, .. } => config.guard.as_ref().and_then(|g| {
            let i = g.ip.feeds.iter().position(|f| &f.path == path)?;
            Some((i, config.guard_feeds_at.get(i)?))
        }),
        _ => None,
    };
    BuildError::Rules(match feed {
        Some((i, (line, col))) => format!(
            "{}:{line}:{col}: guard.ip.feeds[{i}]: {e}",
            config.source.display()
        ),
        None => format!("{}: guard: {e}", config.source.display()),
    })
}

impl Shared {
    /// Load the config and build the first runtime.
    pub fn load(config_path: &Path) -> Result<Arc<Self>, BuildError> {
        let config = config::load(config_path)?;
        let health = HealthRegistry::default();
        let admin_token = config.admin.token.clone();
        // The guard reads the clock once per request (`Guard::now`, passed to `Guard::check`):
        // the system clock (a vDSO call, 28.6 ns here with a TSC clock source) costs less there than
        // a `CoarseClock`'s thread waking every millisecond on the proxy's CPU (≈ 1.7 % of the
        // full gateway's CPU in a race, docs/BENCHMARKS.md session 22).
        let clock = SharedClock::new(SystemClock::new());
        let state = match &config.state {
            Some(s) => Some(
                crate::shared_state::SharedState::new(s, clock.clone()).map_err(|e| {
                    BuildError::Rules(format!("{}: state: {e}", config.source.display()))
                })?,
            ),
            None => None,
        };
        let guard = match &config.guard {
            Some(g) => Some(Arc::new(new_guard(&config, g, &clock, state.as_deref())?)),
            None => None,
        };
        let (keys, quotas) = build_keys(&config, state.as_deref())?;
        let runtime = Runtime::build(config, &health, 1)?;
        let metrics = Metrics::new().map_err(|e| BuildError::Rules(format!("metrics: {e}")))?;
        Ok(Arc::new(Self {
            runtime: ArcSwap::from_pointee(runtime),
            health,
            metrics,
            config_path: config_path.to_path_buf(),
            reload_lock: Mutex::new(()),
            admin_token,
            guard: ArcSwapOption::new(guard),
            clock,
            analytics: std::sync::OnceLock::new(),
            keys: ArcSwapOption::new(keys),
            quotas: ArcSwapOption::new(quotas),
            state,
        }))
    }

    /// The current runtime snapshot.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// Re-read the config file, build a new runtime and swap it in. On error the old runtime
    /// keeps serving and the error is returned (and counted).
    pub fn reload(&self) -> Result<u64, BuildError> {
        let _guard = self.reload_lock.lock();
        let result = config::load(&self.config_path)
            .map_err(BuildError::from)
            .and_then(|config| {
                let old = self.runtime.load();
                if config.listeners != old.config.listeners {
                    tracing::warn!(
                        "listener changes take effect after a restart; other changes are applied"
                    );
                }
                // The shared state is wired into the guard's limiters and bans and the keys'
                // buckets and counters: swapping it under them could lose or double count. A
                // reload that changes it is refused whole; the running configuration stays.
                let changed = state_changes(old.config.state.as_ref(), config.state.as_ref());
                if !changed.is_empty() {
                    return Err(BuildError::NeedsRestart(format!(
                        "{}: {}: the shared state cannot change on reload (hint: restart the gateway to apply it, or undo the change); nothing was reloaded",
                        config.source.display(),
                        changed.join(", ")
                    )));
                }
                let guard = match (&config.guard, self.guard.load_full()) {
                    (Some(g), Some(old)) => Some(Arc::new(
                        old.reconfigure(g, route_rates(&config))
                            .map_err(|e| guard_error(&config, e))?,
                    )),
                    (Some(g), None) => Some(Arc::new(new_guard(
                        &config,
                        g,
                        &self.clock,
                        self.state.as_deref(),
                    )?)),
                    (None, _) => None,
                };
                let same_file = config.api_keys.as_ref().map(|a| &a.key_file)
                    == old.config.api_keys.as_ref().map(|a| &a.key_file);
                let keys = match (
                    &config.api_keys,
                    self.keys.load_full(),
                    self.quotas.load_full(),
                ) {
                    (Some(k), Some(auth), q)
                        if same_file && (q.is_some() || self.state.is_some()) =>
                    {
                        let err = |e: String| {
                            BuildError::Rules(format!("{}: api_keys: {e}", config.source.display()))
                        };
                        let plans = palisade_keys::PlanSet::compile(&k.plans)
                            .map_err(|e| err(e.to_string()))?;
                        // Keys first: on a bad key file nothing changes.
                        auth.reload_keys().map_err(|e| err(e.to_string()))?;
                        auth.set_plans(plans);
                        (Some(auth), q)
                    }
                    _ => build_keys(&config, self.state.as_deref())?,
                };
                Ok((
                    Runtime::build(config, &self.health, old.generation + 1)?,
                    guard,
                    keys,
                ))
            });
        match result {
            Ok((rt, guard, (keys, quotas))) => {
                let generation = rt.generation;
                self.guard.store(guard);
                self.keys.store(keys);
                self.quotas.store(quotas);
                self.runtime.store(Arc::new(rt));
                self.metrics.reloads.with_label_values(&["ok"]).inc();
                tracing::info!(generation, "configuration reloaded");
                Ok(generation)
            }
            Err(e) => {
                self.metrics.reloads.with_label_values(&["error"]).inc();
                tracing::error!(error = %e, "reload rejected; the previous configuration keeps serving");
                Err(e)
            }
        }
    }
}
