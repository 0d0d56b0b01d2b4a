//! Configuration: parse (YAML → [`raw::FileConfig`]), validate, and compile into [`Config`], the
//! runtime form the proxy uses. Every error names `file:line:col`, says what is wrong and, where
//! it can, gives a hint.
//!
//! Which value wins: a route's own setting wins over `defaults:`, which wins over the built-in
//! default. Listener and admin addresses are read at start only; a reload that changes them is
//! accepted for everything else and logs that the listeners keep their old addresses.

pub mod raw;

use crate::cors::Cors;
use crate::headers::HeaderRules;
use crate::router::PathPattern;
use http::Method;
use serde::Serialize;
use serde_saphyr::{Location, Spanned};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One configuration error, located in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the error is in.
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: u64,
    /// 1-based column (0 when unknown).
    pub col: u64,
    /// What is wrong, lowercase, with a hint in parentheses where one helps.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )
    }
}

/// Every error found in a configuration (validation does not stop at the first).
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// The validated configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// The file it was read from.
    pub source: PathBuf,
    /// Proxy listeners.
    pub listeners: Vec<Listener>,
    /// Admin listener.
    pub admin: Admin,
    /// Process settings.
    pub server: ServerSettings,
    /// Upstream pools by name.
    pub pools: BTreeMap<String, PoolConfig>,
    /// Routes in file order.
    pub routes: Vec<RouteConfig>,
    /// Directory of WAF rule files, if any.
    pub rules_dir: Option<PathBuf>,
    /// Guard settings (IP lists, throttling, auto-ban), if the stage is on.
    pub guard: Option<palisade_guard::GuardConfig>,
    /// Line and column of each `guard.ip.feeds` entry, in order (a feed that cannot be read is
    /// reported at its entry).
    #[serde(skip)]
    pub guard_feeds_at: Vec<(u64, u64)>,
    /// Analytics settings (read at start; a reload does not restart the writer).
    pub analytics: Option<palisade_analytics::AnalyticsConfig>,
    /// API keys: key file, quota file (resolved paths) and plans.
    pub api_keys: Option<ApiKeys>,
    /// Shared state in Redis (`None`: everything in this process). Read at start only: a reload
    /// that changes it is refused.
    pub state: Option<StateConfig>,
}

/// Validated `state: {backend: redis, …}` settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateConfig {
    /// The Redis URL (any password is redacted in `/config`).
    #[serde(serialize_with = "redact_url")]
    pub url: String,
    /// What to do with requests that need Redis while it is unreachable.
    pub on_failure: palisade_guard::redis_state::FailurePolicy,
    /// Key prefix.
    pub prefix: String,
    /// Timeout of each Redis operation.
    pub timeout: std::time::Duration,
    /// Interval of limit and ban synchronisation.
    pub sync_interval: std::time::Duration,
}

/// `redis://user:secret@host` → `redis://user:***@host`.
fn redact_url<S: serde::Serializer>(v: &str, s: S) -> Result<S::Ok, S::Error> {
    match (v.find("://"), v.rfind('@')) {
        (Some(i), Some(at)) if at > i + 3 => {
            let userinfo = &v[i + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            s.serialize_str(&format!("{}{user}:***{}", &v[..i + 3], &v[at..]))
        }
        _ => s.serialize_str(v),
    }
}

/// Validated API key settings.
#[derive(Debug, Clone, Serialize)]
pub struct ApiKeys {
    /// Key file (hashes only).
    pub key_file: PathBuf,
    /// Quota counter file.
    pub quota_file: PathBuf,
    /// Usage plans.
    pub plans: Vec<palisade_keys::UsagePlan>,
}

/// A route's API key requirement.
#[derive(Debug, Clone, Serialize)]
pub struct RouteKey {
    /// Header carrying the key.
    #[serde(serialize_with = "header_name_ser")]
    pub header: http::HeaderName,
    /// Query parameter carrying the key.
    pub query: Option<String>,
}

fn header_name_ser<S: serde::Serializer>(v: &http::HeaderName, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.as_str())
}

/// A proxy listener.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Listener {
    /// Socket address.
    pub address: SocketAddr,
    /// TLS certificate and key paths.
    pub tls: Option<TlsFiles>,
    /// h2c with prior knowledge on plaintext.
    pub h2c: bool,
}

/// TLS files of a listener.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TlsFiles {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM). Its contents are never shown.
    pub key: PathBuf,
}

/// Admin listener.
#[derive(Debug, Clone, Serialize)]
pub struct Admin {
    /// Socket address (loopback by default).
    pub address: SocketAddr,
    /// Bearer token for mutations; redacted when shown.
    #[serde(serialize_with = "redact")]
    pub token: Option<String>,
}

fn redact<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_str("<redacted>"),
        None => s.serialize_none(),
    }
}

/// Process settings.
#[derive(Debug, Clone, Serialize)]
pub struct ServerSettings {
    /// Worker threads of the proxy service.
    pub threads: usize,
    /// Grace period after SIGTERM.
    pub grace_period_secs: u64,
    /// Hard shutdown timeout.
    pub shutdown_timeout_secs: u64,
}

/// An upstream pool.
#[derive(Debug, Clone, Serialize)]
pub struct PoolConfig {
    /// Pool name.
    pub name: String,
    /// Servers with weights.
    pub targets: Vec<TargetConfig>,
    /// TLS to the targets.
    pub tls: bool,
    /// SNI for TLS.
    pub sni: Option<String>,
    /// HTTP/2 to the targets.
    pub http2: bool,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Read timeout.
    pub read_timeout: Duration,
    /// Write timeout.
    pub write_timeout: Duration,
    /// Total connect timeout.
    pub total_connect_timeout: Duration,
    /// Idle keep-alive timeout.
    pub idle_timeout: Duration,
    /// Extra attempts.
    pub retries: u32,
    /// Active health check.
    pub health_check: Option<HealthCheckConfig>,
    /// Consecutive failures before passive ejection (0: never).
    pub max_failures: u32,
    /// Ejection duration.
    pub ejection: Duration,
}

/// One target of a pool.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetConfig {
    /// `host:port` as written (resolved at connect time by Pingora).
    pub address: String,
    /// Resolved socket address.
    pub socket: SocketAddr,
    /// Weight.
    pub weight: u32,
}

/// Active health check.
#[derive(Debug, Clone, Serialize)]
pub struct HealthCheckConfig {
    /// Path requested.
    pub path: String,
    /// Interval.
    pub interval: Duration,
    /// Timeout of one check.
    pub timeout: Duration,
    /// Successes to become healthy.
    pub healthy_threshold: u32,
    /// Failures to become unhealthy.
    pub unhealthy_threshold: u32,
    /// Accepted statuses (empty: any 2xx).
    pub expected_status: Vec<u16>,
}

/// Where a route's WAF policy is written in the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyOrigin {
    /// 1-based line.
    pub line: u64,
    /// 1-based column.
    pub col: u64,
    /// The key that holds it: `waf` (the route's own) or `waf.defaults`.
    pub key: &'static str,
}

/// A validated route.
#[derive(Debug, Clone, Serialize)]
pub struct RouteConfig {
    /// Route name.
    pub name: String,
    /// Host patterns (empty: any).
    pub hosts: Vec<String>,
    /// Path pattern.
    pub path: PathPattern,
    /// Allowed methods (empty: any).
    #[serde(serialize_with = "methods_ser")]
    pub methods: Vec<Method>,
    /// Pool name.
    pub upstream: String,
    /// Prefix stripped before forwarding.
    pub strip_prefix: Option<String>,
    /// Body cap.
    pub max_body_bytes: u64,
    /// CORS policy.
    pub cors: Option<Cors>,
    /// Request header rules.
    pub request_headers: HeaderRules,
    /// Response header rules.
    pub response_headers: HeaderRules,
    /// WAF policy (the route's own, else `waf.defaults`, else the built-in default); `None`
    /// when no rules are configured.
    #[serde(skip)]
    pub waf: Option<palisade_waf::PolicyConfig>,
    /// Where that policy is written (the route's `waf:` or `waf.defaults`; `None` for the
    /// built-in default), for the errors found when it is compiled against the rule set.
    #[serde(skip)]
    pub waf_origin: Option<PolicyOrigin>,
    /// Per-route rate limit.
    pub rate_limit: Option<palisade_guard::Rate>,
    /// API key requirement.
    pub api_key: Option<RouteKey>,
}

fn methods_ser<S: serde::Serializer>(v: &[Method], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|m| m.as_str()))
}

/// Default body cap: 10 MiB.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;

/// Read, parse, validate and compile a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: file.clone(),
            line: 0,
            col: 0,
            message: format!("cannot read the file: {e}"),
        }])
    })?;
    parse(path, &text)
}

/// Parse, validate and compile configuration text read from `path`.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let raw: raw::FileConfig = parse_yaml(&file, text).map_err(|e| ConfigErrors(vec![e]))?;
    // Relative paths in the file are relative to the file, made absolute now so that nothing
    // depends on the process's working directory later (reloads, background tasks).
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf());
    let mut config = Validator::new(&file, &base).validate(path, raw)?;
    config.guard_feeds_at = feed_locations(text);
    Ok(config)
}

/// Where each `guard.ip.feeds` entry starts, in order: the guard crate's own config types carry
/// no spans, so the file is read once more for them alone (the file already parsed whole).
fn feed_locations(text: &str) -> Vec<(u64, u64)> {
    use serde::de::IgnoredAny;
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(default)]
        guard: Option<Guard>,
    }
    #[derive(serde::Deserialize)]
    struct Guard {
        #[serde(default)]
        ip: Option<Ip>,
    }
    #[derive(serde::Deserialize)]
    struct Ip {
        #[serde(default)]
        feeds: Vec<Spanned<IgnoredAny>>,
    }
    serde_saphyr::from_str::<File>(text)
        .ok()
        .and_then(|f| f.guard)
        .and_then(|g| g.ip)
        .map(|ip| {
            ip.feeds
                .iter()
                .map(|f| (f.referenced.line(), f.referenced.column()))
                .collect()
        })
        .unwrap_or_default()
}

/// Parse YAML into `T`, mapping the parser's error to `file:line:col: message`.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(
    file: &str,
    text: &str,
) -> Result<T, ConfigError> {
    serde_saphyr::from_str::<T>(text).map_err(|e| {
        let (line, col) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        ConfigError {
            file: file.to_string(),
            line,
            col,
            message: yaml_message(&e),
        }
    })
}

/// The parser's message without its own location suffix and snippet, lowercased first letter.
fn yaml_message(e: &serde_saphyr::Error) -> String {
    let full = e.to_string();
    let first = full.lines().next().unwrap_or("invalid yaml").trim();
    // serde-saphyr appends " at line X column Y"; we print the location ourselves.
    let msg = match first.find(" at line ") {
        Some(i) => &first[..i],
        None => first,
    };
    let mut msg = msg.trim_start_matches("error: ").trim();
    // and sometimes prefixes "line X column Y: "
    if msg.starts_with("line ") {
        if let Some(i) = msg.find(": ") {
            msg = &msg[i + 2..];
        }
    }
    let mut out = String::with_capacity(msg.len() + 40);
    let mut chars = msg.chars();
    if let Some(c) = chars.next() {
        out.extend(c.to_lowercase());
        out.push_str(chars.as_str());
    }
    if out.starts_with("unknown field") {
        out.push_str(" (unknown keys are errors so that a typo cannot disable protection)");
    }
    out
}

/// The WAF policy of a route that sets none: block at paranoia 1, threshold 5.
pub fn default_policy() -> palisade_waf::PolicyConfig {
    palisade_waf::PolicyConfig::default()
}

struct Validator<'a> {
    file: &'a str,
    base: &'a Path,
    errors: Vec<ConfigError>,
}

impl<'a> Validator<'a> {
    fn new(file: &'a str, base: &'a Path) -> Self {
        Self {
            file,
            base,
            errors: Vec::new(),
        }
    }

    fn err(&mut self, at: &Location, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            line: at.line(),
            col: at.column(),
            message: message.into(),
        });
    }

    fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    fn socket(&mut self, s: &Spanned<String>, what: &str) -> Option<SocketAddr> {
        match s.value.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                use std::net::ToSocketAddrs;
                // A name with a port that does not resolve here is not a syntax error: say so
                // (a compose file's service names resolve only inside its network).
                let host = s
                    .value
                    .rsplit_once(':')
                    .filter(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
                    .map(|(h, _)| h);
                let problem = match host {
                    None => format!(
                        "invalid {what} address `{}` (expected host:port, e.g. 127.0.0.1:8080)",
                        s.value
                    ),
                    Some(h) => match s.value.to_socket_addrs().map(|mut it| it.next()) {
                        Ok(Some(a)) => return Some(a),
                        Ok(None) => {
                            format!("{what} address `{}`: `{h}` resolves to no address", s.value)
                        }
                        Err(e) => format!(
                            "{what} address `{}`: cannot resolve `{h}`: {e} (names are resolved when the config is loaded)",
                            s.value
                        ),
                    },
                };
                self.err(&s.referenced, problem);
                None
            }
        }
    }

    fn validate(mut self, path: &Path, raw: raw::FileConfig) -> Result<Config, ConfigErrors> {
        let mut listeners = Vec::new();
        if raw.listeners.is_empty() {
            self.err(
                &Location::UNKNOWN,
                "no listeners (add `listeners: [{address: 127.0.0.1:8080}]`)",
            );
        }
        for l in &raw.listeners {
            let Some(address) = self.socket(&l.value.address, "listener") else {
                continue;
            };
            let tls = match &l.value.tls {
                Some(t) => {
                    let cert = self.resolve(&t.cert.value);
                    let key = self.resolve(&t.key.value);
                    if !cert.is_file() {
                        self.err(
                            &t.cert.referenced,
                            format!(
                                "tls certificate `{}` is not a readable file",
                                cert.display()
                            ),
                        );
                    }
                    if !key.is_file() {
                        self.err(
                            &t.key.referenced,
                            format!("tls key `{}` is not a readable file", key.display()),
                        );
                    }
                    Some(TlsFiles { cert, key })
                }
                None => None,
            };
            listeners.push(Listener {
                address,
                tls,
                h2c: l.value.h2c,
            });
        }

        let admin_addr = self
            .socket(&raw.admin.address, "admin")
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9901)));
        let token = match &raw.admin.token_env {
            Some(var) => std::env::var(var).ok().or(raw.admin.token.clone()),
            None => raw.admin.token.clone(),
        };
        let admin = Admin {
            address: admin_addr,
            token,
        };

        if raw.server.threads.value == 0 {
            self.err(
                &raw.server.threads.referenced,
                "server.threads must be at least 1",
            );
        }
        let server = ServerSettings {
            threads: raw.server.threads.value.max(1),
            grace_period_secs: raw.server.grace_period_secs,
            shutdown_timeout_secs: raw.server.shutdown_timeout_secs,
        };

        let mut pools = BTreeMap::new();
        for (name, p) in &raw.upstreams {
            if let Some(pool) = self.pool(name, p) {
                pools.insert(name.clone(), pool);
            }
        }

        let default_body = raw
            .defaults
            .max_body_bytes
            .unwrap_or(DEFAULT_MAX_BODY_BYTES);
        let mut routes = Vec::new();
        let mut names = BTreeSet::new();
        for r in &raw.routes {
            if !names.insert(r.value.name.value.clone()) {
                self.err(
                    &r.value.name.referenced,
                    format!("duplicate route name `{}`", r.value.name.value),
                );
            }
            if let Some(mut route) = self.route(&r.value, &pools, default_body) {
                if raw.waf.rules_dir.is_some() {
                    let written = match (&r.value.waf, &raw.waf.defaults) {
                        (Some(p), _) => Some((p, "waf")),
                        (None, Some(p)) => Some((p, "waf.defaults")),
                        (None, None) => None,
                    };
                    route.waf = Some(written.map_or_else(default_policy, |(p, _)| p.value.clone()));
                    route.waf_origin = written.map(|(p, key)| PolicyOrigin {
                        line: p.referenced.line(),
                        col: p.referenced.column(),
                        key,
                    });
                }
                if route.api_key.is_some() && raw.api_keys.is_none() {
                    self.err(
                        &r.value.name.referenced,
                        format!(
                            "route `{}` requires an api_key but there is no `api_keys:` section",
                            route.name
                        ),
                    );
                }
                if route.rate_limit.is_some() && raw.guard.is_none() {
                    self.err(
                        &r.value.name.referenced,
                        format!(
                            "route `{}` sets rate_limit but there is no `guard:` section (add `guard: {{}}`)",
                            route.name
                        ),
                    );
                }
                routes.push(route);
            }
        }

        let rules_dir = raw.waf.rules_dir.as_deref().map(|d| self.resolve(d));
        let api_keys = raw.api_keys.as_ref().map(|k| {
            let key_file = self.resolve(&k.key_file);
            let quota_file = match &k.quota_file {
                Some(q) => self.resolve(q),
                None => key_file.with_extension("quotas.json"),
            };
            ApiKeys {
                key_file,
                quota_file,
                plans: k.plans.iter().map(|p| p.value.clone()).collect(),
            }
        });
        if let Some(k) = &raw.api_keys {
            // Each plan on its own, so that an error points at the plan that has it.
            let mut names = BTreeSet::new();
            for p in &k.plans {
                if let Err(e) = palisade_keys::PlanSet::compile(std::slice::from_ref(&p.value)) {
                    self.err(&p.referenced, format!("api_keys.plans: {e}"));
                } else if !names.insert(p.value.name.as_str()) {
                    let e = palisade_keys::PlanError::Duplicate(p.value.name.clone());
                    self.err(&p.referenced, format!("api_keys.plans: {e}"));
                }
            }
        }

        let state = raw.state.as_ref().and_then(|st| self.state(st));

        if !self.errors.is_empty() {
            self.errors.sort_by_key(|e| (e.line, e.col));
            return Err(ConfigErrors(self.errors));
        }
        // Makes a path from the file absolute (relative paths are relative to the config file).
        let base = self.base;
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        Ok(Config {
            source: path.to_path_buf(),
            listeners,
            admin,
            server,
            pools,
            routes,
            rules_dir,
            guard_feeds_at: Vec::new(),
            guard: raw.guard.map(|mut g| {
                // Guard files are relative to the config file, like every other path.
                for f in &mut g.ip.feeds {
                    abs(&mut f.path);
                }
                if let Some(a) = &mut g.autoban {
                    if let Some(p) = &mut a.state_file {
                        abs(p);
                    }
                }
                g
            }),
            analytics: raw.analytics.map(|mut a| {
                // Event files, the spool and the security log are relative to the config file
                // too (not to the process's working directory).
                if let palisade_analytics::SinkConfig::Ndjson(n) = &mut a.sink {
                    abs(&mut n.dir);
                }
                abs(&mut a.spool.dir);
                if let Some(l) = &mut a.security_log {
                    abs(&mut l.path);
                }
                a
            }),
            api_keys,
            state,
        })
    }

    fn state(&mut self, st: &Spanned<raw::RawState>) -> Option<StateConfig> {
        let raw = &st.value;
        if raw.backend == raw::StateBackendKind::Local {
            return None;
        }
        let Some(url) = raw.url.clone() else {
            self.err(
                &st.referenced,
                "state: backend `redis` needs a `url` (hint: `url: redis://127.0.0.1:6379/0`)",
            );
            return None;
        };
        let known = ["redis://", "rediss://", "unix://", "redis+unix://"];
        if !known.iter().any(|p| url.starts_with(p)) {
            self.err(
                &st.referenced,
                format!("state.url `{url}` is not a Redis URL (hint: it starts with redis://, rediss:// or unix://)"),
            );
            return None;
        }
        if raw.timeout_ms == 0 || raw.timeout_ms > 60_000 {
            self.err(
                &st.referenced,
                format!(
                    "state.timeout_ms {} is out of range (1..=60000)",
                    raw.timeout_ms
                ),
            );
        }
        if !(10..=60_000).contains(&raw.sync_interval_ms) {
            self.err(
                &st.referenced,
                format!(
                    "state.sync_interval_ms {} is out of range (10..=60000)",
                    raw.sync_interval_ms
                ),
            );
        }
        if raw.prefix.is_empty() || raw.prefix.contains(char::is_whitespace) {
            self.err(
                &st.referenced,
                "state.prefix must be non-empty and without spaces",
            );
        }
        Some(StateConfig {
            url,
            on_failure: raw.on_failure,
            prefix: raw.prefix.clone(),
            timeout: std::time::Duration::from_millis(raw.timeout_ms),
            sync_interval: std::time::Duration::from_millis(raw.sync_interval_ms),
        })
    }

    fn pool(&mut self, name: &str, p: &Spanned<raw::RawPool>) -> Option<PoolConfig> {
        let raw = &p.value;
        if raw.targets.is_empty() {
            self.err(
                &p.referenced,
                format!(
                    "upstream `{name}` has no targets (add `targets: [{{address: host:port}}]`)"
                ),
            );
            return None;
        }
        let mut targets = Vec::new();
        for t in &raw.targets {
            if t.value.weight == 0 {
                self.err(
                    &t.referenced,
                    "target weight must be at least 1 (remove the target to disable it)",
                );
            }
            if let Some(socket) = self.socket(&t.value.address, "upstream target") {
                targets.push(TargetConfig {
                    address: t.value.address.value.clone(),
                    socket,
                    weight: t.value.weight.max(1),
                });
            }
        }
        let health_check = raw.health_check.as_ref().map(|h| HealthCheckConfig {
            path: if h.path.starts_with('/') {
                h.path.clone()
            } else {
                format!("/{}", h.path)
            },
            interval: Duration::from_millis(h.interval_ms.max(50)),
            timeout: Duration::from_millis(h.timeout_ms.max(10)),
            healthy_threshold: h.healthy_threshold.max(1),
            unhealthy_threshold: h.unhealthy_threshold.max(1),
            expected_status: h.expected_status.clone(),
        });
        let t = &raw.timeouts;
        Some(PoolConfig {
            name: name.to_string(),
            targets,
            tls: raw.tls,
            sni: raw.sni.clone(),
            http2: raw.http2,
            connect_timeout: Duration::from_millis(t.connect_ms),
            read_timeout: Duration::from_millis(t.read_ms),
            write_timeout: Duration::from_millis(t.write_ms),
            total_connect_timeout: Duration::from_millis(t.total_connect_ms),
            idle_timeout: Duration::from_millis(t.idle_ms),
            retries: raw.retries,
            health_check,
            max_failures: raw.passive.max_failures,
            ejection: Duration::from_millis(raw.passive.ejection_ms),
        })
    }

    fn route(
        &mut self,
        r: &raw::RawRoute,
        pools: &BTreeMap<String, PoolConfig>,
        default_body: u64,
    ) -> Option<RouteConfig> {
        let mut ok = true;
        let path = match PathPattern::parse(&r.path.value) {
            Ok(p) => Some(p),
            Err(e) => {
                self.err(&r.path.referenced, e);
                ok = false;
                None
            }
        };
        let mut methods = Vec::new();
        for m in &r.methods {
            match Method::from_bytes(m.value.to_ascii_uppercase().as_bytes()) {
                Ok(mm) => methods.push(mm),
                Err(_) => {
                    self.err(&m.referenced, format!("invalid method `{}`", m.value));
                    ok = false;
                }
            }
        }
        if !pools.contains_key(&r.upstream.value) {
            let known: Vec<&str> = pools.keys().map(String::as_str).collect();
            self.err(
                &r.upstream.referenced,
                format!(
                    "unknown upstream `{}` (defined upstreams: {})",
                    r.upstream.value,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            );
            ok = false;
        }
        let mut hosts = Vec::new();
        for h in &r.hosts {
            let v = h.value.to_ascii_lowercase();
            if v.is_empty() || (v.contains('*') && v != "*" && !v.starts_with("*.")) {
                self.err(
                    &h.referenced,
                    format!(
                        "invalid host pattern `{}` (use `example.com`, `*.example.com` or `*`)",
                        h.value
                    ),
                );
                ok = false;
            }
            hosts.push(v);
        }
        let cors = match &r.cors {
            Some(c) => match Cors::compile(c) {
                Ok(c) => Some(c),
                Err(e) => {
                    self.err(
                        &r.name.referenced,
                        format!("route `{}`: cors: {e}", r.name.value),
                    );
                    ok = false;
                    None
                }
            },
            None => None,
        };
        let request_headers = match HeaderRules::compile(&r.request_headers) {
            Ok(h) => h,
            Err(e) => {
                self.err(
                    &r.name.referenced,
                    format!("route `{}`: request_headers: {e}", r.name.value),
                );
                ok = false;
                HeaderRules::default()
            }
        };
        let response_headers = match HeaderRules::compile(&r.response_headers) {
            Ok(h) => h,
            Err(e) => {
                self.err(
                    &r.name.referenced,
                    format!("route `{}`: response_headers: {e}", r.name.value),
                );
                ok = false;
                HeaderRules::default()
            }
        };
        let api_key = match &r.api_key {
            Some(k) => match http::HeaderName::from_bytes(k.header.to_ascii_lowercase().as_bytes())
            {
                Ok(header) => Some(RouteKey {
                    header,
                    query: k.query.clone(),
                }),
                Err(_) => {
                    self.err(
                        &r.name.referenced,
                        format!(
                            "route `{}`: api_key.header `{}` is not a header name",
                            r.name.value, k.header
                        ),
                    );
                    ok = false;
                    None
                }
            },
            None => None,
        };
        if let Some(p) = &r.strip_prefix {
            if !p.starts_with('/') {
                self.err(
                    &r.name.referenced,
                    format!("route `{}`: strip_prefix must start with `/`", r.name.value),
                );
                ok = false;
            }
        }
        if !ok {
            return None;
        }
        Some(RouteConfig {
            name: r.name.value.clone(),
            hosts,
            path: path?,
            methods,
            upstream: r.upstream.value.clone(),
            strip_prefix: r.strip_prefix.clone(),
            max_body_bytes: r.max_body_bytes.unwrap_or(default_body),
            cors,
            request_headers,
            response_headers,
            waf: None,
            waf_origin: None,
            rate_limit: r.rate_limit,
            api_key,
        })
    }
}

#[cfg(test)]
mod path_tests {
    use std::path::Path;

    #[test]
    fn analytics_paths_are_relative_to_the_config_file() {
        let text = "listeners:\n  - address: 127.0.0.1:8080\nupstreams:\n  demo:\n    targets:\n      - address: 127.0.0.1:8081\nroutes:\n  - name: all\n    path: /*\n    upstream: demo\nanalytics:\n  sink:\n    ndjson: {dir: events}\n  spool: {dir: spool}\n  security_log: {path: logs/security.log}\n";
        let cfg = super::parse(Path::new("/etc/palisade/palisade.yaml"), text).expect("parses");
        let a = cfg.analytics.expect("analytics section");
        match &a.sink {
            palisade_analytics::SinkConfig::Ndjson(n) => {
                assert_eq!(n.dir, Path::new("/etc/palisade/events"))
            }
            other => panic!("unexpected sink {other:?}"),
        }
        assert_eq!(a.spool.dir, Path::new("/etc/palisade/spool"));
        assert_eq!(
            a.security_log.expect("security log").path,
            Path::new("/etc/palisade/logs/security.log")
        );
    }
}
