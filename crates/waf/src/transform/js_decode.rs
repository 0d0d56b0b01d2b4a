//! `js_decode`: decodes JavaScript and JSON string escapes.
//!
//! `\uXXXX` (surrogate pairs joined, full-width ASCII folded), `\u{X..}`, `\xHH`, octal `\0`,
//! `\oo`, `\ooo`, and the single-character escapes `\n \t \r \b \f \v \/ \\ \" \'`. Any other
//! `\c` is kept as it is (JavaScript would drop the backslash, but Windows paths such as
//! `..\..\win.ini` must keep theirs). Example: `\u003cscript\x3e` → `<script>`.

use super::{hex_val, push_code_point};

fn hex_n(input: &[u8], at: usize, n: usize) -> Option<u32> {
    let mut v: u32 = 0;
    for k in 0..n {
        v = v << 4 | u32::from(hex_val(*input.get(at + k)?)?);
    }
    Some(v)
}

/// Applies the transform (see the module doc).
pub fn apply(input: &[u8], out: &mut Vec<u8>) -> bool {
    if memchr::memchr(b'\\', input).is_none() {
        return false;
    }
    out.clear();
    out.reserve(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b != b'\\' {
            // Copy the run up to the next backslash at once.
            let run = memchr::memchr(b'\\', &input[i..]).unwrap_or(input.len() - i);
            out.extend_from_slice(&input[i..i + run]);
            i += run;
            continue;
        }
        let Some(&c) = input.get(i + 1) else {
            out.push(b);
            break;
        };
        match c {
            b'u' => {
                if input.get(i + 2) == Some(&b'{') {
                    let digits = input[i + 3..]
                        .iter()
                        .take(6)
                        .take_while(|d| d.is_ascii_hexdigit())
                        .count();
                    if digits > 0 && input.get(i + 3 + digits) == Some(&b'}') {
                        let cp = hex_n(input, i + 3, digits).unwrap_or(0xFFFD);
                        push_code_point(out, cp);
                        i += 4 + digits;
                        continue;
                    }
                } else if let Some(cp) = hex_n(input, i + 2, 4) {
                    if (0xD800..0xDC00).contains(&cp) && input.get(i + 6) == Some(&b'\\') {
                        if let (Some(b'u'), Some(lo)) = (input.get(i + 7), hex_n(input, i + 8, 4)) {
                            if (0xDC00..0xE000).contains(&lo) {
                                let full = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                                push_code_point(out, full);
                                i += 12;
                                continue;
                            }
                        }
                    }
                    push_code_point(out, cp);
                    i += 6;
                    continue;
                }
                out.push(b'u');
                i += 2;
            }
            b'x' => {
                if let Some(v) = hex_n(input, i + 2, 2) {
                    out.push(v as u8);
                    i += 4;
                } else {
                    out.push(b'x');
                    i += 2;
                }
            }
            b'0'..=b'7' => {
                let mut v: u32 = 0;
                let mut n = 0;
                while n < 3 {
                    match input.get(i + 1 + n) {
                        Some(&d @ b'0'..=b'7') if v * 8 + u32::from(d - b'0') <= 0xFF => {
                            v = v * 8 + u32::from(d - b'0');
                            n += 1;
                        }
                        _ => break,
                    }
                }
                out.push(v as u8);
                i += 1 + n;
            }
            b'n' => {
                out.push(b'\n');
                i += 2;
            }
            b't' => {
                out.push(b'\t');
                i += 2;
            }
            b'r' => {
                out.push(b'\r');
                i += 2;
            }
            b'b' => {
                out.push(0x08);
                i += 2;
            }
            b'f' => {
                out.push(0x0C);
                i += 2;
            }
            b'v' => {
                out.push(0x0B);
                i += 2;
            }
            b'/' | b'\\' | b'"' | b'\'' | b'`' => {
                out.push(c);
                i += 2;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out.as_slice() != input
}
