//! Protocol enforcement on the request head: the shapes used for request smuggling, invalid
//! header bytes, disallowed methods, oversized targets and headers, and a missing `Host`. Each
//! violation is answered with [`Violation::status`] (400, or 414 / 431 for the size caps).

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::HeaderMap;

/// Methods allowed through (`CONNECT`, `TRACE`, `TRACK` and unknown methods are not).
pub const ALLOWED_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

/// The longest request target (path and query) accepted; longer ones get 414.
pub const MAX_TARGET_BYTES: usize = 8 * 1024;
/// The largest single header field (name and value) accepted; larger ones get 431.
pub const MAX_HEADER_FIELD_BYTES: usize = 16 * 1024;
/// The largest header section (every name and value, plus 4 bytes per field) accepted; 431.
pub const MAX_HEADER_SECTION_BYTES: usize = 64 * 1024;

/// Why a request head is rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// Both `Content-Length` and `Transfer-Encoding` (CL.TE / TE.CL smuggling).
    #[error("both content-length and transfer-encoding")]
    ContentLengthAndTransferEncoding,
    /// More than one `Content-Length` header (or a comma list).
    #[error("duplicate content-length")]
    DuplicateContentLength,
    /// `Content-Length` that is not a plain decimal number.
    #[error("invalid content-length")]
    InvalidContentLength,
    /// `Transfer-Encoding` other than exactly `chunked` (obfuscated or stacked codings).
    #[error("unsupported transfer-encoding {0:?}")]
    UnsupportedTransferEncoding(String),
    /// A header name with bytes outside the token set.
    #[error("invalid byte in header name {0:?}")]
    InvalidHeaderName(String),
    /// A header value with a control byte (other than tab) or DEL.
    #[error("invalid byte in value of header {0:?}")]
    InvalidHeaderValue(String),
    /// CONNECT, TRACE, TRACK or a method this gateway does not know.
    #[error("method {0:?} not allowed")]
    DisallowedMethod(String),
    /// A request target longer than [`MAX_TARGET_BYTES`].
    #[error("request target of {0} bytes is longer than {MAX_TARGET_BYTES}")]
    TargetTooLong(usize),
    /// A header field larger than [`MAX_HEADER_FIELD_BYTES`].
    #[error("header {0:?} is larger than {MAX_HEADER_FIELD_BYTES} bytes")]
    HeaderFieldTooLarge(String),
    /// A header section larger than [`MAX_HEADER_SECTION_BYTES`].
    #[error("header section of {0} bytes is larger than {MAX_HEADER_SECTION_BYTES}")]
    HeadersTooLarge(usize),
    /// `Content_Length` or `Transfer_Encoding`: a framing header in disguise for an upstream
    /// that reads `_` as `-` (it would frame the body differently from the gateway).
    #[error("header {0:?} looks like a framing header")]
    FramingHeaderLookalike(String),
    /// A request target that is neither origin-form (`/...`), nor absolute-form, nor `*` for
    /// `OPTIONS`.
    #[error("request target is not origin-form")]
    InvalidTarget,
    /// A `Host` value with a byte an authority cannot hold (space, `/`, `@`, ...).
    #[error("invalid host")]
    InvalidHost,
    /// An HTTP/1.1 request without a `Host` header (RFC 9112 section 3.2).
    #[error("http/1.1 request without host")]
    MissingHost,
}

impl Violation {
    /// A stable reason code for analytics and the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            Violation::ContentLengthAndTransferEncoding => "smuggling_cl_te",
            Violation::DuplicateContentLength => "duplicate_content_length",
            Violation::InvalidContentLength => "invalid_content_length",
            Violation::UnsupportedTransferEncoding(_) => "bad_transfer_encoding",
            Violation::InvalidHeaderName(_) => "invalid_header_name",
            Violation::InvalidHeaderValue(_) => "invalid_header_value",
            Violation::DisallowedMethod(_) => "method_not_allowed",
            Violation::TargetTooLong(_) => "target_too_long",
            Violation::HeaderFieldTooLarge(_) => "header_too_large",
            Violation::HeadersTooLarge(_) => "headers_too_large",
            Violation::MissingHost => "missing_host",
            Violation::FramingHeaderLookalike(_) => "framing_header_lookalike",
            Violation::InvalidTarget => "invalid_target",
            Violation::InvalidHost => "invalid_host",
        }
    }

    /// The status the gateway answers with: 414 for a long target, 431 for large headers,
    /// 400 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            Violation::TargetTooLong(_) => 414,
            Violation::HeaderFieldTooLarge(_) | Violation::HeadersTooLarge(_) => 431,
            _ => 400,
        }
    }
}

/// Checks what [`check`] cannot see from the method and headers alone: the request target's
/// form and length, the size of each header field and of the whole section, and that an
/// HTTP/1.1 request carries `Host` (HTTP/2 carries `:authority` instead; pass
/// `needs_host: false`). Costs one pass over the header names and value lengths.
pub fn check_shape(
    method: &str,
    target: &[u8],
    headers: &HeaderMap,
    needs_host: bool,
) -> Result<(), Violation> {
    let target_len = target.len();
    let form_ok = match target.first() {
        Some(b'/') => true,
        Some(b'*') => target_len == 1 && method == "OPTIONS",
        // absolute-form: Pingora has already checked its authority against `Host`
        _ => target.starts_with(b"http://") || target.starts_with(b"https://"),
    };
    if !form_ok {
        return Err(Violation::InvalidTarget);
    }
    if target_len > MAX_TARGET_BYTES {
        return Err(Violation::TargetTooLong(target_len));
    }
    let mut total = 0usize;
    for (name, value) in headers {
        let field = name.as_str().len() + value.len();
        if field > MAX_HEADER_FIELD_BYTES {
            return Err(Violation::HeaderFieldTooLarge(
                name.as_str().chars().take(64).collect(),
            ));
        }
        total += field + 4;
    }
    if total > MAX_HEADER_SECTION_BYTES {
        return Err(Violation::HeadersTooLarge(total));
    }
    match headers.get(http::header::HOST) {
        None if needs_host => return Err(Violation::MissingHost),
        Some(h) if !h.as_bytes().iter().all(|&b| is_authority_byte(b)) => {
            return Err(Violation::InvalidHost)
        }
        _ => {}
    }
    Ok(())
}

/// Checks a raw HTTP/1 request head (request line and header lines, as read from the wire)
/// of a request with `Transfer-Encoding` for a `Content-Length` line. Pingora drops
/// `Content-Length` when `Transfer-Encoding` is present (RFC 9112 section 6.3) before the
/// gateway sees the parsed head, so the CL.TE / TE.CL pair is found here.
pub fn check_raw_head(raw: &[u8]) -> Result<(), Violation> {
    const NAME: &[u8] = b"content-length:";
    let cl = raw.split(|&b| b == b'\n').skip(1).any(|line| {
        line.get(..NAME.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(NAME))
    });
    if cl {
        return Err(Violation::ContentLengthAndTransferEncoding);
    }
    Ok(())
}

/// A byte allowed in `Host` (RFC 3986 authority: unreserved, sub-delims, `%`, `:`, `[`, `]`;
/// no `@`, `/`, space or control byte).
fn is_authority_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%:[]".contains(&b)
}

/// Whether `name` reads as `Content-Length` or `Transfer-Encoding` once `_` is taken for `-`
/// (some servers and frameworks do; the gateway frames by the real header only).
fn framing_lookalike(name: &[u8]) -> bool {
    if !name.contains(&b'_') {
        return false;
    }
    [&b"content-length"[..], &b"transfer-encoding"[..]]
        .iter()
        .any(|f| {
            f.len() == name.len()
                && f.iter()
                    .zip(name)
                    .all(|(&a, &b)| a == b.to_ascii_lowercase() || (a == b'-' && b == b'_'))
        })
}

/// A control byte other than tab (or DEL) in a header value. No early exit, so that the loop
/// compiles to vector instructions: values are short and almost never hold one.
fn has_control_byte(v: &[u8]) -> bool {
    v.iter().fold(false, |bad, &b| {
        bad | ((b < 0x20) & (b != b'\t')) | (b == 0x7F)
    })
}

/// Checks the method and headers; the first violation found is returned.
pub fn check(method: &str, headers: &HeaderMap) -> Result<(), Violation> {
    if !ALLOWED_METHODS.contains(&method) {
        return Err(Violation::DisallowedMethod(
            method.chars().take(32).collect(),
        ));
    }
    for (name, value) in headers {
        if !name.as_str().bytes().all(crate::target::is_token_byte) {
            return Err(Violation::InvalidHeaderName(name.as_str().into()));
        }
        if framing_lookalike(name.as_str().as_bytes()) {
            return Err(Violation::FramingHeaderLookalike(name.as_str().into()));
        }
        if has_control_byte(value.as_bytes()) {
            return Err(Violation::InvalidHeaderValue(name.as_str().into()));
        }
    }
    // First value and count of each framing header, without collecting (this runs on every
    // request).
    let (mut cls, mut tes) = (
        headers.get_all(CONTENT_LENGTH).iter(),
        headers.get_all(TRANSFER_ENCODING).iter(),
    );
    let (cl_first, te_first) = (cls.next(), tes.next());
    let (cl_more, te_more) = (cls.next().is_some(), tes.next().is_some());
    if cl_first.is_some() && te_first.is_some() {
        return Err(Violation::ContentLengthAndTransferEncoding);
    }
    if cl_more {
        return Err(Violation::DuplicateContentLength);
    }
    if let Some(cl) = cl_first {
        let v = cl.as_bytes();
        if v.contains(&b',') {
            return Err(Violation::DuplicateContentLength);
        }
        if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
            return Err(Violation::InvalidContentLength);
        }
    }
    if te_more {
        return Err(Violation::UnsupportedTransferEncoding(
            "several headers".into(),
        ));
    }
    if let Some(te) = te_first {
        if te.as_bytes() != b"chunked" {
            return Err(Violation::UnsupportedTransferEncoding(
                String::from_utf8_lossy(te.as_bytes())
                    .chars()
                    .take(64)
                    .collect(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn token_bytes_and_control_bytes_match_their_definitions() {
        for b in 0..=255u8 {
            let tchar = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            assert_eq!(crate::target::is_token_byte(b), tchar, "byte {b:#04x}");
            let ctl = (b < 0x20 && b != b'\t') || b == 0x7F;
            assert_eq!(has_control_byte(&[b]), ctl, "byte {b:#04x}");
            assert_eq!(
                has_control_byte(&[b'a', b, b'z']),
                ctl,
                "byte {b:#04x} inside"
            );
        }
        assert!(!has_control_byte(b""));
    }

    #[test]
    fn shape_caps_target_and_headers_and_wants_a_host() {
        let ok = headers(&[("host", "example.com:8080")]);
        assert_eq!(check_shape("GET", b"/a?b=c", &ok, true), Ok(()));
        assert_eq!(check_shape("OPTIONS", b"*", &ok, true), Ok(()));
        assert_eq!(
            check_shape("GET", b"http://example.com:8080/", &ok, true),
            Ok(())
        );
        assert_eq!(
            check_shape("GET", b"*", &ok, true),
            Err(Violation::InvalidTarget)
        );
        assert_eq!(
            check_shape("GET", b"a/b", &ok, true),
            Err(Violation::InvalidTarget)
        );
        assert_eq!(
            check_shape("GET", b"", &ok, true),
            Err(Violation::InvalidTarget)
        );
        let long = [b'/'; MAX_TARGET_BYTES + 1];
        assert_eq!(
            check_shape("GET", &long, &ok, true).map_err(|v| v.status()),
            Err(414)
        );
        assert_eq!(check_shape("GET", &long[1..], &ok, true), Ok(()));
        let big = "a".repeat(MAX_HEADER_FIELD_BYTES);
        let h = headers(&[("host", "x"), ("x-big", &big)]);
        assert_eq!(
            check_shape("GET", b"/", &h, true),
            Err(Violation::HeaderFieldTooLarge("x-big".into()))
        );
        let part = "a".repeat(MAX_HEADER_FIELD_BYTES / 2);
        let mut h = headers(&[("host", "x")]);
        for _ in 0..9 {
            h.append("x-part", HeaderValue::from_str(&part).expect("value"));
        }
        assert_eq!(
            check_shape("GET", b"/", &h, true).map_err(|v| v.status()),
            Err(431)
        );
        assert_eq!(
            check_shape("GET", b"/", &HeaderMap::new(), true),
            Err(Violation::MissingHost)
        );
        assert_eq!(check_shape("GET", b"/", &HeaderMap::new(), false), Ok(()));
        for bad in ["x y", "x/y", "u@x", "x, y"] {
            let h = headers(&[("host", bad)]);
            assert_eq!(
                check_shape("GET", b"/", &h, true),
                Err(Violation::InvalidHost),
                "{bad}"
            );
        }
        let h = headers(&[("host", "[::1]:80")]);
        assert_eq!(check_shape("GET", b"/", &h, true), Ok(()));
    }

    #[test]
    fn raw_head_shows_the_content_length_pingora_dropped() {
        let raw = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\ncOnTeNt-LeNgTh: 4\r\n\r\n";
        assert_eq!(
            check_raw_head(raw),
            Err(Violation::ContentLengthAndTransferEncoding)
        );
        let raw = b"POST /content-length: HTTP/1.1\r\nHost: x\r\nX-Content-Length: 4\r\n\r\n";
        assert_eq!(check_raw_head(raw), Ok(()));
        assert_eq!(check_raw_head(b""), Ok(()));
    }

    #[test]
    fn framing_header_lookalikes_are_refused() {
        for (name, refused) in [
            ("transfer_encoding", true),
            ("content_length", true),
            ("Content_Length", true),
            ("transfer-encoding_", false),
            ("x_api_key", false),
        ] {
            let mut h = HeaderMap::new();
            h.append(
                http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_static("chunked"),
            );
            let got = check("GET", &h);
            assert_eq!(got.is_err(), refused, "{name}: {got:?}");
        }
    }
}
