//! `sandbox_db_proxy._native`: thin pyo3 bindings over `sdp_core`. Each submodule converts
//! arguments, calls the core, and converts results; errors cross in `errors.rs` only.
use pyo3::prelude::*;

mod dataplane;
mod errors;
mod mysqlwire;
mod pgwire;
mod sql;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    sql::register(m)?;
    pgwire::register(m)?;
    mysqlwire::register(m)?;
    dataplane::register(m)?;
    Ok(())
}
