//! `normalize_path`: backslashes become slashes, `//` collapses, `./` segments go, and `..`
//! removes the previous segment. A `..` with nothing left to remove is **kept** (so
//! `../../etc/passwd` stays visible to traversal rules, as in ModSecurity's normalizePath).
//! Example: `/a/./b//c\..\..\etc/passwd` → `/a/etc/passwd`.

/// Applies the transform (see the module doc).
pub fn apply(input: &[u8], out: &mut Vec<u8>) -> bool {
    let suspicious = input.contains(&b'\\')
        || input.windows(2).any(|w| w == b"//" || w == b"./")
        || input.ends_with(b"/.")
        || input.ends_with(b"/..")
        || input == b"."
        || input == b"..";
    if !suspicious {
        return false;
    }
    let absolute = matches!(input.first(), Some(b'/' | b'\\'));
    let trailing = matches!(input.last(), Some(b'/' | b'\\'));
    // Segments as ranges into `input`.
    let mut segs: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    for i in 0..=input.len() {
        if i == input.len() || input[i] == b'/' || input[i] == b'\\' {
            let seg = &input[start..i];
            match seg {
                b"" | b"." => {}
                b".." => match segs.last() {
                    Some(&(s, e)) if &input[s..e] != b".." => {
                        segs.pop();
                    }
                    _ => segs.push((start, i)),
                },
                _ => segs.push((start, i)),
            }
            start = i + 1;
        }
    }
    out.clear();
    if absolute {
        out.push(b'/');
    }
    for (k, &(s, e)) in segs.iter().enumerate() {
        if k > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(&input[s..e]);
    }
    if trailing && !segs.is_empty() {
        out.push(b'/');
    }
    out.as_slice() != input
}
