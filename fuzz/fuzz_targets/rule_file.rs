//! See [`palisade_fuzz::checks::rule_file`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| palisade_fuzz::checks::rule_file(data));
