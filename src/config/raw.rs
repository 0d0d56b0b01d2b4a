//! Raw configuration types: exactly what the YAML file says, with source locations where a later
//! validation step needs to point at a value. Unknown keys are errors everywhere
//! (`deny_unknown_fields`): a typo must never silently disable protection.
//!
//! These types are parsed, then validated and compiled into [`super::Config`].

use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;

/// The whole configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Where the proxy listens (HTTP/1.1, h2c, and TLS with ALPN h2 when `tls` is set).
    pub listeners: Vec<Spanned<RawListener>>,
    /// The admin listener (health, metrics, config, reload).
    #[serde(default)]
    pub admin: RawAdmin,
    /// Process-level settings.
    #[serde(default)]
    pub server: RawServer,
    /// Named upstream pools.
    #[serde(default)]
    pub upstreams: BTreeMap<String, Spanned<RawPool>>,
    /// Routes, matched by host, path and method.
    #[serde(default)]
    pub routes: Vec<Spanned<RawRoute>>,
    /// Defaults for every route (a route's own value wins).
    #[serde(default)]
    pub defaults: RawRouteDefaults,
    /// WAF rule files and the default policy.
    #[serde(default)]
    pub waf: RawWaf,
    /// IP reputation, throttling, auto-ban and connection guards (absent: stage off).
    #[serde(default)]
    pub guard: Option<palisade_guard::GuardConfig>,
    /// Analytics events (absent: off; `analytics: {}`: rotating NDJSON files; or a ClickHouse sink).
    #[serde(default)]
    pub analytics: Option<palisade_analytics::AnalyticsConfig>,
    /// API keys and usage plans (absent: stage off).
    #[serde(default)]
    pub api_keys: Option<RawApiKeys>,
    /// Where limits, quotas and bans live (absent or `backend: local`: in this process).
    #[serde(default)]
    pub state: Option<Spanned<RawState>>,
}

/// Which store holds rate limits, quota counters and bans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StateBackendKind {
    /// In this process (the default).
    Local,
    /// In Redis, shared by every gateway using the same `url` and `prefix`.
    Redis,
}

/// The `state` section: shared state for several gateways (see `docs/REDIS.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    /// `local` or `redis`.
    pub backend: StateBackendKind,
    /// `redis://[:password@]host:port/db` (required for `redis`).
    #[serde(default)]
    pub url: Option<String>,
    /// What to do with requests that need Redis while it is unreachable: `open` (serve) or
    /// `closed` (503).
    #[serde(default)]
    pub on_failure: palisade_guard::redis_state::FailurePolicy,
    /// Prefix of every Redis key (gateways sharing state use the same one).
    #[serde(default = "default_state_prefix")]
    pub prefix: String,
    /// Timeout of each Redis operation, in milliseconds.
    #[serde(default = "default_state_timeout_ms")]
    pub timeout_ms: u64,
    /// How often limits and bans are synchronised, in milliseconds.
    #[serde(default = "default_state_sync_ms")]
    pub sync_interval_ms: u64,
}

fn default_state_prefix() -> String {
    "palisade".to_string()
}
fn default_state_timeout_ms() -> u64 {
    250
}
fn default_state_sync_ms() -> u64 {
    1000
}

/// API keys and usage plans.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApiKeys {
    /// The key file (hashes only), managed with `palisade keys …`; relative to the config file.
    pub key_file: String,
    /// Where quota counters persist across restarts (default: `<key_file>.quotas.json`).
    #[serde(default)]
    pub quota_file: Option<String>,
    /// Usage plans: rate, burst, quotas per day/week/month (UTC calendar), per-route overrides.
    #[serde(default)]
    pub plans: Vec<Spanned<palisade_keys::UsagePlan>>,
}

/// A route's API key requirement.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteKey {
    /// Header carrying the key (default `x-api-key`).
    #[serde(default = "default_key_header")]
    pub header: String,
    /// Query parameter carrying the key, if allowed (the header wins when both are present).
    #[serde(default)]
    pub query: Option<String>,
}

fn default_key_header() -> String {
    "x-api-key".to_string()
}

/// One listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    /// `host:port`, e.g. `127.0.0.1:8080` or `[::1]:8443`.
    pub address: Spanned<String>,
    /// TLS certificate and key (PEM). With TLS, HTTP/2 is offered through ALPN.
    #[serde(default)]
    pub tls: Option<RawTls>,
    /// Accept HTTP/2 with prior knowledge on a plaintext listener (default true).
    #[serde(default = "yes")]
    pub h2c: bool,
}

/// TLS certificate and key files.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM certificate chain.
    pub cert: Spanned<String>,
    /// PEM private key.
    pub key: Spanned<String>,
}

/// Admin listener settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// Address of the admin listener (default `127.0.0.1:9901`, loopback only).
    #[serde(default = "default_admin_address")]
    pub address: Spanned<String>,
    /// Bearer token required by mutating endpoints (`POST /reload`, …).
    #[serde(default)]
    pub token: Option<String>,
    /// Name of an environment variable holding the token (wins over `token`).
    #[serde(default)]
    pub token_env: Option<String>,
}

impl Default for RawAdmin {
    fn default() -> Self {
        Self {
            address: Spanned::new(
                default_admin_address_str(),
                serde_saphyr::Location::UNKNOWN,
                serde_saphyr::Location::UNKNOWN,
            ),
            token: None,
            token_env: None,
        }
    }
}

/// Process settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Proxy worker threads (default 1 per listener service).
    #[serde(default = "default_threads_spanned")]
    pub threads: Spanned<usize>,
    /// Seconds to keep serving in-flight requests after SIGTERM before closing (default 1).
    #[serde(default = "default_grace")]
    pub grace_period_secs: u64,
    /// Hard limit for the graceful shutdown (default 5).
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout_secs: u64,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            threads: default_threads_spanned(),
            grace_period_secs: default_grace(),
            shutdown_timeout_secs: default_shutdown_timeout(),
        }
    }
}

/// A pool of upstream servers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    /// The servers; traffic is balanced by weighted round robin over the healthy ones.
    pub targets: Vec<Spanned<RawTarget>>,
    /// Connect to the targets with TLS.
    #[serde(default)]
    pub tls: bool,
    /// SNI and Host for TLS targets (default: the target's host).
    #[serde(default)]
    pub sni: Option<String>,
    /// Speak HTTP/2 to the targets (h2c with prior knowledge on plaintext; needed for gRPC).
    #[serde(default)]
    pub http2: bool,
    /// Timeouts in milliseconds.
    #[serde(default)]
    pub timeouts: RawTimeouts,
    /// Extra attempts on another target. Connection failures are retried for every method
    /// (nothing was sent); failures after the request was sent only for idempotent methods.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Active HTTP health check.
    #[serde(default)]
    pub health_check: Option<RawHealthCheck>,
    /// Passive ejection after consecutive failures.
    #[serde(default)]
    pub passive: RawPassive,
}

/// One upstream server.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    /// `host:port`.
    pub address: Spanned<String>,
    /// Relative weight (default 1).
    #[serde(default = "one")]
    pub weight: u32,
}

/// Upstream timeouts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    /// TCP (and TLS) connect timeout (default 2000 ms).
    #[serde(default = "default_connect_ms")]
    pub connect_ms: u64,
    /// Longest wait for each read from the upstream (default 30000 ms) → 504.
    #[serde(default = "default_read_ms")]
    pub read_ms: u64,
    /// Longest wait for each write to the upstream (default 30000 ms).
    #[serde(default = "default_read_ms")]
    pub write_ms: u64,
    /// Connect including TLS handshake and retries of the handshake (default 5000 ms).
    #[serde(default = "default_total_ms")]
    pub total_connect_ms: u64,
    /// Idle keep-alive connections to the upstream are closed after this (default 60000 ms).
    #[serde(default = "default_idle_ms")]
    pub idle_ms: u64,
}

impl Default for RawTimeouts {
    fn default() -> Self {
        Self {
            connect_ms: default_connect_ms(),
            read_ms: default_read_ms(),
            write_ms: default_read_ms(),
            total_connect_ms: default_total_ms(),
            idle_ms: default_idle_ms(),
        }
    }
}

/// Active health check settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    /// Path requested with GET (default `/health`).
    #[serde(default = "default_health_path")]
    pub path: String,
    /// Interval between checks (default 2000 ms).
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// Timeout of one check (default 1000 ms).
    #[serde(default = "default_check_timeout_ms")]
    pub timeout_ms: u64,
    /// Consecutive successes to mark a target healthy again (default 1).
    #[serde(default = "one")]
    pub healthy_threshold: u32,
    /// Consecutive failures to mark a target unhealthy (default 2).
    #[serde(default = "two")]
    pub unhealthy_threshold: u32,
    /// Expected status codes (default any 2xx).
    #[serde(default)]
    pub expected_status: Vec<u16>,
}

/// Passive ejection settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPassive {
    /// Consecutive failures (connect errors, 502/503/504 from the target) before ejection
    /// (default 3; 0 disables).
    #[serde(default = "default_passive_failures")]
    pub max_failures: u32,
    /// How long an ejected target is skipped (default 10000 ms).
    #[serde(default = "default_ejection_ms")]
    pub ejection_ms: u64,
}

impl Default for RawPassive {
    fn default() -> Self {
        Self {
            max_failures: default_passive_failures(),
            ejection_ms: default_ejection_ms(),
        }
    }
}

/// A route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Unique name, used in metrics, analytics and per-route plan overrides.
    pub name: Spanned<String>,
    /// Host names (exact, `*.example.com`, or `*`). Default: any host.
    #[serde(default)]
    pub hosts: Vec<Spanned<String>>,
    /// Path pattern: `/exact`, `/prefix/*`, or a template `/items/{id}` (`{name}` matches one
    /// segment; a trailing `/*` matches the rest).
    pub path: Spanned<String>,
    /// Allowed methods (default: any). Others get 405.
    #[serde(default)]
    pub methods: Vec<Spanned<String>>,
    /// Name of the upstream pool.
    pub upstream: Spanned<String>,
    /// Remove this prefix from the path before forwarding.
    #[serde(default)]
    pub strip_prefix: Option<String>,
    /// Largest request body accepted (bytes) → 413.
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
    /// CORS policy; preflights are answered by the gateway.
    #[serde(default)]
    pub cors: Option<RawCors>,
    /// Header rules applied to the request sent upstream.
    #[serde(default)]
    pub request_headers: RawHeaderRules,
    /// Header rules applied to the response sent to the client.
    #[serde(default)]
    pub response_headers: RawHeaderRules,
    /// WAF policy of this route (default: `waf.defaults`).
    #[serde(default)]
    pub waf: Option<Spanned<palisade_waf::PolicyConfig>>,
    /// Per-route rate limit (needs a `guard:` section), e.g. `{per_second: 100, burst: 200}`.
    #[serde(default)]
    pub rate_limit: Option<palisade_guard::Rate>,
    /// Require an API key on this route (needs an `api_keys:` section).
    #[serde(default)]
    pub api_key: Option<RawRouteKey>,
}

/// Defaults applied to every route.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteDefaults {
    /// Default body cap (default 10 MiB).
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
}

/// CORS policy of a route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCors {
    /// Allowed origins (`*` allows any; exact origins otherwise).
    pub allow_origins: Vec<String>,
    /// Allowed methods (default GET, POST, PUT, PATCH, DELETE, OPTIONS, HEAD).
    #[serde(default)]
    pub allow_methods: Vec<String>,
    /// Allowed request headers (default: echo what the preflight asks for).
    #[serde(default)]
    pub allow_headers: Vec<String>,
    /// Response headers exposed to scripts.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// Send `Access-Control-Allow-Credentials: true` (not allowed with origin `*`).
    #[serde(default)]
    pub allow_credentials: bool,
    /// Preflight cache lifetime (default 600 s).
    #[serde(default = "default_max_age")]
    pub max_age_secs: u64,
}

/// Header add/remove rules.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeaderRules {
    /// Headers set (replacing any existing value).
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    /// Headers removed.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// WAF settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWaf {
    /// Directory of rule files (`*.yaml`), relative to the config file.
    #[serde(default)]
    pub rules_dir: Option<String>,
    /// Policy of routes that set none (default: block at paranoia 1, threshold 5).
    #[serde(default)]
    pub defaults: Option<Spanned<palisade_waf::PolicyConfig>>,
}

fn yes() -> bool {
    true
}
fn one() -> u32 {
    1
}
fn two() -> u32 {
    2
}
fn default_admin_address_str() -> String {
    "127.0.0.1:9901".to_string()
}
fn default_admin_address() -> Spanned<String> {
    Spanned::new(
        default_admin_address_str(),
        serde_saphyr::Location::UNKNOWN,
        serde_saphyr::Location::UNKNOWN,
    )
}
fn default_threads_spanned() -> Spanned<usize> {
    Spanned::new(
        1,
        serde_saphyr::Location::UNKNOWN,
        serde_saphyr::Location::UNKNOWN,
    )
}
fn default_grace() -> u64 {
    1
}
fn default_shutdown_timeout() -> u64 {
    5
}
fn default_retries() -> u32 {
    1
}
fn default_connect_ms() -> u64 {
    2_000
}
fn default_read_ms() -> u64 {
    30_000
}
fn default_total_ms() -> u64 {
    5_000
}
fn default_idle_ms() -> u64 {
    60_000
}
fn default_health_path() -> String {
    "/health".to_string()
}
fn default_interval_ms() -> u64 {
    2_000
}
fn default_check_timeout_ms() -> u64 {
    1_000
}
fn default_passive_failures() -> u32 {
    3
}
fn default_ejection_ms() -> u64 {
    10_000
}
fn default_max_age() -> u64 {
    600
}
