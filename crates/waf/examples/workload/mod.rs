//! The benchmark workload, shared by `benches/engine.rs` (criterion) and `examples/profile.rs`
//! (callgrind): the rule set, a 1 KB request with 10 arguments and cookies, and JSON bodies.

use std::path::{Path, PathBuf};

use http::{HeaderMap, HeaderName, HeaderValue};
use palisade_waf::RuleSet;

/// Rule files of `dir`, sorted by name.
pub fn sources(dir: &Path) -> Vec<(String, String)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    paths.retain(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"));
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| Some((p.display().to_string(), std::fs::read_to_string(&p).ok()?)))
        .collect()
}

/// The shipped rules when they load, else the test fixtures, with the name of the set.
pub fn rule_sources() -> (String, Vec<(String, String)>) {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shipped = manifest.join("../../rules");
    let src = sources(&shipped);
    if !src.is_empty() {
        match RuleSet::from_sources(&src) {
            Ok(rs) if !rs.is_empty() => return ("shipped rules/".into(), src),
            Ok(_) => eprintln!("shipped rules/ has no rules; using fixtures"),
            Err(e) => eprintln!(
                "shipped rules/ do not load ({} errors); using fixtures",
                e.len()
            ),
        }
    }
    (
        "tests/fixtures/rules".into(),
        sources(&manifest.join("tests/fixtures/rules")),
    )
}

/// The headers of the 1 KB request (cookies included).
pub fn headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in [
        ("host", "shop.example.com"),
        ("user-agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"),
        ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"),
        ("accept-language", "en-GB,en;q=0.9,fr;q=0.8"),
        ("accept-encoding", "gzip, deflate, br"),
        ("referer", "https://shop.example.com/catalog/shoes?color=black&size=42"),
        ("cookie", "session=3f9a1c0e7b2d4a6f8e1c3b5d7f9a2c4e; cart=items%3A3%2Ctotal%3A129.90; theme=dark; consent=analytics%3Dno; last_seen=2026-11-24T21%3A04%3A11Z"),
        ("x-request-id", "0f8e7d6c-5b4a-3928-1706-f5e4d3c2b1a0"),
    ] {
        h.append(HeaderName::from_static(n), HeaderValue::from_static(v));
    }
    h
}

/// The query string of the 1 KB request (10 arguments).
pub const QUERY: &[u8] = b"q=running+shoes+for+men%27s+trail&category=sports&brand=Salomon&min_price=50&max_price=180&sort=price_asc&page=2&per_page=48&color=black&ref=homepage_banner";

/// A JSON body of about `target` bytes: orders with prose notes, names (O'Brien and friends),
/// e-mail addresses, streets and numbers. Keys repeat from order to order as in any array of
/// objects; the values vary (names and cities from small lists, notes, e-mails, streets and SKUs
/// unique per order), so nothing here rewards caching values that a real body would not repeat.
pub fn json_body(target: usize) -> Vec<u8> {
    json_body_blanking(target, &[])
}

/// [`json_body`] with the string values of the fields named in `blank` (`name`, `email`,
/// `street`, `city`, `note`, `sku`; `all` for every one) replaced by as many `a`s as they have
/// bytes: the same document shape and length, with those values made trivially clean, to see
/// what each field costs (`PROFILE_BLANK` in `examples/profile.rs`).
pub fn json_body_blanking(target: usize, blank: &[&str]) -> Vec<u8> {
    let blanked = |field: &str, v: String| -> String {
        if blank.iter().any(|&b| b == field || b == "all") {
            "a".repeat(v.len())
        } else {
            v
        }
    };
    const FIRST: [&str; 8] = [
        "Seán",
        "Zoë",
        "Marie-Claire",
        "José",
        "Ngozi",
        "Björn",
        "Aoife",
        "Priya",
    ];
    const LAST: [&str; 8] = [
        "O'Brien",
        "D'Angelo",
        "Smith-Jones",
        "Núñez",
        "Okafor",
        "Åberg",
        "McCarthy",
        "Iyer",
    ];
    const CITY: [&str; 6] = ["Dublin", "Lyon", "São Paulo", "Lagos", "Malmö", "Bengaluru"];
    const NOTE: [&str; 6] = [
        "Please select the blue one; leave it at the door if nobody answers. Thanks!",
        "Gift wrap, please -- it's for my mother's 70th birthday (she likes \\\"surprises\\\").",
        "Call before delivery: the bell doesn't work & the dog is loud, but friendly :)",
        "Order #{i} replaces the one from last week, which was sent to the wrong address.",
        "If size 42 is out of stock, 43 is OK; otherwise cancel and refund to the card.",
        "Deliver to reception (2nd floor), ask for the office manager or use the side door.",
    ];
    let mut s = String::from("{\"orders\":[");
    let mut i = 0usize;
    while s.len() < target - 400 {
        if i > 0 {
            s.push(',');
        }
        let (first, last) = (FIRST[i % 8], LAST[(i / 8 + i) % 8]);
        let note = NOTE[i % 6].replace("{i}", &i.to_string());
        s.push_str(&format!(
            "{{\"id\":{i},\"customer\":{{\"name\":\"{}\",\"email\":\"{}\",\"address\":{{\"street\":\"{}\",\"city\":\"{}\"}}}},\"note\":\"{}\",\"items\":[{{\"sku\":\"{}\",\"qty\":2,\"price\":19.99}},{{\"sku\":\"{}\",\"qty\":1,\"price\":5.5}}],\"gift\":{}}}",
            blanked("name", format!("{first} {last}")),
            blanked(
                "email",
                format!(
                    "{}.{}{i}@example.org",
                    first.to_lowercase(),
                    last.to_lowercase().replace('\'', "")
                )
            ),
            blanked("street", format!("{} Main Street", i * 7 + 1)),
            blanked("city", CITY[i % 6].to_string()),
            blanked("note", format!("{note} (ref {i})")),
            blanked("sku", format!("SKU-{i}-A")),
            blanked("sku", format!("SKU-{i}-B")),
            i.is_multiple_of(5)
        ));
        i += 1;
    }
    s.push_str("],\"meta\":{\"source\":\"web\",\"version\":\"2.1\"}}");
    s.into_bytes()
}
