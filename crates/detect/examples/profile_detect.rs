//! Runs one detector over the lines of a file, N times, in a function of its own
//! (`measured`) for callgrind's `--toggle-collect`:
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='*measured*' \
//!     target/release/examples/profile_detect sqli 10 lines.txt
//! ```
//!
//! Instructions per line are the collected count divided by N and by the number of lines.
//! `gate` runs the SQL detector's gate alone. `tokens` prints every line's SQL token streams and
//! `each` every line's SQL and XSS results (N unused): outputs to compare across builds.

use palisade_detect::{sqli, xss};
use std::hint::black_box;

#[inline(never)]
fn measured(
    detect: fn(&[u8]) -> Option<palisade_detect::Detection>,
    lines: &[&[u8]],
    n: u32,
) -> usize {
    let mut hits = 0;
    for _ in 0..n {
        for l in lines {
            hits += usize::from(detect(black_box(l)).is_some());
        }
    }
    hits
}

/// The SQL detector's gate alone, shaped as a detector: `Some` when the value passes.
fn gate(v: &[u8]) -> Option<palisade_detect::Detection> {
    sqli::possible(v).then_some(palisade_detect::Detection {
        fingerprint: *b"gate\0\0\0\0",
        len: 4,
        context: palisade_detect::Context::NoQuote,
    })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "profile_detect sqli|xss|gate|tokens|each N FILE";
    let which = args.next().expect(usage);
    let n: u32 = args.next().and_then(|a| a.parse().ok()).expect(usage);
    let text = std::fs::read(args.next().expect(usage)).expect("read FILE");
    let lines: Vec<&[u8]> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    if which == "tokens" {
        // Every line's token stream in the three quote contexts (kind, word, class, flags,
        // span): what a change to the tokenizer must leave as it is.
        for l in &lines {
            for q in [None, Some(b'\''), Some(b'"')] {
                let mut tz = sqli::Tokenizer::new(l, q);
                let mut out = String::new();
                while let Some(t) = tz.next_token() {
                    out.push_str(&format!(
                        "{:?}/{:?}/{:?}/{}/{}+{} ",
                        t.kind, t.word, t.class, t.flags, t.start, t.len
                    ));
                }
                println!("{out}");
            }
        }
        return;
    }
    if which == "each" {
        // Every line's SQL gate, SQL and XSS results as they are printed: what a change to the
        // detectors must leave as it is (`diff` two builds' outputs).
        for l in &lines {
            let gate = u8::from(sqli::possible(l));
            println!("{gate} {:?} {:?}", sqli::detect(l), xss::detect(l));
        }
        return;
    }
    let detect = match which.as_str() {
        "sqli" => sqli::detect,
        "gate" => gate,
        "xss" => xss::detect,
        _ => panic!("{usage}"),
    };
    let t = std::time::Instant::now();
    let hits = measured(detect, &lines, n);
    let elapsed = t.elapsed();
    println!(
        "{} lines, {} flagged per pass, {:?} per line, {:.1} us per pass",
        lines.len(),
        hits / n as usize,
        elapsed / (n * lines.len() as u32).max(1),
        elapsed.as_secs_f64() * 1e6 / f64::from(n.max(1))
    );
}
