//! The crate's error type.

use std::path::PathBuf;

/// Errors from loading feeds, ban state and configuration. Messages name the file and, where
/// there is one, the line and column, so they can be printed as is by `palisade check`.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// A line of a feed file does not parse.
    #[error("{}:{line}:{col}: {msg}", path.display())]
    Feed {
        /// The feed file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// 1-based column (in characters) of the bad token.
        col: usize,
        /// What is wrong, with a hint.
        msg: String,
    },
    /// A file (feed or ban state) could not be read or written.
    #[error("{}: {what}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done ("cannot read feed", "cannot write ban state", …).
        what: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The ban state file is not valid JSON of the expected shape.
    #[error("{}:{line}:{col}: invalid ban state: {msg}", path.display())]
    BanState {
        /// The state file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// What serde_json reported.
        msg: String,
    },
    /// A configuration value is invalid (checked after parsing).
    #[error("invalid guard config: {0}")]
    Config(String),
}

impl GuardError {
    pub(crate) fn io(path: impl Into<PathBuf>, what: &'static str, source: std::io::Error) -> Self {
        GuardError::Io {
            path: path.into(),
            what,
            source,
        }
    }
}
