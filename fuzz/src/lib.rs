//! Fuzz targets for Palisade: see `scripts/fuzz.sh` and `docs/RELIABILITY.md`.

pub mod checks;

use std::sync::OnceLock;

/// The shipped rules and a paranoia-4 policy, built once per fuzzing process.
pub fn engine() -> &'static (palisade_waf::RuleSet, palisade_waf::Policy) {
    static E: OnceLock<(palisade_waf::RuleSet, palisade_waf::Policy)> = OnceLock::new();
    E.get_or_init(|| {
        checks::engine(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules"))
    })
}
