//! Bindings for the native relay (sdp_core::dataplane + relay): `DataPlane`, `VerdictCache`,
//! `BackendStats`. Kept thin: convert arguments, call the core, convert results. The I/O
//! thread never takes the GIL; it wakes the Python event loop by writing one byte to a
//! socket (`notify_fd`) when events are waiting (docs/ARCHITECTURE.md, "Native relay").
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use sdp_core::dataplane::{Adopt, BackendStats, DataPlane as CoreDataPlane, DpEvent};
use sdp_core::relay::mysql::{MyRelay, MyRelayConfig};
use sdp_core::relay::pg::{PgRelay, PgRelayConfig};
use sdp_core::relay::{CacheMode, Lookup, Outcome, Record, Relay, Termination, Verdict, VerdictCache};
use sdp_core::sql::Dialect;

use crate::errors::IntoPyResult;


/// Verdict cache of one backend's engine (sdp_core::relay::cache).
#[pyclass(name = "VerdictCache", module = "sandbox_db_proxy._native", frozen)]
pub struct PyVerdictCache {
    inner: Arc<VerdictCache>,
}

#[pymethods]
impl PyVerdictCache {
    #[new]
    fn new(dialect: &str, capacity: usize) -> PyResult<Self> {
        let d = Dialect::parse(dialect).py()?;
        Ok(PyVerdictCache { inner: Arc::new(VerdictCache::new(d, capacity)) })
    }
    fn clear(&self) {
        self.inner.clear();
    }
    fn set_refuse(&self, on: bool) {
        self.inner.set_refuse(on);
    }
    fn generation(&self) -> u64 {
        self.inner.generation()
    }
    /// True on a hit (tests and benchmarks).
    fn contains(&self, sql: &str) -> bool {
        matches!(self.inner.lookup(sql), Lookup::Hit(_))
    }
    fn __len__(&self) -> usize {
        let (a, b) = self.inner.len();
        a + b
    }
}

/// Per-backend metric accumulators filled by the I/O threads.
#[pyclass(name = "BackendStats", module = "sandbox_db_proxy._native", frozen)]
pub struct PyBackendStats {
    inner: Arc<BackendStats>,
}

#[pymethods]
impl PyBackendStats {
    #[new]
    fn new() -> Self {
        PyBackendStats { inner: Arc::new(BackendStats::new()) }
    }
    /// Counts since the last call: (allowed_by_class, query_buckets, query_sum, cache_hits,
    /// classify_buckets, classify_sum); bucket counts are per bucket, not cumulative.
    #[allow(clippy::type_complexity)]
    fn take(&self) -> (Vec<(String, u64)>, Vec<u64>, f64, u64, Vec<u64>, f64) {
        let d = self.inner.take();
        (d.allowed_by_class, d.query_buckets, d.query_sum, d.cache_hits, d.classify_buckets, d.classify_sum)
    }
}

#[pyclass(name = "DataPlane", module = "sandbox_db_proxy._native", frozen)]
pub struct PyDataPlane {
    core: CoreDataPlane,
    reader: UnixStream,
}

fn owned(fd: i32) -> PyResult<OwnedFd> {
    if fd < 0 {
        return Err(PyOSError::new_err(format!("invalid file descriptor {fd}")));
    }
    // SAFETY: the caller (the Python layer) passes a dup()ed descriptor whose ownership is
    // transferred to the data plane; nothing on the Python side uses or closes it again.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn record_to_py<'py>(py: Python<'py>, r: &Record) -> PyResult<Bound<'py, PyTuple>> {
    Ok(match r {
        Record::Done { sql, verdict, message, rows, seconds, outcome } => {
            let err: Option<&str> = match outcome {
                Outcome::Ok => None,
                Outcome::Error(e) => Some(e.as_str()),
            };
            (
                "done",
                &**sql,
                verdict.allowed,
                verdict.rule.as_str(),
                verdict.klass.as_str(),
                PyTuple::new(py, &verdict.verbs)?,
                *message,
                *rows,
                *seconds,
                err,
            )
                .into_pyobject(py)?
        }
        Record::Blocked { sql, rule, reason, klass, message, extra } => {
            let d = PyDict::new(py);
            for (k, v) in extra {
                d.set_item(*k, v)?;
            }
            let sql: Option<&str> = sql.as_deref();
            ("blocked", sql, rule.as_str(), reason.as_str(), klass.as_str(), *message, d).into_pyobject(py)?
        }
        Record::Event { event, fields } => {
            let d = PyDict::new(py);
            for (k, v) in fields {
                d.set_item(*k, v)?;
            }
            ("event", *event, d).into_pyobject(py)?
        }
        Record::Metric(name) => PyTuple::new(py, ["metric", name])?,
        Record::Database(db) => PyTuple::new(py, ["database", db.as_str()])?,
    })
}

#[pymethods]
impl PyDataPlane {
    #[new]
    #[pyo3(signature = (high_water = 262_144, threads = 1))]
    fn new(high_water: usize, threads: usize) -> PyResult<Self> {
        let (reader, writer) = UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        let notify = Box::new(move || {
            // One byte wakes the loop; a full socket means a wake-up is pending already.
            let _ = (&writer).write(b"!");
        });
        let core = CoreDataPlane::start(notify, high_water, threads)?;
        Ok(PyDataPlane { core, reader })
    }

    /// Readable when events are waiting: read (and discard) its bytes, then call `events()`.
    fn notify_fd(&self) -> i32 {
        self.reader.as_raw_fd()
    }

    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (client_fd, backend_fd, cache, stats, audit_prefix, database, initial_client, initial_backend, *, max_message, max_inspected))]
    fn adopt_pg(
        &self,
        client_fd: i32,
        backend_fd: i32,
        cache: &PyVerdictCache,
        stats: &PyBackendStats,
        audit_prefix: &[u8],
        database: Option<String>,
        initial_client: &[u8],
        initial_backend: &[u8],
        max_message: usize,
        max_inspected: usize,
    ) -> PyResult<u64> {
        let relay: Box<dyn Relay> = Box::new(PgRelay::new(PgRelayConfig { max_message, max_inspected }));
        self.adopt(client_fd, backend_fd, relay, cache, stats, audit_prefix, database, initial_client, initial_backend)
    }

    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (client_fd, backend_fd, cache, stats, audit_prefix, database, initial_client, initial_backend, *, max_message, deprecate_eof, mariadb, allowed_databases, allowed_db_text, setup_statements, read_only_check))]
    fn adopt_mysql(
        &self,
        client_fd: i32,
        backend_fd: i32,
        cache: &PyVerdictCache,
        stats: &PyBackendStats,
        audit_prefix: &[u8],
        database: Option<String>,
        initial_client: &[u8],
        initial_backend: &[u8],
        max_message: usize,
        deprecate_eof: bool,
        mariadb: bool,
        allowed_databases: Vec<String>,
        allowed_db_text: String,
        setup_statements: Vec<(String, bool)>,
        read_only_check: String,
    ) -> PyResult<u64> {
        let relay: Box<dyn Relay> = Box::new(MyRelay::new(MyRelayConfig {
            max_message,
            deprecate_eof,
            mariadb,
            allowed_databases,
            allowed_db_text,
            setup_statements,
            read_only_check,
        }));
        self.adopt(client_fd, backend_fd, relay, cache, stats, audit_prefix, database, initial_client, initial_backend)
    }

    /// The engine's answer to a ("verdict", ...) event; the data plane stores it in the
    /// session's verdict cache per `mode` (0 = not cached, 1 = exact text, 2 = exact text and
    /// the fingerprint the event carried).
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (session, sql, generation, mode, allowed, rule, reason, klass, verbs, audit_pre, audit_post))]
    fn verdict(
        &self,
        session: u64,
        sql: String,
        generation: u64,
        mode: u8,
        allowed: bool,
        rule: String,
        reason: String,
        klass: String,
        verbs: Vec<String>,
        audit_pre: Vec<u8>,
        audit_post: Vec<u8>,
    ) {
        let v = Arc::new(Verdict { allowed, rule, reason, klass, verbs, audit_pre, audit_post });
        let mode = match mode {
            2 => CacheMode::Fingerprint,
            1 => CacheMode::Exact,
            _ => CacheMode::None,
        };
        self.core.verdict(session, sql, v, mode, generation);
    }

    /// End a session: `admin` (operator action) or idle timeout; `message` is what the client reads.
    fn terminate(&self, session: u64, admin: bool, message: String) {
        let why = if admin { Termination::Admin } else { Termination::Idle };
        self.core.terminate(session, why, message);
    }

    fn set_audit_enabled(&self, on: bool) {
        self.core.set_audit_enabled(on);
    }

    /// Waiting events: ("verdict", session, sql, fingerprint, generation) |
    /// ("records", session, [record]) | ("closed", session). Records:
    /// ("done", sql, allowed, rule, class, verbs, message, rows, seconds, error|None) |
    /// ("blocked", sql|None, rule, reason, class, message, extra) | ("event", name, fields) |
    /// ("metric", name) | ("database", name).
    fn events<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let mut buf = [0u8; 256];
        while let Ok(n) = std::io::Read::read(&mut &self.reader, &mut buf) {
            if n < buf.len() {
                break;
            }
        }
        let evs = self.core.take_events();
        let out = PyList::empty(py);
        for e in evs {
            let item: Bound<'py, PyTuple> = match e {
                DpEvent::NeedVerdict { session, sql, fingerprint, generation } => {
                    ("verdict", session, sql, fingerprint, generation).into_pyobject(py)?
                }
                DpEvent::Records { session, records } => {
                    let l = PyList::empty(py);
                    for r in &records {
                        l.append(record_to_py(py, r)?)?;
                    }
                    ("records", session, l).into_pyobject(py)?
                }
                DpEvent::Closed { session } => ("closed", session).into_pyobject(py)?,
            };
            out.append(item)?;
        }
        Ok(out)
    }

    /// Finished audit lines of allowed statements (JSON lines), oldest first.
    fn take_audit<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let data = self.core.take_audit();
        PyBytes::new(py, &data)
    }

    /// Writes the finished audit lines to file descriptor `fd` (the audit file, opened for
    /// appending) with the GIL released; returns the number of lines. OSError on failure (the
    /// unwritten lines are kept for the next call).
    fn write_audit(&self, py: Python<'_>, fd: i32) -> PyResult<usize> {
        // SAFETY: `fd` is the caller's open file; ManuallyDrop keeps us from closing it.
        let file = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
        let mut w: &std::fs::File = &file;
        Ok(py.allow_threads(|| self.core.write_audit(&mut w))?)
    }

    fn audit_dropped(&self) -> u64 {
        self.core.audit_dropped()
    }

    /// (bytes_in, bytes_out, activity, allowed, idle) or None once the session is gone.
    fn session_stats(&self, session: u64) -> Option<(u64, u64, u64, u64, bool)> {
        self.core
            .session_stats(session)
            .map(|s| (s.bytes_in, s.bytes_out, s.activity, s.allowed, s.idle))
    }

    /// The most bytes ever queued towards one side of the session, or None once it is gone.
    fn peak_queued(&self, session: u64) -> Option<usize> {
        self.core.peak_queued(session)
    }

    fn session_count(&self) -> usize {
        self.core.session_count()
    }

    /// Number of I/O threads.
    fn threads(&self) -> usize {
        self.core.lanes()
    }

    fn shutdown(&self, py: Python<'_>) {
        py.allow_threads(|| self.core.shutdown());
    }
}

impl PyDataPlane {
    #[allow(clippy::too_many_arguments)]
    fn adopt(
        &self,
        client_fd: i32,
        backend_fd: i32,
        relay: Box<dyn Relay>,
        cache: &PyVerdictCache,
        stats: &PyBackendStats,
        audit_prefix: &[u8],
        database: Option<String>,
        initial_client: &[u8],
        initial_backend: &[u8],
    ) -> PyResult<u64> {
        let a = Adopt {
            client_fd: owned(client_fd)?,
            backend_fd: owned(backend_fd)?,
            relay,
            cache: Arc::clone(&cache.inner),
            stats: Arc::clone(&stats.inner),
            audit_prefix: audit_prefix.to_vec(),
            database,
            initial_client: initial_client.to_vec(),
            initial_backend: initial_backend.to_vec(),
        };
        Ok(self.core.adopt(a)?)
    }
}


pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyVerdictCache>()?;
    m.add_class::<PyBackendStats>()?;
    m.add_class::<PyDataPlane>()?;
    Ok(())
}
