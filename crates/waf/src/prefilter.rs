//! Prefilters (gates) for regexes.
//!
//! From a regex's syntax tree we compute a [`Gate`]: a set of lowercase *factors* (byte strings
//! of at least [`MIN_FACTOR`] bytes, or two punctuation bytes such as `..` or `{{`, compared
//! ASCII-case-insensitively) and a set of byte
//! classes (see [`crate::transform::class`]) such that **every match of the regex contains one
//! of the factors or one byte of one of the classes**. The factors of every regex go into the
//! rule set's one Aho-Corasick automaton; the classes are checked against the value's class
//! mask, which the engine computes anyway. A regex runs only on values that pass its gate.
//!
//! Among the alternatives a concatenation offers (each of its parts is necessary), the gate
//! with the lowest expected cost is kept: long factors are cheap, rare punctuation (`<`, `;`,
//! `$`, `|`, `` ` ``, …) is cheap, common punctuation and whitespace cost more, letters and
//! digits are useless (every value has them). Regexes whose best gate is still too costly run
//! unfiltered, in the rule set's regex sets.
//!
//! Words between two word boundaries (`\b(?:or|and|xor)\b`) are kept apart as
//! [`Gate::words`]: the engine runs the regex only when one sits on word boundaries in the
//! value, so the `or` of `category`, `for` or `sort` runs nothing.
//!
//! A gate with byte classes gets a *second clause* when the regex has one
//! ([`Gate::second`]): factors and words alone, every match holding one of them too. `(`, `;`
//! and `$` open the gates of many benign values (a user agent's `(Windows NT 10.0; Win64;
//! x64)`); the second clause (`sleep`, `benchmark`, `if`, … for 1005) keeps most of them out.
//! Its two-byte factors are letters that are no common pair of English (`if`, not `on`) or
//! punctuation holding a rare byte (`<?`, not `:"`). A second clause alone never makes the
//! engine scan a value: unscanned, it is taken as met.
//!
//! Case folding: a class is read as a literal letter only when it is exactly `{x, X}` for an
//! ASCII letter; Unicode folds such as `ſ` (U+017F) for `s` or the Kelvin sign for `k` make the
//! class a non-literal, so the prefilter never hides a match the regex would find.

use regex_syntax::hir::{Class, Hir, HirKind};

use crate::transform::class;

/// Shortest factor that goes into the automaton.
pub(crate) const MIN_FACTOR: usize = 3;
const MAX_FACTORS: usize = 64;
/// Gates costing more than this are not worth checking: the regex runs unfiltered.
const MAX_COST: u32 = 60;
/// Cost of a useless alternative (letters, digits, anything at all).
const USELESS: u32 = 1000;

/// A necessary condition for a regex to match: one of `factors` or a byte of `classes`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Gate {
    /// Lowercase factors (each at least [`MIN_FACTOR`] bytes, or a punctuation pair; two bytes
    /// of any kind in a fallback gate, see [`gate`]).
    pub factors: Vec<Vec<u8>>,
    /// Byte classes ([`crate::transform::class`] bits).
    pub classes: u64,
    /// Lowercase words (ASCII letters, digits and `_` only) that a match holds *as words*: a
    /// match that holds none of the factors and no byte of the classes holds one of these with
    /// no ASCII letter, digit or `_` right before or after it (`\b(?:or|and)\b`: the `or` of
    /// `category` or `for` is no reason to run the regex). Not in `factors`.
    pub words: Vec<Vec<u8>>,
    /// A second necessary condition, of factors and words only, for a gate with classes: a
    /// match holds one of its factors or words (on word boundaries) *as well as* passing
    /// this gate. A value that passes on a class alone must pass this too.
    pub second: Option<Box<Gate>>,
}

impl Gate {
    fn cost(&self) -> u32 {
        self.cost_capped(MAX_FACTORS)
    }

    /// [`Gate::cost`] with `cap` factors allowed ([`Opts::uncapped`] lifts it).
    fn cost_capped(&self, cap: usize) -> u32 {
        let f: u32 = self
            .factors
            .iter()
            .chain(&self.words)
            .map(|s| match s.len() {
                0..=2 => 3,
                3 => 2,
                _ => 1,
            })
            .sum();
        let c = f.saturating_add(mask_cost(self.classes));
        if self.factors.len() + self.words.len() > cap {
            return USELESS;
        }
        c
    }

    fn union(mut self, other: Gate) -> Gate {
        self.factors.extend(other.factors);
        self.words.extend(other.words);
        self.classes |= other.classes;
        self
    }
}

/// Expected cost of a class mask: the sum of its bits' [`class_cost`].
fn mask_cost(mut mask: u64) -> u32 {
    let mut c = 0u32;
    while mask != 0 {
        let bit = mask & mask.wrapping_neg();
        mask &= mask - 1;
        c = c.saturating_add(class_cost(bit));
    }
    c
}

/// Expected cost of one class bit: how often benign values hold such a byte.
fn class_cost(bit: u64) -> u32 {
    use class::*;
    if bit & (UPPER | LOWER | DIGIT | LONG | HIGH | LOOKALIKE_LEAD) != 0 {
        return USELESS;
    }
    if bit == SPACE {
        return 20;
    }
    let common = class::of_all(b".-_,/:='\"");
    let medium = class::of_all(b"();&+%@?!*");
    if bit & common != 0 {
        10
    } else if bit & medium != 0 {
        5
    } else {
        2
    }
}

enum Info {
    /// The node matches exactly this (lowercased) string.
    Exact(Vec<u8>),
    /// Every match satisfies this gate.
    Need(Gate),
    /// Nothing useful is known.
    Nothing,
}

/// The bytes (< 0x80) a class can match, or `None` when it can match a byte >= 0x80 or more
/// than 128 bytes.
fn class_bytes(c: &Class) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    let ranges: Vec<(u32, u32)> = match c {
        Class::Unicode(u) => u
            .ranges()
            .iter()
            .map(|r| (r.start() as u32, r.end() as u32))
            .collect(),
        Class::Bytes(b) => b
            .ranges()
            .iter()
            .map(|r| (u32::from(r.start()), u32::from(r.end())))
            .collect(),
    };
    for (s, e) in ranges {
        if e >= 0x80 {
            return None;
        }
        bytes.extend((s..=e).filter_map(|x| u8::try_from(x).ok()));
    }
    Some(bytes)
}

/// Most characters of a small Unicode class read as alternatives.
const SMALL_CLASS: u32 = 16;

/// A small Unicode class holding characters >= U+0080 (`[〱〵ゝーｰ]`): each such character's
/// UTF-8 encoding is a factor when it is at least [`MIN_FACTOR`] bytes long, ASCII members are
/// byte classes. `None` when the class is large or holds a shorter non-ASCII character.
fn small_unicode_class(c: &Class) -> Option<Info> {
    let Class::Unicode(u) = c else { return None };
    let count: u32 = u
        .ranges()
        .iter()
        .map(|r| {
            (r.end() as u32)
                .saturating_sub(r.start() as u32)
                .saturating_add(1)
        })
        .sum();
    if count > SMALL_CLASS {
        return None;
    }
    let chars = u.ranges().iter().flat_map(|r| r.start()..=r.end());
    let mut gate = Gate::default();
    let mut only: Option<Vec<u8>> = None;
    for ch in chars {
        let mut buf = [0u8; 4];
        let enc = ch.encode_utf8(&mut buf).as_bytes();
        if ch.is_ascii() {
            gate.classes |= enc.iter().fold(0, |m, &b| m | class::of(b));
        } else if enc.len() >= MIN_FACTOR {
            gate.factors.push(enc.to_vec());
        } else {
            return None;
        }
        only = Some(enc.to_vec());
    }
    if count == 1 {
        return only.map(|o| Info::Exact(o.to_ascii_lowercase()));
    }
    Some(Info::Need(gate))
}

fn class_info(c: &Class, o: Opts) -> Info {
    let Some(bytes) = class_bytes(c) else {
        return match small_unicode_class(c) {
            Some(Info::Need(g)) if o.factors_only && g.classes != 0 => Info::Nothing,
            other => other.unwrap_or(Info::Nothing),
        };
    };
    match bytes.as_slice() {
        [one] => return Info::Exact(vec![one.to_ascii_lowercase()]),
        [a, b] if a.is_ascii_alphabetic() && a.eq_ignore_ascii_case(b) && a != b => {
            return Info::Exact(vec![a.to_ascii_lowercase()])
        }
        [] => return Info::Nothing,
        _ => {}
    }
    if o.factors_only {
        return Info::Nothing;
    }
    let classes = bytes.iter().fold(0u64, |m, &b| m | class::of(b));
    Info::Need(Gate {
        classes,
        ..Gate::default()
    })
}

/// True for a two-byte string of punctuation (`..`, `--`, `/*`, `{{`, `${`): rare enough in
/// benign text to be a factor although shorter than [`MIN_FACTOR`].
fn punct_pair(s: &[u8]) -> bool {
    s.len() == 2 && s.iter().all(u8::is_ascii_punctuation)
}

/// A short exact string as a gate: its rarest byte, or a factor when long enough (or a pair
/// of punctuation bytes).
fn exact_gate(s: &[u8], o: Opts) -> Option<Gate> {
    if s.len() >= MIN_FACTOR || two_bytes_ok(s, o) {
        return Some(Gate {
            factors: vec![s.to_vec()],
            classes: 0,
            ..Gate::default()
        });
    }
    if o.factors_only {
        return None;
    }
    let best = s
        .iter()
        .map(|&b| class::of(b))
        .min_by_key(|&c| class_cost(c))?;
    let by_class = Gate {
        factors: Vec::new(),
        classes: best,
        ..Gate::default()
    };
    if punct_pair(s) {
        let by_factor = Gate {
            factors: vec![s.to_vec()],
            classes: 0,
            ..Gate::default()
        };
        if by_factor.cost() < by_class.cost() {
            return Some(by_factor);
        }
    }
    Some(by_class)
}

/// The fifty most frequent letter pairs of English text (`th`, `on`, `in`, ...): never a
/// factor of a second clause, which would then pass on most prose.
const COMMON_PAIRS: &[&[u8; 2]] = &[
    b"th", b"he", b"in", b"er", b"an", b"re", b"on", b"at", b"en", b"nd", b"ti", b"es", b"or",
    b"te", b"of", b"ed", b"is", b"it", b"al", b"ar", b"st", b"to", b"nt", b"ng", b"se", b"ha",
    b"as", b"ou", b"io", b"le", b"ve", b"co", b"me", b"de", b"hi", b"ri", b"ro", b"ic", b"ne",
    b"ea", b"ra", b"ce", b"li", b"ch", b"ll", b"be", b"ma", b"si", b"om", b"ur",
];

/// Whether the two-byte string `s` is a factor under `o`: any two bytes in a fallback gate;
/// in a second clause, two letters that are not a common pair of English (`if`, not `on` or
/// the `2f` of `%2F`), or punctuation holding a rare byte (`<?`, not `:"`).
fn two_bytes_ok(s: &[u8], o: Opts) -> bool {
    s.len() == 2
        && if o.factors_only {
            (s.iter().all(u8::is_ascii_alphabetic)
                && !COMMON_PAIRS.iter().any(|p| p.eq_ignore_ascii_case(s)))
                || (punct_pair(s) && s.iter().any(|&b| class_cost(class::of(b)) <= 2))
        } else {
            o.short
        }
}

/// How a gate is looked for.
#[derive(Clone, Copy, Debug, Default)]
struct Opts {
    /// Two-byte strings of any bytes are factors too (a fallback gate, see [`gate`]).
    short: bool,
    /// Factors and words only, no byte classes (a second clause, see [`Gate::second`]); a
    /// two-byte factor only as [`two_bytes_ok`] says, a two-letter word always.
    factors_only: bool,
    /// No cap on the number of factors (only to tell a rule author that the cap dropped a
    /// gate, see [`capped`]).
    uncapped: bool,
}

impl Opts {
    /// Most factors and words a gate may hold.
    fn cap(self) -> usize {
        if self.uncapped {
            usize::MAX
        } else {
            MAX_FACTORS
        }
    }
}

/// Most first bytes a run is extended with (see [`extended_run_gate`]).
const MAX_EXTENSIONS: usize = 16;

/// The bytes one of which every match of `h` starts with, when `h` is a small class or a
/// repetition (at least once) of one: lowercased, deduplicated, at most [`MAX_EXTENSIONS`].
fn first_bytes(h: &Hir) -> Option<Vec<u8>> {
    match h.kind() {
        HirKind::Class(c) => {
            let mut b: Vec<u8> = class_bytes(c)?.iter().map(u8::to_ascii_lowercase).collect();
            b.sort_unstable();
            b.dedup();
            (!b.is_empty() && b.len() <= MAX_EXTENSIONS).then_some(b)
        }
        HirKind::Repetition(r) if r.min >= 1 => first_bytes(&r.sub),
        HirKind::Capture(c) => first_bytes(&c.sub),
        _ => None,
    }
}

/// A gate made of `run` followed by each first byte of `next` (every match holds one of these
/// strings), when each is long enough to be a factor.
fn extended_run_gate(run: &[u8], next: &Hir, o: Opts) -> Option<Gate> {
    if run.is_empty() {
        return None;
    }
    let firsts = first_bytes(next)?;
    let factors: Vec<Vec<u8>> = firsts
        .iter()
        .map(|&b| {
            let mut f = run.to_vec();
            f.push(b);
            f
        })
        .collect();
    factors
        .iter()
        .all(|f| f.len() >= MIN_FACTOR || (punct_pair(f) && !o.factors_only) || two_bytes_ok(f, o))
        .then_some(Gate {
            factors,
            ..Gate::default()
        })
}

fn better(o: Opts, a: Option<Gate>, b: Gate) -> Option<Gate> {
    match a {
        Some(a) if a.cost_capped(o.cap()) <= b.cost_capped(o.cap()) => Some(a),
        _ => Some(b),
    }
}

/// What every match of `h` needs, looked for as `o` says (see [`Opts`]).
fn info(h: &Hir, o: Opts) -> Info {
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => Info::Exact(Vec::new()),
        HirKind::Literal(l) => Info::Exact(l.0.iter().map(u8::to_ascii_lowercase).collect()),
        HirKind::Class(c) => class_info(c, o),
        HirKind::Capture(c) => info(&c.sub, o),
        HirKind::Repetition(r) => {
            if r.min == 0 {
                return Info::Nothing;
            }
            match info(&r.sub, o) {
                Info::Exact(s) if r.min == 1 && r.max == Some(1) => Info::Exact(s),
                // `x{2,}`: every match holds `x` repeated `min` times.
                Info::Exact(s) if r.min >= 2 && !s.is_empty() => {
                    let times = (r.min as usize).min(8usize.div_ceil(s.len()));
                    exact_gate(&s.repeat(times), o).map_or(Info::Nothing, Info::Need)
                }
                Info::Exact(s) => exact_gate(&s, o).map_or(Info::Nothing, Info::Need),
                Info::Need(n) => Info::Need(n),
                Info::Nothing => Info::Nothing,
            }
        }
        HirKind::Concat(children) => {
            let mut all_exact = true;
            let mut run: Vec<u8> = Vec::new();
            let mut best: Option<Gate> = None;
            for (i, child) in children.iter().enumerate() {
                // `\b(?:or|and)\b`: the words between two word boundaries.
                let bounded = i
                    .checked_sub(1)
                    .and_then(|j| children.get(j))
                    .is_some_and(is_word_boundary)
                    && children.get(i + 1).is_some_and(is_word_boundary);
                let child_info = match bounded.then(|| word_gate(child, o)).flatten() {
                    Some(g) => Info::Need(g),
                    None => info(child, o),
                };
                match child_info {
                    Info::Exact(s) => run.extend_from_slice(&s),
                    other => {
                        all_exact = false;
                        // `\.[\\/]+`: the run followed by each first byte of the child
                        // (`./`, `.\`) can be a sharper gate than the run alone.
                        if let Some(g) = extended_run_gate(&run, child, o) {
                            best = better(o, best, g);
                        }
                        if let Some(g) = exact_gate(&std::mem::take(&mut run), o) {
                            best = better(o, best, g);
                        }
                        if let Info::Need(n) = other {
                            best = better(o, best, n);
                        }
                    }
                }
            }
            if all_exact {
                return Info::Exact(run);
            }
            if let Some(g) = exact_gate(&run, o) {
                best = better(o, best, g);
            }
            best.map_or(Info::Nothing, Info::Need)
        }
        HirKind::Alternation(children) => {
            let mut gate = Gate::default();
            for child in children {
                let g = match info(child, o) {
                    Info::Exact(s) => match exact_gate(&s, o) {
                        Some(g) => g,
                        None => return Info::Nothing,
                    },
                    Info::Need(n) => n,
                    Info::Nothing => return Info::Nothing,
                };
                gate = gate.union(g);
                if gate.factors.len() > o.cap() {
                    return Info::Nothing;
                }
            }
            Info::Need(gate)
        }
    }
}

/// `\b` (ASCII or Unicode).
fn is_word_boundary(h: &Hir) -> bool {
    use regex_syntax::hir::Look;
    matches!(h.kind(), HirKind::Look(Look::WordAscii | Look::WordUnicode))
}

/// The gate of `h` when it stands between two word boundaries and matches one of a few exact
/// words (ASCII letters, digits, `_`): those words, each held as a word by every match (see
/// [`Gate::words`]). Two-letter words (`or`) count in a fallback gate and a second clause.
fn word_gate(h: &Hir, o: Opts) -> Option<Gate> {
    let alternatives: &[Hir] = match h.kind() {
        HirKind::Alternation(children) => children,
        HirKind::Capture(c) => return word_gate(&c.sub, o),
        _ => std::slice::from_ref(h),
    };
    let mut words = Vec::with_capacity(alternatives.len());
    for a in alternatives {
        let Info::Exact(w) = info(a, o) else {
            return None;
        };
        let wordy = w.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_');
        if !wordy || !(w.len() >= MIN_FACTOR || ((o.short || o.factors_only) && w.len() == 2)) {
            return None;
        }
        words.push(w);
    }
    (words.len() <= o.cap()).then_some(Gate {
        words,
        ..Gate::default()
    })
}

/// Cost up to which a gate found with two-byte factors is kept: a regex with no other gate
/// would run on every value.
const MAX_FALLBACK_COST: u32 = 150;

/// `pattern` as the rule set compiles it (bytes, not necessarily UTF-8; Unicode classes and
/// case folding as given), or `None` when it does not parse. A rule's regex is parsed here
/// once per mode at load and every analysis below reads that [`Hir`]: parsing is the larger
/// part of what each of them would cost on its own.
pub(crate) fn parse(pattern: &str, unicode: bool, fold: bool) -> Option<Hir> {
    regex_syntax::ParserBuilder::new()
        .utf8(false)
        .unicode(unicode)
        .case_insensitive(fold)
        .build()
        .parse(pattern)
        .ok()
}

/// The gate of `hir` (a regex parsed case-sensitively, [`parse`]), or `None` when the regex
/// must run unfiltered. A regex with no gate
/// of rare bytes or factors of three bytes (`\b(?:or|and|…)\b`, a long list of file names
/// whose only punctuation is common) gets one with two-byte factors and common bytes, if any:
/// `or` and `/` are frequent, but most values hold neither.
pub(crate) fn gate(hir: &Hir) -> Option<Gate> {
    let mut g = gate_of(hir, Opts::default(), MAX_COST).or_else(|| {
        let short = Opts {
            short: true,
            ..Opts::default()
        };
        gate_of(hir, short, MAX_FALLBACK_COST)
    })?;
    if g.classes != 0 {
        // A byte such as `(` or `;` opens the gate of many benign values (a user agent's
        // `(Windows NT 10.0; Win64; x64)`): a second necessary condition made of factors
        // alone, when there is one, keeps most of them out.
        let second = Opts {
            factors_only: true,
            ..Opts::default()
        };
        g.second = gate_of(hir, second, MAX_FALLBACK_COST).map(Box::new);
    }
    Some(g)
}

/// What the factor cap ([`MAX_FACTORS`]) dropped from the gate of `hir` (as for [`gate`]): `Some("gate")` when
/// the regex has no gate only because of it (it then runs on every value of its targets),
/// `Some("second clause")` when its byte-class gate lost the second clause of factors that
/// would keep most values out. A rule that lists many words is better split in two.
pub(crate) fn capped(hir: &Hir) -> Option<&'static str> {
    let over = |g: &Gate| g.factors.len() + g.words.len() > MAX_FACTORS;
    let (first, second) = match gate(hir) {
        None => (
            Opts {
                short: true,
                ..Opts::default()
            },
            "gate",
        ),
        Some(g) if g.classes != 0 && g.second.is_none() => (
            Opts {
                factors_only: true,
                ..Opts::default()
            },
            "second clause",
        ),
        Some(_) => return None,
    };
    // Within the same cost ceiling as `gate`'s last try: only the cap stood in the way.
    let open = Opts {
        uncapped: true,
        ..first
    };
    gate_of(hir, open, MAX_FALLBACK_COST)
        .filter(|g| over(g))
        .map(|_| second)
}

fn gate_of(hir: &Hir, o: Opts, max_cost: u32) -> Option<Gate> {
    let mut g = match info(hir, o) {
        Info::Exact(s) => exact_gate(&s, o)?,
        Info::Need(n) => n,
        Info::Nothing => return None,
    };
    if (g.factors.is_empty() && g.words.is_empty() && g.classes == 0)
        || g.cost_capped(o.cap()) > max_cost
    {
        return None;
    }
    g.factors.sort();
    g.factors.dedup();
    // A word that some match may hold without boundaries is a plain factor.
    g.words.sort();
    g.words.dedup();
    let factors = &g.factors;
    g.words.retain(|w| factors.binary_search(w).is_err());
    Some(g)
}

/// Byte classes every match of a regex holds, by top-level alternative: a text can hold a match
/// only when, for one term, its class mask ([`crate::transform::class_mask`]) meets every mask
/// of that term. `10001`'s `\)\s*\(\s*…=` needs `)`, `(` and `=` together, where its gate
/// ([`gate`]) can only say "`(` or `)` or …": prose with a parenthesis passes the gate, not
/// this. Letters and digits are never required (every text holds them); a class that can match
/// a byte >= 0x80 is not either.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Needs(Box<[Box<[u64]>]>);

/// Most terms kept: past this the check costs more than it saves.
const MAX_TERMS: usize = 24;

impl Needs {
    /// False when a text of class mask `mask` cannot hold a match.
    #[inline]
    pub(crate) fn allows(&self, mask: u64) -> bool {
        self.0.iter().any(|t| t.iter().all(|&m| m & mask != 0))
    }
}

/// A class mask worth requiring: not empty, no letter or digit in it.
fn informative(m: u64) -> Option<u64> {
    (m != 0 && m & (class::UPPER | class::LOWER | class::DIGIT) == 0).then_some(m)
}

/// The class bits a match of `c` can bring to a text: each byte's class, and for a non-ASCII
/// character the class of its UTF-8 lead byte, which every match of it holds (lead bytes grow
/// with the code point, so a range's leads are those from its first character's to its
/// last's).
fn class_mask_of(c: &Class) -> u64 {
    let lead = |ch: char| ch.encode_utf8(&mut [0u8; 4]).as_bytes().first().copied();
    let mut m = 0u64;
    match c {
        Class::Bytes(b) => {
            for r in b.ranges() {
                for x in r.start()..=r.end() {
                    m |= class::of(x);
                }
            }
        }
        Class::Unicode(u) => {
            for r in u.ranges() {
                for x in u32::from(r.start())..=u32::from(r.end()).min(0x7F) {
                    m |= u8::try_from(x).map_or(0, class::of);
                }
                if u32::from(r.end()) >= 0x80 {
                    let (lo, hi) = (lead(r.start().max('\u{80}')), lead(r.end()));
                    for b in lo.unwrap_or(0x80)..=hi.unwrap_or(0xFF) {
                        m |= class::of(b);
                    }
                }
            }
        }
    }
    m
}

/// The masks every match of `h` meets, each one (a conjunction; empty when nothing is known).
fn required(h: &Hir) -> Vec<u64> {
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => Vec::new(),
        HirKind::Literal(l) => {
            l.0.iter()
                .filter_map(|&b| informative(class::of(b)))
                .collect()
        }
        HirKind::Class(c) => informative(class_mask_of(c)).into_iter().collect(),
        HirKind::Capture(c) => required(&c.sub),
        HirKind::Repetition(r) if r.min == 0 => Vec::new(),
        HirKind::Repetition(r) => required(&r.sub),
        HirKind::Concat(children) => {
            let mut all: Vec<u64> = children.iter().flat_map(required).collect();
            all.sort_unstable();
            all.dedup();
            all
        }
        // One mask per alternative (its rarest), joined: every match meets one of them.
        HirKind::Alternation(children) => {
            let mut any = 0u64;
            for c in children {
                match required(c).into_iter().min_by_key(|&m| mask_cost(m)) {
                    Some(m) => any |= m,
                    None => return Vec::new(),
                }
            }
            vec![any]
        }
    }
}

/// The byte classes the matches of `hir` (parsed case-sensitively) need ([`Needs`]), or
/// `None` when some top-level alternative needs none.
pub(crate) fn needs(hir: &Hir) -> Option<Needs> {
    let mut h = hir;
    while let HirKind::Capture(c) = h.kind() {
        h = &c.sub;
    }
    let alternatives: &[Hir] = match h.kind() {
        HirKind::Alternation(children) => children,
        _ => std::slice::from_ref(h),
    };
    if alternatives.len() > MAX_TERMS {
        return None;
    }
    let mut terms = Vec::with_capacity(alternatives.len());
    for a in alternatives {
        let mut t = required(a);
        t.sort_unstable();
        t.dedup();
        if t.is_empty() {
            return None;
        }
        terms.push(t.into_boxed_slice());
    }
    Some(Needs(terms.into_boxed_slice()))
}

/// The bytes a match of an anchored regex can start with: `Some(set)` when every match of
/// `hir` (parsed with the rule's Unicode and case-folding modes) starts at the start of the
/// haystack and is not empty, so a haystack whose first byte is not in `set` (or an empty one)
/// cannot match. ASCII letters are always added in both cases, and any byte >= 0x80 when the
/// pattern can start with a non-ASCII character.
pub(crate) fn anchored_first_bytes(hir: &Hir) -> Option<[bool; 256]> {
    use regex_syntax::hir::Look;
    if !hir.properties().look_set_prefix().contains(Look::Start) {
        return None;
    }
    let mut set = [false; 256];
    if first_bytes_of(hir, &mut set) {
        // The regex can match the empty string: no byte is needed.
        return None;
    }
    for b in b'a'..=b'z' {
        let (lo, up) = (usize::from(b), usize::from(b.to_ascii_uppercase()));
        let either = set[lo] || set[up];
        set[lo] = either;
        set[up] = either;
    }
    Some(set)
}

/// Adds to `set` every byte a non-empty match of `h` can start with; returns true when `h`
/// can match the empty string. Look-around assertions consume nothing: they are read as empty
/// (which only makes the set larger).
fn first_bytes_of(h: &Hir, set: &mut [bool; 256]) -> bool {
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => true,
        HirKind::Literal(l) => match l.0.first() {
            Some(&b) => {
                set[usize::from(b)] = true;
                false
            }
            None => true,
        },
        HirKind::Class(c) => {
            match c {
                Class::Unicode(u) => {
                    for r in u.ranges() {
                        let (s, e) = (r.start() as u32, r.end() as u32);
                        for x in s..=e.min(0x7f) {
                            set[x as usize] = true;
                        }
                        if e >= 0x80 {
                            set[0x80..].iter_mut().for_each(|x| *x = true);
                        }
                    }
                }
                Class::Bytes(b) => {
                    for r in b.ranges() {
                        for x in r.start()..=r.end() {
                            set[usize::from(x)] = true;
                        }
                    }
                }
            }
            false
        }
        HirKind::Capture(c) => first_bytes_of(&c.sub, set),
        HirKind::Repetition(r) => {
            let empty = first_bytes_of(&r.sub, set);
            empty || r.min == 0
        }
        HirKind::Concat(children) => {
            for child in children {
                if !first_bytes_of(child, set) {
                    return false;
                }
            }
            true
        }
        HirKind::Alternation(children) => {
            let mut empty = false;
            for child in children {
                empty |= first_bytes_of(child, set);
            }
            empty
        }
    }
}

/// True when `hir` (a pattern parsed in ASCII mode, case-sensitively) treats every upper-case ASCII
/// letter like its lower-case one: no literal holds an upper-case letter, and every class that
/// holds one also holds its lower-case form. Then `(?i)pattern` matches a value exactly when
/// `pattern` matches the value's ASCII lowercasing.
pub(crate) fn case_closed(hir: &Hir) -> bool {
    fn walk(h: &Hir) -> bool {
        match h.kind() {
            HirKind::Empty | HirKind::Look(_) => true,
            HirKind::Literal(l) => !l.0.iter().any(u8::is_ascii_uppercase),
            HirKind::Class(c) => {
                let mut has = [false; 256];
                match c {
                    Class::Unicode(u) => {
                        for r in u.ranges() {
                            for x in (r.start() as u32)..=(r.end() as u32).min(255) {
                                has[x as usize] = true;
                            }
                        }
                    }
                    Class::Bytes(b) => {
                        for r in b.ranges() {
                            for x in r.start()..=r.end() {
                                has[usize::from(x)] = true;
                            }
                        }
                    }
                }
                (b'A'..=b'Z').all(|u| !has[usize::from(u)] || has[usize::from(u + 32)])
            }
            HirKind::Capture(c) => walk(&c.sub),
            HirKind::Repetition(r) => walk(&r.sub),
            HirKind::Concat(cs) | HirKind::Alternation(cs) => cs.iter().all(walk),
        }
    }
    walk(hir)
}

/// `hir` (a rule's regex parsed with its Unicode and case-folding modes) restricted to
/// haystacks made only of `allowed` bytes: every literal or class part outside them is
/// removed, with the parts of the pattern that need it. On a haystack of allowed bytes the
/// result matches exactly when `hir` does (look-around assertions are kept as they are;
/// characters from U+0080 on are kept when any byte >= 0x80 is allowed). `None` when no match
/// can be made of allowed bytes. Used by [`crate::plain`], which compiles the result as it is.
pub(crate) fn restrict(hir: &Hir, allowed: &[bool; 256]) -> Option<Hir> {
    use regex_syntax::hir::{ClassBytes, ClassBytesRange, ClassUnicode, ClassUnicodeRange};
    fn ranges(allowed: &[bool; 256], upto: usize) -> Vec<(u8, u8)> {
        let mut out: Vec<(u8, u8)> = Vec::new();
        for (b, &ok) in allowed.iter().enumerate().take(upto) {
            let b = b as u8;
            if !ok {
                continue;
            }
            match out.last_mut() {
                Some(last) if last.1.checked_add(1) == Some(b) => last.1 = b,
                _ => out.push((b, b)),
            }
        }
        out
    }
    fn walk(
        h: &Hir,
        allowed: &[bool; 256],
        bytes: &ClassBytes,
        chars: &ClassUnicode,
    ) -> Option<Hir> {
        Some(match h.kind() {
            HirKind::Empty | HirKind::Look(_) => h.clone(),
            HirKind::Literal(l) => {
                if !l.0.iter().all(|&b| allowed[usize::from(b)]) {
                    return None;
                }
                h.clone()
            }
            HirKind::Class(Class::Unicode(u)) => {
                let mut c = u.clone();
                c.intersect(chars);
                if c.ranges().is_empty() {
                    return None;
                }
                Hir::class(Class::Unicode(c))
            }
            HirKind::Class(Class::Bytes(bc)) => {
                let mut c = bc.clone();
                c.intersect(bytes);
                if c.ranges().is_empty() {
                    return None;
                }
                Hir::class(Class::Bytes(c))
            }
            HirKind::Capture(c) => walk(&c.sub, allowed, bytes, chars)?,
            HirKind::Repetition(rep) => match walk(&rep.sub, allowed, bytes, chars) {
                Some(sub) => Hir::repetition(regex_syntax::hir::Repetition {
                    min: rep.min,
                    max: rep.max,
                    greedy: rep.greedy,
                    sub: Box::new(sub),
                }),
                None if rep.min == 0 => Hir::empty(),
                None => return None,
            },
            HirKind::Concat(children) => Hir::concat(
                children
                    .iter()
                    .map(|c| walk(c, allowed, bytes, chars))
                    .collect::<Option<Vec<_>>>()?,
            ),
            HirKind::Alternation(children) => {
                let kept: Vec<Hir> = children
                    .iter()
                    .filter_map(|c| walk(c, allowed, bytes, chars))
                    .collect();
                if kept.is_empty() {
                    return None;
                }
                Hir::alternation(kept)
            }
        })
    }
    let bytes = ClassBytes::new(
        ranges(allowed, 256)
            .into_iter()
            .map(|(a, b)| ClassBytesRange::new(a, b)),
    );
    let mut chars = ClassUnicode::new(
        ranges(allowed, 128)
            .into_iter()
            .map(|(a, b)| ClassUnicodeRange::new(char::from(a), char::from(b))),
    );
    if allowed[0x80..].iter().any(|&a| a) {
        chars.union(&ClassUnicode::new([ClassUnicodeRange::new(
            '\u{80}',
            char::MAX,
        )]));
    }
    walk(hir, allowed, &bytes, &chars)
}

/// Necessary factors of `pattern` alone (no byte classes), or `None`. Kept for tests and
/// tools that show what the automaton holds.
#[cfg(test)]
pub(crate) fn factors(pattern: &str, unicode: bool) -> Option<Vec<Vec<u8>>> {
    gate(&parse(pattern, unicode, false)?)
        .filter(|g| g.classes == 0)
        .map(|g| g.factors)
}

#[cfg(test)]
mod tests {
    use super::{factors, Gate};
    use crate::transform::class;
    use regex_syntax::hir::Hir;

    /// `p` parsed case-sensitively, as the gates read a rule's regex.
    fn parsed(p: &str, unicode: bool) -> Hir {
        super::parse(p, unicode, false).expect("the pattern parses")
    }

    fn gate(p: &str, unicode: bool) -> Option<Gate> {
        super::gate(&parsed(p, unicode))
    }

    fn needs(p: &str, unicode: bool) -> Option<super::Needs> {
        super::needs(&parsed(p, unicode))
    }

    /// `super::restrict` of `p` parsed in these modes, written out.
    fn restrict(p: &str, unicode: bool, fold: bool, allowed: &[bool; 256]) -> Option<String> {
        let hir = super::parse(p, unicode, fold).expect("the pattern parses");
        super::restrict(&hir, allowed).map(|h| h.to_string())
    }

    fn f(p: &str) -> Option<Vec<String>> {
        factors(p, true).map(|v| {
            v.into_iter()
                .map(|s| String::from_utf8_lossy(&s).into_owned())
                .collect()
        })
    }

    fn bits(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0, |m, &b| m | class::of(b))
    }

    #[test]
    fn restrict_to_letters_digits_spaces() {
        let mut plain = [false; 256];
        for b in (b'a'..=b'z').chain(b'A'..=b'Z').chain(b'0'..=b'9') {
            plain[usize::from(b)] = true;
        }
        plain[usize::from(b' ')] = true;
        let m = |p: &str| restrict(p, false, false, &plain).is_some();
        assert!(m(r"\bunion\s+select\b"));
        assert!(m(r"(?:cat|ls)(?:\s|$)"));
        assert!(!m(r"/etc/passwd"));
        assert!(!m(r"<script"));
        assert!(m(r"<script|alert\s*1"));
        assert!(!m(r"[;|&]\s*id"));
        assert!(m(r"x(?:[;|&])?y"));
        // `.` and `\w` hold allowed bytes; `[^a-z]` still holds digits and the space.
        assert!(m(r"a.b"));
        assert!(m(r"[^a-z]"));
        assert!(!m(r"[^a-zA-Z0-9 ]"));
        // Unicode classes: only their ASCII part can be allowed here.
        assert!(restrict(r"\p{Greek}", true, false, &plain).is_none());
        assert!(restrict(r"\p{L}", true, false, &plain).is_some());
        // The restricted pattern keeps only what plain text can match, and still compiles.
        let r = restrict(r"(?:^|[;|&])\s*(?:cat|ls)\b|<x>", false, true, &plain)
            .expect("cat and ls stay");
        let re = regex::bytes::Regex::new(&r).expect("compiles");
        assert!(re.is_match(b"CAT file"));
        assert!(re.is_match(b"ls"));
        assert!(!re.is_match(b"concat"));
    }

    #[test]
    fn case_insensitive_words_become_factors() {
        assert_eq!(
            f(r"(?i)\bunion\b.{0,100}\bselect\b"),
            Some(vec!["union".into()])
        );
        // `s` folds to U+017F under Unicode case folding: the class is not a literal.
        assert_eq!(f(r"(?i)select"), Some(vec!["elect".into()]));
        // With Unicode off (how rules are compiled when they can be), `s` is just `[sS]`.
        assert_eq!(
            factors(r"(?i)select", false),
            Some(vec![b"select".to_vec()])
        );
    }

    #[test]
    fn alternations_union_their_factors() {
        assert_eq!(
            f(r"(?:/etc/passwd|/etc/shadow)"),
            Some(vec!["/etc/passwd".into(), "/etc/shadow".into()])
        );
        assert_eq!(f(r"a|bcd"), None);
    }

    #[test]
    fn optional_parts_are_not_factors() {
        assert_eq!(f(r"(?:abc)?x"), None);
        assert_eq!(f(r"(?:abc)+x"), Some(vec!["abc".into()]));
        assert_eq!(f(r"[a-z]+"), None);
    }

    #[test]
    fn rare_bytes_gate_regexes_without_factors() {
        // Every match holds `<`.
        assert_eq!(
            gate(r"<\s*[a-z]+[^\w\s>]", false),
            Some(Gate {
                factors: vec![],
                classes: bits(b"<"),
                ..Gate::default()
            })
        );
        // A small class: one of its bytes.
        assert_eq!(
            gate(r"[;|`]\s*[a-z]+", false),
            Some(Gate {
                factors: vec![],
                classes: bits(b";|`"),
                ..Gate::default()
            })
        );
        // Factors and bytes mixed through an alternation.
        assert_eq!(
            gate(r"\$\{ifs\}|\bwhich\s|[;|]", false),
            Some(Gate {
                factors: vec![b"${ifs}".to_vec(), b"which".to_vec()],
                classes: bits(b";|"),
                ..Gate::default()
            })
        );
        // A pair of common punctuation is a factor (`..`, also from `\.{2,}`); a pair holding a
        // rare byte stays that byte.
        assert_eq!(
            gate(r"\.{2,}[\\/]", false),
            Some(Gate {
                factors: vec![b"..".to_vec()],
                classes: 0,
                ..Gate::default()
            })
        );
        assert_eq!(
            gate(r"'\s*--", false),
            Some(Gate {
                factors: vec![b"--".to_vec()],
                classes: 0,
                ..Gate::default()
            })
        );
        // Short strings use their rarest byte (and the pair, rare too, is a second clause).
        assert_eq!(
            gate(r"\$\(\s*id", false),
            Some(Gate {
                factors: vec![],
                classes: bits(b"$"),
                second: Some(Box::new(Gate {
                    factors: vec![b"$(".to_vec()],
                    ..Gate::default()
                })),
                ..Gate::default()
            })
        );
    }

    #[test]
    fn a_run_is_extended_by_the_first_bytes_of_a_small_class() {
        // `.` alone would be a common byte; `./` and `.\` are rare pairs.
        assert_eq!(
            gate(r"(?:^|[\\/])(?:\.[\\/]+){2,}", false),
            Some(Gate {
                factors: vec![b"./".to_vec(), b".\\".to_vec()],
                classes: 0,
                ..Gate::default()
            })
        );
        // `0x` then a hex digit: sixteen three-byte factors.
        let g = gate(r"(?:[=(,\s]|^)0x[0-9a-f]{6,}\b", false).expect("gated");
        assert_eq!(g.factors.len(), 16);
        assert!(g.factors.contains(&b"0xf".to_vec()));
    }

    #[test]
    fn small_unicode_classes_give_factors() {
        assert_eq!(
            gate(r"[〱〵]x|[\\/]{2}", true),
            Some(Gate {
                factors: vec!["〱".as_bytes().to_vec(), "〵".as_bytes().to_vec()],
                classes: bits(b"/\\"),
                ..Gate::default()
            })
        );
        // A two-byte character cannot be a factor.
        assert_eq!(gate(r"[éè]", true), None);
    }

    #[test]
    fn anchored_first_bytes() {
        let afb = |p: &str, unicode: bool, fold: bool| {
            super::anchored_first_bytes(&super::parse(p, unicode, fold).expect("parses"))
        };
        let set = afb(r#"^[\s'"]*(?:cat|ls)\b|^\s*/bin/"#, false, false).expect("anchored");
        let on: Vec<u8> = (0..=255u8).filter(|&b| set[usize::from(b)]).collect();
        let mut want = b"\t\n\x0b\x0c\r \"'/CLcl".to_vec();
        want.sort_unstable();
        assert_eq!(on, want);
        // Not anchored in every alternative, or able to match the empty string: no test.
        assert_eq!(afb(r"x|^y", false, false), None);
        assert_eq!(afb(r"^a*", false, false), None);
        assert_eq!(afb(r"^(?:a|)", false, false), None);
        assert_eq!(afb(r"(?m)^a", false, false), None);
        // Unicode case folding: `k` also starts the Kelvin sign (U+212A, `E2 84 AA`).
        let set = afb(r"(?i)^k", true, false).expect("anchored");
        assert!(set[usize::from(b'k')] && set[usize::from(b'K')] && set[0xe2]);
        let set = afb(r"^k", false, true).expect("anchored");
        assert!(set[usize::from(b'K')] && !set[0xe2]);
    }

    proptest::proptest! {
        /// A regex that matches always passes its first-byte test (random values over the
        /// bytes the patterns talk about).
        #[test]
        fn anchored_first_bytes_never_hide_a_match(
            v in proptest::collection::vec(proptest::sample::select(
                b" \t'\"/\\;|&`catlsCATLSkK\xe2\x84\xaa0x-".to_vec()), 0..12),
        ) {
            for (p, unicode, fold) in [
                (r#"^[\s'"]*(?:cat|ls)\b"#, false, false),
                (r"^\s*(?:[;|&`]+\s*)+$", false, false),
                (r#"^[ \t]*(?:[;|&'"][ \t]*)+$|^/"#, false, false),
                (r"(?i)^\s*k", true, false),
                (r"^(?:a?b*)?c|^x?-", false, false),
                (r"^[\\/]+\w", false, true),
            ] {
                let re = regex::bytes::RegexBuilder::new(p)
                    .unicode(unicode)
                    .case_insensitive(fold)
                    .build()
                    .expect("regex");
                let hir = super::parse(p, unicode, fold).expect("the pattern parses");
                let Some(set) = super::anchored_first_bytes(&hir) else {
                    continue;
                };
                if re.is_match(&v) {
                    proptest::prop_assert!(
                        v.first().is_some_and(|&b| set[usize::from(b)]),
                        "{} matches {:?}", p, v
                    );
                }
            }
        }
    }

    /// Words between two word boundaries are marked as words; a word some match may hold
    /// without a boundary on either side is a plain factor.
    #[test]
    fn words_between_word_boundaries() {
        let g = gate(r"(?:\b(?:or|and|xor)\b|\|\||&&)\s*\d+", false).expect("gated");
        assert_eq!(
            g.words,
            vec![b"and".to_vec(), b"or".to_vec(), b"xor".to_vec()]
        );
        assert_eq!(g.factors, vec![b"&&".to_vec(), b"||".to_vec()]);
        // One side only: not a word.
        let g = gate(r"\b(?:union|select)\s", false).expect("gated");
        assert_eq!(g.factors, vec![b"select".to_vec(), b"union".to_vec()]);
        assert!(g.words.is_empty());
        // `or\w*` is no exact word; `or` held both ways stays a factor.
        let g = gate(r"\b(?:or\w*|and)\b", false);
        assert!(g.is_none_or(|g| g.words.is_empty()));
        let g = gate(r"\bunion\b|union\d", false).expect("gated");
        assert_eq!(g.factors, vec![b"union".to_vec()]);
        assert!(g.words.is_empty());
        // Punctuation is no word byte: `\b` next to it means something else.
        let g = gate(r"\b(?:or|a-b)\b", true);
        assert!(g.is_none_or(|g| g.words.is_empty()));
    }

    /// A gate with classes gets a second clause of factors and words when the regex has one:
    /// letters that are no common English pair count, common pairs and common punctuation
    /// do not.
    #[test]
    fn second_clauses_of_factors() {
        type Clause = (Vec<Vec<u8>>, Vec<Vec<u8>>);
        let second = |re: &str| -> Option<Clause> {
            let g = gate(re, false).expect("gated");
            assert_ne!(g.classes, 0, "{re}: a gate with classes");
            g.second.map(|s| (s.factors, s.words))
        };
        assert_eq!(
            second(r"(?:^|['\d])\s*;\s*(?:select|drop|if\s*\()\b"),
            Some((
                vec![b"drop".to_vec(), b"if".to_vec(), b"select".to_vec()],
                vec![]
            ))
        );
        // Words keep their boundaries.
        assert_eq!(
            second(r";\s*\b(?:ls|whoami)\b"),
            Some((vec![], vec![b"ls".to_vec(), b"whoami".to_vec()]))
        );
        // `on` is in most English sentences, `:"` in every JSON body: no second clause.
        assert_eq!(second(r"[\s/]on[a-z]+\s*="), None);
        assert_eq!(second(r#"<\s*:"\s*\w"#), None);
        // Any byte class in an alternative leaves the alternation without factors.
        assert_eq!(second(r";\s*(?:select|[|&])"), None);
    }

    #[test]
    fn case_closed_patterns() {
        // As the rule set asks: parsed in ASCII mode, case-sensitively (a pattern that needs
        // Unicode does not parse so and is not folded).
        let case_closed =
            |p: &str| super::parse(p, false, false).is_some_and(|h| super::case_closed(&h));
        assert!(case_closed(r"union\s+select|[a-z_]+\(|\S+\W|[^\w.>$-]"));
        // `[^a-z]` holds `A`-`Z` but not `a`-`z`: conservatively not folded (how `(?i)` treats
        // a class cannot be read back from the parsed class alone).
        assert!(!case_closed(r"[^a-z]"));
        assert!(!case_closed(r"[A-Z]{3}"));
        assert!(!case_closed(r"O:\d+"));
        assert!(!case_closed(r"\p{Lu}"), "needs Unicode: not folded");
    }

    #[test]
    fn letters_digits_and_negated_classes_are_useless() {
        assert_eq!(gate(r"[a-z]{3}\d+", false), None);
        assert_eq!(gate(r"[^\s`]`", false).map(|g| g.classes), Some(bits(b"`")));
        assert_eq!(gate(r".", false), None);
    }

    /// Two-byte factors and common bytes gate only a regex that would otherwise run on every
    /// value.
    #[test]
    fn short_factors_only_when_nothing_else_gates() {
        let g = gate(r"\bor\b|=", false).expect("a fallback gate");
        assert_eq!(g.words, vec![b"or".to_vec()]);
        assert!(g.factors.is_empty());
        assert_eq!(g.classes, bits(b"="));
        // A factor of three bytes is there: `or` is not needed.
        let g = gate(r"\bor\b\s+union", false).expect("a gate");
        assert_eq!(g.factors, vec![b"union".to_vec()]);
        // Letters alone still gate nothing.
        assert_eq!(gate(r"\b[a-z]{2}\b", false), None);
    }

    #[test]
    fn needed_classes_by_alternative() {
        use crate::transform::class_mask;
        // 10001's first alternative needs `)`, `(` and `=` together: prose with parentheses
        // fails it, a filter breakout passes.
        let n = needs(r"\)\s*\(\s*[|&!]?\s*[\w.-]+\s*[~<>]?=|\*\s*\)", false).expect("needs");
        assert!(!n.allows(class_mask(b"Deliver to reception (2nd floor), thanks")));
        assert!(n.allows(class_mask(b"x)(uid=*")));
        assert!(n.allows(class_mask(b"admin*)")));
        assert!(
            !n.allows(class_mask(b"admin*")),
            "`*` alone meets no alternative"
        );
        // Optional parts, letters and digits are never needed; an alternative of letters
        // alone makes the regex need nothing.
        let n = needs(r"a;?b\(", false).expect("needs");
        assert!(n.allows(class_mask(b"ab(")));
        assert!(needs(r"\bunion\b|<script", false).is_none());
        // A nested alternation needs one of its branches' bytes.
        let n = needs(r"x(?:<|>)y", false).expect("needs");
        assert!(n.allows(class_mask(b"x>y")) && n.allows(class_mask(b"x<y")));
        assert!(!n.allows(class_mask(b"xy")));
        // A class that can match a letter or a digit is not needed.
        assert!(needs(r"[^a-z]", true).is_none());
        // A class of non-ASCII characters needs their UTF-8 lead bytes' classes: a text of
        // ASCII alone cannot match (rule 16002's `[〱〵ゝーｰ]`, leads 0xE3 and 0xEF).
        let n = needs(r"^\s*/?[〱〵ゝーｰ][a-z0-9]", true).expect("needs");
        assert!(n.allows(class_mask("〱x".as_bytes())) && n.allows(class_mask("ｰ1".as_bytes())));
        assert!(!n.allows(class_mask(b"ngozi.okafor3@example.org")));
        // A range's lead bytes run from its first character's to its last's: U+0800-U+FFFF
        // leads with 0xE0 (an overlong lead's class) through 0xEF (a lookalike lead's).
        let n = needs(r"[\x{0800}-\x{FFFF}]", true).expect("needs");
        for lead in [&b"\xE0"[..], b"\xE2", b"\xE5", b"\xEF"] {
            assert!(n.allows(class_mask(lead)), "{lead:?}");
        }
        // Bytes >= 0x80 in a byte class count with their own classes.
        let n = needs(r"x[\xC0\xC1]", false).expect("needs");
        assert!(n.allows(class_mask(b"x\xC0")) && !n.allows(class_mask(b"x\xC3")));
    }
}
