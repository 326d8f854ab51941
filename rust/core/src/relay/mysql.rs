//! MySQL / MariaDB steady-state relay (issue 6): the command phase of
//! python/sandbox_db_proxy/protocols/mysql.py (`MySQLSession`, phase P_COMMAND) as a sans-I/O
//! state machine. The Python layer logs both sides in (and runs the backstop SETs), then
//! hands the session over; from then on every byte goes through [`MyRelay`]. What the client
//! and the backend see -- bytes, sequence ids, error numbers, SQLSTATEs, texts -- is what the
//! Python relay sends (docs/mysql-relay.md, "Command phase").
//!
//! The protocol is strictly request/response (MySQL dev docs "Command Phase"): one command
//! is forwarded, then the `ResponseScanner` says when its response is complete before the
//! next one is looked at. Client packets that arrive meanwhile wait in `pending`, so an ERR
//! written by the proxy always comes in order, with the sequence id the client expects.
//! A statement whose verdict is not known yet ([`Judgement::Pending`]) stays at the head of
//! `pending` until the data plane feeds the relay again.
//!
//! Default deny per command byte: COM_QUERY / COM_STMT_PREPARE are judged; COM_STMT_* only
//! for statement ids whose PREPARE passed here; COM_INIT_DB and `USE` only for allowed
//! databases; PING / STATISTICS / FIELD_LIST / SET_OPTION / RESET_CONNECTION / QUIT relayed;
//! everything else refused with ERR 1792.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use super::{Judge, Out, Record, Relay, Termination, Verdict};
use crate::mysqlwire::framing::{Decoded, Packet, PacketDecoder, MAX_FRAME_PAYLOAD};
use crate::mysqlwire::packets::err_packet;
use crate::mysqlwire::scanner::{ResponseScanner, ScanEvent};
use crate::Error;

#[path = "mysql_text.rs"]
mod text;
use text::*;
#[path = "mysql_client.rs"]
mod client;
#[path = "mysql_backend.rs"]
mod backend;

#[cfg(test)]
#[path = "mysql_tests.rs"]
mod tests;

/// Queued client packets before the relay asks the data plane to stop reading the client
/// (Python `PENDING_PAUSE`); reading resumes at half of it.
pub const PENDING_PAUSE: usize = 64;

/// What the Python layer knows at handoff (after login and the backstop SETs succeeded).
#[derive(Debug, Clone, Default)]
pub struct MyRelayConfig {
    /// limits.max_message_bytes: largest client packet payload.
    pub max_message: usize,
    /// CLIENT_DEPRECATE_EOF was negotiated (result sets end with OK-0xfe instead of EOF).
    pub deprecate_eof: bool,
    /// Backend flavor: MariaDB (`tx_read_only`) or MySQL (`transaction_read_only`).
    pub mariadb: bool,
    /// `USE` / COM_INIT_DB targets allowed (exact, case-sensitive).
    pub allowed_databases: Vec<String>,
    /// How the allowed databases are named in messages (Python `_allowed_db_text()`).
    pub allowed_db_text: String,
    /// The backstop, re-run after COM_RESET_CONNECTION: (sql, check the result is a single 1).
    pub setup_statements: Vec<(String, bool)>,
    /// The read-only check run after every allowed `session`-class statement (checked for a
    /// single value 1); empty = derived from `mariadb`.
    pub read_only_check: String,
}

/// A prepared statement the relay let through: its text and verdict (for EXECUTE's audit).
type StmtEntry = (Arc<str>, Arc<Verdict>);

/// The statement whose response is in flight.
struct Cur {
    sql: Option<Arc<str>>,
    /// None: not a statement (PING, FETCH, the proxy's own statements, ...): no audit record.
    verdict: Option<Arc<Verdict>>,
    message: &'static str,
    t0: Instant,
}

/// What happens once the current response is complete (Python `self.after`).
enum After {
    Nothing,
    /// COM_INIT_DB / `USE db`: the session's database becomes this unless the server refused.
    Database(String),
    /// COM_RESET_CONNECTION: re-apply the backstop before the client sees the server's OK.
    Reset,
}

/// Outcome of looking at one client command.
enum Step {
    Done,
    /// The verdict is not known: keep this packet (and what follows) for later.
    Pending,
}

enum Classified {
    Allowed(Arc<str>, Arc<Verdict>),
    Refused,
    Pending,
}

pub struct MyRelay {
    max_message: usize,
    allowed_databases: Vec<String>,
    allowed_db_text: String,
    setup_statements: Vec<(Arc<str>, bool)>,
    read_only_check: Arc<str>,
    cdec: PacketDecoder,
    scan: ResponseScanner,
    closed: bool,
    /// a response (to a client command or to an internal statement) is in flight
    busy: bool,
    /// the head of `pending` waits for a verdict
    waiting: bool,
    /// too much queued client input: the data plane should stop reading
    paused: bool,
    pending: VecDeque<Packet>,
    /// statement id -> (text, verdict) of PREPAREs that passed and the server confirmed
    stmts: HashMap<u32, StmtEntry>,
    last_stmt: Option<u32>,
    /// first bytes of a COM_QUERY response that might be a LOCAL INFILE request
    held: Vec<u8>,
    /// response bytes go to the client (false: captured, or swallowed)
    forward: bool,
    capture: Option<Vec<u8>>,
    /// some bytes of the current response reached the client
    started: bool,
    cur: Option<Cur>,
    /// sequence id of the current command's response (the command's next sequence id)
    resp_seq: u8,
    after: After,
    /// the response in flight answers one of the proxy's own statements
    internal: bool,
    /// a LOCAL INFILE request was refused: (its sequence id, `forward` before)
    infile: Option<(u8, bool)>,
    setup_queue: VecDeque<(Arc<str>, bool)>,
    setup_check: bool,
    /// bytes for the client once the internal statements are done (a held RESET OK)
    setup_done: Option<Vec<u8>>,
}

/// A chunk that is exactly one complete single-frame packet within the size limit: its
/// sequence id and payload (the Python relay's `raw` fast path: forward the chunk as is).
fn single_frame(data: &[u8], max: usize) -> Option<(u8, &[u8])> {
    let hdr = data.get(..4)?;
    let len = usize::from(hdr[0]) | usize::from(hdr[1]) << 8 | usize::from(hdr[2]) << 16;
    if len >= MAX_FRAME_PAYLOAD || len > max || data.len() != len + 4 {
        return None;
    }
    Some((hdr[3], data.get(4..)?))
}

fn write_err(out: &mut Out, seq: u8, e: ErrCode, message: &str) {
    out.to_client.extend_from_slice(&err_packet(seq, e.0, e.1, message.as_bytes()));
}

impl MyRelay {
    /// A session in the command phase, idle, with no statement prepared.
    pub fn new(cfg: MyRelayConfig) -> MyRelay {
        let read_only_check: Arc<str> = if cfg.read_only_check.is_empty() {
            let var = if cfg.mariadb { "tx_read_only" } else { "transaction_read_only" };
            Arc::from(format!("SELECT @@session.{var}"))
        } else {
            Arc::from(cfg.read_only_check)
        };
        MyRelay {
            max_message: cfg.max_message,
            allowed_databases: cfg.allowed_databases,
            allowed_db_text: cfg.allowed_db_text,
            setup_statements: cfg.setup_statements.into_iter().map(|(s, c)| (Arc::from(s), c)).collect(),
            read_only_check,
            cdec: PacketDecoder::new(cfg.max_message),
            scan: ResponseScanner::new(cfg.deprecate_eof),
            closed: false,
            busy: false,
            waiting: false,
            paused: false,
            pending: VecDeque::new(),
            stmts: HashMap::new(),
            last_stmt: None,
            held: Vec::new(),
            forward: true,
            capture: None,
            started: false,
            cur: None,
            resp_seq: 1,
            after: After::Nothing,
            internal: false,
            infile: None,
            setup_queue: VecDeque::new(),
            setup_check: false,
            setup_done: None,
        }
    }

    // ------------------------------------------------------------------ lifecycle

    fn close(&mut self, reason: &str, out: &mut Out) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.pending.clear();
        self.waiting = false;
        self.paused = false;
        out.event("disconnect", vec![("reason", reason.to_string())]);
        out.close = true;
    }

    /// A client broke the protocol: clear ERR (sequence id 0), audit, close -- a byte stream
    /// cannot be resynchronised.
    fn protocol_error(&mut self, detail: &str, e: ErrCode, client_msg: &str, out: &mut Out) {
        write_err(out, 0, e, &format!("{client_msg} (sandbox-db-proxy: {detail})"));
        out.event("protocol_error", vec![("side", "client".to_string()), ("reason", detail.to_string())]);
        self.close(&format!("protocol error: {detail}"), out);
    }

    fn too_large(&mut self, e: &Error, out: &mut Out) {
        let msg = format!(
            "Got a packet bigger than the proxy's limit of {} bytes (limits.max_message_bytes): {e}",
            self.max_message
        );
        write_err(out, 0, ER_NET_PACKET_TOO_LARGE, &msg);
        out.record(Record::Metric("limit:max_message_bytes"));
        out.event("limit", vec![("limit", "max_message_bytes".to_string()), ("reason", msg)]);
        self.close("packet too large", out);
    }

    fn backend_protocol_error(&mut self, detail: &str, out: &mut Out) {
        out.record(Record::Metric("backend_error"));
        if self.busy && !self.started {
            let msg = format!("sandbox-db-proxy: bad response from the database ({detail})");
            write_err(out, self.resp_seq, ER_MALFORMED_PACKET, &msg);
        }
        out.event("protocol_error", vec![("side", "backend".to_string()), ("reason", detail.to_string())]);
        self.close(&format!("backend protocol error: {detail}"), out);
    }
}

impl Relay for MyRelay {
    fn client_data(&mut self, data: &[u8], now: Instant, judge: &mut dyn Judge, out: &mut Out) {
        if self.closed {
            return;
        }
        if self.pending.is_empty() && !self.busy && self.cdec.is_idle() {
            if let Some((seq, payload)) = single_frame(data, self.max_message) {
                if let Step::Pending = self.command(seq, payload, Some(data), seq.wrapping_add(1), now, judge, out) {
                    let p = Packet { seq, payload: payload.to_vec(), next_seq: seq.wrapping_add(1) };
                    self.pending.push_back(p);
                    self.waiting = true;
                }
                return;
            }
        }
        if !data.is_empty() {
            match self.cdec.feed(data) {
                Ok(Decoded::NeedMore) => {}
                Ok(Decoded::Packets(ps)) => {
                    self.pending.extend(ps);
                    if self.pending.len() > PENDING_PAUSE {
                        self.paused = true;
                    }
                }
                Err(e @ Error::TooLarge { .. }) => {
                    self.too_large(&e, out);
                    return;
                }
                Err(e) => {
                    let detail = e.to_string();
                    let code = if detail.contains("order") { ER_NET_PACKETS_OUT_OF_ORDER } else { ER_MALFORMED_PACKET };
                    self.protocol_error(&detail, code, "Malformed communication packet", out);
                    return;
                }
            }
        }
        if !self.busy {
            self.drain(now, judge, out);
        }
    }

    fn backend_data(&mut self, data: &[u8], now: Instant, judge: &mut dyn Judge, out: &mut Out) {
        if self.closed {
            return;
        }
        let ev = match self.scan.feed(data) {
            Ok(ev) => ev,
            Err(e) => {
                self.backend_protocol_error(&e.to_string(), out);
                return;
            }
        };
        match ev {
            ScanEvent::NeedMore { hold_from: None } => {
                if self.forward {
                    self.started = true;
                }
                self.pass(data, out);
            }
            ScanEvent::NeedMore { hold_from: Some(off) } => {
                // The first packet of a COM_QUERY response is incomplete: it could be a LOCAL
                // INFILE request, so its bytes wait until the scanner knows.
                if off > 0 {
                    let (head, tail) = data.split_at(off.min(data.len()));
                    if self.forward {
                        self.started = true;
                    }
                    self.pass(head, out);
                    self.held = tail.to_vec();
                } else {
                    self.held.extend_from_slice(data);
                }
            }
            ScanEvent::Done { end, summary } => {
                let (head, rest) = data.split_at(end.min(data.len()));
                self.pass(head, out);
                self.busy = false;
                self.response_done(summary, now, out);
                if !rest.is_empty() && !self.closed {
                    let detail = format!("{} unexpected bytes after a complete response", rest.len());
                    self.backend_protocol_error(&detail, out);
                } else if !self.pending.is_empty() && !self.busy {
                    self.drain(now, judge, out);
                }
            }
            ScanEvent::Infile { start, seq, filename } => self.refuse_infile(data, start, seq, &filename, out),
        }
    }

    fn client_closed(&mut self, _error: Option<&str>, out: &mut Out) {
        self.close("client closed the connection", out);
    }

    fn backend_closed(&mut self, error: Option<&str>, out: &mut Out) {
        if self.closed {
            return;
        }
        let why = match error {
            Some(r) if !r.is_empty() => format!("the database closed the connection: {r}"),
            _ => "the database closed the connection".to_string(),
        };
        out.record(Record::Metric("backend_error"));
        if self.busy && !self.started && !self.internal {
            write_err(out, self.resp_seq, CR_SERVER_LOST, &format!("Lost connection to the database during query ({why})"));
        }
        out.event("protocol_error", vec![("side", "backend".to_string()), ("reason", why.clone())]);
        self.close(&why, out);
    }

    fn terminate(&mut self, why: Termination, message: &str, out: &mut Out) {
        if self.closed {
            return;
        }
        match why {
            Termination::Admin => {
                if !(self.busy && self.started) {
                    // Idle: sequence id 1 makes the ERR read as the answer to the client's next
                    // command (a 0 reads as "server lost" in PyMySQL); busy: the pending response.
                    let seq = if self.busy { self.resp_seq } else { 1 };
                    let text = format!("Connection closed by sandbox-db-proxy: {message}");
                    write_err(out, seq, ER_CONNECTION_KILLED, &text);
                }
                self.close(message, out);
            }
            Termination::Idle => {
                if !self.busy {
                    write_err(out, 1, ER_CLIENT_INTERACTION_TIMEOUT, message);
                }
                out.record(Record::Metric("limit:idle_timeout_seconds"));
                out.event("limit", vec![("limit", "idle_timeout_seconds".to_string()), ("reason", message.to_string())]);
                self.close("idle timeout", out);
            }
        }
    }

    fn is_idle(&self) -> bool {
        !self.busy && self.pending.is_empty()
    }

    fn wants_client_data(&self) -> bool {
        !self.closed && !self.waiting && !self.paused
    }

    fn is_closed(&self) -> bool {
        self.closed
    }

    fn internal_error(&self) -> Vec<u8> {
        // The answer to the command in flight, else to the client's next one (sequence id 1,
        // as `kill` does).
        let seq = if self.busy && !self.started { self.resp_seq } else { 1 };
        err_packet(seq, ER_UNKNOWN_ERROR.0, ER_UNKNOWN_ERROR.1,
                   b"sandbox-db-proxy internal error; the session was closed")
    }
}
