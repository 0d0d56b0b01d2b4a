//! Protocol enforcement on the request head: the shapes used for request smuggling, invalid
//! header bytes and disallowed methods. Each violation is answered 400 by the gateway.

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::HeaderMap;

/// Methods allowed through (`CONNECT`, `TRACE`, `TRACK` and unknown methods are not).
pub const ALLOWED_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

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
        }
    }
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
        if value
            .as_bytes()
            .iter()
            .any(|&b| (b < 0x20 && b != b'\t') || b == 0x7F)
        {
            return Err(Violation::InvalidHeaderValue(name.as_str().into()));
        }
    }
    let cls: Vec<_> = headers.get_all(CONTENT_LENGTH).iter().collect();
    let tes: Vec<_> = headers.get_all(TRANSFER_ENCODING).iter().collect();
    if !cls.is_empty() && !tes.is_empty() {
        return Err(Violation::ContentLengthAndTransferEncoding);
    }
    if cls.len() > 1 {
        return Err(Violation::DuplicateContentLength);
    }
    if let Some(cl) = cls.first() {
        let v = cl.as_bytes();
        if v.contains(&b',') {
            return Err(Violation::DuplicateContentLength);
        }
        if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
            return Err(Violation::InvalidContentLength);
        }
    }
    if tes.len() > 1 {
        return Err(Violation::UnsupportedTransferEncoding(
            "several headers".into(),
        ));
    }
    if let Some(te) = tes.first() {
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
