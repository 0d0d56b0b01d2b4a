//! Usage plans: the raw config types (parsed with `deny_unknown_fields`), their validation, and
//! the compiled [`PlanSet`] the per-request check reads.
//!
//! Precedence: a route override replaces the plan's value field by field. A route that sets
//! `rate` or `burst` gets its own rate bucket (the unset one of the two comes from the plan); a
//! route that sets `quota` gets its own quota counter, which requests on that route consume
//! *instead of* the plan-wide counter. A route that sets neither shares the plan's bucket and
//! counter with every other route.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::calendar::Period;
use crate::name::ShortName;

/// Largest quota limit a plan may set (counters pack the count into 40 bits).
pub const MAX_QUOTA: u64 = (1 << 40) - 1;
/// Smallest rate a plan may set, in requests per second (one request per 1000 s).
pub const MIN_RATE: f64 = 0.001;
/// Largest rate a plan may set, in requests per second.
pub const MAX_RATE: f64 = 1e9;
/// Largest burst a plan may set.
pub const MAX_BURST: u32 = 1_000_000;

/// A usage plan as written in the config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsagePlan {
    /// The name keys refer to.
    pub name: String,
    /// Steady rate in requests per second (GCRA emission rate). Set together with `burst`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Requests allowed at once on an idle bucket. Set together with `rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// Requests allowed per calendar window; no quota when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaConfig>,
    /// Per-route overrides, by route name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub routes: BTreeMap<String, RouteOverride>,
}

/// A quota: at most `limit` requests per calendar `period` (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    /// Requests allowed per window (0 blocks every request).
    pub limit: u64,
    /// `day`, `week` (Monday-aligned) or `month`.
    pub period: Period,
}

/// What a plan sets differently for one route; unset fields come from the plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteOverride {
    /// Requests per second on this route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Burst on this route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// Quota counted separately for this route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaConfig>,
}

/// Why a plan was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// Two plans share a name.
    #[error("usage plan `{0}` is defined twice (plan names must be unique)")]
    Duplicate(String),
    /// A plan has an empty name.
    #[error("a usage plan has an empty name (give it a `name`)")]
    EmptyName,
    /// `rate` without `burst` or the reverse.
    #[error("usage plan `{plan}`{route}: `{set}` is set without `{missing}` (set both, or neither for no rate limit)")]
    Incomplete {
        /// The plan.
        plan: String,
        /// ` route \`x\`` or empty.
        route: String,
        /// The field that is set.
        set: &'static str,
        /// The field that is missing.
        missing: &'static str,
    },
    /// A value outside its range.
    #[error("usage plan `{plan}`{route}: `{field}` is {value}, expected {expected}")]
    OutOfRange {
        /// The plan.
        plan: String,
        /// ` route \`x\`` or empty.
        route: String,
        /// The field.
        field: &'static str,
        /// The value given.
        value: String,
        /// The accepted range.
        expected: &'static str,
    },
}

/// A validated GCRA rate limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Requests per second.
    pub rate: f64,
    /// Requests allowed at once.
    pub burst: u32,
    /// Nanoseconds between requests at the steady rate (1e9 / rate).
    pub(crate) interval_ns: i64,
}

/// The limits that apply to one route of a plan, with the state slot each one uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Limits {
    /// Rate limit and index into the plan's rate scopes.
    pub rate: Option<(RateLimit, usize)>,
    /// Quota and index into the plan's quota scopes.
    pub quota: Option<(QuotaConfig, usize)>,
}

/// Hasher of the route-override map. Route names come from the config file and the gateway looks
/// them up with the name of the route it matched (never a client's string), so nobody can aim
/// keys at one bucket: an unkeyed multiply-rotate hash is safe, and ~8× cheaper per lookup than
/// the standard library's SipHash.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RouteBuildHasher;

/// See [`RouteBuildHasher`].
pub(crate) struct RouteHasher(u64);

impl std::hash::BuildHasher for RouteBuildHasher {
    type Hasher = RouteHasher;
    fn build_hasher(&self) -> RouteHasher {
        RouteHasher(0)
    }
}

impl std::hash::Hasher for RouteHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(K);
        }
        for &byte in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(byte)).wrapping_mul(K);
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        // Spread the high bits (hashbrown takes its 7-bit tag from the top).
        self.0 ^ (self.0 >> 29)
    }
}

/// A usage plan ready for the per-request check.
#[derive(Debug)]
pub struct CompiledPlan {
    pub(crate) name: Arc<str>,
    pub(crate) short_name: ShortName,
    pub(crate) base: Limits,
    pub(crate) routes: HashMap<Box<str>, Limits, RouteBuildHasher>,
    /// Scope names of the rate buckets a key of this plan owns: `*` (plan-wide) or a route name.
    pub(crate) rate_scopes: Vec<Arc<str>>,
    /// Scope names and quotas of the counters a key of this plan owns.
    pub(crate) quota_scopes: Vec<(Arc<str>, QuotaConfig)>,
}

/// The scope name of plan-wide rate buckets and quota counters.
pub const PLAN_SCOPE: &str = "*";

impl CompiledPlan {
    /// The plan's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The rate limit that applies on `route` (route override or plan), if any.
    pub fn rate_on(&self, route: &str) -> Option<RateLimit> {
        self.limits(route).rate.map(|(r, _)| r)
    }

    /// The quota that applies on `route` (route override or plan), if any.
    pub fn quota_on(&self, route: &str) -> Option<QuotaConfig> {
        self.limits(route).quota.map(|(q, _)| q)
    }

    /// The rate limit of rate scope `slot` (an index into `rate_scopes`).
    pub(crate) fn rate_of_slot(&self, slot: usize) -> Option<RateLimit> {
        std::iter::once(&self.base)
            .chain(self.routes.values())
            .find_map(|l| l.rate.filter(|(_, i)| *i == slot).map(|(r, _)| r))
    }

    pub(crate) fn limits(&self, route: &str) -> &Limits {
        if self.routes.is_empty() {
            return &self.base;
        }
        self.routes.get(route).unwrap_or(&self.base)
    }
}

/// Every usage plan, validated and compiled, by name.
#[derive(Debug, Default)]
pub struct PlanSet {
    plans: HashMap<String, Arc<CompiledPlan>>,
}

impl PlanSet {
    /// Validates and compiles `plans`. Route names are not checked against the gateway's routes
    /// here: see [`PlanSet::referenced_routes`].
    pub fn compile(plans: &[UsagePlan]) -> Result<Self, PlanError> {
        let mut out = HashMap::with_capacity(plans.len());
        for p in plans {
            if p.name.is_empty() {
                return Err(PlanError::EmptyName);
            }
            let compiled = compile_plan(p)?;
            if out.insert(p.name.clone(), Arc::new(compiled)).is_some() {
                return Err(PlanError::Duplicate(p.name.clone()));
            }
        }
        Ok(Self { plans: out })
    }

    /// The plan named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<CompiledPlan>> {
        self.plans.get(name)
    }

    /// Plan names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.plans.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// `(plan, route)` for every route override, so the gateway can reject overrides that name
    /// no route (a typo would otherwise silently leave the plan's limits in force).
    pub fn referenced_routes(&self) -> Vec<(&str, &str)> {
        let mut v: Vec<(&str, &str)> = self
            .plans
            .values()
            .flat_map(|p| p.routes.keys().map(move |r| (&*p.name, &**r)))
            .collect();
        v.sort_unstable();
        v
    }
}

fn where_(route: Option<&str>) -> String {
    route.map(|r| format!(" route `{r}`")).unwrap_or_default()
}

fn check_rate(plan: &str, route: Option<&str>, rate: f64) -> Result<(), PlanError> {
    if rate.is_finite() && (MIN_RATE..=MAX_RATE).contains(&rate) {
        Ok(())
    } else {
        Err(PlanError::OutOfRange {
            plan: plan.into(),
            route: where_(route),
            field: "rate",
            value: rate.to_string(),
            expected: "requests per second between 0.001 and 1e9",
        })
    }
}

fn check_burst(plan: &str, route: Option<&str>, burst: u32) -> Result<(), PlanError> {
    if (1..=MAX_BURST).contains(&burst) {
        Ok(())
    } else {
        Err(PlanError::OutOfRange {
            plan: plan.into(),
            route: where_(route),
            field: "burst",
            value: burst.to_string(),
            expected: "between 1 and 1000000",
        })
    }
}

fn check_quota(plan: &str, route: Option<&str>, q: &QuotaConfig) -> Result<(), PlanError> {
    if q.limit <= MAX_QUOTA {
        Ok(())
    } else {
        Err(PlanError::OutOfRange {
            plan: plan.into(),
            route: where_(route),
            field: "quota.limit",
            value: q.limit.to_string(),
            expected: "at most 1099511627775",
        })
    }
}

fn rate_limit(rate: f64, burst: u32) -> RateLimit {
    RateLimit {
        rate,
        burst,
        interval_ns: (1e9 / rate).round().max(1.0) as i64,
    }
}

fn compile_plan(p: &UsagePlan) -> Result<CompiledPlan, PlanError> {
    let name = p.name.as_str();
    let incomplete = |route: Option<&str>, set, missing| PlanError::Incomplete {
        plan: name.into(),
        route: where_(route),
        set,
        missing,
    };
    let mut rate_scopes: Vec<Arc<str>> = Vec::new();
    let mut quota_scopes: Vec<(Arc<str>, QuotaConfig)> = Vec::new();
    let base_rate = match (p.rate, p.burst) {
        (Some(r), Some(b)) => {
            check_rate(name, None, r)?;
            check_burst(name, None, b)?;
            rate_scopes.push(Arc::from(PLAN_SCOPE));
            Some((rate_limit(r, b), 0))
        }
        (None, None) => None,
        (Some(_), None) => return Err(incomplete(None, "rate", "burst")),
        (None, Some(_)) => return Err(incomplete(None, "burst", "rate")),
    };
    let base_quota = match &p.quota {
        Some(q) => {
            check_quota(name, None, q)?;
            quota_scopes.push((Arc::from(PLAN_SCOPE), *q));
            Some((*q, 0))
        }
        None => None,
    };
    let base = Limits {
        rate: base_rate,
        quota: base_quota,
    };
    let mut routes = HashMap::with_capacity_and_hasher(p.routes.len(), RouteBuildHasher);
    for (route, o) in &p.routes {
        let r = Some(route.as_str());
        let rate = if o.rate.is_some() || o.burst.is_some() {
            let rate = o
                .rate
                .or(p.rate)
                .ok_or_else(|| incomplete(r, "burst", "rate"))?;
            let burst = o
                .burst
                .or(p.burst)
                .ok_or_else(|| incomplete(r, "rate", "burst"))?;
            check_rate(name, r, rate)?;
            check_burst(name, r, burst)?;
            rate_scopes.push(Arc::from(route.as_str()));
            Some((rate_limit(rate, burst), rate_scopes.len() - 1))
        } else {
            base.rate
        };
        let quota = match &o.quota {
            Some(q) => {
                check_quota(name, r, q)?;
                quota_scopes.push((Arc::from(route.as_str()), *q));
                Some((*q, quota_scopes.len() - 1))
            }
            None => base.quota,
        };
        routes.insert(Box::from(route.as_str()), Limits { rate, quota });
    }
    let short_name = ShortName::new(name).ok_or_else(|| PlanError::OutOfRange {
        plan: name.into(),
        route: String::new(),
        field: "name",
        value: format!("{} bytes long", name.len()),
        expected: "at most 32 bytes",
    })?;
    Ok(CompiledPlan {
        name: Arc::from(name),
        short_name,
        base,
        routes,
        rate_scopes,
        quota_scopes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Vec<UsagePlan>, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn unknown_fields_are_errors_at_every_level() {
        let e = parse(r#"[{"name":"a","rat":5}]"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `rat`"), "{e}");
        let e = parse(r#"[{"name":"a","quota":{"limit":1,"period":"day","x":1}}]"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `x`"), "{e}");
        let e = parse(r#"[{"name":"a","routes":{"r":{"burts":1}}}]"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `burts`"), "{e}");
        let e = parse(r#"[{"name":"a","quota":{"limit":1,"period":"year"}}]"#).unwrap_err();
        assert!(e.to_string().contains("unknown variant `year`"), "{e}");
    }

    #[test]
    fn route_overrides_win_field_by_field_and_get_their_own_scopes() {
        let plans = parse(
            r#"[{"name":"gold","rate":10,"burst":20,"quota":{"limit":1000,"period":"month"},
                 "routes":{"search":{"burst":5},
                           "export":{"quota":{"limit":3,"period":"day"}},
                           "plain":{}}}]"#,
        )
        .unwrap();
        let set = PlanSet::compile(&plans).unwrap();
        let gold = set.get("gold").unwrap();
        // search: own bucket with the plan's rate and its own burst; shares the plan's quota.
        let s = gold.limits("search");
        let (rl, rslot) = s.rate.unwrap();
        assert_eq!((rl.rate, rl.burst, rl.interval_ns), (10.0, 5, 100_000_000));
        assert_eq!(&*gold.rate_scopes[rslot], "search");
        assert_eq!(s.quota.unwrap().1, 0);
        // export: plan's bucket, its own daily quota.
        let e = gold.limits("export");
        assert_eq!(e.rate.unwrap().1, 0);
        let (q, qslot) = e.quota.unwrap();
        assert_eq!((q.limit, q.period), (3, Period::Day));
        assert_eq!(&*gold.quota_scopes[qslot].0, "export");
        // plain (empty override) and unknown routes: the plan's limits and scopes.
        assert_eq!(gold.limits("plain"), &gold.base);
        assert_eq!(gold.limits("nope"), &gold.base);
        assert_eq!(gold.quota_on("nope").unwrap().limit, 1000);
        assert_eq!(
            set.referenced_routes(),
            vec![("gold", "export"), ("gold", "plain"), ("gold", "search")]
        );
    }

    #[test]
    fn invalid_plans_are_refused_with_a_message_naming_the_field() {
        let err = |json: &str| {
            PlanSet::compile(&parse(json).unwrap())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(r#"[{"name":"a","rate":5}]"#),
            "usage plan `a`: `rate` is set without `burst` (set both, or neither for no rate limit)"
        );
        assert_eq!(
            err(r#"[{"name":"a","routes":{"r":{"burst":3}}}]"#),
            "usage plan `a` route `r`: `burst` is set without `rate` (set both, or neither for no rate limit)"
        );
        assert_eq!(
            err(r#"[{"name":"a","rate":0,"burst":1}]"#),
            "usage plan `a`: `rate` is 0, expected requests per second between 0.001 and 1e9"
        );
        assert_eq!(
            err(r#"[{"name":"a","rate":1,"burst":0}]"#),
            "usage plan `a`: `burst` is 0, expected between 1 and 1000000"
        );
        assert_eq!(
            err(r#"[{"name":"a","quota":{"limit":1099511627776,"period":"day"}}]"#),
            "usage plan `a`: `quota.limit` is 1099511627776, expected at most 1099511627775"
        );
        assert_eq!(
            err(r#"[{"name":"a"},{"name":"a"}]"#),
            "usage plan `a` is defined twice (plan names must be unique)"
        );
        assert_eq!(
            err(&format!(r#"[{{"name":"{}"}}]"#, "p".repeat(33))),
            format!(
                "usage plan `{}`: `name` is 33 bytes long, expected at most 32 bytes",
                "p".repeat(33)
            )
        );
        assert_eq!(
            err(r#"[{"name":""}]"#),
            "a usage plan has an empty name (give it a `name`)"
        );
    }
}
