//! The seam for shared state (issue 7): where a [`crate::Guard`] gets its limiters and its ban
//! store when several gateways must act as one. Without a backend the guard builds the local
//! [`crate::Limiter`] and [`crate::AutoBan`]; with one (the Redis backend of
//! `redis_state`, feature `redis`) it asks the backend, which hands out types that answer from
//! process memory and synchronise in the background.

use std::fmt;
use std::sync::Arc;

use crate::autoban::BanStore;
use crate::config::{AutoBanConfig, Rate};
use crate::limiter::RateLimit;

/// A provider of shared limiters and ban stores.
pub trait StateBackend: Send + Sync + fmt::Debug {
    /// A limiter for `scope` (`ip`, `global`, `route:<name>`: part of the shared key), one
    /// bucket per key when `keyed` (at most `max_keys` held locally), else one bucket.
    fn limiter(&self, scope: &str, rate: Rate, keyed: bool, max_keys: usize) -> Arc<dyn RateLimit>;
    /// The ban store, with `cfg`'s threshold, window and duration.
    fn bans(&self, cfg: &AutoBanConfig) -> Arc<dyn BanStore>;
}
