//! palisade-analytics: see docs/ARCHITECTURE.md
