//! ClickHouse schema: versioned, idempotent migrations applied at startup, and retention.
//!
//! Every statement is valid on the Debian `clickhouse-server` 18.16 and on current ClickHouse
//! (checked by tests against the local 18.16 and against chdb 26.x). Hence: `DateTime` (no
//! `DateTime64`), `String` for IPs (no `IPv6` domain), no `LowCardinality`, no
//! `SimpleAggregateFunction`, and `AggregateFunction` states for every rollup measure.
//!
//! Retention: table `TTL` exists from ClickHouse 19.6 on; on older servers the janitor
//! ([`drop_expired_partitions`]) drops whole day partitions instead.

use std::fmt::Write as _;

use crate::names::{column as c, table as t};
use crate::AnalyticsError;

/// One schema version: statements run in order, each idempotent (`IF NOT EXISTS`).
#[derive(Debug, Clone)]
pub struct Migration {
    /// Version number, strictly increasing.
    pub version: u32,
    /// Short description, stored in `schema_migrations`.
    pub name: &'static str,
    /// The statements, for the given database.
    pub statements: Vec<String>,
}

/// Quantile levels kept by the rollups (`quantilesMerge(0.5, 0.9, 0.95, 0.99)` reads them).
pub const QUANTILES: &str = "0.5, 0.9, 0.95, 0.99";

/// True when `db` is a plain identifier (letters, digits, `_`, not starting with a digit).
pub fn valid_database_name(db: &str) -> bool {
    let mut chars = db.chars();
    matches!(chars.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && chars.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        && db.len() <= 64
}

/// `CREATE DATABASE` and the `schema_migrations` table: run before reading the applied versions.
pub fn bootstrap_statements(db: &str) -> Vec<String> {
    vec![
        format!("CREATE DATABASE IF NOT EXISTS {db}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.{sm} ({v} UInt32, {n} String, {a} DateTime) \
             ENGINE = MergeTree ORDER BY {v}",
            sm = t::SCHEMA_MIGRATIONS,
            v = c::VERSION,
            n = c::NAME,
            a = c::APPLIED_AT
        ),
    ]
}

/// The `events` table DDL, generated from [`crate::names::column::EVENTS`].
pub fn events_table(db: &str) -> String {
    let mut cols = String::new();
    for (i, (name, ty)) in c::EVENTS.iter().enumerate() {
        if i > 0 {
            cols.push_str(", ");
        }
        let _ = write!(cols, "{name} {ty}");
    }
    format!(
        "CREATE TABLE IF NOT EXISTS {db}.{events} ({cols}) ENGINE = MergeTree \
         PARTITION BY toYYYYMMDD({ts}) ORDER BY ({ts}, {route})",
        events = t::EVENTS,
        ts = c::TS,
        route = c::ROUTE
    )
}

/// Every migration, oldest first.
pub fn migrations(db: &str) -> Vec<Migration> {
    let q = QUANTILES;
    let e = t::EVENTS;
    vec![
        Migration { version: 1, name: "raw events table", statements: vec![events_table(db)] },
        Migration {
            version: 2,
            name: "per-minute rollups: traffic, attack classes, rules, api keys",
            statements: vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {db}.{t1} (minute DateTime, route String, \
                     verdict String, decided_by String, reason String, status_class UInt8, \
                     requests AggregateFunction(count), \
                     bytes_in_sum AggregateFunction(sum, UInt64), \
                     bytes_out_sum AggregateFunction(sum, UInt64), \
                     latency_q AggregateFunction(quantiles({q}), UInt64), \
                     upstream_latency_q AggregateFunction(quantiles({q}), UInt64), \
                     max_score AggregateFunction(max, UInt32)) \
                     ENGINE = AggregatingMergeTree PARTITION BY toYYYYMMDD(minute) \
                     ORDER BY (minute, route, verdict, decided_by, reason, status_class)",
                    t1 = t::EVENTS_1M
                ),
                format!(
                    "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{mv} TO {db}.{t1} AS \
                     SELECT toStartOfMinute(ts) AS minute, route, verdict, decided_by, reason, \
                     toUInt8(intDiv(status, 100)) AS status_class, \
                     countState() AS requests, sumState(bytes_in) AS bytes_in_sum, \
                     sumState(bytes_out) AS bytes_out_sum, \
                     quantilesState({q})(latency_us) AS latency_q, \
                     quantilesState({q})(upstream_latency_us) AS upstream_latency_q, \
                     maxState(anomaly_score) AS max_score \
                     FROM {db}.{e} \
                     GROUP BY minute, route, verdict, decided_by, reason, status_class",
                    mv = t::EVENTS_1M_MV,
                    t1 = t::EVENTS_1M
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {db}.{t1} (minute DateTime, route String, \
                     attack_class String, verdict String, decided_by String, \
                     requests AggregateFunction(count), max_score AggregateFunction(max, UInt32)) \
                     ENGINE = AggregatingMergeTree PARTITION BY toYYYYMMDD(minute) \
                     ORDER BY (minute, route, attack_class, verdict, decided_by)",
                    t1 = t::ATTACKS_1M
                ),
                format!(
                    "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{mv} TO {db}.{t1} AS \
                     SELECT toStartOfMinute(ts) AS minute, route, attack_class, verdict, \
                     decided_by, countState() AS requests, maxState(anomaly_score) AS max_score \
                     FROM {db}.{e} ARRAY JOIN attack_classes AS attack_class \
                     GROUP BY minute, route, attack_class, verdict, decided_by",
                    mv = t::ATTACKS_1M_MV,
                    t1 = t::ATTACKS_1M
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {db}.{t1} (minute DateTime, route String, \
                     rule_id UInt32, verdict String, hits AggregateFunction(count)) \
                     ENGINE = AggregatingMergeTree PARTITION BY toYYYYMMDD(minute) \
                     ORDER BY (minute, route, rule_id, verdict)",
                    t1 = t::RULES_1M
                ),
                format!(
                    "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{mv} TO {db}.{t1} AS \
                     SELECT toStartOfMinute(ts) AS minute, route, rule_id, verdict, \
                     countState() AS hits \
                     FROM {db}.{e} ARRAY JOIN rule_ids AS rule_id \
                     GROUP BY minute, route, rule_id, verdict",
                    mv = t::RULES_1M_MV,
                    t1 = t::RULES_1M
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {db}.{t1} (minute DateTime, api_key_id String, \
                     usage_plan String, route String, verdict String, reason String, \
                     status_class UInt8, requests AggregateFunction(count), \
                     bytes_out_sum AggregateFunction(sum, UInt64), \
                     min_quota_remaining AggregateFunction(min, UInt64), \
                     max_quota_limit AggregateFunction(max, UInt64)) \
                     ENGINE = AggregatingMergeTree PARTITION BY toYYYYMMDD(minute) \
                     ORDER BY (minute, api_key_id, usage_plan, route, verdict, reason, status_class)",
                    t1 = t::API_KEYS_1M
                ),
                format!(
                    "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{mv} TO {db}.{t1} AS \
                     SELECT toStartOfMinute(ts) AS minute, api_key_id, usage_plan, route, \
                     verdict, reason, toUInt8(intDiv(status, 100)) AS status_class, \
                     countState() AS requests, sumState(bytes_out) AS bytes_out_sum, \
                     minState(quota_remaining) AS min_quota_remaining, \
                     maxState(quota_limit) AS max_quota_limit \
                     FROM {db}.{e} WHERE api_key_id != '' \
                     GROUP BY minute, api_key_id, usage_plan, route, verdict, reason, status_class",
                    mv = t::API_KEYS_1M_MV,
                    t1 = t::API_KEYS_1M
                ),
            ],
        },
    ]
}

/// Every statement of a fresh install, in order (bootstrap, then each migration).
pub fn all_statements(db: &str) -> Vec<String> {
    let mut out = bootstrap_statements(db);
    for m in migrations(db) {
        out.extend(m.statements);
    }
    out
}

/// Tables that hold data and get a retention (the views hold none).
pub const RETAINED_TABLES: &[(&str, &str)] = &[
    (t::EVENTS, c::TS),
    (t::EVENTS_1M, c::MINUTE),
    (t::ATTACKS_1M, c::MINUTE),
    (t::RULES_1M, c::MINUTE),
    (t::API_KEYS_1M, c::MINUTE),
];

/// How long each kind of table keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Days of raw events.
    pub raw_days: u32,
    /// Days of rollups.
    pub rollup_days: u32,
}

impl Retention {
    /// Days kept for `table` (raw events or a rollup).
    pub fn days_for(&self, table: &str) -> u32 {
        if table == t::EVENTS {
            self.raw_days
        } else {
            self.rollup_days
        }
    }
}

/// A ClickHouse server version, `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServerVersion {
    /// Major (18, 26, …).
    pub major: u32,
    /// Minor.
    pub minor: u32,
}

impl ServerVersion {
    /// Parses `18.16.1` or `26.9.2.1`.
    pub fn parse(s: &str) -> Option<Self> {
        let mut it = s.trim().split('.');
        let major = it.next()?.parse().ok()?;
        let minor = it.next()?.parse().ok()?;
        Some(Self { major, minor })
    }

    /// Table TTL appeared in ClickHouse 19.6.
    pub fn supports_ttl(self) -> bool {
        self >= Self {
            major: 19,
            minor: 6,
        }
    }
}

/// The `ALTER … MODIFY TTL` statement for one table (only for servers that support it).
pub fn ttl_statement(db: &str, table: &str, time_col: &str, days: u32) -> String {
    format!("ALTER TABLE {db}.{table} MODIFY TTL {time_col} + INTERVAL {days} DAY")
}

/// What [`migrate`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Server version string.
    pub server_version: String,
    /// Versions applied by this run (empty when the schema was up to date).
    pub applied: Vec<u32>,
    /// True when TTL carries the retention; false when the janitor must drop partitions.
    pub ttl: bool,
}

async fn exec(client: &clickhouse::Client, sql: &str) -> Result<(), AnalyticsError> {
    client
        .query(sql)
        .execute()
        .await
        .map_err(|e| AnalyticsError::clickhouse(sql, e))
}

/// Runs a query and returns its answer as TSV text.
pub async fn query_tsv(client: &clickhouse::Client, sql: &str) -> Result<String, AnalyticsError> {
    let bytes = client
        .query(sql)
        .fetch_bytes("TSV")
        .map_err(|e| AnalyticsError::clickhouse(sql, e))?
        .collect()
        .await
        .map_err(|e| AnalyticsError::clickhouse(sql, e))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Applies every migration not yet recorded in `schema_migrations`, then the retention.
///
/// `client` must not have a default database set (the database may not exist yet); every
/// statement names `db` explicitly. Safe to run concurrently from several gateways: each
/// statement is idempotent and a version recorded twice is harmless.
pub async fn migrate(
    client: &clickhouse::Client,
    db: &str,
    retention: Option<Retention>,
) -> Result<MigrationReport, AnalyticsError> {
    if !valid_database_name(db) {
        return Err(AnalyticsError::Config(format!(
            "database name `{db}` is not a plain identifier (letters, digits, `_`)"
        )));
    }
    let version_text = query_tsv(client, "SELECT version()").await?;
    let version =
        ServerVersion::parse(&version_text).ok_or_else(|| AnalyticsError::Unexpected {
            context: "SELECT version()".into(),
            answer: version_text.trim().into(),
        })?;
    for sql in bootstrap_statements(db) {
        exec(client, &sql).await?;
    }
    let applied_text = query_tsv(
        client,
        &format!(
            "SELECT DISTINCT {} FROM {db}.{}",
            c::VERSION,
            t::SCHEMA_MIGRATIONS
        ),
    )
    .await?;
    let applied: Vec<u32> = applied_text
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let mut report = MigrationReport {
        server_version: version_text.trim().to_string(),
        applied: Vec::new(),
        ttl: version.supports_ttl(),
    };
    for m in migrations(db) {
        if applied.contains(&m.version) {
            continue;
        }
        for sql in &m.statements {
            exec(client, sql).await?;
        }
        let name = m.name.replace('\\', "\\\\").replace('\'', "\\'");
        exec(
            client,
            &format!(
                "INSERT INTO {db}.{} ({}, {}, {}) VALUES ({}, '{name}', now())",
                t::SCHEMA_MIGRATIONS,
                c::VERSION,
                c::NAME,
                c::APPLIED_AT,
                m.version
            ),
        )
        .await?;
        report.applied.push(m.version);
    }
    if let (Some(retention), true) = (retention, report.ttl) {
        for (table, col) in RETAINED_TABLES {
            let days = retention.days_for(table);
            let engine = query_tsv(
                client,
                &format!(
                    "SELECT engine_full FROM system.tables WHERE database = '{db}' AND name = '{table}'"
                ),
            )
            .await?;
            // Re-applying an unchanged TTL would start a needless mutation on every start.
            if !engine.contains(&format!("toIntervalDay({days})")) {
                exec(client, &ttl_statement(db, table, col, days)).await?;
            }
        }
    }
    Ok(report)
}

/// Janitor for servers without TTL: drops the day partitions of every retained table older
/// than its retention before `now_secs` (Unix seconds, injected so tests need no waiting).
/// A partition is dropped once its whole day is older than the retention. Returns the
/// `table/partition` pairs dropped.
pub async fn drop_expired_partitions(
    client: &clickhouse::Client,
    db: &str,
    retention: Retention,
    now_secs: u64,
) -> Result<Vec<String>, AnalyticsError> {
    let mut dropped = Vec::new();
    for (table, _) in RETAINED_TABLES {
        let cutoff_day = (now_secs / 86_400).saturating_sub(u64::from(retention.days_for(table)));
        let (y, m, d) = crate::event::civil_from_days(cutoff_day as i64);
        let cutoff = (y as u64) * 10_000 + m * 100 + d;
        let parts = query_tsv(
            client,
            &format!(
                "SELECT DISTINCT partition FROM system.parts \
                 WHERE database = '{db}' AND table = '{table}' AND active"
            ),
        )
        .await?;
        for p in parts.lines() {
            let p = p.trim().trim_matches('\'');
            let Ok(day) = p.parse::<u64>() else { continue };
            if day < cutoff {
                exec(
                    client,
                    &format!("ALTER TABLE {db}.{table} DROP PARTITION {day}"),
                )
                .await?;
                dropped.push(format!("{table}/{day}"));
            }
        }
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_ttl_support_is_decided() {
        let old = ServerVersion::parse("18.16.1");
        assert_eq!(
            old,
            Some(ServerVersion {
                major: 18,
                minor: 16
            })
        );
        assert!(!old.is_some_and(|v| v.supports_ttl()));
        assert!(ServerVersion::parse("26.9.2.1").is_some_and(|v| v.supports_ttl()));
        assert!(ServerVersion::parse("19.6.1").is_some_and(|v| v.supports_ttl()));
        assert_eq!(ServerVersion::parse("garbage"), None);
    }

    #[test]
    fn database_names_are_checked() {
        assert!(valid_database_name("palisade"));
        assert!(valid_database_name("t_1"));
        assert!(!valid_database_name("1x"));
        assert!(!valid_database_name("a;DROP"));
        assert!(!valid_database_name(""));
    }

    #[test]
    fn migration_versions_increase() {
        let ms = migrations("d");
        assert!(ms.windows(2).all(|w| w[0].version < w[1].version));
    }

    #[test]
    fn events_table_declares_every_column_in_order() {
        let ddl = events_table("d");
        let mut at = 0;
        for (name, ty) in c::EVENTS {
            let needle = format!("{name} {ty}");
            let found = ddl[at..].find(&needle);
            assert!(found.is_some(), "{needle} missing or out of order");
            at += found.unwrap_or(0);
        }
    }
}
