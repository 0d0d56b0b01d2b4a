//! palisade-keys: API keys and usage plans (DESIGN.md §5, issue 6).
//!
//! - [`KeyStore`]: key records in a JSON file; each key kept only as its SHA-256.
//! - [`UsagePlan`] (config) → [`PlanSet`] (compiled): rate, burst, calendar quotas, per-route
//!   overrides.
//! - [`KeyAuth::check`]: one request's key → [`Admission`] or [`Rejection`] (status + reason).
//! - [`QuotaStore`]: exact quota counters, flushed to disk off the request path.
//! - [`RemoteQuotas`] / [`PendingQuota`]: quota counters shared by several gateways in Redis
//!   (the round trip itself behind feature `redis`, [`remote::acquire`]).
//! - [`RateBackend`] / [`SharedRate`]: plan rate limits shared by several gateways (feature
//!   `redis`: `SharedRates`, on the guard's Redis-synchronised limiter).
//! - [`Clock`] / [`ManualClock`]: injected time.
//!
//! See `docs/API_KEYS.md` for the key format, plan semantics and persistence.
//!
//! ```
//! use std::sync::Arc;
//! use palisade_keys::{KeyAuth, KeyStore, ManualClock, PlanSet, QuotaStore, Rejection, UsagePlan};
//!
//! // Plans come from the gateway's config file (any serde format; unknown fields are errors).
//! let raw: Vec<UsagePlan> = serde_json::from_str(
//!     r#"[{"name": "gold", "rate": 10, "burst": 20, "quota": {"limit": 2, "period": "day"}}]"#,
//! )?;
//! let plans = PlanSet::compile(&raw)?;
//! // In the gateway: `KeyStore::open(key_file)?`, `QuotaStore::open(quota_file)?`, `SystemClock`.
//! let clock = Arc::new(ManualClock::at_utc(2028, 2, 29, 23, 0, 0)?);
//! let quotas = Arc::new(QuotaStore::in_memory());
//! let auth = KeyAuth::new(Arc::new(KeyStore::in_memory()), plans, quotas.clone(), clock.clone());
//!
//! let (record, key) = auth.create("ci", "alice", "gold", None)?; // `key` is shown once
//! let ok = auth.check_now(Some(&key), "orders").map_err(|r| r.to_string())?;
//! assert_eq!((ok.key_id.as_str(), ok.quota_remaining), (record.id.as_str(), Some(1)));
//! auth.check_now(Some(&key), "orders").map_err(|r| r.to_string())?;
//! let refused = auth.check_now(Some(&key), "orders").unwrap_err();
//! assert!(matches!(refused, Rejection::QuotaExceeded { .. }));
//! assert_eq!((refused.status(), refused.reason()), (429, "quota_exceeded"));
//! // Midnight after the leap day: a new window.
//! clock.advance(std::time::Duration::from_secs(3600));
//! assert!(auth.check_now(Some(&key), "orders").is_ok());
//! quotas.flush()?; // every second from a background task, and at shutdown
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod auth;
mod calendar;
mod clock;
mod fsutil;
mod name;
mod plan;
mod quota;
mod rate;
pub mod remote;
mod store;
mod token;

pub use auth::{Admission, KeyAuth, QuotaUsage, Rejection};
pub use calendar::{Period, Window};
pub use clock::{Clock, ManualClock, SystemClock};
pub use name::ShortName;
pub use plan::{
    CompiledPlan, PlanError, PlanSet, QuotaConfig, RateLimit, RouteOverride, UsagePlan, MAX_BURST,
    MAX_QUOTA, MAX_RATE, MIN_RATE, PLAN_SCOPE,
};
pub use quota::{QuotaBackend, QuotaCounter, QuotaDecision, QuotaError, QuotaStore};
pub use rate::{RateBackend, RateDecision, SharedRate};
#[cfg(feature = "redis")]
pub use remote::SharedRates;
pub use remote::{PendingQuota, RemoteQuotas};
pub use store::{KeyRecord, KeyStore, StoreError};
pub use token::{is_valid_id, KeyHash, ID_LEN, ID_PREFIX, KEY_LEN, KEY_PREFIX, SECRET_LEN};
