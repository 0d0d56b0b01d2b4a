//! No panic on any input, and linear time on adversarial shapes.

use palisade_detect::{sqli, xss};
use proptest::prelude::*;
use std::time::{Duration, Instant};

/// Bytes that drive the tokenizers' state machines, so random strings exercise them.
const ALPHABET: &[u8] = b"'\"`<>/=;()-#*!@&|+,. \t\nxonselctunirad019\\:&#{}[]$%";

fn tricky() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(ALPHABET.to_vec()), 0..300)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn sqli_never_panics_on_random_bytes(v in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = sqli::detect(&v);
    }

    #[test]
    fn xss_never_panics_on_random_bytes(v in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = xss::detect(&v);
    }

    #[test]
    fn both_never_panic_on_syntax_heavy_strings(v in tricky()) {
        let _ = sqli::detect(&v);
        let _ = xss::detect(&v);
    }

    #[test]
    fn fingerprints_are_printable(v in tricky()) {
        for d in [sqli::detect(&v), xss::detect(&v)].into_iter().flatten() {
            prop_assert!(usize::from(d.len) <= 8);
            prop_assert!(d.fingerprint_str().bytes().all(|b| b.is_ascii_graphic()));
            prop_assert_eq!(d.fingerprint_str().len(), usize::from(d.len));
        }
    }
}

/// Time for one call of each detector on `input`.
fn time_both(input: &[u8]) -> Duration {
    let t = Instant::now();
    let _ = sqli::detect(input);
    let _ = xss::detect(input);
    t.elapsed()
}

/// Doubling the input of each adversarial shape must not much more than double the time: a
/// quadratic scan would quadruple it. Compared as a ratio, so the test does not depend on the
/// machine's speed.
#[test]
fn adversarial_inputs_take_linear_time() {
    let shapes: &[&[u8]] = &[
        b"<a x='", b"<<<<", b"''''", b"\" onx=", b"(((((", b"1 and ", b"/*", b"<a<a ", b"';((((",
        b"&#x0",
    ];
    for shape in shapes {
        let small: Vec<u8> = shape.iter().copied().cycle().take(25_000).collect();
        let big: Vec<u8> = shape.iter().copied().cycle().take(100_000).collect();
        // Best of three, to shrug off scheduler noise on a shared machine.
        let best = |v: &[u8]| (0..3).map(|_| time_both(v)).min().unwrap_or_default();
        let (ts, tb) = (best(&small), best(&big));
        let ratio = tb.as_secs_f64() / ts.as_secs_f64().max(1e-6);
        assert!(
            ratio < 10.0,
            "{:?}: 4x the input took {ratio:.1}x the time ({ts:?} -> {tb:?})",
            String::from_utf8_lossy(shape)
        );
    }
}
