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
//!
//! The reader peeks at a member's value before it extends the path with the member's key: a
//! number, `true`, `false` or `null` goes nowhere, so it costs no path. A string without
//! escapes is read in place (its end found eight bytes at a time); one with escapes is
//! decoded by [`P::escaped`], out of the inlined path.

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
    /// The byte at the cursor once white space is skipped (the cursor is left on it).
    #[inline(always)]
    fn peek(&mut self) -> Option<u8> {
        loop {
            match self.b.get(self.i) {
                Some(&c) if c > b' ' => return Some(c),
                Some(b' ' | b'\t' | b'\n' | b'\r') => self.i += 1,
                other => return other.copied(),
            }
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
    /// Reads a string (the cursor at its `"`): `Some(span)` of the input when it holds no
    /// escape (nothing to copy), else `None` with the decoded string in `out`. Inlined at the
    /// reader's three call sites; a string with an escape goes to [`P::escaped`].
    #[inline(always)]
    fn string(&mut self, out: &mut Vec<u8>) -> Result<Option<(usize, usize)>, BodyError> {
        let start = self.i + 1;
        let rest = self.b.get(start..).unwrap_or(&[]);
        if let Some(k) = quote_or_backslash(rest) {
            if rest.get(k) == Some(&b'"') {
                self.i = start + k + 1;
                return Ok(Some((start, start + k)));
            }
        }
        self.i = start;
        self.escaped(out)?;
        Ok(None)
    }
    /// The rest of a string with an escape (or with no closing quote), the cursor after its
    /// `"`: decoded into `out`.
    #[inline(never)]
    fn escaped(&mut self, out: &mut Vec<u8>) -> Result<(), BodyError> {
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
                return Ok(());
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

    /// A number at the cursor: its run of `-+.eE` and digits (not inspected, not checked).
    #[inline(always)]
    fn number(&mut self) {
        let rest = self.b.get(self.i..).unwrap_or(&[]);
        self.i += rest
            .iter()
            .position(|c| !matches!(c, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
            .unwrap_or(rest.len());
    }

    /// `true`, `false` or `null` at the cursor; anything else is the error.
    fn literal(&mut self) -> Result<(), BodyError> {
        let rest = self.b.get(self.i..).unwrap_or(&[]);
        for lit in [&b"true"[..], b"false", b"null"] {
            if rest.starts_with(lit) {
                self.i += lit.len();
                return Ok(());
            }
        }
        Err(self.err())
    }

    /// Reads the value at the cursor (after white space), named by the path in `bufs.a`: a
    /// string goes to the sink, an object or array to [`P::container`] (its members at
    /// `depth + 1`). Inlined into the loops of the containers: a scalar costs no call.
    #[inline(always)]
    fn value(
        &mut self,
        depth: usize,
        bufs: &mut ParseBufs,
        sink: &mut impl Sink,
    ) -> Result<(), BodyError> {
        match self.peek() {
            Some(b'"') => {
                let span = self.string(&mut bufs.c)?;
                let v = match span {
                    Some((s, e)) => self.b.get(s..e).unwrap_or(&[]),
                    None => &bufs.c,
                };
                sink.value(Kind::BodyArg, &bufs.a, true, v);
                Ok(())
            }
            Some(b'{' | b'[') => self.container(depth, bufs, sink),
            Some(b'-' | b'0'..=b'9') => {
                self.number();
                Ok(())
            }
            _ => self.literal(),
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
            if self.peek() == Some(b']') {
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
        // An object (`value` sends only `{` and `[` here).
        self.i += 1;
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        let mut ord = 0;
        loop {
            if self.peek() != Some(b'"') {
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
            if self.peek() != Some(b':') {
                return Err(self.err());
            }
            self.i += 1;
            // A number or a literal is not inspected: the path needs no key for it.
            match self.peek() {
                Some(b'-' | b'0'..=b'9') => self.number(),
                Some(b't' | b'f' | b'n') => self.literal()?,
                _ => {
                    let plen = bufs.a.len();
                    if plen > 0 {
                        bufs.a.push(b'.');
                    }
                    bufs.a.extend_from_slice(key);
                    self.value(depth + 1, bufs, sink)?;
                    bufs.a.truncate(plen);
                }
            }
            if !self.next_member(b'}')? {
                return Ok(());
            }
        }
    }

    /// After a member of a container closed by `close`: `,` (`Ok(true)`, another member
    /// follows) or `close` (`Ok(false)`, read).
    #[inline(always)]
    fn next_member(&mut self, close: u8) -> Result<bool, BodyError> {
        match self.peek() {
            Some(b',') => {
                self.i += 1;
                Ok(true)
            }
            Some(c) if c == close => {
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
    if p.peek().is_some() {
        return Err(p.err());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{parse, quote_or_backslash};
    use crate::inspect::{BodyError, Sink};
    use crate::request::ParseBufs;
    use crate::target::Kind;
    use proptest::prelude::*;
    use serde_json::Value;

    /// What the reader sends: (kind, name, value), and the repeats it did not send.
    #[derive(Default)]
    struct Record {
        sent: Vec<(Kind, Vec<u8>, Vec<u8>)>,
        skips: bool,
        repeats: usize,
    }

    impl Sink for Record {
        fn value(&mut self, kind: Kind, name: &[u8], json: bool, value: &[u8]) {
            assert!(json);
            self.sent.push((kind, name.to_vec(), value.to_vec()));
        }
        fn skips_repeats(&self) -> bool {
            self.skips
        }
        fn repeat(&mut self) {
            self.repeats += 1;
        }
        fn raw_body(&mut self, _: &[u8], _: bool) {}
    }

    fn read(body: &[u8], skips: bool) -> (Result<(), BodyError>, Record) {
        let mut rec = Record {
            skips,
            ..Record::default()
        };
        let r = parse(body, &mut ParseBufs::default(), &mut rec);
        (r, rec)
    }

    /// What the reader must send for `v`, in document order: every key as an argument name,
    /// every string under its dotted path (arrays add no segment); nothing for numbers,
    /// booleans and null.
    fn expected(v: &Value, path: &str, out: &mut Vec<(Kind, Vec<u8>, Vec<u8>)>) {
        match v {
            Value::String(s) => out.push((Kind::BodyArg, path.into(), s.clone().into_bytes())),
            Value::Array(a) => a.iter().for_each(|e| expected(e, path, out)),
            Value::Object(m) => {
                for (k, e) in m {
                    out.push((
                        Kind::ArgName,
                        k.clone().into_bytes(),
                        k.clone().into_bytes(),
                    ));
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    expected(e, &p, out);
                }
            }
            _ => {}
        }
    }

    /// Writes `s` as a JSON string, each character escaped or not as `escape` says (by its
    /// index): the short escapes where JSON has one, else `\uXXXX`, a surrogate pair above
    /// the BMP. Control characters are always escaped; full-width ASCII never is (the reader
    /// folds an escaped one to ASCII, as IIS does).
    fn write_str(s: &str, escape: &[bool], ws: &str, out: &mut String) {
        out.push('"');
        for (i, c) in s.chars().enumerate() {
            let esc = escape
                .get(i % escape.len().max(1))
                .copied()
                .unwrap_or(false);
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' if esc => out.push_str("\\n"),
                '\t' if esc => out.push_str("\\t"),
                '/' if esc => out.push_str("\\/"),
                // Full-width ASCII escaped is folded to ASCII (`push_code_point`): written raw.
                c if ('\u{ff01}'..='\u{ff5e}').contains(&c) && (c as u32) >= 0x20 => out.push(c),
                c if esc || (c as u32) < 0x20 => {
                    let mut units = [0u16; 2];
                    for u in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{:04x}", u));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
        out.push_str(ws);
    }

    /// A structural character, then the white space between tokens.
    fn punct(out: &mut String, c: char, ws: &str) {
        out.push(c);
        out.push_str(ws);
    }

    fn write(v: &Value, escape: &[bool], ws: &str, out: &mut String) {
        match v {
            Value::String(s) => write_str(s, escape, ws, out),
            Value::Array(a) => {
                punct(out, '[', ws);
                for (i, e) in a.iter().enumerate() {
                    if i > 0 {
                        punct(out, ',', ws);
                    }
                    write(e, escape, ws, out);
                }
                punct(out, ']', ws);
            }
            Value::Object(m) => {
                punct(out, '{', ws);
                for (i, (k, e)) in m.iter().enumerate() {
                    if i > 0 {
                        punct(out, ',', ws);
                    }
                    write_str(k, escape, ws, out);
                    punct(out, ':', ws);
                    write(e, escape, ws, out);
                }
                punct(out, '}', ws);
            }
            other => {
                out.push_str(&other.to_string());
                out.push_str(ws);
            }
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let text = prop_oneof![
            4 => "[a-z]{0,6}",
            1 => "[a-z \"\\\\/\n\t\u{1}\u{e9}\u{1f600}]{0,12}",
            1 => any::<String>(),
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-4000i32..4000).prop_map(|i| Value::from(f64::from(i) / 8.0)),
            text.clone().prop_map(Value::String),
        ];
        // Keys from a few short ones too: objects in an array then share keys at the same
        // positions, and keys of one length differ (the reader's memory of keys by position).
        let key = prop_oneof![
            2 => prop::sample::select(vec!["a", "b", "ab", "ba", "x\\"]).prop_map(String::from),
            1 => text.clone(),
        ];
        leaf.prop_recursive(5, 48, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec((key.clone(), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

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

    proptest! {
        /// Every key and string of a document, escaped any way JSON allows and with or
        /// without white space, reaches the sink decoded and under its path, in order; when
        /// the sink skips repeats, what is not sent is a key the sink already had.
        #[test]
        fn the_reader_sends_what_serde_json_reads(
            v in json_value(),
            escape in proptest::collection::vec(any::<bool>(), 1..5),
            pretty in any::<bool>(),
        ) {
            let mut text = String::new();
            write(&v, &escape, if pretty { " \n\t" } else { "" }, &mut text);
            let back: Option<Value> = serde_json::from_str(&text).ok();
            prop_assert_eq!(back.as_ref(), Some(&v), "{}", text);
            let mut want = Vec::new();
            expected(&v, "", &mut want);
            let (r, all) = read(text.as_bytes(), false);
            prop_assert_eq!(r, Ok(()));
            prop_assert_eq!(&all.sent, &want);
            prop_assert_eq!(all.repeats, 0);
            let (r, some) = read(text.as_bytes(), true);
            prop_assert_eq!(r, Ok(()));
            prop_assert_eq!(some.sent.len() + some.repeats, want.len());
            let mut it = some.sent.iter();
            for (i, w) in want.iter().enumerate() {
                if it.as_slice().first() == Some(w) {
                    it.next();
                } else {
                    // Not sent: a key the sink already had (same kind, name and value).
                    prop_assert_eq!(w.0, Kind::ArgName);
                    prop_assert!(want[..i].contains(w), "{:?} skipped unseen", w);
                }
            }
            prop_assert!(it.as_slice().is_empty());
        }

        /// Any prefix of a document and any document with one byte changed: an error with an
        /// offset inside the body, or a clean read; never a panic.
        #[test]
        fn broken_documents_are_errors_inside_the_body(
            v in json_value(),
            cut in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let text = v.to_string().into_bytes();
            let at = cut.index(text.len() + 1);
            let mut changed = text.clone();
            if let Some(b) = changed.get_mut(at) {
                *b = byte;
            }
            for body in [&text[..at], &changed[..]] {
                if let (Err(BodyError::MalformedJson { offset }), _) = read(body, true) {
                    prop_assert!(offset <= body.len());
                }
            }
        }
    }

    #[test]
    fn errors_name_the_offset_of_the_first_byte_that_cannot_be_read() {
        for (body, offset) in [
            (&b"{\"a\": <x>"[..], 6),
            (b"{\"a\":1,}", 7),
            (b"[1 2]", 3),
            (b"{\"a\" 1}", 5),
            (b"{1:2}", 1),
            (b"\"ab", 3),
            (b"\"a\\x\"", 4),
            (b"\"\\u12\"", 3),
            (b"[tru]", 1),
            (b"{} x", 3),
            (b"", 0),
        ] {
            let (r, _) = read(body, false);
            assert_eq!(
                r,
                Err(BodyError::MalformedJson { offset }),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
