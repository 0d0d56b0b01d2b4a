//! palisade-keys: API keys and usage plans (DESIGN.md §5, issue 6).
//!
//! - [`KeyStore`]: key records in a JSON file; each key kept only as its SHA-256.
//! - [`UsagePlan`] (config) → [`PlanSet`] (compiled): rate, burst, calendar quotas, per-route
//!   overrides.
//! - [`KeyAuth::check`]: one request's key → [`Admission`] or [`Rejection`] (status + reason).
//! - [`QuotaStore`]: exact quota counters, flushed to disk off the request path.
//! - [`Clock`] / [`ManualClock`]: injected time.
//!
//! See `docs/API_KEYS.md` for the key format, plan semantics and persistence.

mod auth;
mod calendar;
mod clock;
mod fsutil;
mod plan;
mod quota;
mod rate;
mod store;
mod token;

pub use auth::{Admission, KeyAuth, QuotaUsage, Rejection};
pub use calendar::{Period, Window};
pub use clock::{Clock, ManualClock, SystemClock};
pub use plan::{
    CompiledPlan, PlanError, PlanSet, QuotaConfig, RateLimit, RouteOverride, UsagePlan, MAX_BURST,
    MAX_QUOTA, MAX_RATE, MIN_RATE, PLAN_SCOPE,
};
pub use quota::{QuotaBackend, QuotaCounter, QuotaDecision, QuotaError, QuotaStore};
pub use store::{KeyRecord, KeyStore, StoreError};
pub use token::{is_valid_id, KeyHash, ID_LEN, ID_PREFIX, KEY_LEN, KEY_PREFIX, SECRET_LEN};
