//! The target vocabulary: which parts of a request a rule looks at.

/// The kind of one inspected value. Each kind is one bit in a rule's target mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// The request method.
    Method = 0,
    /// The percent-decoded path.
    Path = 1,
    /// The raw path and query.
    Uri = 2,
    /// The raw query string.
    Query = 3,
    /// A query-string argument value.
    QueryArg = 4,
    /// A body argument value (form field, JSON value, multipart field, XML text/attribute).
    BodyArg = 5,
    /// An argument name (query, form, JSON key, multipart field, XML attribute).
    ArgName = 6,
    /// A header value.
    Header = 7,
    /// A header name.
    HeaderName = 8,
    /// A cookie value.
    Cookie = 9,
    /// A cookie name.
    CookieName = 10,
    /// A multipart file name.
    Filename = 11,
    /// The raw body.
    Body = 12,
    /// A header of a multipart part (checked by rules that target `headers`).
    PartHeader = 13,
}

/// Number of kinds.
pub const KINDS: usize = 14;

impl Kind {
    /// The bit of this kind in a target mask.
    #[inline]
    pub fn bit(self) -> u32 {
        1 << (self as u32)
    }
    /// All kinds, by index.
    pub const ALL: [Kind; KINDS] = [
        Kind::Method,
        Kind::Path,
        Kind::Uri,
        Kind::Query,
        Kind::QueryArg,
        Kind::BodyArg,
        Kind::ArgName,
        Kind::Header,
        Kind::HeaderName,
        Kind::Cookie,
        Kind::CookieName,
        Kind::Filename,
        Kind::Body,
        Kind::PartHeader,
    ];
}

/// A parsed `targets:` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TargetSpec {
    /// A set of kinds.
    Kinds(u32),
    /// `headers:<name>` (lowercase).
    Header(String),
    /// `args:<name>` (lowercase): the query, form and multipart arguments of that name.
    Arg(String),
    /// `json:<key>` (lowercase): the JSON body values under that key, at any depth.
    JsonKey(String),
}

/// Every plain target name and the kinds it covers.
pub(crate) const TARGET_NAMES: &[(&str, u32)] = &[
    ("path", 1 << 1),
    ("uri", 1 << 2),
    ("query", 1 << 3),
    ("args", (1 << 4) | (1 << 5)),
    ("args_names", 1 << 6),
    ("query_args", 1 << 4),
    ("body_args", 1 << 5),
    ("headers", (1 << 7) | (1 << 13)),
    ("header_names", 1 << 8),
    ("cookies", 1 << 9),
    ("cookie_names", 1 << 10),
    ("filenames", 1 << 11),
    ("body", 1 << 12),
    ("method", 1 << 0),
];

/// Longest name a `headers:`, `args:` or `json:` target takes (names are looked up by length
/// first, [`crate::ruleset::NamedRules`]).
pub(crate) const MAX_NAMED_TARGET: usize = 63;

/// Parses one rule target; `Err` carries a hint.
pub(crate) fn parse_target(s: &str) -> Result<TargetSpec, String> {
    if let Some(name) = s.strip_prefix("headers:") {
        if name.is_empty() || name.len() > MAX_NAMED_TARGET || !name.bytes().all(is_token_byte) {
            return Err(format!(
                "{s:?} needs a header name after `headers:` (at most {MAX_NAMED_TARGET} bytes)"
            ));
        }
        return Ok(TargetSpec::Header(name.to_ascii_lowercase()));
    }
    for (prefix, json) in [("args:", false), ("json:", true)] {
        let Some(name) = s.strip_prefix(prefix) else {
            continue;
        };
        if name.is_empty()
            || name.len() > MAX_NAMED_TARGET
            || !name.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(format!(
                "{s:?} needs a name after `{prefix}` (printable ASCII, at most {MAX_NAMED_TARGET} bytes)"
            ));
        }
        let name = name.to_ascii_lowercase();
        return Ok(if json {
            TargetSpec::JsonKey(name)
        } else {
            TargetSpec::Arg(name)
        });
    }
    TARGET_NAMES
        .iter()
        .find(|(n, _)| *n == s)
        .map(|(_, m)| TargetSpec::Kinds(*m))
        .ok_or_else(|| {
            let names: Vec<&str> = TARGET_NAMES.iter().map(|(n, _)| *n).collect();
            format!(
                "known targets: {}, headers:<name>, args:<name>, json:<key>",
                names.join(", ")
            )
        })
}

/// RFC 9110 token byte (header names).
pub(crate) fn is_token_byte(b: u8) -> bool {
    TOKEN_BYTES[usize::from(b)]
}

/// RFC 9110 `tchar`: letters, digits and ``!#$%&'*+-.^_`|~`` (a table: this runs on every byte
/// of every header name of every request).
const TOKEN_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        i += 1;
    }
    t
};

/// An exclusion target, compiled: which kinds, and optionally which name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ExclTarget {
    pub kinds: u32,
    pub name: Option<Vec<u8>>,
}

/// Parses an exclusion target like `args:q`, `json:user.bio`, `headers:referer`,
/// `cookies:sid`, or a bare target name (`path`, `headers`, ...).
pub(crate) fn parse_excl_target(s: &str) -> Option<ExclTarget> {
    let (head, name) = match s.split_once(':') {
        Some((h, n)) => (h, Some(n)),
        None => (s, None),
    };
    let kinds = match head {
        "json" => Kind::BodyArg.bit(),
        "args" | "args_names" | "query_args" | "body_args" | "headers" | "cookies"
        | "cookie_names" | "header_names" | "filenames" => TARGET_NAMES
            .iter()
            .find(|(n, _)| *n == head)
            .map(|(_, m)| *m)?,
        _ if name.is_none() => TARGET_NAMES
            .iter()
            .find(|(n, _)| *n == head)
            .map(|(_, m)| *m)?,
        _ => return None,
    };
    let name = match name {
        Some("") => return None,
        Some(n) if head == "headers" => Some(n.to_ascii_lowercase().into_bytes()),
        Some(n) => Some(n.as_bytes().to_vec()),
        None => None,
    };
    if head == "json" && name.is_none() {
        return None;
    }
    Some(ExclTarget { kinds, name })
}
