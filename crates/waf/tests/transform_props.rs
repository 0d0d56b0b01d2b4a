//! Property tests for transforms: no panic on any bytes, idempotence where it must hold, and
//! the allocation-free `url_decode_repeat` agreeing with repeated `url_decode_uni`.

use palisade_waf::transform::Transform;
use proptest::prelude::*;

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        "[%uU0-9a-fA-F&#;x\\\\/. *!-]{0,48}".prop_map(String::into_bytes),
    ]
}

proptest! {
    #[test]
    fn no_transform_panics_and_unchanged_means_equal(input in bytes()) {
        for t in Transform::ALL {
            let mut out = Vec::new();
            if t.apply(&input, &mut out) {
                prop_assert_ne!(&out, &input, "{} reported a change but returned its input", t.name());
            }
        }
    }

    #[test]
    fn normalising_transforms_are_idempotent(input in bytes()) {
        for t in [
            Transform::Lowercase,
            Transform::RemoveNulls,
            Transform::RemoveWhitespace,
            Transform::CompressWhitespace,
        ] {
            let once = t.apply_to_vec(&input);
            let twice = t.apply_to_vec(&once);
            prop_assert_eq!(&once, &twice, "{} is not idempotent", t.name());
        }
    }

    #[test]
    fn url_decode_repeat_equals_repeated_url_decode_uni(input in bytes()) {
        let mut expect = input.clone();
        for _ in 0..5 {
            let next = Transform::UrlDecodeUni.apply_to_vec(&expect);
            if next == expect {
                break;
            }
            expect = next;
        }
        prop_assert_eq!(Transform::UrlDecodeRepeat.apply_to_vec(&input), expect);
    }
}
