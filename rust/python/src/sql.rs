//! Bindings for sdp_core's sql module (kept thin: convert, call, convert back).
use pyo3::prelude::*;

pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
