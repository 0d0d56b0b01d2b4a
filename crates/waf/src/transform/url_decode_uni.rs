//! `url_decode_uni`: like `url_decode`, and also decodes IIS-style `%uXXXX` escapes.
//!
//! `%uXXXX` becomes the UTF-8 encoding of the code point, with full-width ASCII
//! (`%uFF1C` = `＜`) folded to plain ASCII (`<`), as IIS does. Example: `%u003cscript%3E` →
//! `<script>`.

use super::{hex_val, push_code_point};

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
            if matches!(input.get(i + 1), Some(b'u' | b'U')) {
                let mut cp: u32 = 0;
                let mut ok = true;
                for k in 0..4 {
                    match input.get(i + 2 + k).and_then(|&c| hex_val(c)) {
                        Some(v) => cp = cp << 4 | u32::from(v),
                        None => {
                            ok = false;
                            break;
                        }
                    }
                }
                if ok {
                    push_code_point(out, cp);
                    changed = true;
                    i += 6;
                    continue;
                }
            }
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
