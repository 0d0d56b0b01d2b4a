//! Errors of the analytics crate.

use std::path::PathBuf;

/// Everything that can go wrong starting or running analytics.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    /// The configuration is invalid.
    #[error("analytics config: {0}")]
    Config(String),
    /// A file or directory could not be used.
    #[error("analytics: {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// ClickHouse answered with an error or could not be reached.
    #[error("clickhouse: {context}: {source}")]
    ClickHouse {
        /// What was being done (the statement, truncated).
        context: String,
        /// The client error.
        #[source]
        source: clickhouse::error::Error,
    },
    /// ClickHouse answered something this crate does not understand.
    #[error("clickhouse: unexpected answer to {context}: {answer}")]
    Unexpected {
        /// What was asked.
        context: String,
        /// What came back.
        answer: String,
    },
    /// A spool segment is unreadable past a point (its tail is ignored).
    #[error("spool {path}: {what} at byte {offset}")]
    SpoolCorrupt {
        /// The segment file.
        path: PathBuf,
        /// Offset of the bad record.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// A dashboard file is malformed.
    #[error("{path}: {what}")]
    Dashboard {
        /// The dashboard file (with line:col when known).
        path: String,
        /// What is wrong.
        what: String,
    },
}

impl AnalyticsError {
    /// True when ClickHouse answered that the table or database does not exist
    /// (codes 60 UNKNOWN_TABLE, 81 UNKNOWN_DATABASE): the migrations must run again.
    pub fn is_missing_schema(&self) -> bool {
        match self {
            Self::ClickHouse {
                source: clickhouse::error::Error::BadResponse(msg),
                ..
            } => ["Code: 60", "Code: 81", "UNKNOWN_TABLE", "UNKNOWN_DATABASE"]
                .iter()
                .any(|m| msg.contains(m)),
            _ => false,
        }
    }

    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// Wraps a ClickHouse client error with a short context (long SQL is truncated).
    pub fn clickhouse(context: &str, source: clickhouse::error::Error) -> Self {
        let mut context: String = context.split_whitespace().collect::<Vec<_>>().join(" ");
        if context.len() > 120 {
            let mut cut = 120;
            while !context.is_char_boundary(cut) {
                cut -= 1;
            }
            context.truncate(cut);
            context.push('…');
        }
        Self::ClickHouse { context, source }
    }
}
