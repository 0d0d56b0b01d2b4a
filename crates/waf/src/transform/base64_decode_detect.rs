//! `base64_decode_detect`: finds base64-looking runs and appends their decoding.
//!
//! A run is at least [`MIN_RUN`] characters of the standard or URL-safe base64 alphabet,
//! counting its `=` padding. A run whose decoding is mostly printable text (at least 90 %
//! printable ASCII, tab or newline, or valid multi-byte UTF-8) is appended to the value after
//! a space; binary decodings (random tokens, hashes) are ignored. The original text stays, so
//! rules still see it. Example: `q=PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==` →
//! `q=PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg== <script>alert(1)</script>`.

/// Shortest run considered base64.
pub const MIN_RUN: usize = 16;

/// Base64 value of each byte (standard and URL-safe alphabets), `INVALID` for the others.
const INVALID: u8 = 0xFF;
static B64: [u8; 256] = {
    let mut t = [INVALID; 256];
    let mut i = 0;
    while i < 26 {
        t[b'A' as usize + i] = i as u8;
        t[b'a' as usize + i] = 26 + i as u8;
        i += 1;
    }
    let mut d = 0;
    while d < 10 {
        t[b'0' as usize + d] = 52 + d as u8;
        d += 1;
    }
    t[b'+' as usize] = 62;
    t[b'-' as usize] = 62;
    t[b'/' as usize] = 63;
    t[b'_' as usize] = 63;
    t
};

#[inline]
fn b64_val(b: u8) -> Option<u8> {
    let v = B64[usize::from(b)];
    (v != INVALID).then_some(v)
}

/// Decodes `run` (no padding) into `out`, returning whether the result looks like text.
fn decode_run(run: &[u8], out: &mut Vec<u8>) -> bool {
    let start = out.len();
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &c in run {
        let Some(v) = b64_val(c) else { break };
        acc = acc << 6 | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    let decoded = &out[start..];
    if decoded.is_empty() {
        return false;
    }
    let text = match std::str::from_utf8(decoded) {
        Ok(s) => s,
        Err(_) => return false,
    };
    let printable = text
        .chars()
        .filter(|c| !c.is_control() || *c == '\t' || *c == '\n' || *c == '\r')
        .count();
    printable * 10 >= text.chars().count() * 9
}

/// Applies the transform (see the module doc).
pub fn apply(input: &[u8], out: &mut Vec<u8>) -> bool {
    if input.len() < MIN_RUN {
        return false;
    }
    let mut changed = false;
    let mut i = 0;
    while i < input.len() {
        if b64_val(input[i]).is_none() {
            i += 1;
            continue;
        }
        let start = i;
        while i < input.len() && b64_val(input[i]).is_some() {
            i += 1;
        }
        let run = &input[start..i];
        while i < input.len() && input[i] == b'=' && i - start < run.len() + 2 {
            i += 1;
        }
        if i - start < MIN_RUN || run.iter().all(|b| b.is_ascii_alphabetic()) {
            continue;
        }
        if !changed {
            out.clear();
            out.extend_from_slice(input);
            changed = true;
        }
        let mark = out.len();
        out.push(b' ');
        if !decode_run(run, out) {
            out.truncate(mark);
        }
    }
    changed && out.len() > input.len()
}
