//! Bindings for sdp_core's sql module (kept thin: convert, call, convert back).
//! Contract: docs/ARCHITECTURE.md, "Native SQL API".
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use sdp_core::sql::{self, Dialect};

use crate::errors::IntoPyResult;

/// Above this size the GIL is released while the core works (short statements take a few
/// microseconds, less than a GIL round trip).
const RELEASE_GIL_BYTES: usize = 64 * 1024;

fn dialect(name: &str) -> PyResult<Dialect> {
    Dialect::parse(name).py()
}

fn run<T: Send>(py: Python<'_>, sql: &str, f: impl FnOnce() -> T + Send) -> T {
    if sql.len() > RELEASE_GIL_BYTES {
        py.allow_threads(f)
    } else {
        f()
    }
}

/// `(decision, rule, reason, class, verbs, fingerprint)` as returned to Python.
type FastTuple<'py> = (
    u8,
    &'static str,
    String,
    &'static str,
    Bound<'py, PyTuple>,
    Option<String>,
);

/// `(decision, rule, reason, class, verbs, fingerprint)`; decision is DEFER/ALLOW/BLOCK.
/// `strict_quoting=False` only when the relay pins the server's default escape settings.
#[pyfunction]
#[pyo3(signature = (sql, dialect, *, strict_quoting = true))]
fn fast_check<'py>(
    py: Python<'py>,
    sql: &str,
    dialect: &str,
    strict_quoting: bool,
) -> PyResult<FastTuple<'py>> {
    let d = self::dialect(dialect)?;
    let r = run(py, sql, || sql::fast_check_with(sql, d, strict_quoting));
    let verbs = PyTuple::new(py, &r.verbs)?;
    Ok((r.decision, r.rule, r.reason, r.class, verbs, r.fingerprint))
}

/// Text for the deep parser (MySQL executable-comment markers removed, comments → space).
#[pyfunction]
fn expand_sql(py: Python<'_>, sql: &str, dialect: &str) -> PyResult<String> {
    let d = self::dialect(dialect)?;
    run(py, sql, || sql::expand_sql(sql, d)).py()
}

/// Statements split on `;` outside quotes/comments, each as `expand_sql` renders it.
#[pyfunction]
fn split_statements(py: Python<'_>, sql: &str, dialect: &str) -> PyResult<Vec<String>> {
    let d = self::dialect(dialect)?;
    run(py, sql, || sql::split_statements(sql, d)).py()
}

/// Fingerprint of the text (literals → `?`); raises LexError when it cannot be lexed.
#[pyfunction]
fn fingerprint(py: Python<'_>, sql: &str, dialect: &str) -> PyResult<String> {
    let d = self::dialect(dialect)?;
    run(py, sql, || sql::fingerprint(sql, d)).py()
}

/// `[(kind, text, start, end)]` with start/end in characters of the Python str.
#[pyfunction]
fn tokenize(
    py: Python<'_>,
    sql: &str,
    dialect: &str,
) -> PyResult<Vec<(&'static str, String, usize, usize)>> {
    let d = self::dialect(dialect)?;
    let toks = run(py, sql, || sql::tokenize(sql, d)).py()?;
    let mut offs: Vec<usize> = Vec::with_capacity(toks.len() * 2);
    for t in &toks {
        offs.push(t.start);
        offs.push(t.end);
    }
    sql::byte_to_char_offsets(sql, &mut offs);
    let mut out = Vec::with_capacity(toks.len());
    for (t, pair) in toks.iter().zip(offs.chunks_exact(2)) {
        let (s, e) = match pair {
            [s, e] => (*s, *e),
            _ => (0, 0),
        };
        out.push((t.kind.name(), t.text(sql).to_string(), s, e));
    }
    Ok(out)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("DEFER", sql::DEFER)?;
    m.add("ALLOW", sql::ALLOW)?;
    m.add("BLOCK", sql::BLOCK)?;
    m.add_function(wrap_pyfunction!(fast_check, m)?)?;
    m.add_function(wrap_pyfunction!(expand_sql, m)?)?;
    m.add_function(wrap_pyfunction!(split_statements, m)?)?;
    m.add_function(wrap_pyfunction!(fingerprint, m)?)?;
    m.add_function(wrap_pyfunction!(tokenize, m)?)?;
    Ok(())
}
