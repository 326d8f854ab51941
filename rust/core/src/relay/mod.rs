//! The native relay (issue 6): the steady state of a session -- after the Python layer has
//! logged the client and the backend in -- as sans-I/O state machines, one per wire protocol.
//!
//! Contract (docs/ARCHITECTURE.md, "Native relay"):
//! * The Python layer owns the login, then hands both sockets to the data plane
//!   (`dataplane`), which owns them until the session ends. The state machines here never
//!   touch a socket: bytes in, [`Out`] (bytes to each side, records, close) out.
//! * Verdicts come from a [`Judge`]: known verdicts (a Rust-side cache of what the Python
//!   engine decided) answer at once; anything else answers [`Judgement::Pending`], the relay
//!   stops reading client input at that message and is fed again (`client_data(&[])`) once
//!   the Python engine has decided. Nothing is ever forwarded on a guess: default deny.
//! * Every statement leaves a [`Record`]; the data plane turns the hot one (an allowed
//!   statement that completed) into an audit line itself and hands the rest to Python.

use std::sync::Arc;
use std::time::Instant;

pub mod cache;
pub mod mysql;
pub mod pg;

pub use cache::{CacheMode, Lookup, VerdictCache};

/// A verdict of the Python engine, as the native relay needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    pub allowed: bool,
    /// Engine rule id (`read_only`, `dml_insert`, ...).
    pub rule: String,
    /// What the agent is told when blocked.
    pub reason: String,
    /// Statement class (`read`, `write`, `session`, ...).
    pub klass: String,
    /// First verb of each statement of the text, upper-case (`SELECT`, `USE`, `SET`, ...).
    pub verbs: Vec<String>,
    /// Audit JSON pieces for an allowed statement, written by the data plane:
    /// `"verdict":"ALLOWED","rule":...,"class":...,` (before `db.query.text`) and
    /// `,"db.operation.name":...` (after it; may be empty).
    pub audit_pre: Vec<u8>,
    pub audit_post: Vec<u8>,
}

/// The answer of a [`Judge`].
#[derive(Debug, Clone)]
pub enum Judgement {
    Known(Arc<Verdict>),
    /// Not known yet: stop at this message, keep it and everything after it unprocessed, and
    /// do not read further client input; the data plane feeds the relay again later.
    Pending,
}

/// Source of verdicts for statement text (cache + asynchronous Python engine).
pub trait Judge {
    fn judge(&mut self, sql: &str) -> Judgement;
}

/// How an allowed statement ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The backend answered with an error: SQLSTATE (PostgreSQL) or error number (MySQL),
    /// or a relay word such as `skipped`, `client_disconnected`, `backend_lost`.
    Error(String),
}

/// What the relay tells the audit log and metrics.
#[derive(Debug, Clone)]
pub enum Record {
    /// An allowed statement finished (`message`: `Query`, `Execute`, `COM_QUERY`,
    /// `COM_STMT_EXECUTE`, `COM_STMT_PREPARE`).
    Done {
        sql: Arc<str>,
        verdict: Arc<Verdict>,
        message: &'static str,
        rows: Option<u64>,
        seconds: f64,
        outcome: Outcome,
    },
    /// Something was refused and never reached the backend: an engine block (from a
    /// `Verdict`) or a protocol-level refusal of the relay itself.
    Blocked {
        sql: Option<Arc<str>>,
        rule: String,
        reason: String,
        klass: String,
        message: &'static str,
        /// Extra audit fields (`db.namespace`, ...).
        extra: Vec<(&'static str, String)>,
    },
    /// A lifecycle event: `disconnect`, `alert`, `protocol_error`, `limit`; fields such as
    /// `reason`, `rule`, `limit`, `side`, `db.query.text`.
    Event { event: &'static str, fields: Vec<(&'static str, String)> },
    /// A metric-only fact: `backend_error`, or `limit:<name>`.
    Metric(&'static str),
    /// The session's current database changed (MySQL `USE` / COM_INIT_DB).
    Database(String),
}

/// Output of one call into a relay. The data plane writes `to_backend` and `to_client`
/// (in that order) before it acts on `close`.
#[derive(Debug, Default)]
pub struct Out {
    pub to_client: Vec<u8>,
    pub to_backend: Vec<u8>,
    pub records: Vec<Record>,
    /// End the session: flush what is queued to both sides, then close both sockets.
    pub close: bool,
}

impl Out {
    pub fn record(&mut self, r: Record) {
        self.records.push(r);
    }
    pub fn event(&mut self, event: &'static str, fields: Vec<(&'static str, String)>) {
        self.records.push(Record::Event { event, fields });
    }
}

/// OTel `db.operation.name` of a verdict (its first statement's operation), if any.
pub fn operation(v: &Verdict) -> Option<String> {
    v.verbs.first().filter(|s| !s.is_empty()).cloned()
}

/// Adds `db.operation.name` to the engine block just recorded (the audit record of a block
/// names the operation, as the Python relays' records do).
pub fn add_operation(out: &mut Out, op: Option<String>) {
    if let (Some(op), Some(Record::Blocked { extra, .. })) = (op, out.records.last_mut()) {
        extra.push(("db.operation.name", op));
    }
}

/// Why the data plane (on behalf of Python) ends a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// Operator action: kill switch, session expiry, drain, backend removed
    /// (PostgreSQL 57P01 admin_shutdown; MySQL 1927 ER_CONNECTION_KILLED).
    Admin,
    /// `limits.idle_timeout_seconds` (PostgreSQL 57P05; MySQL: as the Python relay does).
    Idle,
}

/// One protocol's steady-state relay.
pub trait Relay: Send {
    /// Client bytes (possibly empty: "continue after a Pending verdict").
    fn client_data(&mut self, data: &[u8], now: Instant, judge: &mut dyn Judge, out: &mut Out);
    /// Backend bytes.
    fn backend_data(&mut self, data: &[u8], now: Instant, judge: &mut dyn Judge, out: &mut Out);
    /// The client closed its socket (or it failed: `error` is Some).
    fn client_closed(&mut self, error: Option<&str>, out: &mut Out);
    /// The backend closed its socket (or it failed).
    fn backend_closed(&mut self, error: Option<&str>, out: &mut Out);
    /// End the session with an error the client understands, then `out.close`. `message`:
    /// for `Admin` the operator's reason (the relay words the client's error around it, as
    /// the Python relays' `close`/`kill` do); for `Idle` the whole text the client reads.
    fn terminate(&mut self, why: Termination, message: &str, out: &mut Out);
    /// True when no statement is in flight (idle timeout may fire).
    fn is_idle(&self) -> bool;
    /// False while the relay holds unprocessed client input (waiting for a verdict or for
    /// the backend): the data plane stops reading the client until it is true again.
    fn wants_client_data(&self) -> bool;
    /// True once the relay has ended the session (after `out.close`).
    fn is_closed(&self) -> bool;
    /// What the client reads when the relay itself failed (a bug caught by the data plane):
    /// the protocol's "internal error, session closed" message. Must not rely on consistent
    /// state; empty when nothing sensible can be said.
    fn internal_error(&self) -> Vec<u8> {
        Vec::new()
    }
}
