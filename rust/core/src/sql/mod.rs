//! sql (see docs/ARCHITECTURE.md).
