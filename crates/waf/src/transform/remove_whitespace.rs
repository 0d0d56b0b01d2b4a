//! `remove_whitespace`: deletes every whitespace character (the same set as
//! `compress_whitespace`). Example: `s e l\te c t` → `select`.

use super::compress_whitespace::ws_len;

/// Applies the transform (see the module doc).
pub fn apply(input: &[u8], out: &mut Vec<u8>) -> bool {
    if !(0..input.len()).any(|i| ws_len(input, i) > 0) {
        return false;
    }
    out.clear();
    let mut i = 0;
    while i < input.len() {
        let n = ws_len(input, i);
        if n == 0 {
            out.push(input[i]);
            i += 1;
        } else {
            i += n;
        }
    }
    true
}
