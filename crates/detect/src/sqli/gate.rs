//! A one-pass necessary condition for [`super::detect`]: values that fail it are not tokenized.
//!
//! Every rule of the detector is anchored on a token (see `Rules::check`), and each anchor
//! needs something visible in the raw bytes:
//!
//! * a quote (`'` or `"`): the quote contexts run only on values holding one, and a string
//!   token needs one;
//! * `#`, `--`, `/*` (comments, `/*!` executable comments), `@@` (system variables), `||` and
//!   `&&` (logic operators);
//! * `;` (a stacked statement) followed by `set`: the other statements after it are keywords
//!   below, and `x';--` has a quote;
//! * `(` that can open a function call (a word before it: a run of word bytes holding a
//!   letter, `_`, `$` or a byte >= 0x80, then only spaces) or start the payload (nothing but
//!   spaces and `)` before it; or a `` ` ``-quoted alias, `as `x` (1=1)`). Other parentheses
//!   (`Mozilla/5.0 (X11`) only matter after a keyword, a quote or a comment, which pass on
//!   their own;
//! * a keyword *token*: `and`/`or`/`xor`, `union`/`intersect`/`except`, a statement word
//!   (`select`, `drop`, `exec`, …), `where`/`having`/`case`/`from`/`into`, `order`/`group`
//!   followed by `by`;
//!   an operator or comma only fires when a `select`, a `case` or a function call follows;
//! * one of the long bare names `xp_cmdshell`, `utl_http.`, `utl_inaddr.`, `dbms_pipe.`,
//!   `dbms_lock.`.
//!
//! A keyword only becomes a token when the tokenizer reads exactly that word: it reads a whole
//! run of word bytes (letters, digits, `_`, `$`, `.`, bytes >= 0x80) as one word, except that a
//! number may end right before a keyword glued to it (`1union`, `0x1or`). So a run of letters
//! counts when it is a keyword and its neighbours are not `_`, `$`, digits (on the right) or
//! bytes >= 0x80; after a digit, when it *ends* with a keyword (the hex or binary digits of a
//! number may come first). Other neighbours, `.` included, are accepted: the gate only has to
//! keep every value the tokenizer could read a keyword in, not to be exact.

use super::token::{is_space, is_word_byte, is_word_start};

/// Byte roles for the gate.
const PLAIN: u8 = 0;
/// The value passes on this byte alone.
const TRIGGER: u8 = 1;
/// A letter: the start of a run that may be a keyword.
const LETTER: u8 = 2;
/// The value passes when this byte is doubled (`--`, `@@`, `||`, `&&`) or, for `/`, followed
/// by `*`.
const PAIR: u8 = 3;
/// `_`: the value passes on `xp_cmdshell`, `utl_…`, `dbms_…`.
const UNDERSCORE: u8 = 4;
/// `;`: the value passes when `set` follows.
const SEMI: u8 = 5;
/// `(`: the value passes when it can open a call or start the payload.
const PAREN: u8 = 6;

static ROLE: [u8; 256] = {
    let mut t = [PLAIN; 256];
    let mut b = b'a';
    while b <= b'z' {
        t[b as usize] = LETTER;
        t[(b - 32) as usize] = LETTER;
        b += 1;
    }
    let trig = b"'\"#";
    let mut i = 0;
    while i < trig.len() {
        t[trig[i] as usize] = TRIGGER;
        i += 1;
    }
    let pair = b"-@|&/";
    let mut i = 0;
    while i < pair.len() {
        t[pair[i] as usize] = PAIR;
        i += 1;
    }
    t[b'_' as usize] = UNDERSCORE;
    t[b';' as usize] = SEMI;
    t[b'(' as usize] = PAREN;
    t
};

/// `(` at `i` may open a function call (a word, then spaces) or start the payload (only
/// spaces and `)` before it), or follows a `` ` ``-quoted name.
fn paren_matters(input: &[u8], i: usize) -> bool {
    let before = input.get(..i).unwrap_or(&[]);
    let Some(k) = before.iter().rposition(|&b| !is_space(b)) else {
        return true;
    };
    match before.get(k) {
        Some(b')' | b'`') => true,
        Some(&b) if is_word_byte(b) => before
            .get(..=k)
            .unwrap_or(&[])
            .iter()
            .rev()
            .take_while(|&&c| is_word_byte(c))
            .any(|&c| is_word_start(c)),
        _ => false,
    }
}

/// `order` and `group` anchor a rule only as `order by` / `group by` (one token); alone they
/// are plain words (`Please order the blue one`).
fn is_order_or_group(run: &[u8]) -> bool {
    run.eq_ignore_ascii_case(b"order") || run.eq_ignore_ascii_case(b"group")
}

/// `word` (any case) starts at `from` once spaces are skipped: `by` after `order`, `set` after
/// `;`.
fn word_follows(input: &[u8], from: usize, word: &[u8]) -> bool {
    let rest = input.get(from..).unwrap_or(&[]);
    let k = rest
        .iter()
        .position(|&b| !is_space(b))
        .unwrap_or(rest.len());
    rest.get(k..k + word.len())
        .is_some_and(|w| w.eq_ignore_ascii_case(word))
}

/// The words whose token can anchor a rule (lowercase).
const KEYWORDS: &[&[u8]] = &[
    b"and",
    b"or",
    b"xor",
    b"union",
    b"intersect",
    b"except",
    b"select",
    b"insert",
    b"replace",
    b"update",
    b"delete",
    b"drop",
    b"create",
    b"alter",
    b"truncate",
    b"rename",
    b"exec",
    b"execute",
    b"declare",
    b"shutdown",
    b"waitfor",
    b"call",
    b"begin",
    b"where",
    b"having",
    b"case",
    b"from",
    b"into",
    b"order",
    b"group",
];

/// Longest keyword.
const MAX_KEYWORD: usize = 9;

/// Per length and first letter (`c - b'a'`), the keywords (bit `i` for `KEYWORDS[i]`) of that
/// length starting with that letter: most words are rejected on this table, and the others are
/// compared with one or two keywords, not the whole list.
static BY_LEN_FIRST: [[u32; 26]; MAX_KEYWORD + 1] = {
    assert!(KEYWORDS.len() <= 32);
    let mut t = [[0u32; 26]; MAX_KEYWORD + 1];
    let mut i = 0;
    while i < KEYWORDS.len() {
        let k = KEYWORDS[i];
        t[k.len()][(k[0] - b'a') as usize] |= 1 << i;
        i += 1;
    }
    t
};

/// The first eight bytes of `w`, each with bit `0x20` set, as one little-endian word. A byte
/// that is not an ASCII letter never folds to one (only `A`-`Z` fold into `a`-`z`), so two
/// texts of the same length up to nine bytes are equal ignoring ASCII case exactly when one
/// of them is a lowercase word and their folds (and ninth bytes, folded) are equal.
#[inline]
const fn fold8(w: &[u8]) -> u64 {
    let mut v = 0u64;
    let mut k = 0;
    while k < w.len() && k < 8 {
        v |= ((w[k] | 0x20) as u64) << (8 * k);
        k += 1;
    }
    v
}

/// The ninth byte of `w`, folded as in [`fold8`] (0 when `w` is shorter).
#[inline]
const fn fold9th(w: &[u8]) -> u8 {
    if w.len() > 8 {
        w[8] | 0x20
    } else {
        0
    }
}

/// [`KEYWORDS`] folded: compared as two integers, not byte by byte.
static FOLDED: [(u64, u8); KEYWORDS.len()] = {
    let mut t = [(0u64, 0u8); KEYWORDS.len()];
    let mut i = 0;
    while i < KEYWORDS.len() {
        assert!(KEYWORDS[i].len() <= 9);
        t[i] = (fold8(KEYWORDS[i]), fold9th(KEYWORDS[i]));
        i += 1;
    }
    t
};

fn is_keyword(w: &[u8]) -> bool {
    let (Some(&first), Some(row)) = (w.first(), BY_LEN_FIRST.get(w.len())) else {
        return false;
    };
    let Some(&(mut m)) = row.get(usize::from((first | 0x20).wrapping_sub(b'a'))) else {
        return false;
    };
    if m == 0 {
        return false;
    }
    // Same length as every candidate (the table's row), so the folds decide.
    let folded = (fold8(w), fold9th(w));
    while m != 0 {
        let i = m.trailing_zeros() as usize;
        m &= m - 1;
        if FOLDED.get(i) == Some(&folded) {
            return true;
        }
    }
    false
}

/// A keyword that ends `run` (after a number's hex or binary digits).
fn ends_with_keyword(run: &[u8]) -> bool {
    (2..=MAX_KEYWORD.min(run.len())).any(|n| run.get(run.len() - n..).is_some_and(is_keyword))
}

/// Bytes that glue a letter run into a longer word on its left.
fn glues_left(b: u8) -> bool {
    b == b'_' || b == b'$' || b >= 0x80
}

/// Bytes that glue a letter run into a longer word on its right.
fn glues_right(b: u8) -> bool {
    b.is_ascii_digit() || b == b'_' || b == b'$' || b >= 0x80
}

fn ends_with_ci(hay: &[u8], suffix: &[u8]) -> bool {
    hay.len() >= suffix.len()
        && hay
            .get(hay.len() - suffix.len()..)
            .is_some_and(|h| h.eq_ignore_ascii_case(suffix))
}

/// False only when [`super::detect`] cannot flag `input` (see the module doc); true otherwise.
/// One pass over the bytes, no allocation.
pub fn possible(input: &[u8]) -> bool {
    let len = input.len();
    let mut i = 0;
    while i < len {
        let b = input[i];
        let role = ROLE[usize::from(b)];
        if role == PLAIN {
            i += 1;
            continue;
        }
        match role {
            TRIGGER => return true,
            PAIR => {
                let next = input.get(i + 1).copied().unwrap_or(0);
                let hit = if b == b'/' { next == b'*' } else { next == b };
                if hit {
                    return true;
                }
                i += 1;
            }
            SEMI => {
                if word_follows(input, i + 1, b"set") {
                    return true;
                }
                i += 1;
            }
            PAREN => {
                if paren_matters(input, i) {
                    return true;
                }
                i += 1;
            }
            UNDERSCORE => {
                let before = input.get(..i).unwrap_or(&[]);
                if ends_with_ci(before, b"xp")
                    || ends_with_ci(before, b"utl")
                    || ends_with_ci(before, b"dbms")
                {
                    return true;
                }
                i += 1;
            }
            LETTER => {
                let start = i;
                let rest = input.get(i + 1..).unwrap_or(&[]);
                i += 1 + rest
                    .iter()
                    .position(|&c| ROLE[usize::from(c)] != LETTER)
                    .unwrap_or(rest.len());
                let run = input.get(start..i).unwrap_or(&[]);
                if input.get(i).is_some_and(|&c| glues_right(c)) {
                    continue;
                }
                let prev = start.checked_sub(1).and_then(|p| input.get(p)).copied();
                match prev {
                    Some(p) if p.is_ascii_digit() => {
                        if ends_with_keyword(run) {
                            return true;
                        }
                    }
                    Some(p) if glues_left(p) => {}
                    _ => {
                        if is_keyword(run)
                            && (!is_order_or_group(run) || word_follows(input, i, b"by"))
                        {
                            return true;
                        }
                    }
                }
            }
            _ => i += 1,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::possible;

    #[test]
    fn benign_values_without_anchors_fail_the_gate() {
        for v in [
            "",
            "sports",
            "homepage_banner",
            "sean.obrien1@example.org",
            "57 Main Street",
            "SKU-12-A",
            "2026-11-24T21:04:11Z",
            "https://shop.example.com/catalog/shoes?color=black&size=42",
            "formula orchestra android sandy",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
            "size: 42; color: red",
            "Please order the blue one",
            "Group 3 arrives first",
            "border_order",
            "or1 and_ $or",
        ] {
            assert!(!possible(v.as_bytes()), "{v:?}");
        }
    }

    #[test]
    fn every_keyword_passes_in_any_case() {
        for k in super::KEYWORDS {
            assert!(super::is_keyword(k));
            assert!(super::is_keyword(&k.to_ascii_uppercase()));
            assert!(!super::is_keyword(&k[1..]) || super::KEYWORDS.contains(&&k[1..]));
        }
    }

    #[test]
    fn anchors_pass_the_gate() {
        for v in [
            "x'",
            "a\"b",
            "1;set @a=1",
            "x; SET",
            "f(",
            "f (",
            "(1=1)",
            "  (1=1)",
            ")) (",
            "as `x` (1=1)",
            "$x(",
            "\u{e9}(",
            "#",
            "a--",
            "/*!",
            "@@version",
            "a||b",
            "a&&b",
            "1 OR 2",
            "1union",
            "0xaor",
            "0bor",
            "1.xor",
            "x.or",
            "or.",
            "Select",
            "EXEC",
            "order by 1",
            "GROUP  BY x",
            "master..XP_cmdshell",
            "utl_http.request",
            "dbms_pipe.receive_message",
        ] {
            assert!(possible(v.as_bytes()), "{v:?}");
        }
    }

    /// Fragments that make SQL-looking soup: keywords glued to numbers, hex digits, quotes,
    /// comments, operators, words that contain keywords.
    const FRAGS: &[&str] = &[
        "or",
        "OR",
        "and",
        "xor",
        "union",
        "select",
        "from",
        "where",
        "case",
        "when",
        "order",
        "by",
        "group",
        "exec",
        "drop",
        "table",
        "into",
        "outfile",
        "sleep",
        "benchmark",
        "char",
        "1",
        "0",
        "0x",
        "0b",
        "a",
        "f",
        "e",
        "x",
        "b",
        ".",
        "..",
        " ",
        "  ",
        "'",
        "\"",
        "`",
        "(",
        ")",
        ",",
        ";",
        "=",
        "<",
        ">",
        "!",
        "+",
        "-",
        "--",
        "#",
        "/*",
        "*/",
        "/*!",
        "*",
        "/",
        "|",
        "||",
        "&",
        "&&",
        "@",
        "@@",
        "@@version",
        "_",
        "$",
        "xp_cmdshell",
        "set",
        "SET",
        "@a",
        "`x`",
        "5.0",
        "x11",
        "sleep(",
        "user()",
        "version",
        "ascii",
        "substring",
        "utl_http.",
        "dbms_lock.",
        "is",
        "null",
        "like",
        "not",
        "in",
        "between",
        "waitfor",
        "delay",
        "declare",
        "all",
        "distinct",
        "as",
        "\n",
        "\u{e9}",
        "for",
        "word",
        "xp",
        "1e5",
        " or ",
        " and ",
        " xor ",
        " union select ",
        " union all select ",
        "1=1",
        " 1",
        "=1",
        " order by 1",
        " group by 1",
        "1 ",
        "x ",
        " from ",
        " where ",
        " having ",
        " case ",
        " into ",
        " like ",
        " is ",
        " select ",
        " exec ",
        " drop table x",
        "<>",
        ">=",
        "1 or 1=1",
        "1 and 2>1",
        "1 xor 1=1",
        "1 where 1=1",
        "1 having 1=1",
        "2 OR 3<4",
    ];

    /// The folded compare is `eq_ignore_ascii_case` against the list, on any bytes: every
    /// keyword in three cases with each byte replaced by each of the 256 (`@` and `` ` ``,
    /// `[` and `{` fold like letters), one byte longer, and one byte shorter.
    #[test]
    fn folded_keywords_are_the_list_ignoring_case() {
        let listed = |w: &[u8]| super::KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(w));
        let mut checked = 0;
        for k in super::KEYWORDS {
            let mixed: Vec<u8> = k
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    if i % 2 == 0 {
                        b.to_ascii_uppercase()
                    } else {
                        *b
                    }
                })
                .collect();
            for base in [k.to_vec(), k.to_ascii_uppercase(), mixed] {
                let mut variants = vec![base.clone(), base[..base.len() - 1].to_vec()];
                for b in 0..=255u8 {
                    for i in 0..base.len() {
                        let mut w = base.clone();
                        w[i] = b;
                        variants.push(w);
                    }
                    variants.push([&base[..], &[b]].concat());
                }
                for w in variants {
                    assert_eq!(super::is_keyword(&w), listed(&w), "{w:?}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 50_000, "{checked}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(20000))]
        /// The gate never hides a detection: on SQL-looking soup, whenever one of the three
        /// contexts flags the value, the gate lets it through.
        #[test]
        fn gate_never_hides_a_detection(parts in proptest::collection::vec(0..FRAGS.len(), 1..10)) {
            let v: String = parts.iter().map(|&i| FRAGS[i]).collect();
            let b = v.as_bytes();
            let flagged = [crate::Context::NoQuote, crate::Context::SingleQuote, crate::Context::DoubleQuote]
                .into_iter()
                .any(|c| super::super::detect_in(b, c).is_some());
            proptest::prop_assert!(!flagged || possible(b), "gate hides {:?}", v);
        }
    }
}
