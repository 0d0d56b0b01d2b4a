//! `cmd_line`: ModSecurity's cmdLine normalisation for command-injection rules.
//!
//! Deletes `\`, `"`, `'` and `^`; deletes spaces before `/` and `(`; turns `,` and `;` into a
//! space; compresses whitespace runs into one space; lowercases. Example:
//! `c^md.exe /c "w"h'o'ami` → `cmd.exe/c whoami`.

use super::compress_whitespace::ws_len;

/// Applies the transform (see the module doc).
pub fn apply(input: &[u8], out: &mut Vec<u8>) -> bool {
    let quick = input.iter().enumerate().any(|(i, &b)| {
        matches!(
            b,
            b'\\'
                | b'"'
                | b'\''
                | b'^'
                | b','
                | b';'
                | b'\t'
                | b'\n'
                | b'\r'
                | 0x0B
                | 0x0C
                | 0xA0
                | 0xC2
        ) || b.is_ascii_uppercase()
            || (b == b' ' && matches!(input.get(i + 1), Some(b' ' | b'/' | b'(') | None))
    });
    if !quick {
        return false;
    }
    out.clear();
    let mut pending_space = false;
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        let n = ws_len(input, i);
        if n > 0 || b == b',' || b == b';' {
            pending_space = true;
            i += n.max(1);
            continue;
        }
        match b {
            b'\\' | b'"' | b'\'' | b'^' => {}
            b'/' | b'(' => {
                pending_space = false;
                out.push(b);
            }
            _ => {
                if pending_space {
                    out.push(b' ');
                    pending_space = false;
                }
                out.push(b.to_ascii_lowercase());
            }
        }
        i += 1;
    }
    if pending_space {
        out.push(b' ');
    }
    out.as_slice() != input
}
