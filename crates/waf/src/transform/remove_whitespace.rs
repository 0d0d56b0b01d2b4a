//! `remove_whitespace`: deletes every whitespace character (the same set as
//! `compress_whitespace`). Example: `s e l\te c t` → `select`.

use super::compress_whitespace::{ws_len, WS};

/// Applies the transform (see the module doc).
pub fn apply(input: &[u8], out: &mut Vec<u8>) -> bool {
    // A UTF-8 non-breaking space holds the byte 0xA0: one table covers every kind.
    if !input.iter().any(|&b| WS[usize::from(b)]) {
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
        i += n;
        run = i;
    }
    out.extend_from_slice(input.get(run..).unwrap_or(&[]));
    true
}
