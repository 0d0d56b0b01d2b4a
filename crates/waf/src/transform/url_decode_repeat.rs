//! `url_decode_repeat`: applies `url_decode_uni` until the value stops changing, at most
//! [`MAX_ROUNDS`] times (so `%25252e` → `.`, but a hostile value cannot make it loop forever).

/// Upper bound on decoding rounds.
pub const MAX_ROUNDS: usize = 5;

/// Applies the transform (see the module doc).
pub fn apply(input: &[u8], out: &mut Vec<u8>) -> bool {
    if !super::url_decode_uni::apply(input, out) {
        return false;
    }
    for _ in 1..MAX_ROUNDS {
        if !super::url_decode_uni::decode_in_place(out) {
            break;
        }
    }
    true
}
