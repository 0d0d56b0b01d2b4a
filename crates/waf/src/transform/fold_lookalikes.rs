//! `fold_lookalikes`: replaces Unicode lookalikes of ASCII characters by the character they
//! stand for: the quote lookalikes and the full-width forms.
//!
//! Some stacks fold these characters to ASCII before the database or the browser sees them
//! (SQL Server's "best fit" conversion of an `nvarchar` value into a `varchar` column turns
//! `ʼ` (U+02BC) into `'`; NFKC normalization turns `＜svg＞` into `<svg>`), and payloads copied
//! through word processors carry curly quotes (`’ or ‘1’=’1`), so a rule that looks for a
//! string break or a tag reads them as the ASCII character.
//!
//! Folded to `'`: U+2018, U+2019, U+201A, U+201B, U+2032, U+2035, U+02B9, U+02BC. Folded to
//! `"`: U+201C, U+201D, U+201E, U+201F, U+2033, U+2036, U+02BA. The full-width forms U+FF01 to
//! U+FF5E (`！` to `～`, among them `＇`, `＂`, `＜`, `＞`, `（`, `＝`) fold to `!` to `~`.
//! Everything else (invalid UTF-8 included) is kept byte for byte. Example:
//! `1’ or ‘1’=’1` → `1' or '1'='1`, `＜svg/onload＝alert（1)>` → `<svg/onload=alert(1)>`.

/// The ASCII byte a UTF-8 sequence starting at `s[0]` stands for, and its length.
fn lookalike_at(s: &[u8]) -> Option<(u8, usize)> {
    match *s {
        [0xE2, 0x80, b, ..] => match b {
            0x98..=0x9B | 0xB2 | 0xB5 => Some((b'\'', 3)),
            0x9C..=0x9F | 0xB3 | 0xB6 => Some((b'"', 3)),
            _ => None,
        },
        [0xCA, 0xB9 | 0xBC, ..] => Some((b'\'', 2)),
        [0xCA, 0xBA, ..] => Some((b'"', 2)),
        // U+FF01..U+FF3F: EF BC 81..BF; U+FF40..U+FF5E: EF BD 80..9E (code point - 0xFEE0).
        [0xEF, 0xBC, b @ 0x81..=0xBF, ..] => Some((b - 0x60, 3)),
        [0xEF, 0xBD, b @ 0x80..=0x9E, ..] => Some((b - 0x20, 3)),
        _ => None,
    }
}

/// Applies the transform (see the module doc).
pub fn apply(input: &[u8], out: &mut Vec<u8>) -> bool {
    let Some(first) = memchr::memchr3(0xE2, 0xCA, 0xEF, input) else {
        return false;
    };
    let mut i = first;
    let mut copied = 0;
    let mut changed = false;
    while i < input.len() {
        let rest = input.get(i..).unwrap_or(&[]);
        match lookalike_at(rest) {
            Some((c, len)) => {
                if !changed {
                    out.clear();
                    changed = true;
                }
                out.extend_from_slice(input.get(copied..i).unwrap_or(&[]));
                out.push(c);
                i += len;
                copied = i;
            }
            None => {
                i += 1;
                i += memchr::memchr3(0xE2, 0xCA, 0xEF, input.get(i..).unwrap_or(&[]))
                    .unwrap_or(input.len().saturating_sub(i));
            }
        }
    }
    if changed {
        out.extend_from_slice(input.get(copied..).unwrap_or(&[]));
    }
    changed
}
