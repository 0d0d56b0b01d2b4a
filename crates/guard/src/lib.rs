//! palisade-guard: IP reputation, client IP resolution, throttling, auto-ban and connection
//! guards for the Palisade gateway. No I/O on the request path and no knowledge of Pingora: the
//! gateway calls [`Guard::check`] once per request and the connection helpers at the listener.
//! See `docs/GUARD.md` for precedence, formats and configuration.

pub mod client_ip;
pub mod config;
pub mod error;
pub mod feeds;
pub mod limiter;
pub mod lists;
mod prefix;
pub mod time;

pub use client_ip::{client_ip, TrustedProxies};
pub use config::{
    Action, AutoBanConfig, ClientIpHeader, ConnectionConfig, FeedConfig, FeedFormat, GuardConfig,
    IpConfig, Rate, RatePeriod, ThrottleConfig,
};
pub use error::GuardError;
pub use feeds::{parse_feed, FeedSet, ReloadReport};
pub use limiter::{BoundedStore, Decision, LimitKey, Limiter, RateLimit};
pub use lists::{IpLists, IpListsBuilder, ListHit};
pub use time::{Clock, FakeClock, SharedClock, SystemClock, Timestamp};
