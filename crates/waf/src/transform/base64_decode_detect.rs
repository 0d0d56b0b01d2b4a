//! `base64_decode_detect`: finds base64-looking runs and appends their decoding.
//!
//! A run is at least [`MIN_RUN`] characters of the standard or URL-safe base64 alphabet,
//! counting its `=` padding. A run whose decoding is mostly printable text (at least 90 %
//! printable ASCII, tab or newline, or valid multi-byte UTF-8) is appended to the value after
//! a space; binary decodings (random tokens, hashes) are ignored. The original text stays, so
//! rules still see it. Example: `q=PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==` →
//! `q=PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg== <script>alert(1)</script>`.

/// Shortest run considered base64.
pub const MIN_RUN: usize = 16;

/// Base64 value of each byte (standard and URL-safe alphabets), `INVALID` for the others.
const INVALID: u8 = 0xFF;
static B64: [u8; 256] = {
    let mut t = [INVALID; 256];
    let mut i = 0;
    while i < 26 {
        t[b'A' as usize + i] = i as u8;
        t[b'a' as usize + i] = 26 + i as u8;
        i += 1;
    }
    let mut d = 0;
    while d < 10 {
        t[b'0' as usize + d] = 52 + d as u8;
        d += 1;
    }
    t[b'+' as usize] = 62;
    t[b'-' as usize] = 62;
    t[b'/' as usize] = 63;
    t[b'_' as usize] = 63;
    t
};

#[inline]
fn b64_val(b: u8) -> Option<u8> {
    let v = B64[usize::from(b)];
    (v != INVALID).then_some(v)
}

/// The bytes `run` (base64 characters, no padding) decodes to, in order.
fn decoded(run: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let (mut acc, mut bits) = (0u32, 0u32);
    run.iter().map_while(|&c| b64_val(c)).filter_map(move |v| {
        acc = acc << 6 | u32::from(v);
        bits += 6;
        (bits >= 8).then(|| {
            bits -= 8;
            (acc >> bits) as u8
        })
    })
}

/// Decoded bytes after which [`invalid_utf8_prefix`] is asked: text must be valid UTF-8
/// throughout, and a token or a hash in hex decodes to bytes that are not, which the first six
/// bytes almost always show.
const PREFIX: usize = 6;

/// True when `prefix` cannot start valid UTF-8 (an invalid sequence, not merely one cut at the
/// end of the prefix): the whole decoding is then not text, whatever follows.
fn invalid_utf8_prefix(prefix: &[u8]) -> bool {
    std::str::from_utf8(prefix).is_err_and(|e| e.error_len().is_some())
}

/// Decodes `run` into `out`, returning whether the result looks like text (false as soon as
/// its first [`PREFIX`] bytes show it is not; `out` then holds part of the decoding).
fn decode_run(run: &[u8], out: &mut Vec<u8>) -> bool {
    let start = out.len();
    for b in decoded(run) {
        out.push(b);
        if out.len() - start == PREFIX && invalid_utf8_prefix(out.get(start..).unwrap_or(&[])) {
            return false;
        }
    }
    looks_like_text(out.get(start..).unwrap_or(&[]))
}

/// Whether a decoding is text: valid UTF-8, at least 90 % printable (tab and newlines count).
fn looks_like_text(decoded: &[u8]) -> bool {
    if decoded.is_empty() {
        return false;
    }
    if decoded.is_ascii() {
        // One character a byte; the ASCII controls are 0x00-0x1F and 0x7F (`char::is_control`).
        let controls = decoded
            .iter()
            .filter(|&&b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) || b == 0x7F)
            .count();
        return (decoded.len() - controls) * 10 >= decoded.len() * 9;
    }
    let text = match std::str::from_utf8(decoded) {
        Ok(s) => s,
        Err(_) => return false,
    };
    let printable = text
        .chars()
        .filter(|c| !c.is_control() || *c == '\t' || *c == '\n' || *c == '\r')
        .count();
    printable * 10 >= text.chars().count() * 9
}

/// Longest run [`may_decode`] decodes on the stack; a longer one counts as decodable.
const STACK_RUN: usize = 2048;

/// Whether `run` (base64 characters, no padding) decodes to text, like [`decode_run`] without
/// an output buffer.
fn run_is_text(run: &[u8]) -> bool {
    // Most runs are short (ids, hashes): a small buffer to clear for them.
    if run.len() <= 128 {
        run_is_text_in(run, &mut [0u8; 128 * 3 / 4 + 1])
    } else if run.len() <= STACK_RUN {
        run_is_text_in(run, &mut [0u8; STACK_RUN * 3 / 4 + 1])
    } else {
        true
    }
}

/// [`decode_run`] into a buffer of the caller's (`buf` holds the whole decoding): four
/// characters to three bytes at a time, the first [`PREFIX`] bytes checked once decoded (two
/// groups), the rest as `decoded` gives it.
fn run_is_text_in(run: &[u8], buf: &mut [u8]) -> bool {
    let mut n = 0;
    let mut groups = run.chunks_exact(4);
    for g in &mut groups {
        let [a, b, c, d] = [g[0], g[1], g[2], g[3]].map(|x| B64[usize::from(x)]);
        // Values are below 64: a larger OR is a byte that is not base64 (never, from
        // `long_runs`), and a group that would not fit (never, by the callers' sizes); both as
        // `decoded` reads them, byte by byte.
        let Some(slot) = buf.get_mut(n..n + 3).filter(|_| (a | b | c | d) < 64) else {
            return run_is_text_tail(run, n / 3 * 4, buf, n);
        };
        let v = u32::from(a) << 18 | u32::from(b) << 12 | u32::from(c) << 6 | u32::from(d);
        slot.copy_from_slice(&[(v >> 16) as u8, (v >> 8) as u8, v as u8]);
        n += 3;
        if n == PREFIX && invalid_utf8_prefix(buf.get(..n).unwrap_or(&[])) {
            return false;
        }
    }
    let done = run.len() - groups.remainder().len();
    run_is_text_tail(run, done, buf, n)
}

/// The end of [`run_is_text_in`]: `run` from character `from` on (fewer than four, or a byte
/// that is not base64) decoded as `decoded` does into `buf`, after the `n` bytes already there.
fn run_is_text_tail(run: &[u8], from: usize, buf: &mut [u8], mut n: usize) -> bool {
    for b in decoded(run.get(from..).unwrap_or(&[])) {
        let Some(slot) = buf.get_mut(n) else { break };
        *slot = b;
        n += 1;
        if n == PREFIX && invalid_utf8_prefix(buf.get(..n).unwrap_or(&[])) {
            return false;
        }
    }
    looks_like_text(buf.get(..n).unwrap_or(&[]))
}

/// A run of base64 characters this long, plus at most two `=`, can reach [`MIN_RUN`].
const SHORTEST_RUN: usize = MIN_RUN - 2;

/// The maximal runs of at least [`SHORTEST_RUN`] base64 characters, in order, as `(start, end)`.
/// Such a run covers one of the positions `SHORTEST_RUN - 1`, `2 * SHORTEST_RUN - 1`, …, so
/// only those are probed; a probe that lands on a base64 character measures its run and the
/// next probe is `SHORTEST_RUN` bytes past the run's end. Plain text (words of a few letters
/// between spaces and punctuation) is crossed several bytes at a time.
fn long_runs(input: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut p = SHORTEST_RUN - 1;
    std::iter::from_fn(move || {
        while let Some(&b) = input.get(p) {
            if b64_val(b).is_none() {
                p += SHORTEST_RUN;
                continue;
            }
            let mut s = p;
            while s > 0 && input.get(s - 1).is_some_and(|&c| b64_val(c).is_some()) {
                s -= 1;
            }
            let mut e = p + 1;
            while input.get(e).is_some_and(|&c| b64_val(c).is_some()) {
                e += 1;
            }
            p = e + SHORTEST_RUN;
            if e - s >= SHORTEST_RUN {
                return Some((s, e));
            }
        }
        None
    })
}

/// True exactly when [`apply`] changes `input`: a run it decodes (at least [`MIN_RUN`]
/// characters with its padding, not only letters) decodes to text. Runs are decoded on the
/// stack; one longer than 2,048 characters counts as decodable. Used by the engine's fast path
/// (`crate::plain`): a session id or a hash in hex is not text once decoded, so such a value
/// stays eligible.
pub fn may_decode(input: &[u8]) -> bool {
    input.len() >= MIN_RUN
        && long_runs(input).any(|(start, end)| {
            let mut i = end;
            while input.get(i) == Some(&b'=') && i - start < end - start + 2 {
                i += 1;
            }
            let run = input.get(start..end).unwrap_or(&[]);
            !(i - start < MIN_RUN || run.iter().all(|b| b.is_ascii_alphabetic()))
                && run_is_text(run)
        })
}

/// [`may_decode`] of a value whose class mask ([`crate::transform::class`]) is `mask`: false
/// without a look at the bytes when the value holds no base64 character but letters, since a
/// run of letters alone is never decoded (prose, names, most header values).
#[inline]
pub(crate) fn may_decode_masked(input: &[u8], mask: u64) -> bool {
    mask & crate::transform::class::B64_NON_LETTER != 0 && may_decode(input)
}

/// Applies the transform (see the module doc). Runs shorter than [`SHORTEST_RUN`] characters
/// cannot reach [`MIN_RUN`] with their padding, so only the long runs are looked at.
pub fn apply(input: &[u8], out: &mut Vec<u8>) -> bool {
    if input.len() < MIN_RUN {
        return false;
    }
    let mut changed = false;
    for (start, end) in long_runs(input) {
        let run = input.get(start..end).unwrap_or(&[]);
        let mut i = end;
        while input.get(i) == Some(&b'=') && i - start < run.len() + 2 {
            i += 1;
        }
        if i - start < MIN_RUN || run.iter().all(|b| b.is_ascii_alphabetic()) {
            continue;
        }
        if !changed {
            out.clear();
            out.extend_from_slice(input);
            changed = true;
        }
        let mark = out.len();
        out.push(b' ');
        if !decode_run(run, out) {
            out.truncate(mark);
        }
    }
    changed && out.len() > input.len()
}

#[cfg(test)]
mod tests {
    use super::{apply, b64_val, decode_run, decoded, long_runs, MIN_RUN, SHORTEST_RUN};
    use proptest::prelude::*;

    /// The transform as first written: every run scanned byte by byte.
    fn reference(input: &[u8], out: &mut Vec<u8>) -> bool {
        if input.len() < MIN_RUN {
            return false;
        }
        let mut changed = false;
        let mut i = 0;
        while i < input.len() {
            if b64_val(input[i]).is_none() {
                i += 1;
                continue;
            }
            let start = i;
            while i < input.len() && b64_val(input[i]).is_some() {
                i += 1;
            }
            let run = &input[start..i];
            while i < input.len() && input[i] == b'=' && i - start < run.len() + 2 {
                i += 1;
            }
            if i - start < MIN_RUN || run.iter().all(|b| b.is_ascii_alphabetic()) {
                continue;
            }
            if !changed {
                out.clear();
                out.extend_from_slice(input);
                changed = true;
            }
            let mark = out.len();
            out.push(b' ');
            if !decode_run(run, out) {
                out.truncate(mark);
            }
        }
        changed && out.len() > input.len()
    }

    fn agree(input: &[u8]) {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let ca = apply(input, &mut a);
        let cb = reference(input, &mut b);
        assert_eq!(ca, cb, "{:?}", String::from_utf8_lossy(input));
        if ca {
            assert_eq!(a, b, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn long_runs_are_found_wherever_they_sit() {
        for len in 0..60 {
            for run in [SHORTEST_RUN - 1, SHORTEST_RUN, SHORTEST_RUN + 3] {
                for at in 0..len {
                    let mut v = vec![b' '; len];
                    for b in v.iter_mut().skip(at).take(run) {
                        *b = b'A';
                    }
                    let naive = v
                        .split(|&b| b64_val(b).is_none())
                        .filter(|r| r.len() >= SHORTEST_RUN)
                        .count();
                    assert_eq!(long_runs(&v).count(), naive, "len {len} run {run} at {at}");
                    for (k, b) in v.iter_mut().skip(at).take(run).enumerate() {
                        *b = b"PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg"[k % 34];
                    }
                    agree(&v);
                }
            }
        }
    }

    /// Exactly the maximal runs of `SHORTEST_RUN` or more, with their bounds, on random texts
    /// of every density of base64 characters.
    #[test]
    fn long_runs_are_exactly_the_maximal_runs() {
        let mut x = 0x853c_49e6_748f_ea9bu64;
        for n in 0..40_000usize {
            let density = n % 16;
            let v: Vec<u8> = (0..n % 90)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if ((x >> 8) % 16) as usize <= density {
                        b"aZ9+/-_"[((x >> 20) % 7) as usize]
                    } else {
                        b" .=:"[((x >> 20) % 4) as usize]
                    }
                })
                .collect();
            let mut naive = Vec::new();
            let mut i = 0;
            while i < v.len() {
                if b64_val(v[i]).is_none() {
                    i += 1;
                    continue;
                }
                let s = i;
                while i < v.len() && b64_val(v[i]).is_some() {
                    i += 1;
                }
                if i - s >= SHORTEST_RUN {
                    naive.push((s, i));
                }
            }
            let got: Vec<(usize, usize)> = long_runs(&v).collect();
            assert_eq!(got, naive, "{:?}", String::from_utf8_lossy(&v));
        }
    }

    /// `run_is_text` (groups of four) and `decode_run` (one byte at a time) answer as the
    /// definition does (characters counted by `char`; `looks_like_text` counts ASCII by
    /// bytes), on runs that decode to text (ASCII with and without controls, UTF-8, cut
    /// anywhere) and on random ones.
    #[test]
    fn run_is_text_is_the_definition() {
        /// Standard base64 without padding.
        fn encode(bytes: &[u8]) -> Vec<u8> {
            let table = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let mut out = Vec::new();
            for c in bytes.chunks(3) {
                let v = c
                    .iter()
                    .enumerate()
                    .fold(0u32, |v, (i, &b)| v | u32::from(b) << (16 - 8 * i));
                for k in 0..=c.len() {
                    out.push(table[(v >> (18 - 6 * k) & 63) as usize]);
                }
            }
            out
        }
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_";
        let texts: [&[u8]; 4] = [
            b"select * from users where id = 1",
            b"a\x01b\x7fc\td\ne\r",
            "é€😀 text ü".as_bytes(),
            b"\x00\x02\x03",
        ];
        let (mut text_runs, mut texts_seen) = (0, 0);
        for n in 0..20_000usize {
            let run: Vec<u8> = if n % 2 == 0 {
                let t = texts[n / 2 % 4];
                let len = (next() % 40) as usize;
                let mut text: Vec<u8> = t.iter().cycle().take(len).copied().collect();
                if n % 10 == 0 {
                    text.push(0x1f);
                }
                let run = encode(&text);
                assert!(decoded(&run).eq(text.iter().copied()), "the test's encoder");
                text_runs += 1;
                run
            } else {
                (0..next() % 200)
                    .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                    .collect()
            };
            // The definition: the decoding is valid UTF-8 and at least 90 % of its characters
            // are not controls other than tab and newlines.
            let bytes: Vec<u8> = decoded(&run).collect();
            let expected = std::str::from_utf8(&bytes).is_ok_and(|t| {
                let printable = t
                    .chars()
                    .filter(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
                    .count();
                !t.is_empty() && printable * 10 >= t.chars().count() * 9
            });
            let mut out = Vec::new();
            assert_eq!(
                decode_run(&run, &mut out),
                expected,
                "{}",
                String::from_utf8_lossy(&run)
            );
            texts_seen += usize::from(expected);
            assert_eq!(
                super::run_is_text(&run),
                expected,
                "{}",
                String::from_utf8_lossy(&run)
            );
        }
        // Both answers occur often.
        assert!(texts_seen > 2_000 && texts_seen < text_runs, "{texts_seen}");
    }

    proptest! {
        #[test]
        fn probing_agrees_with_the_full_scan(v in "([a-zA-Z0-9+/_-]{0,20}[=]{0,3}[ .,:]{0,2}){0,8}") {
            agree(v.as_bytes());
        }

        #[test]
        fn probing_agrees_on_real_base64(s in "[ -~]{0,40}", t in "[ -~]{0,40}") {
            let mut v = s.into_bytes();
            v.extend_from_slice(b"PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg== ");
            v.extend_from_slice(t.as_bytes());
            agree(&v);
        }
    }
}
