//! palisade-waf: see docs/ARCHITECTURE.md
