//! `replace_comments`: like `remove_comments`, but each `/* … */` becomes one space
//! (ModSecurity's replaceComments), so `UNION/**/SELECT` reads `UNION SELECT`. `--`, `#` and
//! `//` still comment out the rest of the line. Example: `1/*x*/or 1=1-- -` → `1 or 1=1`.

/// Applies the transform (see the module doc).
pub fn apply(input: &[u8], out: &mut Vec<u8>) -> bool {
    super::remove_comments::run(input, out, true)
}
