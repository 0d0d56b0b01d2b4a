//! `multipart/form-data` (and other `multipart/*`) bodies.
//!
//! The boundary parameter is found case-insensitively, quoted or not. Each part's headers are
//! inspected as `headers` (target `multipart_headers:<name>`); `Content-Disposition`'s `name`
//! goes to `args_names`, `filename` and `filename*` (RFC 5987, percent-decoded) to
//! `filenames`, and the content of non-file parts to `args` (`args:<name>`). File contents are
//! only seen through the raw `body` target. More than [`super::MAX_PARTS`] parts, or no closing
//! boundary, is a [`BodyError`].

use memchr::memmem;

use super::MAX_PARTS;
use crate::inspect::{BodyError, Sink};
use crate::request::{percent_decode, trim, ParseBufs};
use crate::target::Kind;

/// Reads a `key=value` parameter list (`; `-separated), calling `f(key_lowercase, value)`.
/// Values may be quoted (with backslash escapes).
fn params(s: &[u8], mut f: impl FnMut(&[u8], Vec<u8>)) {
    let mut i = 0;
    while i < s.len() {
        // key
        while i < s.len() && matches!(s[i], b';' | b' ' | b'\t') {
            i += 1;
        }
        let ks = i;
        while i < s.len() && !matches!(s[i], b'=' | b';') {
            i += 1;
        }
        let key = trim(&s[ks..i]).to_ascii_lowercase();
        if s.get(i) != Some(&b'=') {
            continue;
        }
        i += 1;
        while i < s.len() && matches!(s[i], b' ' | b'\t') {
            i += 1;
        }
        let mut val = Vec::new();
        if s.get(i) == Some(&b'"') {
            i += 1;
            while i < s.len() && s[i] != b'"' {
                if s[i] == b'\\' && i + 1 < s.len() {
                    i += 1;
                }
                val.push(s[i]);
                i += 1;
            }
            i += 1;
        } else {
            let vs = i;
            while i < s.len() && s[i] != b';' {
                i += 1;
            }
            val.extend_from_slice(trim(&s[vs..i]));
        }
        f(&key, val);
    }
}

/// The boundary of a multipart Content-Type, if any.
pub(crate) fn boundary(ct: &[u8]) -> Option<Vec<u8>> {
    let start = memchr::memchr(b';', ct)?;
    let mut found = None;
    params(&ct[start..], |k, v| {
        if k == b"boundary" && !v.is_empty() && found.is_none() {
            found = Some(v);
        }
    });
    found
}

/// Parses the parts of `body`.
pub(crate) fn parse(
    body: &[u8],
    boundary: &[u8],
    bufs: &mut ParseBufs,
    sink: &mut impl Sink,
) -> Result<(), BodyError> {
    let mut delim = Vec::with_capacity(boundary.len() + 2);
    delim.extend_from_slice(b"--");
    delim.extend_from_slice(boundary);
    let finder = memmem::Finder::new(&delim);
    let Some(first) = finder.find(body) else {
        return Err(BodyError::MalformedMultipart("boundary not found in body"));
    };
    let mut pos = first + delim.len();
    let mut parts = 0;
    loop {
        if body.get(pos..pos + 2) == Some(b"--") {
            return Ok(());
        }
        // Skip transport padding and the line break after the delimiter.
        while let Some(b' ' | b'\t') = body.get(pos) {
            pos += 1;
        }
        if body.get(pos) == Some(&b'\r') {
            pos += 1;
        }
        if body.get(pos) == Some(&b'\n') {
            pos += 1;
        }
        let rest = body.get(pos..).unwrap_or(&[]);
        let Some(next) = finder.find(rest) else {
            return Err(BodyError::MalformedMultipart("no closing boundary"));
        };
        parts += 1;
        if parts > MAX_PARTS {
            return Err(BodyError::TooManyParts { limit: MAX_PARTS });
        }
        let mut part = &rest[..next];
        if part.ends_with(b"\n") {
            part = &part[..part.len() - 1];
        }
        if part.ends_with(b"\r") {
            part = &part[..part.len() - 1];
        }
        one_part(part, bufs, sink);
        pos += next + delim.len();
    }
}

fn one_part(part: &[u8], bufs: &mut ParseBufs, sink: &mut impl Sink) {
    let (head, content) = match memmem::find(part, b"\r\n\r\n") {
        Some(i) => (&part[..i], &part[i + 4..]),
        None => match memmem::find(part, b"\n\n") {
            Some(i) => (&part[..i], &part[i + 2..]),
            None => (part, &b""[..]),
        },
    };
    let mut field: Option<Vec<u8>> = None;
    let mut filenames: Vec<Vec<u8>> = Vec::new();
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        bufs.a.clear();
        bufs.a
            .extend(trim(&line[..colon]).iter().map(u8::to_ascii_lowercase));
        let value = trim(&line[colon + 1..]);
        sink.value(Kind::PartHeader, &bufs.a, false, value);
        if bufs.a == b"content-disposition" {
            params(value, |k, v| match k {
                b"name" => field = Some(v),
                b"filename" => filenames.push(v),
                b"filename*" => {
                    // charset'lang'percent-encoded
                    let enc = v.rsplit(|&b| b == b'\'').next().unwrap_or(&v[..]).to_vec();
                    let mut dec = Vec::new();
                    percent_decode(&enc, false, &mut dec);
                    filenames.push(dec);
                }
                _ => {}
            });
        }
    }
    let name = field.unwrap_or_default();
    sink.value(Kind::ArgName, &name, false, &name);
    for f in &filenames {
        sink.value(Kind::Filename, &name, false, f);
    }
    if filenames.is_empty() {
        sink.value(Kind::BodyArg, &name, false, content);
    }
}
