//! An HTML5-ish scanner: tags, attributes, attribute values and URL schemes, without allocating.

/// The most bytes one tag (or one attribute list after a quote) is scanned for.
pub const MAX_TAG: usize = 1024;

fn at(s: &[u8], i: usize) -> u8 {
    s.get(i).copied().unwrap_or(0)
}

/// Whitespace between attributes. Browsers use tab, LF, FF, CR and space; other control bytes
/// are treated the same here so that odd separators do not hide an attribute.
fn is_ws(b: u8) -> bool {
    b <= b' '
}

fn eq_ci(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn starts_ci(hay: &[u8], p: &[u8]) -> bool {
    hay.get(..p.len())
        .is_some_and(|h| h.eq_ignore_ascii_case(p))
}

/// One attribute: name and value (without quotes), and whether it had `=`.
#[derive(Clone, Copy, Debug)]
struct Attr<'a> {
    name: &'a [u8],
    value: &'a [u8],
    has_value: bool,
}

/// Iterates over the attributes starting at `start`, up to `>` or `limit`.
///
/// Names and unquoted values also stop at `<` and names at quotes: the markup after them is
/// scanned on its own, and stopping there keeps the total work linear however the input nests
/// quotes and brackets.
struct Attrs<'a> {
    s: &'a [u8],
    i: usize,
    limit: usize,
    /// Attributes left to return.
    left: usize,
    done: bool,
}

impl<'a> Attrs<'a> {
    /// The attributes of a tag whose name ends at `start`.
    fn new(s: &'a [u8], start: usize) -> Self {
        Attrs::bounded(s, start, MAX_TAG, usize::MAX)
    }

    /// At most `count` attributes within `bytes` bytes of `start`.
    fn bounded(s: &'a [u8], start: usize, bytes: usize, count: usize) -> Self {
        Attrs {
            s,
            i: start,
            limit: start.saturating_add(bytes).min(s.len()),
            left: count,
            done: false,
        }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Attr<'a>;

    fn next(&mut self) -> Option<Attr<'a>> {
        if self.done || self.left == 0 {
            return None;
        }
        self.left -= 1;
        let s = self.s;
        let lim = self.limit;
        let mut i = self.i;
        while i < lim && (is_ws(at(s, i)) || at(s, i) == b'/') {
            i += 1;
        }
        if i >= lim || matches!(at(s, i), b'>' | b'<') {
            self.done = true;
            return None;
        }
        // Name: the first byte may be `=` (HTML5), then up to a separator.
        let ns = i;
        i += 1;
        while i < lim
            && !matches!(at(s, i), b'=' | b'>' | b'/' | b'<' | b'"' | b'\'' | b'`')
            && !is_ws(at(s, i))
        {
            i += 1;
        }
        let name = s.get(ns..i).unwrap_or(&[]);
        let mut j = i;
        while j < lim && is_ws(at(s, j)) {
            j += 1;
        }
        if at(s, j) != b'=' || j >= lim {
            self.i = i;
            return Some(Attr {
                name,
                value: &[],
                has_value: false,
            });
        }
        j += 1;
        while j < lim && is_ws(at(s, j)) {
            j += 1;
        }
        let q = at(s, j);
        let (value, next) = if j < lim && matches!(q, b'"' | b'\'' | b'`') {
            let vs = j + 1;
            let mut k = vs;
            while k < lim && at(s, k) != q {
                k += 1;
            }
            (s.get(vs..k).unwrap_or(&[]), (k + 1).min(lim))
        } else {
            let vs = j;
            let mut k = vs;
            while k < lim && !is_ws(at(s, k)) && !matches!(at(s, k), b'>' | b'<') {
                k += 1;
            }
            (s.get(vs..k).unwrap_or(&[]), k)
        };
        self.i = next;
        Some(Attr {
            name,
            value,
            has_value: true,
        })
    }
}

/// Characters of a URL as a browser reads them: character references decoded, tab/newline and
/// other control bytes dropped, ASCII lowercased.
struct UrlChars<'a> {
    s: &'a [u8],
    i: usize,
}

impl Iterator for UrlChars<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        loop {
            let b = *self.s.get(self.i)?;
            if b == b'&' {
                if let Some((c, len)) = char_ref(self.s.get(self.i..).unwrap_or(&[])) {
                    self.i += len;
                    if c <= b' ' {
                        continue;
                    }
                    return Some(c.to_ascii_lowercase());
                }
            }
            if b == b'\\' && matches!(at(self.s, self.i + 1), b'x' | b'X') {
                // `\x3a` written out, as fuzzing lists and JS-escaped values carry them.
                if let (Some(h), Some(l)) = (
                    crate::hex_val(at(self.s, self.i + 2)),
                    crate::hex_val(at(self.s, self.i + 3)),
                ) {
                    self.i += 4;
                    let c = h * 16 + l;
                    if c <= b' ' || c >= 0x7f {
                        continue;
                    }
                    return Some(c.to_ascii_lowercase());
                }
            }
            self.i += 1;
            // Control bytes and non-ASCII spaces are ignored, as lenient parsers do.
            if b <= b' ' || b >= 0x7f {
                continue;
            }
            return Some(b.to_ascii_lowercase());
        }
    }
}

/// Decodes a character reference at the start of `s` (`&#106;`, `&#x6A`, `&colon;`...).
/// Returns the byte (0xff for characters outside ASCII) and the length consumed.
fn char_ref(s: &[u8]) -> Option<(u8, usize)> {
    if at(s, 0) != b'&' {
        return None;
    }
    if at(s, 1) == b'#' {
        let hex = matches!(at(s, 2), b'x' | b'X');
        let mut i = if hex { 3 } else { 2 };
        let start = i;
        let mut v: u32 = 0;
        while i < s.len() && i - start < 10 {
            let d = match at(s, i) {
                c @ b'0'..=b'9' => u32::from(c - b'0'),
                c @ b'a'..=b'f' if hex => u32::from(c - b'a' + 10),
                c @ b'A'..=b'F' if hex => u32::from(c - b'A' + 10),
                _ => break,
            };
            v = v
                .saturating_mul(if hex { 16 } else { 10 })
                .saturating_add(d);
            i += 1;
        }
        if i == start {
            return None;
        }
        if at(s, i) == b';' {
            i += 1;
        }
        let c = if v < 0x80 { v as u8 } else { 0xff };
        return Some((c, i));
    }
    const NAMED: &[(&[u8], u8)] = &[
        (b"&tab;", b'\t'),
        (b"&newline;", b'\n'),
        (b"&colon;", b':'),
        (b"&lpar;", b'('),
        (b"&rpar;", b')'),
        (b"&sol;", b'/'),
        (b"&period;", b'.'),
        (b"&lt;", b'<'),
        (b"&gt;", b'>'),
        (b"&quot;", b'"'),
        (b"&apos;", b'\''),
        (b"&amp;", b'&'),
    ];
    NAMED
        .iter()
        .find(|(n, _)| starts_ci(s, n))
        .map(|(n, c)| (*c, n.len()))
}

/// Does the URL `v` start with `scheme` once browsers' leniency is applied?
fn url_starts_with(v: &[u8], scheme: &[u8]) -> bool {
    let mut it = UrlChars { s: v, i: 0 };
    scheme.iter().all(|&c| it.next() == Some(c))
}

/// A URL that runs script when followed or loaded.
fn dangerous_url(v: &[u8]) -> bool {
    const SCRIPT: &[&[u8]] = &[b"javascript:", b"vbscript:", b"livescript:", b"mocha:"];
    // Every scheme below starts with one of these: most values are out at their first byte.
    if !matches!(
        (UrlChars { s: v, i: 0 }).next(),
        Some(b'j' | b'v' | b'l' | b'm' | b'd')
    ) {
        return false;
    }
    if SCRIPT.iter().any(|s| url_starts_with(v, s)) {
        return true;
    }
    if url_starts_with(v, b"data:") {
        const ACTIVE: &[&[u8]] = &[
            b"data:text/html",
            b"data:image/svg",
            b"data:text/xml",
            b"data:application/xhtml",
            b"data:application/xml",
            b"data:text/javascript",
            b"data:application/javascript",
            b"data:application/x-javascript",
            b"data:application/ecmascript",
            b"data:text/ecmascript",
            b"data:application/x-shockwave",
            b"data:,",
            b"data:;base64",
        ];
        return ACTIVE.iter().any(|s| url_starts_with(v, s));
    }
    false
}

/// Copies `v` into `buf` lowercased, without whitespace, backslashes and CSS comments, so that
/// `ex/**/pression (` and `expr\65ssion` style tricks compare like `expression(`.
fn compact<'b>(v: &[u8], buf: &'b mut [u8; 512]) -> &'b [u8] {
    let mut n = 0;
    let mut i = 0;
    while i < v.len() && n < buf.len() {
        let b = at(v, i);
        if b == b'/' && at(v, i + 1) == b'*' {
            i += 2;
            while i < v.len() && !(at(v, i) == b'*' && at(v, i + 1) == b'/') {
                i += 1;
            }
            i += 2;
            continue;
        }
        i += 1;
        let mut c = b;
        if b == b'\\' {
            // CSS escape: `\6a` (1-6 hex digits, optional space) or `\x`.
            let mut k = i;
            let mut val: u32 = 0;
            while k < v.len() && k - i < 6 {
                match crate::hex_val(at(v, k)) {
                    Some(h) => val = val * 16 + u32::from(h),
                    None => break,
                }
                k += 1;
            }
            if k == i {
                continue;
            }
            if at(v, k) == b' ' {
                k += 1;
            }
            i = k;
            c = if val < 0x80 { val as u8 } else { 0xff };
        }
        if c <= b' ' {
            continue;
        }
        if let Some(slot) = buf.get_mut(n) {
            *slot = c.to_ascii_lowercase();
        }
        n += 1;
    }
    buf.get(..n).unwrap_or(&[])
}

/// Copies `v` into `buf` with character references decoded (at most `buf.len()` bytes).
fn decode_refs<'b>(v: &[u8], buf: &'b mut [u8; 512]) -> &'b [u8] {
    let mut n = 0;
    let mut i = 0;
    while i < v.len() && n < buf.len() {
        let (c, len) = match char_ref(v.get(i..).unwrap_or(&[])) {
            Some(decoded) => decoded,
            None => (at(v, i), 1),
        };
        i += len.max(1);
        if let Some(slot) = buf.get_mut(n) {
            *slot = c;
        }
        n += 1;
    }
    buf.get(..n).unwrap_or(&[])
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// CSS that runs script or loads code.
fn dangerous_css(v: &[u8]) -> bool {
    // Attribute values are entity-decoded by the browser before CSS sees them.
    let mut decoded = [0u8; 512];
    let v = decode_refs(v, &mut decoded);
    let mut buf = [0u8; 512];
    let c = compact(v, &mut buf);
    const BAD: &[&[u8]] = &[
        b"expression(",
        b"javascript:",
        b"vbscript:",
        b"behavior:",
        b"behaviour:",
        b"-moz-binding",
        b"binding:url(",
        b"@import",
        b"url(data:text/html",
        b"url(\"javascript",
        b"url('javascript",
    ];
    BAD.iter().any(|b| contains(c, b))
}

/// `on` + at least three letters: an event handler name.
fn is_event_handler(name: &[u8]) -> bool {
    name.len() >= 5
        && starts_ci(name, b"on")
        && name.iter().skip(2).all(|b| b.is_ascii_alphabetic())
}

/// The rule an attribute breaks, if any. `tag` is the lowercased local tag name, or empty when
/// the attribute list follows a quote break-out.
fn check_attr(tag: &[u8], a: &Attr<'_>) -> Option<&'static str> {
    if a.has_value && is_event_handler(a.name) {
        return Some("evt");
    }
    if !a.has_value {
        return None;
    }
    let name = a.name;
    if dangerous_url(a.value) {
        return Some("jsurl");
    }
    if eq_ci(name, b"style") && dangerous_css(a.value) {
        return Some("style");
    }
    if eq_ci(name, b"srcdoc") {
        return Some("srcdoc");
    }
    if a.value.starts_with(b"&{") {
        // Netscape JavaScript entities: `&{alert(1)};`
        return Some("jsent");
    }
    if eq_ci(name, b"datasrc") || eq_ci(name, b"dataformatas") {
        // IE data binding pulls markup from a data island.
        return Some("databind");
    }
    if eq_ci(name, b"attributename")
        && (is_event_handler(a.value)
            || eq_ci(a.value, b"innerhtml")
            || eq_ci(a.value, b"outerhtml"))
    {
        return Some("svganim");
    }
    if tag == b"meta" {
        // refresh (redirects, `javascript:` URLs), set-cookie, link; a UTF-7 charset.
        let mut buf = [0u8; 512];
        let v = compact(a.value, &mut buf);
        let equiv = eq_ci(name, b"http-equiv")
            && (contains(v, b"refresh") || contains(v, b"set-cookie") || contains(v, b"link"));
        if equiv || contains(v, b"utf-7") || contains(v, b"utf7") {
            return Some("meta");
        }
    }
    if tag == b"base" && eq_ci(name, b"href") {
        return Some("base");
    }
    if eq_ci(name, b"implementation") {
        // `<?import implementation=..htc>` / `<import implementation=..>` behaviours.
        return Some("import");
    }
    if tag == b"link" && (eq_ci(name, b"href") || eq_ci(name, b"rel")) {
        return Some("link");
    }
    None
}

/// Tags that are dangerous by themselves (`script`, `style`), and tags that load active content
/// as soon as they carry any attribute (`<iframe src=..>`, `<object data=..>`; the bare words
/// `<object>` or `<layer>` in prose are left alone).
fn dangerous_tag(name: &[u8], has_attr: bool) -> Option<&'static str> {
    const ALWAYS: &[(&[u8], &str)] = &[(b"script", "script"), (b"style", "style")];
    const WITH_ATTR: &[(&[u8], &str)] = &[
        (b"iframe", "iframe"),
        (b"frame", "frame"),
        (b"object", "object"),
        (b"embed", "embed"),
        (b"applet", "applet"),
        (b"layer", "layer"),
        (b"ilayer", "layer"),
        (b"xml", "xml"),
        (b"vmlframe", "vmlframe"),
    ];
    let find =
        |list: &[(&[u8], &'static str)]| list.iter().find(|(t, _)| eq_ci(name, t)).map(|(_, r)| *r);
    find(ALWAYS).or_else(|| if has_attr { find(WITH_ATTR) } else { None })
}

/// Scans every `<` that opens a tag. Returns the rule that fired.
pub fn scan_tags(s: &[u8]) -> Option<&'static str> {
    let mut from = 0;
    while let Some(off) = s
        .get(from..)
        .and_then(|r| r.iter().position(|&b| b == b'<'))
    {
        let lt = from + off;
        from = lt + 1;
        let first = at(s, lt + 1);
        if first == b'/' && starts_ci(s.get(lt + 2..).unwrap_or(&[]), b"script") {
            let after = at(s, lt + 8);
            if after == b'>' || is_ws(after) || after == b'/' {
                // `</script>` ends the script block the value was put in.
                return Some("endscr");
            }
        }
        if first == b'?' && starts_ci(s.get(lt + 2..).unwrap_or(&[]), b"import") {
            return Some("import");
        }
        if !first.is_ascii_alphabetic() {
            continue;
        }
        let ns = lt + 1;
        let mut i = ns;
        while i < s.len()
            && i - ns < MAX_TAG
            && !is_ws(at(s, i))
            && !matches!(at(s, i), b'/' | b'>' | b'<')
        {
            i += 1;
        }
        let full = s.get(ns..i).unwrap_or(&[]);
        // `<x:script>`: the local name decides.
        let local = match full.iter().rposition(|&b| b == b':') {
            Some(c) => full.get(c + 1..).unwrap_or(&[]),
            None => full,
        };
        let has_attr = Attrs::new(s, i).next().is_some();
        if let Some(rule) = dangerous_tag(local, has_attr) {
            return Some(rule);
        }
        let mut lower = [0u8; 16];
        let tag: &[u8] = if local.len() <= lower.len() {
            let l = lower.get_mut(..local.len()).unwrap_or(&mut []);
            l.copy_from_slice(local);
            l.make_ascii_lowercase();
            l
        } else {
            &[]
        };
        for a in Attrs::new(s, i) {
            if let Some(rule) = check_attr(tag, &a) {
                return Some(rule);
            }
        }
    }
    // UTF-7 markup: `+ADw-script+AD4-`.
    if s.contains(&b'+') && contains_ci(s, b"+adw-") && contains_ci(s, b"+ad4-") {
        return Some("utf7");
    }
    None
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && hay
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

/// A necessary condition for [`scan_tags`], [`attribute_breakout`] and [`script_context`], by
/// vectorised searches: a `<` (a tag, `</script`, `<?import`), a quote or backtick (an
/// attribute or string break-out), `{` (a `${..}` or `{{..}}` template), `+` (UTF-7 markup), an
/// `on` at the start of the value or after whitespace with a `=` after it (an unquoted event
/// handler), or a script URL at the start after whitespace (`javascript:`). A value without
/// any of these cannot be flagged, so it is not scanned three times.
pub fn possible(s: &[u8]) -> bool {
    memchr::memchr3(b'<', b'"', b'\'', s).is_some()
        || memchr::memchr3(b'`', b'{', b'+', s).is_some()
        || possible_without_specials(s)
}

/// [`possible`] for a value known to hold none of `<`, `"`, `'`, `` ` ``, `{`, `+`: an unquoted
/// event handler or a script URL.
pub fn possible_without_specials(s: &[u8]) -> bool {
    // A `=` after the `on`: the last one decides, so no rest is searched twice.
    let handler = memchr::memrchr(b'=', s).is_some_and(|last_eq| {
        memchr::memchr2_iter(b'o', b'O', s).any(|i| {
            (i == 0 || is_ws(at(s, i - 1))) && (at(s, i + 1) | 0x20) == b'n' && last_eq >= i + 2
        })
    });
    if handler {
        return true;
    }
    let lead = s.iter().position(|&b| !is_ws(b)).unwrap_or(s.len());
    dangerous_url(s.get(lead..).unwrap_or(&[]))
}

/// Looks for attribute lists after quotes (`" onmouseover=..`) and for unquoted event handlers
/// whose value calls something (`x onfocus=alert(1)`).
pub fn attribute_breakout(s: &[u8]) -> Option<&'static str> {
    // Every finding below is an attribute with a value, hence an `=` (`check_attr` answers
    // `None` for an attribute without one, and the unquoted check reads `on<event>=`): prose
    // with quotes and no `=` is dismissed in one `memchr`.
    memchr::memchr(b'=', s)?;
    breakouts(s)
}

/// [`attribute_breakout`] without its `=` gate (the tests check the gate against it).
pub(crate) fn breakouts(s: &[u8]) -> Option<&'static str> {
    for (q, &b) in s.iter().enumerate() {
        if matches!(b, b'"' | b'\'' | b'`') {
            // An apostrophe inside a word (`I'm`, `don't`, `O'Brien`) is prose, not the end of
            // an attribute value: only an attribute glued to it (`x'onfocus=..`) counts, and the
            // rest of the value is left to the unquoted check below.
            let apostrophe = b == b'\''
                && q > 0
                && at(s, q - 1).is_ascii_alphabetic()
                && at(s, q + 1).is_ascii_alphabetic();
            let count = if apostrophe { 1 } else { 4 };
            for a in Attrs::bounded(s, q + 1, 256, count) {
                if let Some(rule) = check_attr(b"", &a) {
                    // A handler right after the quote needs a value to be more than prose.
                    if rule != "evt" || !a.value.is_empty() {
                        return Some(rule);
                    }
                }
            }
        }
    }
    // Unquoted attribute context: ` on<event>=<call>`.
    let mut i = 0;
    while i + 2 < s.len() {
        if (at(s, i) | 0x20) == b'o'
            && (at(s, i + 1) | 0x20) == b'n'
            && (i == 0 || is_ws(at(s, i - 1)))
        {
            let mut j = i + 2;
            while j < s.len() && at(s, j).is_ascii_alphabetic() {
                j += 1;
            }
            let name = s.get(i..j).unwrap_or(&[]);
            let mut k = j;
            while k < s.len() && is_ws(at(s, k)) {
                k += 1;
            }
            if is_event_handler(name) && at(s, k) == b'=' {
                let v = s.get(k + 1..(k + 1 + 256).min(s.len())).unwrap_or(&[]);
                if looks_like_call(v) {
                    return Some("evt");
                }
            }
            i = j.max(i + 1);
            continue;
        }
        i += 1;
    }
    None
}

/// An event handler value that does something: calls a function, assigns, or uses a sink.
fn looks_like_call(v: &[u8]) -> bool {
    let mut j = 0;
    while j < v.len() && (is_ws(at(v, j)) || matches!(at(v, j), b'"' | b'\'')) {
        j += 1;
    }
    let rest = v.get(j..).unwrap_or(&[]);
    let end = rest
        .iter()
        .position(|&b| is_ws(b) || b == b'>')
        .unwrap_or(rest.len());
    let word = rest.get(..end).unwrap_or(&[]);
    word.iter().any(|&b| matches!(b, b'(' | b'`')) || sink_at(word).is_some()
}

/// JavaScript functions that run code or show the attack worked, when called.
const CALL_SINKS: &[&[u8]] = &[
    b"alert",
    b"prompt",
    b"confirm",
    b"eval",
    b"settimeout",
    b"setinterval",
    b"fetch",
    b"import",
    b"atob",
    b"constructor",
    b"string.fromcharcode",
    b"execscript",
    b"msgbox",
    b"xmlhttprequest",
];

/// Objects that reach the page (`document.cookie`, `location=..`).
const OBJECT_SINKS: &[&[u8]] = &[b"document", b"window", b"location", b"globalthis"];

/// Window aliases, dangerous when indexed (`top['al'+'ert']`) or calling a sink (`top.alert(`).
const WINDOW_ALIASES: &[&[u8]] = &[b"top", b"self", b"parent", b"frames"];

/// If one of `names` starts `s` (as a whole identifier), returns its length.
fn name_at(s: &[u8], names: &[&[u8]]) -> Option<usize> {
    names.iter().find_map(|k| {
        let next = at(s, k.len());
        (starts_ci(s, k) && !(next.is_ascii_alphanumeric() || next == b'_' || next == b'$'))
            .then_some(k.len())
    })
}

/// Any sink name at the start of `s`, for handler values.
fn sink_at(s: &[u8]) -> Option<usize> {
    name_at(s, CALL_SINKS)
        .or_else(|| name_at(s, OBJECT_SINKS))
        .or_else(|| name_at(s, WINDOW_ALIASES))
}

/// Index of the first non-whitespace byte of `s` from `j`.
fn next_non_ws(s: &[u8], mut j: usize) -> usize {
    while j < s.len() && is_ws(at(s, j)) {
        j += 1;
    }
    j
}

/// Is the identifier starting at `s` a sink used as code (`alert(`, ``alert` ``,
/// `document.cookie`, `location=`, `top['x']`, `self.alert(`)?
fn sink_used(s: &[u8]) -> bool {
    if let Some(n) = name_at(s, CALL_SINKS) {
        return matches!(at(s, next_non_ws(s, n)), b'(' | b'`');
    }
    if let Some(n) = name_at(s, OBJECT_SINKS) {
        let j = next_non_ws(s, n);
        return matches!(at(s, j), b'.' | b'[') || (at(s, j) == b'=' && at(s, j + 1) != b'=');
    }
    if let Some(n) = name_at(s, WINDOW_ALIASES) {
        let j = next_non_ws(s, n);
        return at(s, j) == b'['
            || (at(s, j) == b'.' && name_at(s.get(j + 1..).unwrap_or(&[]), CALL_SINKS).is_some());
    }
    false
}

/// JavaScript string break-outs (`';alert(1)//`), `${..}` templates with sinks, and values that
/// are script URLs.
pub fn script_context(s: &[u8]) -> Option<&'static str> {
    let mut lead = 0;
    while lead < s.len() && (is_ws(at(s, lead)) || matches!(at(s, lead), b'"' | b'\'')) {
        lead += 1;
    }
    let rest = s.get(lead..).unwrap_or(&[]);
    if dangerous_url(rest) && !url_starts_with(rest, b"data:") {
        return Some("jsurl");
    }
    // The first of either finding, in byte order: each kind's first position is searched
    // for with `memchr` (prose holds few of these bytes), then the earlier one is named.
    let string = memchr::memchr3_iter(b'"', b'\'', b'`', s).find(|&q| quote_breakout(s, q + 1));
    let template = memchr::memchr2_iter(b'$', b'{', s)
        .take_while(|&q| string.is_none_or(|sq| q < sq))
        .find(|&q| at(s, q + 1) == b'{' && template_sink(s, q + 2));
    match (string, template) {
        (_, Some(_)) => Some("jstpl"),
        (Some(_), None) => Some("jsstr"),
        (None, None) => None,
    }
}

/// `${alert(1)}` template literals, `{{constructor.constructor(..)()}}` templates: after the
/// two opening bytes (at `j`), spaces, then a sink in use or `constructor`.
fn template_sink(s: &[u8], mut j: usize) -> bool {
    while j < s.len() && is_ws(at(s, j)) {
        j += 1;
    }
    let inner = s.get(j..).unwrap_or(&[]);
    sink_used(inner) || name_at(inner, &[b"constructor"]).is_some()
}

/// After a closing quote at `i`: `)]}` and spaces, an operator, prefixes, then a sink in use.
fn quote_breakout(s: &[u8], mut i: usize) -> bool {
    let lim = (i + 32).min(s.len());
    while i < lim && (is_ws(at(s, i)) || matches!(at(s, i), b')' | b']' | b'}')) {
        i += 1;
    }
    if !matches!(
        at(s, i),
        b';' | b'+' | b'-' | b'*' | b'/' | b',' | b'|' | b'&' | b'^' | b'%' | b'?' | b':' | b'='
    ) || i >= lim
    {
        return false;
    }
    // `//` right after the quote is a comment, not an operator.
    if at(s, i) == b'/' && at(s, i + 1) == b'/' {
        return false;
    }
    i += 1;
    while i < lim
        && (is_ws(at(s, i))
            || matches!(
                at(s, i),
                b'(' | b'!' | b'~' | b'+' | b'-' | b'|' | b'&' | b';' | b'['
            ))
    {
        i += 1;
    }
    for prefix in [&b"void"[..], b"new", b"typeof", b"await"] {
        if starts_ci(s.get(i..).unwrap_or(&[]), prefix) && is_ws(at(s, i + prefix.len())) {
            i += prefix.len();
            while i < lim && is_ws(at(s, i)) {
                i += 1;
            }
        }
    }
    sink_used(s.get(i..).unwrap_or(&[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_parse_quoted_unquoted_and_bare() {
        let s = b" a=1 b='x y' c=\"z\" d /e=`w`>rest";
        let got: Vec<(&[u8], &[u8], bool)> = Attrs::new(s, 0)
            .map(|a| (a.name, a.value, a.has_value))
            .collect();
        assert_eq!(
            got,
            vec![
                (&b"a"[..], &b"1"[..], true),
                (b"b", b"x y", true),
                (b"c", b"z", true),
                (b"d", b"", false),
                (b"e", b"w", true),
            ]
        );
    }

    #[test]
    fn url_scheme_ignores_whitespace_and_character_references() {
        assert!(dangerous_url(b" jav\tascript:alert(1)"));
        assert!(dangerous_url(b"&#106;avascript&colon;x"));
        assert!(dangerous_url(b"&#x6A&#x61vascript:x"));
        assert!(dangerous_url(b"data:text/html;base64,PHNjcmlwdD4="));
        assert!(!dangerous_url(b"data:image/png;base64,AAAA"));
        assert!(!dangerous_url(b"/javascript/guide.html"));
    }

    #[test]
    fn css_compaction_defeats_comments_and_escapes() {
        assert!(dangerous_css(b"width: ex/**/pression(alert(1))"));
        assert!(dangerous_css(b"x:\\65xpression(1)") || !dangerous_css(b"color:red"));
        assert!(!dangerous_css(b"color: red; font-weight: bold"));
    }

    #[test]
    fn char_refs_decode_and_never_panic_on_truncation() {
        assert_eq!(char_ref(b"&#106;"), Some((b'j', 6)));
        assert_eq!(char_ref(b"&#x3c"), Some((b'<', 5)));
        assert_eq!(char_ref(b"&#"), None);
        assert_eq!(char_ref(b"&"), None);
        assert_eq!(char_ref(b"&#99999999999999"), Some((0xff, 12)));
    }
}
