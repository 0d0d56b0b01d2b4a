//! palisade-guard: IP reputation, client IP resolution, throttling, auto-ban and connection
//! guards for the Palisade gateway. No I/O on the request path and no knowledge of Pingora: the
//! gateway calls [`Guard::check`] once per request and the connection helpers at the listener.
//! See `docs/GUARD.md` for precedence, formats and configuration.
//!
//! Modules, one job each: [`time`] (injected clock), [`config`] (file types), [`lists`] and the
//! private `prefix` table (allow/deny lookups), [`feeds`] (feed files, reload and swap),
//! [`client_ip`] (trusted proxies), [`limiter`] (GCRA over bounded state), [`autoban`] (bans and
//! their persistence), [`conn`] (connection cap, body rate, header caps), [`guard`] (the facade), [`backend`]
//! (the seam for shared state) and `redis_state` (feature `redis`: limits and bans shared through
//! Redis).

#![warn(missing_docs)]

pub mod autoban;
pub mod backend;
pub mod client_ip;
pub mod config;
pub mod conn;
pub mod error;
pub mod feeds;
pub mod guard;
pub mod limiter;
pub mod lists;
mod prefix;
#[cfg(feature = "redis")]
pub mod redis_state;
pub mod time;

pub use autoban::{AutoBan, Ban, BanStore};
pub use backend::StateBackend;
pub use client_ip::{client_ip, TrustedProxies};
pub use config::{
    Action, AutoBanConfig, ClientIpHeader, ConnectionConfig, FeedConfig, FeedFormat, GuardConfig,
    IpConfig, Rate, RatePeriod, ThrottleConfig,
};
pub use conn::{
    check_header_totals, check_headers, BodyRate, ConnGuard, ConnPermit, HeaderViolation,
};
pub use error::GuardError;
pub use feeds::{parse_feed, FeedSet, ReloadReport};
pub use guard::{Guard, GuardDecision, ThrottleScope, Verdict};
pub use limiter::{BoundedStore, Decision, LimitKey, Limiter, RateLimit};
pub use lists::{IpLists, IpListsBuilder, ListHit};
pub use time::{Clock, CoarseClock, FakeClock, SharedClock, SystemClock, Timestamp};
