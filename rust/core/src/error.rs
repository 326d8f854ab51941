//! The one error type of the core. Bindings map each variant to one typed Python exception
//! in `rust/python/src/errors.rs` (the single crossing point).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// SQL text could not be tokenized (e.g. unterminated quote or comment).
    Lex { offset: usize, message: String },
    /// Wire bytes violate the protocol framing (bad length, unknown tag in a state, ...).
    Frame { message: String },
    /// A message exceeds a configured size limit.
    TooLarge { size: usize, limit: usize },
    /// An argument from the caller (not from the network) is invalid, e.g. unknown dialect.
    Invalid { message: String },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Lex { offset, message } => write!(f, "lex error at byte {offset}: {message}"),
            Error::Frame { message } => write!(f, "protocol framing error: {message}"),
            Error::TooLarge { size, limit } => {
                write!(f, "message of {size} bytes exceeds the limit of {limit} bytes")
            }
            Error::Invalid { message } => write!(f, "invalid argument: {message}"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
