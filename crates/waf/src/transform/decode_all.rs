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

thread_local! {
    /// Scratch buffers reused across calls on this thread (a cache, not state: every call
    /// clears what it uses), so the hot path does not allocate.
    static SCRATCH: std::cell::RefCell<(Vec<u8>, Vec<u8>, Vec<u8>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

/// True when `input` holds a byte one of the decoding rounds needs (the rounds' quick check).
fn needs_rounds(input: &[u8]) -> bool {
    input
        .iter()
        .any(|&b| matches!(b, b'%' | b'+' | b'&' | b'\\' | 0xC0 | 0xC1 | 0xE0))
}

/// Applies the transform (see the module doc).
pub fn apply(input: &[u8], out: &mut Vec<u8>) -> bool {
    apply_hinted(input, out, needs_rounds(input))
}

/// [`apply`] when the caller already knows whether `input` holds one of `% + & \ 0xC0 0xC1
/// 0xE0` (the engine reads it from the value's class mask): `rounds` must be
/// `needs_rounds(input)`.
pub(crate) fn apply_hinted(input: &[u8], out: &mut Vec<u8>, rounds: bool) -> bool {
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut s) => {
            let (tmp, tail, scratch) = &mut *s;
            apply_with(input, out, rounds, tmp, tail, scratch)
        }
        Err(_) => apply_with(
            input,
            out,
            rounds,
            &mut Vec::new(),
            &mut Vec::new(),
            &mut Vec::new(),
        ),
    })
}

fn apply_with(
    input: &[u8],
    out: &mut Vec<u8>,
    quick: bool,
    tmp: &mut Vec<u8>,
    tail: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
) -> bool {
    let mut changed = false;
    if quick {
        out.clear();
        out.extend_from_slice(input);
        changed = rounds(out, tmp);
    }
    let src: &[u8] = if changed { out } else { input };
    if src.len() >= base64_decode_detect::MIN_RUN && base64_decode_detect::apply(src, tmp) {
        let keep = src.len();
        tail.clear();
        tail.extend_from_slice(tmp.get(keep..).unwrap_or(&[]));
        rounds(tail, scratch);
        tmp.truncate(keep);
        tmp.extend_from_slice(tail);
        out.clear();
        out.extend_from_slice(tmp);
        changed = true;
    }
    changed
}
