//! Off-site redirect targets: the value of a redirect parameter (`next`, `returnUrl`, …) that
//! a browser sent to it would follow to another site.
//!
//! A value is a redirect target when, once percent-decoded until stable and with leading
//! spaces and control bytes dropped, it starts with a scheme (`https:`, `javascript:`), with two
//! of `/`, `\` or tab (`//evil`, `\\evil`, `/\evil`), with `/` and spaces before a slash, or
//! with slashes before a scheme (`/https://evil`): the shapes a browser resolves away from the
//! current site, where a relative path (`/dashboard`, `orders?id=1`) stays on it.
//!
//! One such target is not off-site: `http://`, `https://` or `//` followed by the request's own
//! host (or a subdomain of it), with an optional port, then `/`, `?`, `#` or the end, written
//! without any percent-encoding and with nothing in the authority that a browser could read
//! another way (`@` userinfo, `\`, spaces, control bytes, non-ASCII). Applications send users
//! back to an absolute URL of their own site (`?next=https://app.example.com/orders`); an open
//! redirect sends them elsewhere. With no host known every target counts.

use crate::{Context, Detection};

/// Raw bytes of a value decoded when it holds `%` (the shape needs only its first bytes).
const PREFIX: usize = 256;

/// Rounds of percent-decoding at most.
const ROUNDS: usize = 8;

/// A detection when `value` (ASCII-lowercased) is a redirect target off `host` (the request's
/// `Host` header as sent, any case, with or without a port; empty when unknown). See the module
/// doc.
pub fn offsite(value: &[u8], host: &[u8]) -> Option<Detection> {
    let hit = |fp: &[u8]| Some(Detection::new(fp, Context::Redirect));
    if value.contains(&b'%') {
        // Encoded: the shape of the decoding decides, and no target is exempt.
        let mut buf = [0u8; PREFIX];
        let n = decode_prefix(value, &mut buf);
        let decoded = buf.get(..n).unwrap_or(&[]);
        return shape(trim(decoded)).and(hit(b"encoded"));
    }
    let v = trim(value);
    match shape(v)? {
        Shape::Web(rest) if same_site(rest, host) => None,
        Shape::Web(_) => hit(b"offsite"),
        Shape::Other => hit(b"scheme"),
    }
}

enum Shape<'a> {
    /// `http://`, `https://` or `//`, then the rest (an authority that may be the site's).
    Web(&'a [u8]),
    /// Any other shape that leaves the site.
    Other,
}

fn trim(v: &[u8]) -> &[u8] {
    let k = v.iter().position(|&b| b > b' ').unwrap_or(v.len());
    v.get(k..).unwrap_or(&[])
}

fn is_slash(b: u8) -> bool {
    b == b'/' || b == b'\\' || b == b'\t'
}

fn is_scheme_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'+' | b'.' | b'-')
}

/// The length of a scheme (`[a-z][a-z0-9+.-]*`) followed by `:` at the start of `v`.
fn scheme_len(v: &[u8]) -> Option<usize> {
    if !v.first().is_some_and(u8::is_ascii_lowercase) {
        return None;
    }
    let n = v
        .iter()
        .position(|&b| !is_scheme_byte(b))
        .unwrap_or(v.len());
    (v.get(n) == Some(&b':')).then_some(n)
}

/// `rest` (after `//`) starts an authority: not a third slash.
fn web(rest: &[u8]) -> Shape<'_> {
    if rest.first().is_some_and(|&b| is_slash(b)) {
        Shape::Other
    } else {
        Shape::Web(rest)
    }
}

/// The redirect shape `v` starts with, if any (see the module doc).
fn shape(v: &[u8]) -> Option<Shape<'_>> {
    if let Some(n) = scheme_len(v) {
        let (scheme, rest) = (v.get(..n)?, v.get(n + 1..)?);
        return Some(match rest.strip_prefix(b"//") {
            Some(r) if scheme == b"http" || scheme == b"https" => web(r),
            _ => Shape::Other,
        });
    }
    match v {
        [b'/', b'/', rest @ ..] => Some(web(rest)),
        [a, b, ..] if is_slash(*a) && is_slash(*b) => Some(Shape::Other),
        [b'/', rest @ ..] => {
            let k = rest
                .iter()
                .position(|&b| b != b'\t' && !b.is_ascii_whitespace())
                .unwrap_or(rest.len());
            if rest.get(k).is_some_and(|&b| b == b'/' || b == b'\\') {
                return Some(Shape::Other);
            }
            let k = v
                .iter()
                .position(|&b| b != b'/' && b != b'\\')
                .unwrap_or(v.len());
            scheme_len(v.get(k..)?).map(|_| Shape::Other)
        }
        [b'\\', ..] => {
            let k = v
                .iter()
                .position(|&b| b != b'/' && b != b'\\')
                .unwrap_or(v.len());
            scheme_len(v.get(k..)?).map(|_| Shape::Other)
        }
        _ => None,
    }
}

/// The authority at the start of `rest` is `host` or a subdomain of it (see the module doc).
fn same_site(rest: &[u8], host: &[u8]) -> bool {
    if host.is_empty() || host.iter().any(|&b| b <= b' ' || b >= 0x7f || b == b'@') {
        return false;
    }
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let auth = rest.get(..end).unwrap_or(&[]);
    if auth
        .iter()
        .any(|&b| b <= b' ' || b >= 0x7f || matches!(b, b'@' | b'\\' | b'%'))
    {
        return false;
    }
    let (name, host) = (without_port(auth), without_port(host));
    name.eq_ignore_ascii_case(host)
        || (name.len() > host.len()
            && name
                .get(name.len() - host.len()..)
                .is_some_and(|tail| tail.eq_ignore_ascii_case(host))
            && name.get(name.len() - host.len() - 1) == Some(&b'.'))
}

/// `authority` without a trailing `:port` (`[v6]:port` keeps its brackets).
fn without_port(authority: &[u8]) -> &[u8] {
    match authority.iter().rposition(|&b| b == b':') {
        Some(i)
            if authority
                .get(i + 1..)
                .is_some_and(|p| p.iter().all(u8::is_ascii_digit)) =>
        {
            authority.get(..i).unwrap_or(&[])
        }
        _ => authority,
    }
}

/// Percent-decodes the first [`PREFIX`] bytes of `value` into `buf` until stable (at most
/// [`ROUNDS`] rounds; `%uXXXX` is left as it is); returns the length.
fn decode_prefix(value: &[u8], buf: &mut [u8; PREFIX]) -> usize {
    let mut n = value.len().min(PREFIX);
    buf[..n].copy_from_slice(&value[..n]);
    for _ in 0..ROUNDS {
        let (mut r, mut w) = (0, 0);
        while r < n {
            let b = buf[r];
            let esc = (b == b'%')
                .then(|| {
                    Some(crate::hex_val(*buf.get(r + 1)?)? << 4 | crate::hex_val(*buf.get(r + 2)?)?)
                })
                .flatten()
                .filter(|_| r + 2 < n);
            match esc {
                Some(x) => {
                    buf[w] = x.to_ascii_lowercase();
                    r += 3;
                }
                None => {
                    buf[w] = b;
                    r += 1;
                }
            }
            w += 1;
        }
        let changed = w != n;
        n = w;
        if !changed {
            break;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::offsite;

    const HOST: &[u8] = b"app.example.com";

    #[test]
    fn off_site_targets_and_script_schemes_are_flagged() {
        for v in [
            "https://evil.example/",
            "http://evil.example",
            "//evil.example",
            "%2f%2fevil.example",
            "%252f%252fevil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/\t/evil.example",
            "/ /evil.example",
            "javascript:alert(1)",
            "  https://evil.example",
            "/https://evil.example",
            "https:evil.example",
            "https:///evil.example",
            "https:/\\evil.example",
            "data:text/html,x",
            // Another site whose name holds the host's, and userinfo before another host.
            "https://app.example.com.evil.example/",
            "https://evilapp.example.com/",
            "https://app.example.com@evil.example/",
            "https://app.example.com:443@evil.example/",
            "https://app.example.com\\@evil.example/",
            // The host's own name, percent-encoded: exemption needs the plain form.
            "https://app.example.com%2f@evil.example/",
            "https://app%2eexample.com/",
            "https://example.com/",
        ] {
            assert!(offsite(v.as_bytes(), HOST).is_some(), "{v}");
        }
    }

    #[test]
    fn the_site_itself_and_relative_paths_are_not() {
        for v in [
            "https://app.example.com/orders/42",
            "http://app.example.com",
            "https://app.example.com:8443/x?y=1",
            "//app.example.com/home",
            "https://accounts.app.example.com/login",
            "https://app.example.com#top",
            " https://app.example.com/",
            "/dashboard",
            "/orders/42",
            "dashboard?tab=1",
            "/search?q=https://example.com",
            "",
        ] {
            assert!(offsite(v.as_bytes(), HOST).is_none(), "{v}");
        }
    }

    #[test]
    fn the_host_header_is_read_in_any_case_and_without_its_port() {
        for host in [
            &b"App.Example.com"[..],
            b"app.example.com:8443",
            b"APP.EXAMPLE.COM:80",
        ] {
            assert!(offsite(b"https://app.example.com/x", host).is_none());
            assert!(offsite(b"https://evil.example/x", host).is_some());
        }
        assert!(offsite(b"https://[::1]:8080/x", b"[::1]:8080").is_none());
        assert!(offsite(b"https://[::1]/x", b"[::2]").is_some());
    }

    #[test]
    fn with_no_host_every_target_counts() {
        assert!(offsite(b"https://app.example.com/", b"").is_some());
        assert!(offsite(b"/dashboard", b"").is_none());
    }
}
