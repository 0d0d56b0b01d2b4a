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

/// Each adversarial shape, at 100 KB, must cost about what plain words of the same size cost. A
/// quadratic scan (or a linear one with a per-byte cost in the hundreds) is thousands of times
/// slower; comparing with a baseline measured in the same run keeps the test independent of the
/// machine's speed and load.
#[test]
fn adversarial_inputs_take_linear_time() {
    const SIZE: usize = 100_000;
    let shapes: &[&[u8]] = &[
        b"<a x='",
        b"<<<<",
        b"''''",
        b"\" onx=",
        b"(((((",
        b"1 and ",
        b"/*",
        b"<a<a ",
        b"';((((",
        b"&#x0",
        b"<a href='&#x0",
        b"\" style=",
    ];
    // Best of five, to shrug off scheduler noise on a shared machine.
    let best = |v: &[u8]| (0..5).map(|_| time_both(v)).min().unwrap_or_default();
    let base: Vec<u8> = b"plain words here "
        .iter()
        .copied()
        .cycle()
        .take(SIZE)
        .collect();
    let tb = best(&base).as_secs_f64().max(1e-6);
    for shape in shapes {
        let v: Vec<u8> = shape.iter().copied().cycle().take(SIZE).collect();
        let ts = best(&v).as_secs_f64();
        let ratio = ts / tb;
        println!("{:?}: {ratio:.1}x", String::from_utf8_lossy(shape));
        assert!(
            ratio < 60.0,
            "{:?}: {ratio:.1}x the time of plain words ({ts:.4}s vs {tb:.4}s)",
            String::from_utf8_lossy(shape)
        );
    }
}
