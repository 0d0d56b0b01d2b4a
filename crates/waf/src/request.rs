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
    pub keys: crate::body::json::KeyMemo,
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

/// `input` percent-decoded (see [`percent_decode`]): `input` itself when it holds nothing to
/// decode (most names and values), else the decoding in `out`.
#[inline]
pub(crate) fn decoded<'a>(input: &'a [u8], plus: bool, out: &'a mut Vec<u8>) -> &'a [u8] {
    // A fold without an early exit: vectorised, and cheaper than a search's set-up on the
    // short names and values that are the common case.
    let plus_byte = if plus { b'+' } else { b'%' };
    let special = input
        .iter()
        .fold(false, |any, &b| any | (b == b'%') | (b == plus_byte));
    decoded_if(special, input, plus, out)
}

/// `input` percent-decoded into `out` when `special` (it holds a `%`, or a `+` with `plus`),
/// else `input` itself.
#[inline]
fn decoded_if<'a>(special: bool, input: &'a [u8], plus: bool, out: &'a mut Vec<u8>) -> &'a [u8] {
    if special {
        percent_decode(input, plus, out);
        out
    } else {
        input
    }
}

/// What [`urlencoded`] looks for in each byte: pair ends, the name's end, what decoding changes.
const AMP: u8 = 1;
const EQ: u8 = 2;
const DECODE: u8 = 4;
static FORM_BYTES: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b'&' as usize] = AMP;
    t[b'=' as usize] = EQ;
    t[b'%' as usize] = DECODE;
    t[b'+' as usize] = DECODE;
    t
};

/// Splits `a=1&b=2` and sends names (as `args_names`) and decoded values (as `kind`).
/// Repeated names (`a=1&a=2`, parameter pollution) are each inspected. One pass over the
/// bytes finds the pairs, each name's end (the first `=`) and whether the name and the value
/// have anything to decode; most have not and are sent as they are.
pub(crate) fn urlencoded(data: &[u8], kind: Kind, bufs: &mut ParseBufs, sink: &mut impl Sink) {
    // The current pair starts at `start`; its name ends at `eq` (its first `=`, if any);
    // `name_dec` / `value_dec`: a `%` or `+` in the name / the value.
    let (mut start, mut eq) = (0, None);
    let (mut name_dec, mut value_dec) = (false, false);
    let mut pair = |start: usize, end: usize, eq: Option<usize>, nd: bool, vd: bool| {
        if end == start {
            return;
        }
        let (name, value) = match eq {
            Some(eq) => (
                data.get(start..eq).unwrap_or(&[]),
                data.get(eq + 1..end).unwrap_or(&[]),
            ),
            None => (data.get(start..end).unwrap_or(&[]), &b""[..]),
        };
        let name = decoded_if(nd, name, true, &mut bufs.a);
        let value = decoded_if(vd, value, true, &mut bufs.b);
        sink.value(Kind::ArgName, name, false, name);
        sink.value(kind, name, false, value);
    };
    for (i, &b) in data.iter().enumerate() {
        let class = FORM_BYTES[usize::from(b)];
        if class == 0 {
            continue;
        }
        if class == AMP {
            pair(start, i, eq, name_dec, value_dec);
            (start, eq, name_dec, value_dec) = (i + 1, None, false, false);
        } else if class == EQ && eq.is_none() {
            eq = Some(i);
        } else if class == DECODE {
            if eq.is_some() {
                value_dec = true;
            } else {
                name_dec = true;
            }
        }
    }
    pair(start, data.len(), eq, name_dec, value_dec);
}

/// Splits a `Cookie` header value into names and values (values are not decoded).
fn cookies(header: &[u8], sink: &mut impl Sink) {
    for part in header.split(|&b| b == b';') {
        let part = trim(part);
        if part.is_empty() {
            continue;
        }
        let (name, value) = match part.iter().position(|&b| b == b'=') {
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
    let path = decoded(req.path, false, &mut bufs.c);
    sink.value(Kind::Path, b"", false, path);
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
    use super::{percent_decode, urlencoded, ParseBufs};
    use crate::inspect::Sink;
    use crate::target::Kind;

    /// `count` pseudo-random texts over `alphabet` (xorshift from `seed`), the `n`-th of
    /// `n % period` bytes.
    fn texts<'a>(
        alphabet: &'a [u8],
        seed: u64,
        count: usize,
        period: usize,
    ) -> impl Iterator<Item = Vec<u8>> + 'a {
        let mut x = seed;
        (0..count).map(move |n| {
            (0..n % period)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    alphabet[(x % alphabet.len() as u64) as usize]
                })
                .collect()
        })
    }

    /// What a parser sends, in order.
    #[derive(Default)]
    struct Record(Vec<(Kind, Vec<u8>, Vec<u8>)>);

    impl Sink for Record {
        fn value(&mut self, kind: Kind, name: &[u8], _: bool, value: &[u8]) {
            self.0.push((kind, name.to_vec(), value.to_vec()));
        }
        fn raw_body(&mut self, _: &[u8], _: bool) {}
    }

    /// The splitting as first written: `split` on `&`, the first `=`, both sides decoded.
    fn urlencoded_reference(data: &[u8], kind: Kind, out: &mut Record) {
        for pair in data.split(|&b| b == b'&') {
            if pair.is_empty() {
                continue;
            }
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            let (mut n, mut v) = (Vec::new(), Vec::new());
            reference(name, true, &mut n);
            reference(value, true, &mut v);
            out.value(Kind::ArgName, &n, false, &n);
            out.value(kind, &n, false, &v);
        }
    }

    #[test]
    fn one_pass_splits_as_split_and_decode() {
        let mut bufs = ParseBufs::default();
        for v in texts(b"a=&%+2F ", 0x9e37_79b9_7f4a_7c15, 40_000, 20) {
            let (mut got, mut want) = (Record::default(), Record::default());
            urlencoded(&v, Kind::QueryArg, &mut bufs, &mut got);
            urlencoded_reference(&v, Kind::QueryArg, &mut want);
            assert_eq!(got.0, want.0, "{:?}", String::from_utf8_lossy(&v));
        }
        let mut got = Record::default();
        urlencoded(
            b"&q=a+b%27&&x==y&flag&=v",
            Kind::BodyArg,
            &mut bufs,
            &mut got,
        );
        let sent: Vec<(Kind, &[u8], &[u8])> =
            got.0.iter().map(|(k, n, v)| (*k, &n[..], &v[..])).collect();
        assert_eq!(
            sent,
            [
                (Kind::ArgName, &b"q"[..], &b"q"[..]),
                (Kind::BodyArg, b"q", b"a b'"),
                (Kind::ArgName, b"x", b"x"),
                (Kind::BodyArg, b"x", b"=y"),
                (Kind::ArgName, b"flag", b"flag"),
                (Kind::BodyArg, b"flag", b""),
                (Kind::ArgName, b"", b""),
                (Kind::BodyArg, b"", b"v"),
            ]
        );
    }

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
    fn borrowed_or_decoded_is_the_decoding() {
        let mut out = b"stale".to_vec();
        for (input, plus, want) in [
            (&b"plain_value-1.2"[..], true, &b"plain_value-1.2"[..]),
            (b"", true, b""),
            (b"laptop+bag", true, b"laptop bag"),
            (b"laptop+bag", false, b"laptop+bag"),
            (b"a%27b", false, b"a'b"),
            (b"100%", true, b"100%"),
        ] {
            let got = super::decoded(input, plus, &mut out).to_vec();
            assert_eq!(
                got,
                want,
                "{:?} plus={plus}",
                String::from_utf8_lossy(input)
            );
            let mut full = Vec::new();
            percent_decode(input, plus, &mut full);
            assert_eq!(got, full);
        }
    }

    #[test]
    fn runs_and_escapes_decode_as_byte_by_byte() {
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        for v in texts(b"%+2aFg ", 0x2545_f491_4f6c_dd1d, 30_000, 24) {
            for plus in [false, true] {
                percent_decode(&v, plus, &mut a);
                reference(&v, plus, &mut b);
                assert_eq!(a, b, "{:?} plus={plus}", String::from_utf8_lossy(&v));
                assert_eq!(super::decoded(&v, plus, &mut c), &b[..]);
            }
        }
        percent_decode(b"q=O%27Brien+and%20%zz%4", true, &mut a);
        assert_eq!(a, b"q=O'Brien and %zz%4");
    }
}
