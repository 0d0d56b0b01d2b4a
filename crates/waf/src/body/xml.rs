//! XML bodies, read by a small tolerant scanner: element text and CDATA go to `args`
//! (named by the dotted element path, `args:order.item.note`), attribute values to `args`
//! (`args:item@id`), attribute names to `args_names`. No entity is expanded and no DTD is
//! read: a `<!DOCTYPE`/`<!ENTITY` declaration is only visible through the raw `body` target.
//! Nesting deeper than [`super::MAX_DEPTH`] is an error.

use memchr::memmem;

use super::MAX_DEPTH;
use crate::inspect::{BodyError, Sink};
use crate::request::{trim, ParseBufs};
use crate::target::Kind;

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn skip_past(b: &[u8], from: usize, pat: &[u8]) -> usize {
    match b.get(from..).and_then(|r| memmem::find(r, pat)) {
        Some(k) => from + k + pat.len(),
        None => b.len(),
    }
}

/// Parses `body` as XML.
pub(crate) fn parse(
    body: &[u8],
    bufs: &mut ParseBufs,
    sink: &mut impl Sink,
) -> Result<(), BodyError> {
    bufs.a.clear();
    bufs.stack.clear();
    let b = body;
    let mut i = 0;
    while i < b.len() {
        let lt = memchr::memchr(b'<', &b[i..]).map_or(b.len(), |k| i + k);
        let text = trim(&b[i..lt]);
        let text = text
            .iter()
            .position(|&c| !is_space(c))
            .map_or(&b""[..], |s| &text[s..]);
        if !text.is_empty() {
            sink.value(Kind::BodyArg, &bufs.a, false, text);
        }
        if lt >= b.len() {
            break;
        }
        let rest = &b[lt..];
        if rest.starts_with(b"<!--") {
            i = skip_past(b, lt + 4, b"-->");
        } else if rest.starts_with(b"<![CDATA[") {
            let start = lt + 9;
            let end = b
                .get(start..)
                .and_then(|r| memmem::find(r, b"]]>"))
                .map_or(b.len(), |k| start + k);
            sink.value(Kind::BodyArg, &bufs.a, false, &b[start..end]);
            i = (end + 3).min(b.len());
        } else if rest.starts_with(b"<!") {
            // DOCTYPE with an optional internal subset `[ ... ]`.
            let close = memchr::memchr(b'>', rest).map_or(b.len(), |k| lt + k);
            let open = memchr::memchr(b'[', rest).map_or(b.len(), |k| lt + k);
            i = if open < close {
                skip_past(b, open, b"]")
            } else {
                close
            };
            i = skip_past(b, i, b">");
        } else if rest.starts_with(b"<?") {
            i = skip_past(b, lt + 2, b"?>");
        } else if rest.starts_with(b"</") {
            if let Some(len) = bufs.stack.pop() {
                bufs.a.truncate(len);
            }
            i = skip_past(b, lt + 2, b">");
        } else {
            i = start_tag(b, lt + 1, bufs, sink)?;
        }
    }
    Ok(())
}

/// Reads a start tag from just after `<`; returns the position after `>`.
fn start_tag(
    b: &[u8],
    mut i: usize,
    bufs: &mut ParseBufs,
    sink: &mut impl Sink,
) -> Result<usize, BodyError> {
    let ns = i;
    while i < b.len() && !is_space(b[i]) && b[i] != b'>' && b[i] != b'/' {
        i += 1;
    }
    let name = &b[ns..i];
    let plen = bufs.a.len();
    if plen > 0 {
        bufs.a.push(b'.');
    }
    bufs.a.extend_from_slice(name);
    loop {
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        match b.get(i) {
            None => return Ok(b.len()),
            Some(b'>') => {
                if bufs.stack.len() >= MAX_DEPTH {
                    return Err(BodyError::TooDeep { limit: MAX_DEPTH });
                }
                bufs.stack.push(plen);
                return Ok(i + 1);
            }
            Some(b'/') => {
                bufs.a.truncate(plen);
                return Ok(skip_past(b, i, b">"));
            }
            _ => {}
        }
        let as_ = i;
        while i < b.len() && !is_space(b[i]) && !matches!(b[i], b'=' | b'>' | b'/') {
            i += 1;
        }
        let attr = &b[as_..i];
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        if b.get(i) != Some(&b'=') {
            if attr.is_empty() {
                i += 1;
            }
            continue;
        }
        i += 1;
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        let (vs, ve) = match b.get(i) {
            Some(&q @ (b'"' | b'\'')) => {
                let s = i + 1;
                let e = memchr::memchr(q, &b[s..]).map_or(b.len(), |k| s + k);
                i = (e + 1).min(b.len());
                (s, e)
            }
            _ => {
                let s = i;
                while i < b.len() && !is_space(b[i]) && b[i] != b'>' {
                    i += 1;
                }
                (s, i)
            }
        };
        bufs.b.clear();
        bufs.b.extend_from_slice(name);
        bufs.b.push(b'@');
        bufs.b.extend_from_slice(attr);
        sink.value(Kind::ArgName, attr, false, attr);
        sink.value(Kind::BodyArg, &bufs.b, false, &b[vs..ve]);
    }
}
