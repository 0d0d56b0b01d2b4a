//! `url_decode`: decodes `%HH` escapes and `+` (as a space).
//!
//! Arguments: none. Returns the decoded bytes; invalid escapes (`%zz`, a trailing `%`) are kept
//! as they are. Example: `a%20b+c%2` → `a b c%2`.

use super::hex_val;

/// Applies the transform (see the module doc).
pub fn apply(input: &[u8], out: &mut Vec<u8>) -> bool {
    if !input.iter().any(|&b| b == b'%' || b == b'+') {
        return false;
    }
    out.clear();
    out.reserve(input.len());
    let mut changed = false;
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == b'%' {
            if let (Some(h), Some(l)) = (
                input.get(i + 1).and_then(|&c| hex_val(c)),
                input.get(i + 2).and_then(|&c| hex_val(c)),
            ) {
                out.push(h << 4 | l);
                changed = true;
                i += 3;
                continue;
            }
            out.push(b);
        } else if b == b'+' {
            out.push(b' ');
            changed = true;
        } else {
            out.push(b);
        }
        i += 1;
    }
    changed
}
