//! palisade-analytics: the analytics event, names shared with the schema and dashboards, the
//! ClickHouse writer with its disk spool, the NDJSON sink and the security log.
//! See docs/ANALYTICS.md.
//!
//! The gateway calls [`start`] once, then [`Analytics::record_ref`] (or [`Analytics::record`]
//! with an owned event) for every request (never blocks), [`Analytics::security`] for blocked
//! ones, [`Analytics::stats`] for `/metrics`, and [`Analytics::shutdown`] on exit.
#![warn(missing_docs)]
pub mod config;
pub mod dashboards;
pub mod error;
pub mod event;
pub mod names;
pub mod queue;
pub mod rotating;
pub mod rowbinary;
mod rows;
pub mod schema;
pub mod security;
pub mod spool;
pub mod stats;
pub mod writer;

pub use config::{AnalyticsConfig, ClickHouseConfig, NdjsonConfig, SinkConfig, SpoolConfig};
pub use error::AnalyticsError;
pub use event::Event;
pub use security::{SecurityLog, SecurityMatch, SecurityRecord};
pub use stats::Stats;
pub use writer::{start, Analytics};
