//! `decode_all`: every decoding layer, repeated until the value is stable.
//!
//! One round is `url_decode_uni` → `utf8_overlong` → `html_entity_decode` → `js_decode`; rounds
//! repeat while the value changes, at most [`MAX_ROUNDS`] times, so double URL encoding,
//! `%uXXXX`, HTML entities inside URL encoding and JSON `\u` escapes inside any of them all
//! come out. Then `base64_decode_detect` appends decoded base64 runs, and the appended part
//! gets the same rounds. Example: `%2526lt%253Bscript%2526gt%253B` → `<script>`.

use super::{base64_decode_detect, html_entity_decode, js_decode, url_decode_uni, utf8_overlong};

/// Upper bound on decoding rounds.
pub const MAX_ROUNDS: usize = 4;

fn rounds(cur: &mut Vec<u8>, tmp: &mut Vec<u8>) -> bool {
    let mut any = false;
    for _ in 0..MAX_ROUNDS {
        let mut changed = false;
        for f in [
            url_decode_uni::apply as fn(&[u8], &mut Vec<u8>) -> bool,
            utf8_overlong::apply,
            html_entity_decode::apply,
            js_decode::apply,
        ] {
            if f(cur, tmp) {
                std::mem::swap(cur, tmp);
                changed = true;
            }
        }
        if !changed {
            break;
        }
        any = true;
    }
    any
}

/// Applies the transform (see the module doc).
pub fn apply(input: &[u8], out: &mut Vec<u8>) -> bool {
    let quick = input
        .iter()
        .any(|&b| matches!(b, b'%' | b'+' | b'&' | b'\\' | 0xC0 | 0xC1 | 0xE0));
    let mut tmp = Vec::new();
    let mut changed = false;
    if quick {
        out.clear();
        out.extend_from_slice(input);
        changed = rounds(out, &mut tmp);
    }
    let src: &[u8] = if changed { out } else { input };
    if src.len() >= base64_decode_detect::MIN_RUN && base64_decode_detect::apply(src, &mut tmp) {
        let keep = src.len();
        let mut tail = tmp.split_off(keep);
        let mut scratch = Vec::new();
        rounds(&mut tail, &mut scratch);
        tmp.extend_from_slice(&tail);
        *out = tmp;
        changed = true;
    }
    changed
}
