//! Palisade gateway: see docs/ARCHITECTURE.md.
