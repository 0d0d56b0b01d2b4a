//! Running the tests embedded in rule files (`palisade rules test`).

use std::fmt;

use crate::inspect::State;
use crate::ruleset::RuleSet;

/// One embedded test that did not behave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestFailure {
    /// Rule file.
    pub file: String,
    /// Line of the test input.
    pub line: u64,
    /// Rule id.
    pub rule_id: u32,
    /// The test input.
    pub input: String,
    /// True for a `match:` entry that did not match; false for a `no_match:` entry that did.
    pub expected_match: bool,
    /// The value after the rule's transforms.
    pub transformed: String,
    /// What matched, for an unexpected match.
    pub matched: Option<String>,
}

/// Outcome of [`RuleSet::run_embedded_tests`]. `Display` lists failures as
/// `file:line: rule id: …`, then a summary line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestReport {
    /// Rules checked.
    pub rules: usize,
    /// Test inputs run.
    pub tests: usize,
    /// Rules without any embedded test.
    pub untested: Vec<u32>,
    /// Failures.
    pub failures: Vec<TestFailure>,
    /// Rules whose regex lost its gate, or its gate's second clause, to the cap on factors per
    /// gate: not failures (the rule matches what it should), but it runs on many more values
    /// than it needs to. `(file, line, rule id, what was dropped)`.
    pub capped: Vec<(String, u64, u32, &'static str)>,
}

impl TestReport {
    /// True when every test passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

impl fmt::Display for TestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for x in &self.failures {
            if x.expected_match {
                writeln!(
                    f,
                    "{}:{}: rule {}: expected a match on {:?}, got none (after transforms: {:?})",
                    x.file, x.line, x.rule_id, x.input, x.transformed
                )?;
            } else {
                writeln!(
                    f,
                    "{}:{}: rule {}: expected no match on {:?}, but matched {:?} (after transforms: {:?})",
                    x.file,
                    x.line,
                    x.rule_id,
                    x.input,
                    x.matched.as_deref().unwrap_or(""),
                    x.transformed
                )?;
            }
        }
        write!(
            f,
            "{} rules, {} tests, {} failed",
            self.rules,
            self.tests,
            self.failures.len()
        )?;
        if !self.untested.is_empty() {
            write!(f, "; {} rules have no tests", self.untested.len())?;
        }
        for (file, line, id, what) in &self.capped {
            write!(
                f,
                "\nnote: {file}:{line}: rule {id}: its regex lists more words than one gate holds, so its {what} was dropped and it runs on many more values than it needs to: splitting it in two may pay (measure it)"
            )?;
        }
        Ok(())
    }
}

impl RuleSet {
    /// Runs every rule's embedded `match`/`no_match` tests through the real matching path.
    pub fn run_embedded_tests(&self) -> TestReport {
        let mut st = State::default();
        let mut report = TestReport {
            rules: self.rules.len(),
            ..TestReport::default()
        };
        for (i, rule) in self.rules.iter().enumerate() {
            if let crate::ruleset::Matcher::Regex {
                capped: Some(what), ..
            } = &rule.matcher
            {
                report
                    .capped
                    .push((rule.file.clone(), rule.line, rule.id, what));
            }
            if rule.tests_match.is_empty() && rule.tests_no_match.is_empty() {
                report.untested.push(rule.id);
            }
            for (expected, list) in [(true, &rule.tests_match), (false, &rule.tests_no_match)] {
                for (input, line) in list {
                    report.tests += 1;
                    let got = self.eval_one(i, input.as_bytes(), &mut st);
                    if got.is_some() != expected {
                        let transformed =
                            crate::transform::apply_chain(&rule.transforms, input.as_bytes());
                        report.failures.push(TestFailure {
                            file: rule.file.clone(),
                            line: *line,
                            rule_id: rule.id,
                            input: input.clone(),
                            expected_match: expected,
                            transformed: String::from_utf8_lossy(&transformed).into_owned(),
                            matched: got.map(|m| m.matched),
                        });
                    }
                }
            }
        }
        report
    }
}
