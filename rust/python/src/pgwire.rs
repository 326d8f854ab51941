//! Bindings for sdp_core's pgwire module (kept thin: convert, call, convert back).
//!
//! One call per received chunk, never one per message: `pg_split_frontend` returns every
//! complete client message of a chunk, `pg_scan_backend` the few backend messages the relay
//! inspects (rows are never turned into Python objects).
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use sdp_core::pgwire::{backend, build, frontend};

use crate::errors::IntoPyResult;

type Obj = Py<PyAny>;

fn tag_str(tag: u8) -> String {
    (tag as char).to_string()
}

/// Split complete typed client messages: `(consumed, msgs, bad, need)`.
/// `msgs`: `(tag, start, end, a, b)` with per-tag fields
/// Q: (sql|None, None); P: (name|None, sql|None); B: (portal, statement);
/// D/C: (kind 'S'|'P', name); E: (portal, max_rows); others: (None, None).
/// `bad`: the bytes at `consumed` are invalid; call again on `buf[consumed:]` to raise.
#[pyfunction]
fn pg_split_frontend<'py>(
    py: Python<'py>,
    buf: &[u8],
    max_message: usize,
) -> PyResult<(usize, Bound<'py, PyList>, bool, usize)> {
    let split = frontend::split(buf, max_message).py()?;
    let mut consumed = split.consumed;
    let mut bad = split.bad;
    let mut need = split.need;
    let mut items: Vec<Bound<'py, PyTuple>> = Vec::with_capacity(split.frames.len());
    for f in &split.frames {
        let msg = match frontend::decode(buf, f) {
            Ok(m) => m,
            Err(e) => {
                if items.is_empty() {
                    return Err(e).py();
                }
                consumed = f.start;
                bad = true;
                need = 0;
                break;
            }
        };
        let t = tag_str(f.tag);
        let tuple = match msg {
            frontend::FrontendMsg::Query { sql } => (t, f.start, f.end, sql, None::<&str>).into_pyobject(py)?,
            frontend::FrontendMsg::Parse { name, sql, .. } => (t, f.start, f.end, name, sql).into_pyobject(py)?,
            frontend::FrontendMsg::Bind { portal, statement } => {
                (t, f.start, f.end, portal, statement).into_pyobject(py)?
            }
            frontend::FrontendMsg::Describe { kind, name } | frontend::FrontendMsg::Close { kind, name } => {
                (t, f.start, f.end, Some(tag_str(kind)), name).into_pyobject(py)?
            }
            frontend::FrontendMsg::Execute { portal, max_rows } => {
                let a: Obj = portal.into_pyobject(py)?.into_any().unbind();
                let b: Obj = max_rows.into_pyobject(py)?.into_any().unbind();
                (t, f.start, f.end, a, b).into_pyobject(py)?
            }
            frontend::FrontendMsg::Other => (t, f.start, f.end, None::<&str>, None::<&str>).into_pyobject(py)?,
        };
        items.push(tuple);
    }
    Ok((consumed, PyList::new(py, items)?, bad, need))
}

/// Parse one startup-phase packet at the start of `buf`: `None` (need more bytes) or
/// `(size, kind, a, b)`: kind 'ssl' | 'gss' | 'cancel' (a=pid, b=key bytes) |
/// 'startup' (a=(major, minor), b=[(name, value), ...]).
#[pyfunction]
fn pg_parse_startup<'py>(py: Python<'py>, buf: &[u8]) -> PyResult<Option<Bound<'py, PyTuple>>> {
    let Some((pkt, size)) = frontend::parse_startup(buf).py()? else { return Ok(None) };
    let none = || py.None();
    let t = match pkt {
        frontend::StartupPacket::Ssl => (size, "ssl", none(), none()).into_pyobject(py)?,
        frontend::StartupPacket::GssEnc => (size, "gss", none(), none()).into_pyobject(py)?,
        frontend::StartupPacket::Cancel { pid, key } => {
            let a: Obj = pid.into_pyobject(py)?.into_any().unbind();
            let b: Obj = PyBytes::new(py, &key).into_any().unbind();
            (size, "cancel", a, b).into_pyobject(py)?
        }
        frontend::StartupPacket::Startup { major, minor, params } => {
            let a: Obj = (major, minor).into_pyobject(py)?.into_any().unbind();
            let b: Obj = params.into_pyobject(py)?.into_any().unbind();
            (size, "startup", a, b).into_pyobject(py)?
        }
    };
    Ok(Some(t))
}

/// Scan backend bytes: `(forward, skip, need, events)`. Send `buf[:forward]` on, keep the
/// rest, pass `skip` to the next call, and don't call again before `need` bytes are pending.
/// `events`: `(tag, start, end, a, b, c)`: Z: (status,); C: (command tag, rows|None);
/// E: (severity, sqlstate, message); S: (name, value); K: (pid, key bytes);
/// R: (code, data bytes); G/H/W/I/s/v: ().
#[pyfunction]
fn pg_scan_backend<'py>(
    py: Python<'py>,
    buf: &[u8],
    skip: usize,
    max_inspected: usize,
) -> PyResult<(usize, usize, usize, Bound<'py, PyList>)> {
    let scan = backend::scan(buf, skip, max_inspected).py()?;
    let mut items: Vec<Bound<'py, PyTuple>> = Vec::with_capacity(scan.events.len());
    for ev in &scan.events {
        let t = tag_str(ev.tag);
        let (s, e) = (ev.start, ev.end);
        let n = || py.None();
        let tuple = match &ev.event {
            backend::Event::Ready { status } => (t, s, e, tag_str(*status), n(), n()).into_pyobject(py)?,
            backend::Event::Complete { tag, rows } => {
                let a: Obj = tag.as_ref().into_pyobject(py)?.into_any().unbind();
                let b: Obj = rows.into_pyobject(py)?.into_any().unbind();
                (t, s, e, a, b, n()).into_pyobject(py)?
            }
            backend::Event::Error { severity, code, message } => {
                (t, s, e, severity.as_ref(), code.as_ref(), message.as_ref()).into_pyobject(py)?
            }
            backend::Event::Param { name, value } => {
                (t, s, e, name.as_ref(), value.as_ref(), n()).into_pyobject(py)?
            }
            backend::Event::KeyData { pid, key } => {
                let a: Obj = pid.into_pyobject(py)?.into_any().unbind();
                let b: Obj = PyBytes::new(py, key).into_any().unbind();
                (t, s, e, a, b, n()).into_pyobject(py)?
            }
            backend::Event::Auth { code, data } => {
                let a: Obj = code.into_pyobject(py)?.into_any().unbind();
                let b: Obj = PyBytes::new(py, data).into_any().unbind();
                (t, s, e, a, b, n()).into_pyobject(py)?
            }
            _ => (t, s, e, n(), n(), n()).into_pyobject(py)?,
        };
        items.push(tuple);
    }
    Ok((scan.forward, scan.skip, scan.need, PyList::new(py, items)?))
}

/// ErrorResponse (or NoticeResponse with tag 'N') from `[(field code char, value), ...]`.
#[pyfunction]
#[pyo3(signature = (fields, tag = 'E'))]
fn pg_error_response<'py>(py: Python<'py>, fields: Vec<(char, String)>, tag: char) -> Bound<'py, PyBytes> {
    let f: Vec<(u8, &str)> = fields.iter().filter(|(c, _)| c.is_ascii()).map(|(c, v)| (*c as u8, v.as_str())).collect();
    let t = if tag.is_ascii() { tag as u8 } else { b'E' };
    PyBytes::new(py, &build::error_fields(t, &f))
}

/// StartupMessage (protocol 3.0) with the given parameters.
#[pyfunction]
fn pg_startup_message<'py>(py: Python<'py>, params: Vec<(String, String)>) -> Bound<'py, PyBytes> {
    let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    PyBytes::new(py, &build::startup_message(&p))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(pg_split_frontend, m)?)?;
    m.add_function(wrap_pyfunction!(pg_parse_startup, m)?)?;
    m.add_function(wrap_pyfunction!(pg_scan_backend, m)?)?;
    m.add_function(wrap_pyfunction!(pg_error_response, m)?)?;
    m.add_function(wrap_pyfunction!(pg_startup_message, m)?)?;
    Ok(())
}
