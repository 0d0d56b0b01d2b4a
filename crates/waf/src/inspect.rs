//! The hot path: per-value evaluation, the per-request [`Inspection`] accumulator and verdicts.
//!
//! For each value (an argument, a header, a cookie, the path, …):
//! 1. candidate rules = rules targeting the value's kind (and `headers:<name>`), ∧ rules active
//!    for the policy, minus exclusions that name this target; nothing to do when empty;
//! 2. each transform chain those rules use is computed once, through a memo keyed by
//!    (variant, transform), so shared prefixes and transforms that change nothing cost nothing;
//!    chains that end at the same bytes share one *variant*;
//! 3. each distinct variant is scanned once by the rule set's Aho-Corasick automaton (phrases
//!    and regex factors), then only the regexes whose factors were seen run, plus unfiltered
//!    regexes and detectors of candidate rules whose chain produced that variant.
//!
//! All buffers live in [`Inspection`] and are reused from request to request.

use std::fmt;

use crate::bitset::Bitset;
use crate::policy::{Mode, Policy};
use crate::raw::Severity;
use crate::ruleset::{Detector, Matcher, PatKind, RuleSet};
use crate::target::Kind;
use crate::transform::Transform;

/// Longest `matched` text kept in a [`RuleMatch`], in characters.
pub const MATCHED_MAX: usize = 80;
/// Longest transformed value kept in a [`RuleMatch`], in characters.
pub const VALUE_MAX: usize = 200;

/// A malformed body (the gateway answers 400). The raw body is still scanned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// JSON that does not parse.
    #[error("malformed json body at byte {offset}")]
    MalformedJson {
        /// Byte offset of the problem.
        offset: usize,
    },
    /// Nesting deeper than the cap.
    #[error("body nested deeper than {limit} levels")]
    TooDeep {
        /// The cap.
        limit: usize,
    },
    /// More multipart parts than the cap.
    #[error("multipart body with more than {limit} parts")]
    TooManyParts {
        /// The cap.
        limit: usize,
    },
    /// A multipart body that cannot be split into parts.
    #[error("malformed multipart body: {0}")]
    MalformedMultipart(&'static str),
}

/// The outcome for a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Below the threshold (or mode off).
    Allow,
    /// At or above the threshold, mode block: answer 403.
    Block,
    /// At or above the threshold, mode detect: log, let it through.
    Detect,
}

impl Verdict {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Block => "block",
            Verdict::Detect => "detect",
        }
    }
}

/// One rule that matched one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleMatch {
    /// Rule id.
    pub rule_id: u32,
    /// Attack class (`sqli`, `xss`, …).
    pub class: String,
    /// Severity.
    pub severity: Severity,
    /// Anomaly points added by this match (0 when the rule had already matched another target).
    pub score: u32,
    /// Target, e.g. `args:q`, `json:user.bio`, `headers:user-agent`, `path`.
    pub target: String,
    /// Matched text (≤ 80 characters); for detectors, the start of the value.
    pub matched: String,
    /// Transforms applied, in order.
    pub transforms: Vec<&'static str>,
    /// The value after the transforms (≤ 200 characters).
    pub value: String,
    /// Detector fingerprint (`s&1o1`, `evt`, …), when a detector matched.
    pub fingerprint: Option<String>,
}

const MEMO_T: usize = Transform::ALL.len();

#[derive(Debug, Default)]
pub(crate) struct State {
    pub score: u32,
    pub matches: Vec<RuleMatch>,
    pub matched: Bitset,
    pub body_error: Option<BodyError>,
    pub over_limit: bool,
    pub record_all: bool,
    cand: Bitset,
    /// The candidates are the residual rules of a parsed body's raw body (`select`).
    residual: bool,
    chains: Bitset,
    tmp: Bitset,
    hit_tmp: Bitset,
    /// Rules one of whose second-clause factors the scan of the variant saw.
    second_hit: Bitset,
    hit: Bitset,
    regex_cand: Bitset,
    /// The candidate rules whose chain produced the variant being evaluated.
    vcand: Bitset,
    bufs: Vec<Vec<u8>>,
    n_var: usize,
    /// Per variant, per transform: the resulting variant (`u16::MAX`: not computed yet).
    memo: Vec<[u16; MEMO_T]>,
    /// Per variant: its byte-class mask (see [`crate::transform::class_mask`]).
    var_mask: Vec<u64>,
    chain_var: Vec<u16>,
    node_var: Vec<u16>,
    node_stamp: Vec<u32>,
    stamp: u32,
    seen_var: Vec<u16>,
    /// Per entry of `seen_var`: the rules of the chains that gave that variant (filled by
    /// [`Engine::variants`] in its one pass over the chains).
    var_rules: Vec<Bitset>,
    spans: Vec<(u32, u32, u32)>,
    detections: Vec<(u16, Detector, Option<palisade_detect::Detection>)>,
    patset: Option<regex_automata::PatternSet>,
    /// The values already inspected in this request (see [`crate::seen`]).
    seen: crate::seen::Seen,
    /// Values found clean in earlier requests under the same policy: headers, header, argument
    /// and cookie names, the method (see [`crate::clean`]).
    clean: crate::clean::CleanMemory,
    /// Values skipped because they were already inspected.
    pub skipped: u32,
    /// Per rule: the cache of its regex's lazy DFA, for the rule set `lazy_owner`.
    lazy_caches: Vec<Option<regex_automata::hybrid::dfa::Cache>>,
    lazy_owner: u64,
    /// Scratch space of the plain-value fast path (see [`crate::plain`]).
    plain: crate::plain::PlainScratch,
    /// The plain-value fast path is off (tests compare both paths).
    pub(crate) plain_off: bool,
    /// This request's header block (see [`Sink::headers_known`]) and whether it may be
    /// remembered: nothing in it fired, it is not too long, the memory is on.
    block_key: Vec<u8>,
    block_ok: bool,
}

/// Per-request accumulator, reusable across requests (its buffers are kept).
#[derive(Debug, Default)]
pub struct Inspection {
    pub(crate) st: State,
    pub(crate) parse: crate::request::ParseBufs,
}

impl Inspection {
    /// A fresh accumulator.
    pub fn new() -> Inspection {
        Inspection::default()
    }

    /// Forgets the previous request (called by [`RuleSet::inspect_head`]).
    pub fn reset(&mut self) {
        let st = &mut self.st;
        st.score = 0;
        st.matches.clear();
        st.matched.clear();
        st.body_error = None;
        st.over_limit = false;
        st.seen.clear();
        st.plain.host.clear();
        st.skipped = 0;
        st.clean.hits = 0;
    }

    /// Remember header values, header names, argument and cookie names and methods that matched
    /// nothing from request to request (on by default; see [`crate::clean`]). Benchmarks of a
    /// cold request turn it off.
    pub fn set_header_memory(&mut self, on: bool) {
        self.st.clean.on = on;
    }

    /// Values (headers, names, the method) not inspected in this request because they had been
    /// found clean under the same policy before (see [`crate::clean`]).
    pub fn header_memory_hits(&self) -> u32 {
        self.st.clean.hits
    }

    /// Records every (rule, target) match instead of only the first per rule (for `explain`).
    pub fn set_record_all(&mut self, on: bool) {
        self.st.record_all = on;
    }

    /// Values not inspected again because the same kind, name and value had already been
    /// inspected in this request (see [`crate::seen`]).
    pub fn skipped(&self) -> u32 {
        self.st.skipped
    }

    /// Total anomaly score.
    pub fn score(&self) -> u32 {
        self.st.score
    }

    /// The matches, in inspection order (one per rule unless recording all).
    pub fn matches(&self) -> &[RuleMatch] {
        &self.st.matches
    }

    /// Ids of the matched rules (each once).
    pub fn rule_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.st.matches.iter().map(|m| m.rule_id).collect();
        ids.dedup();
        let mut seen = std::collections::HashSet::new();
        ids.retain(|id| seen.insert(*id));
        ids
    }

    /// Attack classes of the matched rules, sorted, each once.
    pub fn classes(&self) -> Vec<&str> {
        let mut c: Vec<&str> = self.st.matches.iter().map(|m| m.class.as_str()).collect();
        c.sort_unstable();
        c.dedup();
        c
    }

    /// A malformed body (JSON that does not parse, nesting too deep, too many parts): the
    /// gateway answers 400.
    pub fn body_error(&self) -> Option<&BodyError> {
        self.st.body_error.as_ref()
    }

    /// True when the body was larger than the policy's inspection limit (only the first
    /// `inspection_limit` bytes were inspected; the policy's `over_limit` says what to do).
    pub fn over_limit(&self) -> bool {
        self.st.over_limit
    }

    /// The verdict under `p`: `Block`/`Detect` when the score reaches the threshold.
    pub fn verdict(&self, p: &Policy) -> Verdict {
        match p.mode {
            Mode::Off => Verdict::Allow,
            _ if self.st.score < p.threshold => Verdict::Allow,
            Mode::Block => Verdict::Block,
            Mode::Detect => Verdict::Detect,
        }
    }
}

/// Receives the values extracted from a request.
pub(crate) trait Sink {
    /// One value of `kind`, named `name` (argument name, header name, JSON path…).
    fn value(&mut self, kind: Kind, name: &[u8], json: bool, value: &[u8]);
    /// True when the sink skips a value it already received in this request (the same kind,
    /// name and bytes, of at most [`crate::seen::MAX_VALUE`] bytes each): a parser that knows
    /// a value repeats one it sent may then call [`Sink::repeat`] instead of sending it.
    fn skips_repeats(&self) -> bool {
        false
    }
    /// A repeated value the parser did not send (see [`Sink::skips_repeats`]).
    fn repeat(&mut self) {}
    /// The raw body. `parsed` is true when a JSON or urlencoded parser read all of it, so every
    /// byte of it already went out as a key or a value: then only the rules that do not look at
    /// both `args` and `args_names` need the raw body.
    fn raw_body(&mut self, body: &[u8], parsed: bool);
    /// True when every header of the request but `Cookie` (names and values) is known to
    /// match nothing: the caller skips them. Otherwise the caller sends them one by one, then
    /// calls [`Sink::headers_done`].
    fn headers_known(&mut self, _headers: &http::HeaderMap) -> bool {
        false
    }
    /// The headers were sent one by one.
    fn headers_done(&mut self) {}
}

/// Evaluates values against a rule set under a policy.
pub(crate) struct Engine<'a> {
    pub rs: &'a RuleSet,
    pub pol: &'a Policy,
    pub st: &'a mut State,
    /// Skip a value already inspected in this request ([`crate::seen`]): on for bodies, where
    /// JSON keys and enumerations repeat; off for the head, where a repeat is rare and the
    /// memory would cost every value an insertion.
    pub dedupe: bool,
    /// The score at which inspection stops: the threshold in block mode (the verdict cannot
    /// change past it), unless the policy asks for complete matches or every match is
    /// recorded (`explain`); `u32::MAX` otherwise.
    pub stop_at: u32,
}

fn truncate_chars(bytes: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(bytes);
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.into_owned(),
    }
}

pub(crate) fn target_string(kind: Kind, name: &[u8], json: bool) -> String {
    let n = String::from_utf8_lossy(name);
    match kind {
        Kind::Method => "method".into(),
        Kind::Path => "path".into(),
        Kind::Uri => "uri".into(),
        Kind::Query => "query".into(),
        Kind::Body => "body".into(),
        Kind::QueryArg | Kind::BodyArg if json => format!("json:{n}"),
        Kind::QueryArg | Kind::BodyArg => format!("args:{n}"),
        Kind::ArgName => format!("args_names:{n}"),
        Kind::Header => format!("headers:{n}"),
        Kind::PartHeader => format!("multipart_headers:{n}"),
        Kind::HeaderName => "header_names".into(),
        Kind::Cookie => format!("cookies:{n}"),
        Kind::CookieName => "cookie_names".into(),
        Kind::Filename => format!("filenames:{n}"),
    }
}

#[inline]
pub(crate) fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// A word factor `pat` found at `start..end` of `hay` by the case-insensitive scan may sit on
/// word boundaries there (see [`crate::prefilter::Gate::words`]).
fn may_be_word(hay: &[u8], start: usize, end: usize, pat: &[u8]) -> bool {
    let got = hay.get(start..end).unwrap_or(&[]);
    !got.eq_ignore_ascii_case(pat) || word_ok(hay, start, end, pat)
}

fn word_ok(hay: &[u8], start: usize, end: usize, pat: &[u8]) -> bool {
    let first_word = pat.first().is_some_and(|&b| is_word(b));
    let last_word = pat.last().is_some_and(|&b| is_word(b));
    let before = start
        .checked_sub(1)
        .and_then(|i| hay.get(i))
        .is_some_and(|&b| is_word(b));
    let after = hay.get(end).is_some_and(|&b| is_word(b));
    !((first_word && before) || (last_word && after))
}

#[inline]
fn var_of<'v>(bufs: &'v [Vec<u8>], value: &'v [u8], v: u16) -> &'v [u8] {
    if v == 0 {
        value
    } else {
        bufs.get(usize::from(v) - 1).map_or(&[], Vec::as_slice)
    }
}

impl State {
    fn prepare(&mut self, rs: &RuleSet) {
        let n = rs.rules.len();
        if self.lazy_owner != rs.uid {
            // A cache only serves the DFA it was made for.
            self.lazy_owner = rs.uid;
            self.lazy_caches.clear();
            self.lazy_caches.resize_with(n, || None);
        }
        if self.matched.words() != n.div_ceil(64) {
            self.matched.reset(n);
        }
        for b in [
            &mut self.cand,
            &mut self.tmp,
            &mut self.hit_tmp,
            &mut self.second_hit,
            &mut self.hit,
            &mut self.regex_cand,
            &mut self.vcand,
        ] {
            b.reset(n);
        }
        self.chains.reset(rs.chains.len());
        // Sized for this rule set when first used (no heap for up to 256 rules).
        self.var_rules.clear();
        if rs.max_set_len > 0 && self.patset.as_ref().map(|p| p.capacity()) != Some(rs.max_set_len)
        {
            self.patset = Some(regex_automata::PatternSet::new(rs.max_set_len));
        }
        self.chain_var.clear();
        self.chain_var.resize(rs.chains.len(), 0);
        if self.node_var.len() != rs.trie_len {
            self.node_var = vec![0; rs.trie_len];
            self.node_stamp = vec![0; rs.trie_len];
            self.stamp = 0;
        }
    }

    /// Records that a chain with candidate `rules` gave variant `v`: `v` joins `seen_var` (once)
    /// and the rules join its `var_rules`.
    #[inline]
    fn add_chain_rules(&mut self, v: u16, rules: &Bitset) {
        let p = match self.seen_var.iter().position(|&x| x == v) {
            Some(p) => p,
            None => {
                let p = self.seen_var.len();
                self.seen_var.push(v);
                match self.var_rules.get_mut(p) {
                    Some(b) => b.clear(),
                    None => self.var_rules.push(Bitset::new(rules.words() * 64)),
                }
                p
            }
        };
        if let Some(b) = self.var_rules.get_mut(p) {
            b.or_with(rules);
        }
    }

    #[inline]
    fn var<'v>(&'v self, value: &'v [u8], v: u16) -> &'v [u8] {
        var_of(&self.bufs, value, v)
    }

    fn apply_memo(&mut self, value: &[u8], from: u16, t: Transform) -> u16 {
        let tid = t as usize;
        if let Some(&to) = self
            .memo
            .get(usize::from(from))
            .and_then(|row| row.get(tid))
        {
            if to != u16::MAX {
                return to;
            }
        }
        let from_mask = self
            .var_mask
            .get(usize::from(from))
            .copied()
            .unwrap_or(u64::MAX);
        if from_mask & t.trigger() == 0 {
            if let Some(slot) = self
                .memo
                .get_mut(usize::from(from))
                .and_then(|row| row.get_mut(tid))
            {
                *slot = from;
            }
            return from;
        }
        if t == Transform::DecodeAll
            && from_mask & (crate::transform::class::PCT | crate::transform::class::PLUS) != 0
        {
            // Decode once for the three URL decoders when that is their common output.
            self.apply_memo(value, from, Transform::UrlDecodeUni);
            if let Some(row) = self
                .memo
                .get(usize::from(from))
                .and_then(|row| row.get(tid))
            {
                if *row != u16::MAX {
                    return *row;
                }
            }
        }
        let idx = self.n_var; // variant `idx + 1` would live in bufs[idx]
        if self.bufs.len() <= idx {
            self.bufs.push(Vec::new());
        }
        let mut out = std::mem::take(&mut self.bufs[idx]);
        let changed = t.apply_masked(self.var(value, from), from_mask, &mut out);
        let to = if !changed {
            from
        } else if let Some(k) =
            (0..=self.n_var as u16).find(|&k| self.var(value, k) == out.as_slice())
        {
            k
        } else {
            self.n_var += 1;
            self.memo.push([u16::MAX; MEMO_T]);
            self.var_mask.push(crate::transform::class_mask(&out));
            idx as u16 + 1
        };
        self.bufs[idx] = out;
        if let Some(slot) = self
            .memo
            .get_mut(usize::from(from))
            .and_then(|row| row.get_mut(tid))
        {
            *slot = to;
        }
        if t == Transform::UrlDecodeUni && to != from {
            let mask = self
                .var_mask
                .get(usize::from(to))
                .copied()
                .unwrap_or(u64::MAX);
            if crate::transform::url_decoded_is_final(self.var(value, to), mask) {
                if let Some(row) = self.memo.get_mut(usize::from(from)) {
                    for d in crate::transform::URL_DECODERS {
                        if let Some(slot) = row.get_mut(d as usize) {
                            *slot = to;
                        }
                    }
                }
            }
        }
        to
    }
}

impl Engine<'_> {
    /// Evaluates the candidate rules in `st.cand` (chains in `st.chains`) on `value`; true when
    /// any rule fired on it (scored or not: [`crate::clean`] remembers only values where none did).
    pub(crate) fn eval(&mut self, kind: Kind, name: &[u8], json: bool, value: &[u8]) -> bool {
        self.eval_masked(kind, name, json, value, crate::transform::class_mask(value))
    }

    /// [`Engine::eval`] with the value's class mask `mask0` already computed.
    pub(crate) fn eval_masked(
        &mut self,
        kind: Kind,
        name: &[u8],
        json: bool,
        value: &[u8],
        mask0: u64,
    ) -> bool {
        let rs = self.rs;
        // Values no decoding transform changes: most are cleared without the variants.
        if let Some(pp) = rs.plain.as_ref() {
            if !self.st.plain_off
                && pp.may_be_eligible(mask0)
                && !self.st.cand.intersects(&pp.fallback)
                && pp.clean(
                    &rs.rules,
                    &rs.chains,
                    kind,
                    value,
                    mask0,
                    &self.st.cand,
                    &mut self.st.plain,
                )
            {
                return false;
            }
        }
        let st = &mut *self.st;
        st.n_var = 0;
        st.memo.clear();
        st.memo.push([u16::MAX; MEMO_T]);
        st.var_mask.clear();
        st.var_mask.push(mask0);
        st.seen_var.clear();
        st.spans.clear();
        st.detections.clear();
        st.hit.clear();
        // 1. Variants.
        if mask0 & rs.all_chain_trig == 0 {
            // No transform of any chain changes this value: one variant, the value itself.
            st.chain_var.iter_mut().for_each(|x| *x = 0);
            st.seen_var.push(0);
        } else {
            self.variants(value, mask0);
        }
        // 2. Each distinct variant once, until the matches found reach the score at which
        // inspection stops.
        let mut complete = true;
        for vi in 0..self.st.seen_var.len() {
            let v = self.st.seen_var[vi];
            self.eval_variant(kind, value, vi, v);
            if self.stop_at != u32::MAX && !self.st.hit.is_empty() && self.reaches_stop() {
                complete = vi + 1 == self.st.seen_var.len();
                break;
            }
        }
        // 3. Fire.
        let st = &mut *self.st;
        let mut fired: Vec<(u32, Option<(u32, u32)>)> = Vec::new();
        for &(r, s, e) in &st.spans {
            if !rs.negated.get(r as usize) {
                fired.push((r, Some((s, e))));
            }
        }
        // A negated rule fires when nothing matched: only known when every variant was seen.
        st.tmp.copy_from(&rs.negated);
        st.tmp.and_with(&st.cand);
        for r in st.tmp.ones().filter(|_| complete) {
            if !st.hit.get(r) {
                fired.push((r as u32, None));
            }
        }
        let found = !fired.is_empty();
        for (r, span) in fired {
            self.fire(kind, name, json, value, r as usize, span);
        }
        found
    }

    /// Whether the score plus what the rules hit so far in this value (and not scored yet)
    /// would add reaches [`Engine::stop_at`].
    fn reaches_stop(&self) -> bool {
        let st = &*self.st;
        let mut score = st.score;
        for r in st.hit.ones() {
            if !st.matched.get(r) {
                if let Some(rule) = self.rs.rules.get(r) {
                    score = score.saturating_add(rule.severity.score());
                }
            }
        }
        score >= self.stop_at
    }

    /// Computes the variants of `value` for the chains in `st.chains` (`chain_var`,
    /// `seen_var`), through the memo and the chain trie.
    fn variants(&mut self, value: &[u8], mask0: u64) {
        let rs = self.rs;
        let st = &mut *self.st;
        st.stamp = st.stamp.wrapping_add(1);
        if st.stamp == 0 {
            st.node_stamp.iter_mut().for_each(|x| *x = 0);
            st.stamp = 1;
        }
        let mut next = st.chains.next_one(0);
        while let Some(ci) = next {
            next = st.chains.next_one(ci + 1);
            let Some(rules) = rs.chain_rules.get(ci) else {
                continue;
            };
            if rs.chain_trig.get(ci).is_some_and(|&m| m & mask0 == 0) {
                // Every transform of the chain leaves this value as it is.
                if let Some(slot) = st.chain_var.get_mut(ci) {
                    *slot = 0;
                }
                st.add_chain_rules(0, rules);
                continue;
            }
            let (Some(path), Some(chain)) = (rs.chain_paths.get(ci), rs.chains.get(ci)) else {
                continue;
            };
            let mut cur = 0u16;
            for (&node, &t) in path.iter().zip(chain) {
                let n = usize::from(node);
                if st.node_stamp.get(n) == Some(&st.stamp) {
                    cur = st.node_var.get(n).copied().unwrap_or(0);
                } else {
                    cur = st.apply_memo(value, cur, t);
                    if let (Some(s), Some(v)) = (st.node_stamp.get_mut(n), st.node_var.get_mut(n)) {
                        *s = st.stamp;
                        *v = cur;
                    }
                }
            }
            if let Some(slot) = st.chain_var.get_mut(ci) {
                *slot = cur;
            }
            st.add_chain_rules(cur, rules);
        }
    }

    fn eval_variant(&mut self, kind: Kind, value: &[u8], vi: usize, v: u16) {
        let rs = self.rs;
        let st = &mut *self.st;
        st.regex_cand.clear();
        st.second_hit.clear();
        // The candidate rules that read this variant: nothing else is looked at below.
        match st.var_rules.get(vi) {
            Some(rules) if st.seen_var.len() > 1 => {
                st.vcand.copy_from(rules);
                st.vcand.and_with(&st.cand);
            }
            // Every chain gave this variant.
            _ => st.vcand.copy_from(&st.cand),
        }
        st.vcand.and_not(&st.hit);
        if st.vcand.is_empty() {
            return;
        }
        let hay = var_of(&st.bufs, value, v);
        // The raw body of a parsed body: only the residual rules' patterns.
        let (ac, pat_map) = match (&rs.residual_ac, st.residual) {
            (Some((sc, map)), true) => (Some(sc), Some(map.as_slice())),
            _ => (rs.ac.as_ref(), None),
        };
        let scan = ac.filter(|_| st.vcand.intersects(&rs.ac_rules));
        if scan.is_none() {
            // Second clauses were not looked for: taken as met.
            st.second_hit.copy_from(&rs.second_rules);
        }
        if let Some(ac) = scan {
            ac.each_match(hay, |pat, m_start, m_end| {
                let pat = match pat_map {
                    Some(map) => map.get(pat).map_or(usize::MAX, |&p| p as usize),
                    None => pat,
                };
                let Some(entries) = rs.pat_entries.get(pat) else {
                    return true;
                };
                for e in entries {
                    let r = e.rule as usize;
                    if !st.vcand.get(r) || st.hit.get(r) {
                        continue;
                    }
                    let Some(rule) = rs.rules.get(r) else {
                        continue;
                    };
                    match e.kind {
                        PatKind::Factor { word: false } => st.regex_cand.set(r),
                        // A word: `or` in `for` is no reason to run the regex.
                        PatKind::Factor { word } | PatKind::Second { word } => {
                            let pat = rs.patterns.get(pat).map_or(&[][..], Vec::as_slice);
                            if !word || may_be_word(hay, m_start, m_end, pat) {
                                if matches!(e.kind, PatKind::Factor { .. }) {
                                    st.regex_cand.set(r);
                                } else {
                                    st.second_hit.set(r);
                                }
                            }
                        }
                        PatKind::Phrase { word, whole } => {
                            let pat = rs.patterns.get(pat).map_or(&[][..], Vec::as_slice);
                            let got = hay.get(m_start..m_end).unwrap_or(&[]);
                            let same = if rule.fold_case {
                                got.eq_ignore_ascii_case(pat)
                            } else {
                                got == pat
                            };
                            let placed = if whole {
                                m_start == 0 && m_end == hay.len()
                            } else {
                                !word || word_ok(hay, m_start, m_end, pat)
                            };
                            if same && placed {
                                st.hit.set(r);
                                st.spans.push((e.rule, m_start as u32, m_end as u32));
                            }
                        }
                    }
                }
                true
            });
        }
        // Regexes gated by byte classes the variant holds.
        let vmask = st.var_mask.get(usize::from(v)).copied().unwrap_or(u64::MAX) & rs.gate_classes;
        if vmask != 0 {
            st.tmp.clear();
            let mut m = vmask;
            while m != 0 {
                let bit = m.trailing_zeros() as usize;
                m &= m - 1;
                if let Some(b) = rs.class_rules.get(bit) {
                    st.tmp.or_with(b);
                }
            }
            st.tmp.and_with(&st.vcand);
            // Through a class, a regex with a second clause needs one of its factors too.
            if st.tmp.intersects(&rs.second_rules) {
                st.hit_tmp.copy_from(&rs.second_rules);
                st.hit_tmp.and_not(&st.second_hit);
                st.tmp.and_not(&st.hit_tmp);
            }
            st.regex_cand.or_with(&st.tmp);
        }
        // Unfiltered regexes: one pass of each set of this kind says which can match;
        // unfiltered regexes of candidate rules outside those sets (`headers:<name>` rules,
        // embedded tests) run on their own.
        st.tmp.copy_from(&rs.unfiltered);
        st.tmp.and_with(&st.vcand);
        if !st.tmp.is_empty() {
            let set_ids = rs
                .kind_sets
                .get(kind as usize)
                .map_or(&[][..], Vec::as_slice);
            for &si in set_ids {
                let (Some(us), Some(patset)) = (rs.sets.get(si), st.patset.as_mut()) else {
                    continue;
                };
                st.tmp.and_not(&us.bits);
                st.hit_tmp.copy_from(&us.bits);
                st.hit_tmp.and_with(&st.vcand);
                if st.hit_tmp.is_empty() {
                    continue;
                }
                let input = regex_automata::Input::new(hay);
                if us.re.is_match(input.clone()) {
                    patset.clear();
                    us.re.which_overlapping_matches(&input, patset);
                    for pid in patset.iter() {
                        let Some(&r) = us.rules.get(pid.as_usize()) else {
                            continue;
                        };
                        let r = r as usize;
                        if st.hit_tmp.get(r) && !st.hit.get(r) {
                            st.regex_cand.set(r);
                        }
                    }
                }
            }
            st.regex_cand.or_with(&st.tmp);
        }
        // Regexes whose factor was seen or whose set pattern matched, then rules evaluated
        // directly.
        st.tmp.copy_from(&rs.direct);
        st.tmp.and_with(&st.vcand);
        st.regex_cand.or_with(&st.tmp);
        let mut next = st.regex_cand.next_one(0);
        while let Some(r) = next {
            next = st.regex_cand.next_one(r + 1);
            if st.hit.get(r) {
                continue;
            }
            let Some(rule) = rs.rules.get(r) else {
                continue;
            };
            if !st.vcand.get(r) {
                continue;
            }
            let hay = var_of(&st.bufs, value, v);
            match &rule.matcher {
                Matcher::Regex {
                    re,
                    first,
                    lazy,
                    needs,
                    ..
                } => {
                    // An anchored regex cannot match a value that does not start with one of
                    // its first bytes.
                    if first
                        .as_ref()
                        .is_some_and(|f| !hay.first().is_some_and(|&b| f[usize::from(b)]))
                    {
                        continue;
                    }
                    // Nor any regex a text without the byte classes it needs.
                    let vmask = st.var_mask.get(usize::from(v)).copied().unwrap_or(u64::MAX);
                    if needs.as_ref().is_some_and(|n| !n.allows(vmask)) {
                        continue;
                    }
                    // No match is the usual answer, and the lazy DFA gives it for less.
                    let none = lazy
                        .as_deref()
                        .and_then(|d| crate::plain::lazy_match(d, st.lazy_caches.get_mut(r), hay))
                        == Some(false);
                    if none {
                        continue;
                    }
                    if let Some(m) = re.find(hay) {
                        let (s, e) = (m.start() as u32, m.end() as u32);
                        st.hit.set(r);
                        st.spans.push((r as u32, s, e));
                    }
                }
                Matcher::Detector(d) => {
                    let cached = st
                        .detections
                        .iter()
                        .find(|(vv, dd, _)| *vv == v && dd == d)
                        .map(|x| x.2);
                    let det = match cached {
                        Some(x) => x,
                        None => {
                            let x = match st.var_mask.get(usize::from(v)) {
                                Some(&m) => run_detector_masked(*d, hay, m, &st.plain.host),
                                None => run_detector(*d, hay, &st.plain.host),
                            };
                            st.detections.push((v, *d, x));
                            x
                        }
                    };
                    if det.is_some() {
                        st.hit.set(r);
                        st.spans.push((r as u32, 0, hay.len() as u32));
                    }
                }
                Matcher::Phrases { .. } => {}
            }
        }
    }

    fn fire(
        &mut self,
        kind: Kind,
        name: &[u8],
        json: bool,
        value: &[u8],
        r: usize,
        span: Option<(u32, u32)>,
    ) {
        let rs = self.rs;
        let st = &mut *self.st;
        let Some(rule) = rs.rules.get(r) else { return };
        let first = !st.matched.get(r);
        if !first && !st.record_all {
            return;
        }
        st.matched.set(r);
        let score = if first { rule.severity.score() } else { 0 };
        st.score = st.score.saturating_add(score);
        let v = st.chain_var.get(rule.chain).copied().unwrap_or(0);
        let hay = st.var(value, v);
        let matched = match span {
            Some((s, e)) => hay.get(s as usize..e as usize).unwrap_or(hay),
            None => hay,
        };
        let fingerprint = match rule.matcher {
            Matcher::Detector(d) => st
                .detections
                .iter()
                .find(|(vv, dd, _)| *vv == v && *dd == d)
                .and_then(|x| x.2)
                .map(|d| d.fingerprint_str().to_string()),
            _ => None,
        };
        let (mut matched, mut shown) = (
            truncate_chars(matched, MATCHED_MAX),
            truncate_chars(hay, VALUE_MAX),
        );
        if rule.fold_case {
            // The engine matched case-insensitively in place of the final `lowercase`.
            matched.make_ascii_lowercase();
            shown.make_ascii_lowercase();
        }
        let m = RuleMatch {
            rule_id: rule.id,
            class: rule.class.clone(),
            severity: rule.severity,
            score,
            target: target_string(kind, name, json),
            matched,
            transforms: rule.transforms.iter().map(|t| t.name()).collect(),
            value: shown,
            fingerprint,
        };
        st.matches.push(m);
    }
}

/// The bytes without which the XSS detector cannot flag a value: `<` (tags), quotes (attribute
/// and string breakouts), `=` (unquoted `on<event>=`), `:`, `&` and the backslash (a `javascript:`
/// scheme, its colon written as a character reference or a `\x3a` escape), `$` and `{` (templates),
/// `+` (UTF-7 `+ADw-`).
const XSS_GATE_BYTES: &[u8] = b"<\"'`=:&\\${+";

/// [`XSS_GATE_BYTES`] as a table.
static XSS_GATE: [bool; 256] = {
    let mut t = [false; 256];
    let bytes = XSS_GATE_BYTES;
    let mut i = 0;
    while i < bytes.len() {
        t[bytes[i] as usize] = true;
        i += 1;
    }
    t
};

/// True when the XSS detector could flag `hay` (see [`XSS_GATE`]).
pub(crate) fn xss_possible(hay: &[u8]) -> bool {
    hay.iter().any(|&b| XSS_GATE[usize::from(b)])
}

/// The class bits of the [`XSS_GATE`] bytes: every ASCII punctuation byte has a class bit of
/// its own, so a text's class mask meets these exactly when the text holds a gate byte.
pub(crate) const XSS_CLASSES: u64 = crate::transform::class::of_all(XSS_GATE_BYTES);

/// The class bits of `<`, `"`, `'`, `` ` ``, `{`, `+`: with none of them, the XSS detector's
/// gate only looks for an unquoted event handler or a script URL
/// (`palisade_detect::xss::detect_hinted`).
const XSS_SPECIALS: u64 = crate::transform::class::of_all(b"<\"'`{+");

/// The class bits of `'` and of `"`: the SQL detector's quote contexts run only on a text
/// holding one ([`palisade_detect::sqli::detect_quoted`]).
const SINGLE_QUOTE: u64 = crate::transform::class::of(b'\'');
const DOUBLE_QUOTE: u64 = crate::transform::class::of(b'"');

/// The classes of a text made only of ASCII letters, digits and `_` (and the length bit).
pub(crate) const WORD_CLASSES: u64 = {
    use crate::transform::class::*;
    UPPER | LOWER | DIGIT | LONG | of(b'_')
};

/// The request's host for the redirect detector: the `Host` header's bytes as sent (the
/// detector ignores case and port), else the target's authority (HTTP/2); empty with neither,
/// or with several `Host` headers.
fn request_host(req: &crate::request::RequestHead<'_>, out: &mut Vec<u8>) {
    out.clear();
    let mut all = req.headers.get_all(http::header::HOST).iter();
    match (all.next(), all.next()) {
        (Some(h), None) => out.extend_from_slice(h.as_bytes()),
        (None, _) => out.extend_from_slice(req.authority.unwrap_or_default()),
        _ => {}
    }
}

/// [`run_detector`] for a text whose class mask ([`crate::transform::class_mask`], the length
/// bit aside) is `mask`: the same gates read from the mask, so the text is not walked for them.
pub(crate) fn run_detector_masked(
    d: Detector,
    hay: &[u8],
    mask: u64,
    host: &[u8],
) -> Option<palisade_detect::Detection> {
    match d {
        Detector::Redirect => palisade_detect::redirect::offsite(hay, host),
        Detector::Sqli if mask & !WORD_CLASSES == 0 => None,
        Detector::Sqli => palisade_detect::sqli::detect_quoted(
            hay,
            mask & SINGLE_QUOTE != 0,
            mask & DOUBLE_QUOTE != 0,
        ),
        Detector::Xss if mask & XSS_CLASSES == 0 => None,
        Detector::Xss => palisade_detect::xss::detect_hinted(hay, mask & XSS_SPECIALS != 0),
    }
}

/// Cheap gates before the tokenizers: a value made only of letters, digits and `_` cannot
/// be an injection in any SQL or HTML context, and XSS needs one of the [`XSS_GATE`] bytes.
pub(crate) fn run_detector(
    d: Detector,
    hay: &[u8],
    host: &[u8],
) -> Option<palisade_detect::Detection> {
    match d {
        Detector::Redirect => palisade_detect::redirect::offsite(hay, host),
        Detector::Sqli => {
            if hay.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_') {
                return None;
            }
            palisade_detect::sqli::detect(hay)
        }
        Detector::Xss => {
            if !xss_possible(hay) {
                return None;
            }
            palisade_detect::xss::detect(hay)
        }
    }
}

impl Engine<'_> {
    /// Puts the rules (and chains) that look at `kind`/`name` under the policy into
    /// `st.cand`/`st.chains`; with `residual`, only the raw-body rules of a fully parsed body.
    /// Returns false when there is none. `json`: `name` is a JSON path, whose last key names
    /// the value for `json:<key>` rules.
    fn select(&mut self, kind: Kind, name: &[u8], json: bool, residual: bool) -> bool {
        let rs = self.rs;
        let pol = self.pol;
        let st = &mut *self.st;
        let k = kind as usize;
        let (Some(kr), Some(kc)) = (rs.kind_rules.get(k), rs.kind_chains.get(k)) else {
            return false;
        };
        st.residual = residual;
        if residual {
            st.cand.copy_from(&rs.body_residual.0);
            st.chains.copy_from(&rs.body_residual.1);
        } else {
            st.cand.copy_from(kr);
            st.chains.copy_from(kc);
        }
        if kind == Kind::Header {
            if let Some((hr, hc)) = rs.header_rules.get(name) {
                st.cand.or_with(hr);
                st.chains.or_with(hc);
            }
        } else if matches!(kind, Kind::QueryArg | Kind::BodyArg) {
            // `json:<key>` rules for a JSON value, by its key: the path after its last dot
            // (paths are short); `args:<name>` rules for the other arguments.
            let (table, key) = match json {
                true => (
                    &rs.json_key_rules,
                    name.rsplit(|&b| b == b'.').next().unwrap_or(name),
                ),
                false => (&rs.arg_rules, name),
            };
            if let Some((ar, ac)) = table.get(key) {
                st.cand.or_with(ar);
                st.chains.or_with(ac);
            }
        }
        st.cand.and_with(&pol.active);
        for (t, rules) in &pol.excl {
            if t.kinds & kind.bit() != 0 && t.name.as_deref().is_none_or(|n| n == name) {
                st.cand.and_not(rules);
            }
        }
        !st.cand.is_empty()
    }
}

impl Sink for Engine<'_> {
    fn value(&mut self, kind: Kind, name: &[u8], json: bool, value: &[u8]) {
        // Past the threshold in block mode, nothing can change the verdict.
        if self.st.score >= self.stop_at {
            return;
        }
        // Common header names found clean when the policy was compiled.
        if kind == Kind::HeaderName && self.pol.clean_header_names != 0 {
            if let Some(i) = crate::policy::common_header_name(name) {
                if self.pol.clean_header_names & (1 << i) != 0 {
                    return;
                }
            }
        }
        // Values found clean in an earlier request under this policy (crate::clean).
        let st = &mut *self.st;
        let memory = if st.record_all {
            None
        } else {
            st.clean.applies(kind, name)
        };
        if let Some(slot) = memory {
            if st.clean.contains(slot, kind, name, value) {
                st.clean.hits += 1;
                return;
            }
        }
        // The memory of this request next: a repeated (kind, name, value) has the same
        // candidate rules, so the keys of a JSON array of objects skip the rule selection too.
        if self.dedupe && !st.record_all && st.seen.check_insert(kind, name, value) {
            st.skipped += 1;
            return;
        }
        // A word no rule of its kind can match ([`crate::plain::PlainPlan::word_is_clean`]):
        // clear without selecting candidates.
        let mask = crate::transform::class_mask(value);
        let word_clean = !self.st.plain_off
            && !self.st.plain.any_kind
            && self
                .rs
                .plain
                .as_ref()
                .is_some_and(|pp| pp.word_is_clean(kind, value, mask));
        if !word_clean && !self.select(kind, name, json, false) {
            return;
        }
        let found = !word_clean && self.eval_masked(kind, name, json, value, mask);
        if let (false, Some(slot)) = (found, memory) {
            self.st.clean.remember(slot, kind, name, value);
        }
        if found && matches!(kind, Kind::Header | Kind::HeaderName) {
            // Not a clean block any more (the Cookie header is not part of it).
            self.st.block_ok &= name.eq_ignore_ascii_case(b"cookie");
        }
    }

    fn skips_repeats(&self) -> bool {
        // The condition under which `value` consults the request's memory.
        self.dedupe && !self.st.record_all
    }

    fn repeat(&mut self) {
        self.st.skipped += 1;
    }

    fn raw_body(&mut self, body: &[u8], parsed: bool) {
        if self.st.score < self.stop_at && self.select(Kind::Body, b"", false, parsed) {
            self.eval(Kind::Body, b"", false, body);
        }
    }

    fn headers_known(&mut self, headers: &http::HeaderMap) -> bool {
        let st = &mut *self.st;
        st.block_key.clear();
        st.block_ok = !st.record_all && st.clean.blocks_apply();
        if !st.block_ok {
            return false;
        }
        // Each header but Cookie, in order: name, NUL, the value's length, the value.
        for (name, value) in headers {
            if name == http::header::COOKIE {
                continue;
            }
            let v = value.as_bytes();
            st.block_key.extend_from_slice(name.as_str().as_bytes());
            st.block_key.push(0);
            st.block_key
                .extend_from_slice(&u32::try_from(v.len()).unwrap_or(u32::MAX).to_le_bytes());
            st.block_key.extend_from_slice(v);
            if st.block_key.len() > crate::clean::MAX_BLOCK {
                st.block_ok = false;
                return false;
            }
        }
        if st.clean.contains_block(&st.block_key) {
            st.clean.hits += 1;
            return true;
        }
        false
    }

    fn headers_done(&mut self) {
        let st = &mut *self.st;
        if st.block_ok {
            st.clean.remember_block(&st.block_key);
        }
    }
}

impl RuleSet {
    pub(crate) fn engine<'a>(&'a self, p: &'a Policy, st: &'a mut State) -> Engine<'a> {
        st.prepare(self);
        st.clean.bind(self.uid, p.uid);
        let stop_at = if p.mode == Mode::Block && !p.complete_matches && !st.record_all {
            p.threshold
        } else {
            u32::MAX
        };
        Engine {
            rs: self,
            pol: p,
            st,
            dedupe: true,
            stop_at,
        }
    }

    /// Bit `i` set when the header name `names[i]` matches no rule under `p` (see
    /// [`crate::policy::COMMON_HEADER_NAMES`]); every match is looked for, whatever the mode.
    pub(crate) fn clean_header_names(&self, p: &Policy, names: &[&[u8]]) -> u64 {
        let mut out = Inspection::new();
        out.st.record_all = true;
        let mut clean = 0u64;
        for (i, name) in names.iter().enumerate().take(64) {
            out.reset();
            let mut eng = self.engine(p, &mut out.st);
            eng.dedupe = false;
            eng.value(Kind::HeaderName, name, false, name);
            if out.st.matches.is_empty() && out.st.score == 0 {
                clean |= 1 << i;
            }
        }
        clean
    }

    /// Inspects the request head (method, path, query, headers, cookies). Starts a new
    /// request: `out` is reset first.
    pub fn inspect_head(
        &self,
        p: &Policy,
        req: &crate::request::RequestHead<'_>,
        out: &mut Inspection,
    ) {
        out.reset();
        if p.mode == Mode::Off {
            return;
        }
        request_host(req, &mut out.st.plain.host);
        let mut eng = self.engine(p, &mut out.st);
        eng.dedupe = false;
        crate::request::extract_head(req, &mut out.parse, &mut eng);
    }

    /// Inspects a (de-chunked) body, up to the policy's inspection limit. Call after
    /// [`RuleSet::inspect_head`] with the same `out`; scores add up. Never inlined: profiles
    /// (`examples/profile.rs`, callgrind's `--toggle-collect`) count it by name.
    #[inline(never)]
    pub fn inspect_body(
        &self,
        p: &Policy,
        content_type: Option<&[u8]>,
        body: &[u8],
        out: &mut Inspection,
    ) {
        if p.mode == Mode::Off {
            return;
        }
        let body = match body.get(..p.inspection_limit) {
            Some(b) if b.len() < body.len() => {
                out.st.over_limit = true;
                b
            }
            _ => body,
        };
        let truncated = out.st.over_limit;
        let mut eng = self.engine(p, &mut out.st);
        let err = crate::body::extract_body(content_type, body, &mut out.parse, &mut eng);
        if let Some(e) = err {
            if !truncated && out.st.body_error.is_none() {
                out.st.body_error = Some(e);
            }
        }
    }

    /// Evaluates one rule alone on one value (after the rule's transforms), through the same
    /// code path as requests. Used by embedded tests.
    pub(crate) fn eval_one(&self, rule: usize, value: &[u8], st: &mut State) -> Option<RuleMatch> {
        st.prepare(self);
        st.matched.reset(self.rules.len());
        st.matches.clear();
        st.score = 0;
        let chain = self.rules.get(rule)?.chain;
        st.cand.set(rule);
        st.chains.set(chain);
        let pol = Policy {
            ruleset_uid: self.uid,
            uid: 0, // a one-off policy: never bound to the header memory
            mode: Mode::Block,
            paranoia: 4,
            threshold: 1,
            inspection_limit: usize::MAX,
            over_limit: crate::policy::OverLimit::Reject,
            complete_matches: true,
            active: Bitset::full(self.rules.len()),
            excl: Vec::new(),
            clean_header_names: 0,
        };
        let mut eng = Engine {
            rs: self,
            pol: &pol,
            st,
            dedupe: true,
            stop_at: u32::MAX,
        };
        eng.st.plain.any_kind = true;
        eng.eval(Kind::Body, b"test", false, value);
        st.plain.any_kind = false;
        st.matches.pop()
    }
}

impl fmt::Display for RuleMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rule {} ({}, {}, +{}) on {}: {:?}",
            self.rule_id,
            self.class,
            self.severity.name(),
            self.score,
            self.target,
            self.matched
        )
    }
}

#[cfg(test)]
mod gate_tests {
    use super::xss_possible;
    use crate::ruleset::gate_tests::corpora_lines;
    use crate::transform::{apply_chain, Transform};

    /// The XSS gate never hides a detection: on every payload of both corpora, as written and
    /// after the decoding chains the shipped rules use, a value the detector flags passes the
    /// gate.
    #[test]
    fn xss_gate_never_hides_a_detection_on_the_corpora() {
        let payloads = corpora_lines();
        let chains: [&[Transform]; 3] = [
            &[],
            &[Transform::DecodeAll],
            &[
                Transform::DecodeAll,
                Transform::Lowercase,
                Transform::CompressWhitespace,
            ],
        ];
        let mut flagged = 0;
        for p in &payloads {
            for c in chains {
                let v = apply_chain(c, p);
                if palisade_detect::xss::detect(&v).is_some() {
                    flagged += 1;
                    assert!(
                        xss_possible(&v),
                        "gate hides {:?}",
                        String::from_utf8_lossy(&v)
                    );
                }
            }
        }
        assert!(flagged > 500, "only {flagged} detections checked");
    }

    /// The gates read from a class mask decide as the byte walks do, on every payload of both
    /// corpora and on random bytes: a value is sent to a detector by one exactly when by the
    /// other.
    #[test]
    fn masked_detector_gates_agree_with_the_byte_walks() {
        use super::{run_detector, run_detector_masked, Detector};
        use crate::transform::class_mask;
        let mut values = corpora_lines();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for n in 0..20_000usize {
            let mut v = Vec::with_capacity(n % 40);
            for _ in 0..n % 40 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Mostly word bytes, some of every other kind.
                let b = (x >> 24) as u8;
                v.push(if b < 160 {
                    b"aZ09_q"[usize::from(b % 6)]
                } else {
                    b
                });
            }
            values.push(v);
        }
        let mut flagged = 0;
        for v in &values {
            let m = class_mask(v);
            for d in [Detector::Sqli, Detector::Xss] {
                let (a, b) = (run_detector(d, v, b""), run_detector_masked(d, v, m, b""));
                assert_eq!(a, b, "{d:?} {:?}", String::from_utf8_lossy(v));
                flagged += usize::from(a.is_some());
            }
        }
        assert!(flagged > 1000, "only {flagged} detections");
    }

    /// The SQLi gate (`palisade_detect::sqli::possible`, checked inside `detect`) never hides
    /// a detection: on every payload of both corpora, as written and after the decoding chains
    /// the shipped rules use, a value that one of the three contexts flags passes the gate.
    #[test]
    fn sqli_gate_never_hides_a_detection_on_the_corpora() {
        use palisade_detect::{sqli, Context};
        let payloads = corpora_lines();
        let chains: [&[Transform]; 4] = [
            &[],
            &[
                Transform::UrlDecodeUni,
                Transform::HtmlEntityDecode,
                Transform::RemoveNulls,
            ],
            &[Transform::DecodeAll],
            &[
                Transform::DecodeAll,
                Transform::Lowercase,
                Transform::RemoveComments,
                Transform::CompressWhitespace,
            ],
        ];
        let (mut flagged, mut gated) = (0, 0);
        for p in &payloads {
            for c in chains {
                let v = apply_chain(c, p);
                let hit = [Context::NoQuote, Context::SingleQuote, Context::DoubleQuote]
                    .into_iter()
                    .any(|ctx| sqli::detect_in(&v, ctx).is_some());
                if hit {
                    flagged += 1;
                    assert!(
                        sqli::possible(&v),
                        "gate hides {:?}",
                        String::from_utf8_lossy(&v)
                    );
                } else if !sqli::possible(&v) {
                    gated += 1;
                }
            }
        }
        assert!(flagged > 1000, "only {flagged} detections checked");
        assert!(gated > 1000, "the gate skipped only {gated} values");
    }
}
