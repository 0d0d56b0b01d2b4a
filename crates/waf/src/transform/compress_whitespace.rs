//! `compress_whitespace`: every run of whitespace (space, tab, CR, LF, form feed, vertical tab,
//! and the non-breaking space U+00A0 in UTF-8 or as a lone 0xA0 byte) becomes one space.
//! Example: `union\t\n  select` → `union select`.

/// Length of the whitespace sequence at `i`, or 0.
pub(crate) fn ws_len(input: &[u8], i: usize) -> usize {
    match input.get(i) {
        Some(b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C | 0xA0) => 1,
        Some(0xC2) if input.get(i + 1) == Some(&0xA0) => 2,
        _ => 0,
    }
}

/// Applies the transform (see the module doc).
pub fn apply(input: &[u8], out: &mut Vec<u8>) -> bool {
    // Unchanged when every whitespace is a lone plain space.
    let mut needed = false;
    let mut i = 0;
    while i < input.len() {
        let n = ws_len(input, i);
        if n > 0 && (input[i] != b' ' || ws_len(input, i + 1) > 0) {
            needed = true;
            break;
        }
        i += 1;
    }
    if !needed {
        return false;
    }
    out.clear();
    let mut i = 0;
    while i < input.len() {
        let n = ws_len(input, i);
        if n == 0 {
            out.push(input[i]);
            i += 1;
            continue;
        }
        out.push(b' ');
        i += n;
        loop {
            let m = ws_len(input, i);
            if m == 0 {
                break;
            }
            i += m;
        }
    }
    true
}
