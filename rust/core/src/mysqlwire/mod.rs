//! mysqlwire (see docs/ARCHITECTURE.md).
