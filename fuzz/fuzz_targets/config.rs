//! Gateway config parsing and validation on arbitrary text: no panic; errors render.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = std::path::Path::new("/nonexistent/palisade-fuzz/palisade.yaml");
    if let Err(e) = palisade::config::parse(path, text) {
        let _ = e.to_string();
    }
});
