//! Body parsers. The parser is chosen by Content-Type; the raw body is inspected as the `body`
//! target too, so a body that fails its parser (or has an unknown type) is still scanned. When
//! a JSON or urlencoded body parses whole, its keys and values carry every byte of it, so the
//! raw body goes only to the rules that do not already see both `args` and `args_names` (XML
//! and multipart bodies always go to every `body` rule: DTDs, comments and file contents are
//! not values). With no Content-Type, a body starting with `{`/`[` is tried as JSON and one
//! starting with `<` as XML (without reporting parse errors).

pub(crate) mod json;
pub(crate) mod multipart;
pub(crate) mod xml;

use crate::inspect::{BodyError, Sink};
use crate::request::{urlencoded, ParseBufs};
use crate::target::Kind;

/// Deepest nesting accepted in JSON and XML bodies.
pub const MAX_DEPTH: usize = 64;
/// Most multipart parts accepted.
pub const MAX_PARTS: usize = 256;

fn mime(ct: &[u8]) -> Vec<u8> {
    let end = memchr::memchr(b';', ct).unwrap_or(ct.len());
    crate::request::trim(&ct[..end]).to_ascii_lowercase()
}

/// Sends the body's values to `sink`; returns a parse error of the declared type.
pub(crate) fn extract_body(
    content_type: Option<&[u8]>,
    body: &[u8],
    bufs: &mut ParseBufs,
    sink: &mut impl Sink,
) -> Option<BodyError> {
    if body.is_empty() {
        return None;
    }
    let (err, whole) = parsed(content_type, body, bufs, sink);
    // The raw body last, so the more precise targets are reported first.
    sink.raw_body(body, whole);
    err
}

/// Runs the parser the body calls for. Returns the parse error to report, and whether a JSON
/// or urlencoded parser read the whole body.
fn parsed(
    content_type: Option<&[u8]>,
    body: &[u8],
    bufs: &mut ParseBufs,
    sink: &mut impl Sink,
) -> (Option<BodyError>, bool) {
    let Some(ct) = content_type else {
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        let whole = match first {
            Some(b'{' | b'[') => json::parse(body, bufs, sink).is_ok(),
            Some(b'<') => {
                let _ = xml::parse(body, bufs, sink);
                false
            }
            _ => false,
        };
        return (None, whole);
    };
    let m = mime(ct);
    if m == b"application/x-www-form-urlencoded" {
        urlencoded(body, Kind::BodyArg, bufs, sink);
        (None, true)
    } else if m == b"application/json" || m.ends_with(b"+json") || m == b"text/json" {
        let err = json::parse(body, bufs, sink).err();
        let whole = err.is_none();
        (err, whole)
    } else if m.starts_with(b"multipart/") {
        let err = match multipart::boundary(ct) {
            Some(b) => multipart::parse(body, &b, bufs, sink).err(),
            None => Some(BodyError::MalformedMultipart("no boundary in content-type")),
        };
        (err, false)
    } else if m == b"application/xml" || m == b"text/xml" || m.ends_with(b"+xml") {
        (xml::parse(body, bufs, sink).err(), false)
    } else {
        (None, false)
    }
}
