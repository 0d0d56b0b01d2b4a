//! Loads a rule directory, runs its embedded tests and prints the report:
//! `cargo run -p palisade-waf --example check_rules -- rules/`.

use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from("rules"), PathBuf::from);
    let t = Instant::now();
    match palisade_waf::RuleSet::load_dir(&dir) {
        Ok(rs) => {
            println!(
                "{} rules, {} transform chains, compiled in {:?}",
                rs.len(),
                rs.chain_count(),
                t.elapsed()
            );
            println!("{}", rs.run_embedded_tests());
        }
        Err(e) => {
            println!("{e}");
            std::process::exit(1);
        }
    }
}
