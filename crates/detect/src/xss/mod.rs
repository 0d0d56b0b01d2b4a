//! XSS detection by scanning the value as HTML, as an attribute value and as a JavaScript string.
//!
//! # What is flagged
//!
//! * [`Context::Html`]: a tag that runs script or loads active content: `script`, `iframe`,
//!   `frame`, `object`, `embed`, `applet`, `style`, `base`, `link` with `href`, `meta` with
//!   `http-equiv`; any tag (known or invented) with an `on<event>=` handler; any attribute whose
//!   value is a `javascript:`/`vbscript:` URL (whitespace, control bytes and character
//!   references inside the scheme are ignored, as browsers do) or a `data:` URL of an HTML/SVG/
//!   script document; `srcdoc`; `style` attributes with `expression(`, `behavior:`,
//!   `-moz-binding`, `@import` or script URLs; SVG `attributeName=on...`.
//! * [`Context::Attribute`]: a quote followed by attributes, as if the value closed the
//!   attribute it was put in (`" onmouseover=alert(1) x="`, `' style=x:expression(..)`), and an
//!   unquoted `on<event>=` whose value calls something (`x onfocus=alert(1) autofocus`).
//! * [`Context::Script`]: a quote closed and followed by an operator and a call to a script sink
//!   (`';alert(1)//`, `"-eval(..)-"`), a `${...}` template with a sink, or a value that is a
//!   `javascript:` URL.
//!
//! Benign markup (`<b>`, `<a href="/x">`, `<img src="a.png">`) and prose with `<`, `>` and
//! quotes are not flagged.
//!
//! # Cost
//!
//! Each `<` or quote starts a scan of at most [`MAX_TAG`] bytes, so the work is linear in the
//! input whatever its shape.

mod html;

use crate::{Context, Detection};
pub use html::MAX_TAG;

/// Detects XSS in one decoded value. `None` means nothing was found.
///
/// Runs in time linear in `input.len()`, allocates nothing and never panics.
pub fn detect(input: &[u8]) -> Option<Detection> {
    if input.is_empty() || !html::possible(input) {
        return None;
    }
    detect_after_gate(input)
}

/// [`detect`] for a caller that already knows whether `input` holds one of the bytes
/// `<`, `"`, `'`, `` ` ``, `{`, `+` (`specials`), from a byte-class mask computed anyway: the
/// cheap gate then skips its own search for them. The same result as [`detect`] when
/// `specials` is right.
pub fn detect_hinted(input: &[u8], specials: bool) -> Option<Detection> {
    if input.is_empty() || !(specials || html::possible_without_specials(input)) {
        return None;
    }
    detect_after_gate(input)
}

fn detect_after_gate(input: &[u8]) -> Option<Detection> {
    if let Some(rule) = html::scan_tags(input) {
        return Some(Detection::new(rule.as_bytes(), Context::Html));
    }
    if let Some(rule) = html::attribute_breakout(input) {
        return Some(Detection::new(rule.as_bytes(), Context::Attribute));
    }
    if let Some(rule) = html::script_context(input) {
        return Some(Detection::new(rule.as_bytes(), Context::Script));
    }
    None
}

#[cfg(test)]
mod tests;
