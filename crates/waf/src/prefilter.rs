//! Literal prefilters for regexes.
//!
//! From a regex's syntax tree we compute a set of *necessary factors*: lowercase byte strings
//! such that every match of the regex contains at least one of them (compared
//! ASCII-case-insensitively). The factors of every regex go into the rule set's one
//! Aho-Corasick automaton; a regex runs only on values where one of its factors was seen.
//! Regexes with no useful factor (shorter than [`MIN_FACTOR`]) run on every value their rules
//! target.
//!
//! Case folding: a class is read as a literal letter only when it is exactly `{x, X}` for an
//! ASCII letter; Unicode folds such as `ſ` (U+017F) for `s` or the Kelvin sign for `k` make the
//! class a non-literal, so the prefilter never hides a match the regex would find.

use regex_syntax::hir::{Class, Hir, HirKind};

/// Shortest useful factor.
pub(crate) const MIN_FACTOR: usize = 3;
const MAX_FACTORS: usize = 64;

enum Info {
    /// The node matches exactly this (lowercased) string.
    Exact(Vec<u8>),
    /// Every match contains one of these.
    Need(Vec<Vec<u8>>),
    /// Nothing useful is known.
    Nothing,
}

fn class_literal(c: &Class) -> Option<u8> {
    let mut bytes: Vec<u32> = Vec::new();
    match c {
        Class::Unicode(u) => {
            for r in u.ranges() {
                let (s, e) = (r.start() as u32, r.end() as u32);
                if e - s > 2 || e >= 0x80 {
                    return None;
                }
                bytes.extend(s..=e);
            }
        }
        Class::Bytes(b) => {
            for r in b.ranges() {
                let (s, e) = (u32::from(r.start()), u32::from(r.end()));
                if e - s > 2 || e >= 0x80 {
                    return None;
                }
                bytes.extend(s..=e);
            }
        }
    }
    match bytes.as_slice() {
        [one] => u8::try_from(*one).ok().map(|b| b.to_ascii_lowercase()),
        [a, b] => {
            let (a, b) = (u8::try_from(*a).ok()?, u8::try_from(*b).ok()?);
            (a.is_ascii_alphabetic() && a.eq_ignore_ascii_case(&b) && a != b)
                .then_some(a.to_ascii_lowercase())
        }
        _ => None,
    }
}

fn score(set: &[Vec<u8>]) -> usize {
    set.iter().map(Vec::len).min().unwrap_or(0)
}

fn better(a: Vec<Vec<u8>>, b: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let (sa, sb) = (score(&a), score(&b));
    if sb > sa || (sb == sa && b.len() < a.len()) {
        b
    } else {
        a
    }
}

fn info(h: &Hir) -> Info {
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => Info::Exact(Vec::new()),
        HirKind::Literal(l) => Info::Exact(l.0.iter().map(u8::to_ascii_lowercase).collect()),
        HirKind::Class(c) => match class_literal(c) {
            Some(b) => Info::Exact(vec![b]),
            None => Info::Nothing,
        },
        HirKind::Capture(c) => info(&c.sub),
        HirKind::Repetition(r) => {
            if r.min == 0 {
                return Info::Nothing;
            }
            match info(&r.sub) {
                Info::Exact(s) if r.min == 1 && r.max == Some(1) => Info::Exact(s),
                Info::Exact(s) if !s.is_empty() => Info::Need(vec![s]),
                Info::Need(n) => Info::Need(n),
                _ => Info::Nothing,
            }
        }
        HirKind::Concat(children) => {
            let mut all_exact = true;
            let mut run: Vec<u8> = Vec::new();
            let mut best: Vec<Vec<u8>> = Vec::new();
            for child in children {
                match info(child) {
                    Info::Exact(s) => run.extend_from_slice(&s),
                    other => {
                        all_exact = false;
                        if !run.is_empty() {
                            best = better(best, vec![std::mem::take(&mut run)]);
                        }
                        if let Info::Need(n) = other {
                            best = better(best, n);
                        }
                    }
                }
            }
            if all_exact {
                return Info::Exact(run);
            }
            if !run.is_empty() {
                best = better(best, vec![run]);
            }
            if best.is_empty() {
                Info::Nothing
            } else {
                Info::Need(best)
            }
        }
        HirKind::Alternation(children) => {
            let mut set = Vec::new();
            for child in children {
                match info(child) {
                    Info::Exact(s) if !s.is_empty() => set.push(s),
                    Info::Need(n) => set.extend(n),
                    _ => return Info::Nothing,
                }
                if set.len() > MAX_FACTORS {
                    return Info::Nothing;
                }
            }
            Info::Need(set)
        }
    }
}

/// Necessary factors of `pattern`, or `None` when the regex must run unfiltered.
pub(crate) fn factors(pattern: &str, unicode: bool) -> Option<Vec<Vec<u8>>> {
    let hir = regex_syntax::ParserBuilder::new()
        .utf8(false)
        .unicode(unicode)
        .build()
        .parse(pattern)
        .ok()?;
    let set = match info(&hir) {
        Info::Exact(s) => vec![s],
        Info::Need(n) => n,
        Info::Nothing => return None,
    };
    if set.is_empty() || set.len() > MAX_FACTORS || score(&set) < MIN_FACTOR {
        return None;
    }
    let mut set = set;
    set.sort();
    set.dedup();
    Some(set)
}

#[cfg(test)]
mod tests {
    use super::factors;

    fn f(p: &str) -> Option<Vec<String>> {
        factors(p, true).map(|v| {
            v.into_iter()
                .map(|s| String::from_utf8_lossy(&s).into_owned())
                .collect()
        })
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
}
