//! `html_entity_decode`: decodes HTML character references.
//!
//! Handles decimal (`&#60;`), hex (`&#x3c;`, `&#X3C`) and the named entities attackers use
//! (`&lt;`, `&gt;`, `&amp;`, `&quot;`, `&apos;`, `&colon;`, `&lpar;`, `&Tab;`, `&NewLine;`, …),
//! each with or without the closing `;` (browsers accept `&#60` and `&lt`). Unknown names are
//! kept. Example: `&lt;script&#x3e;` → `<script>`.

use super::push_code_point;

const NAMED: &[(&[u8], &str)] = &[
    (b"lt", "<"),
    (b"gt", ">"),
    (b"amp", "&"),
    (b"quot", "\""),
    (b"apos", "'"),
    (b"nbsp", "\u{a0}"),
    (b"colon", ":"),
    (b"semi", ";"),
    (b"comma", ","),
    (b"period", "."),
    (b"excl", "!"),
    (b"quest", "?"),
    (b"equals", "="),
    (b"plus", "+"),
    (b"num", "#"),
    (b"dollar", "$"),
    (b"percnt", "%"),
    (b"lpar", "("),
    (b"rpar", ")"),
    (b"lsqb", "["),
    (b"rsqb", "]"),
    (b"lbrack", "["),
    (b"rbrack", "]"),
    (b"lcub", "{"),
    (b"rcub", "}"),
    (b"lbrace", "{"),
    (b"rbrace", "}"),
    (b"sol", "/"),
    (b"bsol", "\\"),
    (b"grave", "`"),
    (b"ast", "*"),
    (b"commat", "@"),
    (b"lowbar", "_"),
    (b"verbar", "|"),
    (b"vert", "|"),
    (b"hat", "^"),
    (b"tab", "\t"),
    (b"newline", "\n"),
];

/// The longest name in [`NAMED`].
const MAX_NAME: usize = {
    let mut m = 0;
    let mut i = 0;
    while i < NAMED.len() {
        if NAMED[i].0.len() > m {
            m = NAMED[i].0.len();
        }
        i += 1;
    }
    m
};

/// The entries of [`NAMED`] by the lowercase first letter of their name: entries
/// `ORDER[BY_FIRST[l].0..BY_FIRST[l].1]` start with letter `l` (`a` = 0). `&` followed by a
/// byte no name starts with is not looked up, and a name is compared with two or three entries
/// instead of all of them.
static ORDER: [u8; NAMED.len()] = {
    let mut o = [0u8; NAMED.len()];
    let mut k = 0;
    let mut l = b'a';
    while l <= b'z' {
        let mut i = 0;
        while i < NAMED.len() {
            if NAMED[i].0[0].to_ascii_lowercase() == l {
                o[k] = i as u8;
                k += 1;
            }
            i += 1;
        }
        l += 1;
    }
    o
};

static BY_FIRST: [(u8, u8); 26] = {
    let mut t = [(0u8, 0u8); 26];
    let mut k = 0;
    let mut l = 0;
    while l < 26 {
        let start = k;
        while k < NAMED.len()
            && NAMED[ORDER[k] as usize].0[0].to_ascii_lowercase() == b'a' + l as u8
        {
            k += 1;
        }
        t[l] = (start as u8, k as u8);
        l += 1;
    }
    t
};

/// Per lowercase first letter (`a` = 0): the second letters (lowercase, bit `l - b'a'`) of
/// the names starting with it. `&category` and `&brand` are rejected on their second letter.
static SECOND: [u32; 26] = {
    let mut t = [0u32; 26];
    let mut i = 0;
    while i < NAMED.len() {
        let n = NAMED[i].0;
        t[(n[0].to_ascii_lowercase() - b'a') as usize] |= 1 << (n[1].to_ascii_lowercase() - b'a');
        i += 1;
    }
    t
};

/// True when a name may start with the letters `a` and `b`.
fn may_start(a: u8, b: u8) -> bool {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    if !a.is_ascii_lowercase() || !b.is_ascii_lowercase() {
        return false;
    }
    SECOND
        .get(usize::from(a - b'a'))
        .is_some_and(|m| m & (1 << (b - b'a')) != 0)
}

/// The entries whose name starts with `b` (either case).
fn candidates(b: u8) -> &'static [u8] {
    let l = b.to_ascii_lowercase().wrapping_sub(b'a');
    match BY_FIRST.get(usize::from(l)) {
        Some(&(s, e)) => ORDER.get(usize::from(s)..usize::from(e)).unwrap_or(&[]),
        None => &[],
    }
}

/// What a character reference decodes to.
enum Decoded {
    /// A numeric reference: its code point.
    Code(u32),
    /// A named reference: its text.
    Text(&'static str),
}

/// The character reference that starts right after an `&` whose following bytes are `rest`:
/// what it decodes to and how many bytes of `rest` it uses, or `None` when that `&` is kept as
/// it is. The one place that decides what is decoded ([`apply`] and [`inert`] both ask it).
fn reference_at(rest: &[u8]) -> Option<(Decoded, usize)> {
    if let Some(r) = rest.strip_prefix(b"#") {
        let (hex, digits) = match r.first() {
            Some(b'x' | b'X') => (true, r.get(1..).unwrap_or(&[])),
            _ => (false, r),
        };
        let mut n = 0usize;
        let mut cp: u32 = 0;
        while let Some(&d) = digits.get(n) {
            let v = if hex {
                super::hex_val(d).map(u32::from)
            } else if d.is_ascii_digit() {
                Some(u32::from(d - b'0'))
            } else {
                None
            };
            match v {
                Some(v) => {
                    cp = cp
                        .saturating_mul(if hex { 16 } else { 10 })
                        .saturating_add(v);
                    n += 1;
                }
                None => break,
            }
        }
        if n == 0 {
            return None;
        }
        let mut used = 1 + usize::from(hex) + n;
        if digits.get(n) == Some(&b';') {
            used += 1;
        }
        return Some((Decoded::Code(cp), used));
    }
    let (&a, &b) = (rest.first()?, rest.get(1)?);
    if !may_start(a, b) {
        return None;
    }
    let cands = candidates(a);
    let n = rest
        .iter()
        .take(MAX_NAME)
        .take_while(|c| c.is_ascii_alphabetic())
        .count();
    // The longest name the letters start with, so `&ltscript` decodes like browsers do.
    let (name, v) = cands
        .iter()
        .filter_map(|&i| NAMED.get(usize::from(i)))
        .filter(|(name, _)| {
            name.len() <= n
                && rest
                    .get(..name.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(name))
        })
        .max_by_key(|(name, _)| name.len())?;
    let mut used = name.len();
    if rest.get(used) == Some(&b';') {
        used += 1;
    }
    Some((Decoded::Text(v), used))
}

/// True when the transform leaves `input` as it is: no `&` in it starts a reference it
/// decodes (`Tom & Jerry`, `a&&b`, `?x=1&size=2`). Being inert does not depend on letter case.
pub(crate) fn inert(input: &[u8]) -> bool {
    memchr::memchr_iter(b'&', input)
        .all(|i| reference_at(input.get(i + 1..).unwrap_or(&[])).is_none())
}

/// Applies the transform (see the module doc).
pub fn apply(input: &[u8], out: &mut Vec<u8>) -> bool {
    if memchr::memchr(b'&', input).is_none() {
        return false;
    }
    out.clear();
    out.reserve(input.len());
    let mut changed = false;
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b != b'&' {
            // Copy the run up to the next `&` at once.
            let run = memchr::memchr(b'&', &input[i..]).unwrap_or(input.len() - i);
            out.extend_from_slice(&input[i..i + run]);
            i += run;
            continue;
        }
        if let Some((d, used)) = reference_at(&input[i + 1..]) {
            match d {
                Decoded::Code(cp) => push_code_point(out, cp),
                Decoded::Text(v) => out.extend_from_slice(v.as_bytes()),
            }
            i += 1 + used;
            changed = true;
            continue;
        }
        out.push(b);
        i += 1;
    }
    changed
}

#[cfg(test)]
mod index_tests {
    use super::{candidates, reference_at, Decoded, NAMED};

    /// The name a reference parser reads at the start of `rest`, and the bytes it uses.
    fn named(rest: &[u8]) -> Option<(&'static str, usize)> {
        match reference_at(rest)? {
            (Decoded::Text(v), used) => Some((v, used)),
            (Decoded::Code(_), _) => None,
        }
    }

    #[test]
    fn the_index_finds_every_name_in_both_cases() {
        for (n, v) in NAMED {
            assert_eq!(
                named(n),
                Some((*v, n.len())),
                "{}",
                String::from_utf8_lossy(n)
            );
            let upper = n.to_ascii_uppercase();
            assert_eq!(named(&upper), Some((*v, n.len())));
            let mut closed = n.to_vec();
            closed.extend_from_slice(b";x");
            assert_eq!(named(&closed), Some((*v, n.len() + 1)));
        }
        let total: usize = (b'a'..=b'z').map(|l| candidates(l).len()).sum();
        assert_eq!(total, NAMED.len());
        assert_eq!(named(b"size"), None);
        // The longest name wins: `&ampx` is `&amp` then `x`.
        assert_eq!(named(b"ampx"), Some(("&", 3)));
        assert!(candidates(b'1').is_empty() && candidates(b'{').is_empty());
    }
}

#[cfg(test)]
mod inert_tests {
    use super::{apply, inert};
    use proptest::prelude::*;

    const FRAGS: &[&str] = &[
        "a",
        "Z",
        "1",
        " ",
        ";",
        "#",
        "x",
        "&",
        "&&",
        "& ",
        "&#",
        "&#x",
        "&#60",
        "&#x3c;",
        "&#X3C",
        "&lt",
        "&LT;",
        "&l",
        "&amp;",
        "&ampx",
        "&size=",
        "&category",
        "&colon",
        "&co",
        "&Tab;",
        "&newline",
        "&q",
        "&quot",
        "&nbsp;",
        "&semi",
        "&se",
        "lt;",
        "amp",
        "é",
        "<",
        "\"",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]
        /// `inert` is true exactly when the transform changes nothing.
        #[test]
        fn inert_is_true_exactly_when_nothing_is_decoded(
            parts in proptest::collection::vec(0..FRAGS.len(), 0..8)
        ) {
            let v: String = parts.iter().map(|&i| FRAGS[i]).collect();
            let mut out = Vec::new();
            let changed = apply(v.as_bytes(), &mut out);
            prop_assert_eq!(inert(v.as_bytes()), !changed, "{:?}", v);
            // Letter case does not matter.
            let upper = v.to_ascii_uppercase();
            prop_assert_eq!(inert(upper.as_bytes()), inert(v.as_bytes()), "{:?}", v);
        }
    }

    #[test]
    fn examples() {
        assert!(inert(b"Tom & Jerry"));
        assert!(inert(b"a&&b||c"));
        assert!(inert(b"color=black&size=42"));
        assert!(!inert(b"a &lt b"));
        assert!(!inert(b"&#60;"));
        assert!(!inert(b"x&ampy"));
    }
}
