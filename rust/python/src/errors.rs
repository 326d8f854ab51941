//! The single place where core errors cross into Python, as typed exceptions.
//! Python side: `sandbox_db_proxy._native.NativeError` and its subclasses.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use sdp_core::Error;

create_exception!(_native, NativeError, PyException, "Base class of every error raised by the native core.");
create_exception!(_native, LexError, NativeError, "SQL text could not be tokenized.");
create_exception!(_native, FrameError, NativeError, "Wire bytes violate the protocol framing.");
create_exception!(_native, TooLargeError, FrameError, "A message exceeds the configured size limit.");
create_exception!(_native, InvalidArgument, NativeError, "The caller passed an invalid argument.");

pub fn to_py(err: Error) -> PyErr {
    let msg = err.to_string();
    match err {
        Error::Lex { .. } => LexError::new_err(msg),
        Error::Frame { .. } => FrameError::new_err(msg),
        Error::TooLarge { .. } => TooLargeError::new_err(msg),
        Error::Invalid { .. } => InvalidArgument::new_err(msg),
    }
}

/// Shorthand used by every binding: `core_call().map_err(to_py)?`.
pub trait IntoPyResult<T> {
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for sdp_core::Result<T> {
    fn py(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("NativeError", py.get_type::<NativeError>())?;
    m.add("LexError", py.get_type::<LexError>())?;
    m.add("FrameError", py.get_type::<FrameError>())?;
    m.add("TooLargeError", py.get_type::<TooLargeError>())?;
    m.add("InvalidArgument", py.get_type::<InvalidArgument>())?;
    Ok(())
}
