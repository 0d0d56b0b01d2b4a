//! See [`palisade_fuzz::checks::raw_request`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (rs, p) = palisade_fuzz::engine();
    palisade_fuzz::checks::raw_request(rs, p, data)
});
