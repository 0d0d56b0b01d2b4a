//! A streaming JSON reader: keys go to `args_names`, string values to `args` (as `json:<path>`,
//! the dotted key path; array elements add no segment, so `{"a":[{"b":"x"}]}` gives `a.b`).
//! Escapes (`\uXXXX` with surrogate pairs) are decoded. Numbers, booleans and null are not
//! inspected. Nesting deeper than [`super::MAX_DEPTH`] is an error.
//!
//! An array of objects repeats its keys in every element. When the sink skips what it already
//! received in the request ([`Sink::skips_repeats`]), a key that has the same bytes as the key
//! at the same position of the last object read at the same depth is not sent again
//! ([`Sink::repeat`] instead), where sending it costs the sink a look-up in its memory
//! (≈ 200 instructions). Only keys written without escapes are compared (their bytes are in
//! the body), only the first [`MEMO_KEYS`] of an object, and only keys the sink would remember
//! (at most [`crate::seen::MAX_VALUE`] bytes): a key is skipped only where the sink would have
//! skipped it. The remembered key is tried first: the body at the new key compared with it and
//! its closing quote, a word at a time ([`same_bytes`]), reads a repeated key without looking
//! for its end; any other key is read as a string, then compared ([`same_key`]).
//!
//! The reader peeks at a member's value before it extends the path with the member's key: a
//! number, `true`, `false` or `null` goes nowhere, so it costs no path. A string without
//! escapes is read in place (its end found eight bytes at a time); one with escapes is
//! decoded by [`P::escaped`], out of the inlined path. The cursor is passed by value (each
//! step takes the offset it reads at and returns the offset after what it read), so it stays
//! in a register; only [`P::container`] and [`P::escaped`] are calls.

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
    let (words, tail) = rest.as_chunks::<8>();
    for (n, chunk) in words.iter().take(4).enumerate() {
        let w = u64::from_le_bytes(*chunk);
        let (q, e) = (w ^ (LO * u64::from(b'"')), w ^ (LO * u64::from(b'\\')));
        // A zero byte of `q` or `e`: the lowest flagged byte is exact (a borrow can only
        // flag bytes above a zero byte).
        let hit = ((q.wrapping_sub(LO) & !q) | (e.wrapping_sub(LO) & !e)) & HI;
        if hit != 0 {
            return Some(n * 8 + (hit.trailing_zeros() / 8) as usize);
        }
    }
    if words.len() > 4 {
        return memchr::memchr2(b'"', b'\\', rest.get(32..).unwrap_or(&[])).map(|i| 32 + i);
    }
    let k = words.len() * 8;
    tail.iter()
        .position(|&b| b == b'"' || b == b'\\')
        .map(|i| k + i)
}

/// The reader's memory of keys (in [`ParseBufs`]): row `d` (the [`MEMO_KEYS`] slots from
/// `d * MEMO_KEYS`) holds the spans in the body of the keys of the last object read at depth
/// `d`, by position; [`NO_KEY`] where none is remembered. Rows are added as the body reaches
/// their depth, and all dropped when a body starts.
#[derive(Debug, Default)]
pub(crate) struct KeyMemo {
    spans: Vec<(usize, usize)>,
}

impl KeyMemo {
    /// Makes room for the row of `depth` (and those above it).
    #[inline]
    fn row(&mut self, depth: usize) {
        let n = (depth + 1) * MEMO_KEYS;
        if self.spans.len() < n {
            self.spans.resize(n, NO_KEY);
        }
    }
    /// The slot of the key at position `ord` of an object at `depth` (`None` past
    /// [`MEMO_KEYS`], or when the row was not made).
    #[inline(always)]
    fn slot(&mut self, depth: usize, ord: usize) -> Option<&mut (usize, usize)> {
        if ord >= MEMO_KEYS {
            return None;
        }
        self.spans.get_mut(depth * MEMO_KEYS + ord)
    }
}

/// True when the `n` bytes of `b` at `x` are those at `y` (`false` when either run is not
/// all in `b`). Up to 16 bytes (most keys with their closing quote) as one masked compare of
/// the 16 bytes at each, where `memcmp` costs a call.
#[inline(always)]
fn same_bytes(b: &[u8], x: usize, y: usize, n: usize) -> bool {
    let (Some(p), Some(q)) = (b.get(x..), b.get(y..)) else {
        return false;
    };
    if n <= 16 {
        if let (Some(p), Some(q)) = (p.first_chunk::<16>(), q.first_chunk::<16>()) {
            // The first differing byte (if any) is past the `n` compared.
            let d = u128::from_le_bytes(*p) ^ u128::from_le_bytes(*q);
            return d.trailing_zeros() as usize >= 8 * n;
        }
    }
    matches!((p.get(..n), q.get(..n)), (Some(p), Some(q)) if p == q)
}

/// True when the key `span` of `b` (`None`: written with escapes) has the bytes of the key
/// remembered in `slot` (`None`: past [`MEMO_KEYS`]); remembers it there.
#[inline]
fn same_key(b: &[u8], slot: Option<&mut (usize, usize)>, span: Option<(usize, usize)>) -> bool {
    let Some(prev) = slot else {
        return false;
    };
    let (s, e) = match span {
        Some((s, e)) if e - s <= crate::seen::MAX_VALUE => (s, e),
        _ => NO_KEY,
    };
    let (ps, pe) = std::mem::replace(prev, (s, e));
    s <= e && ps <= pe && b.get(ps..pe) == b.get(s..e)
}

/// Appends the key `s..e` of `b` to the path `a`. A key of at most 16 bytes is copied as the
/// 16 bytes from its start and the path cut back to its end: a fixed copy, where one of the
/// key's length costs a call.
#[inline(always)]
fn push_key(a: &mut Vec<u8>, b: &[u8], s: usize, e: usize) {
    match b.get(s..).and_then(<[u8]>::first_chunk::<16>) {
        Some(word) if e - s <= 16 => {
            let end = a.len() + (e - s);
            a.extend_from_slice(word);
            a.truncate(end);
        }
        _ => a.extend_from_slice(b.get(s..e).unwrap_or(&[])),
    }
}

/// The bytes of a number's run (see [`P::number`]).
static NUMBER: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = matches!(c as u8, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9');
        c += 1;
    }
    t
};

/// The error for the byte at `at`.
#[cold]
fn malformed(at: usize) -> BodyError {
    BodyError::MalformedJson { offset: at }
}

struct P<'a> {
    b: &'a [u8],
    /// The sink skips repeats ([`Sink::skips_repeats`]).
    skip: bool,
}

impl P<'_> {
    /// The byte at `i` once white space is skipped, and its offset.
    #[inline(always)]
    fn peek(&self, i: usize) -> (Option<u8>, usize) {
        match self.b.get(i) {
            Some(&c) if c > b' ' => (Some(c), i),
            _ => self.peek_past_space(i),
        }
    }
    /// [`P::peek`] where `i` is on white space (or a control byte, or the end).
    #[inline(never)]
    fn peek_past_space(&self, mut i: usize) -> (Option<u8>, usize) {
        loop {
            match self.b.get(i) {
                Some(&c) if c > b' ' => return (Some(c), i),
                Some(b' ' | b'\t' | b'\n' | b'\r') => i += 1,
                other => return (other.copied(), i),
            }
        }
    }
    fn hex4(&self, at: usize) -> Option<u32> {
        let mut v = 0u32;
        for k in 0..4 {
            v = v << 4 | u32::from(hex_val(*self.b.get(at + k)?)?);
        }
        Some(v)
    }
    /// Reads the string whose `"` is at `i`: the offset after it, and `Some(span)` of the
    /// input when it holds no escape (nothing to copy), else `None` with the decoded string
    /// in `out`. Inlined at the reader's call sites; a string with an escape goes to
    /// [`P::escaped`].
    #[inline(always)]
    fn string(
        &self,
        i: usize,
        out: &mut Vec<u8>,
    ) -> Result<(usize, Option<(usize, usize)>), BodyError> {
        let start = i + 1;
        let rest = self.b.get(start..).unwrap_or(&[]);
        if let Some(k) = quote_or_backslash(rest) {
            if rest.get(k) == Some(&b'"') {
                return Ok((start + k + 1, Some((start, start + k))));
            }
        }
        Ok((self.escaped(start, out)?, None))
    }
    /// The rest of a string with an escape (or with no closing quote) from `i`, after its
    /// `"`: decoded into `out`; the offset after its closing quote.
    #[inline(never)]
    fn escaped(&self, mut i: usize, out: &mut Vec<u8>) -> Result<usize, BodyError> {
        out.clear();
        loop {
            let rest = self.b.get(i..).unwrap_or(&[]);
            let Some(k) = memchr::memchr2(b'"', b'\\', rest) else {
                return Err(malformed(self.b.len()));
            };
            out.extend_from_slice(rest.get(..k).unwrap_or(&[]));
            i += k;
            if self.b.get(i) == Some(&b'"') {
                return Ok(i + 1);
            }
            let Some(&e) = self.b.get(i + 1) else {
                return Err(malformed(i));
            };
            i += 2;
            match e {
                b'"' | b'\\' | b'/' => out.push(e),
                b'b' => out.push(8),
                b'f' => out.push(12),
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b't' => out.push(b'\t'),
                b'u' => {
                    let Some(cp) = self.hex4(i) else {
                        return Err(malformed(i));
                    };
                    i += 4;
                    if (0xD800..0xDC00).contains(&cp)
                        && self.b.get(i) == Some(&b'\\')
                        && self.b.get(i + 1) == Some(&b'u')
                    {
                        if let Some(lo) = self.hex4(i + 2) {
                            if (0xDC00..0xE000).contains(&lo) {
                                i += 6;
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
                _ => return Err(malformed(i)),
            }
        }
    }

    /// The number at `i`: its run of `-+.eE` and digits (not inspected, not checked); the
    /// offset after it.
    #[inline(always)]
    fn number(&self, i: usize) -> usize {
        let rest = self.b.get(i..).unwrap_or(&[]);
        i + rest.iter().take_while(|&&c| NUMBER[usize::from(c)]).count()
    }

    /// `true`, `false` or `null` at `i` (the offset after it); anything else is the error.
    fn literal(&self, i: usize) -> Result<usize, BodyError> {
        let rest = self.b.get(i..).unwrap_or(&[]);
        for lit in [&b"true"[..], b"false", b"null"] {
            if rest.starts_with(lit) {
                return Ok(i + lit.len());
            }
        }
        Err(malformed(i))
    }

    /// Reads the value at `i` (white space skipped: `c` is the byte there), named by the path
    /// in `bufs.a`: a string goes to the sink, an object or array to [`P::container`] (its
    /// members at `depth + 1`). The offset after the value. Inlined into the loops of the
    /// containers: a scalar costs no call.
    #[inline(always)]
    fn value(
        &self,
        c: Option<u8>,
        i: usize,
        depth: usize,
        bufs: &mut ParseBufs,
        sink: &mut impl Sink,
    ) -> Result<usize, BodyError> {
        match c {
            Some(b'"') => {
                let (next, span) = self.string(i, &mut bufs.c)?;
                let v = match span {
                    Some((s, e)) => self.b.get(s..e).unwrap_or(&[]),
                    None => &bufs.c,
                };
                sink.value(Kind::BodyArg, &bufs.a, true, v);
                Ok(next)
            }
            Some(b'[') => self.container(true, i, depth, bufs, sink),
            Some(b'{') => self.container(false, i, depth, bufs, sink),
            Some(b'-' | b'0'..=b'9') => Ok(self.number(i)),
            _ => self.literal(i),
        }
    }

    /// The array (`array`) or object whose opening byte is at `i`, its members at
    /// `depth + 1`; the offset after it.
    fn container(
        &self,
        array: bool,
        i: usize,
        depth: usize,
        bufs: &mut ParseBufs,
        sink: &mut impl Sink,
    ) -> Result<usize, BodyError> {
        if depth >= MAX_DEPTH {
            return Err(BodyError::TooDeep { limit: MAX_DEPTH });
        }
        let b = self.b;
        if array {
            let (mut c, mut i) = self.peek(i + 1);
            if c == Some(b']') {
                return Ok(i + 1);
            }
            loop {
                let next = self.value(c, i, depth + 1, bufs, sink)?;
                (c, i) = match self.next_member(next, b']')? {
                    Next::Member(c, i) => (c, i),
                    Next::End(end) => return Ok(end),
                };
            }
        }
        let (mut c, mut i) = self.peek(i + 1);
        if c == Some(b'}') {
            return Ok(i + 1);
        }
        if self.skip {
            bufs.keys.row(depth);
        }
        let mut ord = 0;
        loop {
            if c != Some(b'"') {
                return Err(malformed(i));
            }
            let start = i + 1;
            let slot = if self.skip {
                bufs.keys.slot(depth, ord)
            } else {
                None
            };
            ord += 1;
            // `span`: the key in the body (`None`: decoded into `bufs.b`).
            let span = match slot {
                // The key remembered at this position, then its closing quote: the same key
                // without escapes, its end found by the compare.
                Some(slot)
                    if slot.0 <= slot.1 && same_bytes(b, start, slot.0, slot.1 - slot.0 + 1) =>
                {
                    let end = start + (slot.1 - slot.0);
                    *slot = (start, end);
                    i = end + 1;
                    sink.repeat();
                    Some((start, end))
                }
                slot => {
                    let (next, span) = self.string(i, &mut bufs.b)?;
                    i = next;
                    if same_key(b, slot, span) {
                        sink.repeat();
                    } else {
                        let key = match span {
                            Some((s, e)) => b.get(s..e).unwrap_or(&[]),
                            None => &bufs.b,
                        };
                        sink.value(Kind::ArgName, key, true, key);
                    }
                    span
                }
            };
            // Compact JSON: the `:` right after the key, the value right after it.
            (c, i) = match b.get(i..i + 2) {
                Some(&[b':', v]) if v > b' ' => (Some(v), i + 1),
                _ => {
                    let (colon, at) = self.peek(i);
                    if colon != Some(b':') {
                        return Err(malformed(at));
                    }
                    self.peek(at + 1)
                }
            };
            // A number or a literal is not inspected: the path needs no key for it.
            i = match c {
                Some(b'-' | b'0'..=b'9') => self.number(i),
                Some(b't' | b'f' | b'n') => self.literal(i)?,
                _ => {
                    let plen = bufs.a.len();
                    if plen > 0 {
                        bufs.a.push(b'.');
                    }
                    match span {
                        Some((s, e)) => push_key(&mut bufs.a, b, s, e),
                        None => bufs.a.extend_from_slice(&bufs.b),
                    }
                    let next = self.value(c, i, depth + 1, bufs, sink)?;
                    bufs.a.truncate(plen);
                    next
                }
            };
            (c, i) = match self.next_member(i, b'}')? {
                Next::Member(c, i) => (c, i),
                Next::End(end) => return Ok(end),
            };
        }
    }

    /// After a member of a container closed by `close`, at `i`: the next member's first byte
    /// and offset past the `,` (compact JSON, a `,` and the byte after it, is read with one
    /// check), or the offset past `close`.
    #[inline(always)]
    fn next_member(&self, i: usize, close: u8) -> Result<Next, BodyError> {
        match self.b.get(i..i + 2) {
            Some(&[b',', c]) if c > b' ' => Ok(Next::Member(Some(c), i + 1)),
            _ => match self.peek(i) {
                (Some(b','), at) => {
                    let (c, at) = self.peek(at + 1);
                    Ok(Next::Member(c, at))
                }
                (Some(c), at) if c == close => Ok(Next::End(at + 1)),
                (_, at) => Err(malformed(at)),
            },
        }
    }
}

/// What follows a member of a container ([`P::next_member`]).
enum Next {
    /// Another member: the byte it starts with (white space skipped) and its offset.
    Member(Option<u8>, usize),
    /// The container's end: the offset past its closing byte.
    End(usize),
}

/// Parses `body` as JSON, sending keys and string values to `sink`.
pub(crate) fn parse(
    body: &[u8],
    bufs: &mut ParseBufs,
    sink: &mut impl Sink,
) -> Result<(), BodyError> {
    bufs.a.clear();
    bufs.keys.spans.clear();
    let p = P {
        b: body,
        skip: sink.skips_repeats(),
    };
    let (c, i) = p.peek(0);
    let end = p.value(c, i, 0, bufs, sink)?;
    match p.peek(end) {
        (None, _) => Ok(()),
        (Some(_), at) => Err(malformed(at)),
    }
}

#[cfg(test)]
mod tests {
    use super::{parse, quote_or_backslash, MEMO_KEYS};
    use crate::inspect::{BodyError, Sink};
    use crate::request::ParseBufs;
    use crate::target::Kind;
    use proptest::prelude::*;
    use serde_json::Value;

    /// What the reader sends: (kind, name, value), and the repeats it did not send.
    #[derive(Default)]
    struct Record {
        sent: Sent,
        skips: bool,
        repeats: usize,
        /// Each key in order: `true` when it came as a repeat.
        keys: Vec<bool>,
    }

    impl Sink for Record {
        fn value(&mut self, kind: Kind, name: &[u8], json: bool, value: &[u8]) {
            assert!(json);
            if kind == Kind::ArgName {
                self.keys.push(false);
            }
            self.sent.push((kind, name.to_vec(), value.to_vec()));
        }
        fn skips_repeats(&self) -> bool {
            self.skips
        }
        fn repeat(&mut self) {
            self.repeats += 1;
            self.keys.push(true);
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

    /// What a sink receives: (kind, name, value), in order.
    type Sent = Vec<(Kind, Vec<u8>, Vec<u8>)>;

    /// What the reader must send for `v`, in document order: every key as an argument name,
    /// every string under its dotted path (arrays add no segment); nothing for numbers,
    /// booleans and null.
    fn expected(v: &Value, path: &str, out: &mut Sent) {
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

    /// `v` written as [`write`] does, and what the reader must send for it ([`expected`]).
    fn written(v: &Value, escape: &[bool], ws: &str) -> (String, Sent) {
        let mut text = String::new();
        write(v, escape, ws, &mut text);
        let mut want = Vec::new();
        expected(v, "", &mut want);
        (text, want)
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

    /// The keys the reader must send as repeats, written plainly: for each key of `text`
    /// (valid JSON) in order, `true` when it is written without escapes, is at most
    /// `MAX_VALUE` bytes, is among the first `MEMO_KEYS` of its object, and has the bytes of
    /// the key last read at the same position of an object at the same depth.
    fn model_repeats(text: &[u8]) -> Vec<bool> {
        struct M<'a> {
            t: &'a [u8],
            i: usize,
            /// By depth, by position: the key last read there (`None`: not comparable).
            rows: Vec<Vec<Option<Vec<u8>>>>,
            out: Vec<bool>,
        }
        impl M<'_> {
            fn byte(&self) -> u8 {
                self.t.get(self.i).copied().unwrap_or(0)
            }
            fn ws(&mut self) {
                while matches!(self.byte(), b' ' | b'\t' | b'\n' | b'\r') {
                    self.i += 1;
                }
            }
            /// The bytes between the quotes of the string at the cursor, as written.
            fn raw_string(&mut self) -> Vec<u8> {
                self.i += 1;
                let start = self.i;
                loop {
                    match self.byte() {
                        b'\\' => self.i += 2,
                        b'"' => break,
                        _ => self.i += 1,
                    }
                }
                self.i += 1;
                self.t[start..self.i - 1].to_vec()
            }
            fn key(&mut self, depth: usize, ord: usize, raw: Vec<u8>) -> bool {
                if ord >= MEMO_KEYS {
                    return false;
                }
                let key =
                    (!raw.contains(&b'\\') && raw.len() <= crate::seen::MAX_VALUE).then_some(raw);
                if self.rows.len() <= depth {
                    self.rows.resize(depth + 1, Vec::new());
                }
                let row = &mut self.rows[depth];
                if row.len() <= ord {
                    row.resize(ord + 1, None);
                }
                let prev = std::mem::replace(&mut row[ord], key.clone());
                key.is_some() && prev == key
            }
            fn value(&mut self, depth: usize) {
                self.ws();
                match self.byte() {
                    b'"' => {
                        self.raw_string();
                    }
                    open @ (b'[' | b'{') => {
                        self.i += 1;
                        self.ws();
                        let close = if open == b'[' { b']' } else { b'}' };
                        if self.byte() == close {
                            self.i += 1;
                            return;
                        }
                        let mut ord = 0;
                        loop {
                            if open == b'{' {
                                self.ws();
                                let raw = self.raw_string();
                                let repeat = self.key(depth, ord, raw);
                                self.out.push(repeat);
                                ord += 1;
                                self.ws();
                                self.i += 1; // `:`
                            }
                            self.value(depth + 1);
                            self.ws();
                            self.i += 1; // `,` or the closing byte
                            if self.t[self.i - 1] == close {
                                return;
                            }
                        }
                    }
                    _ => {
                        while !matches!(
                            self.byte(),
                            b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r' | 0
                        ) {
                            self.i += 1;
                        }
                    }
                }
            }
        }
        let mut m = M {
            t: text,
            i: 0,
            rows: Vec::new(),
            out: Vec::new(),
        };
        m.value(0);
        m.out
    }

    /// Documents whose objects share keys (of lengths around the reader's word sizes, with
    /// common prefixes, escaped or too long to remember) at the same or other positions.
    fn keyed_value() -> impl Strategy<Value = Value> {
        let mut keys: Vec<String> = [
            "a",
            "ab",
            "abc",
            "abcdefg",
            "abcdefgh",
            "abcdefghi",
            "abcdefghijklmno",
            "abcdefghijklmnop",
            "abcdefghijklmnopq",
            "abcdefghijklmnopqrstuvwxyz0123",
            "x\\",
            "a\"b",
            "\u{e9}t\u{e9}",
            "",
        ]
        .iter()
        .map(|k| k.to_string())
        .collect();
        keys.push("k".repeat(crate::seen::MAX_VALUE));
        keys.push("k".repeat(crate::seen::MAX_VALUE + 1));
        let key = prop_oneof![
            8 => prop::sample::select(keys),
            1 => "[a-c\"\\\\]{0,18}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(Value::from),
            "[a-c]{0,3}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 96, 8, move |inner| {
            prop_oneof![
                1 => proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                3 => proptest::collection::vec((key.clone(), inner), 0..8)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    #[test]
    fn the_model_of_repeats_skips_only_keys_at_a_remembered_position() {
        let text = br#"[{"a":1,"b":{"a":"x"}},{"a":[{"a":2}],"b":{"c":3,"a":4}},{"b":0,"a":1}]"#;
        // Object 1: a, b, then a at depth 2. Object 2: a (a repeat), a at depth 3, b (a
        // repeat), then c where depth 2 had a, and a at a new position. Object 3: b and a,
        // each where the other was.
        assert_eq!(
            model_repeats(text),
            [false, false, false, true, false, true, false, false, false, false]
        );
    }

    #[test]
    fn keys_past_the_remembered_positions_and_long_keys_are_sent() {
        let object = |n: usize| {
            let members: Vec<String> = (0..n).map(|k| format!("\"k{k:03}\":1")).collect();
            format!("{{{}}}", members.join(","))
        };
        let long = "k".repeat(crate::seen::MAX_VALUE + 1);
        for text in [
            format!("[{},{}]", object(MEMO_KEYS + 6), object(MEMO_KEYS + 6)),
            format!(r#"[{{"{long}":1}},{{"{long}":1}}]"#),
            format!(r#"[{{"{long}":1,"a":2}},{{"{long}x":1,"a":2}}]"#),
        ] {
            let (r, rec) = read(text.as_bytes(), true);
            assert_eq!(r, Ok(()));
            assert_eq!(rec.keys, model_repeats(text.as_bytes()), "{text}");
            assert!(rec.keys.contains(&true) || text.contains(&long));
        }
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
            let (text, want) = written(&v, &escape, if pretty { " \n\t" } else { "" });
            let back: Option<Value> = serde_json::from_str(&text).ok();
            prop_assert_eq!(back.as_ref(), Some(&v), "{}", text);
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

        /// The keys sent as repeats are exactly those of the plain model (position, depth,
        /// bytes as written), compact or with white space, and everything else is sent as
        /// serde_json reads it.
        #[test]
        fn the_reader_repeats_exactly_the_keys_of_the_model(
            v in keyed_value(),
            escape in proptest::collection::vec(any::<bool>(), 1..4),
            pretty in any::<bool>(),
        ) {
            let (text, want) = written(&v, &escape, if pretty { " \n" } else { "" });
            let (r, rec) = read(text.as_bytes(), true);
            prop_assert_eq!(r, Ok(()));
            prop_assert_eq!(&rec.keys, &model_repeats(text.as_bytes()), "{}", text);
            let mut sent = rec.sent.iter();
            for w in &want {
                if w.0 != Kind::ArgName || sent.as_slice().first() == Some(w) {
                    prop_assert_eq!(sent.next(), Some(w), "{}", text);
                }
            }
            prop_assert!(sent.as_slice().is_empty());
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
