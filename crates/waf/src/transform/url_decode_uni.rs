//! `url_decode_uni`: like `url_decode`, and also decodes IIS-style `%uXXXX` escapes.
//!
//! `%uXXXX` becomes the UTF-8 encoding of the code point, with full-width ASCII
//! (`%uFF1C` = `＜`) folded to plain ASCII (`<`), as IIS does. Example: `%u003cscript%3E` →
//! `<script>`.

use super::{hex_val, push_code_point};

/// Applies the transform (see the module doc).
pub fn apply(input: &[u8], out: &mut Vec<u8>) -> bool {
    if memchr::memchr2(b'%', b'+', input).is_none() {
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
            // Copy the run up to the next `%` or `+` at once.
            let run = memchr::memchr2(b'%', b'+', &input[i..]).unwrap_or(input.len() - i);
            out.extend_from_slice(&input[i..i + run]);
            i += run;
            continue;
        }
        i += 1;
    }
    changed
}

/// Decodes `buf` in place (a decoding is never longer than its input); returns whether
/// anything changed. Used by `url_decode_repeat` to avoid a second buffer.
pub(crate) fn decode_in_place(buf: &mut Vec<u8>) -> bool {
    if !buf.iter().any(|&b| b == b'%' || b == b'+') {
        return false;
    }
    let mut changed = false;
    let (mut r, mut w) = (0, 0);
    while r < buf.len() {
        let b = buf[r];
        let mut tmp = [0u8; 4];
        let mut n = 0;
        let mut used = 1;
        if b == b'%' {
            if matches!(buf.get(r + 1), Some(b'u' | b'U')) {
                let mut cp: u32 = 0;
                let mut ok = true;
                for k in 0..4 {
                    match buf.get(r + 2 + k).and_then(|&c| hex_val(c)) {
                        Some(v) => cp = cp << 4 | u32::from(v),
                        None => {
                            ok = false;
                            break;
                        }
                    }
                }
                if ok {
                    let cp = if (0xFF01..=0xFF5E).contains(&cp) {
                        cp - 0xFF01 + 0x21
                    } else {
                        cp
                    };
                    n = char::from_u32(cp)
                        .unwrap_or('\u{FFFD}')
                        .encode_utf8(&mut tmp)
                        .len();
                    used = 6;
                }
            }
            if used == 1 {
                if let (Some(h), Some(l)) = (
                    buf.get(r + 1).and_then(|&c| hex_val(c)),
                    buf.get(r + 2).and_then(|&c| hex_val(c)),
                ) {
                    tmp[0] = h << 4 | l;
                    n = 1;
                    used = 3;
                }
            }
        } else if b == b'+' {
            tmp[0] = b' ';
            n = 1;
        }
        if n > 0 {
            changed = true;
            // n <= used, so the write position never passes the read position.
            for (k, &x) in tmp.iter().take(n).enumerate() {
                if let Some(slot) = buf.get_mut(w + k) {
                    *slot = x;
                }
            }
            w += n;
        } else {
            buf[w] = b;
            w += 1;
        }
        r += used;
    }
    buf.truncate(w);
    changed
}
