//! Transforms: pure functions from bytes to bytes, applied in order before a rule matches.
//!
//! Each transform lives in its own file with a doc block and a table of test vectors in
//! `vectors/<name>.yaml`, all run by one table-driven test. A new transform is one file, one
//! vectors file and one line in [`Transform::ALL`] / [`Transform::apply`].
//!
//! Every transform has the signature `fn apply(input: &[u8], out: &mut Vec<u8>) -> bool`: it
//! returns `false` when the input would come out unchanged (and then leaves `out` alone, so the
//! engine keeps using the input bytes without a copy), or clears `out`, writes the result into
//! it and returns `true`.
//!
//! ## Decoding multi-layer encodings: `decode_all`
//! A rule that says `transforms: [decode_all, lowercase]` gets every decoding layer this crate
//! knows, repeated until the value is stable (double URL encoding, `%uXXXX`, overlong UTF-8,
//! HTML entities inside URL encoding, JS/JSON escapes), then base64-looking runs decoded and
//! appended (see [`decode_all`]). This is the recommended first step for attack rules.

pub mod base64_decode_detect;
pub mod cmd_line;
pub mod compress_whitespace;
pub mod decode_all;
pub mod fold_lookalikes;
pub mod html_entity_decode;
pub mod js_decode;
pub mod lowercase;
pub mod normalize_path;
pub mod remove_comments;
pub mod remove_nulls;
pub mod remove_whitespace;
pub mod replace_comments;
pub mod url_decode;
pub mod url_decode_repeat;
pub mod url_decode_uni;
pub mod utf8_overlong;

/// One named transform. The registry is this enum: [`Transform::from_name`] and
/// [`Transform::apply`] are plain `match`es.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transform {
    /// `url_decode`: `%HH` and `+`.
    UrlDecode,
    /// `url_decode_uni`: `url_decode` plus `%uXXXX`.
    UrlDecodeUni,
    /// `url_decode_repeat`: `url_decode_uni` until stable (bounded).
    UrlDecodeRepeat,
    /// `html_entity_decode`: named, decimal and hex entities, with or without `;`.
    HtmlEntityDecode,
    /// `js_decode`: `\uXXXX`, `\xHH`, octal and JSON escapes.
    JsDecode,
    /// `base64_decode_detect`: appends the decoding of base64-looking runs.
    Base64DecodeDetect,
    /// `lowercase`: ASCII lowercase.
    Lowercase,
    /// `compress_whitespace`: runs of whitespace become one space.
    CompressWhitespace,
    /// `remove_whitespace`: delete all whitespace.
    RemoveWhitespace,
    /// `remove_comments`: SQL and C comments.
    RemoveComments,
    /// `replace_comments`: `/* */` becomes a space; line comments removed.
    ReplaceComments,
    /// `normalize_path`: `./`, `../`, `//`, backslashes.
    NormalizePath,
    /// `remove_nulls`: delete NUL bytes.
    RemoveNulls,
    /// `cmd_line`: ModSecurity's cmdLine normalisation.
    CmdLine,
    /// `utf8_overlong`: overlong UTF-8 sequences to their ASCII character.
    Utf8Overlong,
    /// `fold_lookalikes`: Unicode quote lookalikes and full-width forms to ASCII.
    FoldLookalikes,
    /// `decode_all`: every decoding layer until stable, then base64 runs.
    DecodeAll,
}

impl Transform {
    /// Every transform, in registry order.
    pub const ALL: [Transform; 17] = [
        Transform::UrlDecode,
        Transform::UrlDecodeUni,
        Transform::UrlDecodeRepeat,
        Transform::HtmlEntityDecode,
        Transform::JsDecode,
        Transform::Base64DecodeDetect,
        Transform::Lowercase,
        Transform::CompressWhitespace,
        Transform::RemoveWhitespace,
        Transform::RemoveComments,
        Transform::ReplaceComments,
        Transform::NormalizePath,
        Transform::RemoveNulls,
        Transform::CmdLine,
        Transform::Utf8Overlong,
        Transform::FoldLookalikes,
        Transform::DecodeAll,
    ];

    /// The name used in rule files.
    pub fn name(self) -> &'static str {
        match self {
            Transform::UrlDecode => "url_decode",
            Transform::UrlDecodeUni => "url_decode_uni",
            Transform::UrlDecodeRepeat => "url_decode_repeat",
            Transform::HtmlEntityDecode => "html_entity_decode",
            Transform::JsDecode => "js_decode",
            Transform::Base64DecodeDetect => "base64_decode_detect",
            Transform::Lowercase => "lowercase",
            Transform::CompressWhitespace => "compress_whitespace",
            Transform::RemoveWhitespace => "remove_whitespace",
            Transform::RemoveComments => "remove_comments",
            Transform::ReplaceComments => "replace_comments",
            Transform::NormalizePath => "normalize_path",
            Transform::RemoveNulls => "remove_nulls",
            Transform::CmdLine => "cmd_line",
            Transform::Utf8Overlong => "utf8_overlong",
            Transform::FoldLookalikes => "fold_lookalikes",
            Transform::DecodeAll => "decode_all",
        }
    }

    /// Looks a transform up by its rule-file name.
    pub fn from_name(name: &str) -> Option<Transform> {
        Transform::ALL.iter().copied().find(|t| t.name() == name)
    }

    /// Comma-separated list of every name, for error hints.
    pub fn known_names() -> String {
        let names: Vec<&str> = Transform::ALL.iter().map(|t| t.name()).collect();
        names.join(", ")
    }

    /// Applies the transform. Returns `false` (and leaves `out` untouched) when the input is
    /// unchanged; otherwise `out` holds the result.
    pub fn apply(self, input: &[u8], out: &mut Vec<u8>) -> bool {
        match self {
            Transform::UrlDecode => url_decode::apply(input, out),
            Transform::UrlDecodeUni => url_decode_uni::apply(input, out),
            Transform::UrlDecodeRepeat => url_decode_repeat::apply(input, out),
            Transform::HtmlEntityDecode => html_entity_decode::apply(input, out),
            Transform::JsDecode => js_decode::apply(input, out),
            Transform::Base64DecodeDetect => base64_decode_detect::apply(input, out),
            Transform::Lowercase => lowercase::apply(input, out),
            Transform::CompressWhitespace => compress_whitespace::apply(input, out),
            Transform::RemoveWhitespace => remove_whitespace::apply(input, out),
            Transform::RemoveComments => remove_comments::apply(input, out),
            Transform::ReplaceComments => replace_comments::apply(input, out),
            Transform::NormalizePath => normalize_path::apply(input, out),
            Transform::RemoveNulls => remove_nulls::apply(input, out),
            Transform::CmdLine => cmd_line::apply(input, out),
            Transform::Utf8Overlong => utf8_overlong::apply(input, out),
            Transform::FoldLookalikes => fold_lookalikes::apply(input, out),
            Transform::DecodeAll => decode_all::apply(input, out),
        }
    }

    /// [`Transform::apply`] with the input's [`class_mask`] at hand: `decode_all` then skips its
    /// own scan for the bytes its decoding rounds need.
    pub(crate) fn apply_masked(self, input: &[u8], mask: u64, out: &mut Vec<u8>) -> bool {
        match self {
            Transform::DecodeAll => {
                use class::{AMP, BSLASH, OVERLONG, PCT, PLUS};
                decode_all::apply_hinted(
                    input,
                    out,
                    mask & (PCT | PLUS | AMP | BSLASH | OVERLONG) != 0,
                )
            }
            t => t.apply(input, out),
        }
    }

    /// Convenience for tests and tools: applies the transform and returns the result.
    pub fn apply_to_vec(self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if self.apply(input, &mut out) {
            out
        } else {
            input.to_vec()
        }
    }
}

/// Applies a chain of transforms in order, returning the final bytes.
pub fn apply_chain(chain: &[Transform], input: &[u8]) -> Vec<u8> {
    let mut cur = input.to_vec();
    let mut out = Vec::new();
    for t in chain {
        if t.apply(&cur, &mut out) {
            std::mem::swap(&mut cur, &mut out);
        }
    }
    cur
}

/// Value of an ASCII hex digit (the detectors' own, one definition for both crates).
pub(crate) use palisade_detect::hex_val;

/// Appends the UTF-8 encoding of a code point; full-width ASCII (U+FF01..U+FF5E) is folded to
/// ASCII, as IIS and ModSecurity do, and invalid code points become U+FFFD.
pub(crate) fn push_code_point(out: &mut Vec<u8>, cp: u32) {
    let cp = if (0xFF01..=0xFF5E).contains(&cp) {
        cp - 0xFF01 + 0x21
    } else {
        cp
    };
    let c = char::from_u32(cp).unwrap_or('\u{FFFD}');
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

#[cfg(test)]
mod vector_tests;

/// Byte classes for the engine's gates: [`class_mask`] ORs the classes of a value's bytes.
///
/// * Identity gate: a transform whose [`Transform::trigger`] shares no bit with that mask leaves
///   the value unchanged (each transform's own quick check needs one of its trigger bytes).
/// * Regex gate: a regex whose every match must contain one of a few rare bytes (see
///   [`crate::prefilter`]) runs only on values whose mask has one of their classes.
///
/// Each ASCII punctuation byte has a bit of its own (bits 0-31, in ASCII order); letters,
/// digits, whitespace, control and high bytes have coarser classes.
pub(crate) mod class {
    /// Bit of an ASCII punctuation byte (`!` … `~`), or `None`.
    pub const fn punct(b: u8) -> Option<u64> {
        let i = match b {
            b'!'..=b'/' => b - b'!',
            b':'..=b'@' => b - b':' + 15,
            b'['..=b'`' => b - b'[' + 22,
            b'{'..=b'~' => b - b'{' + 28,
            _ => return None,
        };
        Some(1u64 << i)
    }
    const fn p(b: u8) -> u64 {
        match punct(b) {
            Some(m) => m,
            None => 0,
        }
    }
    /// `%`.
    pub const PCT: u64 = p(b'%');
    /// `+`.
    pub const PLUS: u64 = p(b'+');
    /// `&`.
    pub const AMP: u64 = p(b'&');
    /// `\`.
    pub const BSLASH: u64 = p(b'\\');
    /// `/`.
    pub const SLASH: u64 = p(b'/');
    /// `-`.
    pub const DASH: u64 = p(b'-');
    /// `#`.
    pub const HASH: u64 = p(b'#');
    /// `.`.
    pub const DOT: u64 = p(b'.');
    /// `*`.
    pub const STAR: u64 = p(b'*');
    /// `" ' ^ , ;` (what `cmd_line` removes or rewrites).
    pub const CMD: u64 = p(b'"') | p(b'\'') | p(b'^') | p(b',') | p(b';');
    /// `A`-`Z`.
    pub const UPPER: u64 = 1 << 32;
    /// `a`-`z`.
    pub const LOWER: u64 = 1 << 33;
    /// `0`-`9`.
    pub const DIGIT: u64 = 1 << 34;
    /// ` `.
    pub const SPACE: u64 = 1 << 35;
    /// `\t`.
    pub const TAB: u64 = 1 << 36;
    /// `\n`.
    pub const LF: u64 = 1 << 37;
    /// `\r`.
    pub const CR: u64 = 1 << 38;
    /// `0x0B 0x0C`.
    pub const VT_FF: u64 = 1 << 39;
    /// NUL.
    pub const NUL: u64 = 1 << 40;
    /// Other control bytes and DEL.
    pub const CTRL: u64 = 1 << 41;
    /// `0xA0 0xC2` (no-break space and its UTF-8 lead byte).
    pub const NBSP: u64 = 1 << 42;
    /// `0xC0 0xC1 0xE0` (overlong UTF-8 leads).
    pub const OVERLONG: u64 = 1 << 43;
    /// Every other byte >= 0x80.
    pub const HIGH: u64 = 1 << 44;
    /// Not a byte class: the value is at least [`super::base64_decode_detect::MIN_RUN`] long.
    pub const LONG: u64 = 1 << 45;
    /// `0xCA 0xE2 0xEF`: the UTF-8 lead bytes of the lookalikes `fold_lookalikes` folds
    /// (`ʼ`, `’`, `“`, `＜`), kept apart from [`HIGH`] so that names such as `Zoë` or `São`
    /// do not make a value eligible for that transform.
    pub const LOOKALIKE_LEAD: u64 = 1 << 46;
    /// Whitespace other than space, as the whitespace transforms see it.
    pub const WS_OTHER: u64 = TAB | LF | CR | VT_FF | NBSP;
    /// The base64 characters other than letters (`0`-`9`, `+`, `/`, `-`, `_`): a run that
    /// `base64_decode_detect` decodes holds one (a run of letters alone is left as it is).
    pub const B64_NON_LETTER: u64 = DIGIT | PLUS | SLASH | DASH | p(b'_');

    /// The class bits of every byte of `bytes`.
    pub const fn of_all(bytes: &[u8]) -> u64 {
        let mut m = 0;
        let mut i = 0;
        while i < bytes.len() {
            m |= of(bytes[i]);
            i += 1;
        }
        m
    }
    /// The class bit of one byte.
    pub const fn of(b: u8) -> u64 {
        match b {
            b'A'..=b'Z' => UPPER,
            b'a'..=b'z' => LOWER,
            b'0'..=b'9' => DIGIT,
            b' ' => SPACE,
            b'\t' => TAB,
            b'\n' => LF,
            b'\r' => CR,
            0x0B | 0x0C => VT_FF,
            0 => NUL,
            0x01..=0x1F | 0x7F => CTRL,
            0xA0 | 0xC2 => NBSP,
            0xC0 | 0xC1 | 0xE0 => OVERLONG,
            0xCA | 0xE2 | 0xEF => LOOKALIKE_LEAD,
            0x80..=0xFF => HIGH,
            _ => p(b),
        }
    }

    pub(crate) static TABLE: [u64; 256] = {
        let mut t = [0u64; 256];
        let mut i = 0;
        while i < 256 {
            t[i] = of(i as u8);
            i += 1;
        }
        t
    };
}

/// The [`class`] mask of `value`.
#[inline]
pub(crate) fn class_mask(value: &[u8]) -> u64 {
    // Eight bytes per step into two accumulators: a load and an `or` per byte, the loop's
    // own compare and increment once per eight.
    let (chunks, rest) = value.as_chunks::<8>();
    let (mut m, mut n) = (0u64, 0u64);
    for c in chunks {
        m |= class::TABLE[usize::from(c[0])]
            | class::TABLE[usize::from(c[1])]
            | class::TABLE[usize::from(c[2])]
            | class::TABLE[usize::from(c[3])];
        n |= class::TABLE[usize::from(c[4])]
            | class::TABLE[usize::from(c[5])]
            | class::TABLE[usize::from(c[6])]
            | class::TABLE[usize::from(c[7])];
    }
    for &b in rest {
        m |= class::TABLE[usize::from(b)];
    }
    m |= n;
    if value.len() >= base64_decode_detect::MIN_RUN {
        m |= class::LONG;
    }
    m
}

impl Transform {
    /// Classes one of which a value must contain for this transform to change it.
    pub(crate) const fn trigger(self) -> u64 {
        use class::*;
        match self {
            Transform::UrlDecode | Transform::UrlDecodeUni | Transform::UrlDecodeRepeat => {
                PCT | PLUS
            }
            Transform::HtmlEntityDecode => AMP,
            Transform::JsDecode => BSLASH,
            Transform::Base64DecodeDetect => LONG,
            Transform::Lowercase => UPPER,
            Transform::CompressWhitespace | Transform::RemoveWhitespace => SPACE | WS_OTHER,
            Transform::RemoveComments | Transform::ReplaceComments => SLASH | DASH | HASH | STAR,
            Transform::NormalizePath => BSLASH | SLASH | DOT,
            Transform::RemoveNulls => NUL,
            Transform::CmdLine => BSLASH | CMD | SPACE | WS_OTHER | UPPER,
            Transform::Utf8Overlong => OVERLONG,
            Transform::FoldLookalikes => LOOKALIKE_LEAD,
            Transform::DecodeAll => LONG | PCT | PLUS | AMP | BSLASH | OVERLONG,
        }
    }
}

/// True when `decode_all`, `url_decode_uni` and `url_decode_repeat` all leave `x` (class mask
/// `mask`) as it is: no `%`, `+`, `&`, `\\` or overlong lead byte, and no base64 run to decode.
/// All three start with `url_decode_uni`, so when its output is such a value, it is the output
/// of the other two as well (`decode_all` runs its rounds and its base64 step on it and they
/// change nothing; `url_decode_repeat` has nothing left to decode): the engine decodes a value
/// once for the three.
pub(crate) fn url_decoded_is_final(x: &[u8], mask: u64) -> bool {
    use class::*;
    mask & (PCT | PLUS | AMP | BSLASH | OVERLONG) == 0
        && (mask & LONG == 0 || !base64_decode_detect::may_decode_masked(x, mask))
}

/// The transforms [`url_decoded_is_final`] speaks for.
pub(crate) const URL_DECODERS: [Transform; 3] = [
    Transform::UrlDecodeUni,
    Transform::UrlDecodeRepeat,
    Transform::DecodeAll,
];

#[cfg(test)]
mod final_tests {
    use super::*;
    use proptest::prelude::*;

    const FRAGS: &[&str] = &[
        "a",
        "Z",
        "1",
        " ",
        "%",
        "%2",
        "%41",
        "%25",
        "%2541",
        "%u0041",
        "%U00e9",
        "%c0%ae",
        "+",
        "&",
        "&lt;",
        "&#60;",
        "&amp;lt;",
        "\\",
        "\\u0041",
        "\\x41",
        "%5C",
        "%26",
        "%2B",
        "dGVzdCBzdHJpbmcgaGVyZQ==",
        "aGVsbG8gd29ybGQgdGhpcyBpcyBh",
        ":",
        "/",
        ".",
        "'",
        "\"",
        "%e9",
        "\u{e9}",
        "%C3%A9",
        "=",
        ";",
    ];

    /// The unrolled class mask is the plain fold of every byte's class, at every length
    /// around the eight-byte steps.
    #[test]
    fn class_mask_is_the_fold_of_the_byte_classes() {
        let all: Vec<u8> = (0..=255u8).rev().collect();
        for start in 0..40 {
            for len in 0..40 {
                let v = all.get(start * 5..start * 5 + len).unwrap_or(&[]);
                let mut want = v.iter().fold(0, |m, &b| m | class::TABLE[usize::from(b)]);
                if v.len() >= base64_decode_detect::MIN_RUN {
                    want |= class::LONG;
                }
                assert_eq!(super::class_mask(v), want, "{v:?}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20000))]
        /// Whenever `url_decode_uni`'s output passes the check, the other two give the same.
        #[test]
        fn a_final_url_decoding_is_every_decoders_output(parts in proptest::collection::vec(0..FRAGS.len(), 1..12)) {
            let v: String = parts.iter().map(|&i| FRAGS[i]).collect();
            let input = v.as_bytes();
            let mut x = Vec::new();
            if Transform::UrlDecodeUni.apply(input, &mut x)
                && url_decoded_is_final(&x, class_mask(&x))
            {
                for t in URL_DECODERS {
                    let mut y = Vec::new();
                    let changed = t.apply(input, &mut y);
                    prop_assert!(changed && y == x, "{} on {:?}", t.name(), v);
                }
            }
        }
    }
}

#[cfg(test)]
mod trigger_tests {
    use super::*;
    use proptest::prelude::*;

    fn check(input: &[u8]) {
        let m = class_mask(input);
        for t in Transform::ALL {
            if m & t.trigger() == 0 {
                let mut out = Vec::new();
                assert!(
                    !t.apply(input, &mut out),
                    "{} changed {:?} though no trigger class is present",
                    t.name(),
                    input
                );
            }
        }
    }

    /// The class bits `apply_masked` reads for `decode_all` are exactly its rounds' bytes.
    #[test]
    fn decode_all_hint_matches_its_quick_check() {
        use class::{AMP, BSLASH, OVERLONG, PCT, PLUS};
        for b in 0..=255u8 {
            let by_mask = class::of(b) & (PCT | PLUS | AMP | BSLASH | OVERLONG) != 0;
            let by_scan = matches!(b, b'%' | b'+' | b'&' | b'\\' | 0xC0 | 0xC1 | 0xE0);
            assert_eq!(by_mask, by_scan, "byte {b:#x}");
        }
    }

    #[test]
    fn gate_examples() {
        for v in [
            &b""[..],
            b"abc",
            b"a b",
            b"a.b",
            b"x/y",
            b"..",
            b".",
            b"#",
            b"--",
            b"*/",
            b"a+b",
            b"Abc",
            b"a\\b",
            b"a&amp;b",
            b"\xC0\xAF",
            b"abcdefghijklmnopqrstuvwxyz",
            b"c2VsZWN0IHVuaW9u",
            // `fold_lookalikes`' lead bytes: a quote lookalike, a full-width form, a modifier
            // letter, and the same lead bytes starting something it keeps.
            "x\u{2019}y".as_bytes(),
            "\u{ff1c}svg".as_bytes(),
            "\u{2bc}".as_bytes(),
            "\u{2014} \u{ff61}".as_bytes(),
        ] {
            check(v);
        }
    }

    proptest! {
        #[test]
        fn gate_never_skips_a_change(v in proptest::collection::vec(any::<u8>(), 0..40)) {
            check(&v);
        }

        #[test]
        fn gate_never_skips_a_change_ascii(v in "[ -~\t\n]{0,40}") {
            check(v.as_bytes());
        }
    }
}
