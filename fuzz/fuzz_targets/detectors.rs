//! See [`palisade_fuzz::checks::detectors`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| palisade_fuzz::checks::detectors(data));
