//! The fast path for plain values: ASCII letters, digits and spaces only.
//!
//! Most values an API receives are plain: names, titles, notes, tags, enumerations, search
//! words. For such a value the general evaluation ([`crate::inspect`]) still computes each
//! chain's variant (lowercased, whitespace removed, compressed), scans every distinct variant
//! for all phrases and regex factors, and keeps its per-rule bitsets up to date: several
//! thousand instructions for a 25-byte title. This module decides, with far less work, that a
//! plain value matches no rule; a value it cannot clear goes through the general evaluation
//! unchanged, so findings (and `explain`) are exactly what they were.
//!
//! Why it is exact:
//!
//! * **Variants.** The only transforms a plain value can trigger (see
//!   [`crate::transform::Transform::trigger`]) are `lowercase`, `compress_whitespace`,
//!   `remove_whitespace` and `cmd_line`, plus `base64_decode_detect` and `decode_all` when the
//!   value holds a run that could be base64 (such a value is not taken here). Each of the four
//!   only changes letter case and removes or collapses spaces, so every variant of a plain
//!   value, with its spaces removed and lowercased, equals the value's own *canonical form*
//!   (spaces removed, lowercased). [`PlainPlan::build`] checks that the rule set's transforms
//!   still fit this, and gives up (no fast path) otherwise.
//! * **Phrases and factors.** If a phrase or a regex factor occurs in a variant, its canonical
//!   form occurs in the value's canonical form. One scan of the value with a scanner of the
//!   canonical patterns (spaces skipped, case folded: [`crate::scan::Scanner::skipping_spaces`])
//!   finds every such pattern; a pattern holding any other byte cannot occur in a plain
//!   variant and is left out. A hit of a candidate rule's pattern sends the value to the
//!   general evaluation.
//! * **Regexes that need no factor.** An unfiltered regex, or one whose gate accepts a class
//!   plain values have (the space), runs here on its own chain's variant, unless the regex
//!   cannot match a string of letters, digits and spaces at all
//!   ([`crate::prefilter::restrict`]). Detectors run here too (their own gates make
//!   that cheap when they cannot fire).
//! * Negated rules (which fire when nothing matches) send the value to the general evaluation.
//!
//! `tests/plain_fast_path.rs`-style checks live in this module's tests: every corpus payload,
//! reduced to its letters, digits and spaces in several casings and spacings, gets the same
//! verdict with and without the fast path.

use crate::bitset::Bitset;
use crate::ruleset::{Matcher, PatEntry, PatKind, Rule};
use crate::scan::Scanner;
use crate::transform::{base64_decode_detect, class, class_mask, Transform};

/// The class bits of a plain value's bytes.
pub(crate) const PLAIN_BYTES: u64 = class::UPPER | class::LOWER | class::DIGIT | class::SPACE;

/// The bytes of a plain value.
pub(crate) fn plain_byte_table() -> [bool; 256] {
    let mut t = [false; 256];
    for b in (b'a'..=b'z').chain(b'A'..=b'Z').chain(b'0'..=b'9') {
        t[usize::from(b)] = true;
    }
    t[usize::from(b' ')] = true;
    t
}

/// The transforms that can change a plain value without a base64 run, and only by letter case
/// and spaces.
fn case_and_space_only(t: Transform) -> bool {
    matches!(
        t,
        Transform::Lowercase
            | Transform::CompressWhitespace
            | Transform::RemoveWhitespace
            | Transform::CmdLine
    )
}

/// What the rule set needs to clear a plain value quickly (see the module doc).
#[derive(Debug)]
pub(crate) struct PlainPlan {
    /// The canonical forms of the phrases and factors that can occur in a plain variant.
    scan: Option<Scanner>,
    /// Per pattern of `scan`: the rules it stands for, and whether it is a phrase of the rule
    /// (else a factor of its regex).
    pat_rules: Vec<Vec<(u32, bool)>>,
    /// Per rule: its regex restricted to plain text (see [`crate::prefilter::restrict`]);
    /// `None` for other matchers and for regexes no plain text can match.
    re: Vec<Option<regex::bytes::Regex>>,
    /// Regex rules that may match a plain value without a factor: unfiltered regexes and
    /// regexes whose gate accepts the space.
    run: Bitset,
    /// The restricted regexes of `run` in one set, for the rules that read the value as it is.
    run_set: Option<regex::bytes::RegexSet>,
    /// Detector rules.
    detectors: Bitset,
    /// Rules whose presence among the candidates sends a plain value to the general path.
    pub fallback: Bitset,
}

impl PlainPlan {
    /// The plan of a compiled rule set, or `None` when its transforms do not allow one.
    pub(crate) fn build(
        rules: &[Rule],
        chains: &[Vec<Transform>],
        patterns: &[Vec<u8>],
        pat_entries: &[Vec<PatEntry>],
    ) -> Option<PlainPlan> {
        let plain_or_long = PLAIN_BYTES | class::LONG;
        for chain in chains {
            let mut spaces_removed = false;
            for &t in chain {
                let trig = t.trigger();
                if trig & class::LONG != 0 {
                    // A base64 run can appear once spaces are gone; before that, the caller
                    // has checked that the value holds none.
                    if spaces_removed || trig & PLAIN_BYTES != 0 {
                        return None;
                    }
                } else if trig & plain_or_long != 0 && !case_and_space_only(t) {
                    return None;
                }
                spaces_removed |= t == Transform::RemoveWhitespace;
            }
        }
        let n = rules.len();
        let mut fallback = Bitset::new(n);
        let mut run = Bitset::new(n);
        let mut detectors = Bitset::new(n);
        let mut allowed = [false; 128];
        for (a, &p) in allowed.iter_mut().zip(plain_byte_table().iter()) {
            *a = p;
        }
        let mut re = Vec::with_capacity(n);
        let mut set_patterns = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            if r.negate {
                fallback.set(i);
            }
            let mut restricted = None;
            match &r.matcher {
                Matcher::Detector(_) => detectors.set(i),
                Matcher::Regex {
                    re: full,
                    filtered,
                    unicode,
                    classes,
                    ..
                } => {
                    if let Some(p) =
                        crate::prefilter::restrict(full.as_str(), *unicode, r.fold_case, &allowed)
                    {
                        // A restricted pattern that does not compile keeps the whole regex.
                        let compiled = regex::bytes::RegexBuilder::new(&p)
                            .size_limit(8 << 20)
                            .build()
                            .unwrap_or_else(|_| full.clone());
                        if !filtered || classes & plain_or_long != 0 {
                            run.set(i);
                            set_patterns.push(compiled.as_str().to_string());
                        }
                        restricted = Some(compiled);
                    }
                }
                Matcher::Phrases { .. } => {}
            }
            re.push(restricted);
        }
        // Canonical patterns, deduplicated.
        let mut canon: Vec<Vec<u8>> = Vec::new();
        let mut pat_rules: Vec<Vec<(u32, bool)>> = Vec::new();
        let mut index = std::collections::HashMap::new();
        for (p, entries) in patterns.iter().zip(pat_entries) {
            let c: Vec<u8> = p
                .iter()
                .filter(|&&b| b != b' ')
                .map(u8::to_ascii_lowercase)
                .collect();
            if c.is_empty() {
                // Only spaces: the scan cannot stand for it.
                entries.iter().for_each(|e| fallback.set(e.rule as usize));
                continue;
            }
            if !c
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            {
                continue;
            }
            let k = *index.entry(c.clone()).or_insert_with(|| {
                canon.push(c);
                pat_rules.push(Vec::new());
                canon.len() - 1
            });
            if let Some(list) = pat_rules.get_mut(k) {
                for e in entries {
                    let phrase = matches!(e.kind, PatKind::Phrase { .. });
                    // A factor of a regex no plain text can match says nothing.
                    if phrase || re.get(e.rule as usize).is_some_and(Option::is_some) {
                        list.push((e.rule, phrase));
                    }
                }
            }
        }
        let scan = if canon.is_empty() {
            None
        } else {
            Some(Scanner::skipping_spaces(&canon).ok()?)
        };
        let run_set = if set_patterns.is_empty() {
            None
        } else {
            Some(
                regex::bytes::RegexSetBuilder::new(&set_patterns)
                    .size_limit(32 << 20)
                    .build()
                    .ok()?,
            )
        };
        Some(PlainPlan {
            scan,
            pat_rules,
            re,
            run,
            run_set,
            detectors,
            fallback,
        })
    }

    /// Adds to `factor_hits` the candidate rules whose regex factor may occur in a variant of
    /// the plain `value`; false when a candidate rule's phrase may occur (the general path
    /// decides then).
    fn scan(&self, value: &[u8], cand: &Bitset, factor_hits: &mut Bitset) -> bool {
        let Some(sc) = &self.scan else {
            return true;
        };
        for (p, _, _) in sc.matches(value) {
            for &(r, phrase) in self.pat_rules.get(p).map_or(&[][..], Vec::as_slice) {
                if cand.get(r as usize) {
                    if phrase {
                        return false;
                    }
                    factor_hits.set(r as usize);
                }
            }
        }
        true
    }
}

/// Scratch space of the fast path, kept in the per-request state.
#[derive(Debug, Default)]
pub(crate) struct PlainScratch {
    a: Vec<u8>,
    b: Vec<u8>,
    /// Chains known to leave the current value as it is.
    same: Vec<usize>,
    /// Candidate rules whose factor the scan saw, then the regex rules to run.
    hits: Bitset,
}

impl PlainPlan {
    /// True when the plain `value` (class mask `mask`) matches none of the `cand` rules for
    /// sure; false sends it to the general evaluation.
    pub(crate) fn clean(
        &self,
        rules: &[Rule],
        chains: &[Vec<Transform>],
        value: &[u8],
        mask: u64,
        cand: &Bitset,
        sc: &mut PlainScratch,
    ) -> bool {
        if sc.hits.words() != cand.words() {
            sc.hits = Bitset::new(cand.words() * 64);
        }
        sc.hits.clear();
        if !self.scan(value, cand, &mut sc.hits) {
            return false;
        }
        sc.hits.or_with(&self.run);
        sc.hits.or_with(&self.detectors);
        sc.hits.and_with(cand);
        sc.same.clear();
        let mut set_needed = false;
        let mut next = sc.hits.next_one(0);
        while let Some(r) = next {
            next = sc.hits.next_one(r + 1);
            let Some(rule) = rules.get(r) else {
                continue;
            };
            let at = if sc.same.contains(&rule.chain) {
                0
            } else {
                let chain = chains.get(rule.chain).map_or(&[][..], Vec::as_slice);
                match variant(chain, value, mask, &mut sc.a, &mut sc.b) {
                    Some(0) => {
                        sc.same.push(rule.chain);
                        0
                    }
                    Some(at) => at,
                    None => return false,
                }
            };
            let hay: &[u8] = match at {
                0 => value,
                1 => &sc.a,
                _ => &sc.b,
            };
            let fired = match &rule.matcher {
                Matcher::Detector(d) => crate::inspect::run_detector(*d, hay).is_some(),
                Matcher::Regex { first, .. } => {
                    if at == 0 && self.run_set.is_some() && self.run.get(r) {
                        set_needed = true;
                        continue;
                    }
                    let starts_ok = first
                        .as_ref()
                        .is_none_or(|f| hay.first().is_some_and(|&b| f[usize::from(b)]));
                    starts_ok
                        && self
                            .re
                            .get(r)
                            .and_then(Option::as_ref)
                            .is_some_and(|re| re.is_match(hay))
                }
                Matcher::Phrases { .. } => true,
            };
            if fired {
                return false;
            }
        }
        !(set_needed && self.run_set.as_ref().is_some_and(|s| s.is_match(value)))
    }
}

/// True when `value` (whose class mask is `mask`) is plain: letters, digits and spaces, and no
/// run that `base64_decode_detect` or `decode_all` could decode.
#[inline]
pub(crate) fn is_plain(value: &[u8], mask: u64) -> bool {
    mask & !(PLAIN_BYTES | class::LONG) == 0
        && (mask & class::LONG == 0 || !base64_decode_detect::may_decode(value))
}

/// Applies `chain` to the plain `value` (class mask `mask`) the way the general evaluation
/// does (a transform runs only when its trigger meets the current variant's mask), into `a`
/// or `b`. Returns which holds the result (`0`: the value itself, `1`: `a`, `2`: `b`), or
/// `None` when a step would need a base64 decoding (not a plain variant any more).
pub(crate) fn variant(
    chain: &[Transform],
    value: &[u8],
    mask: u64,
    a: &mut Vec<u8>,
    b: &mut Vec<u8>,
) -> Option<u8> {
    let mut at = 0u8;
    let mut m = mask & !class::LONG;
    for &t in chain {
        if t.trigger() & m == 0 {
            continue;
        }
        if t.trigger() & class::LONG != 0 && !case_and_space_only(t) && m & class::LONG != 0 {
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
            if m & class::LONG != 0 {
                if base64_decode_detect::may_decode(cur) {
                    // Keep LONG: a later base64 step gives up above.
                } else {
                    m &= !class::LONG;
                }
            }
        }
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use crate::inspect::Sink;
    use crate::policy::{Policy, PolicyConfig};
    use crate::ruleset::gate_tests::{corpora_lines, shipped};
    use crate::target::Kind;
    use crate::Inspection;

    /// Plain forms of a payload: its other bytes turned into spaces, then as it is, lowercased,
    /// upper-cased, with its spaces doubled and with a space at both ends.
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
        out.insert(s.to_ascii_lowercase());
        out.insert(s.to_ascii_uppercase());
        out.insert(s);
        out.insert(doubled);
        out.insert(padded);
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
        eng.value(kind, name, false, value);
        insp.rule_ids()
    }

    /// The fast path clears a value only when the general evaluation finds nothing in it: on
    /// the plain forms of every payload of both corpora (attacks and benign traffic), in every
    /// kind of target that reads argument-like values, at paranoia 4 (every rule active).
    #[test]
    fn fast_path_agrees_with_the_general_path_on_plain_forms_of_the_corpora() {
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
        let mut insp = Inspection::new();
        insp.set_header_memory(false);
        let (mut cleared, mut flagged, mut wrong) = (0usize, 0usize, Vec::new());
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
            ] {
                let slow = rule_ids(&rs, &pol, &mut insp, kind, v, false);
                let fast = rule_ids(&rs, &pol, &mut insp, kind, v, true);
                if slow != fast {
                    wrong.push((kind.0, String::from_utf8_lossy(v).into_owned(), slow, fast));
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
            "{} forms: cleared {cleared}, flagged {flagged}",
            forms.len()
        );
        assert!(
            cleared > 10_000 && flagged > 100,
            "cleared {cleared}, flagged {flagged}"
        );
    }

    /// `may_decode` is never false where `base64_decode_detect` would change the value.
    #[test]
    fn may_decode_covers_every_decoding_on_the_corpora() {
        use crate::transform::base64_decode_detect::{apply, may_decode};
        let mut out = Vec::new();
        let mut decoded = 0;
        for line in corpora_lines() {
            if apply(&line, &mut out) {
                decoded += 1;
                assert!(may_decode(&line), "{}", String::from_utf8_lossy(&line));
            }
        }
        assert!(decoded > 10, "{decoded}");
    }
}
