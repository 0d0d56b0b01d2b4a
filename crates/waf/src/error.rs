//! Load and policy errors. Every load error names `file:line:col` and carries a hint.

use std::fmt;

/// One problem found while loading rule files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    /// File name as given to the loader.
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: u64,
    /// 1-based column (0 when unknown).
    pub col: u64,
    /// What is wrong, lowercase.
    pub message: String,
    /// How to fix it, if there is something to say.
    pub hint: Option<String>,
    /// Rule id, when the error belongs to one rule.
    pub rule_id: Option<u32>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)?;
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.col, self.message
            )?;
        }
        if let Some(h) = &self.hint {
            write!(f, " ({h})")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

/// Every error found while loading a rule set (loading does not stop at the first).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadErrors {
    /// The errors, in file order.
    pub errors: Vec<LoadError>,
}

impl LoadErrors {
    /// Number of errors.
    pub fn len(&self) -> usize {
        self.errors.len()
    }
    /// True when there is no error.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
    /// Iterates over the errors.
    pub fn iter(&self) -> std::slice::Iter<'_, LoadError> {
        self.errors.iter()
    }
}

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

impl<'a> IntoIterator for &'a LoadErrors {
    type Item = &'a LoadError;
    type IntoIter = std::slice::Iter<'a, LoadError>;
    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

impl IntoIterator for LoadErrors {
    type Item = LoadError;
    type IntoIter = std::vec::IntoIter<LoadError>;
    fn into_iter(self) -> Self::IntoIter {
        self.errors.into_iter()
    }
}

/// A policy that cannot be compiled against a rule set.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Paranoia outside 1-4.
    #[error("paranoia {0} out of range (use 1, 2, 3 or 4)")]
    Paranoia(u8),
    /// Threshold of zero would block every request.
    #[error("threshold must be at least 1 (a threshold of 0 blocks every request)")]
    Threshold,
    /// An exclusion names a rule id that no rule file defines.
    #[error("exclusion names unknown rule id {0} (check `palisade rules test` for the ids)")]
    UnknownRule(u32),
    /// An exclusion names a tag that no rule carries.
    #[error("exclusion names unknown tag {0:?} (no loaded rule carries it)")]
    UnknownTag(String),
    /// An exclusion target that is not in the target vocabulary.
    #[error("exclusion names unknown target {0:?} (use e.g. args:q, json:user.bio, headers:referer, cookies:sid, path)")]
    UnknownTarget(String),
    /// An exclusion with neither rules, tags nor targets.
    #[error("empty exclusion (give rule_ids, tags, targets or a combination)")]
    EmptyExclusion,
}
