//! `fold_quotes`: replaces the Unicode lookalikes of the ASCII quotes by the quote they stand for.
//!
//! Some stacks fold these characters to ASCII before the database sees them (SQL Server's
//! "best fit" conversion of an `nvarchar` value into a `varchar` column turns `ʼ` (U+02BC) into
//! `'`), and payloads copied through word processors carry them (`’ or ‘1’=’1`), so a rule that
//! looks for a string break reads them as the quote. Folded to `'`: U+2018, U+2019, U+201A,
//! U+201B, U+2032, U+2035, U+02B9, U+02BC, U+FF07. Folded to `"`: U+201C, U+201D, U+201E,
//! U+201F, U+2033, U+2036, U+02BA, U+FF02. Folded to `` ` ``: U+FF40. Everything else (invalid
//! UTF-8 included) is kept byte for byte. Example: `1’ or ‘1’=’1` → `1' or '1'='1`.

/// The ASCII quote a UTF-8 sequence starting at `s[0]` stands for, and its length.
fn quote_at(s: &[u8]) -> Option<(u8, usize)> {
    match *s {
        [0xE2, 0x80, b, ..] => match b {
            0x98..=0x9B | 0xB2 | 0xB5 => Some((b'\'', 3)),
            0x9C..=0x9F | 0xB3 | 0xB6 => Some((b'"', 3)),
            _ => None,
        },
        [0xCA, 0xB9 | 0xBC, ..] => Some((b'\'', 2)),
        [0xCA, 0xBA, ..] => Some((b'"', 2)),
        [0xEF, 0xBC, 0x87, ..] => Some((b'\'', 3)),
        [0xEF, 0xBC, 0x82, ..] => Some((b'"', 3)),
        [0xEF, 0xBD, 0x80, ..] => Some((b'`', 3)),
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
        match quote_at(rest) {
            Some((q, len)) => {
                if !changed {
                    out.clear();
                    changed = true;
                }
                out.extend_from_slice(input.get(copied..i).unwrap_or(&[]));
                out.push(q);
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
