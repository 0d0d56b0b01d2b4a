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

/// Shared by `remove_comments` and `replace_comments` (`replace`: `/* */` becomes a space).
pub(crate) fn run(input: &[u8], out: &mut Vec<u8>, replace: bool) -> bool {
    let interesting = input
        .windows(2)
        .any(|w| matches!(w, b"/*" | b"--" | b"//" | b"*/") || w[0] == b'#' || w[1] == b'#')
        || input.first() == Some(&b'#');
    if !interesting {
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
