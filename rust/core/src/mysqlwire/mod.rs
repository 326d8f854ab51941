//! mysqlwire: sans-I/O framing for the MySQL / MariaDB client/server protocol v10.
//!
//! Everything here takes untrusted network bytes and returns `crate::Error` instead of
//! panicking. Parts:
//! - [`consts`]: capability flags, status flags, command bytes.
//! - [`codec`]: a bounds-checked reader (fixed ints, length-encoded ints and strings).
//! - [`framing`]: packet framing (3-byte length + sequence id), 16 MB multi-packet
//!   reassembly, size limit; the [`framing::PacketDecoder`] state machine.
//! - [`scanner`]: [`scanner::ResponseScanner`] walks server responses (result sets, prepare
//!   answers, ...) without copying rows and reports only what the relay needs.
//! - [`packets`]: builders and parsers for OK / ERR / EOF / HandshakeV10 /
//!   HandshakeResponse41 / AuthSwitchRequest packets.

pub mod codec;
pub mod consts;
pub mod framing;
pub mod packets;
pub mod scanner;

pub use framing::{frame, Decoded, Packet, PacketDecoder, MAX_FRAME_PAYLOAD};
pub use scanner::{Expect, ResponseScanner, ScanEvent, Summary};
