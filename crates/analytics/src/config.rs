//! Analytics configuration: which sink, queue size, spool, security log.
//!
//! Parsed with `deny_unknown_fields` everywhere (a typo must not silently change behaviour);
//! every field has a default, so `analytics: {}` gives rotating NDJSON files in `./analytics`.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize, Serializer};

use crate::AnalyticsError;

/// The whole analytics section of the gateway config.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalyticsConfig {
    /// Where events go.
    pub sink: SinkConfig,
    /// Capacity of the in-memory queue between the request path and the writer, in events.
    /// When full, `record` drops the event and counts it (`cause="queue_full"`).
    pub queue_capacity: usize,
    /// Disk spool used while ClickHouse is down or slow.
    pub spool: SpoolConfig,
    /// Security log of blocked (and detected) requests; `None` disables it.
    pub security_log: Option<SecurityLogConfig>,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        Self {
            sink: SinkConfig::default(),
            queue_capacity: 65_536,
            spool: SpoolConfig::default(),
            security_log: Some(SecurityLogConfig::default()),
        }
    }
}

/// Where events go. In YAML: `sink: {ndjson: {dir: …}}`, `sink: {clickhouse: {url: …}}` or
/// `sink: off`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkConfig {
    /// Rotating NDJSON files (the default: the gateway needs no database).
    Ndjson(NdjsonConfig),
    /// ClickHouse over HTTP, RowBinary batches, with the disk spool.
    Clickhouse(ClickHouseConfig),
    /// Events are counted and discarded.
    Off,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self::Ndjson(NdjsonConfig::default())
    }
}

/// Rotating NDJSON files.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NdjsonConfig {
    /// Directory of `events.<seq>.ndjson` files.
    pub dir: PathBuf,
    /// A file is closed and a new one started past this size.
    pub max_file_bytes: u64,
    /// Number of files kept (the oldest are deleted).
    pub max_files: usize,
    /// Events per write.
    pub batch_size: usize,
    /// Longest time an event waits in memory before being written, ms.
    pub flush_interval_ms: u64,
}

impl Default for NdjsonConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("analytics"),
            max_file_bytes: 64 << 20,
            max_files: 10,
            batch_size: 1_000,
            flush_interval_ms: 1_000,
        }
    }
}

/// A secret that is never printed by `Debug` nor `Serialize` (`/config` shows `"***"`).
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "***" })
    }
}

/// ClickHouse sink.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClickHouseConfig {
    /// HTTP endpoint, e.g. `http://127.0.0.1:8123`.
    pub url: String,
    /// Database (created by the migrations).
    pub database: String,
    /// User.
    pub user: String,
    /// Password (redacted in `Debug` and `Serialize`).
    pub password: Secret,
    /// Events per INSERT.
    pub batch_size: usize,
    /// Longest time an event waits in memory before its batch is sent, ms.
    pub flush_interval_ms: u64,
    /// Raw events are kept this many days (TTL, or partition drops on servers without TTL).
    pub retention_days: u32,
    /// Rollups are kept this many days.
    pub rollup_retention_days: u32,
    /// An INSERT taking longer than this is abandoned and its batch spooled, ms.
    pub insert_timeout_ms: u64,
    /// First wait before retrying ClickHouse after a failure, ms (doubles up to 30 s).
    pub retry_min_ms: u64,
    /// Run the migrations at start.
    pub migrate: bool,
    /// LZ4-compress INSERT bodies: saves bandwidth to a remote server, costs CPU on both sides
    /// (off by default: on loopback it cut the writer's throughput by about a third).
    pub compression: bool,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8123".into(),
            database: "palisade".into(),
            user: "default".into(),
            password: Secret::default(),
            batch_size: 10_000,
            flush_interval_ms: 1_000,
            retention_days: 30,
            rollup_retention_days: 400,
            insert_timeout_ms: 10_000,
            retry_min_ms: 500,
            migrate: true,
            compression: false,
        }
    }
}

/// Fsync policy of the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// fsync after every spooled batch (default: a spooled batch survives a power cut).
    Batch,
    /// Leave it to the OS (survives a gateway crash, not a power cut).
    Never,
}

/// Disk spool.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    /// Directory of `seg-<seq>.spool` files.
    pub dir: PathBuf,
    /// Total size cap; past it, batches are dropped and counted (`cause="spool_full"`).
    pub max_bytes: u64,
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// When to fsync.
    pub fsync: FsyncPolicy,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("analytics-spool"),
            max_bytes: 1 << 30,
            segment_bytes: 16 << 20,
            fsync: FsyncPolicy::Batch,
        }
    }
}

/// Security log (JSON lines).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityLogConfig {
    /// The current file; rotated files are `<path>.<seq>`.
    pub path: PathBuf,
    /// Rotation size.
    pub max_file_bytes: u64,
    /// Rotated files kept.
    pub max_files: usize,
    /// Matched text is cut to this many bytes (at a character boundary).
    pub max_matched_bytes: usize,
    /// Capacity of the in-memory queue; when full, records are dropped and counted.
    pub queue_capacity: usize,
}

impl Default for SecurityLogConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("security.log"),
            max_file_bytes: 64 << 20,
            max_files: 10,
            max_matched_bytes: 128,
            queue_capacity: 8_192,
        }
    }
}

impl AnalyticsConfig {
    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), AnalyticsError> {
        let bad = |m: String| Err(AnalyticsError::Config(m));
        if self.queue_capacity == 0 {
            return bad("queue_capacity must be at least 1".into());
        }
        match &self.sink {
            SinkConfig::Ndjson(n) => {
                if n.max_files == 0 || n.batch_size == 0 || n.max_file_bytes == 0 {
                    return bad(
                        "ndjson: max_files, batch_size and max_file_bytes must be > 0".into(),
                    );
                }
            }
            SinkConfig::Clickhouse(ch) => {
                if !crate::schema::valid_database_name(&ch.database) {
                    return bad(format!(
                        "clickhouse.database `{}` must be letters, digits and `_`",
                        ch.database
                    ));
                }
                if !(ch.url.starts_with("http://") || ch.url.starts_with("https://")) {
                    return bad(format!(
                        "clickhouse.url `{}` must start with http:// (the HTTP port, 8123)",
                        ch.url
                    ));
                }
                if ch.batch_size == 0 || ch.retention_days == 0 {
                    return bad("clickhouse: batch_size and retention_days must be > 0".into());
                }
                if self.spool.segment_bytes == 0 || self.spool.max_bytes < self.spool.segment_bytes
                {
                    return bad("spool: max_bytes must be at least segment_bytes (> 0)".into());
                }
            }
            SinkConfig::Off => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_redacted_in_debug_and_serialize() {
        let cfg = ClickHouseConfig {
            password: Secret("hunter2".into()),
            ..Default::default()
        };
        assert!(!format!("{cfg:?}").contains("hunter2"));
        let json = serde_json::to_string(&cfg).unwrap_or_default();
        assert!(!json.contains("hunter2"), "{json}");
        assert!(json.contains("\"password\":\"***\""), "{json}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = serde_json::from_str::<AnalyticsConfig>(r#"{"queue_capacty": 5}"#);
        assert!(err.is_err_and(|e| e.to_string().contains("unknown field `queue_capacty`")));
        let err = serde_json::from_str::<AnalyticsConfig>(
            r#"{"sink": {"clickhouse": {"url": "http://x:8123", "batchsize": 5}}}"#,
        );
        assert!(err.is_err_and(|e| e.to_string().contains("unknown field `batchsize`")));
    }

    #[test]
    fn defaults_are_ndjson_and_valid() {
        let cfg: AnalyticsConfig = serde_json::from_str("{}").unwrap_or_else(|_| AnalyticsConfig {
            queue_capacity: 0,
            ..Default::default()
        });
        assert!(matches!(cfg.sink, SinkConfig::Ndjson(_)));
        assert!(cfg.validate().is_ok());
    }

    #[test]
    fn clickhouse_section_parses_and_validates() {
        let cfg: Result<AnalyticsConfig, _> = serde_json::from_str(
            r#"{"sink": {"clickhouse": {"url": "http://127.0.0.1:8123", "database": "p1",
                 "batch_size": 500}}, "spool": {"dir": "/tmp/s", "max_bytes": 100000000}}"#,
        );
        let cfg = cfg.map_err(|e| e.to_string());
        assert!(cfg.as_ref().is_ok_and(|c| c.validate().is_ok()), "{cfg:?}");
        let bad: Result<AnalyticsConfig, _> =
            serde_json::from_str(r#"{"sink": {"clickhouse": {"database": "x-y"}}}"#);
        assert!(bad.is_ok_and(|c| c
            .validate()
            .is_err_and(|e| e.to_string().contains("`x-y` must be letters"))));
    }
}
