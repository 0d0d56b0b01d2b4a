//! `remove_nulls`: deletes NUL bytes (`sel\0ect` → `select`), defeating NUL-splitting.

/// Applies the transform (see the module doc).
pub fn apply(input: &[u8], out: &mut Vec<u8>) -> bool {
    if memchr::memchr(0, input).is_none() {
        return false;
    }
    out.clear();
    out.extend(input.iter().copied().filter(|&b| b != 0));
    true
}
