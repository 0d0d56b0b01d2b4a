//! Route matching: host, path (exact, prefix, `{param}` templates) and method.
//!
//! Precedence (written down so nobody has to guess): among the routes whose host and path match,
//! the most specific wins: an exact host beats `*.suffix` beats any host; then an exact path beats
//! a template, a template with more literal segments beats one with fewer, and a template beats a
//! prefix; longer prefixes beat shorter ones. Ties keep file order. A request whose host and path
//! match some route but whose method none of them allows gets 405.
//!
//! Paths are normalised before matching (dot segments resolved, repeated slashes merged), and the
//! normalised path is what the upstream receives, so `/public/../admin` cannot borrow the policy of
//! `/public/*`.

use serde::Serialize;
use std::borrow::Cow;

/// A compiled path pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct PathPattern {
    source: String,
    kind: PatternKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PatternKind {
    Exact(String),
    /// Matches the prefix itself (without its trailing slash) and everything below it.
    Prefix(String),
    Template {
        segments: Vec<Segment>,
        tail: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param,
}

impl From<PathPattern> for String {
    fn from(p: PathPattern) -> String {
        p.source
    }
}

impl PathPattern {
    /// Parse `/exact`, `/prefix/*` or `/items/{id}` (optionally ending in `/*`).
    pub fn parse(s: &str) -> Result<Self, String> {
        if !s.starts_with('/') {
            return Err(format!("path `{s}` must start with `/`"));
        }
        let (body, tail) = match s.strip_suffix("/*") {
            Some(b) => (b, true),
            None => (s, false),
        };
        if body.contains('*') {
            return Err(format!(
                "path `{s}`: `*` is only allowed as the last segment (`/prefix/*`)"
            ));
        }
        if !body.contains('{') {
            let kind = if tail {
                PatternKind::Prefix(body.to_string())
            } else {
                PatternKind::Exact(body.to_string())
            };
            return Ok(Self {
                source: s.to_string(),
                kind,
            });
        }
        let mut segments = Vec::new();
        for seg in body.split('/').skip(1) {
            if seg.starts_with('{') && seg.ends_with('}') && seg.len() > 2 {
                let name = &seg[1..seg.len() - 1];
                if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(format!(
                        "path `{s}`: parameter name `{name}` may hold only letters, digits and `_`"
                    ));
                }
                segments.push(Segment::Param);
            } else if seg.contains('{') || seg.contains('}') {
                return Err(format!(
                    "path `{s}`: a parameter must be a whole segment, like `/items/{{id}}`"
                ));
            } else {
                segments.push(Segment::Literal(seg.to_string()));
            }
        }
        Ok(Self {
            source: s.to_string(),
            kind: PatternKind::Template { segments, tail },
        })
    }

    /// The pattern as written (the route template recorded in analytics).
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Does the (normalised) path match?
    pub fn matches(&self, path: &str) -> bool {
        match &self.kind {
            PatternKind::Exact(p) => path == p,
            PatternKind::Prefix(p) => {
                p.is_empty()
                    || path == p
                    || (path.starts_with(p.as_str()) && path.as_bytes().get(p.len()) == Some(&b'/'))
            }
            PatternKind::Template { segments, tail } => {
                let mut parts = path.split('/').skip(1);
                for seg in segments {
                    match (seg, parts.next()) {
                        (Segment::Literal(l), Some(p)) if l == p => {}
                        (Segment::Param, Some(p)) if !p.is_empty() => {}
                        _ => return false,
                    }
                }
                *tail || parts.next().is_none()
            }
        }
    }

    /// Sort key: larger is more specific.
    fn specificity(&self) -> (u8, usize) {
        match &self.kind {
            PatternKind::Exact(p) => (3, p.len()),
            PatternKind::Template { segments, tail } => {
                let lits = segments
                    .iter()
                    .filter(|s| matches!(s, Segment::Literal(_)))
                    .count();
                (if *tail { 1 } else { 2 }, lits * 1000 + segments.len())
            }
            PatternKind::Prefix(p) => (1, p.len()),
        }
    }
}

/// A host pattern: exact, `*.suffix`, or any.
#[derive(Debug, Clone)]
enum HostPattern {
    Any,
    Exact(String),
    /// Stored with the leading dot: `.example.com`.
    Suffix(String),
}

impl HostPattern {
    fn parse(s: &str) -> Self {
        if s == "*" {
            HostPattern::Any
        } else if let Some(rest) = s.strip_prefix('*') {
            HostPattern::Suffix(rest.to_string())
        } else {
            HostPattern::Exact(s.to_string())
        }
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Exact(h) => h.eq_ignore_ascii_case(host),
            HostPattern::Suffix(s) => {
                host.len() > s.len()
                    && host.is_char_boundary(host.len() - s.len())
                    && host[host.len() - s.len()..].eq_ignore_ascii_case(s)
            }
        }
    }

    fn rank(&self) -> u8 {
        match self {
            HostPattern::Any => 0,
            HostPattern::Suffix(_) => 1,
            HostPattern::Exact(_) => 2,
        }
    }
}

struct Entry {
    index: usize,
    hosts: Vec<HostPattern>,
    path: PathPattern,
    methods: Vec<http::Method>,
}

/// The compiled route table.
pub struct Router {
    entries: Vec<Entry>,
}

/// The outcome of matching a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteMatch {
    /// The route at this index (in config order) handles the request.
    Route(usize),
    /// Host and path matched a route, but no such route allows the method.
    MethodNotAllowed(usize),
    /// Nothing matched.
    NoRoute,
}

impl Router {
    /// Build the table from the routes' host patterns, paths and methods, in config order.
    pub fn new<'a>(
        routes: impl IntoIterator<Item = (&'a [String], &'a PathPattern, &'a [http::Method])>,
    ) -> Self {
        let mut entries: Vec<Entry> = routes
            .into_iter()
            .enumerate()
            .map(|(index, (hosts, path, methods))| Entry {
                index,
                hosts: if hosts.is_empty() {
                    vec![HostPattern::Any]
                } else {
                    hosts.iter().map(|h| HostPattern::parse(h)).collect()
                },
                path: path.clone(),
                methods: methods.to_vec(),
            })
            .collect();
        entries.sort_by(|a, b| {
            let ha = a.hosts.iter().map(HostPattern::rank).max().unwrap_or(0);
            let hb = b.hosts.iter().map(HostPattern::rank).max().unwrap_or(0);
            hb.cmp(&ha)
                .then(b.path.specificity().cmp(&a.path.specificity()))
                .then(a.index.cmp(&b.index))
        });
        Self { entries }
    }

    /// Match a request. `host` is without port; `path` is already normalised.
    pub fn find(&self, host: &str, path: &str, method: &http::Method) -> RouteMatch {
        let mut method_miss = None;
        for e in &self.entries {
            if !e.hosts.iter().any(|h| h.matches(host)) || !e.path.matches(path) {
                continue;
            }
            if e.methods.is_empty() || e.methods.iter().any(|m| m == method) {
                return RouteMatch::Route(e.index);
            }
            method_miss.get_or_insert(e.index);
        }
        match method_miss {
            Some(i) => RouteMatch::MethodNotAllowed(i),
            None => RouteMatch::NoRoute,
        }
    }
}

/// Whether [`normalize_path`] may change `path`: it does not start with `/`, or holds `//`,
/// `/.` or `%2e` (either case). One pass over the bytes (four substring searches cost more
/// than the whole pass on the short paths of an API).
fn needs_normalizing(path: &[u8]) -> bool {
    if path.first() != Some(&b'/') {
        return true;
    }
    path.iter().enumerate().any(|(i, &b)| match b {
        b'/' => matches!(path.get(i + 1), Some(b'/' | b'.')),
        b'%' => {
            path.get(i + 1) == Some(&b'2') && path.get(i + 2).is_some_and(|&c| c | 0x20 == b'e')
        }
        _ => false,
    })
}

/// Normalise a request path for routing and forwarding: resolve `.` and `..` segments (also when
/// written `%2e`), merge repeated slashes. Returns `None` when `..` climbs above the root.
/// Borrowed when nothing changes (the common case: no allocation).
pub fn normalize_path(path: &str) -> Option<Cow<'_, str>> {
    if !needs_normalizing(path.as_bytes()) {
        return Some(Cow::Borrowed(path));
    }
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        let dots = if seg.eq_ignore_ascii_case("%2e") {
            "."
        } else if seg.eq_ignore_ascii_case("%2e%2e")
            || seg.eq_ignore_ascii_case(".%2e")
            || seg.eq_ignore_ascii_case("%2e.")
        {
            ".."
        } else {
            seg
        };
        match dots {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            s => out.push(s),
        }
    }
    let trailing = path.ends_with('/') && !out.is_empty();
    let mut s = String::with_capacity(path.len());
    for seg in &out {
        s.push('/');
        s.push_str(seg);
    }
    if trailing || s.is_empty() {
        s.push('/');
    }
    Some(Cow::Owned(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn router(specs: &[(&[&str], &str, &[&str])]) -> (Router, Vec<PathPattern>) {
        let hosts: Vec<Vec<String>> = specs
            .iter()
            .map(|s| s.0.iter().map(|h| h.to_string()).collect())
            .collect();
        let paths: Vec<PathPattern> = specs
            .iter()
            .map(|s| PathPattern::parse(s.1).expect("pattern"))
            .collect();
        let methods: Vec<Vec<Method>> = specs
            .iter()
            .map(|s| s.2.iter().map(|m| m.parse().expect("method")).collect())
            .collect();
        let r = Router::new(
            (0..specs.len()).map(|i| (hosts[i].as_slice(), &paths[i], methods[i].as_slice())),
        );
        (r, paths)
    }

    #[test]
    fn most_specific_path_wins_regardless_of_order() {
        let (r, _) = router(&[
            (&[], "/*", &[]),
            (&[], "/api/*", &[]),
            (&[], "/api/items/{id}", &[]),
            (&[], "/api/items/special", &[]),
        ]);
        assert_eq!(r.find("x", "/", &Method::GET), RouteMatch::Route(0));
        assert_eq!(r.find("x", "/api", &Method::GET), RouteMatch::Route(1));
        assert_eq!(
            r.find("x", "/api/other", &Method::GET),
            RouteMatch::Route(1)
        );
        assert_eq!(
            r.find("x", "/api/items/7", &Method::GET),
            RouteMatch::Route(2)
        );
        assert_eq!(
            r.find("x", "/api/items/special", &Method::GET),
            RouteMatch::Route(3)
        );
        assert_eq!(
            r.find("x", "/api/items/7/sub", &Method::GET),
            RouteMatch::Route(1)
        );
        assert_eq!(r.find("x", "/apix", &Method::GET), RouteMatch::Route(0));
    }

    #[test]
    fn host_patterns_rank_exact_over_wildcard_over_any() {
        let (r, _) = router(&[
            (&["*"], "/*", &[]),
            (&["*.example.com"], "/*", &[]),
            (&["api.example.com"], "/*", &[]),
        ]);
        assert_eq!(
            r.find("api.example.com", "/a", &Method::GET),
            RouteMatch::Route(2)
        );
        assert_eq!(
            r.find("API.Example.com", "/a", &Method::GET),
            RouteMatch::Route(2)
        );
        assert_eq!(
            r.find("www.example.com", "/a", &Method::GET),
            RouteMatch::Route(1)
        );
        assert_eq!(
            r.find("example.com", "/a", &Method::GET),
            RouteMatch::Route(0)
        );
        assert_eq!(
            r.find("other.org", "/a", &Method::GET),
            RouteMatch::Route(0)
        );
    }

    #[test]
    fn method_mismatch_is_405_unless_another_route_allows_it() {
        let (r, _) = router(&[(&[], "/items", &["GET"]), (&[], "/things", &["GET"])]);
        assert_eq!(r.find("h", "/items", &Method::GET), RouteMatch::Route(0));
        assert_eq!(
            r.find("h", "/items", &Method::DELETE),
            RouteMatch::MethodNotAllowed(0)
        );
        assert_eq!(r.find("h", "/nope", &Method::GET), RouteMatch::NoRoute);
        let (r, _) = router(&[(&[], "/items", &["GET"]), (&[], "/*", &[])]);
        assert_eq!(r.find("h", "/items", &Method::DELETE), RouteMatch::Route(1));
    }

    #[test]
    fn template_params_need_a_non_empty_segment() {
        let p = PathPattern::parse("/users/{id}/orders/{order}").expect("parse");
        assert!(p.matches("/users/1/orders/2"));
        assert!(!p.matches("/users//orders/2"));
        assert!(!p.matches("/users/1/orders"));
        assert!(!p.matches("/users/1/orders/2/x"));
        let t = PathPattern::parse("/users/{id}/*").expect("parse");
        assert!(t.matches("/users/1/anything/below"));
    }

    #[test]
    fn bad_patterns_are_rejected_with_a_hint() {
        assert_eq!(
            PathPattern::parse("api").unwrap_err(),
            "path `api` must start with `/`"
        );
        assert!(PathPattern::parse("/a/*/b")
            .unwrap_err()
            .contains("last segment"));
        assert!(PathPattern::parse("/a/x{id}")
            .unwrap_err()
            .contains("whole segment"));
    }

    #[test]
    fn normalisation_resolves_dot_segments_and_slashes() {
        assert_eq!(normalize_path("/a/b").as_deref(), Some("/a/b"));
        // The one-pass check agrees with the four substring searches it replaced.
        let alphabet = ["/", ".", "%", "2", "e", "E", "a"];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for n in 0..20_000usize {
            let mut p = String::new();
            for _ in 0..n % 9 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                p.push_str(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            let searched = p.contains("//")
                || p.contains("/.")
                || p.contains("%2e")
                || p.contains("%2E")
                || !p.starts_with('/');
            assert_eq!(needs_normalizing(p.as_bytes()), searched, "{p:?}");
        }
        assert_eq!(
            normalize_path("/public/../admin").as_deref(),
            Some("/admin")
        );
        assert_eq!(
            normalize_path("/public/%2e%2e/admin").as_deref(),
            Some("/admin")
        );
        assert_eq!(normalize_path("//a///b/./c/").as_deref(), Some("/a/b/c/"));
        assert_eq!(normalize_path("/..").as_deref(), None);
        assert_eq!(normalize_path("/a/..").as_deref(), Some("/"));
        assert!(matches!(
            normalize_path("/plain/path"),
            Some(Cow::Borrowed(_))
        ));
    }
}
