//! Bindings for sdp_core's mysqlwire module (kept thin: convert, call, convert back).
//! One call per received chunk: `MysqlPacketDecoder.feed` returns every complete packet of
//! the chunk, `MysqlResponseScanner.feed` walks a server chunk without copying rows.
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::errors::IntoPyResult;
use sdp_core::mysqlwire::{consts, framing, packets, scanner};

/// Splits a byte stream into logical packets: feed(chunk) -> [(seq, payload, next_seq), ...].
#[pyclass(module = "sandbox_db_proxy._native")]
pub struct MysqlPacketDecoder {
    inner: framing::PacketDecoder,
}

#[pymethods]
impl MysqlPacketDecoder {
    #[new]
    #[pyo3(signature = (max_payload = 64 * 1024 * 1024))]
    fn new(max_payload: usize) -> Self {
        MysqlPacketDecoder { inner: framing::PacketDecoder::new(max_payload) }
    }

    fn feed<'py>(&mut self, py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        if let framing::Decoded::Packets(ps) = self.inner.feed(data).py()? {
            for p in ps {
                out.append((p.seq, PyBytes::new(py, &p.payload), p.next_seq))?;
            }
        }
        Ok(out)
    }

    /// Raw bytes buffered after the last complete packet (then the decoder is empty).
    fn take_raw<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let raw = self.inner.take_raw().py()?;
        Ok(PyBytes::new(py, &raw))
    }

    fn set_max_payload(&mut self, max_payload: usize) {
        self.inner.set_max_payload(max_payload);
    }

    #[getter]
    fn buffered(&self) -> usize {
        self.inner.buffered()
    }

    #[getter]
    fn idle(&self) -> bool {
        self.inner.is_idle()
    }
}

/// Walks server responses. expect(kind, seq) after forwarding a command; feed(chunk) ->
///   None                      response continues, forward the whole chunk
///   (0, hold_from, None)      forward chunk[:hold_from] only, hold the rest (maybe LOCAL INFILE)
///   (1, end, summary)         response complete at chunk[end]
///   (2, start, (seq, name))   LOCAL INFILE request starting at chunk[start]
/// summary = (kind, affected_rows, last_insert_id, status, warnings, rows, result_sets,
///            err_code, sqlstate, err_message, stmt_id, num_params, num_columns)
#[pyclass(module = "sandbox_db_proxy._native")]
pub struct MysqlResponseScanner {
    inner: scanner::ResponseScanner,
}

fn summary_tuple<'py>(py: Python<'py>, s: scanner::Summary) -> PyResult<Bound<'py, PyAny>> {
    let (code, state, msg) = match s.err {
        Some(e) => (e.code, e.sqlstate, e.message),
        None => (0, String::new(), Vec::new()),
    };
    let items: Vec<Bound<'py, PyAny>> = vec![
        (s.kind as u8).into_pyobject(py)?.into_any(),
        s.affected_rows.into_pyobject(py)?.into_any(),
        s.last_insert_id.into_pyobject(py)?.into_any(),
        s.status.into_pyobject(py)?.into_any(),
        s.warnings.into_pyobject(py)?.into_any(),
        s.rows.into_pyobject(py)?.into_any(),
        s.result_sets.into_pyobject(py)?.into_any(),
        code.into_pyobject(py)?.into_any(),
        state.into_pyobject(py)?.into_any(),
        PyBytes::new(py, &msg).into_any(),
        s.stmt_id.into_pyobject(py)?.into_any(),
        s.num_params.into_pyobject(py)?.into_any(),
        s.num_columns.into_pyobject(py)?.into_any(),
    ];
    Ok(PyTuple::new(py, items)?.into_any())
}

#[pymethods]
impl MysqlResponseScanner {
    #[new]
    #[pyo3(signature = (deprecate_eof = true))]
    fn new(deprecate_eof: bool) -> Self {
        MysqlResponseScanner { inner: scanner::ResponseScanner::new(deprecate_eof) }
    }

    fn set_deprecate_eof(&mut self, on: bool) {
        self.inner.set_deprecate_eof(on);
    }

    /// kind: 0 query, 1 prepare, 2 execute, 3 fetch, 4 field list, 5 simple, 6 statistics
    fn expect(&mut self, kind: u8, seq: u8) -> PyResult<()> {
        let e = scanner::Expect::from_code(kind).py()?;
        self.inner.expect(e, seq).py()
    }

    fn reset(&mut self) {
        self.inner.reset();
    }

    #[getter]
    fn idle(&self) -> bool {
        self.inner.is_idle()
    }

    fn feed<'py>(&mut self, py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyAny>> {
        match self.inner.feed(data).py()? {
            scanner::ScanEvent::NeedMore { hold_from: None } => Ok(py.None().into_bound(py)),
            scanner::ScanEvent::NeedMore { hold_from: Some(h) } => Ok((0u8, h, py.None()).into_pyobject(py)?.into_any()),
            scanner::ScanEvent::Done { end, summary } => {
                let s = summary_tuple(py, summary)?;
                Ok((1u8, end, s).into_pyobject(py)?.into_any())
            }
            scanner::ScanEvent::Infile { start, seq, filename } => {
                Ok((2u8, start, (seq, PyBytes::new(py, &filename))).into_pyobject(py)?.into_any())
            }
        }
    }
}

#[pyfunction]
fn mysql_frame<'py>(py: Python<'py>, payload: &[u8], seq: u8) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &framing::frame(payload, seq))
}

#[pyfunction]
fn mysql_err<'py>(py: Python<'py>, seq: u8, code: u16, sqlstate: &str, message: &str) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &packets::err_packet(seq, code, sqlstate, message.as_bytes()))
}

#[pyfunction]
#[pyo3(signature = (seq, affected_rows = 0, last_insert_id = 0, status = 2, warnings = 0, info = b"".as_slice(), eof_header = false))]
#[allow(clippy::too_many_arguments)]
fn mysql_ok<'py>(py: Python<'py>, seq: u8, affected_rows: u64, last_insert_id: u64, status: u16, warnings: u16, info: &[u8], eof_header: bool) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &packets::ok_packet(seq, affected_rows, last_insert_id, status, warnings, info, eof_header))
}

#[pyfunction]
fn mysql_eof<'py>(py: Python<'py>, seq: u8, warnings: u16, status: u16) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &packets::eof_packet(seq, warnings, status))
}

#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn mysql_handshake<'py>(py: Python<'py>, server_version: &[u8], connection_id: u32, scramble: &[u8], capabilities: u32, charset: u8, status: u16, auth_plugin: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let b = packets::handshake_packet(server_version, connection_id, scramble, capabilities, charset, status, auth_plugin).py()?;
    Ok(PyBytes::new(py, &b))
}

#[pyfunction]
fn mysql_parse_handshake<'py>(py: Python<'py>, payload: &[u8]) -> PyResult<Bound<'py, PyDict>> {
    let hs = packets::parse_handshake(payload).py()?;
    let d = PyDict::new(py);
    d.set_item("protocol_version", hs.protocol_version)?;
    d.set_item("server_version", PyBytes::new(py, &hs.server_version))?;
    d.set_item("connection_id", hs.connection_id)?;
    d.set_item("scramble", PyBytes::new(py, &hs.scramble))?;
    d.set_item("capabilities", hs.capabilities)?;
    d.set_item("charset", hs.charset)?;
    d.set_item("status", hs.status)?;
    d.set_item("auth_plugin", PyBytes::new(py, &hs.auth_plugin))?;
    d.set_item("mariadb_caps", hs.mariadb_caps)?;
    Ok(d)
}

#[pyfunction]
fn mysql_parse_handshake_response<'py>(py: Python<'py>, payload: &[u8]) -> PyResult<Bound<'py, PyDict>> {
    let hs = packets::parse_handshake_response(payload).py()?;
    let d = PyDict::new(py);
    d.set_item("capabilities", hs.capabilities)?;
    d.set_item("max_packet", hs.max_packet)?;
    d.set_item("charset", hs.charset)?;
    d.set_item("ssl_request", hs.ssl_request)?;
    d.set_item("username", PyBytes::new(py, &hs.username))?;
    d.set_item("auth_response", PyBytes::new(py, &hs.auth_response))?;
    d.set_item("database", hs.database.as_deref().map(|b| PyBytes::new(py, b)))?;
    d.set_item("auth_plugin", hs.auth_plugin.as_deref().map(|b| PyBytes::new(py, b)))?;
    let attrs = PyList::empty(py);
    for (k, v) in &hs.attributes {
        attrs.append((PyBytes::new(py, k), PyBytes::new(py, v)))?;
    }
    d.set_item("attributes", attrs)?;
    Ok(d)
}

#[pyfunction]
#[pyo3(signature = (seq, capabilities, max_packet, charset, username, auth_response, database, auth_plugin, attributes = Vec::new()))]
#[allow(clippy::too_many_arguments)]
fn mysql_handshake_response<'py>(py: Python<'py>, seq: u8, capabilities: u32, max_packet: u32, charset: u8, username: &[u8], auth_response: &[u8], database: Option<Vec<u8>>, auth_plugin: &[u8], attributes: Vec<(Vec<u8>, Vec<u8>)>) -> PyResult<Bound<'py, PyBytes>> {
    let b = packets::handshake_response_packet(seq, capabilities, max_packet, charset, username, auth_response, database.as_deref(), auth_plugin, &attributes).py()?;
    Ok(PyBytes::new(py, &b))
}

#[pyfunction]
fn mysql_ssl_request<'py>(py: Python<'py>, seq: u8, capabilities: u32, max_packet: u32, charset: u8) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &packets::ssl_request_packet(seq, capabilities, max_packet, charset))
}

#[pyfunction]
fn mysql_auth_switch<'py>(py: Python<'py>, seq: u8, plugin: &[u8], data: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(py, &packets::auth_switch_packet(seq, plugin, data).py()?))
}

#[pyfunction]
fn mysql_parse_auth_switch<'py>(py: Python<'py>, payload: &[u8]) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    let (p, d) = packets::parse_auth_switch(payload).py()?;
    Ok((PyBytes::new(py, &p), PyBytes::new(py, &d)))
}

/// (affected_rows, last_insert_id, status, warnings)
#[pyfunction]
fn mysql_parse_ok(payload: &[u8]) -> PyResult<(u64, u64, u16, u16)> {
    let o = packets::parse_ok(payload).py()?;
    Ok((o.affected_rows, o.last_insert_id, o.status, o.warnings))
}

/// (code, sqlstate, message bytes)
#[pyfunction]
fn mysql_parse_err<'py>(py: Python<'py>, payload: &[u8]) -> PyResult<(u16, String, Bound<'py, PyBytes>)> {
    let e = packets::parse_err(payload).py()?;
    Ok((e.code, e.sqlstate, PyBytes::new(py, &e.message)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<MysqlPacketDecoder>()?;
    m.add_class::<MysqlResponseScanner>()?;
    m.add_function(wrap_pyfunction!(mysql_frame, m)?)?;
    m.add_function(wrap_pyfunction!(mysql_err, m)?)?;
    m.add_function(wrap_pyfunction!(mysql_ok, m)?)?;
    m.add_function(wrap_pyfunction!(mysql_eof, m)?)?;
    m.add_function(wrap_pyfunction!(mysql_handshake, m)?)?;
    m.add_function(wrap_pyfunction!(mysql_parse_handshake, m)?)?;
    m.add_function(wrap_pyfunction!(mysql_parse_handshake_response, m)?)?;
    m.add_function(wrap_pyfunction!(mysql_handshake_response, m)?)?;
    m.add_function(wrap_pyfunction!(mysql_ssl_request, m)?)?;
    m.add_function(wrap_pyfunction!(mysql_auth_switch, m)?)?;
    m.add_function(wrap_pyfunction!(mysql_parse_auth_switch, m)?)?;
    m.add_function(wrap_pyfunction!(mysql_parse_ok, m)?)?;
    m.add_function(wrap_pyfunction!(mysql_parse_err, m)?)?;
    m.add("MYSQL_MAX_FRAME_PAYLOAD", framing::MAX_FRAME_PAYLOAD)?;
    m.add("MYSQL_CLIENT_LOCAL_FILES", consts::CLIENT_LOCAL_FILES)?;
    Ok(())
}
