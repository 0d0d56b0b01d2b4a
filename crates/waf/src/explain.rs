//! `palisade rules explain`: run one raw HTTP request through the engine and say why.

use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::inspect::{BodyError, Inspection, RuleMatch, Verdict};
use crate::policy::Policy;
use crate::protocol::Violation;
use crate::request::RequestHead;
use crate::ruleset::RuleSet;

/// A raw request that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    /// No `METHOD target HTTP/x` line.
    #[error("line 1: bad request line {0:?} (expected e.g. `GET /path?q=1 HTTP/1.1`)")]
    RequestLine(String),
    /// A header line without a colon or with invalid bytes.
    #[error("line {line}: bad header line {text:?} (expected `Name: value`)")]
    Header {
        /// 1-based line.
        line: usize,
        /// The line.
        text: String,
    },
    /// A chunked body that does not de-chunk.
    #[error("bad chunked body (sizes must be hex, each chunk followed by CRLF)")]
    Chunked,
}

/// What the engine made of one request. `Display` is the report a rule author reads.
#[derive(Debug)]
pub struct Explanation {
    /// Method.
    pub method: String,
    /// Raw path and query.
    pub target: String,
    /// Number of headers.
    pub headers: usize,
    /// Body length after de-chunking.
    pub body_len: usize,
    /// Protocol check result.
    pub protocol: Result<(), Violation>,
    /// Every (rule, target) match.
    pub matches: Vec<RuleMatch>,
    /// Rule names by id, for display.
    names: Vec<(u32, String)>,
    /// Total score.
    pub score: u32,
    /// Threshold of the policy.
    pub threshold: u32,
    /// Paranoia of the policy.
    pub paranoia: u8,
    /// Verdict.
    pub verdict: Verdict,
    /// Body parse error.
    pub body_error: Option<BodyError>,
}

fn lines(raw: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let mut out = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let end = memchr::memchr(b'\n', &raw[i..]).map_or(raw.len(), |k| i + k);
        let line = &raw[i..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        i = (end + 1).min(raw.len());
        if line.is_empty() && !out.is_empty() {
            return (out, &raw[i..]);
        }
        if line.is_empty() {
            continue;
        }
        out.push(line);
    }
    (out, &[])
}

/// De-chunks a chunked body.
pub fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let nl = memchr::memchr(b'\n', b)?;
        let size_line = b[..nl].strip_suffix(b"\r").unwrap_or(&b[..nl]);
        let size_hex = size_line.split(|&c| c == b';').next()?;
        let size = usize::from_str_radix(std::str::from_utf8(size_hex).ok()?.trim(), 16).ok()?;
        b = &b[nl + 1..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size..)?;
        b = b.strip_prefix(b"\r\n").or_else(|| b.strip_prefix(b"\n"))?;
    }
}

/// Parses `raw_http_request` and inspects it under `p`, recording every matching rule and
/// target.
pub fn explain(
    rules: &RuleSet,
    p: &Policy,
    raw_http_request: &[u8],
) -> Result<Explanation, ExplainError> {
    let (head, rest) = lines(raw_http_request);
    let first = head.first().copied().unwrap_or(b"");
    let parts: Vec<&[u8]> = first
        .split(|&c| c == b' ')
        .filter(|s| !s.is_empty())
        .collect();
    let bad_line = || ExplainError::RequestLine(String::from_utf8_lossy(first).into_owned());
    if parts.len() < 2 || parts.len() > 3 {
        return Err(bad_line());
    }
    let method = std::str::from_utf8(parts[0])
        .map_err(|_| bad_line())?
        .to_string();
    let mut target = parts[1];
    // absolute-form: http://host/path (origin-form starts with `/`, and may hold a URL in
    // its query: `/?next=http://x/y` is not the host `x`)
    let absolute = target.first() != Some(&b'/');
    if let Some(pos) = target
        .windows(3)
        .position(|w| w == b"://")
        .filter(|_| absolute)
    {
        let after = &target[pos + 3..];
        target = after
            .iter()
            .position(|&c| c == b'/')
            .map_or(&b"/"[..], |k| &after[k..]);
    }
    let (path, query) = match memchr::memchr(b'?', target) {
        Some(q) => (&target[..q], Some(&target[q + 1..])),
        None => (target, None),
    };
    let mut headers = HeaderMap::new();
    for (n, line) in head.iter().enumerate().skip(1) {
        let err = || ExplainError::Header {
            line: n + 1,
            text: String::from_utf8_lossy(line).into_owned(),
        };
        let colon = memchr::memchr(b':', line).ok_or_else(err)?;
        let name =
            HeaderName::from_bytes(crate::request::trim(&line[..colon])).map_err(|_| err())?;
        let value =
            HeaderValue::from_bytes(crate::request::trim(&line[colon + 1..])).map_err(|_| err())?;
        headers.append(name, value);
    }
    let chunked = headers
        .get(http::header::TRANSFER_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"));
    let body: Vec<u8> = if chunked {
        dechunk(rest).ok_or(ExplainError::Chunked)?
    } else {
        let cl = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<usize>().ok());
        match cl {
            Some(n) if n < rest.len() => rest[..n].to_vec(),
            _ => rest.to_vec(),
        }
    };
    let protocol = crate::protocol::check(&method, &headers);
    let mut ins = Inspection::new();
    ins.set_record_all(true);
    let req = RequestHead {
        method: &method,
        path,
        query,
        headers: &headers,
        authority: None,
    };
    rules.inspect_head(p, &req, &mut ins);
    let ct = headers
        .get(http::header::CONTENT_TYPE)
        .map(HeaderValue::as_bytes);
    rules.inspect_body(p, ct, &body, &mut ins);
    let mut names: Vec<(u32, String)> = Vec::new();
    for m in ins.matches() {
        if !names.iter().any(|(id, _)| *id == m.rule_id) {
            let name = rules
                .rule(m.rule_id)
                .map(|r| r.name.clone())
                .unwrap_or_default();
            names.push((m.rule_id, name));
        }
    }
    Ok(Explanation {
        method,
        target: String::from_utf8_lossy(target).into_owned(),
        headers: headers.len(),
        body_len: body.len(),
        protocol,
        matches: ins.matches().to_vec(),
        names,
        score: ins.score(),
        threshold: p.threshold,
        paranoia: p.paranoia,
        verdict: ins.verdict(p),
        body_error: ins.body_error().cloned(),
    })
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "request: {} {} ({} headers, {} body bytes)",
            self.method, self.target, self.headers, self.body_len
        )?;
        match &self.protocol {
            Ok(()) => writeln!(f, "protocol: ok")?,
            Err(v) => writeln!(f, "protocol: {v} [{}] (the gateway answers 400)", v.code())?,
        }
        if let Some(e) = &self.body_error {
            writeln!(f, "body: {e} (the gateway answers 400)")?;
        }
        if self.matches.is_empty() {
            writeln!(f, "no rule matched")?;
        }
        for m in &self.matches {
            let name = self
                .names
                .iter()
                .find(|(id, _)| *id == m.rule_id)
                .map_or("", |(_, n)| n.as_str());
            writeln!(
                f,
                "rule {} [{}] {:?} {} +{}",
                m.rule_id,
                m.class,
                name,
                m.severity.name(),
                m.score
            )?;
            writeln!(f, "    target:     {}", m.target)?;
            let tr = if m.transforms.is_empty() {
                "(none)".to_string()
            } else {
                m.transforms.join(", ")
            };
            writeln!(f, "    transforms: {tr}")?;
            writeln!(f, "    value:      {:?}", m.value)?;
            match &m.fingerprint {
                Some(fp) => writeln!(f, "    matched:    {:?} (fingerprint {fp})", m.matched)?,
                None => writeln!(f, "    matched:    {:?}", m.matched)?,
            }
        }
        writeln!(
            f,
            "score: {} (threshold {}, paranoia {})",
            self.score, self.threshold, self.paranoia
        )?;
        write!(f, "verdict: {}", self.verdict.as_str())
    }
}
