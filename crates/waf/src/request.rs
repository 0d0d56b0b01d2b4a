//! Extraction of values from the request head: method, path, uri, query and its arguments,
//! headers and cookies.

use crate::inspect::Sink;
use crate::target::Kind;
use crate::transform::hex_val;

/// The request head as the gateway has it. `path` and `query` are raw (undecoded).
#[derive(Clone, Copy, Debug)]
pub struct RequestHead<'a> {
    /// Method (`GET`, …).
    pub method: &'a str,
    /// Raw path, without the query.
    pub path: &'a [u8],
    /// Raw query string, without `?`.
    pub query: Option<&'a [u8]>,
    /// Headers.
    pub headers: &'a http::HeaderMap,
    /// The target's authority when the request has one (HTTP/2's `:authority`, an
    /// absolute-form HTTP/1.1 target): the request's host for the redirect detector when
    /// there is no `Host` header.
    pub authority: Option<&'a [u8]>,
}

/// Reusable parse buffers.
#[derive(Debug, Default)]
pub(crate) struct ParseBufs {
    pub a: Vec<u8>,
    pub b: Vec<u8>,
    pub c: Vec<u8>,
    pub stack: Vec<usize>,
    /// The JSON reader's memory of keys (`crate::body::json`): per nesting depth, the spans in
    /// the body of the keys of the last object read at that depth, by position.
    pub keys: Vec<Vec<(usize, usize)>>,
}

/// Percent-decodes `input` into `out` (`+` as space when `plus`). Invalid escapes are kept.
/// The runs between escapes are copied whole.
pub(crate) fn percent_decode(input: &[u8], plus: bool, out: &mut Vec<u8>) {
    out.clear();
    out.reserve(input.len());
    // `run`: where the bytes not copied yet start.
    let mut run = 0;
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        let decoded = match b {
            b'%' => input
                .get(i + 1)
                .and_then(|&c| hex_val(c))
                .zip(input.get(i + 2).and_then(|&c| hex_val(c)))
                .map(|(h, l)| (h << 4 | l, 3)),
            b'+' if plus => Some((b' ', 1)),
            _ => None,
        };
        match decoded {
            Some((d, len)) => {
                out.extend_from_slice(input.get(run..i).unwrap_or(&[]));
                out.push(d);
                i += len;
                run = i;
            }
            None => i += 1,
        }
    }
    out.extend_from_slice(input.get(run..).unwrap_or(&[]));
}

/// Splits `a=1&b=2` and sends names (as `args_names`) and decoded values (as `kind`).
/// Repeated names (`a=1&a=2`, parameter pollution) are each inspected.
pub(crate) fn urlencoded(data: &[u8], kind: Kind, bufs: &mut ParseBufs, sink: &mut impl Sink) {
    for pair in data.split(|&b| b == b'&') {
        if pair.is_empty() {
            continue;
        }
        let (name, value) = match memchr::memchr(b'=', pair) {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        percent_decode(name, true, &mut bufs.a);
        percent_decode(value, true, &mut bufs.b);
        sink.value(Kind::ArgName, &bufs.a, false, &bufs.a);
        sink.value(kind, &bufs.a, false, &bufs.b);
    }
}

/// Splits a `Cookie` header value into names and values (values are not decoded).
fn cookies(header: &[u8], sink: &mut impl Sink) {
    for part in header.split(|&b| b == b';') {
        let part = trim(part);
        if part.is_empty() {
            continue;
        }
        let (name, value) = match memchr::memchr(b'=', part) {
            Some(i) => (trim(&part[..i]), trim(&part[i + 1..])),
            None => (&b""[..], part),
        };
        sink.value(Kind::CookieName, name, false, name);
        sink.value(Kind::Cookie, name, false, value);
    }
}

pub(crate) fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

pub(crate) fn extract_head(req: &RequestHead<'_>, bufs: &mut ParseBufs, sink: &mut impl Sink) {
    sink.value(Kind::Method, b"", false, req.method.as_bytes());
    percent_decode(req.path, false, &mut bufs.c);
    sink.value(Kind::Path, b"", false, &bufs.c);
    bufs.c.clear();
    bufs.c.extend_from_slice(req.path);
    if let Some(q) = req.query {
        bufs.c.push(b'?');
        bufs.c.extend_from_slice(q);
    }
    sink.value(Kind::Uri, b"", false, &bufs.c);
    if let Some(q) = req.query {
        sink.value(Kind::Query, b"", false, q);
        urlencoded(q, Kind::QueryArg, bufs, sink);
    }
    // A client that sends the same headers on every request: one look-up for all of them
    // (crate::clean); the Cookie header is always inspected.
    let known = sink.headers_known(req.headers);
    for (name, value) in req.headers {
        let cookie = name == http::header::COOKIE;
        if known && !cookie {
            continue;
        }
        let n = name.as_str().as_bytes();
        sink.value(Kind::HeaderName, n, false, n);
        sink.value(Kind::Header, n, false, value.as_bytes());
        if cookie {
            cookies(value.as_bytes(), sink);
        }
    }
    if !known {
        sink.headers_done();
    }
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    /// The decoding as first written: byte by byte.
    fn reference(input: &[u8], plus: bool, out: &mut Vec<u8>) {
        out.clear();
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            if b == b'%' {
                if let (Some(h), Some(l)) = (
                    input.get(i + 1).and_then(|&c| crate::transform::hex_val(c)),
                    input.get(i + 2).and_then(|&c| crate::transform::hex_val(c)),
                ) {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
            }
            out.push(if plus && b == b'+' { b' ' } else { b });
            i += 1;
        }
    }

    #[test]
    fn runs_and_escapes_decode_as_byte_by_byte() {
        let alphabet = b"%+2aFg ";
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for n in 0..30_000usize {
            let mut v = Vec::new();
            for _ in 0..n % 24 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                v.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            for plus in [false, true] {
                percent_decode(&v, plus, &mut a);
                reference(&v, plus, &mut b);
                assert_eq!(a, b, "{:?} plus={plus}", String::from_utf8_lossy(&v));
            }
        }
        percent_decode(b"q=O%27Brien+and%20%zz%4", true, &mut a);
        assert_eq!(a, b"q=O'Brien and %zz%4");
    }
}
