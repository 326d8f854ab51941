//! pgwire (see docs/ARCHITECTURE.md).
