//! `compress_whitespace`: every run of whitespace (space, tab, CR, LF, form feed, vertical tab,
//! and the non-breaking space U+00A0 in UTF-8 or as a lone 0xA0 byte) becomes one space.
//! Example: `union\t\n  select` → `union select`.

/// The one-byte whitespace: space, tab, LF, CR, VT, FF and a lone 0xA0.
pub(crate) const WS: [bool; 256] = {
    let mut t = [false; 256];
    let mut k = 0;
    let ws = [b' ', b'\t', b'\n', b'\r', 0x0B, 0x0C, 0xA0];
    while k < ws.len() {
        t[ws[k] as usize] = true;
        k += 1;
    }
    t
};

/// Length of the whitespace sequence at `i`, or 0.
#[inline]
pub(crate) fn ws_len(input: &[u8], i: usize) -> usize {
    match input.get(i) {
        Some(&b) if WS[usize::from(b)] => 1,
        Some(0xC2) if input.get(i + 1) == Some(&0xA0) => 2,
        _ => 0,
    }
}

/// Applies the transform (see the module doc).
pub fn apply(input: &[u8], out: &mut Vec<u8>) -> bool {
    // Unchanged when every whitespace is a lone plain space (a UTF-8 non-breaking space holds
    // the byte 0xA0, so it is seen here too).
    let needed = input.iter().enumerate().any(|(i, &b)| {
        WS[usize::from(b)] && (b != b' ' || input.get(i + 1).is_some_and(|&c| WS[usize::from(c)]))
    });
    if !needed {
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
        out.push(b' ');
        i += n;
        loop {
            let m = ws_len(input, i);
            if m == 0 {
                break;
            }
            i += m;
        }
        run = i;
    }
    out.extend_from_slice(input.get(run..).unwrap_or(&[]));
    true
}
