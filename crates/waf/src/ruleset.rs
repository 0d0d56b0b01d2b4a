//! Loading (parse → validate → compile) of rule files into an immutable [`RuleSet`].
//!
//! Compilation builds:
//! * one Aho-Corasick automaton (ASCII-case-insensitive, overlapping) holding every
//!   `contains_any`/`contains_word` phrase of every rule **and** the literal factors of every
//!   regex (see [`crate::prefilter`]); phrases are then verified byte-exactly (so "case as
//!   given" holds) and, for `contains_word`, on word boundaries;
//! * the distinct transform chains; each is computed at most once per value at inspection time
//!   (shared prefixes too, through a per-value memo);
//! * per-target-kind rule bitsets (plus per-header-name bitsets for `headers:<name>`), so a value
//!   is only checked against rules that look at it.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_saphyr::{Location, Spanned};

use crate::bitset::Bitset;
use crate::error::{LoadError, LoadErrors};
use crate::raw::{RawFile, RawRule, Severity};
use crate::target::{parse_target, Kind, TargetSpec, KINDS};
use crate::transform::Transform;

pub(crate) static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A built-in detector usable as a rule's match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detector {
    /// `palisade_detect::sqli`.
    Sqli,
    /// `palisade_detect::xss`.
    Xss,
    /// `palisade_detect::redirect`: a redirect target off the request's host.
    Redirect,
}

impl Detector {
    /// The rule-file name.
    pub fn name(self) -> &'static str {
        match self {
            Detector::Sqli => "sqli",
            Detector::Xss => "xss",
            Detector::Redirect => "redirect",
        }
    }
}

/// How a compiled rule matches.
#[derive(Debug)]
pub(crate) enum Matcher {
    /// Phrases live in the shared automaton.
    Phrases {
        any: Vec<String>,
        words: Vec<String>,
        /// `equals_any`: phrases that match only as the whole (transformed) value.
        equals: Vec<String>,
    },
    /// A regex; `filtered` when it has a gate: factors in the shared automaton and/or byte
    /// `classes` (see [`crate::prefilter`]).
    Regex {
        re: regex::bytes::Regex,
        /// `re` parsed once, with its Unicode and case-folding modes: what the fast path's
        /// restricted regexes are made from ([`crate::prefilter::restrict`]).
        hir: Box<regex_syntax::hir::Hir>,
        filtered: bool,
        unicode: bool,
        classes: u64,
        /// For a regex whose every match starts at the start of the value and is not empty:
        /// the bytes such a match can start with (see
        /// [`crate::prefilter::anchored_first_bytes`]); other first bytes skip the regex.
        first: Option<Box<[bool; 256]>>,
        /// The same regex as a lazy DFA, asked first on short values (no match is the usual
        /// answer, and it comes without the regex's per-search set-up); `None` where it
        /// cannot be built.
        lazy: Option<Box<regex_automata::hybrid::dfa::DFA>>,
        /// The byte classes a text must hold for a match ([`crate::prefilter::Needs`]):
        /// checked against the class mask of the text before the regex runs.
        needs: Option<crate::prefilter::Needs>,
        /// What the factor cap dropped from the gate (`"gate"`, `"second clause"`), for
        /// `palisade rules test` to tell the rule author ([`crate::prefilter::capped`]).
        capped: Option<&'static str>,
    },
    /// A built-in detector.
    Detector(Detector),
}

/// A validated, compiled rule.
#[derive(Debug)]
pub struct Rule {
    /// Unique id.
    pub id: u32,
    /// Short name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Attack class of the rule's file.
    pub class: String,
    /// Severity (anomaly points).
    pub severity: Severity,
    /// Paranoia level 1-4.
    pub paranoia: u8,
    /// Tags.
    pub tags: Vec<String>,
    /// Transforms as written.
    pub transforms: Vec<Transform>,
    /// Whether the match is negated.
    pub negate: bool,
    /// File the rule came from.
    pub file: String,
    /// Line of the rule's `id`.
    pub line: u64,
    pub(crate) kinds: u32,
    pub(crate) headers: Vec<String>,
    /// Lower-case names of `args:<name>` targets.
    pub(crate) args: Vec<String>,
    /// Lower-case keys of `json:<key>` targets.
    pub(crate) json_keys: Vec<String>,
    /// The transforms the engine runs: `transforms` without a final `lowercase` when the rule
    /// matches case-insensitively instead (`fold_case`), which spares most values a variant.
    pub(crate) eval_transforms: Vec<Transform>,
    /// The matcher compares ASCII case-insensitively in place of a final `lowercase`.
    pub(crate) fold_case: bool,
    pub(crate) chain: usize,
    pub(crate) matcher: Matcher,
    pub(crate) tests_match: Vec<(String, u64)>,
    pub(crate) tests_no_match: Vec<(String, u64)>,
}

impl Rule {
    /// Human description of the match (`detector sqli`, `regex …`, `contains_any [...]`).
    pub fn match_summary(&self) -> String {
        match &self.matcher {
            Matcher::Phrases { any, words, equals } => {
                let mut parts = Vec::new();
                if !any.is_empty() {
                    parts.push(format!("contains_any {any:?}"));
                }
                if !words.is_empty() {
                    parts.push(format!("contains_word {words:?}"));
                }
                if !equals.is_empty() {
                    parts.push(format!("equals_any {equals:?}"));
                }
                parts.join(" ")
            }
            Matcher::Regex { re, .. } => format!("regex {}", re.as_str()),
            Matcher::Detector(d) => format!("detector {}", d.name()),
        }
    }
}

/// Rules (and chains) of named targets (`headers:<name>`, `args:<name>`, `json:<key>`), looked
/// up for every header, argument or JSON value with no allocation and no hash: by first byte
/// and length first (a bit per length under each first byte), then ASCII case-insensitively
/// among the few names of that length. Names are at most [`crate::target::MAX_NAMED_TARGET`]
/// bytes.
#[derive(Debug)]
pub(crate) struct NamedRules {
    /// Per first byte (either case): a bit per length of the names that start with it.
    lens: Box<[u64; 256]>,
    /// Lower-case name, its rules and chains; sorted by length once built.
    entries: Vec<(Vec<u8>, Bitset, Bitset)>,
    /// Per length below 64: the range of `entries` of that length.
    by_len: Vec<(u16, u16)>,
}

impl Default for NamedRules {
    fn default() -> NamedRules {
        NamedRules {
            lens: Box::new([0; 256]),
            entries: Vec::new(),
            by_len: Vec::new(),
        }
    }
}

impl NamedRules {
    fn add(&mut self, name: &str, rule: usize, chain: usize, n: usize, n_chains: usize) {
        let i = match self.entries.iter().position(|e| e.0 == name.as_bytes()) {
            Some(i) => i,
            None => {
                self.entries.push((
                    name.as_bytes().to_vec(),
                    Bitset::new(n),
                    Bitset::new(n_chains),
                ));
                self.entries.len() - 1
            }
        };
        if let Some(e) = self.entries.get_mut(i) {
            e.1.set(rule);
            e.2.set(chain);
        }
    }

    /// Sorts the names by length and indexes them (after the last [`NamedRules::add`]).
    fn finish(&mut self) {
        self.entries
            .sort_by(|a, b| a.0.len().cmp(&b.0.len()).then(a.0.cmp(&b.0)));
        self.by_len = vec![(0, 0); 64];
        *self.lens = [0; 256];
        for (i, e) in self.entries.iter().enumerate() {
            let (len, i) = (e.0.len(), u16::try_from(i).unwrap_or(u16::MAX));
            if let (Some(r), Some(&first)) = (self.by_len.get_mut(len), e.0.first()) {
                if r.0 == r.1 {
                    *r = (i, i);
                }
                r.1 = i.saturating_add(1);
                for b in [first.to_ascii_lowercase(), first.to_ascii_uppercase()] {
                    self.lens[usize::from(b)] |= 1 << len;
                }
            }
        }
    }

    /// The rules and chains of the argument `name` (ASCII case-insensitive).
    #[inline]
    pub(crate) fn get(&self, name: &[u8]) -> Option<(&Bitset, &Bitset)> {
        let first = usize::from(*name.first()?);
        if name.len() >= 64 || self.lens[first] & (1 << name.len()) == 0 {
            return None;
        }
        let &(from, to) = self.by_len.get(name.len())?;
        self.entries
            .get(usize::from(from)..usize::from(to))?
            .iter()
            .find(|e| e.0.eq_ignore_ascii_case(name))
            .map(|e| (&e.1, &e.2))
    }
}

/// How one automaton pattern relates to one rule.
#[derive(Clone, Copy, Debug)]
pub(crate) enum PatKind {
    /// A phrase; `word` when it must sit on word boundaries, `whole` when it must be the whole
    /// value (`equals_any`).
    Phrase { word: bool, whole: bool },
    /// A regex factor: the rule's regex must run; with `word`, only when the factor sits on
    /// word boundaries ([`crate::prefilter::Gate::words`]).
    Factor { word: bool },
    /// A factor of the regex's second clause ([`crate::prefilter::Gate::second`]): a regex
    /// let through by a byte class runs only when one of these was seen too; `word` as for
    /// [`PatKind::Factor`].
    Second { word: bool },
}

/// One (rule, role) pair of an automaton pattern.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PatEntry {
    pub rule: u32,
    pub kind: PatKind,
}

/// One multi-pattern regex automaton and the rules of its patterns.
#[derive(Debug)]
pub(crate) struct USet {
    pub re: regex_automata::meta::Regex,
    pub rules: Vec<u32>,
    pub bits: Bitset,
}

/// The compiled rule set: immutable, `Send + Sync`, cheap to share in an `Arc`.
#[derive(Debug)]
pub struct RuleSet {
    pub(crate) uid: u64,
    pub(crate) rules: Vec<Rule>,
    pub(crate) chains: Vec<Vec<Transform>>,
    /// The chains as paths in a trie of (parent, transform) nodes, so a shared prefix is
    /// computed once per value.
    pub(crate) chain_paths: Vec<Vec<u16>>,
    pub(crate) trie_len: usize,
    /// Per chain: the union of its transforms' trigger classes; a value whose class mask
    /// shares no bit with it comes out of the chain unchanged.
    pub(crate) chain_trig: Vec<u64>,
    /// Union of `chain_trig`: a value whose class mask shares no bit with it is its only
    /// variant.
    pub(crate) all_chain_trig: u64,
    /// All phrases and regex factors, one flat DFA (`crate::scan`).
    pub(crate) ac: Option<crate::scan::Scanner>,
    /// Per chain: the rules whose transforms are that chain.
    pub(crate) chain_rules: Vec<Bitset>,
    /// Rules with a phrase or a regex factor in the automaton (second clauses do not count): a
    /// variant none of whose candidate rules is one of these is not scanned.
    pub(crate) ac_rules: Bitset,
    pub(crate) patterns: Vec<Vec<u8>>,
    pub(crate) pat_entries: Vec<Vec<PatEntry>>,
    pub(crate) kind_rules: Vec<Bitset>,
    pub(crate) kind_chains: Vec<Bitset>,
    /// Rules (and chains) of `headers:<name>` targets.
    pub(crate) header_rules: NamedRules,
    /// Rules (and chains) of `args:<name>` targets.
    pub(crate) arg_rules: NamedRules,
    /// Rules (and chains) of `json:<key>` targets.
    pub(crate) json_key_rules: NamedRules,
    /// Rules that must be evaluated outside the automaton and the regex set (detectors,
    /// unfiltered regexes that need Unicode).
    pub(crate) direct: Bitset,
    /// Unfiltered regexes (no gate).
    pub(crate) unfiltered: Bitset,
    /// Per class bit: the regexes whose gate names that byte class.
    pub(crate) class_rules: Vec<Bitset>,
    /// Union of the gate classes of every regex.
    pub(crate) gate_classes: u64,
    /// Regexes with a second clause ([`PatKind::Second`]).
    pub(crate) second_rules: Bitset,
    /// Multi-pattern automata over the unfiltered regexes, one per group of target kinds with
    /// the same rules (and per Unicode mode): one pass per value tells which can match; only
    /// those run on their own (for the match span).
    pub(crate) sets: Vec<USet>,
    /// Per kind: the sets covering its unfiltered regexes.
    pub(crate) kind_sets: Vec<Vec<usize>>,
    /// Largest pattern count of the sets.
    pub(crate) max_set_len: usize,
    pub(crate) negated: Bitset,
    /// The fast path for values of letters, digits and spaces (`None` when the rule set's
    /// transforms do not allow it; see [`crate::plain`]).
    pub(crate) plain: Option<crate::plain::PlainPlan>,
    /// Rules (and their chains) that still read the raw body of a JSON or urlencoded body that
    /// parsed whole: those that do not target both `args` and `args_names` (the parsed keys and
    /// values already carry every byte of such a body).
    pub(crate) body_residual: (Bitset, Bitset),
    /// The phrases and factors of the `body_residual` rules alone, with each pattern's index
    /// in `patterns`: the raw body of a parsed body is scanned for them, not for every
    /// pattern of the rule set (a JSON body's prose would stop the walk at every phrase of
    /// every other rule). `None` when no residual rule has one, or the scanner could not be
    /// built (the whole automaton is used then).
    pub(crate) residual_ac: Option<(crate::scan::Scanner, Vec<u32>)>,
    pub(crate) by_id: HashMap<u32, usize>,
    pub(crate) tags: HashSet<String>,
}

fn loc_of(l: &Location) -> (u64, u64) {
    (l.line(), l.column())
}

fn err(
    file: &str,
    loc: &Location,
    message: impl Into<String>,
    hint: Option<String>,
    rule_id: Option<u32>,
) -> LoadError {
    let (line, col) = loc_of(loc);
    LoadError {
        file: file.to_string(),
        line,
        col,
        message: message.into(),
        hint,
        rule_id,
    }
}

/// Turns a serde-saphyr error into a located load error.
fn yaml_error(file: &str, e: &serde_saphyr::Error) -> LoadError {
    let (line, col) = e.location().map(|l| loc_of(&l)).unwrap_or((0, 0));
    let mut message = e.without_snippet().to_string();
    // The library appends its own " at line L column C"; we print the location first instead.
    for suffix in [
        format!(" at line {line}, column {col}"),
        format!(" at line {line} column {col}"),
    ] {
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message = stripped.to_string();
        }
    }
    let hint = if message.contains("unknown field") {
        Some("unknown keys are errors so that a typo cannot disable a rule".to_string())
    } else {
        None
    };
    LoadError {
        file: file.to_string(),
        line,
        col,
        message: message.trim().to_string(),
        hint,
        rule_id: None,
    }
}

/// The last line of a regex error ("error: …"), so it fits on one line.
fn regex_error_line(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map(str::to_string)
        .unwrap_or_else(|| text.split_whitespace().collect::<Vec<_>>().join(" "))
}

struct Pending {
    rule: Rule,
    phrases: Vec<(Vec<u8>, PatKind)>,
}

impl RuleSet {
    /// Loads every `*.yaml` (and `*.yml`) file of `dir`, sorted by name.
    pub fn load_dir(dir: &Path) -> Result<RuleSet, LoadErrors> {
        let mut errors = Vec::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                return Err(LoadErrors {
                    errors: vec![LoadError {
                        file: dir.display().to_string(),
                        line: 0,
                        col: 0,
                        message: format!("cannot read rule directory: {e}"),
                        hint: None,
                        rule_id: None,
                    }],
                })
            }
        };
        let mut paths: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
            })
            .collect();
        paths.sort();
        let mut sources = Vec::new();
        for p in paths {
            match std::fs::read_to_string(&p) {
                Ok(text) => sources.push((p.display().to_string(), text)),
                Err(e) => errors.push(LoadError {
                    file: p.display().to_string(),
                    line: 0,
                    col: 0,
                    message: format!("cannot read rule file: {e}"),
                    hint: None,
                    rule_id: None,
                }),
            }
        }
        match RuleSet::from_sources(&sources) {
            Ok(rs) if errors.is_empty() => Ok(rs),
            Ok(_) => Err(LoadErrors { errors }),
            Err(mut e) => {
                errors.append(&mut e.errors);
                Err(LoadErrors { errors })
            }
        }
    }

    /// Waits for the work a compile leaves to a thread of its own (the fast path's chain
    /// groups, `plain.rs`): inspection never needs it (until it is done every rule runs on its
    /// own, with the same answers), but a measurement of steady-state inspection does.
    pub fn wait_background(&self) {
        if let Some(plan) = &self.plain {
            plan.wait_background();
        }
    }

    /// Compiles rule files given as `(file name, text)` pairs. All errors of all files are
    /// reported, each as `file:line:col: message (hint)`.
    pub fn from_sources(src: &[(String, String)]) -> Result<RuleSet, LoadErrors> {
        let mut errors = Vec::new();
        let mut pending = Vec::new();
        let mut seen: HashMap<u32, (String, u64, u64)> = HashMap::new();
        for (file, text) in src {
            let raw: RawFile = match serde_saphyr::from_str(text) {
                Ok(r) => r,
                Err(e) => {
                    errors.push(yaml_error(file, &e));
                    continue;
                }
            };
            let class = raw.class.value.trim().to_string();
            if class.is_empty()
                || !class
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                errors.push(err(
                    file,
                    &raw.class.referenced,
                    format!("invalid class {:?}", raw.class.value),
                    Some("use a lowercase name such as sqli, xss, rce, lfi".into()),
                    None,
                ));
            }
            for r in raw.rules {
                let id = r.id.value;
                let (line, col) = loc_of(&r.id.referenced);
                if let Some((f0, l0, c0)) = seen.get(&id) {
                    errors.push(err(
                        file,
                        &r.id.referenced,
                        format!("duplicate rule id {id}"),
                        Some(format!(
                            "already defined at {f0}:{l0}:{c0}; ids must be unique across all files"
                        )),
                        Some(id),
                    ));
                    continue;
                }
                seen.insert(id, (file.clone(), line, col));
                match validate(file, &class, r) {
                    Ok(p) => pending.push(p),
                    Err(mut es) => errors.append(&mut es),
                }
            }
        }
        if !errors.is_empty() {
            return Err(LoadErrors { errors });
        }
        compile(pending).map_err(|errors| LoadErrors { errors })
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when the set has no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The compiled rules, in load order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// A rule by id.
    pub fn rule(&self, id: u32) -> Option<&Rule> {
        self.by_id.get(&id).and_then(|&i| self.rules.get(i))
    }

    /// Number of distinct transform chains (each computed at most once per value).
    pub fn chain_count(&self) -> usize {
        self.chains.len()
    }
}

fn validate(file: &str, class: &str, r: RawRule) -> Result<Pending, Vec<LoadError>> {
    let id = r.id.value;
    let mut errors = Vec::new();
    let e = |loc: &Location, m: String, h: Option<String>| err(file, loc, m, h, Some(id));
    if !(1..=4).contains(&r.paranoia.value) {
        errors.push(e(
            &r.paranoia.referenced,
            format!("paranoia {} out of range", r.paranoia.value),
            Some("use 1, 2, 3 or 4".into()),
        ));
    }
    if r.name.trim().is_empty() {
        errors.push(e(&r.id.referenced, "rule has an empty name".into(), None));
    }
    let mut kinds = 0u32;
    let mut headers = Vec::new();
    let mut args = Vec::new();
    let mut json_keys = Vec::new();
    if r.targets.value.is_empty() {
        errors.push(e(
            &r.targets.referenced,
            "empty targets list".into(),
            Some("name at least one target, e.g. [args]".into()),
        ));
    }
    for t in &r.targets.value {
        match parse_target(&t.value) {
            Ok(TargetSpec::Kinds(m)) => kinds |= m,
            Ok(TargetSpec::Header(h)) => headers.push(h),
            Ok(TargetSpec::Arg(a)) => args.push(a),
            Ok(TargetSpec::JsonKey(k)) => json_keys.push(k),
            Err(hint) => errors.push(e(
                &t.referenced,
                format!("unknown target {:?}", t.value),
                Some(hint),
            )),
        }
    }
    let mut transforms = Vec::new();
    for t in &r.transforms {
        match Transform::from_name(&t.value) {
            Some(tr) => transforms.push(tr),
            None => errors.push(e(
                &t.referenced,
                format!("unknown transform {:?}", t.value),
                Some(format!("known transforms: {}", Transform::known_names())),
            )),
        }
    }
    // A final `lowercase` (possibly followed by transforms that do not care about case) is
    // replaced by case-insensitive matching when the matcher allows it (see below).
    let lower_at = transforms.iter().rposition(|t| *t == Transform::Lowercase);
    let foldable_chain = lower_at.is_some_and(|i| {
        transforms.get(i + 1..).unwrap_or(&[]).iter().all(|t| {
            matches!(
                t,
                Transform::RemoveComments
                    | Transform::ReplaceComments
                    | Transform::CompressWhitespace
                    | Transform::RemoveWhitespace
                    | Transform::RemoveNulls
                    | Transform::NormalizePath
            )
        })
    });
    let mut fold_case = false;
    let m = &r.matcher.value;
    let given = usize::from(m.detector.is_some())
        + usize::from(m.regex.is_some())
        + usize::from(
            m.contains_any.is_some() || m.contains_word.is_some() || m.equals_any.is_some(),
        );
    let mut matcher = None;
    let mut phrases = Vec::new();
    if given != 1 {
        errors.push(e(
            &r.matcher.referenced,
            if given == 0 {
                "match has no matcher".into()
            } else {
                "match has more than one matcher".into()
            },
            Some(
                "give exactly one of detector, regex, or contains_any/contains_word/equals_any phrases"
                    .into(),
            ),
        ));
    } else if let Some(d) = &m.detector {
        match d.value.as_str() {
            "sqli" => matcher = Some(Matcher::Detector(Detector::Sqli)),
            "xss" => matcher = Some(Matcher::Detector(Detector::Xss)),
            "redirect" => matcher = Some(Matcher::Detector(Detector::Redirect)),
            other => errors.push(e(
                &d.referenced,
                format!("unknown detector {other:?}"),
                Some("known detectors: sqli, xss, redirect".into()),
            )),
        }
    } else if let Some(re) = &m.regex {
        // Byte mode with Unicode off first (ASCII `\w`, `\s`, `\b`, `(?i)`; much smaller
        // automata); Unicode on only when the pattern needs it (e.g. `\p{L}`).
        let build = |unicode: bool, fold: bool| {
            regex::bytes::RegexBuilder::new(&re.value)
                .unicode(unicode)
                .case_insensitive(fold)
                .size_limit(8 << 20)
                .dfa_size_limit(4 << 20)
                .build()
                .map(|r| (r, unicode))
        };
        // The pattern parsed in ASCII mode, case-sensitively: every analysis below reads a
        // parsed pattern (`prefilter::parse`), this one or, in another mode, its own.
        let ascii = crate::prefilter::parse(&re.value, false, false);
        // Matching `(?i)re` on a value equals matching `re` on the lowercased value when `re`
        // treats every upper-case letter like its lower-case one (ASCII mode only).
        fold_case = foldable_chain && ascii.as_ref().is_some_and(crate::prefilter::case_closed);
        let built = if fold_case {
            build(false, true)
        } else {
            build(false, false).or_else(|_| build(true, false))
        };
        // The same pattern in the mode `re` was built with: case-sensitive (the gates and the
        // class needs), and with `re`'s folding (the first bytes, the lazy DFAs).
        let parsed = built.as_ref().ok().and_then(|&(_, unicode)| {
            let plain = match ascii {
                Some(h) if !unicode => h,
                _ => crate::prefilter::parse(&re.value, unicode, false)?,
            };
            let folded = if fold_case {
                crate::prefilter::parse(&re.value, unicode, true)?
            } else {
                plain.clone()
            };
            Some((plain, folded))
        });
        match built.map(|b| (b, parsed)) {
            Ok(((compiled, unicode), Some((plain, folded)))) => {
                let first = crate::prefilter::anchored_first_bytes(&folded).map(Box::new);
                let gate = crate::prefilter::gate(&plain);
                let filtered = gate.is_some();
                let gate = gate.unwrap_or_default();
                for f in gate.factors {
                    phrases.push((f, PatKind::Factor { word: false }));
                }
                for w in gate.words {
                    phrases.push((w, PatKind::Factor { word: true }));
                }
                if let Some(second) = gate.second {
                    for f in second.factors {
                        phrases.push((f, PatKind::Second { word: false }));
                    }
                    for w in second.words {
                        phrases.push((w, PatKind::Second { word: true }));
                    }
                }
                let lazy = crate::plain::lazy_dfa_of(&folded).map(Box::new);
                let needs = crate::prefilter::needs(&plain);
                let capped = crate::prefilter::capped(&plain);
                matcher = Some(Matcher::Regex {
                    re: compiled,
                    hir: Box::new(folded),
                    filtered,
                    unicode,
                    classes: gate.classes,
                    first,
                    lazy,
                    needs,
                    capped,
                });
            }
            // The regex crate parses with the same syntax: not expected, but never a rule
            // without its fast-path analysis.
            Ok((_, None)) => errors.push(e(
                &re.referenced,
                "invalid regex: it builds but does not parse on its own".into(),
                None,
            )),
            Err(err) => errors.push(e(
                &re.referenced,
                format!("invalid regex: {}", regex_error_line(&err)),
                Some("Rust regex syntax: no look-around, no backreferences".into()),
            )),
        }
    } else {
        // The phrases of each list, in the order of `Matcher::Phrases`' fields.
        let mut lists: [Vec<String>; 3] = Default::default();
        for (slot, (list, key, word, whole)) in [
            (&m.contains_any, "contains_any", false, false),
            (&m.contains_word, "contains_word", true, false),
            (&m.equals_any, "equals_any", false, true),
        ]
        .into_iter()
        .enumerate()
        {
            let Some(list) = list else { continue };
            if list.value.is_empty() {
                errors.push(e(
                    &list.referenced,
                    format!("empty {key} list"),
                    Some("give at least one phrase".into()),
                ));
            }
            for p in &list.value {
                if p.value.is_empty() {
                    errors.push(e(
                        &p.referenced,
                        format!("empty phrase in {key}"),
                        Some("an empty phrase would match every value".into()),
                    ));
                    continue;
                }
                phrases.push((p.value.as_bytes().to_vec(), PatKind::Phrase { word, whole }));
                if let Some(dest) = lists.get_mut(slot) {
                    dest.push(p.value.clone());
                }
            }
        }
        // Phrases are matched "case as given": fold only when none has an upper-case letter.
        fold_case = foldable_chain
            && !lists
                .iter()
                .flatten()
                .any(|p| p.bytes().any(|b| b.is_ascii_uppercase()));
        let [any, words, equals] = lists;
        matcher = Some(Matcher::Phrases { any, words, equals });
    }
    let mut eval_transforms = transforms.clone();
    if fold_case {
        if let Some(i) = lower_at {
            eval_transforms.remove(i);
        }
    }
    let tests = r.tests.unwrap_or_default();
    let spanned = |v: &Vec<Spanned<String>>| -> Vec<(String, u64)> {
        v.iter()
            .map(|s| (s.value.clone(), s.referenced.line()))
            .collect()
    };
    let (tests_match, tests_no_match) = (spanned(&tests.must_match), spanned(&tests.no_match));
    match matcher {
        Some(matcher) if errors.is_empty() => Ok(Pending {
            rule: Rule {
                id,
                name: r.name,
                description: r.description,
                class: class.to_string(),
                severity: r.severity,
                paranoia: r.paranoia.value,
                tags: r.tags,
                transforms,
                negate: r.negate,
                file: file.to_string(),
                line: r.id.referenced.line(),
                kinds,
                headers,
                args,
                json_keys,
                eval_transforms,
                fold_case,
                chain: 0,
                matcher,
                tests_match,
                tests_no_match,
            },
            phrases,
        }),
        _ => Err(errors),
    }
}

fn compile(pending: Vec<Pending>) -> Result<RuleSet, Vec<LoadError>> {
    let n = pending.len();
    let mut rules = Vec::with_capacity(n);
    let mut chains: Vec<Vec<Transform>> = Vec::new();
    let mut patterns: Vec<Vec<u8>> = Vec::new();
    let mut pat_index: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut pat_entries: Vec<Vec<PatEntry>> = Vec::new();
    let mut direct = Bitset::new(n);
    let mut negated = Bitset::new(n);
    let mut unfiltered = Bitset::new(n);
    for (i, p) in pending.into_iter().enumerate() {
        let mut rule = p.rule;
        rule.chain = match chains.iter().position(|c| *c == rule.eval_transforms) {
            Some(c) => c,
            None => {
                chains.push(rule.eval_transforms.clone());
                chains.len() - 1
            }
        };
        let idx = u32::try_from(i).unwrap_or(u32::MAX);
        for (bytes, kind) in p.phrases {
            let pid = *pat_index.entry(bytes.clone()).or_insert_with(|| {
                patterns.push(bytes);
                pat_entries.push(Vec::new());
                patterns.len() - 1
            });
            if let Some(list) = pat_entries.get_mut(pid) {
                list.push(PatEntry { rule: idx, kind });
            }
        }
        match &rule.matcher {
            Matcher::Regex {
                filtered: false, ..
            } => unfiltered.set(i),
            Matcher::Detector(_) => direct.set(i),
            _ => {}
        }
        if rule.negate {
            negated.set(i);
        }
        rules.push(rule);
    }
    let mut kind_rules = vec![Bitset::new(n); KINDS];
    let mut trie: Vec<(u16, Transform)> = Vec::new();
    let mut chain_paths = Vec::with_capacity(chains.len());
    for c in &chains {
        let mut parent = u16::MAX;
        let mut path = Vec::with_capacity(c.len());
        for &t in c {
            let node = match trie.iter().position(|&(p, tt)| p == parent && tt == t) {
                Some(n) => n,
                None => {
                    trie.push((parent, t));
                    trie.len() - 1
                }
            };
            let node = u16::try_from(node).unwrap_or(u16::MAX);
            path.push(node);
            parent = node;
        }
        chain_paths.push(path);
    }
    let mut kind_chains = vec![Bitset::new(chains.len()); KINDS];
    let mut header_rules = NamedRules::default();
    let mut arg_rules = NamedRules::default();
    let mut json_key_rules = NamedRules::default();
    for (i, r) in rules.iter().enumerate() {
        for a in &r.args {
            arg_rules.add(a, i, r.chain, n, chains.len());
        }
        for k in &r.json_keys {
            json_key_rules.add(k, i, r.chain, n, chains.len());
        }
        for k in Kind::ALL {
            if r.kinds & k.bit() != 0 {
                kind_rules[k as usize].set(i);
                kind_chains[k as usize].set(r.chain);
            }
        }
        for h in &r.headers {
            header_rules.add(h, i, r.chain, n, chains.len());
        }
    }
    header_rules.finish();
    arg_rules.finish();
    json_key_rules.finish();
    let ac = if patterns.is_empty() {
        None
    } else {
        // A flat DFA table (crate::scan): the fastest overlapping scan,
        // and the pattern count of a rule set is modest.
        match crate::scan::Scanner::new(&patterns) {
            Ok(ac) => Some(ac),
            Err(e) => {
                return Err(vec![LoadError {
                    file: "<rule set>".into(),
                    line: 0,
                    col: 0,
                    message: format!("cannot build the phrase automaton: {e}"),
                    hint: None,
                    rule_id: None,
                }])
            }
        }
    };
    let mut sets: Vec<USet> = Vec::new();
    let mut kind_sets: Vec<Vec<usize>> = vec![Vec::new(); KINDS];
    for k in Kind::ALL {
        for unicode in [false, true] {
            let mut bits = Bitset::new(n);
            let mut members = Vec::new();
            for (i, r) in rules.iter().enumerate() {
                if let Matcher::Regex {
                    filtered: false,
                    unicode: u,
                    hir,
                    ..
                } = &r.matcher
                {
                    if *u == unicode && r.kinds & k.bit() != 0 {
                        bits.set(i);
                        // The rule's own regex as parsed, folding included.
                        members.push((i, &**hir));
                    }
                }
            }
            if members.is_empty() {
                continue;
            }
            if let Some(existing) = sets.iter().position(|s| s.bits == bits) {
                kind_sets[k as usize].push(existing);
                continue;
            }
            use regex_automata::{meta, MatchKind};
            let hirs: Vec<&regex_syntax::hir::Hir> = members.iter().map(|m| m.1).collect();
            let built = meta::Regex::builder()
                .configure(
                    meta::Config::new()
                        .match_kind(MatchKind::All)
                        .nfa_size_limit(Some(64 << 20))
                        .hybrid_cache_capacity(8 << 20)
                        .auto_prefilter(false),
                )
                .build_many_from_hir(&hirs);
            // A set too big to build: its regexes run one by one (they stay `unfiltered`).
            if let Ok(re) = built {
                let rules_of = members
                    .iter()
                    .map(|m| u32::try_from(m.0).unwrap_or(u32::MAX))
                    .collect();
                sets.push(USet {
                    re,
                    rules: rules_of,
                    bits,
                });
                kind_sets[k as usize].push(sets.len() - 1);
            }
        }
    }
    let mut class_rules = vec![Bitset::new(n); 64];
    let mut gate_classes = 0u64;
    for (i, r) in rules.iter().enumerate() {
        if let Matcher::Regex { classes, .. } = &r.matcher {
            gate_classes |= classes;
            let mut m = *classes;
            while m != 0 {
                let bit = m.trailing_zeros() as usize;
                m &= m - 1;
                if let Some(b) = class_rules.get_mut(bit) {
                    b.set(i);
                }
            }
        }
    }
    let mut body_residual = (Bitset::new(n), Bitset::new(chains.len()));
    let both = Kind::BodyArg.bit() | Kind::ArgName.bit();
    for (i, r) in rules.iter().enumerate() {
        if r.kinds & Kind::Body.bit() != 0 && r.kinds & both != both {
            body_residual.0.set(i);
            body_residual.1.set(r.chain);
        }
    }
    let mut residual_pats: Vec<u32> = Vec::new();
    let mut residual_list: Vec<&[u8]> = Vec::new();
    for (k, (p, entries)) in patterns.iter().zip(&pat_entries).enumerate() {
        if entries.iter().any(|e| body_residual.0.get(e.rule as usize)) {
            residual_pats.push(k as u32);
            residual_list.push(p);
        }
    }
    let residual_ac = if residual_list.is_empty() {
        None
    } else {
        crate::scan::Scanner::new(&residual_list)
            .ok()
            .map(|sc| (sc, residual_pats))
    };
    let mut chain_rules = vec![Bitset::new(n); chains.len()];
    for (i, r) in rules.iter().enumerate() {
        if let Some(b) = chain_rules.get_mut(r.chain) {
            b.set(i);
        }
    }
    // A second clause alone is no reason to scan (a raw JSON body would be scanned once more
    // for 13001's `":0`): unscanned, it is taken as met.
    let (mut second_rules, mut ac_rules) = (Bitset::new(n), Bitset::new(n));
    for e in pat_entries.iter().flatten() {
        match e.kind {
            PatKind::Second { .. } => second_rules.set(e.rule as usize),
            _ => ac_rules.set(e.rule as usize),
        }
    }
    let max_set_len = sets.iter().map(|s| s.rules.len()).max().unwrap_or(0);
    let by_id = rules.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
    let chain_trig: Vec<u64> = chains
        .iter()
        .map(|c| c.iter().fold(0, |m, t| m | t.trigger()))
        .collect();
    let all_chain_trig = chain_trig.iter().fold(0, |m, t| m | t);
    let tags = rules.iter().flat_map(|r| r.tags.iter().cloned()).collect();
    let plain =
        crate::plain::PlainPlan::build(&rules, &chains, &patterns, &pat_entries, &second_rules);
    Ok(RuleSet {
        uid: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        rules,
        chains,
        chain_trig,
        all_chain_trig,
        chain_paths,
        trie_len: trie.len(),
        ac,
        chain_rules,
        ac_rules,
        patterns,
        pat_entries,
        kind_rules,
        kind_chains,
        header_rules,
        arg_rules,
        json_key_rules,
        direct,
        unfiltered,
        class_rules,
        gate_classes,
        second_rules,
        sets,
        kind_sets,
        max_set_len,
        negated,
        plain,
        body_residual,
        residual_ac,
        by_id,
        tags,
    })
}
#[cfg(test)]
pub(crate) mod gate_tests {
    use super::{Matcher, RuleSet};
    use crate::transform::{apply_chain, class_mask};

    /// Every line of every `.txt` file under `dir` (the corpora), for the soundness tests.
    pub(crate) fn lines(dir: &std::path::Path, out: &mut Vec<Vec<u8>>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                lines(&p, out);
            } else if p.extension().is_some_and(|x| x == "txt") {
                if let Ok(b) = std::fs::read(&p) {
                    out.extend(b.split(|&c| c == b'\n').map(<[u8]>::to_vec));
                }
            }
        }
    }

    /// `v` as written, upper-cased and lower-cased: the forms the soundness tests try.
    fn cased(v: &[u8]) -> [Vec<u8>; 3] {
        [v.to_vec(), v.to_ascii_uppercase(), v.to_ascii_lowercase()]
    }

    /// Every line of both corpora (`attack-corpus/` and `../shared/corpora`).
    pub(crate) fn corpora_lines() -> Vec<Vec<u8>> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut payloads = Vec::new();
        lines(&root.join("attack-corpus"), &mut payloads);
        lines(&root.join("../shared/corpora"), &mut payloads);
        assert!(payloads.len() > 1000, "corpora not found");
        payloads
    }

    /// The shipped rule set (`rules/`), its fast path's chain groups built (so that the tests
    /// of the fast path exercise them, not a race with their thread).
    pub(crate) fn shipped() -> RuleSet {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let rs = RuleSet::load_dir(&root.join("rules")).expect("shipped rules load");
        rs.wait_background();
        rs
    }

    /// Matching case-insensitively in place of a final `lowercase` changes no verdict: on every
    /// payload of both corpora, each folded regex agrees with the regex as written applied
    /// after the transforms as written.
    #[test]
    fn case_folding_agrees_with_lowercase_on_the_corpora() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let rs = RuleSet::load_dir(&root.join("rules")).expect("shipped rules load");
        let mut payloads = Vec::new();
        lines(&root.join("attack-corpus"), &mut payloads);
        lines(&root.join("../shared/corpora"), &mut payloads);
        let mut folded = 0;
        for r in rs.rules.iter().filter(|r| r.fold_case) {
            let Matcher::Regex { re, .. } = &r.matcher else {
                continue;
            };
            folded += 1;
            let plain = regex::bytes::RegexBuilder::new(re.as_str())
                .unicode(false)
                .build()
                .expect("plain regex");
            for p in &payloads {
                let want = plain.is_match(&apply_chain(&r.transforms, p));
                let got = re.is_match(&apply_chain(&r.eval_transforms, p));
                assert_eq!(
                    want,
                    got,
                    "rule {} disagrees on {:?}",
                    r.id,
                    String::from_utf8_lossy(p)
                );
            }
        }
        assert!(folded > 30, "only {folded} rules folded");
    }

    /// Each rule's lazy DFA answers "any match?" as its regex does: on every payload of both
    /// corpora after the rule's transforms, as it is and in both cases, wherever the lazy DFA
    /// answers (it gives up next to a non-ASCII byte under a Unicode word boundary).
    #[test]
    fn lazy_dfas_agree_with_the_regexes_on_the_corpora() {
        use regex_automata::Input;
        let rs = shipped();
        let payloads = corpora_lines();
        let (mut rules, mut matched, mut answered) = (0, 0usize, 0usize);
        for r in &rs.rules {
            let Matcher::Regex {
                re,
                lazy: Some(dfa),
                ..
            } = &r.matcher
            else {
                continue;
            };
            rules += 1;
            let mut cache = dfa.create_cache();
            for p in &payloads {
                let v = apply_chain(&r.eval_transforms, p);
                for form in cased(&v) {
                    let Ok(got) = dfa.try_search_fwd(&mut cache, &Input::new(&form).earliest(true))
                    else {
                        continue;
                    };
                    answered += 1;
                    let want = re.is_match(&form);
                    matched += usize::from(want);
                    assert_eq!(
                        got.is_some(),
                        want,
                        "rule {} on {:?}",
                        r.id,
                        String::from_utf8_lossy(&form)
                    );
                }
            }
        }
        assert!(rules > 40, "only {rules} rules have a lazy DFA");
        assert!(
            matched > 10_000 && answered > 1_000_000,
            "{matched} / {answered}"
        );
    }

    /// The byte classes a regex needs ([`crate::prefilter::Needs`]) never hide a match: on
    /// every payload of both corpora after the rule's transforms (as written and in both
    /// cases), a regex that matches always has its needs met by the text's class mask.
    #[test]
    fn needed_classes_never_hide_a_match_on_the_corpora() {
        let rs = shipped();
        let payloads = corpora_lines();
        let (mut with_needs, mut matched) = (0, 0usize);
        for r in &rs.rules {
            let Matcher::Regex {
                re,
                needs: Some(needs),
                ..
            } = &r.matcher
            else {
                continue;
            };
            with_needs += 1;
            for p in &payloads {
                let v = apply_chain(&r.eval_transforms, p);
                for form in cased(&v) {
                    if re.is_match(&form) {
                        matched += 1;
                        assert!(
                            needs.allows(class_mask(&form)),
                            "rule {} on {:?}",
                            r.id,
                            String::from_utf8_lossy(&form)
                        );
                    }
                }
            }
        }
        assert!(
            with_needs > 40,
            "only {with_needs} rules have needed classes"
        );
        assert!(matched > 10_000, "{matched}");
    }

    /// The first-byte test of anchored regexes never hides a match: on every payload of both
    /// corpora (after the rule's transforms, as written and with its first byte upper-cased,
    /// lower-cased or a space put in front), a regex that matches always passes its test.
    #[test]
    fn anchored_first_bytes_never_hide_a_match_on_the_corpora() {
        let rs = shipped();
        let payloads = corpora_lines();
        let (mut anchored, mut checked, mut skipped) = (0, 0, 0);
        for r in &rs.rules {
            let Matcher::Regex {
                re,
                first: Some(first),
                ..
            } = &r.matcher
            else {
                continue;
            };
            anchored += 1;
            for p in &payloads {
                let v = apply_chain(&r.eval_transforms, p);
                let mut forms = cased(&v).to_vec();
                let mut spaced = b" ".to_vec();
                spaced.extend_from_slice(&v);
                forms.push(spaced);
                for v in forms {
                    let passes = v.first().is_some_and(|&b| first[usize::from(b)]);
                    if re.is_match(&v) {
                        checked += 1;
                        assert!(
                            passes,
                            "rule {} matches {:?} but its first-byte test hides it",
                            r.id,
                            String::from_utf8_lossy(&v)
                        );
                    } else if !passes {
                        skipped += 1;
                    }
                }
            }
        }
        assert!(anchored >= 5, "only {anchored} anchored regexes");
        assert!(checked > 300, "only {checked} matches checked");
        assert!(skipped > 10_000, "the test skipped only {skipped} values");
    }

    /// The gate of a regex never hides a match: on every payload of both corpora (attacks and
    /// benign, after the rule's transforms), a regex that matches always passes its gate.
    #[test]
    fn gates_never_hide_a_match_on_the_corpora() {
        let rs = shipped();
        let payloads = corpora_lines();
        let mut checked = 0;
        for r in &rs.rules {
            let Matcher::Regex {
                re,
                filtered: true,
                classes,
                ..
            } = &r.matcher
            else {
                continue;
            };
            // (factor, whether it must sit on word boundaries), of the gate and of its second
            // clause.
            let of_kind = |second: bool| -> Vec<(&[u8], bool)> {
                rs.pat_entries
                    .iter()
                    .enumerate()
                    .filter_map(|(i, es)| {
                        es.iter().find_map(|e| match e.kind {
                            super::PatKind::Factor { word }
                                if !second && e.rule as usize == rs.by_id[&r.id] =>
                            {
                                Some((rs.patterns[i].as_slice(), word))
                            }
                            super::PatKind::Second { word }
                                if second && e.rule as usize == rs.by_id[&r.id] =>
                            {
                                Some((rs.patterns[i].as_slice(), word))
                            }
                            _ => None,
                        })
                    })
                    .collect()
            };
            let (factors, second) = (of_kind(false), of_kind(true));
            let is_word = |b: Option<&u8>| b.is_some_and(|&b| crate::inspect::is_word(b));
            for p in &payloads {
                let v = apply_chain(&r.eval_transforms, p);
                if !re.is_match(&v) {
                    continue;
                }
                checked += 1;
                let lower = v.to_ascii_lowercase();
                let by_class = class_mask(&v) & classes != 0;
                let seen = |list: &[(&[u8], bool)]| {
                    list.iter().any(|&(f, word)| {
                        lower.windows(f.len()).enumerate().any(|(at, w)| {
                            w == f
                                && (!word
                                    || !(at.checked_sub(1).is_some_and(|b| is_word(lower.get(b)))
                                        || is_word(lower.get(at + f.len()))))
                        })
                    })
                };
                let by_factor = seen(&factors);
                assert!(
                    by_factor || !by_class || second.is_empty() || seen(&second),
                    "rule {} matches {:?} but its second clause hides it",
                    r.id,
                    String::from_utf8_lossy(p)
                );
                assert!(
                    by_class || by_factor,
                    "rule {} matches {:?} but its gate hides it",
                    r.id,
                    String::from_utf8_lossy(p)
                );
            }
        }
        assert!(checked > 1000, "only {checked} matches checked");
    }
}
