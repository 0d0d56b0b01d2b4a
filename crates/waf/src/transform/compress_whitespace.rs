//! `compress_whitespace`: every run of whitespace (space, tab, CR, LF, form feed, vertical tab,
//! and the non-breaking space U+00A0 in UTF-8 or as a lone 0xA0 byte) becomes one space.
//! Example: `union\t\n  select` → `union select`.

/// The one-byte whitespace: space, tab, LF, CR, VT, FF and a lone 0xA0.
pub(crate) const WS: [bool; 256] = {
    let mut t = [false; 256];
    let mut k = 0;
    let ws = [b' ', b'\t', b'\n', b'\r', 0x0B, 0x0C, 0xA0];
    while k < ws.len() {
        t[ws[k] as usize] = true;
        k += 1;
    }
    t
};

/// Length of the whitespace sequence at `i`, or 0.
#[inline]
pub(crate) fn ws_len(input: &[u8], i: usize) -> usize {
    match input.get(i) {
        Some(&b) if WS[usize::from(b)] => 1,
        Some(0xC2) if input.get(i + 1) == Some(&0xA0) => 2,
        _ => 0,
    }
}

/// True when the transform changes `input`: it holds a whitespace byte other than a space, or
/// two spaces in a row. A short value is looked at byte by byte; a longer one with `memchr`'s
/// vector searches (the five control characters and 0xA0 in two passes, then `"  "`), which
/// do not stop at each single space of prose.
pub(crate) fn needed(input: &[u8]) -> bool {
    if input.len() < SHORT {
        return input.iter().enumerate().any(|(i, &b)| {
            WS[usize::from(b)]
                && (b != b' ' || input.get(i + 1).is_some_and(|&c| WS[usize::from(c)]))
        });
    }
    static TWO_SPACES: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"  "));
    memchr::memchr3(b'\t', b'\n', b'\r', input).is_some()
        || memchr::memchr3(0x0B, 0x0C, 0xA0, input).is_some()
        || TWO_SPACES.find(input).is_some()
}

/// Below this length a byte loop is cheaper than setting up vector searches.
const SHORT: usize = 48;

/// Applies the transform (see the module doc).
pub fn apply(input: &[u8], out: &mut Vec<u8>) -> bool {
    // Unchanged when every whitespace is a lone plain space (a UTF-8 non-breaking space holds
    // the byte 0xA0, so it is seen here too).
    if !needed(input) {
        return false;
    }
    out.clear();
    out.reserve(input.len());
    // Runs without whitespace are copied whole.
    let (mut i, mut run) = (0, 0);
    while i < input.len() {
        let n = ws_len(input, i);
        if n == 0 {
            i += 1;
            continue;
        }
        out.extend_from_slice(input.get(run..i).unwrap_or(&[]));
        out.push(b' ');
        i += n;
        loop {
            let m = ws_len(input, i);
            if m == 0 {
                break;
            }
            i += m;
        }
        run = i;
    }
    out.extend_from_slice(input.get(run..).unwrap_or(&[]));
    true
}

#[cfg(test)]
mod tests {
    use super::{needed, WS};
    use proptest::prelude::*;

    /// The test as first written: every byte looked at.
    fn reference(input: &[u8]) -> bool {
        input.iter().enumerate().any(|(i, &b)| {
            WS[usize::from(b)]
                && (b != b' ' || input.get(i + 1).is_some_and(|&c| WS[usize::from(c)]))
        })
    }

    #[test]
    fn vectors() {
        for (s, want) in [
            (&b""[..], false),
            (b"a b c", false),
            (b"a  b", true),
            (b"a\tb", true),
            (b"a \nb", true),
            (b"a\x0bb", true),
            (b"a\x0cb", true),
            (b"a\xc2\xa0b", true),
            (b"a \xa0", true),
            (b"trailing ", false),
            (b"Mozilla/5.0 (X11; Linux x86_64)", false),
            (
                b"Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0",
                false,
            ),
            (
                b"Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0  x",
                true,
            ),
            (
                b"Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0\tx",
                true,
            ),
        ] {
            assert_eq!(needed(s), want, "{s:?}");
            let mut out = Vec::new();
            assert_eq!(super::apply(s, &mut out), want, "{s:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4_000))]
        #[test]
        fn agrees_with_the_bytewise_test(input in proptest::collection::vec(
            prop_oneof![Just(b' '), Just(b'\t'), Just(b'\n'), Just(b'\r'), Just(0x0B), Just(0x0C),
                        Just(0xA0), Just(0xC2), Just(b'a'), Just(b'a'), Just(b'a')], 0..96)) {
            prop_assert_eq!(needed(&input), reference(&input));
        }
    }
}
