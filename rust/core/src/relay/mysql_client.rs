//! Client commands of the MySQL relay (relay/mysql.rs): Python `MySQLSession._command` and
//! its handlers. Default deny per command byte (docs/mysql-relay.md "Command phase"): each
//! command is judged, relayed with the response the scanner must expect, or refused with the
//! ERR the Python relay sends (the command's sequence id + 1) and a `Blocked` record.

use std::sync::Arc;
use std::time::Instant;

use super::text::*;
use super::{write_err, After, Classified, Cur, MyRelay, Step, StmtEntry, PENDING_PAUSE};
use crate::mysqlwire::consts::*;
use crate::mysqlwire::framing::frame_into;
use crate::mysqlwire::scanner::Expect;
use crate::relay::{Judge, Judgement, Out, Record, Verdict};

impl MyRelay {
    /// Handle queued client packets in order while no response is in flight.
    pub(super) fn drain(&mut self, now: Instant, judge: &mut dyn Judge, out: &mut Out) {
        self.waiting = false;
        while !self.busy && !self.closed {
            let Some(p) = self.pending.pop_front() else { break };
            if let Step::Pending = self.command(p.seq, &p.payload, None, p.next_seq, now, judge, out) {
                self.pending.push_front(p);
                self.waiting = true;
                break;
            }
        }
        if self.paused && self.pending.len() <= PENDING_PAUSE / 2 && !self.closed {
            self.paused = false;
        }
    }

    /// One command packet (Python `_command`). `raw`: the packet's bytes exactly as received.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn command(
        &mut self,
        seq: u8,
        payload: &[u8],
        raw: Option<&[u8]>,
        nseq: u8,
        now: Instant,
        judge: &mut dyn Judge,
        out: &mut Out,
    ) -> Step {
        // The response continues the command's sequence: 1, or more after a >16 MB command.
        self.resp_seq = nseq;
        if seq != 0 {
            let detail = format!("command packet with sequence id {seq}, expected 0");
            self.protocol_error(&detail, ER_NET_PACKETS_OUT_OF_ORDER, "Got packets out of order", out);
            return Step::Done;
        }
        let Some(&cmd) = payload.first() else {
            self.protocol_error("empty command packet", ER_MALFORMED_PACKET, "Malformed communication packet", out);
            return Step::Done;
        };
        match cmd {
            COM_QUERY => return self.com_query(payload, raw, now, judge, out),
            COM_STMT_PREPARE => return self.com_prepare(payload, raw, now, judge, out),
            COM_STMT_EXECUTE => {
                // hot path (sysbench, connectors with server-side prepared statements)
                let entry = stmt_id(payload).and_then(|id| self.stmts.get(&id)).cloned();
                match entry {
                    Some((sql, v)) => {
                        self.forward_cmd(payload, raw, Expect::Execute, Some(sql), Some(v), "COM_STMT_EXECUTE", now, out)
                    }
                    None => self.com_stmt(payload, raw, cmd, now, out),
                }
            }
            COM_STMT_FETCH | COM_STMT_RESET | COM_STMT_CLOSE | COM_STMT_SEND_LONG_DATA => {
                self.com_stmt(payload, raw, cmd, now, out)
            }
            COM_INIT_DB => self.com_init_db(payload, raw, now, out),
            COM_PING | COM_SET_OPTION => self.forward_cmd(payload, raw, Expect::Simple, None, None, command_name(cmd), now, out),
            COM_STATISTICS => self.forward_cmd(payload, raw, Expect::Statistics, None, None, "COM_STATISTICS", now, out),
            COM_FIELD_LIST => self.forward_cmd(payload, raw, Expect::FieldList, None, None, "COM_FIELD_LIST", now, out),
            COM_QUIT => {
                frame_into(&mut out.to_backend, &[COM_QUIT], 0);
                self.close("client sent COM_QUIT", out);
            }
            COM_RESET_CONNECTION => {
                // Hold the server's OK until the read-only backstop is back (the reset cleared it).
                self.forward = false;
                self.capture = Some(Vec::new());
                self.after = After::Reset;
                self.forward_cmd(payload, raw, Expect::Simple, None, None, "COM_RESET_CONNECTION", now, out);
            }
            _ => self.refuse_command(cmd, out),
        }
        Step::Done
    }

    pub(super) fn send_backend(payload: &[u8], raw: Option<&[u8]>, out: &mut Out) {
        match raw {
            Some(r) => out.to_backend.extend_from_slice(r),
            None => {
                frame_into(&mut out.to_backend, payload, 0);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn forward_cmd(
        &mut self,
        payload: &[u8],
        raw: Option<&[u8]>,
        kind: Expect,
        sql: Option<Arc<str>>,
        verdict: Option<Arc<Verdict>>,
        message: &'static str,
        now: Instant,
        out: &mut Out,
    ) {
        if let Err(e) = self.scan.expect(kind, self.resp_seq) {
            // Cannot happen (not busy = scanner idle); never forward on an inconsistent state.
            self.backend_protocol_error(&e.to_string(), out);
            return;
        }
        self.busy = true;
        self.started = false;
        self.cur = Some(Cur { sql, verdict, message, t0: now });
        Self::send_backend(payload, raw, out);
    }

    /// Decode and judge a statement text; writes the ERR when it is refused.
    pub(super) fn classify(&mut self, payload: &[u8], message: &'static str, judge: &mut dyn Judge, out: &mut Out) -> Classified {
        let Ok(sql) = std::str::from_utf8(payload.get(1..).unwrap_or(&[])) else {
            // The server decodes in the connection charset; the engine can only judge text it
            // reads exactly as the server will. Multi-byte charsets whose trail bytes include
            // '\' or quotes (GBK, SJIS, Big5) are never valid UTF-8, so this also closes the
            // charset-confusion class of quote escapes.
            let reason = format!(
                "The {message} text is not valid UTF-8, so the proxy cannot check it. \
                 Send statements as UTF-8 (e.g. connect with charset utf8mb4)."
            );
            self.block_raw(message, None, "mysql_non_utf8_text".into(), reason, ER_READ_ONLY, "unknown", Vec::new(), out);
            return Classified::Refused;
        };
        let verdict = match judge.judge(sql) {
            Judgement::Known(v) => v,
            Judgement::Pending => return Classified::Pending,
        };
        let sql: Arc<str> = Arc::from(sql);
        if !verdict.allowed {
            write_err(out, self.resp_seq, ER_READ_ONLY, &verdict.reason);
            out.record(Record::Blocked {
                sql: Some(sql),
                rule: verdict.rule.clone(),
                reason: verdict.reason.clone(),
                klass: verdict.klass.clone(),
                message,
                extra: Vec::new(),
            });
            crate::relay::add_operation(out, crate::relay::operation(&verdict));
            if message == "COM_STMT_PREPARE" {
                self.last_stmt = None;
            }
            return Classified::Refused;
        }
        Classified::Allowed(sql, verdict)
    }

    pub(super) fn com_query(&mut self, payload: &[u8], raw: Option<&[u8]>, now: Instant, judge: &mut dyn Judge, out: &mut Out) -> Step {
        match self.classify(payload, "COM_QUERY", judge, out) {
            Classified::Pending => Step::Pending,
            Classified::Refused => Step::Done,
            Classified::Allowed(sql, verdict) => {
                // `USE db` switches databases like COM_INIT_DB (also inside a multi-statement text)
                if verdict.verbs.iter().any(|v| v == "USE") && !self.use_allowed(&sql, &verdict, out) {
                    return Step::Done;
                }
                self.forward_cmd(payload, raw, Expect::Query, Some(sql), Some(verdict), "COM_QUERY", now, out);
                Step::Done
            }
        }
    }

    pub(super) fn com_prepare(&mut self, payload: &[u8], raw: Option<&[u8]>, now: Instant, judge: &mut dyn Judge, out: &mut Out) -> Step {
        match self.classify(payload, "COM_STMT_PREPARE", judge, out) {
            Classified::Pending => Step::Pending,
            Classified::Refused => Step::Done,
            Classified::Allowed(sql, verdict) => {
                self.forward_cmd(payload, raw, Expect::Prepare, Some(sql), Some(verdict), "COM_STMT_PREPARE", now, out);
                Step::Done
            }
        }
    }

    pub(super) fn use_allowed(&mut self, sql: &Arc<str>, verdict: &Verdict, out: &mut Out) -> bool {
        let db = if verdict.verbs.len() == 1 { parse_use(sql) } else { None };
        if let Some(db) = &db {
            if self.allowed_databases.iter().any(|a| a == db) {
                self.after = After::Database(db.clone());
                return true;
            }
        }
        let name = db.as_deref().unwrap_or("(unparsed)");
        let reason = format!(
            "Switching to database {name} is not allowed through this proxy; it allows {}. \
             Query tables of the allowed database instead.",
            self.allowed_db_text
        );
        let rule = "mysql_database_not_allowed".to_string();
        self.block_raw("COM_QUERY", Some(sql.clone()), rule, reason, ER_DBACCESS_DENIED, "session", Vec::new(), out);
        false
    }

    /// (statement id as the client sent it, -1 when missing; the recorded entry). MariaDB:
    /// id 0xffffffff = the statement prepared last (only if that PREPARE passed here).
    pub(super) fn stmt_entry(&self, payload: &[u8]) -> (i64, Option<StmtEntry>) {
        let Some(sid) = stmt_id(payload) else { return (-1, None) };
        let mut entry = self.stmts.get(&sid);
        if entry.is_none() && sid == u32::MAX {
            entry = self.last_stmt.and_then(|last| self.stmts.get(&last));
        }
        (i64::from(sid), entry.cloned())
    }

    pub(super) fn com_stmt(&mut self, payload: &[u8], raw: Option<&[u8]>, cmd: u8, now: Instant, out: &mut Out) {
        let (sid, entry) = self.stmt_entry(payload);
        let name = command_name(cmd);
        let rule = "mysql_unknown_statement_id";
        let Some((sql, verdict)) = entry else {
            if cmd == COM_STMT_CLOSE || cmd == COM_STMT_SEND_LONG_DATA {
                // These have no response: drop silently (the client expects nothing), audit.
                out.record(Record::Blocked {
                    sql: None,
                    rule: rule.to_string(),
                    reason: format!("{name} for statement id {sid}, which was not prepared through this proxy"),
                    klass: "unknown".to_string(),
                    message: name,
                    extra: Vec::new(),
                });
                return;
            }
            let reason = format!(
                "Unknown prepared statement handler ({sid}) given to {name}: only statements prepared \
                 through this proxy, whose SQL passed its read-only check, can be used."
            );
            self.block_raw(name, None, rule.to_string(), reason, ER_UNKNOWN_STMT_HANDLER, "unknown", Vec::new(), out);
            return;
        };
        match cmd {
            COM_STMT_EXECUTE => self.forward_cmd(payload, raw, Expect::Execute, Some(sql), Some(verdict), name, now, out),
            COM_STMT_FETCH => self.forward_cmd(payload, raw, Expect::Fetch, None, None, name, now, out),
            COM_STMT_RESET => self.forward_cmd(payload, raw, Expect::Simple, None, None, name, now, out),
            _ => {
                // CLOSE / SEND_LONG_DATA: the server sends no response
                if cmd == COM_STMT_CLOSE {
                    if let Ok(id) = u32::try_from(sid) {
                        self.stmts.remove(&id);
                        if self.last_stmt == Some(id) {
                            self.last_stmt = None;
                        }
                    }
                }
                Self::send_backend(payload, raw, out);
            }
        }
    }

    pub(super) fn com_init_db(&mut self, payload: &[u8], raw: Option<&[u8]>, now: Instant, out: &mut Out) {
        let db = String::from_utf8_lossy(payload.get(1..).unwrap_or(&[])).into_owned();
        if !self.allowed_databases.contains(&db) {
            let reason = format!(
                "Access denied to database '{db}': this proxy allows {}. Query tables of the allowed database instead.",
                self.allowed_db_text
            );
            let rule = "mysql_database_not_allowed".to_string();
            let extra = vec![("db.namespace", db)];
            self.block_raw("COM_INIT_DB", None, rule, reason, ER_DBACCESS_DENIED, "session", extra, out);
            return;
        }
        self.after = After::Database(db);
        self.forward_cmd(payload, raw, Expect::Simple, None, None, "COM_INIT_DB", now, out);
    }

    pub(super) fn refuse_command(&mut self, cmd: u8, out: &mut Out) {
        let name = command_name(cmd);
        let rule = format!("mysql_command_{}", name.get(4..).unwrap_or(name).to_lowercase());
        let reason = format!(
            "{name} is blocked: it {}. This connection is read-only; send read-only SQL (SELECT, SHOW, \
             DESCRIBE, EXPLAIN) with COM_QUERY or prepared statements.",
            blocked_command_why(cmd)
        );
        self.block_raw(name, None, rule, reason, ER_READ_ONLY, "admin", Vec::new(), out);
    }

    /// A refusal decided by the relay itself (not the engine).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn block_raw(
        &mut self,
        message: &'static str,
        sql: Option<Arc<str>>,
        rule: String,
        reason: String,
        e: ErrCode,
        klass: &str,
        extra: Vec<(&'static str, String)>,
        out: &mut Out,
    ) {
        write_err(out, self.resp_seq, e, &reason);
        out.record(Record::Blocked { sql, rule, reason, klass: klass.to_string(), message, extra });
    }

}

/// The statement id of a COM_STMT_* packet (4 bytes little-endian after the command byte).
fn stmt_id(payload: &[u8]) -> Option<u32> {
    let b = payload.get(1..5)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}