//! `lowercase`: ASCII lowercase (`SeLeCt` → `select`). Non-ASCII bytes are kept.

/// Applies the transform (see the module doc).
pub fn apply(input: &[u8], out: &mut Vec<u8>) -> bool {
    if !input.iter().any(u8::is_ascii_uppercase) {
        return false;
    }
    out.clear();
    out.extend_from_slice(input);
    out.make_ascii_lowercase();
    true
}
