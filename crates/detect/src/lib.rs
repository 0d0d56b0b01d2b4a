//! palisade-detect: tokenizer-based SQL injection and XSS detectors (the libinjection idea,
//! written from scratch in safe Rust). See docs/ARCHITECTURE.md.
//!
//! Both detectors take one already-decoded value (a query argument, a header, a JSON string...)
//! and answer `Some(Detection)` when it looks like an injection. They never allocate, run in
//! linear time and never panic, whatever the bytes.
//!
//! * [`sqli::detect`] tokenizes the value as SQL three times: as if it were pasted outside any
//!   quote, inside a single-quoted string and inside a double-quoted string (an injection usually
//!   starts by closing the quote the application opened). Each token stream is matched against
//!   rules that describe what an injection needs: a break-out followed by a tautology, a
//!   `UNION SELECT`, a stacked statement, a truncating comment, time or error based functions...
//! * [`xss::detect`] scans the value as HTML (tags and their attributes), as the inside of an
//!   attribute value (`" onmouseover=...` break-outs) and as the inside of a JavaScript string
//!   (`';alert(1)//`).
//!
//! The [`Detection`] carries a short fingerprint (the token types of the SQL stream, or the name
//! of the XSS rule that fired) for logs and `rules explain`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod redirect;
pub mod sqli;
pub mod xss;

/// Where in the application's output the detector found the value to be dangerous.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Context {
    /// SQL: the value is dangerous pasted outside any quote (`id=1 or 1=1`).
    NoQuote,
    /// SQL: the value closes a single-quoted string (`name=x' or 'a'='a`).
    SingleQuote,
    /// SQL: the value closes a double-quoted string (`name=x" or "a"="a`).
    DoubleQuote,
    /// XSS: the value injects markup (`<script>`, `<img onerror=...>`).
    Html,
    /// XSS: the value breaks out of an attribute value (`" onmouseover=alert(1) x="`).
    Attribute,
    /// XSS: the value breaks out of a JavaScript string or is a `javascript:` URL.
    Script,
    /// Redirect: the value sends the browser to another site or to a script scheme.
    Redirect,
}

impl Context {
    /// A short lowercase name for logs and analytics (`"no-quote"`, `"html"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Context::NoQuote => "no-quote",
            Context::SingleQuote => "single-quote",
            Context::DoubleQuote => "double-quote",
            Context::Html => "html",
            Context::Attribute => "attribute",
            Context::Script => "script",
            Context::Redirect => "redirect",
        }
    }
}

/// What a detector found: a fingerprint and the context it was found in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Detection {
    /// ASCII fingerprint, `len` bytes used. For SQL, one character per token type (see
    /// [`sqli`] for the alphabet); for XSS, the name of the rule that fired (e.g. `evt`, `script`).
    pub fingerprint: [u8; 8],
    /// Number of bytes of `fingerprint` in use.
    pub len: u8,
    /// The context in which the value is an injection.
    pub context: Context,
}

impl Detection {
    /// Builds a detection from an ASCII fingerprint (truncated to 8 bytes).
    pub(crate) fn new(fp: &[u8], context: Context) -> Detection {
        let mut fingerprint = [0u8; 8];
        let mut len = 0usize;
        for (slot, &b) in fingerprint.iter_mut().zip(fp.iter()) {
            // Only printable ASCII goes into a fingerprint, so `fingerprint_str` always succeeds.
            *slot = if b.is_ascii_graphic() { b } else { b'?' };
            len += 1;
        }
        Detection {
            fingerprint,
            len: len as u8,
            context,
        }
    }

    /// The fingerprint as a string slice (`"s&1o1c"`, `"evt"`, ...).
    pub fn fingerprint_str(&self) -> &str {
        let len = usize::from(self.len).min(self.fingerprint.len());
        let bytes = self.fingerprint.get(..len).unwrap_or(&[]);
        std::str::from_utf8(bytes).unwrap_or("")
    }
}

/// The value of an ASCII hexadecimal digit (`None` for any other byte). Shared with
/// `palisade-waf`'s decoding transforms.
#[inline]
pub fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Every line of the repository's `attack-corpus/` (attacks and benign traffic), for the
/// detectors' gate tests.
#[cfg(test)]
pub(crate) fn corpus_lines() -> Vec<Vec<u8>> {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../attack-corpus");
    let mut out = Vec::new();
    for sub in ["attacks", "benign"] {
        let Ok(rd) = std::fs::read_dir(dir.join(sub)) else {
            panic!("{}/{sub} is missing", dir.display());
        };
        for entry in rd.flatten() {
            if let Ok(text) = std::fs::read(entry.path()) {
                out.extend(text.split(|&b| b == b'\n').map(<[u8]>::to_vec));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_str_round_trips_and_truncates() {
        let d = Detection::new(b"s&1o1c", Context::SingleQuote);
        assert_eq!(d.fingerprint_str(), "s&1o1c");
        let d = Detection::new(b"0123456789", Context::NoQuote);
        assert_eq!(d.fingerprint_str(), "01234567");
        assert_eq!(d.len, 8);
    }

    #[test]
    fn fingerprint_str_survives_a_hand_built_detection() {
        let d = Detection {
            fingerprint: [0xff; 8],
            len: 200,
            context: Context::Html,
        };
        assert_eq!(d.fingerprint_str(), "");
    }
}
