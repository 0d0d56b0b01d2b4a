//! `cmd_line`: ModSecurity's cmdLine normalisation for command-injection rules.
//!
//! Deletes `\`, `"`, `'` and `^`; deletes spaces before `/` and `(`; turns `,` and `;` into a
//! space; compresses whitespace runs into one space; lowercases. Example:
//! `c^md.exe /c "w"h'o'ami` → `cmd.exe/c whoami`.

use super::compress_whitespace::WS;

const PLAIN: u8 = 0;
const UPPER: u8 = 1;
/// One-byte whitespace, `,` and `;`: a pending space.
const SPACE: u8 = 2;
/// `\`, `"`, `'`, `^`: deleted.
const DELETE: u8 = 3;
/// `/` and `(`: a pending space before them is dropped.
const SLASH: u8 = 4;
/// 0xC2: whitespace when followed by 0xA0.
const C2: u8 = 5;

const CLASS: [u8; 256] = {
    let mut t = [PLAIN; 256];
    let mut b = 0;
    while b < 256 {
        if WS[b] {
            t[b] = SPACE;
        }
        b += 1;
    }
    let mut u = b'A';
    while u <= b'Z' {
        t[u as usize] = UPPER;
        u += 1;
    }
    t[b',' as usize] = SPACE;
    t[b';' as usize] = SPACE;
    t[b'\\' as usize] = DELETE;
    t[b'"' as usize] = DELETE;
    t[b'\'' as usize] = DELETE;
    t[b'^' as usize] = DELETE;
    t[b'/' as usize] = SLASH;
    t[b'(' as usize] = SLASH;
    t[0xC2] = C2;
    t
};

/// Applies the transform (see the module doc).
pub fn apply(input: &[u8], out: &mut Vec<u8>) -> bool {
    // Unchanged unless a byte is rewritten or deleted, or a plain space is doubled, ends the
    // value or stands before `/` or `(`.
    let quick = input
        .iter()
        .enumerate()
        .any(|(i, &b)| match CLASS[usize::from(b)] {
            PLAIN | SLASH => false,
            SPACE if b == b' ' => matches!(input.get(i + 1), Some(b' ' | b'/' | b'(') | None),
            _ => true,
        });
    if !quick {
        return false;
    }
    out.clear();
    out.reserve(input.len() + 1);
    let mut pending_space = false;
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        match CLASS[usize::from(b)] {
            PLAIN => {
                if pending_space {
                    out.push(b' ');
                    pending_space = false;
                }
                // A run of plain bytes is copied whole.
                let start = i;
                i += 1;
                while input
                    .get(i)
                    .is_some_and(|&c| CLASS[usize::from(c)] == PLAIN)
                {
                    i += 1;
                }
                out.extend_from_slice(input.get(start..i).unwrap_or(&[]));
                continue;
            }
            UPPER => {
                if pending_space {
                    out.push(b' ');
                    pending_space = false;
                }
                out.push(b.to_ascii_lowercase());
            }
            SPACE => pending_space = true,
            DELETE => {}
            SLASH => {
                pending_space = false;
                out.push(b);
            }
            _ => {
                // 0xC2: a non-breaking space with the next byte, else a plain byte.
                if input.get(i + 1) == Some(&0xA0) {
                    pending_space = true;
                    i += 2;
                    continue;
                }
                if pending_space {
                    out.push(b' ');
                    pending_space = false;
                }
                out.push(b);
            }
        }
        i += 1;
    }
    if pending_space {
        out.push(b' ');
    }
    out.as_slice() != input
}
