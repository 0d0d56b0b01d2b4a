//! palisade-analytics: the analytics event, names shared with the schema and dashboards, the
//! ClickHouse writer with its disk spool, and the NDJSON sink. See docs/ARCHITECTURE.md.
pub mod names;
