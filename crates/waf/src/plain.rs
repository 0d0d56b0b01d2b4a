//! The fast path for ordinary values: those no decoding transform of the rule set can change.
//!
//! Most values an API receives are ordinary: names, titles, notes, tags, e-mail addresses,
//! enumerations, numbers, search words. For such a value the general evaluation
//! ([`crate::inspect`]) still computes each chain's variant (lowercased, whitespace removed,
//! compressed, `cmd_line`), scans every distinct variant for all phrases and regex factors, and
//! keeps its per-rule bitsets up to date: several thousand instructions for a 25-byte title.
//! This module decides, with far less work, that such a value matches no rule; a value it
//! cannot clear goes through the general evaluation unchanged, so findings (and `explain`) are
//! exactly what they were.
//!
//! **Which values.** A value is *eligible* when its bytes trigger (see
//! [`crate::transform::Transform::trigger`]) no transform of the rule set's chains except
//! these, which only change letter case, spaces and the bytes `cmd_line` deletes or turns into
//! spaces (`"`, `'`, `^`, `,`, `;`): `lowercase`; `compress_whitespace` / `remove_whitespace`
//! (plain spaces only: tabs, newlines and no-break spaces are excluded); `cmd_line`;
//! `remove_comments` / `replace_comments` (`-`, `/`, `*` and `#` with no `/*` or `*/`, and no
//! newline after a line comment marker: a `--`, `//` or `#` then cuts the value, the rest of
//! the line is the comment); `base64_decode_detect` / `decode_all` on a value with no run they
//! could decode (`may_decode`); `html_entity_decode` / `decode_all` on a value none of whose
//! `&` starts a reference they decode (`Tom & Jerry`, `a&&b`, `?x=1&size=2`:
//! [`crate::transform::html_entity_decode::inert`]). Excluded bytes are computed from the rule
//! set's chains at load time ([`PlainPlan::build`] gives up when a chain could build a
//! decodable run or a comment marker from deleted bytes, and excludes `&` when one could join
//! it to a name). With the shipped rules, letters, digits, spaces, `.` `@` `_` `-` `/` `'` `,`
//! `;` `:` `=` `!` `?` `(` `)` `#`, an inert `&`, line comments and UTF-8 letters are all
//! eligible (so are paths, URLs and most user agents); `\`, tabs and newlines are not.
//! Each check past the byte classes is made only when a candidate rule has a transform it
//! speaks for (no entity decoder among them: any `&` will do).
//!
//! **URL-encoded values.** When every chain with a URL decoder (`url_decode_uni`,
//! `url_decode_repeat`, `decode_all`) starts with it, a value with `%` or `+`
//! (`items%3A3%2Ctotal%3A129.90`, `q=laptop+bag&page=2`) is eligible through its decoding
//! `D`: `D` must be *final* (no `%`, `+`, `\` or overlong lead byte, so no decoder changes it
//! again) and eligible itself (no base64 run, inert `&`: `decode_all`'s other steps change
//! nothing). The three decoders then all give `D`, the chains that start with one read `D`
//! (and go on from it), the others read the value itself, which must be eligible for them.
//! `D` is scanned with every pattern, the value with those of the rules that read it alone.
//!
//! Why it is exact:
//!
//! * **Variants.** Every variant of an eligible value, once lowercased and stripped of the
//!   *skipped* bytes (space, `"`, `'`, `^`, `,`, `;`), is a prefix of the value's own
//!   *canonical form* (the same operation on the value): equal to it, or cut where a comment
//!   transform found a line comment (`https:` of `https://x`, `1 ` of `1 -- note`). The other
//!   transforms change case and skipped bytes only, so the text before a marker keeps its
//!   canonical form; no chain deletes bytes before a comment transform (they could join a
//!   marker: [`PlainPlan::build`]).
//!   A URL-encoded value has two sources, the value and `D`: each variant is a prefix of the
//!   canonical form of the one its chain reads, and class gates see the bytes of both.
//! * **Phrases and factors.** If a phrase or a regex factor occurs in a variant, its canonical
//!   form occurs in the value's canonical form (in a prefix of it). One scan of the value with
//!   a scanner of the canonical patterns (skipped bytes leave its state alone, case folded:
//!   [`crate::scan::Scanner::skipping`]) finds every such pattern; a pattern holding an
//!   excluded byte cannot occur and is left out. A candidate rule's phrase seen there sends the
//!   value to the general evaluation; a factor seen there runs that rule's regex here. A
//!   word of a regex's gate ([`crate::prefilter::Gate::words`]) runs it only when no ASCII
//!   letter, digit or `_` touches it in the value: the transforms of an eligible value cannot
//!   put a non-word byte between a word and a word byte next to it (see [`as_word`]).
//!   A regex let through by a class of its gate runs only when the scan saw a factor (or
//!   word) of its second clause too, if it has one ([`crate::prefilter::Gate::second`]).
//! * **Regexes that need no factor** (unfiltered, or gated by a byte class the value has) run
//!   here on their own chain's variant, restricted to the eligible bytes
//!   ([`crate::prefilter::restrict`]: the same matches on such a haystack, smaller automata);
//!   the unfiltered ones in one set when they read the value as it is. A regex no eligible
//!   haystack can match never runs. Detectors run here too.
//! * Negated rules (which fire when nothing matches) send the value to the general evaluation.
//!
//! The tests below compare both paths on every payload of both corpora.

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson;
use regex_automata::Input;
use regex_syntax::hir::Hir;

use crate::bitset::Bitset;
use crate::ruleset::{Matcher, PatEntry, PatKind, Rule};
use crate::scan::Scanner;
use crate::target::{Kind, KINDS};
use crate::transform::{base64_decode_detect, class, class_mask, html_entity_decode, Transform};

/// The class bits of a numeric value: digits, `.` and `-`.
const NUMERIC: u64 = class::DIGIT | class::DOT | class::DASH;

/// Bytes the canonical form leaves out (see the module doc).
pub(crate) const SKIPPED: &[u8] = b" \"'^,;";

/// The class bits a transform may be triggered by in an eligible value, and what it does then.
fn tolerated(t: Transform) -> u64 {
    use class::*;
    match t {
        Transform::Lowercase => UPPER,
        Transform::CompressWhitespace | Transform::RemoveWhitespace => SPACE,
        Transform::CmdLine => UPPER | SPACE | CMD,
        // With no `/*` or `*/`, and no newline after a `--`, `//` or `#`: nothing to remove,
        // or the rest of the value (see the module doc).
        Transform::RemoveComments | Transform::ReplaceComments => DASH | SLASH | STAR | HASH,
        // With every `&` inert (no reference it would decode: `Tom & Jerry`): nothing.
        Transform::HtmlEntityDecode => AMP,
        Transform::Base64DecodeDetect => LONG,
        // First in its chain, on a value whose URL decoding is final and eligible (see the
        // module doc): the value becomes that decoding.
        Transform::UrlDecodeUni | Transform::UrlDecodeRepeat => PCT | PLUS,
        Transform::DecodeAll => LONG | AMP | PCT | PLUS,
        _ => 0,
    }
}

/// The regex rules of one transform chain, as one lazy DFA ([`PlainPlan::groups`]).
#[derive(Debug)]
struct Group {
    /// `None` when it could not be built (the members then run each on its own).
    dfa: Option<DFA>,
    members: Bitset,
}

/// The groups of a plan, built on a thread of their own after the plan (their DFAs cost
/// about a tenth of the rule set's compile, which stays on the caller's thread): until they
/// are ready, no group is asked and every rule runs on its own, with the same answers.
type Groups = std::sync::Arc<std::sync::OnceLock<Vec<Group>>>;

/// [`PlainPlan::group_of`] of a rule in no group.
const NO_GROUP: u8 = u8::MAX;
/// Fewest regex rules of a chain for a group: with the shipped rules, the two chains that
/// have more (45 rules of `decode_all, lowercase`, 11 of the SQL grammar chain) account for
/// the whole gain; groups of the chains with two to six rules saved nothing measurable (two of
/// them are rarely due on one value) and cost 4 ms of compile time.
const MIN_GROUP: usize = 8;
/// Highest group tag (a value's walk marks the groups it asked in one `u64`).
const LAST_GROUP: u8 = 63;

/// The restricted unfiltered regexes of one target kind in one set.
#[derive(Debug)]
struct RunSet {
    set: regex::bytes::RegexSet,
    /// The same patterns as one lazy DFA (answers "any match?").
    dfa: Option<DFA>,
    /// The rule of each pattern.
    members: Vec<u32>,
    /// The same rules as a set.
    bits: Bitset,
}

/// A lazy DFA over bytes (not only UTF-8) of the parsed regexes `hirs` (their Unicode and
/// case-folding modes are in the [`Hir`]: nothing is parsed again), its cache capped at `cache`
/// bytes, for "is there a match?".
fn build_lazy(hirs: &[&Hir], cache: usize) -> Option<DFA> {
    let nfa = thompson::Compiler::new()
        .configure(
            thompson::Config::new()
                .utf8(false)
                // A DFA has no use for captures (what `hybrid::dfa::Builder::build_many`
                // sets too).
                .which_captures(thompson::WhichCaptures::None),
        )
        .build_many_from_hir(hirs)
        .ok()?;
    DFA::builder()
        .configure(
            DFA::config()
                .unicode_word_boundary(true)
                .cache_capacity(cache),
        )
        .build_from_nfa(nfa)
        .ok()
}

/// The lazy DFA of restricted regexes ([`crate::prefilter::restrict`]), for "is there a
/// match?".
fn lazy_dfa(hirs: &[&Hir]) -> Option<DFA> {
    build_lazy(hirs, 1 << 20)
}

/// The lazy DFA of one rule's own regex (`hir`: as written, parsed with the rule's Unicode and
/// case-folding modes), for the general evaluation's "any match?". Its cache is capped at
/// 256 KB (a value that needs more states clears it and goes on, or the DFA gives up and the
/// regex answers): one per regex rule per accumulator, so the cap bounds what hostile values
/// can make an accumulator hold.
pub(crate) fn lazy_dfa_of(hir: &Hir) -> Option<DFA> {
    build_lazy(&[hir], 256 << 10)
}

/// Haystacks longer than this go to the regex, whose literal prefilters skip through long
/// texts faster than the lazy DFA walks them.
const LAZY_MAX: usize = 256;

/// Asks `dfa` (with its cache in `slot`) whether `hay` holds a match; `None` when the lazy DFA
/// gives up (a Unicode word boundary next to a non-ASCII byte) or `hay` is long, and the
/// caller asks the regex.
#[inline]
pub(crate) fn lazy_match(dfa: &DFA, slot: Option<&mut Option<Cache>>, hay: &[u8]) -> Option<bool> {
    if hay.len() > LAZY_MAX {
        return None;
    }
    let cache = slot?.get_or_insert_with(|| dfa.create_cache());
    dfa.try_search_fwd(cache, &Input::new(hay).earliest(true))
        .ok()
        .map(|m| m.is_some())
}

static PLAN_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// What the rule set needs to clear an eligible value quickly (see the module doc).
#[derive(Debug)]
pub(crate) struct PlainPlan {
    /// Class bits that make a value ineligible.
    forbidden: u64,
    /// Some chain starts with a URL decoder (and none has one elsewhere): a value with `%` or
    /// `+` is cleared through its decoding.
    decoders: bool,
    /// Per target kind (`Kind as usize`): its entry in `kind_scans`, and the rules that can
    /// read that kind. A value's candidates (`Engine::select`) always are among them; the
    /// embedded tests evaluate a rule on a kind it may not read, and are scanned with
    /// `all_scan`, the scan of every pattern ([`PlainScratch::any_kind`]).
    kind_scan: [u8; KINDS],
    kind_rules: Vec<Bitset>,
    all_scan: u8,
    /// The scans of the kinds, one per distinct set of patterns.
    kind_scans: Vec<KindScan>,
    /// The patterns of `raw_rules` alone, for a value with `%` or `+` (the other rules read
    /// its decoding, which its kind's scanner reads).
    raw_scan: Option<Scanner>,
    /// Per pattern of `raw_scan`: its rules among `raw_rules`.
    raw_pat_rules: Vec<Vec<(u32, Role)>>,
    /// The patterns of `raw_scan`.
    raw_canon: Vec<Vec<u8>>,
    /// Per pattern of `raw_scan`: every one of its roles is a word.
    raw_word_only: Vec<bool>,
    /// Rules whose chain does not start with a URL decoder.
    raw_rules: Bitset,
    /// Rules whose chain starts with a URL decoder.
    decoder_rules: Bitset,
    /// Rules whose chain removes comments: for them, a value with a block comment marker, or a
    /// line comment marker and a newline, is ineligible.
    comment_rules: Bitset,
    /// Rules whose chain decodes HTML entities (`html_entity_decode`, `decode_all`).
    amp_rules: Bitset,
    /// Rules whose chain decodes base64 (`base64_decode_detect`, `decode_all`).
    long_rules: Bitset,
    /// The rules with a pattern in `raw_scan`.
    raw_scan_rules: Bitset,
    /// Per rule: the forward lazy DFA of the restricted regex, asked first (no pool, no
    /// meta-engine set-up per call: most values here are short); `None` where it cannot be
    /// built. Long values, and the rare search the lazy DFA gives up, go to the rule's own
    /// regex (it matches the same on an eligible haystack).
    dfa: Vec<Option<DFA>>,
    /// Regex rules of one chain read the same variant: their restricted regexes in one lazy
    /// DFA per chain (chains with [`MIN_GROUP`] regex rules or more), asked once when two or
    /// more are to run on a value. No match clears them all with one walk of the variant
    /// (and one transformation); a match (or a search the DFA gives up) runs each as before.
    groups: Groups,
    /// How many groups there are (`groups` once built has this many).
    group_count: usize,
    /// Per rule: its entry in `groups`, or [`NO_GROUP`].
    group_of: Vec<u8>,
    /// Tells scratch caches of another plan apart (a reloaded rule set).
    id: u64,
    /// Unfiltered regex rules that an eligible haystack can match.
    run: Bitset,
    /// Per target kind: the restricted regexes of the `run` rules of that kind in one set (for
    /// the rules that read the value as it is), with the set's rules.
    run_sets: Vec<Option<usize>>,
    /// The distinct run sets (kinds with the same rules share one).
    sets: Vec<RunSet>,
    /// Per class bit (by position): the regex rules gated by that class that an eligible
    /// haystack can match.
    by_class: Vec<Bitset>,
    /// The class bits some rule of `by_class` is gated on.
    class_any: u64,
    /// Detector rules.
    detectors: Bitset,
    /// The XSS detector's rules.
    xss_detectors: Bitset,
    /// Regexes with a second clause ([`crate::prefilter::Gate::second`]): let through by a
    /// class, they run only when the scan saw one of its factors too.
    second_rules: Bitset,
    /// The rules walked on a *numeric* value (only digits, `.` and `-`, see [`NUMERIC`]):
    /// regexes whose restriction to those bytes is not empty, and detectors. The transforms of
    /// an eligible numeric value leave it as it is, so no other regex can match it (`42`,
    /// `19.99`, `2026-11-24` walk none of them); phrases are the scan's business, as for any
    /// value.
    numeric: Bitset,
    /// Rules whose presence among the candidates sends a value to the general path.
    pub fallback: Bitset,
    /// Per target kind: no rule of the kind is unfiltered, gated by a class of letters, digits
    /// or `_`, or a fallback rule, so a *word* (see [`PlainPlan::word_is_clean`]) of the kind
    /// can only be found through the scan.
    word_kinds: [bool; KINDS],
}

impl PlainPlan {
    /// The plan of a compiled rule set, or `None` when its transforms do not allow one.
    pub(crate) fn build(
        rules: &[Rule],
        chains: &[Vec<Transform>],
        patterns: &[Vec<u8>],
        pat_entries: &[Vec<PatEntry>],
        second_rules: &Bitset,
    ) -> Option<PlainPlan> {
        let mut forbidden = 0u64;
        let mut decoders = false;
        for chain in chains {
            for (i, t) in chain.iter().enumerate() {
                if crate::transform::URL_DECODERS.contains(t) {
                    if i == 0 {
                        decoders = true;
                    } else {
                        // Its input would not be the value: no `%` or `+` is eligible.
                        forbidden |= class::PCT | class::PLUS;
                    }
                }
            }
            // Bytes deleted (spaces, quotes) can join a decodable run or a `--`: no decoding
            // or comment removal may come after them.
            let mut joined = false;
            for &t in chain {
                let trig = t.trigger();
                forbidden |= trig & !tolerated(t);
                let sensitive =
                    tolerated(t) & (class::LONG | class::DASH | class::PCT | class::PLUS) != 0;
                if sensitive && joined {
                    return None;
                }
                // Deleted bytes can also join `&` and a name (`& lt;`, `&"lt;`): then no `&`
                // is eligible.
                if tolerated(t) & class::AMP != 0 && joined {
                    forbidden |= class::AMP;
                }
                joined |= matches!(t, Transform::RemoveWhitespace | Transform::CmdLine);
            }
        }
        // LONG is not a byte class; the others are.
        let mut allowed = [false; 256];
        for (b, a) in allowed.iter_mut().enumerate() {
            *a = class::of(b as u8) & forbidden == 0;
        }
        let allowed_classes = (0..=255u8).fold(0u64, |m, b| {
            if allowed[usize::from(b)] {
                m | class::of(b)
            } else {
                m
            }
        });
        let mut numeric_bytes = [false; 256];
        for (b, a) in numeric_bytes.iter_mut().enumerate() {
            let c = class::of(b as u8);
            *a = c & NUMERIC == c;
        }
        let n = rules.len();
        let mut numeric = Bitset::new(n);
        let mut fallback = Bitset::new(n);
        let mut run = Bitset::new(n);
        let mut detectors = Bitset::new(n);
        let mut xss_detectors = Bitset::new(n);
        let mut by_class = vec![Bitset::new(n); 64];
        let mut class_any = 0u64;
        let mut re = Vec::with_capacity(n);
        for (i, r) in rules.iter().enumerate() {
            if r.negate {
                fallback.set(i);
            }
            let mut restricted = None;
            match &r.matcher {
                Matcher::Detector(d) => {
                    detectors.set(i);
                    numeric.set(i);
                    if *d == crate::ruleset::Detector::Xss {
                        xss_detectors.set(i);
                    }
                }
                Matcher::Regex {
                    hir,
                    filtered,
                    classes,
                    ..
                } => {
                    if crate::prefilter::restrict(hir, &numeric_bytes).is_some() {
                        numeric.set(i);
                    }
                    if let Some(p) = crate::prefilter::restrict(hir, &allowed) {
                        if !filtered {
                            run.set(i);
                        } else {
                            let mut m = classes & (allowed_classes | class::LONG);
                            class_any |= m;
                            while m != 0 {
                                let bit = m.trailing_zeros() as usize;
                                m &= m - 1;
                                if let Some(rules) = by_class.get_mut(bit) {
                                    rules.set(i);
                                }
                            }
                        }
                        restricted = Some(p);
                    }
                }
                Matcher::Phrases { .. } => {}
            }
            re.push(restricted);
        }
        // Canonical patterns, deduplicated.
        let mut canon: Vec<Vec<u8>> = Vec::new();
        let mut pat_rules: Vec<Vec<(u32, Role)>> = Vec::new();
        let mut index = std::collections::HashMap::new();
        for (p, entries) in patterns.iter().zip(pat_entries) {
            if !p.iter().all(|&b| allowed[usize::from(b)]) {
                // It cannot occur in an eligible variant.
                continue;
            }
            let c: Vec<u8> = p
                .iter()
                .filter(|b| !SKIPPED.contains(b))
                .map(u8::to_ascii_lowercase)
                .collect();
            if c.is_empty() {
                // Only skipped bytes: the scan cannot stand for it.
                entries.iter().for_each(|e| fallback.set(e.rule as usize));
                continue;
            }
            let k = *index.entry(c.clone()).or_insert_with(|| {
                canon.push(c);
                pat_rules.push(Vec::new());
                canon.len() - 1
            });
            if let Some(list) = pat_rules.get_mut(k) {
                for e in entries {
                    let role = match e.kind {
                        PatKind::Phrase { .. } => Role::Phrase,
                        PatKind::Factor { word: false } => Role::Factor,
                        PatKind::Factor { word: true } => Role::Word,
                        PatKind::Second { word: false } => Role::Second,
                        PatKind::Second { word: true } => Role::SecondWord,
                    };
                    // A factor of a regex no eligible haystack can match says nothing.
                    if role == Role::Phrase || re.get(e.rule as usize).is_some_and(Option::is_some)
                    {
                        list.push((e.rule, role));
                    }
                }
            }
        }
        // The rules that read a `%`/`+` value itself (their chain does not start with a URL
        // decoder), and a scanner of their patterns alone for such values.
        let (mut raw_rules, mut decoder_rules) = (Bitset::new(n), Bitset::new(n));
        for (i, r) in rules.iter().enumerate() {
            let first = chains.get(r.chain).and_then(|c| c.first());
            if first.is_some_and(|t| crate::transform::URL_DECODERS.contains(t)) {
                decoder_rules.set(i);
            } else {
                raw_rules.set(i);
            }
        }
        let (raw_canon, raw_pat_rules) = restricted(&canon, &pat_rules, &raw_rules);
        let raw_scan = skipping_scanner(&raw_canon)?;
        // The rules each scanner can say something about: with none among the candidates
        // (most rules of a URI or a query string have no phrase), the scan is skipped.
        // (A second clause alone is no reason to scan: unscanned, it is taken as met.)
        let rules_of = |table: &[Vec<(u32, Role)>]| {
            let mut b = Bitset::new(n);
            table
                .iter()
                .flatten()
                .filter(|(_, role)| !matches!(role, Role::Second | Role::SecondWord))
                .for_each(|&(r, _)| b.set(r as usize));
            b
        };
        let raw_scan_rules = rules_of(&raw_pat_rules);
        // One scanner per target kind, of the patterns of the rules that can read that kind:
        // a value is not walked for matches no candidate rule of its kind can use (JSON keys
        // such as `name` and `id`, words of argument-value rules, are no match for the
        // argument-name scan). A value's candidates are always among its kind's rules (the
        // kind's, plus for headers and arguments the rules that name one), so every pattern a
        // candidate needs is in its kind's scanner and the scan says the same for them.
        let mut kind_scan = [0u8; KINDS];
        let mut kind_rules = vec![Bitset::new(n); KINDS];
        let mut kind_scans: Vec<KindScan> = Vec::new();
        let mut all_scan = 0u8;
        for k in Kind::ALL.into_iter().map(Some).chain([None]) {
            let mut of_kind = Bitset::new(n);
            for (i, r) in rules.iter().enumerate() {
                let reads = match k {
                    Some(k) => {
                        r.kinds & k.bit() != 0
                            || (k == Kind::Header && !r.headers.is_empty())
                            || (matches!(k, Kind::QueryArg | Kind::BodyArg)
                                && !(r.args.is_empty() && r.json_keys.is_empty()))
                    }
                    None => true,
                };
                if reads {
                    of_kind.set(i);
                }
            }
            let (k_canon, k_rules) = restricted(&canon, &pat_rules, &of_kind);
            let j = match kind_scans
                .iter()
                .position(|ks| ks.canon == k_canon && ks.pat_rules == k_rules)
            {
                Some(j) => j,
                None => {
                    kind_scans.push(KindScan {
                        scan: skipping_scanner(&k_canon)?,
                        scan_rules: rules_of(&k_rules),
                        word_only: word_only(&k_rules),
                        pat_rules: k_rules,
                        canon: k_canon,
                    });
                    kind_scans.len() - 1
                }
            };
            let j = u8::try_from(j).ok()?;
            match k {
                Some(k) => {
                    kind_scan[k as usize] = j;
                    kind_rules[k as usize] = of_kind;
                }
                None => all_scan = j,
            }
        }
        let with = |f: &dyn Fn(Transform) -> bool| {
            let mut b = Bitset::new(n);
            for (i, r) in rules.iter().enumerate() {
                if chains.get(r.chain).is_some_and(|c| c.iter().any(|&t| f(t))) {
                    b.set(i);
                }
            }
            b
        };
        let comment_rules =
            with(&|t| matches!(t, Transform::RemoveComments | Transform::ReplaceComments));
        let amp_rules = with(&|t| tolerated(t) & class::AMP != 0);
        let long_rules = with(&|t| tolerated(t) & class::LONG != 0);
        let mut run_sets = Vec::with_capacity(crate::target::Kind::ALL.len());
        let mut sets: Vec<RunSet> = Vec::new();
        for k in crate::target::Kind::ALL {
            let members: Vec<u32> = run
                .ones()
                .filter(|&i| rules.get(i).is_some_and(|r| r.kinds & k.bit() != 0))
                .map(|i| i as u32)
                .collect();
            if let Some(j) = sets.iter().position(|s| s.members == members) {
                run_sets.push(Some(j));
                continue;
            }
            let hirs: Vec<&Hir> = members
                .iter()
                .filter_map(|&i| re.get(i as usize).and_then(Option::as_ref))
                .collect();
            if hirs.is_empty() || hirs.len() != members.len() {
                run_sets.push(None);
                continue;
            }
            // The regex crate's set takes patterns: the restricted regexes written out (their
            // flags inline, case folding expanded), for these few unfiltered rules only.
            let patterns: Vec<String> = hirs.iter().map(|h| h.to_string()).collect();
            let set = regex::bytes::RegexSetBuilder::new(&patterns)
                .size_limit(32 << 20)
                .build()
                .ok()?;
            let mut bits = Bitset::new(n);
            members.iter().for_each(|&i| bits.set(i as usize));
            sets.push(RunSet {
                dfa: lazy_dfa(&hirs),
                set,
                members,
                bits,
            });
            run_sets.push(Some(sets.len() - 1));
        }
        let dfa = re
            .iter()
            .map(|r| r.as_ref().and_then(|r| lazy_dfa(&[r])))
            .collect();
        let (groups, group_count, group_of) = chain_groups(rules, &re);
        Some(
            PlainPlan {
                dfa,
                groups,
                group_count,
                group_of,
                id: PLAN_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                forbidden,
                decoders: decoders && forbidden & (class::PCT | class::PLUS) == 0,
                kind_scan,
                kind_rules,
                all_scan,
                kind_scans,
                raw_scan,
                raw_word_only: word_only(&raw_pat_rules),
                raw_pat_rules,
                raw_canon,
                raw_rules,
                raw_scan_rules,
                decoder_rules,
                comment_rules,
                amp_rules,
                long_rules,
                second_rules: second_rules.clone(),
                run,
                run_sets,
                sets,
                class_any,
                by_class,
                detectors,
                xss_detectors,
                numeric,
                fallback,
                word_kinds: [false; KINDS],
            }
            .with_word_kinds(),
        )
    }

    /// Fills in [`PlainPlan::word_kinds`].
    fn with_word_kinds(mut self) -> PlainPlan {
        let mut open = self.run.clone();
        open.or_with(&self.fallback);
        self.gated_by(crate::inspect::WORD_CLASSES, &mut open);
        for (k, slot) in self.word_kinds.iter_mut().enumerate() {
            *slot = self
                .kind_rules
                .get(k)
                .is_some_and(|of_kind| !of_kind.intersects(&open));
        }
        self
    }

    /// True when `value`, of class mask `mask`, is a *word* of `kind` that no rule can match:
    /// only ASCII letters, digits and `_`, shorter than a base64 run, of a kind whose rules
    /// can only find such a value through the scan ([`PlainPlan::word_kinds`]), and the kind's
    /// scan finds no pattern in it. Decided before the candidate rules are selected (they are
    /// among the kind's rules whatever the policy and the name): [`PlainPlan::clean`] would
    /// clear the value for any candidates, because such a value is eligible, needs no
    /// decoding, fails no check of `plain_bytes`, opens no class gate of a candidate, skips
    /// the detectors and leaves no factor, word or phrase hit. Most argument values (`page`,
    /// `price_asc`, `electronics`, ids) are cleared here without the selection and the fast
    /// path's bitset work.
    #[inline]
    pub(crate) fn word_is_clean(&self, kind: Kind, value: &[u8], mask: u64) -> bool {
        mask & !(crate::inspect::WORD_CLASSES & !class::LONG) == 0
            && self.may_be_eligible(mask)
            && self.word_kinds.get(kind as usize) == Some(&true)
            && self.kind_scan(kind).is_some_and(|ks| {
                ks.scan
                    .as_ref()
                    .is_none_or(|sc| sc.first_match(value).is_none())
            })
    }

    /// The first check of eligibility, on the class mask alone: false sends the value to the
    /// general evaluation. [`PlainPlan::clean`] checks the rest.
    #[inline]
    pub(crate) fn may_be_eligible(&self, mask: u64) -> bool {
        mask & self.forbidden == 0
    }

    /// The checks of eligibility past the class mask, for the candidate rules `cand`: each
    /// only when one of them has a transform it speaks for. Cheapest first: `may_decode`
    /// decodes runs.
    fn plain_bytes(&self, value: &[u8], mask: u64, cand: &Bitset) -> bool {
        !(cand.intersects(&self.comment_rules) && comments_block(value, mask))
            && (mask & class::AMP == 0
                || !cand.intersects(&self.amp_rules)
                || html_entity_decode::inert(value))
            && (mask & class::LONG == 0
                || !cand.intersects(&self.long_rules)
                || !base64_decode_detect::may_decode_masked(value, mask))
    }

    /// The URL decoding `d` (class mask `dmask`) of a value is final (no `%`, `+`, `\` or
    /// overlong lead byte: no decoder changes it again) and eligible for the candidate rules
    /// `cand` (see the module doc).
    fn plain_decoding(&self, d: &[u8], dmask: u64, cand: &Bitset) -> bool {
        dmask & (self.forbidden | class::PCT | class::PLUS | class::BSLASH | class::OVERLONG) == 0
            && self.plain_bytes(d, dmask, cand)
    }

    /// The detector rules that cannot fire on an eligible value whose class mask (with its URL
    /// decoding's) is `mask`, decided before any variant is built: both on letters, digits and
    /// `_` only, the XSS detector on a text with no byte it looks for.
    #[inline]
    fn detectors_skipped(&self, mask: u64) -> Option<&Bitset> {
        if mask & !crate::inspect::WORD_CLASSES == 0 {
            Some(&self.detectors)
        } else if mask & crate::inspect::XSS_CLASSES == 0 {
            Some(&self.xss_detectors)
        } else {
            None
        }
    }

    /// Adds to `out` the regex rules gated by a class of `mask`.
    #[inline]
    fn gated_by(&self, mask: u64, out: &mut Bitset) {
        let mut m = mask & self.class_any;
        while m != 0 {
            let bit = m.trailing_zeros() as usize;
            m &= m - 1;
            if let Some(rules) = self.by_class.get(bit) {
                out.or_with(rules);
            }
        }
    }

    /// Whether `value` is eligible for every rule (with `%` or `+`, its decoding too).
    #[cfg(test)]
    pub(crate) fn eligible(&self, value: &[u8], mask: u64) -> bool {
        let mut all = self.raw_rules.clone();
        all.or_with(&self.decoder_rules);
        if !self.may_be_eligible(mask) {
            return false;
        }
        if self.decoders && mask & (class::PCT | class::PLUS) != 0 {
            let mut d = Vec::new();
            crate::transform::url_decode_uni::apply(value, &mut d);
            return self.plain_bytes(value, mask, &all)
                && self.plain_decoding(&d, class_mask(&d), &all);
        }
        self.plain_bytes(value, mask, &all)
    }

    /// Adds to `factor_hits` the candidate rules whose regex factor may occur in a variant of
    /// the eligible `value`; false when a candidate rule's phrase may occur (the general path
    /// decides then).
    fn scan(
        &self,
        kind: Option<Kind>,
        value: &[u8],
        cand: &Bitset,
        factor_hits: &mut Bitset,
        second_hits: &mut Bitset,
    ) -> bool {
        let ks = match kind {
            Some(kind) => {
                debug_assert!(
                    self.kind_rules
                        .get(kind as usize)
                        .is_some_and(|of_kind| cand.is_subset(of_kind)),
                    "candidates outside the rules of {kind:?}"
                );
                self.kind_scan(kind)
            }
            None => self.kind_scans.get(usize::from(self.all_scan)),
        };
        let Some(ks) = ks else {
            return false;
        };
        if !cand.intersects(&ks.scan_rules) {
            // Second clauses were not looked for: taken as met.
            second_hits.or_with(&self.second_rules);
            return true;
        }
        scan_with(
            ks.scan.as_ref(),
            &ks.pat_rules,
            &ks.canon,
            &ks.word_only,
            value,
            cand,
            factor_hits,
            second_hits,
        )
    }

    /// The scan of `kind`'s values.
    fn kind_scan(&self, kind: Kind) -> Option<&KindScan> {
        self.kind_scan
            .get(kind as usize)
            .and_then(|&j| self.kind_scans.get(usize::from(j)))
    }
}

/// The regex rules (with a restricted regex `re`) of each chain that has [`MIN_GROUP`] or
/// more, as one lazy DFA per chain (built on another thread: [`Groups`]), the number of
/// groups, and each rule's group.
fn chain_groups(rules: &[Rule], re: &[Option<Hir>]) -> (Groups, usize, Vec<u8>) {
    let mut by_chain: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (i, r) in rules.iter().enumerate() {
        if matches!(r.matcher, Matcher::Regex { .. }) && re.get(i).is_some_and(Option::is_some) {
            by_chain.entry(r.chain).or_default().push(i);
        }
    }
    let mut plans: Vec<(Vec<Hir>, Bitset)> = Vec::new();
    let mut group_of = vec![NO_GROUP; rules.len()];
    let big = by_chain.into_values().filter(|m| m.len() >= MIN_GROUP);
    for (tag, members) in (0..=LAST_GROUP).zip(big) {
        let patterns: Vec<Hir> = members
            .iter()
            .filter_map(|&i| re.get(i).and_then(Option::clone))
            .collect();
        let mut bits = Bitset::new(rules.len());
        for &i in &members {
            bits.set(i);
            if let Some(slot) = group_of.get_mut(i) {
                *slot = tag;
            }
        }
        plans.push((patterns, bits));
    }
    let count = plans.len();
    let groups: Groups = Default::default();
    let mine = std::sync::Arc::clone(&groups);
    let spawned = std::thread::Builder::new()
        .name("waf-groups".into())
        .spawn(move || {
            let built = plans
                .into_iter()
                .map(|(patterns, members)| {
                    let hirs: Vec<&Hir> = patterns.iter().collect();
                    Group {
                        dfa: lazy_dfa(&hirs),
                        members,
                    }
                })
                .collect();
            let _ = mine.set(built); // only this thread sets it
        });
    if spawned.is_err() {
        // No thread to build them: no group (they only save time), and nobody waits forever.
        let _ = groups.set(Vec::new());
    }
    (groups, count, group_of)
}

/// The patterns of `canon` that stand for a rule of `keep`, each with its entries for those
/// rules (`pat_rules` restricted to `keep`).
#[allow(clippy::type_complexity)]
fn restricted(
    canon: &[Vec<u8>],
    pat_rules: &[Vec<(u32, Role)>],
    keep: &Bitset,
) -> (Vec<Vec<u8>>, Vec<Vec<(u32, Role)>>) {
    let (mut out_canon, mut out_rules) = (Vec::new(), Vec::new());
    for (c, list) in canon.iter().zip(pat_rules) {
        let mine: Vec<(u32, Role)> = list
            .iter()
            .copied()
            .filter(|&(r, _)| keep.get(r as usize))
            .collect();
        if !mine.is_empty() {
            out_canon.push(c.clone());
            out_rules.push(mine);
        }
    }
    (out_canon, out_rules)
}

/// The fast path's scanner of `canon` (none for no pattern); `None` when it cannot be built.
fn skipping_scanner(canon: &[Vec<u8>]) -> Option<Option<Scanner>> {
    if canon.is_empty() {
        return Some(None);
    }
    Scanner::skipping(canon, SKIPPED).ok().map(Some)
}

/// The scanner of one target kind's patterns ([`PlainPlan::kind_scans`]).
#[derive(Debug)]
struct KindScan {
    /// The canonical forms of the phrases and factors that can occur in an eligible variant.
    scan: Option<Scanner>,
    /// Per pattern of `scan`: the rules it stands for, and its role for each.
    pat_rules: Vec<Vec<(u32, Role)>>,
    /// The patterns of `scan` (canonical forms).
    canon: Vec<Vec<u8>>,
    /// Per pattern of `scan`: every one of its roles is a word ([`word_only`]).
    word_only: Vec<bool>,
    /// The rules with a pattern in `scan`.
    scan_rules: Bitset,
}

/// What a pattern of a plan's scanner is to one rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// A phrase: the general path decides.
    Phrase,
    /// A factor of the rule's regex: the regex runs.
    Factor,
    /// A word of the rule's regex ([`crate::prefilter::Gate::words`]): the regex runs when
    /// the word may sit on word boundaries ([`as_word`]).
    Word,
    /// A factor of the regex's second clause ([`crate::prefilter::Gate::second`]).
    Second,
    /// A word of the regex's second clause.
    SecondWord,
}

/// Per pattern of a table: every one of its roles is a word (a pattern of no rule counts as
/// one): a hit of it off word boundaries can be dropped before its rules are looked at.
fn word_only(pat_rules: &[Vec<(u32, Role)>]) -> Vec<bool> {
    pat_rules
        .iter()
        .map(|rs| {
            rs.iter()
                .all(|(_, role)| matches!(role, Role::Word | Role::SecondWord))
        })
        .collect()
}

/// [`PlainPlan::scan`] with `scanner`, its pattern table, its patterns and which of them are
/// words only.
#[allow(clippy::too_many_arguments)]
fn scan_with(
    scanner: Option<&Scanner>,
    pat_rules: &[Vec<(u32, Role)>],
    canon: &[Vec<u8>],
    word_only: &[bool],
    value: &[u8],
    cand: &Bitset,
    factor_hits: &mut Bitset,
    second_hits: &mut Bitset,
) -> bool {
    let Some(sc) = scanner else {
        return true;
    };
    // Most values hold no pattern: one tight walk says so.
    match sc.first_match(value) {
        None => true,
        Some(first) => scan_matches(
            sc,
            first.ok(),
            pat_rules,
            canon,
            word_only,
            value,
            cand,
            factor_hits,
            second_hits,
        ),
    }
}

/// [`scan_with`] for a value that holds a pattern (`first`: where its walk first met one, or
/// `None` to walk it whole).
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn scan_matches(
    sc: &Scanner,
    first: Option<crate::scan::First>,
    pat_rules: &[Vec<(u32, Role)>],
    canon: &[Vec<u8>],
    word_only: &[bool],
    value: &[u8],
    cand: &Bitset,
    factor_hits: &mut Bitset,
    second_hits: &mut Bitset,
) -> bool {
    let each = |p: usize, _: usize, end: usize| {
        let mut word: Option<bool> = None;
        // A word pattern inside a longer word (`or` in `before`): no rule of it can use the
        // hit, whatever the candidates.
        if word_only.get(p).copied().unwrap_or(false) {
            let pat = canon.get(p).map_or(&[][..], Vec::as_slice);
            if !as_word(value, pat, end) {
                return true;
            }
            word = Some(true);
        }
        for &(r, role) in pat_rules.get(p).map_or(&[][..], Vec::as_slice) {
            if cand.get(r as usize) {
                match role {
                    Role::Phrase => return false,
                    Role::Factor => factor_hits.set(r as usize),
                    Role::Second => second_hits.set(r as usize),
                    Role::Word | Role::SecondWord => {
                        let pat = canon.get(p).map_or(&[][..], Vec::as_slice);
                        if *word.get_or_insert_with(|| as_word(value, pat, end)) {
                            if role == Role::Word {
                                factor_hits.set(r as usize);
                            } else {
                                second_hits.set(r as usize);
                            }
                        }
                    }
                }
            }
        }
        true
    };
    match first {
        Some(first) => sc.each_match_from(value, first, each),
        None => sc.each_match(value, each),
    }
}

/// Whether the word `pat` (ASCII letters, digits, `_`), which the skipping scan found in the
/// eligible `value` ending at `end`, may sit on word boundaries in a variant of it.
///
/// The scan reports a match again at each skipped byte after it, and matches across skipped
/// bytes (`o'r`): the skipped bytes after the match are dropped first; a match that still
/// holds one says yes. Otherwise the word is in `value` as it is, and it may be a word in a
/// variant only when no ASCII letter, digit or `_` touches it here: the transforms of an
/// eligible value change case, delete or add skipped bytes and spaces, and cut at a comment
/// marker (see the module doc), none of which puts a non-word byte next to a word byte that
/// touched it, or is one.
fn as_word(value: &[u8], pat: &[u8], end: usize) -> bool {
    let mut e = end.min(value.len());
    while e > 0 && value.get(e - 1).is_some_and(|b| SKIPPED.contains(b)) {
        e -= 1;
    }
    let Some(s) = e.checked_sub(pat.len()) else {
        return true;
    };
    if !value.get(s..e).is_some_and(|w| w.eq_ignore_ascii_case(pat)) {
        return true;
    }
    let is_word = |b: &u8| crate::inspect::is_word(*b);
    let before = s
        .checked_sub(1)
        .and_then(|i| value.get(i))
        .is_some_and(is_word);
    let after = value.get(e).is_some_and(is_word);
    !(before || after)
}

/// True when `remove_comments` and `replace_comments` could do more to `value` (class mask
/// `mask`) than cut it: it holds `/*` or `*/` (a block comment deletes the middle, `*/` alone
/// is deleted), or a line comment marker (`--`, `//`, `#`) and a newline (the comment ends
/// there). Both block markers hold a `*`; most values have neither a `*` nor a newline.
fn comments_block(value: &[u8], mask: u64) -> bool {
    let pair = |a: u8, b: u8| value.windows(2).any(|w| w[0] == a && w[1] == b);
    (mask & class::STAR != 0 && (pair(b'/', b'*') || pair(b'*', b'/')))
        || (mask & class::LF != 0
            && (mask & class::HASH != 0 || pair(b'-', b'-') || pair(b'/', b'/')))
}

/// Scratch space of the fast path, kept in the per-request state.
#[derive(Debug, Default)]
pub(crate) struct PlainScratch {
    /// The request's `Host` header as sent (empty when unknown), for the redirect detector.
    pub(crate) host: Vec<u8>,
    /// The candidates may be rules that do not read the value's kind (a rule's embedded tests,
    /// [`crate::RuleSet::run_embedded_tests`]): scan for every pattern, not the kind's.
    pub(crate) any_kind: bool,
    a: Vec<u8>,
    b: Vec<u8>,
    /// The URL decoding of a value with `%` or `+`.
    d: Vec<u8>,
    /// Chains known to leave the current value as it is.
    same: Vec<usize>,
    /// Candidate rules whose factor the scan saw, then every rule to run.
    hits: Bitset,
    /// The rules a class gate lets through.
    gated: Bitset,
    /// Rules one of whose second-clause factors the scan saw.
    second: Bitset,
    /// Scratch.
    other: Bitset,
    /// The plan the caches below belong to.
    plan: u64,
    /// Per rule: the cache of its lazy DFA.
    caches: Vec<Option<Cache>>,
    /// Per run set: the cache of its lazy DFA.
    set_caches: Vec<Option<Cache>>,
    /// Per chain group: the cache of its lazy DFA.
    group_caches: Vec<Option<Cache>>,
}

impl PlainPlan {
    /// True when the eligible `value` (class mask `mask`) matches none of the `cand` rules for
    /// sure; false sends it to the general evaluation.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn clean(
        &self,
        rules: &[Rule],
        chains: &[Vec<Transform>],
        kind: crate::target::Kind,
        value: &[u8],
        mask: u64,
        cand: &Bitset,
        sc: &mut PlainScratch,
    ) -> bool {
        if sc.hits.words() != cand.words() {
            sc.hits = Bitset::new(cand.words() * 64);
            sc.gated = Bitset::new(cand.words() * 64);
            sc.second = Bitset::new(cand.words() * 64);
            sc.other = Bitset::new(cand.words() * 64);
        }
        if sc.plan != self.id {
            sc.plan = self.id;
            sc.caches.clear();
            sc.caches.resize_with(rules.len(), || None);
            sc.set_caches.clear();
            sc.set_caches.resize_with(self.sets.len(), || None);
            sc.group_caches.clear();
            sc.group_caches.resize_with(self.group_count, || None);
        }
        // A value with `%` or `+`: the chains that start with a URL decoder read its decoding,
        // which must be final and eligible itself. Final: no `%`, `+`, `\` or overlong lead
        // byte (no URL, JS or overlong decoding left); eligible: no decodable base64 run and
        // only inert `&` (so `decode_all`'s entity decoding and base64 step change nothing, and
        // the three URL decoders all give this decoding). With no candidate rule that decodes,
        // `%` and `+` are bytes like others.
        let decoded = self.decoders
            && mask & (class::PCT | class::PLUS) != 0
            && cand.intersects(&self.decoder_rules);
        let mut dmask = 0;
        if decoded {
            crate::transform::url_decode_uni::apply(value, &mut sc.d);
            dmask = class_mask(&sc.d);
            if !self.plain_decoding(&sc.d, dmask, cand) {
                return false;
            }
        }
        let scan_kind = (!sc.any_kind).then_some(kind);
        sc.hits.clear();
        sc.second.clear();
        if decoded {
            // The value itself matters only to the candidate rules that read it as it is.
            if !cand.intersects(&self.raw_scan_rules) {
                sc.second.or_with(&self.second_rules);
            }
            if cand.intersects(&self.raw_rules)
                && (!self.plain_bytes(value, mask, cand)
                    || (cand.intersects(&self.raw_scan_rules)
                        && !scan_with(
                            self.raw_scan.as_ref(),
                            &self.raw_pat_rules,
                            &self.raw_canon,
                            &self.raw_word_only,
                            value,
                            cand,
                            &mut sc.hits,
                            &mut sc.second,
                        )))
            {
                return false;
            }
            if !self.scan(scan_kind, &sc.d, cand, &mut sc.hits, &mut sc.second) {
                return false;
            }
        } else if !self.plain_bytes(value, mask, cand)
            || !self.scan(scan_kind, value, cand, &mut sc.hits, &mut sc.second)
        {
            return false;
        }
        sc.hits.or_with(&self.run);
        sc.hits.or_with(&self.detectors);
        // Class gates see the bytes of the text each rule reads: the decoding for the rules
        // whose chain starts with a URL decoder, the value for the others (`%3D` opens no gate
        // on `=` of a rule that reads the value, `%` none of a rule that reads the decoding).
        let mask0 = mask;
        if (mask0 | dmask) & self.class_any != 0 {
            sc.gated.clear();
            if decoded {
                sc.other.clear();
                self.gated_by(mask0, &mut sc.other);
                sc.other.and_with(&self.raw_rules);
                sc.gated.or_with(&sc.other);
                sc.other.clear();
                self.gated_by(dmask, &mut sc.other);
                sc.other.and_with(&self.decoder_rules);
                sc.gated.or_with(&sc.other);
            } else {
                self.gated_by(mask0, &mut sc.gated);
            }
            // Through a class, a regex with a second clause needs one of its factors too.
            if sc.gated.intersects(&self.second_rules) {
                sc.other.copy_from(&self.second_rules);
                sc.other.and_not(&sc.second);
                sc.gated.and_not(&sc.other);
            }
            sc.hits.or_with(&sc.gated);
        }
        sc.hits.and_with(cand);
        // The numeric tier sees the bytes of both texts.
        let mask = mask | dmask;
        // A long run of digits is no decodable run (the value is eligible): still numeric.
        if mask & !(NUMERIC | class::LONG) == 0 {
            sc.hits.and_with(&self.numeric);
        }
        // The transforms that act on an eligible value ([`tolerated`]) add no byte but a space
        // turned from whitespace, `,` or `;` and lower case from upper case (test
        // `variants_add_no_byte_but_a_space`), so the
        // detectors' first checks can be read from the value's mask before any variant is
        // built: letters, digits and `_` only flag nothing, nor does a text with no byte the
        // XSS detector looks for.
        if let Some(skipped) = self.detectors_skipped(mask) {
            sc.hits.and_not(skipped);
        }
        sc.same.clear();
        // The groups asked so far (bit `g`): each is asked once.
        let mut asked = 0u64;
        let set_index = self.run_sets.get(kind as usize).copied().flatten();
        let run_set = set_index.and_then(|j| self.sets.get(j));
        let mut set_needed = false;
        let mut next = sc.hits.next_one(0);
        while let Some(r) = next {
            next = sc.hits.next_one(r + 1);
            let Some(rule) = rules.get(r) else {
                continue;
            };
            let chain = chains.get(rule.chain).map_or(&[][..], Vec::as_slice);
            // The chain's input: the decoding when it starts with a URL decoder (that step is
            // then done), else the value.
            let from_d = decoded && self.decoder_rules.get(r);
            let (src, smask, steps): (&[u8], u64, &[Transform]) = if from_d {
                (&sc.d, dmask, chain.get(1..).unwrap_or(&[]))
            } else {
                (value, mask0, chain)
            };
            let (at, hmask) = if sc.same.contains(&rule.chain) {
                (0, smask)
            } else {
                match variant(steps, src, smask, &mut sc.a, &mut sc.b) {
                    Some((0, _)) => {
                        sc.same.push(rule.chain);
                        (0, smask)
                    }
                    Some(at_mask) => at_mask,
                    None => return false,
                }
            };
            let hay: &[u8] = match at {
                0 => src,
                1 => &sc.a,
                _ => &sc.b,
            };
            let fired = match &rule.matcher {
                Matcher::Detector(d) => {
                    crate::inspect::run_detector_masked(*d, hay, hmask, &sc.host).is_some()
                }
                Matcher::Regex {
                    first, re, needs, ..
                } => {
                    if at == 0 && !from_d && run_set.is_some_and(|rs| rs.bits.get(r)) {
                        set_needed = true;
                        continue;
                    }
                    if let Some(g) = self.group_of.get(r).copied().filter(|&g| g != NO_GROUP) {
                        let bit = 1u64 << g;
                        if asked & bit == 0 {
                            asked |= bit;
                            if let Some(members) = self.group_clear(
                                usize::from(g),
                                hay,
                                &sc.hits,
                                &mut sc.group_caches,
                            ) {
                                // No member can match this variant: none is walked.
                                sc.hits.and_not(members);
                                next = sc.hits.next_one(r + 1);
                                continue;
                            }
                        }
                    }
                    let starts_ok = first
                        .as_ref()
                        .is_none_or(|f| hay.first().is_some_and(|&b| f[usize::from(b)]));
                    starts_ok
                        && needs.as_ref().is_none_or(|n| n.allows(hmask))
                        && self
                            .dfa
                            .get(r)
                            .and_then(Option::as_ref)
                            .and_then(|d| lazy_match(d, sc.caches.get_mut(r), hay))
                            .unwrap_or_else(|| re.is_match(hay))
                }
                Matcher::Phrases { .. } => true,
            };
            if fired {
                return false;
            }
        }
        let Some(rs) = run_set.filter(|_| set_needed) else {
            return true;
        };
        let any = rs
            .dfa
            .as_ref()
            .and_then(|d| lazy_match(d, set_index.and_then(|j| sc.set_caches.get_mut(j)), value))
            .unwrap_or_else(|| rs.set.is_match(value));
        // A member that is not a candidate here (excluded by the policy) does not count.
        !(any
            && rs
                .set
                .matches(value)
                .iter()
                .any(|m| rs.members.get(m).is_some_and(|&r| cand.get(r as usize))))
    }
}

impl PlainPlan {
    /// Waits until the chain groups are built ([`Groups`]).
    pub(crate) fn wait_background(&self) {
        self.groups.wait();
    }

    /// The members of group `g` when none of them can match `hay` (the variant its chain makes
    /// of the current value): asked by its first member to run, when two of its members or
    /// more are among `hits` (some may still be turned away by their first-byte or class
    /// gates: asking only when two pass those measured worse, the walk it saves is long and
    /// the gates' check is not free). With one, that member's own DFA costs the same.
    fn group_clear(
        &self,
        g: usize,
        hay: &[u8],
        hits: &Bitset,
        caches: &mut [Option<Cache>],
    ) -> Option<&Bitset> {
        let group = self.groups.get()?.get(g)?; // None: not built yet
        let clear = hits.count_and(&group.members) >= 2
            && group
                .dfa
                .as_ref()
                .is_some_and(|d| lazy_match(d, caches.get_mut(g), hay) == Some(false));
        clear.then_some(&group.members)
    }
}

/// Applies `chain` to the eligible `value` (class mask `mask`) the way the general evaluation
/// does (a transform runs only when its trigger meets the current variant's mask), into `a`
/// or `b`. Returns which holds the result (`0`: the value itself, `1`: `a`, `2`: `b`) and,
/// when it is `a` or `b`, its class mask (`LONG` left out when it holds no base64 run), or
/// `None` when a step would need a base64 decoding.
pub(crate) fn variant(
    chain: &[Transform],
    value: &[u8],
    mask: u64,
    a: &mut Vec<u8>,
    b: &mut Vec<u8>,
) -> Option<(u8, u64)> {
    let mut at = 0u8;
    // The caller checked that the value holds no decodable run and no `&` that starts a
    // reference (the transforms here keep it so: none before an entity decoder deletes bytes).
    let mut m = mask & !(class::LONG | class::AMP);
    for &t in chain {
        if t.trigger() & m == 0 {
            continue;
        }
        if tolerated(t) & class::LONG != 0 && m & class::LONG != 0 {
            return None;
        }
        let changed = match at {
            0 => t.apply(value, a),
            1 => t.apply(a.as_slice(), b),
            _ => t.apply(b.as_slice(), a),
        };
        if changed {
            at = if at == 1 { 2 } else { 1 };
            let cur: &[u8] = if at == 1 { a } else { b };
            m = class_mask(cur);
            if m & class::LONG != 0 && !base64_decode_detect::may_decode_masked(cur, m) {
                m &= !class::LONG;
            }
        }
    }
    Some((at, m))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::{scan_with, KindScan};
    use crate::bitset::Bitset;
    use crate::inspect::Sink;
    use crate::policy::{Policy, PolicyConfig};
    use crate::ruleset::gate_tests::{corpora_lines, shipped};
    use crate::target::Kind;
    use crate::transform::class_mask;
    use crate::Inspection;

    fn plan_of(rs: &crate::RuleSet) -> &super::PlainPlan {
        rs.plain
            .as_ref()
            .expect("the shipped rules have a fast path")
    }

    /// The SQL grammar rules share one chain, so one group: its DFA clears a prose note for
    /// all of them in one walk, says nothing when asked about one member alone, and does not
    /// clear a value one member matches (1004 `or 1=1`, 1009 `union … select`), nor a
    /// haystack its lazy DFA gives up on (longer than it reads).
    #[test]
    fn one_walk_clears_a_chain_group() {
        let rs = shipped();
        let plan = plan_of(&rs);
        let n = rs.rules.len();
        let (r1004, r1009) = (rs.by_id[&1004], rs.by_id[&1009]);
        let g = usize::from(plan.group_of[r1004]);
        assert_eq!(
            plan.group_of[r1009], plan.group_of[r1004],
            "same chain, same group"
        );
        let groups = plan.groups.wait(); // built on their own thread
        let group = &groups[g];
        assert!(group.members.get(r1004) && group.members.get(r1009));
        let mut caches: Vec<Option<super::Cache>> = groups.iter().map(|_| None).collect();
        let mut hits = Bitset::new(n);
        hits.set(r1004);
        let note = b"please select the blue one; leave it at the door if nobody answers";
        assert!(
            plan.group_clear(g, note, &hits, &mut caches).is_none(),
            "one member alone"
        );
        hits.set(r1009);
        assert_eq!(
            plan.group_clear(g, note, &hits, &mut caches),
            Some(&group.members)
        );
        for attack in [
            &b"x or 1=1"[..],
            b"1 union all select password from users where 1",
        ] {
            assert!(
                plan.group_clear(g, attack, &hits, &mut caches).is_none(),
                "{attack:?}"
            );
        }
        let long = note.repeat(5);
        assert!(
            plan.group_clear(g, &long, &hits, &mut caches).is_none(),
            "past the lazy DFA's reach"
        );
    }

    /// The fast path's scan asks for a word's regex only where the word may sit on word
    /// boundaries, and meets a second clause only where one of its factors is: 1004 (`or`,
    /// `and`, … as words) and 1005 (gated by `(`, second clause `sleep`, `benchmark`, `if`, …).
    #[test]
    fn words_and_second_clauses_in_the_scan() {
        let rs = shipped();
        let plan = plan_of(&rs);
        let n = rs.rules.len();
        let (r1004, r1005) = (rs.by_id[&1004], rs.by_id[&1005]);
        assert!(plan.second_rules.get(r1005), "1005 has a second clause");
        let mut cand = crate::bitset::Bitset::new(n);
        cand.set(r1004);
        cand.set(r1005);
        let ks = plan
            .kind_scan(crate::target::Kind::QueryArg)
            .expect("every kind has a scan");
        let scan = |value: &str| {
            let (mut factors, mut second) =
                (crate::bitset::Bitset::new(n), crate::bitset::Bitset::new(n));
            let no_phrase = super::scan_with(
                ks.scan.as_ref(),
                &ks.pat_rules,
                &ks.canon,
                &ks.word_only,
                value.as_bytes(),
                &cand,
                &mut factors,
                &mut second,
            );
            assert!(no_phrase, "{value}");
            (factors.get(r1004), second.get(r1005))
        };
        for v in [
            "category",
            "sort",
            "color",
            "brand",
            "for you",
            "order #42",
            "Mozilla/5.0 (X11)",
        ] {
            assert_eq!(scan(v), (false, false), "{v}");
        }
        for v in [
            "1 or 1=1",
            "x' OR 'a'='a",
            "1) AND (2>1",
            "a;or 1",
            "\"or\"1",
        ] {
            assert!(scan(v).0, "{v}: 1004 runs");
        }
        for v in ["sleep(5)", "1 and if(1=1,1,0)", "BENCHMARK(1000,md5(1))"] {
            assert!(scan(v).1, "{v}: 1005's second clause is met");
        }
    }

    /// Plain forms of a payload: its other bytes turned into spaces, then as it is, lowercased,
    /// upper-cased, with its spaces doubled or written as `+`, and with a space at both ends.
    fn plain_forms(line: &[u8], out: &mut HashSet<Vec<u8>>) {
        let s: Vec<u8> = line
            .iter()
            .map(|&b| if b.is_ascii_alphanumeric() { b } else { b' ' })
            .collect();
        if s.iter().all(|&b| b == b' ') {
            return;
        }
        let doubled: Vec<u8> = s
            .iter()
            .flat_map(|&b| if b == b' ' { vec![b' ', b' '] } else { vec![b] })
            .collect();
        let mut padded = vec![b' '];
        padded.extend_from_slice(&s);
        padded.push(b' ');
        // Spaces as a form encoder writes them.
        out.insert(plus_for_space(&s));
        out.insert(s.to_ascii_lowercase());
        out.insert(s.to_ascii_uppercase());
        out.insert(s);
        out.insert(doubled);
        out.insert(padded);
    }

    /// `v` percent-encoded: every byte but letters, digits and `-._~` (spaces as `+`), or with
    /// `all`, every byte but letters and digits as `%XX` (spaces too).
    fn percent_encoded(v: &[u8], all: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(v.len() * 2);
        for &b in v {
            if b.is_ascii_alphanumeric() || (!all && b"-._~".contains(&b)) {
                out.push(b);
            } else if b == b' ' && !all {
                out.push(b'+');
            } else {
                out.extend_from_slice(format!("%{b:02X}").as_bytes());
            }
        }
        out
    }

    /// `v` with its spaces written as `+`.
    fn plus_for_space(v: &[u8]) -> Vec<u8> {
        v.iter()
            .map(|&b| if b == b' ' { b'+' } else { b })
            .collect()
    }

    fn rule_ids(
        rs: &crate::RuleSet,
        pol: &Policy,
        insp: &mut Inspection,
        (kind, name): (Kind, &[u8]),
        value: &[u8],
        fast: bool,
    ) -> Vec<u32> {
        insp.reset();
        insp.st.plain_off = !fast;
        let mut eng = rs.engine(pol, &mut insp.st);
        if kind == Kind::Body {
            // The raw body of a parsed body: its residual rules.
            eng.raw_body(value, true);
        } else {
            eng.value(kind, name, false, value);
        }
        insp.rule_ids()
    }

    /// The rules the general evaluation finds in `v` as `kind`, and the disagreement with
    /// the fast paths, if any.
    #[allow(clippy::type_complexity)]
    fn compare_paths(
        rs: &crate::RuleSet,
        pol: &Policy,
        insp: &mut Inspection,
        kind: (Kind, &[u8]),
        v: &[u8],
    ) -> (Vec<u32>, Option<(Kind, String, Vec<u32>, Vec<u32>)>) {
        let slow = rule_ids(rs, pol, insp, kind, v, false);
        let fast = rule_ids(rs, pol, insp, kind, v, true);
        let wrong = (slow != fast).then(|| {
            (
                kind.0,
                String::from_utf8_lossy(v).into_owned(),
                slow.clone(),
                fast,
            )
        });
        (slow, wrong)
    }

    /// Both paths find the rules `want` in the query argument `v`.
    fn both_paths_find(
        rs: &crate::RuleSet,
        pol: &Policy,
        insp: &mut Inspection,
        v: &[u8],
        want: &[u32],
    ) {
        for fast in [false, true] {
            let got = rule_ids(rs, pol, insp, (Kind::QueryArg, b"q"), v, fast);
            assert_eq!(
                got,
                want,
                "{} (fast path {fast})",
                String::from_utf8_lossy(v)
            );
        }
    }

    /// Each kind's scanner says what the scanner of every pattern says, for candidates among
    /// the kind's rules: the same factor and second-clause hits and the same phrase verdict,
    /// on every plain form of both corpora, with all the kind's rules as candidates and with
    /// each rule alone. Fails when a kind's scanner leaves out a pattern one of its rules
    /// needs (a rule reading that kind, or a header rule naming one).
    #[test]
    fn kind_scans_agree_with_the_scan_of_every_pattern() {
        let rs = shipped();
        let plan = plan_of(&rs);
        let n = rs.rules.len();
        let all = plan
            .kind_scans
            .get(usize::from(plan.all_scan))
            .expect("the scan of every pattern");
        let mut forms = HashSet::new();
        for line in corpora_lines() {
            plain_forms(&line, &mut forms);
        }
        let mut forms: Vec<Vec<u8>> = forms
            .into_iter()
            .filter(|v| plan.eligible(v, class_mask(v)))
            .collect();
        forms.sort();
        // Every third form: the test stays quick in a debug build.
        let forms: Vec<Vec<u8>> = forms.into_iter().step_by(3).collect();
        assert!(forms.len() > 1000, "only {} eligible forms", forms.len());
        let run = |ks: &KindScan, v: &[u8], cand: &Bitset| {
            let (mut f, mut s) = (Bitset::new(n), Bitset::new(n));
            let ok = scan_with(
                ks.scan.as_ref(),
                &ks.pat_rules,
                &ks.canon,
                &ks.word_only,
                v,
                cand,
                &mut f,
                &mut s,
            );
            (
                ok,
                f.ones().collect::<Vec<_>>(),
                s.ones().collect::<Vec<_>>(),
            )
        };
        let (mut compared, mut smaller) = (0usize, 0usize);
        for k in Kind::ALL {
            let ks = plan.kind_scan(k).expect("every kind has a scan");
            let of_kind = &plan.kind_rules[k as usize];
            if ks.canon.len() < all.canon.len() {
                smaller += 1;
            }
            let mut cands = vec![of_kind.clone()];
            // Each rule with a pattern alone (the others cannot tell the scans apart).
            let mut patterned = all.scan_rules.clone();
            patterned.or_with(&plan.second_rules);
            patterned.and_with(of_kind);
            for r in patterned.ones() {
                let mut one = Bitset::new(n);
                one.set(r);
                cands.push(one);
            }
            for v in &forms {
                for cand in &cands {
                    assert_eq!(
                        run(ks, v, cand),
                        run(all, v, cand),
                        "{k:?} on {:?} with rules {:?}",
                        String::from_utf8_lossy(v),
                        cand.ones().map(|r| rs.rules[r].id).collect::<Vec<_>>()
                    );
                    compared += 1;
                }
            }
        }
        assert!(compared > 100_000, "{compared}");
        assert!(smaller >= 4, "only {smaller} kinds have a smaller scanner");
    }

    /// The fast path's detector skips (`detectors_skipped`) and what they rely on: on every
    /// eligible form of every corpus payload, every chain's variant holds no byte class that
    /// its input (the value, or its URL decoding for a chain that starts with a decoder) lacks,
    /// but a space where the input had whitespace, `,` or `;`, and lower case where it had
    /// upper case; and a detector skipped on the value finds nothing in its variant.
    #[test]
    fn variants_add_no_byte_but_a_space() {
        use super::variant;
        use crate::transform::class::{self, CMD, LONG, LOWER, SPACE, UPPER, WS_OTHER};
        use crate::transform::class_mask;
        let rs = shipped();
        let plan = plan_of(&rs);
        let mut forms = HashSet::new();
        for line in corpora_lines() {
            plain_forms(&line, &mut forms);
            forms.insert(percent_encoded(&line, false));
            forms.insert(line);
        }
        let (mut a, mut b, mut d) = (Vec::new(), Vec::new(), Vec::new());
        let (mut checked, mut skips) = (0, 0);
        for v in &forms {
            let mask = class_mask(v);
            if !plan.eligible(v, mask) {
                continue;
            }
            crate::transform::url_decode_uni::apply(v, &mut d);
            let decoded = plan.decoders && mask & (class::PCT | class::PLUS) != 0;
            let dmask = if decoded { class_mask(&d) } else { 0 };
            let none = crate::bitset::Bitset::new(rs.rules.len());
            let skipped = plan.detectors_skipped(mask | dmask).unwrap_or(&none);
            for (ci, chain) in rs.chains.iter().enumerate() {
                let from_d = decoded
                    && chain
                        .first()
                        .is_some_and(|t| crate::transform::URL_DECODERS.contains(t));
                let (src, smask, steps) = if from_d {
                    (&d[..], dmask, chain.get(1..).unwrap_or(&[]))
                } else {
                    (&v[..], mask, &chain[..])
                };
                let Some((at, _)) = variant(steps, src, smask, &mut a, &mut b) else {
                    continue;
                };
                let out: &[u8] = match at {
                    0 => src,
                    1 => &a,
                    _ => &b,
                };
                // The detector skips: a detector skipped on this value finds nothing in the
                // variant its chain gives.
                for r in skipped.ones() {
                    if let Some(rule) = rs.rules.get(r).filter(|rule| rule.chain == ci) {
                        if let crate::ruleset::Matcher::Detector(det) = &rule.matcher {
                            assert!(
                                crate::inspect::run_detector(*det, out, b"").is_none(),
                                "rule {} skipped on {:?}",
                                rule.id,
                                String::from_utf8_lossy(v)
                            );
                            skips += 1;
                        }
                    }
                }
                let m = class_mask(out) & !LONG;
                let ok = m & !(smask | SPACE | LOWER) == 0
                    && (m & SPACE == 0 || smask & (SPACE | WS_OTHER | CMD) != 0)
                    && (m & LOWER == 0 || smask & (LOWER | UPPER) != 0);
                assert!(
                    ok,
                    "{chain:?} on {:?} gave {:?}",
                    String::from_utf8_lossy(src),
                    String::from_utf8_lossy(out)
                );
                checked += 1;
            }
        }
        assert!(checked > 100_000, "only {checked} variants checked");
        assert!(skips > 10_000, "only {skips} detector skips checked");
    }

    /// The fast path clears a value only when the general evaluation finds nothing in it: on
    /// every payload of both corpora (attacks and benign traffic) as it is and in plain forms
    /// (letters, digits and spaces in several casings and spacings), in every kind of target
    /// that reads argument-like values, at paranoia 4 (every rule active).
    /// Words (ASCII letters, digits, `_`) are cleared before the candidate selection only
    /// when no rule can match them: every word of both corpora and every word-only pattern of
    /// the kinds' scans (each a value on its own, as written, in lower and in upper case), in
    /// every kind of target that reads such values, gets the same findings with the fast paths
    /// as with the general evaluation; many are cleared that way and some are findings
    /// (`whoami`: 3007). Fails when the word check skips the scan, or takes a kind one of
    /// whose rules can match a word without it.
    #[test]
    fn words_are_cleared_before_selection_only_when_no_rule_can_match_them() {
        let rs = shipped();
        let pp = plan_of(&rs);
        let cfg = PolicyConfig {
            paranoia: 4,
            ..PolicyConfig::default()
        };
        let pol = Policy::compile(&cfg, &rs).expect("policy");
        let is_word =
            |w: &[u8]| !w.is_empty() && w.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_');
        let mut words = HashSet::new();
        let mut add = |w: &[u8]| {
            if is_word(w) {
                words.insert(w.to_vec());
                words.insert(w.to_ascii_lowercase());
                words.insert(w.to_ascii_uppercase());
            }
        };
        for line in corpora_lines() {
            for w in line.split(|&b| !(b.is_ascii_alphanumeric() || b == b'_')) {
                add(w);
            }
        }
        for ks in &pp.kind_scans {
            for c in &ks.canon {
                add(c);
            }
        }
        for w in [
            &b"whoami"[..],
            b"uname",
            b"sysinfo",
            b"price_asc",
            b"electronics",
        ] {
            add(w);
        }
        let mut insp = Inspection::new();
        insp.set_header_memory(false);
        let (mut by_word, mut flagged, mut wrong) = (0usize, 0usize, Vec::new());
        for v in &words {
            let mask = crate::transform::class_mask(v);
            for kind in [
                (Kind::QueryArg, &b"q"[..]),
                (Kind::BodyArg, b"q"),
                (Kind::ArgName, b"q"),
                (Kind::Header, b"referer"),
                (Kind::Header, b"user-agent"),
                (Kind::Cookie, b"q"),
                (Kind::CookieName, b"q"),
                (Kind::Path, b""),
            ] {
                let (slow, disagreement) = compare_paths(&rs, &pol, &mut insp, kind, v);
                by_word += usize::from(pp.word_is_clean(kind.0, v, mask));
                flagged += usize::from(!slow.is_empty());
                wrong.extend(disagreement);
            }
        }
        assert!(
            wrong.is_empty(),
            "{} disagreements, first: {:?}",
            wrong.len(),
            wrong.first()
        );
        eprintln!(
            "{} words: {by_word} cleared as words, {flagged} findings",
            words.len()
        );
        assert!(by_word > 10_000 && flagged > 10, "{by_word} {flagged}");
        let found = rule_ids(
            &rs,
            &pol,
            &mut insp,
            (Kind::QueryArg, b"cmd"),
            b"whoami",
            true,
        );
        assert!(found.contains(&3007), "{found:?}");
    }

    #[test]
    fn fast_path_agrees_with_the_general_path_on_the_corpora() {
        let rs = shipped();
        assert!(rs.plain.is_some(), "the shipped rules allow the fast path");
        let cfg = PolicyConfig {
            paranoia: 4,
            ..PolicyConfig::default()
        };
        let pol = Policy::compile(&cfg, &rs).expect("policy");
        let mut forms = HashSet::new();
        for line in corpora_lines() {
            plain_forms(&line, &mut forms);
            // Its spaces as `+` (a form-encoded payload that is not percent-encoded).
            forms.insert(plus_for_space(&line));
            // Percent-encoded as a form encoder does, and its bytes other than letters and
            // digits only (cleared through the decoding when it is plain).
            forms.insert(percent_encoded(&line, false));
            forms.insert(percent_encoded(&line, true));
            forms.insert(line);
        }
        for extra in [
            &b"1 union all select password from users"[..],
            b"admin or 1 1",
            b"cat etc passwd",
            b"SELECT name FROM users WHERE id 1 ORDER BY 2",
            b"jndi ldap evil com a",
            b"c2VsZWN0IDEgZnJvbSB1c2Vycw",
            b"Mozilla 5 0 compatible Nikto 2 1 6",
        ] {
            plain_forms(extra, &mut forms);
        }
        // Lookalikes that `fold_lookalikes` turns into the bytes the XSS detector looks for, in
        // values that hold none of those bytes themselves (not eligible: the transform's trigger
        // bytes are not tolerated, so the general path must flag them).
        for extra in [
            "＜script＞alert(1)＜/script＞",
            "＜svg onload＝alert(1)＞",
            "“＞＜script＞alert(document.domain)＜/script＞",
        ] {
            forms.insert(extra.as_bytes().to_vec());
        }
        // Values with an `&` that starts no reference (eligible) next to ones that do;
        // numeric values (IP addresses in several notations); values with `+` (eligible through
        // their decoding).
        for extra in [
            &b"Tom & Jerry"[..],
            b"cat /etc/passwd & id",
            b"a && whoami",
            b"x & ping -c 3 evil.com &",
            b"color=black&size=42&ref=x",
            b"1 & 1=1",
            b"q=1&union=select",
            b"& lt;script& gt;",
            b"&lt;script&gt;alert(1)&lt;/script&gt;",
            b"Q&A: R&D & Ops",
            b"169.254.169.254",
            b"2852039166",
            b"0177.0.0.1",
            b"127.0.0.1",
            b"10.0.0.1",
            b"1..2",
            b"../..",
            b"-1",
            b"2026-11-24",
            b"19.99",
            b"12345678901234567890",
            b"0251.0376.0251.0376",
            b"q=laptop+bag&category=electronics&in_stock=true",
            b"/search?q=1+union+select+password+from+users",
            b"1+or+1=1",
            b"cat+/etc/passwd",
            b"a+&&+whoami",
            b"c2VsZWN0IDEg+ZnJvbSB1c2Vycw",
            b"abc+c2VsZWN0IDEgZnJvbSB1c2Vycw==+def",
            b"AAAA+c2VsZWN0IDEgZnJvbSB1c2Vycw",
            b"x=AAAA+PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg",
            b"YWxlcnQoMSk+",
            b"<script>alert(1)</script>+",
            b"+-+-+1",
            b"admin'+--+",
            // Line comments (eligible: comment transforms cut the value) and block ones.
            b"https://shop.example.com/catalog/shoes?color=black&size=42",
            b"http://169.254.169.254/latest/meta-data/",
            b"file:///etc/passwd",
            b"gopher://127.0.0.1:6379/_info",
            b"Order #42 -- thanks!",
            b"1 or 1=1 -- x",
            b"admin' #",
            b"x' or 'a'='a'//",
            b"1/**/union/**/select",
            // URL-encoded values: plain once decoded (cleared through the decoding), or not.
            b"items%3A3%2Ctotal%3A129.90",
            b"2026-11-24T21%3A04%3A11Z",
            b"q=running+shoes+for+men%27s+trail&category=sports",
            b"1%27%20or%20%271%27%3D%271",
            b"%2527%20or%201%3D1",
            b"%u0027%20union%20select%201",
            b"%3Cscript%3Ealert(1)%3C/script%3E",
            b"%2e%2e%2f%2e%2e%2fetc%2fpasswd",
            b"..%2F..%2Fetc%2Fpasswd",
            b"%00",
            b"a%0Ab",
            b"x%26lt%3Bscript",
            b"100%",
            b"%zz",
            b"50%+off",
        ] {
            forms.insert(extra.to_vec());
            forms.insert(extra.to_ascii_uppercase());
        }
        let mut insp = Inspection::new();
        insp.set_header_memory(false);
        let (mut cleared, mut flagged, mut wrong) = (0usize, 0usize, Vec::new());
        let pp = rs.plain.as_ref().expect("plan");
        let eligible = forms
            .iter()
            .filter(|v| pp.eligible(v, crate::transform::class_mask(v)))
            .count();
        for v in &forms {
            for kind in [
                (Kind::QueryArg, &b"q"[..]),
                (Kind::BodyArg, b"q"),
                (Kind::ArgName, b"q"),
                (Kind::Header, b"referer"),
                // Rules of one header (scanner user agents: phrases).
                (Kind::Header, b"user-agent"),
                (Kind::Cookie, b"q"),
                (Kind::Path, b""),
                (Kind::Body, b""),
            ] {
                let (slow, disagreement) = compare_paths(&rs, &pol, &mut insp, kind, v);
                if let Some(d) = disagreement {
                    wrong.push(d);
                } else if slow.is_empty() {
                    cleared += 1;
                } else {
                    flagged += 1;
                }
            }
        }
        assert!(
            wrong.is_empty(),
            "{} disagreements, first: {:?}",
            wrong.len(),
            wrong.first()
        );
        // The comparison must cover both outcomes.
        eprintln!(
            "{} values ({eligible} eligible): cleared {cleared}, flagged {flagged}",
            forms.len()
        );
        // The comparison must cover both outcomes, and values with punctuation.
        assert!(
            cleared > 10_000 && flagged > 100,
            "cleared {cleared}, flagged {flagged}"
        );
        assert!(eligible > 100_000, "{eligible}");
    }

    /// Numeric values walk only the regexes that can match digits, dots and dashes; phrases
    /// made of them still count (no shipped phrase is one, so this test's rules).
    #[test]
    fn numeric_values_still_meet_numeric_phrases_and_regexes() {
        let src = r#"
class: ssrf
rules:
  - id: 90001
    name: A numeric phrase
    description: The decimal form of 169.254.169.254.
    severity: critical
    paranoia: 1
    tags: [test]
    targets: [args]
    transforms: [lowercase]
    match:
      contains_any: ["2852039166"]
  - id: 90002
    name: A regex over digits
    description: Two digits joined by two dots.
    severity: critical
    paranoia: 1
    tags: [test]
    targets: [args]
    transforms: [lowercase]
    match:
      regex: '\d\.\.\d'
  - id: 90003
    name: A regex that needs letters
    description: Never fires on a number.
    severity: critical
    paranoia: 1
    tags: [test]
    targets: [args]
    transforms: [lowercase]
    match:
      regex: '[a-z]\d'
"#;
        let rs = crate::RuleSet::from_sources(&[("t.yaml".to_string(), src.to_string())])
            .expect("rules load");
        let pp = rs.plain.as_ref().expect("a plan");
        assert!(!pp.numeric.get(2), "a regex that needs letters is left out");
        let pol = Policy::compile(&PolicyConfig::default(), &rs).expect("policy");
        let mut insp = Inspection::new();
        insp.set_header_memory(false);
        for (v, want) in [
            (&b"2852039166"[..], vec![90001]),
            (b"1..2", vec![90002]),
            (b"12.5", vec![]),
            (b"x2852039166", vec![90001, 90003]),
        ] {
            assert!(pp.eligible(v, crate::transform::class_mask(v)));
            both_paths_find(&rs, &pol, &mut insp, v, &want);
        }
    }

    /// A line comment (`--`, `//`, `#`) cuts an eligible value where a comment transform reads
    /// it: the fast path runs regexes on the cut value, and a value where the comment would end
    /// at a newline (the text after it joins the text before) or a block comment is left to the
    /// general path.
    #[test]
    fn line_comments_cut_values_on_the_fast_path() {
        let src = r#"
class: sqli
rules:
  - id: 90011
    name: A phrase across a line comment
    description: Only seen once the comment is removed.
    severity: critical
    paranoia: 1
    tags: [test]
    targets: [args]
    transforms: [remove_comments]
    match:
      contains_any: ["a\nb"]
  - id: 90012
    name: The whole value once comments are removed
    description: Anchored at both ends.
    severity: critical
    paranoia: 1
    tags: [test]
    targets: [args]
    transforms: [lowercase, replace_comments]
    match:
      regex: '^admin''?\s*$'
  - id: 90013
    name: A host after a scheme
    description: Comment removal cuts it from the value.
    severity: critical
    paranoia: 1
    tags: [test]
    targets: [args]
    transforms: [remove_comments]
    match:
      contains_any: ["evil.example"]
"#;
        let rs = crate::RuleSet::from_sources(&[("t.yaml".to_string(), src.to_string())])
            .expect("rules load");
        let pp = rs.plain.as_ref().expect("a plan");
        let pol = Policy::compile(&PolicyConfig::default(), &rs).expect("policy");
        let mut insp = Inspection::new();
        insp.set_header_memory(false);
        for (v, eligible, want) in [
            (&b"admin'--"[..], true, vec![90012]),
            (b"ADMIN # x", true, vec![90012]),
            (b"admin // x", true, vec![90012]),
            (b"admin -- x", true, vec![90012]),
            (b"admin x -- y", true, vec![]),
            (b"https://evil.example/x", true, vec![]),
            (b"see evil.example -- x", true, vec![90013]),
            (b"a--x\nb", false, vec![90011]),
            (b"a#x\nb", false, vec![90011]),
            (b"a\nb -- x", false, vec![90011]),
            (b"admin/*x*/", false, vec![90012]),
            (b"admin*/", false, vec![90012]),
        ] {
            both_paths_find(&rs, &pol, &mut insp, v, &want);
            assert_eq!(
                pp.eligible(v, crate::transform::class_mask(v)),
                eligible,
                "{}",
                String::from_utf8_lossy(v)
            );
        }
    }

    /// `may_decode` is true wherever `base64_decode_detect` changes the value, and (runs of up
    /// to 2,048 characters being decoded to check) false on the others but a few with longer
    /// runs.
    #[test]
    fn may_decode_agrees_with_the_transform_on_the_corpora() {
        use crate::transform::base64_decode_detect::{apply, may_decode};
        let mut out = Vec::new();
        let mut decoded = 0;
        let mut lines = corpora_lines();
        // Session ids, hashes and tokens: base64 characters that decode to binary.
        lines.push(b"session=3f9a1c77e2b54d0c9e8f1a2b3c4d5e6f".to_vec());
        lines.push(b"d41d8cd98f00b204e9800998ecf8427e".to_vec());
        lines.push(b"pk_live_3f9a1c0e7b2d4a6f8e1c3b5d7f9a2c4e".to_vec());
        let mut extra = 0;
        for line in lines {
            let changed = apply(&line, &mut out);
            decoded += usize::from(changed);
            let may = may_decode(&line);
            assert!(!changed || may, "{}", String::from_utf8_lossy(&line));
            if may && !changed {
                assert!(line.len() > 2048, "{}", String::from_utf8_lossy(&line));
                extra += 1;
            }
        }
        assert!(decoded > 10, "{decoded}");
        assert!(extra < 20, "{extra} values with a long run");
        assert!(!may_decode(b"3f9a1c77e2b54d0c9e8f1a2b3c4d5e6f"));
        // The class mask's shortcut answers as the bytes do, on every line and on runs of
        // letters with each base64 character but a letter put in.
        use crate::transform::base64_decode_detect::may_decode_masked;
        let mut lines = corpora_lines();
        for c in b"0123456789+/-_=. ".iter() {
            let mut v = b"c2VsZWN0IDEgZnJvbSB1c2Vycw".to_vec();
            v.insert(5, *c);
            lines.push(v.clone());
            v.retain(|b| b.is_ascii_alphabetic() || b == c);
            lines.push(v);
        }
        let mut skipped = 0;
        for line in &lines {
            let m = class_mask(line);
            assert_eq!(
                may_decode_masked(line, m),
                may_decode(line),
                "{}",
                String::from_utf8_lossy(line)
            );
            skipped += usize::from(m & crate::transform::class::B64_NON_LETTER == 0);
        }
        assert!(skipped > 100, "{skipped}");
        assert!(may_decode(b"c2VsZWN0IDEgZnJvbSB1c2Vycw"));
    }
}
