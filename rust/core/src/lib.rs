//! sdp_core: the byte- and token-level logic of sandbox-db-proxy, free of Python so that
//! `cargo test` covers it directly. Every function here takes untrusted network bytes and
//! must return an error instead of panicking (no `unwrap()` on input).

pub mod dataplane;
pub mod error;

pub use error::{Error, Result};

pub mod mysqlwire;
pub mod pgwire;
pub mod relay;
pub mod sql;
