//! Raw rule-file types: exactly the YAML shape, parsed by `serde-saphyr` with locations.
//! Validation and compilation happen in [`crate::ruleset`].

use serde::Deserialize;
use serde_saphyr::Spanned;

/// One rule file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    pub class: Spanned<String>,
    #[serde(default)]
    pub rules: Vec<RawRule>,
}

/// Severity as written in a rule file.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// 5 anomaly points.
    Critical,
    /// 4 anomaly points.
    Error,
    /// 3 anomaly points.
    Warning,
    /// 2 anomaly points.
    Notice,
}

impl Severity {
    /// Anomaly points this severity adds.
    pub fn score(self) -> u32 {
        match self {
            Severity::Critical => 5,
            Severity::Error => 4,
            Severity::Warning => 3,
            Severity::Notice => 2,
        }
    }
    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Notice => "notice",
        }
    }
}

/// One rule as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub id: Spanned<u32>,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub severity: Severity,
    pub paranoia: Spanned<u8>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub targets: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub transforms: Vec<Spanned<String>>,
    #[serde(rename = "match")]
    pub matcher: Spanned<RawMatch>,
    #[serde(default)]
    pub negate: bool,
    #[serde(default)]
    pub tests: Option<RawTests>,
}

/// The `match:` block: exactly one of detector, phrases (`contains_any`, `contains_word`
/// and/or `equals_any`) or regex.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMatch {
    #[serde(default)]
    pub detector: Option<Spanned<String>>,
    #[serde(default)]
    pub contains_any: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub contains_word: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub equals_any: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub regex: Option<Spanned<String>>,
}

/// Embedded tests.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTests {
    #[serde(default, rename = "match")]
    pub must_match: Vec<Spanned<String>>,
    #[serde(default)]
    pub no_match: Vec<Spanned<String>>,
}
