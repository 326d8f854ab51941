//! PostgreSQL steady-state relay (protocol 3.0): the READY / DRAINING phases of
//! python/sandbox_db_proxy/protocols/postgres.py (`PgSession`) as a sans-I/O state machine.
//! The login (STARTUP, AUTH, CONNECTING, BACKEND_AUTH) stays in Python; the data plane hands
//! a session over once the backend's first ReadyForQuery has reached the client.
//! Design notes and the reasons behind each rule: docs/pg-relay.md.
//!
//! * Client -> backend (`pg_client.rs`): every Query and Parse is judged; Bind/Describe('S')
//!   may only name statements that passed a Parse here; FunctionCall is refused; COPY data
//!   from the client is dropped; unknown message types end the session (FATAL 08P01).
//! * Decoys: a blocked Query/FunctionCall/Parse is *replaced* by the same message type with
//!   the text `__sdp_blocked_<n>__`, which the backend's raw parser rejects (42601) before
//!   anything else, also inside an aborted transaction. The backend thus makes exactly the
//!   state change the client expects from a failed statement, and its ErrorResponse arrives
//!   where the error belongs among pipelined responses; the relay swaps it for its own
//!   25006 error and forwards the backend's ReadyForQuery unchanged (docs/pg-relay.md,
//!   "Blocked statements: decoys keep both sides in the same state").
//! * Backend -> client (`pg_backend.rs`): one header scan per chunk, rows never decoded;
//!   ReadyForQuery/CommandComplete/ErrorResponse drive the per-statement audit, and the
//!   ParameterStatus backstop kills a session that is no longer read-only.
//! * DRAINING: a fatal client error after statements that are still running: their results
//!   are delivered first, then the FATAL error (the order PostgreSQL itself answers in).
//!
//! Byte ranges of the input that pass unchanged are copied once, straight into
//! `Out::to_backend` / `Out::to_client`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use super::{Judge, Out, Outcome, Record, Relay, Termination, Verdict};
use crate::pgwire::build;

#[path = "pg_backend.rs"]
mod backend_side;
#[path = "pg_client.rs"]
mod client_side;
#[cfg(test)]
#[path = "pg_tests.rs"]
mod tests;

/// Text of a decoy statement: `__sdp_blocked_<n>__` (postgres.py DECOY_PREFIX).
pub const DECOY_PREFIX: &str = "__sdp_blocked_";
/// Named prepared statements (and portals) tracked per connection (postgres.py
/// MAX_PREPARED): a client creating them without end must not grow memory without bound.
pub const MAX_PREPARED: usize = 10_000;
/// Decoy tokens remembered at most (a decoy the backend skipped is never answered).
const MAX_DECOYS: usize = 10_000;

/// SQLSTATEs the relay writes (PostgreSQL docs, Appendix A "PostgreSQL Error Codes").
pub(crate) mod sqlstate {
    pub const READ_ONLY_SQL_TRANSACTION: &str = "25006";
    pub const PROTOCOL_VIOLATION: &str = "08P01";
    pub const CONNECTION_FAILURE: &str = "08006";
    pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
    pub const IDLE_SESSION_TIMEOUT: &str = "57P05";
    pub const ADMIN_SHUTDOWN: &str = "57P01";
}

/// Limits of one session (python: `limits.max_message_bytes`, pg_startup.MAX_INSPECTED).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgRelayConfig {
    /// Largest client message (type byte + length + body); checked from its 5-byte header.
    pub max_message: usize,
    /// Largest backend message the relay must hold in full (ErrorResponse, ParameterStatus...).
    pub max_inspected: usize,
}

impl Default for PgRelayConfig {
    fn default() -> Self {
        PgRelayConfig { max_message: 16 * 1024 * 1024, max_inspected: 16 * 1024 * 1024 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Ready,
    /// A fatal client error is deferred until every forwarded Sync/Query is answered.
    Draining,
    Closed,
}

/// A prepared statement (or the statement behind a portal) as the audit needs it. The text
/// is stored once per Parse; portals share it.
#[derive(Debug, Clone)]
struct Stmt {
    sql: Arc<str>,
    verdict: Arc<Verdict>,
}

/// Prepared statements or portals by raw name. The unnamed one (`""`) has its own slot:
/// drivers use it for every extended-protocol query (pgbench -M extended, psycopg, JDBC
/// before its prepare threshold), and a map lookup of the empty key costs a hash plus a
/// memcmp on an empty `Box<[u8]>`'s dangling pointer, which glibc's AVX-512 memcmp turns
/// into a masked load needing a microcode assist (measured: about a quarter of the relay's
/// user time per extended-protocol statement; dataplane/timing.rs).
#[derive(Debug, Default)]
struct Names {
    unnamed: Option<Stmt>,
    named: HashMap<Box<[u8]>, Stmt>,
}

impl Names {
    fn get(&self, name: &[u8]) -> Option<&Stmt> {
        if name.is_empty() {
            self.unnamed.as_ref()
        } else {
            self.named.get(name)
        }
    }
    fn get_mut(&mut self, name: &[u8]) -> Option<&mut Stmt> {
        if name.is_empty() {
            self.unnamed.as_mut()
        } else {
            self.named.get_mut(name)
        }
    }
    fn contains_key(&self, name: &[u8]) -> bool {
        self.get(name).is_some()
    }
    fn insert(&mut self, name: &[u8], st: Stmt) {
        if name.is_empty() {
            self.unnamed = Some(st);
        } else {
            self.named.insert(name.into(), st);
        }
    }
    fn remove(&mut self, name: &[u8]) {
        if name.is_empty() {
            self.unnamed = None;
        } else {
            self.named.remove(name);
        }
    }
    /// Entries, the unnamed one included (as when it was a key of the map).
    fn len(&self) -> usize {
        self.named.len() + usize::from(self.unnamed.is_some())
    }
    fn clear(&mut self) {
        self.unnamed = None;
        self.named.clear();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Query,
    Execute,
}

/// An allowed Query or Execute sent to the backend and not yet finished
/// (postgres.py `inflight` entry `[kind, sql, verdict, t0, rows, seg, error]`).
#[derive(Debug)]
struct InFlight {
    kind: Kind,
    sql: Arc<str>,
    verdict: Arc<Verdict>,
    t0: Instant,
    rows: Option<u64>,
    /// Number of the ReadyForQuery that ends its segment (`sent_z` when it was forwarded).
    seg: u64,
    /// SQLSTATE of its error, or a relay word (`skipped`, `backend_lost`, ...).
    err: Option<String>,
}

/// The PostgreSQL steady-state relay of one session.
pub struct PgRelay {
    cfg: PgRelayConfig,
    phase: Phase,
    // client -> backend
    /// Unconsumed client bytes: an incomplete message, or (with `held`) everything from the
    /// message whose verdict is pending.
    cbuf: Vec<u8>,
    /// Size of the incomplete message at the start of `cbuf` when its header is known.
    cneed: usize,
    /// Waiting for a verdict: `cbuf` starts with the Query/Parse that was judged Pending.
    held: bool,
    // backend -> client
    bbuf: Vec<u8>,
    bskip: usize,
    bneed: usize,
    /// Transaction status of the backend's last ReadyForQuery.
    txn: u8,
    /// Sync/Query/FunctionCall forwarded (each is answered by one ReadyForQuery).
    sent_z: u64,
    /// ReadyForQuery received.
    recv_z: u64,
    /// A Parse/Bind was blocked: drop client messages until Sync (extended-protocol error
    /// recovery; the backend would ignore them too).
    skip: bool,
    stmts: Names,
    portals: Names,
    inflight: VecDeque<InFlight>,
    /// Decoy number -> ErrorResponse the client gets instead of the backend's 42601.
    decoys: BTreeMap<u64, Vec<u8>>,
    decoy_n: u64,
    /// A CopyFail was sent: the backend's next ErrorResponse is replaced by this one.
    copy_fail_pending: Option<Vec<u8>>,
    /// The backend sent a FATAL/PANIC error (forwarded): losing it next is expected.
    fatal_forwarded: bool,
    deferred_fatal: Option<Vec<u8>>,
    /// Verdict recorded for statements the engine did not judge (the empty query; an
    /// Execute of a portal whose statement is unknown): allowed, rule "", class "read".
    no_verdict: Arc<Verdict>,
    empty_sql: Arc<str>,
    /// `now` of the client_data/backend_data call in progress (statements ended by it are
    /// timed with it); None outside those calls (then the clock is read).
    clock: Option<Instant>,
}

impl PgRelay {
    /// A relay in READY, transaction status 'I', nothing in flight.
    pub fn new(cfg: PgRelayConfig) -> PgRelay {
        PgRelay {
            cfg,
            phase: Phase::Ready,
            cbuf: Vec::new(),
            cneed: 0,
            held: false,
            bbuf: Vec::new(),
            bskip: 0,
            bneed: 0,
            txn: b'I',
            sent_z: 0,
            recv_z: 0,
            skip: false,
            stmts: Names::default(),
            portals: Names::default(),
            inflight: VecDeque::new(),
            decoys: BTreeMap::new(),
            decoy_n: 0,
            copy_fail_pending: None,
            fatal_forwarded: false,
            deferred_fatal: None,
            // Audited like Python's verdict-less statements: ALLOWED, no rule or class fields.
            no_verdict: Arc::new(Verdict {
                allowed: true,
                klass: "read".to_string(),
                audit_pre: br#""verdict":"ALLOWED","#.to_vec(),
                ..Verdict::default()
            }),
            empty_sql: Arc::from(""),
            clock: None,
        }
    }

    /// Transaction status of the backend's last ReadyForQuery (`I`, `T` or `E`).
    pub fn transaction_status(&self) -> u8 {
        self.txn
    }

    /// True while a fatal client error waits for running statements to finish.
    pub fn is_draining(&self) -> bool {
        self.phase == Phase::Draining
    }

    // -- decoys ---------------------------------------------------------------------------

    /// A message of the same kind that the backend's raw parser rejects (42601); `err` is
    /// what the client gets instead of that rejection.
    fn decoy(&mut self, query: bool, name: &str, err: Vec<u8>) -> Vec<u8> {
        self.decoy_n += 1;
        let n = self.decoy_n;
        self.decoys.insert(n, err);
        if self.decoys.len() > MAX_DECOYS {
            self.decoys.pop_first(); // stale: the backend skipped that decoy
        }
        let token = format!("{DECOY_PREFIX}{n}__");
        if query {
            build::query(&token)
        } else {
            build::parse(name, &token)
        }
    }

    // -- audit of allowed statements --------------------------------------------------------

    fn finish(e: InFlight, now: Instant, out: &mut Out) {
        let seconds = now.saturating_duration_since(e.t0).as_secs_f64();
        out.records.push(Record::Done {
            sql: e.sql,
            verdict: e.verdict,
            message: match e.kind {
                Kind::Query => "Query",
                Kind::Execute => "Execute",
            },
            rows: e.rows,
            seconds,
            outcome: match e.err {
                None => Outcome::Ok,
                Some(code) => Outcome::Error(code),
            },
        });
    }

    /// The session ends: every statement still in flight is recorded with `error`.
    fn finish_inflight(&mut self, error: &str, out: &mut Out) {
        if self.inflight.is_empty() {
            return;
        }
        let now = self.clock.unwrap_or_else(Instant::now);
        while let Some(mut e) = self.inflight.pop_front() {
            if e.err.is_none() {
                e.err = Some(error.to_string());
            }
            Self::finish(e, now, out);
        }
    }

    // -- endings (postgres.py `_terminate`, `_kill`, `_limit`, `_protocol_error`, ...) --------

    /// Client sent Terminate: pass it on and close.
    fn client_terminate(&mut self, out: &mut Out) {
        out.event("disconnect", vec![("reason", "client sent Terminate".to_string())]);
        self.finish_inflight("client_terminated", out);
        out.to_backend.extend_from_slice(&build::terminate());
        self.closed(out);
    }

    /// Engine backstop tripped: end the session, loudly.
    fn kill(&mut self, reason: &str, rule: &'static str, out: &mut Out) {
        out.event("alert", vec![("rule", rule.to_string()), ("reason", reason.to_string())]);
        let err = build::fatal(
            sqlstate::READ_ONLY_SQL_TRANSACTION,
            &format!("sandbox-db-proxy closed the session: {reason}"),
        );
        self.send_fatal_now(err, out);
    }

    fn limit(&mut self, metric: &'static str, limit: &'static str, code: &str, message: &str, out: &mut Out) {
        out.record(Record::Metric(metric));
        out.event("limit", vec![("limit", limit.to_string()), ("reason", message.to_string())]);
        self.send_fatal_and_close(build::fatal(code, message), out);
    }

    fn protocol_error(&mut self, detail: &str, out: &mut Out) {
        out.event("protocol_error", vec![("reason", detail.to_string())]);
        let err = build::fatal(sqlstate::PROTOCOL_VIOLATION, &format!("sandbox-db-proxy: {detail}"));
        self.send_fatal_and_close(err, out);
    }

    /// A framing error in client input: too large (54000, `limit`) or malformed (08P01).
    fn client_frame_error(&mut self, e: crate::Error, out: &mut Out) {
        match e {
            crate::Error::TooLarge { .. } => self.limit(
                "limit:max_message_bytes",
                "max_message_bytes",
                sqlstate::PROGRAM_LIMIT_EXCEEDED,
                &format!("message too large: {e} (limits.max_message_bytes)"),
                out,
            ),
            _ => self.protocol_error(&format!("invalid message: {e}"), out),
        }
    }

    fn send_fatal_and_close(&mut self, err: Vec<u8>, out: &mut Out) {
        if self.phase == Phase::Ready && self.sent_z != self.recv_z {
            // Statements forwarded before the bad message are still running: answer them
            // first (DRAINING), then the error. Client input is no longer read.
            self.phase = Phase::Draining;
            self.deferred_fatal = Some(err);
            self.cbuf = Vec::new();
            self.held = false;
            return;
        }
        self.send_fatal_now(err, out);
    }

    fn send_fatal_now(&mut self, err: Vec<u8>, out: &mut Out) {
        if self.phase == Phase::Closed {
            return;
        }
        self.finish_inflight("connection_closed", out);
        out.to_client.extend_from_slice(&err);
        out.to_backend.extend_from_slice(&build::terminate());
        self.closed(out);
    }

    /// Final state: nothing more is read or written; buffers are released.
    fn closed(&mut self, out: &mut Out) {
        self.phase = Phase::Closed;
        out.close = true;
        self.cbuf = Vec::new();
        self.bbuf = Vec::new();
        self.held = false;
        self.deferred_fatal = None;
        self.copy_fail_pending = None;
        self.decoys.clear();
        self.stmts.clear();
        self.portals.clear();
    }
}

/// The ErrorResponse a blocked statement's client gets (postgres.py `_block_error`):
/// SQLSTATE 25006 read_only_sql_transaction, the reason as message, rule and class as detail.
fn block_error(rule: &str, reason: &str, klass: &str) -> Vec<u8> {
    let message = if reason.is_empty() { "statement blocked" } else { reason };
    let detail = format!(
        "Blocked by sandbox-db-proxy (rule: {rule}, class: {klass}). The statement was not sent to the database."
    );
    build::error(
        "ERROR",
        sqlstate::READ_ONLY_SQL_TRANSACTION,
        message,
        Some(&detail),
        Some("This connection is read-only: send a single read-only statement (SELECT, SHOW, EXPLAIN, ...)."),
    )
}

/// `buf[from..to]` appended to `dst` (a range of the input passed on unchanged).
#[inline]
fn put(dst: &mut Vec<u8>, buf: &[u8], from: usize, to: usize) {
    if to > from {
        if let Some(s) = buf.get(from..to) {
            dst.extend_from_slice(s);
        }
    }
}

impl Relay for PgRelay {
    fn client_data(&mut self, data: &[u8], now: Instant, judge: &mut dyn Judge, out: &mut Out) {
        self.clock = Some(now);
        self.on_client_data(data, now, judge, out);
        self.clock = None;
    }

    fn backend_data(&mut self, data: &[u8], now: Instant, _judge: &mut dyn Judge, out: &mut Out) {
        self.clock = Some(now);
        self.on_backend_data(data, now, out);
        self.clock = None;
    }

    fn client_closed(&mut self, error: Option<&str>, out: &mut Out) {
        if self.phase == Phase::Closed {
            return;
        }
        let reason = match error {
            None => "client closed the connection".to_string(),
            Some(e) => format!("client connection lost: {e}"),
        };
        self.finish_inflight("client_disconnected", out);
        out.event("disconnect", vec![("reason", reason)]);
        out.to_backend.extend_from_slice(&build::terminate());
        self.closed(out);
    }

    fn backend_closed(&mut self, error: Option<&str>, out: &mut Out) {
        if self.phase == Phase::Closed {
            return;
        }
        out.record(Record::Metric("backend_error"));
        let mut reason = "the database backend closed the connection".to_string();
        if let Some(e) = error {
            reason.push_str(&format!(" ({e})"));
        }
        self.finish_inflight("backend_lost", out);
        if self.fatal_forwarded {
            // The backend said why (FATAL/PANIC already forwarded): just close.
            out.event("disconnect", vec![("reason", reason)]);
        } else {
            let message = format!("sandbox-db-proxy: {reason}; reconnect to continue");
            out.event("disconnect", vec![("reason", message.clone())]);
            out.to_client.extend_from_slice(&build::fatal(sqlstate::CONNECTION_FAILURE, &message));
        }
        // No Terminate: the backend socket is gone.
        self.closed(out);
    }

    fn terminate(&mut self, why: Termination, message: &str, out: &mut Out) {
        if self.phase == Phase::Closed {
            return;
        }
        match why {
            Termination::Admin => {
                // postgres.py close(reason): `_fatal(57P01, "terminating connection: <reason>")`
                let text = format!("terminating connection: {message}");
                out.event("disconnect", vec![("reason", text.clone())]);
                self.send_fatal_now(build::fatal(sqlstate::ADMIN_SHUTDOWN, &text), out);
            }
            Termination::Idle => {
                if self.phase == Phase::Ready && self.sent_z != self.recv_z {
                    return; // a statement is running: not idle (postgres.py idle_timeout)
                }
                self.limit(
                    "limit:idle_timeout_seconds",
                    "idle_timeout_seconds",
                    sqlstate::IDLE_SESSION_TIMEOUT,
                    message,
                    out,
                );
            }
        }
    }

    fn is_idle(&self) -> bool {
        self.sent_z == self.recv_z
    }

    fn wants_client_data(&self) -> bool {
        self.phase == Phase::Ready && !self.held
    }

    fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    fn internal_error(&self) -> Vec<u8> {
        // server/postgres.py ClientConnection.internal_error: FATAL XX000
        build::fatal("XX000", "sandbox-db-proxy internal error; the session was closed")
    }
}
