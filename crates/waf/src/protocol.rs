//! Protocol enforcement on the request head: the shapes used for request smuggling, invalid
//! header bytes, disallowed methods, oversized targets and headers, and a missing `Host`. Each
//! violation is answered with [`Violation::status`] (400, or 414 / 431 for the size caps).

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue};

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

/// One pass over a request's header section, gathering what [`check_shape`], [`check`] and the
/// gateway need (sizes, the first offending field of each kind, the framing headers, `Host`
/// and `Content-Type`), so that a request's head is walked once, not once per check.
#[derive(Debug, Clone, Copy)]
pub struct HeadScan<'a> {
    /// Header fields.
    pub count: usize,
    /// The header section's size: every name and value, plus 4 bytes per field.
    pub section_bytes: usize,
    /// The first `Host` value.
    pub host: Option<&'a HeaderValue>,
    /// The first `Content-Type` value.
    pub content_type: Option<&'a HeaderValue>,
    /// The first `Content-Length` value.
    pub content_length: Option<&'a HeaderValue>,
    /// A `Transfer-Encoding` header is present.
    pub has_transfer_encoding: bool,
    te_first: Option<&'a HeaderValue>,
    cl_more: bool,
    te_more: bool,
    big_field: Option<&'a HeaderName>,
    /// The first field with a bad name, a framing lookalike name or a bad value, and which.
    bad_field: Option<(&'a HeaderName, BadField)>,
}

/// What is wrong with a header field (checked in this order).
#[derive(Debug, Clone, Copy)]
enum BadField {
    Name,
    Lookalike,
    Value,
}

impl<'a> HeadScan<'a> {
    /// Walks `headers` once.
    pub fn new(headers: &'a HeaderMap) -> Self {
        let mut s = HeadScan {
            count: 0,
            section_bytes: 0,
            host: None,
            content_type: None,
            content_length: None,
            has_transfer_encoding: false,
            te_first: None,
            cl_more: false,
            te_more: false,
            big_field: None,
            bad_field: None,
        };
        for (name, value) in headers {
            let n = name.as_str().as_bytes();
            let field = n.len() + value.len();
            s.count += 1;
            s.section_bytes += field + 4;
            if field > MAX_HEADER_FIELD_BYTES && s.big_field.is_none() {
                s.big_field = Some(name);
            }
            if s.bad_field.is_none() {
                s.bad_field = if !n.iter().all(|&b| crate::target::is_token_byte(b)) {
                    Some((name, BadField::Name))
                } else if framing_lookalike(n) {
                    Some((name, BadField::Lookalike))
                } else if has_control_byte(value.as_bytes()) {
                    Some((name, BadField::Value))
                } else {
                    None
                };
            }
            if name == HOST {
                s.host = s.host.or(Some(value));
            } else if name == CONTENT_TYPE {
                s.content_type = s.content_type.or(Some(value));
            } else if name == CONTENT_LENGTH {
                s.cl_more |= s.content_length.is_some();
                s.content_length = s.content_length.or(Some(value));
            } else if name == TRANSFER_ENCODING {
                s.te_more |= s.te_first.is_some();
                s.te_first = s.te_first.or(Some(value));
                s.has_transfer_encoding = true;
            }
        }
        s
    }

    /// What [`check_shape`] checks, on the scanned section.
    pub fn shape(&self, method: &str, target: &[u8], needs_host: bool) -> Result<(), Violation> {
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
        if let Some(name) = self.big_field {
            return Err(Violation::HeaderFieldTooLarge(
                name.as_str().chars().take(64).collect(),
            ));
        }
        if self.section_bytes > MAX_HEADER_SECTION_BYTES {
            return Err(Violation::HeadersTooLarge(self.section_bytes));
        }
        match self.host {
            None if needs_host => return Err(Violation::MissingHost),
            Some(h) if !h.as_bytes().iter().all(|&b| is_authority_byte(b)) => {
                return Err(Violation::InvalidHost)
            }
            _ => {}
        }
        Ok(())
    }

    /// What [`check`] checks, on the scanned section.
    pub fn protocol(&self, method: &str) -> Result<(), Violation> {
        if !ALLOWED_METHODS.contains(&method) {
            return Err(Violation::DisallowedMethod(
                method.chars().take(32).collect(),
            ));
        }
        if let Some((name, bad)) = self.bad_field {
            let name = name.as_str().into();
            return Err(match bad {
                BadField::Name => Violation::InvalidHeaderName(name),
                BadField::Lookalike => Violation::FramingHeaderLookalike(name),
                BadField::Value => Violation::InvalidHeaderValue(name),
            });
        }
        if self.content_length.is_some() && self.te_first.is_some() {
            return Err(Violation::ContentLengthAndTransferEncoding);
        }
        if self.cl_more {
            return Err(Violation::DuplicateContentLength);
        }
        if let Some(cl) = self.content_length {
            let v = cl.as_bytes();
            if v.contains(&b',') {
                return Err(Violation::DuplicateContentLength);
            }
            if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
                return Err(Violation::InvalidContentLength);
            }
        }
        if self.te_more {
            return Err(Violation::UnsupportedTransferEncoding(
                "several headers".into(),
            ));
        }
        if let Some(te) = self.te_first {
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
}

/// Checks what [`check`] cannot see from the method and headers alone: the request target's
/// form and length, the size of each header field and of the whole section, and that an
/// HTTP/1.1 request carries `Host` (HTTP/2 carries `:authority` instead; pass
/// `needs_host: false`). The gateway scans once with [`HeadScan`] and asks it both questions.
pub fn check_shape(
    method: &str,
    target: &[u8],
    headers: &HeaderMap,
    needs_host: bool,
) -> Result<(), Violation> {
    HeadScan::new(headers).shape(method, target, needs_host)
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
    // Only names as long as `content-length` or `transfer-encoding` can read as one.
    if !matches!(name.len(), 14 | 17) || !name.contains(&b'_') {
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
    HeadScan::new(headers).protocol(method)
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
    fn one_scan_gives_the_facts_every_check_reads() {
        let h = headers(&[
            ("host", "a.example"),
            ("content-type", "application/grpc"),
            ("content-length", "12"),
            ("x-a", "1"),
            ("host", "b.example"),
        ]);
        let s = HeadScan::new(&h);
        assert_eq!(s.count, 5);
        // name + value + 4 per field, as the guard's header-size cap counts it
        assert_eq!(s.section_bytes, 13 + 28 + 16 + 4 + 13 + 5 * 4);
        assert_eq!(s.host.map(HeaderValue::as_bytes), Some(&b"a.example"[..]));
        assert_eq!(
            s.content_type.map(HeaderValue::as_bytes),
            Some(&b"application/grpc"[..])
        );
        assert_eq!(
            s.content_length.map(HeaderValue::as_bytes),
            Some(&b"12"[..])
        );
        assert!(!s.has_transfer_encoding);
        assert_eq!(s.protocol("POST"), Ok(()));
        assert_eq!(
            s.protocol("TRACE"),
            Err(Violation::DisallowedMethod("TRACE".into()))
        );

        let h = headers(&[("content-length", "1"), ("content-length", "1")]);
        assert_eq!(
            HeadScan::new(&h).protocol("POST"),
            Err(Violation::DuplicateContentLength)
        );
        let h = headers(&[
            ("transfer-encoding", "chunked"),
            ("transfer-encoding", "chunked"),
        ]);
        let s = HeadScan::new(&h);
        assert!(s.has_transfer_encoding);
        assert_eq!(
            s.protocol("POST"),
            Err(Violation::UnsupportedTransferEncoding(
                "several headers".into()
            ))
        );
        let h = headers(&[("transfer-encoding", "chunked"), ("content-length", "3")]);
        assert_eq!(
            HeadScan::new(&h).protocol("POST"),
            Err(Violation::ContentLengthAndTransferEncoding)
        );
        let h = headers(&[("content-length", "1e3")]);
        assert_eq!(
            HeadScan::new(&h).protocol("POST"),
            Err(Violation::InvalidContentLength)
        );
        let h = headers(&[("transfer-encoding", "gzip, chunked")]);
        assert_eq!(
            HeadScan::new(&h).protocol("POST"),
            Err(Violation::UnsupportedTransferEncoding(
                "gzip, chunked".into()
            ))
        );
        // The first offending field is the one reported.
        let h = headers(&[
            ("x-ok", "1"),
            ("content_length", "2"),
            ("transfer_encoding", "x"),
        ]);
        assert_eq!(
            HeadScan::new(&h).protocol("GET"),
            Err(Violation::FramingHeaderLookalike("content_length".into()))
        );
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
