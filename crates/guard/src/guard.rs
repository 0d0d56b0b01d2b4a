//! The facade the gateway calls once per request: IP lists, bans, then rate limits.
//!
//! Order of [`Guard::check`] (first match decides):
//! 1. **Allow lists**: with `allow_short_circuits` the request passes at once and later stages
//!    (throttle, API key, WAF) are skipped; without it, the address is exempt from deny lists
//!    and bans but still throttled.
//! 2. **Deny lists** (config and feeds): 403 `ip_denied`.
//! 3. **Bans** (auto or manual): 403 `ip_banned`.
//! 4. **Per-IP limit**, then **per-route limit**, then **global limit**: 429 with `Retry-After`.
//!    A throttled request counts as one auto-ban violation.
//!
//! The allow path does not allocate: the decision holds `Arc` clones and `Copy` data, and its
//! analytics key is produced by `Display`.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderMap;

use crate::autoban::{AutoBan, Ban, BanStore};
use crate::backend::StateBackend;
use crate::client_ip::{client_ip, TrustedProxies};
use crate::config::{GuardConfig, Rate};
use crate::conn::ConnGuard;
use crate::error::GuardError;
use crate::feeds::{FeedSet, ReloadReport};
use crate::limiter::{Decision, LimitKey, Limiter, RateLimit};
use crate::lists::{canonical_ip, ListHit};
use crate::time::{SharedClock, Timestamp};

/// Reason codes, identical to `palisade_analytics::names::reason` (the gateway maps them).
pub mod reason {
    /// On a deny list.
    pub const IP_DENIED: &str = "ip_denied";
    /// Banned.
    pub const IP_BANNED: &str = "ip_banned";
    /// Over the per-IP rate.
    pub const RATE_LIMITED_IP: &str = "rate_limited_ip";
    /// Over the route's rate.
    pub const RATE_LIMITED_ROUTE: &str = "rate_limited_route";
    /// Over the global rate.
    pub const RATE_LIMITED_GLOBAL: &str = "rate_limited_global";
    /// Over the per-IP connection cap.
    pub const TOO_MANY_CONNECTIONS: &str = "too_many_connections";
}

/// Which limiter throttled a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThrottleScope {
    /// The per-IP limit.
    Ip,
    /// The named route's limit.
    Route(Arc<str>),
    /// The global limit.
    Global,
}

/// What decided a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing matched and every limit conforms.
    Pass,
    /// An allow list matched. With `short_circuit`, skip later stages.
    Allowed {
        /// The matching list.
        hit: ListHit,
        /// Whether later stages are skipped (`allow_short_circuits`).
        short_circuit: bool,
    },
    /// A deny list matched: 403.
    Denied(ListHit),
    /// The address is banned until `until`: 403.
    Banned {
        /// The address.
        ip: IpAddr,
        /// When the ban ends.
        until: Timestamp,
    },
    /// A limiter said no: 429.
    Throttled {
        /// Which limiter.
        scope: ThrottleScope,
        /// The client address.
        ip: IpAddr,
    },
}

/// The guard's answer for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardDecision {
    /// What decided.
    pub verdict: Verdict,
    /// The tightest rate-limit decision among the limits checked (for `RateLimit-*` and
    /// `Retry-After`); `None` when no limit applies or the request was decided before them.
    pub rate_limit: Option<Decision>,
    /// The ban this request triggered, if it did (a throttled request is a violation).
    pub new_ban: Option<Ban>,
}

impl GuardDecision {
    fn verdict(verdict: Verdict) -> Self {
        GuardDecision {
            verdict,
            rate_limit: None,
            new_ban: None,
        }
    }

    /// Whether the request must be refused (403 or 429).
    pub fn is_blocked(&self) -> bool {
        matches!(
            self.verdict,
            Verdict::Denied(_) | Verdict::Banned { .. } | Verdict::Throttled { .. }
        )
    }

    /// Whether later stages (API key, WAF) must be skipped: an allow list matched with
    /// `allow_short_circuits`.
    pub fn short_circuits(&self) -> bool {
        matches!(
            self.verdict,
            Verdict::Allowed {
                short_circuit: true,
                ..
            }
        )
    }

    /// The HTTP status to answer with: 403, 429, or `None` to go on.
    pub fn status(&self) -> Option<u16> {
        match self.verdict {
            Verdict::Denied(_) | Verdict::Banned { .. } => Some(403),
            Verdict::Throttled { .. } => Some(429),
            _ => None,
        }
    }

    /// The reason code for the JSON body and the event (`None` when not blocked).
    pub fn reason(&self) -> Option<&'static str> {
        match &self.verdict {
            Verdict::Denied(_) => Some(reason::IP_DENIED),
            Verdict::Banned { .. } => Some(reason::IP_BANNED),
            Verdict::Throttled { scope, .. } => Some(match scope {
                ThrottleScope::Ip => reason::RATE_LIMITED_IP,
                ThrottleScope::Route(_) => reason::RATE_LIMITED_ROUTE,
                ThrottleScope::Global => reason::RATE_LIMITED_GLOBAL,
            }),
            _ => None,
        }
    }

    /// The pipeline stage that decided: `ip_reputation` (lists, bans), `throttle`, or `None`
    /// for a plain pass.
    pub fn stage(&self) -> Option<&'static str> {
        match self.verdict {
            Verdict::Pass => None,
            Verdict::Allowed { .. } | Verdict::Denied(_) | Verdict::Banned { .. } => {
                Some("ip_reputation")
            }
            Verdict::Throttled { .. } => Some("throttle"),
        }
    }
}

impl fmt::Display for GuardDecision {
    /// The analytics key: `pass`, `allow:config-allow 10.0.0.0/8`, `deny:spamhaus-drop
    /// 1.2.3.0/24`, `ban 10.0.0.1`, `throttle:ip 10.0.0.1`, `throttle:route api 10.0.0.1`,
    /// `throttle:global 10.0.0.1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.verdict {
            Verdict::Pass => f.write_str("pass"),
            Verdict::Allowed { hit, .. } | Verdict::Denied(hit) => hit.fmt(f),
            Verdict::Banned { ip, .. } => write!(f, "ban {ip}"),
            Verdict::Throttled { scope, ip } => match scope {
                ThrottleScope::Ip => write!(f, "throttle:ip {ip}"),
                ThrottleScope::Route(r) => write!(f, "throttle:route {r} {ip}"),
                ThrottleScope::Global => write!(f, "throttle:global {ip}"),
            },
        }
    }
}

#[derive(Debug, Clone)]
struct RouteLimit {
    name: Arc<str>,
    limiter: Arc<dyn RateLimit>,
}

/// The ban store: the local one (with its state file), or a shared backend's.
#[derive(Debug, Clone)]
enum Bans {
    Local(Arc<AutoBan>),
    Shared(Arc<dyn BanStore>),
}

impl Bans {
    #[inline]
    fn store(&self) -> &dyn BanStore {
        match self {
            Bans::Local(b) => b.as_ref(),
            Bans::Shared(b) => b.as_ref(),
        }
    }
}

/// IP lists, bans, limiters and the connection counter, built from a [`GuardConfig`].
#[derive(Debug)]
pub struct Guard {
    cfg: GuardConfig,
    feeds: Arc<FeedSet>,
    trusted: TrustedProxies,
    per_ip: Option<Arc<dyn RateLimit>>,
    global: Option<Arc<dyn RateLimit>>,
    /// Route names come from the config (not from clients), so a fast hash is safe here.
    routes: HashMap<Box<str>, RouteLimit, foldhash::fast::RandomState>,
    bans: Option<Bans>,
    conns: ConnGuard,
    clock: SharedClock,
    /// Shared state (Redis): limiters and bans come from it; fixed for the guard's lifetime.
    backend: Option<Arc<dyn StateBackend>>,
}

impl Guard {
    /// Builds the guard: validates the config, loads every feed (a bad feed is an error) and
    /// the ban state file.
    /// `routes` are the per-route limits as `(route name, rate)`.
    pub fn new<'a>(
        cfg: &GuardConfig,
        routes: impl IntoIterator<Item = (&'a str, Rate)>,
        clock: SharedClock,
    ) -> Result<Guard, GuardError> {
        Self::build(cfg, routes, clock, None, None)
    }

    /// Like [`Guard::new`], with limiters and bans from a shared `backend` (which must read
    /// the same clock). [`Guard::reconfigure`] keeps the backend.
    pub fn with_backend<'a>(
        cfg: &GuardConfig,
        routes: impl IntoIterator<Item = (&'a str, Rate)>,
        clock: SharedClock,
        backend: Arc<dyn StateBackend>,
    ) -> Result<Guard, GuardError> {
        Self::build(cfg, routes, clock, None, Some(backend))
    }

    /// A guard for a new config that keeps this one's state where the settings allow: bans
    /// (always), limiter state (when the rate is unchanged), feeds (when the IP config is
    /// unchanged) and open-connection counts. Call on config reload, then swap.
    pub fn reconfigure<'a>(
        &self,
        cfg: &GuardConfig,
        routes: impl IntoIterator<Item = (&'a str, Rate)>,
    ) -> Result<Guard, GuardError> {
        Self::build(
            cfg,
            routes,
            self.clock.clone(),
            Some(self),
            self.backend.clone(),
        )
    }

    fn build<'a>(
        cfg: &GuardConfig,
        routes: impl IntoIterator<Item = (&'a str, Rate)>,
        clock: SharedClock,
        prev: Option<&Guard>,
        backend: Option<Arc<dyn StateBackend>>,
    ) -> Result<Guard, GuardError> {
        cfg.validate()?;
        let now = clock.now();
        let feeds = match prev {
            Some(p) if p.cfg.ip == cfg.ip => Arc::clone(&p.feeds),
            _ => Arc::new(FeedSet::load(&cfg.ip)?),
        };
        let trusted = TrustedProxies::new(&cfg.ip.trusted_proxies, cfg.ip.client_ip_header);
        let max_keys = cfg.throttle.max_keys;
        let keep =
            |old: Option<&Arc<dyn RateLimit>>, rate: Rate, keyed: bool, scope: &str| match old {
                Some(l)
                    if l.rate() == rate
                        && (!keyed
                            || prev.is_some_and(|p| p.cfg.throttle.max_keys == max_keys)) =>
                {
                    Arc::clone(l)
                }
                _ => match &backend {
                    Some(b) => b.limiter(scope, rate, keyed, max_keys),
                    None if keyed => Arc::new(Limiter::keyed(rate, max_keys, clock.clone()))
                        as Arc<dyn RateLimit>,
                    None => Arc::new(Limiter::shared(rate, clock.clone())) as Arc<dyn RateLimit>,
                },
            };
        let per_ip = cfg
            .throttle
            .per_ip
            .map(|r| keep(prev.and_then(|p| p.per_ip.as_ref()), r, true, "ip"));
        let global = cfg
            .throttle
            .global
            .map(|r| keep(prev.and_then(|p| p.global.as_ref()), r, false, "global"));
        let mut route_map = HashMap::with_hasher(foldhash::fast::RandomState::default());
        for (name, rate) in routes {
            let old = prev.and_then(|p| p.routes.get(name)).map(|r| &r.limiter);
            route_map.insert(
                Box::from(name),
                RouteLimit {
                    name: Arc::from(name),
                    limiter: keep(old, rate, false, &format!("route:{name}")),
                },
            );
        }
        let bans = match (&cfg.autoban, prev.and_then(|p| p.bans.as_ref())) {
            (None, _) => None,
            (Some(c), Some(old)) if prev.is_some_and(|p| p.cfg.autoban.as_ref() == Some(c)) => {
                Some(old.clone())
            }
            (Some(c), _) if backend.is_some() => backend.as_ref().map(|b| Bans::Shared(b.bans(c))),
            (Some(c), Some(Bans::Local(old))) => Some(Bans::Local(Arc::new(old.reconfigured(c)))),
            (Some(c), _) => Some(Bans::Local(Arc::new(AutoBan::load(c, now)?))),
        };
        let conns = match prev {
            Some(p) => {
                p.conns.set_max_per_ip(cfg.connections.max_per_ip);
                p.conns.clone()
            }
            None => ConnGuard::new(cfg.connections.max_per_ip),
        };
        Ok(Guard {
            cfg: cfg.clone(),
            feeds,
            trusted,
            per_ip,
            global,
            routes: route_map,
            bans,
            conns,
            clock,
            backend,
        })
    }

    /// The current time on the guard's clock (pass it to [`Guard::check`]).
    #[inline]
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The client address of a request from `peer` (see [`client_ip`]).
    #[inline]
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        client_ip(peer, headers, &self.trusted)
    }

    /// Whether `peer` is a configured trusted proxy (exempt from the per-IP connection cap: it
    /// carries many clients).
    #[inline]
    pub fn is_trusted_proxy(&self, peer: IpAddr) -> bool {
        self.trusted.contains(peer)
    }

    /// Decides one request from `ip` on route `route_key` (a route without a configured limit
    /// is only subject to the per-IP and global limits). The whole request is judged at `now`
    /// (bans and every limiter); pass [`Guard::now`], read once per request.
    pub fn check(&self, ip: IpAddr, route_key: &str, now: Timestamp) -> GuardDecision {
        let ip = canonical_ip(ip);
        let lists = self.feeds.lists();
        let mut allow_hit = None;
        match lists.lookup(ip) {
            Some(hit) if hit.action == crate::config::Action::Allow => {
                if self.cfg.ip.allow_short_circuits {
                    return GuardDecision::verdict(Verdict::Allowed {
                        hit,
                        short_circuit: true,
                    });
                }
                allow_hit = Some(hit);
            }
            Some(hit) => return GuardDecision::verdict(Verdict::Denied(hit)),
            None => {}
        }
        drop(lists);
        if allow_hit.is_none() {
            if let Some(b) = &self.bans {
                let b = b.store();
                if b.is_banned(ip, now) {
                    let until = b.get(ip, now).map_or(now, |ban| ban.until);
                    return GuardDecision::verdict(Verdict::Banned { ip, until });
                }
            }
        }
        let key = LimitKey::Ip(ip);
        let mut rate: Option<Decision> = None;
        if let Some(l) = &self.per_ip {
            let d = l.check_at(key, now);
            rate = Some(d);
            if !d.allowed {
                return self.throttled(ThrottleScope::Ip, ip, now, rate, &allow_hit);
            }
        }
        if let Some(r) = self.routes.get(route_key) {
            let d = r.limiter.check_at(key, now);
            rate = Some(rate.map_or(d, |x| x.tighter(d)));
            if !d.allowed {
                let scope = ThrottleScope::Route(Arc::clone(&r.name));
                return self.throttled(scope, ip, now, rate, &allow_hit);
            }
        }
        if let Some(l) = &self.global {
            // The global limit protects the server; its remaining capacity is not the
            // client's business, so it shows in the headers only when it refuses.
            let d = l.check_at(key, now);
            if !d.allowed {
                rate = Some(rate.map_or(d, |x| x.tighter(d)));
                return self.throttled(ThrottleScope::Global, ip, now, rate, &allow_hit);
            }
        }
        let verdict = match allow_hit {
            Some(hit) => Verdict::Allowed {
                hit,
                short_circuit: false,
            },
            None => Verdict::Pass,
        };
        GuardDecision {
            verdict,
            rate_limit: rate,
            new_ban: None,
        }
    }

    #[cold]
    fn throttled(
        &self,
        scope: ThrottleScope,
        ip: IpAddr,
        now: Timestamp,
        rate: Option<Decision>,
        allow_hit: &Option<ListHit>,
    ) -> GuardDecision {
        let new_ban = match (allow_hit, &self.bans) {
            (None, Some(b)) => b.store().record_violation(ip, now),
            _ => None,
        };
        GuardDecision {
            verdict: Verdict::Throttled { scope, ip },
            rate_limit: rate,
            new_ban,
        }
    }

    /// Counts a violation decided elsewhere (a WAF block, an API-key limit) towards auto-ban;
    /// returns the ban if it triggered one. Allow-listed addresses are never banned.
    pub fn record_violation(&self, ip: IpAddr, now: Timestamp) -> Option<Ban> {
        let b = self.bans.as_ref()?;
        if self
            .feeds
            .lookup(ip)
            .is_some_and(|h| h.action == crate::config::Action::Allow)
        {
            return None;
        }
        b.store().record_violation(ip, now)
    }

    /// The ban store (admin API: list, ban, unban), if auto-ban is configured.
    pub fn bans(&self) -> Option<&dyn BanStore> {
        self.bans.as_ref().map(Bans::store)
    }

    /// The feeds and lists.
    pub fn feeds(&self) -> &Arc<FeedSet> {
        &self.feeds
    }

    /// The per-IP connection counter.
    pub fn conns(&self) -> &ConnGuard {
        &self.conns
    }

    /// The config this guard was built from.
    pub fn config(&self) -> &GuardConfig {
        &self.cfg
    }

    /// Keys held by the per-IP limiter (for `/metrics`).
    pub fn limiter_keys(&self) -> usize {
        self.per_ip.as_ref().map_or(0, |l| l.len())
    }

    /// Background housekeeping, every few seconds: drops limiter state that carries no
    /// information and expired bans.
    pub fn sweep(&self) {
        let now = self.now();
        if let Some(l) = &self.per_ip {
            l.sweep();
        }
        if let Some(Bans::Local(b)) = &self.bans {
            b.purge_expired(now);
        }
    }

    /// Writes the ban state file if bans changed (blocking I/O: background task).
    pub fn persist_bans(&self) -> Result<bool, GuardError> {
        match &self.bans {
            Some(Bans::Local(b)) => b.persist(self.now()),
            _ => Ok(false),
        }
    }

    /// Re-reads changed feed files and swaps the lists (blocking I/O: background task, every
    /// `ip.reload_interval_secs`).
    pub fn reload_feeds(&self) -> ReloadReport {
        self.feeds.reload()
    }
}
