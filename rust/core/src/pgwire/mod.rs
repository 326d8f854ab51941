//! pgwire: sans-I/O framing of the PostgreSQL frontend/backend protocol 3.0
//! (PostgreSQL docs, chapter "Frontend/Backend Protocol", sections "Message Flow" and
//! "Message Formats").
//!
//! * [`frontend`]: split what a client sends into messages (startup packet without a type
//!   byte, then `type byte + Int32 length` messages), enforcing a size limit *before* the
//!   body has arrived, and decode the few message bodies the relay must inspect
//!   (Query, Parse, Bind, Describe, Close, Execute).
//! * [`backend`]: scan what a server sends without copying it, reporting only what the
//!   relay's state machine needs (ReadyForQuery, CommandComplete, ErrorResponse,
//!   ParameterStatus, BackendKeyData, Authentication, COPY responses) and how many bytes
//!   can be forwarded now, so result rows stream through untouched.
//! * [`build`]: encoders for the messages the proxy itself writes.
//!
//! Every function takes untrusted bytes and returns [`crate::Error`] instead of panicking.

pub mod backend;
pub mod build;
pub mod frontend;

/// `SSLRequest` code (protocol section "SSLRequest").
pub const SSL_REQUEST_CODE: i32 = 80877103;
/// `GSSENCRequest` code.
pub const GSSENC_REQUEST_CODE: i32 = 80877104;
/// `CancelRequest` code.
pub const CANCEL_REQUEST_CODE: i32 = 80877102;
/// Protocol version 3.0 as sent in `StartupMessage` (major 3 << 16 | minor 0).
pub const PROTOCOL_3_0: i32 = 196608;
/// PostgreSQL refuses startup packets longer than this (`MAX_STARTUP_PACKET_LENGTH`).
pub const MAX_STARTUP_PACKET: usize = 10_000;

use crate::{Error, Result};

/// Read a big-endian i32 at `at`, or a framing error if the buffer is too short.
#[inline]
pub(crate) fn be_i32(buf: &[u8], at: usize) -> Result<i32> {
    match buf.get(at..at.saturating_add(4)) {
        Some(b) => Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        None => Err(frame("truncated Int32")),
    }
}

/// Read a big-endian i16 at `at`.
#[inline]
pub(crate) fn be_i16(buf: &[u8], at: usize) -> Result<i16> {
    match buf.get(at..at.saturating_add(2)) {
        Some(b) => Ok(i16::from_be_bytes([b[0], b[1]])),
        None => Err(frame("truncated Int16")),
    }
}

/// A NUL-terminated string starting at `at`: returns (bytes without NUL, offset after NUL).
#[inline]
pub(crate) fn cstr(buf: &[u8], at: usize) -> Result<(&[u8], usize)> {
    let rest = buf.get(at..).ok_or_else(|| frame("string starts past the end of the message"))?;
    match rest.iter().position(|&b| b == 0) {
        Some(n) => Ok((&rest[..n], at + n + 1)),
        None => Err(frame("string is not NUL-terminated")),
    }
}

#[inline]
pub(crate) fn frame(msg: &str) -> Error {
    Error::Frame { message: msg.to_string() }
}
