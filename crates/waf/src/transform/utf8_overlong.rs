//! `utf8_overlong`: replaces overlong UTF-8 encodings of ASCII characters by the character.
//!
//! Two-byte `C0 xx`/`C1 xx` and three-byte `E0 80..81 xx` forms (the classic `%c0%ae%c0%ae/`
//! traversal once URL-decoded) decode to their ASCII byte; everything else is kept. Example:
//! bytes `C0 AE C0 AE C0 AF` → `../`.

/// Applies the transform (see the module doc).
pub fn apply(input: &[u8], out: &mut Vec<u8>) -> bool {
    if memchr::memchr3(0xC0, 0xC1, 0xE0, input).is_none() {
        return false;
    }
    out.clear();
    let mut changed = false;
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        let c1 = input.get(i + 1).copied().unwrap_or(0);
        let c2 = input.get(i + 2).copied().unwrap_or(0);
        let cont = |c: u8| c & 0xC0 == 0x80;
        if (b == 0xC0 || b == 0xC1) && cont(c1) {
            out.push(((b & 0x1F) << 6) | (c1 & 0x3F));
            i += 2;
            changed = true;
        } else if b == 0xE0 && (c1 == 0x80 || c1 == 0x81) && cont(c2) {
            out.push(((c1 & 0x3F) << 6) | (c2 & 0x3F));
            i += 3;
            changed = true;
        } else if matches!(b, 0xC0 | 0xC1 | 0xE0) {
            out.push(b);
            i += 1;
        } else {
            // Copy the run up to the next possible overlong lead at once.
            let run = memchr::memchr3(0xC0, 0xC1, 0xE0, &input[i..]).unwrap_or(input.len() - i);
            out.extend_from_slice(&input[i..i + run]);
            i += run;
        }
    }
    changed
}
