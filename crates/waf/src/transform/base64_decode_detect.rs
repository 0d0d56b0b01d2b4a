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

fn b64_val(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    }
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
