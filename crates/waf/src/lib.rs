//! palisade-waf: the WAF engine. It loads rule files (`rules/*.yaml`), compiles them once,
//! and inspects request heads and bodies, accumulating an anomaly score per request. It does no
//! I/O on the request path and knows nothing of Pingora; the gateway calls it.
//!
//! ```text
//! RuleSet::load_dir ─▶ parse (raw.rs) ─▶ validate ─▶ compile (ruleset.rs)
//! Policy::compile(PolicyConfig, &RuleSet)            per route: paranoia, exclusions → bitsets
//! RuleSet::inspect_head / inspect_body ─▶ Inspection (score, matches, body_error) ─▶ verdict
//! ```
//!
//! Modules: [`transform`] (one file per transform), [`target`] (the target vocabulary),
//! `ruleset` (load and compile), `prefilter` (regex literal factors), `inspect` (the hot
//! path), `request` and `body` (value extraction), [`protocol`] (smuggling shapes),
//! `explain` and `selftest` (the rule author's tools).

#![forbid(unsafe_code)]

mod bitset;
pub mod body;
mod clean;
mod error;
mod explain;
mod inspect;
mod plain;
mod policy;
mod prefilter;
pub mod protocol;
mod raw;
pub mod replay;
mod request;
mod ruleset;
mod scan;
mod seen;
mod selftest;
pub mod target;
pub mod transform;

pub use error::{LoadError, LoadErrors, PolicyError};
pub use explain::{dechunk, explain, ExplainError, Explanation};
pub use inspect::{BodyError, Inspection, RuleMatch, Verdict, MATCHED_MAX, VALUE_MAX};
pub use policy::{ExclusionConfig, Mode, OverLimit, Policy, PolicyConfig};
pub use raw::Severity;
pub use request::RequestHead;
pub use ruleset::{Detector, Rule, RuleSet};
pub use selftest::{TestFailure, TestReport};
