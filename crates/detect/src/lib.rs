//! palisade-detect: tokenizer-based SQLi and XSS detectors. See docs/ARCHITECTURE.md.
