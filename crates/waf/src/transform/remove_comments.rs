//! `remove_comments`: removes SQL and C comments (ModSecurity's removeComments).
//!
//! `/* … */` (also unterminated, to the end) is deleted, so `expr/**/ession` reads
//! `expression`; MySQL's executable comments `/*! … */` keep their content
//! (`/*!50000select*/` → `select`). `--`, `#` and `//` comment out the rest of the line
//! (the newline is kept). Example: `1/*x*/or 1=1-- -` → `1or 1=1`. Use `replace_comments`
//! when a comment stands for whitespace (`UNION/**/SELECT`).

/// Applies the transform (see the module doc).
pub fn apply(input: &[u8], out: &mut Vec<u8>) -> bool {
    run(input, out, false)
}

/// True when `input` holds a comment marker: `/*`, `*/`, `--`, `//` or `#`. A short value is
/// looked at pair by pair; in a longer one, every marker holds a `/`, `-` or `#` (`*/` is a `/`
/// after a `*`), so only those bytes, found by `memchr3`, are looked at.
pub(crate) fn has_marker(input: &[u8]) -> bool {
    if input.len() < 48 {
        return input
            .windows(2)
            .any(|w| matches!(w, b"/*" | b"--" | b"//" | b"*/") || w[0] == b'#' || w[1] == b'#')
            || input.first() == Some(&b'#');
    }
    memchr::memchr3_iter(b'/', b'-', b'#', input).any(|i| {
        let at = |k: usize| input.get(k).copied();
        match at(i) {
            Some(b'#') => true,
            Some(b'-') => at(i + 1) == Some(b'-'),
            _ => matches!(at(i + 1), Some(b'/' | b'*')) || (i > 0 && at(i - 1) == Some(b'*')),
        }
    })
}

/// Shared by `remove_comments` and `replace_comments` (`replace`: `/* */` becomes a space).
pub(crate) fn run(input: &[u8], out: &mut Vec<u8>, replace: bool) -> bool {
    if !has_marker(input) {
        return false;
    }
    out.clear();
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        let next = input.get(i + 1).copied();
        if b == b'/' && next == Some(b'*') {
            if replace {
                out.push(b' ');
            }
            if input.get(i + 2) == Some(&b'!') {
                // Executable comment: keep the content, drop the version digits.
                let mut j = i + 3;
                while j < input.len() && input[j].is_ascii_digit() {
                    j += 1;
                }
                i = j;
                continue;
            }
            match input[i + 2..].windows(2).position(|w| w == b"*/") {
                Some(p) => i = i + 2 + p + 2,
                None => i = input.len(),
            }
            continue;
        }
        if b == b'*' && next == Some(b'/') {
            if replace {
                out.push(b' ');
            }
            i += 2;
            continue;
        }
        if (b == b'-' && next == Some(b'-')) || b == b'#' || (b == b'/' && next == Some(b'/')) {
            match memchr::memchr(b'\n', &input[i..]) {
                Some(p) => i += p,
                None => i = input.len(),
            }
            continue;
        }
        out.push(b);
        i += 1;
    }
    out.as_slice() != input
}

#[cfg(test)]
mod tests {
    use super::has_marker;
    use proptest::prelude::*;

    /// The marker test as first written: every pair of bytes looked at.
    fn reference(input: &[u8]) -> bool {
        input
            .windows(2)
            .any(|w| matches!(w, b"/*" | b"--" | b"//" | b"*/") || w[0] == b'#' || w[1] == b'#')
            || input.first() == Some(&b'#')
    }

    #[test]
    fn markers_found_anywhere() {
        for (s, want) in [
            ("", false),
            ("#", true),
            ("a#", true),
            ("-", false),
            ("a-b-c", false),
            ("a--", true),
            ("/", false),
            ("a/b/c", false),
            ("//", true),
            ("/*", true),
            ("*/", true),
            ("x*/", true),
            ("*", false),
            ("* /", false),
            ("Mozilla/5.0 (X11; Linux x86_64)", false),
            (
                "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0",
                false,
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0 */",
                true,
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0 #",
                true,
            ),
        ] {
            assert_eq!(has_marker(s.as_bytes()), want, "{s:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4_000))]
        #[test]
        fn agrees_with_the_pairwise_test(input in "[-/*#a ]{0,80}") {
            prop_assert_eq!(has_marker(input.as_bytes()), reference(input.as_bytes()));
        }
    }
}
