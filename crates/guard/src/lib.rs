//! palisade-guard: see docs/ARCHITECTURE.md
