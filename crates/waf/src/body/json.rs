//! A streaming JSON reader: keys go to `args_names`, string values to `args` (as `json:<path>`,
//! the dotted key path; array elements add no segment, so `{"a":[{"b":"x"}]}` gives `a.b`).
//! Escapes (`\uXXXX` with surrogate pairs) are decoded. Numbers, booleans and null are not
//! inspected. Nesting deeper than [`super::MAX_DEPTH`] is an error.
//!
//! An array of objects repeats its keys in every element. When the sink skips what it already
//! received in the request ([`Sink::skips_repeats`]), a key that has the same bytes as the key
//! at the same position of the last object read at the same depth is not sent again
//! ([`Sink::repeat`] instead): two compares, where sending it costs the sink a look-up in its
//! memory (≈ 200 instructions). Only keys written without escapes are compared (their bytes
//! are in the body), only the first [`MEMO_KEYS`] of an object, and only keys the sink would
//! remember (at most [`crate::seen::MAX_VALUE`] bytes): a key is skipped only where the sink
//! would have skipped it.

use super::MAX_DEPTH;
use crate::inspect::{BodyError, Sink};
use crate::request::ParseBufs;
use crate::target::Kind;
use crate::transform::{hex_val, push_code_point};

/// Keys per object remembered by position.
const MEMO_KEYS: usize = 64;

/// No key remembered at this position (an empty range never compares equal: see
/// [`same_key`]).
const NO_KEY: (usize, usize) = (usize::MAX, 0);

/// The first `"` or `\\` of `rest`: eight bytes at a time over the first 32 (most keys and
/// values are short, where a call to `memchr2` costs more than the search), then `memchr2`.
#[inline]
fn quote_or_backslash(rest: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut k = 0;
    while k < 32 {
        let Some(chunk) = rest.get(k..).and_then(<[u8]>::first_chunk::<8>) else {
            let tail = rest.get(k..).unwrap_or(&[]);
            return tail
                .iter()
                .position(|&b| b == b'"' || b == b'\\')
                .map(|i| k + i);
        };
        let w = u64::from_le_bytes(*chunk);
        let (q, e) = (w ^ (LO * u64::from(b'"')), w ^ (LO * u64::from(b'\\')));
        // A zero byte of `q` or `e`: the lowest flagged byte is exact (a borrow can only
        // flag bytes above a zero byte).
        let hit = ((q.wrapping_sub(LO) & !q) | (e.wrapping_sub(LO) & !e)) & HI;
        if hit != 0 {
            return Some(k + (hit.trailing_zeros() / 8) as usize);
        }
        k += 8;
    }
    memchr::memchr2(b'"', b'\\', rest.get(k..).unwrap_or(&[])).map(|i| k + i)
}

struct P<'a> {
    b: &'a [u8],
    i: usize,
    /// The sink skips repeats ([`Sink::skips_repeats`]).
    skip: bool,
}

/// True when the key `span` of `b` (`None`: written with escapes) has the bytes of the key
/// remembered at position `ord` of depth `depth` in `keys`; remembers it there.
#[inline]
fn same_key(
    b: &[u8],
    keys: &mut Vec<Vec<(usize, usize)>>,
    depth: usize,
    ord: usize,
    span: Option<(usize, usize)>,
) -> bool {
    if ord >= MEMO_KEYS {
        return false;
    }
    let (s, e) = match span {
        Some((s, e)) if e - s <= crate::seen::MAX_VALUE => (s, e),
        _ => NO_KEY,
    };
    if keys.len() <= depth {
        keys.resize_with(depth + 1, Vec::new);
    }
    let Some(row) = keys.get_mut(depth) else {
        return false;
    };
    let Some(prev) = row.get_mut(ord) else {
        // A new position: the row grows one key at a time, as the object is read.
        row.push((s, e));
        return false;
    };
    let (ps, pe) = std::mem::replace(prev, (s, e));
    s <= e && ps <= pe && b.get(ps..pe) == b.get(s..e)
}

impl P<'_> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }
    fn err(&self) -> BodyError {
        BodyError::MalformedJson { offset: self.i }
    }
    fn hex4(&self, at: usize) -> Option<u32> {
        let mut v = 0u32;
        for k in 0..4 {
            v = v << 4 | u32::from(hex_val(*self.b.get(at + k)?)?);
        }
        Some(v)
    }
    /// Reads a string (at `"`): `Some(span)` of the input when it holds no escape (nothing to
    /// copy), else `None` with the decoded string in `out`.
    fn string(&mut self, out: &mut Vec<u8>) -> Result<Option<(usize, usize)>, BodyError> {
        self.i += 1;
        let start = self.i;
        let rest = self.b.get(start..).unwrap_or(&[]);
        if let Some(k) = quote_or_backslash(rest) {
            if rest.get(k) == Some(&b'"') {
                self.i = start + k + 1;
                return Ok(Some((start, start + k)));
            }
        }
        out.clear();
        loop {
            let rest = self.b.get(self.i..).unwrap_or(&[]);
            let Some(k) = memchr::memchr2(b'"', b'\\', rest) else {
                self.i = self.b.len();
                return Err(self.err());
            };
            out.extend_from_slice(&rest[..k]);
            self.i += k;
            if self.b.get(self.i) == Some(&b'"') {
                self.i += 1;
                return Ok(None);
            }
            let Some(&e) = self.b.get(self.i + 1) else {
                return Err(self.err());
            };
            self.i += 2;
            match e {
                b'"' | b'\\' | b'/' => out.push(e),
                b'b' => out.push(8),
                b'f' => out.push(12),
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b't' => out.push(b'\t'),
                b'u' => {
                    let Some(cp) = self.hex4(self.i) else {
                        return Err(self.err());
                    };
                    self.i += 4;
                    if (0xD800..0xDC00).contains(&cp)
                        && self.b.get(self.i) == Some(&b'\\')
                        && self.b.get(self.i + 1) == Some(&b'u')
                    {
                        if let Some(lo) = self.hex4(self.i + 2) {
                            if (0xDC00..0xE000).contains(&lo) {
                                self.i += 6;
                                push_code_point(
                                    out,
                                    0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00),
                                );
                                continue;
                            }
                        }
                    }
                    push_code_point(out, cp);
                }
                _ => return Err(self.err()),
            }
        }
    }

    /// Reads the value at the cursor (after white space): a string, number, boolean or null
    /// by [`P::scalar`], an object or array by [`P::container`]. Inlined into the loops of the
    /// containers: a scalar costs no call.
    #[inline(always)]
    fn value(
        &mut self,
        depth: usize,
        bufs: &mut ParseBufs,
        sink: &mut impl Sink,
    ) -> Result<(), BodyError> {
        self.ws();
        if self.scalar(bufs, sink)? {
            Ok(())
        } else {
            self.container(depth, bufs, sink)
        }
    }

    /// A string, number, boolean or null at the cursor (`Ok(true)`); `Ok(false)` at `{` or
    /// `[`.
    #[inline(always)]
    fn scalar(&mut self, bufs: &mut ParseBufs, sink: &mut impl Sink) -> Result<bool, BodyError> {
        match self.b.get(self.i) {
            Some(b'{' | b'[') => Ok(false),
            Some(b'"') => {
                let span = self.string(&mut bufs.c)?;
                let v = match span {
                    Some((s, e)) => self.b.get(s..e).unwrap_or(&[]),
                    None => &bufs.c,
                };
                sink.value(Kind::BodyArg, &bufs.a, true, v);
                Ok(true)
            }
            Some(b'-' | b'0'..=b'9') => {
                let rest = self.b.get(self.i..).unwrap_or(&[]);
                let n = rest
                    .iter()
                    .position(|c| !matches!(c, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                    .unwrap_or(rest.len());
                self.i += n;
                Ok(true)
            }
            _ => {
                for lit in [&b"true"[..], b"false", b"null"] {
                    if self.b.get(self.i..).is_some_and(|r| r.starts_with(lit)) {
                        self.i += lit.len();
                        return Ok(true);
                    }
                }
                Err(self.err())
            }
        }
    }

    /// The object or array at the cursor, its members at `depth + 1`.
    fn container(
        &mut self,
        depth: usize,
        bufs: &mut ParseBufs,
        sink: &mut impl Sink,
    ) -> Result<(), BodyError> {
        if depth >= MAX_DEPTH {
            return Err(BodyError::TooDeep { limit: MAX_DEPTH });
        }
        if self.b.get(self.i) == Some(&b'[') {
            self.i += 1;
            self.ws();
            if self.b.get(self.i) == Some(&b']') {
                self.i += 1;
                return Ok(());
            }
            loop {
                self.value(depth + 1, bufs, sink)?;
                if !self.next_member(b']')? {
                    return Ok(());
                }
            }
        }
        // An object (`scalar` left only `{` and `[`).
        self.i += 1;
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(());
        }
        let mut ord = 0;
        loop {
            self.ws();
            if self.b.get(self.i) != Some(&b'"') {
                return Err(self.err());
            }
            let span = self.string(&mut bufs.b)?;
            let key = match span {
                Some((s, e)) => self.b.get(s..e).unwrap_or(&[]),
                None => &bufs.b,
            };
            let repeat = self.skip && same_key(self.b, &mut bufs.keys, depth, ord, span);
            ord += 1;
            if repeat {
                sink.repeat();
            } else {
                sink.value(Kind::ArgName, key, true, key);
            }
            let plen = bufs.a.len();
            if plen > 0 {
                bufs.a.push(b'.');
            }
            bufs.a.extend_from_slice(key);
            self.ws();
            if self.b.get(self.i) != Some(&b':') {
                return Err(self.err());
            }
            self.i += 1;
            self.value(depth + 1, bufs, sink)?;
            bufs.a.truncate(plen);
            if !self.next_member(b'}')? {
                return Ok(());
            }
        }
    }

    /// After a member of a container closed by `close`: `,` (`Ok(true)`, another member
    /// follows) or `close` (`Ok(false)`, read).
    #[inline(always)]
    fn next_member(&mut self, close: u8) -> Result<bool, BodyError> {
        self.ws();
        match self.b.get(self.i) {
            Some(b',') => {
                self.i += 1;
                Ok(true)
            }
            Some(&b) if b == close => {
                self.i += 1;
                Ok(false)
            }
            _ => Err(self.err()),
        }
    }
}

/// Parses `body` as JSON, sending keys and string values to `sink`.
pub(crate) fn parse(
    body: &[u8],
    bufs: &mut ParseBufs,
    sink: &mut impl Sink,
) -> Result<(), BodyError> {
    bufs.a.clear();
    let skip = sink.skips_repeats();
    if skip {
        bufs.keys.iter_mut().for_each(Vec::clear);
    }
    let mut p = P {
        b: body,
        i: 0,
        skip,
    };
    p.value(0, bufs, sink)?;
    p.ws();
    if p.i != body.len() {
        return Err(p.err());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::quote_or_backslash;
    use proptest::prelude::*;

    fn naive(v: &[u8]) -> Option<usize> {
        v.iter().position(|&b| b == b'"' || b == b'\\')
    }

    #[test]
    fn the_word_search_finds_the_first_quote_or_backslash() {
        for len in 0..48 {
            let mut v = vec![b'a'; len];
            assert_eq!(quote_or_backslash(&v), None, "{len}");
            for at in (0..len).rev() {
                v[at] = if at % 2 == 0 { b'"' } else { b'\\' };
                assert_eq!(quote_or_backslash(&v), Some(at), "{len} {at}");
            }
        }
    }

    proptest! {
        /// Against a byte-by-byte search, with the bytes next to `"` and `\` (and those with
        /// the high bit set, where a borrow could flag the wrong byte) made common.
        #[test]
        fn the_word_search_equals_a_byte_search(
            v in proptest::collection::vec(
                prop_oneof![
                    4 => any::<u8>(),
                    1 => prop::sample::select(vec![
                        b'"', b'\\', 0x21, 0x23, 0x5b, 0x5d, 0xa2, 0xdc, 0x00, 0x01, 0xff, 0x80,
                    ]),
                ],
                0..90,
            )
        ) {
            prop_assert_eq!(quote_or_backslash(&v), naive(&v));
        }
    }
}
