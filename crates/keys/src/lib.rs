//! palisade-keys: see docs/ARCHITECTURE.md
