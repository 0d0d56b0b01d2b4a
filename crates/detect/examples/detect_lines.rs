//! Reads values from stdin, one per line, and prints what each detector says about each:
//! `context:fingerprint` or `-`. Lines are lowercased first, as the WAF's transforms would.
//!
//! ```text
//! printf "1' or '1'='1\n<b>hi</b>\n" | cargo run -p palisade-detect --example detect_lines
//! ```

use palisade_detect::{sqli, xss, Detection};
use std::io::BufRead;

fn show(d: Option<Detection>) -> String {
    d.map(|d| format!("{}:{}", d.context.as_str(), d.fingerprint_str()))
        .unwrap_or_else(|| "-".into())
}

fn main() {
    for line in std::io::stdin().lock().split(b'\n') {
        let Ok(mut v) = line else { break };
        v.make_ascii_lowercase();
        println!(
            "{:28} {:18} {}",
            show(sqli::detect(&v)),
            show(xss::detect(&v)),
            String::from_utf8_lossy(&v)
        );
    }
}
