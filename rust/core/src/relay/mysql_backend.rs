//! Server responses of the MySQL relay (relay/mysql.rs): forwarding, the LOCAL INFILE
//! refusal, the end of a response (audit record, prepared statement ids, database switch,
//! COM_RESET_CONNECTION) and the proxy's own internal statements (backstop, read-only check).

use std::sync::Arc;
use std::time::Instant;

use super::text::*;
use super::{write_err, After, Cur, MyRelay};
use crate::mysqlwire::consts::*;
use crate::mysqlwire::framing::frame_into;
use crate::mysqlwire::scanner::{EndKind, Expect, Summary};
use crate::relay::{Out, Outcome, Record};

impl MyRelay {
    /// Response bytes (after any held ones): to the client, or into the capture.
    pub(super) fn pass(&mut self, chunk: &[u8], out: &mut Out) {
        let held = std::mem::take(&mut self.held);
        if self.forward {
            out.to_client.extend_from_slice(&held);
            out.to_client.extend_from_slice(chunk);
        } else if let Some(c) = self.capture.as_mut() {
            c.extend_from_slice(&held);
            c.extend_from_slice(chunk);
        }
    }

    /// LOCAL INFILE request (docs/mysql-relay.md "LOCAL INFILE"): never forwarded. The server
    /// gets an empty packet ("no file", sequence id + 1) so it ends the statement; its reply is
    /// swallowed and the client gets ERR 1148 in its place, with the sequence id it expects.
    pub(super) fn refuse_infile(&mut self, data: &[u8], start: usize, seq: u8, filename: &[u8], out: &mut Out) {
        if start > 0 {
            // held bytes belong to an earlier packet that completed in this chunk
            if self.forward {
                self.started = true;
            }
            self.pass(data.get(..start).unwrap_or(data), out);
        } else {
            // held bytes are the start of the request itself
            self.held.clear();
        }
        frame_into(&mut out.to_backend, &[], seq.wrapping_add(1));
        self.infile = Some((seq, self.forward));
        self.forward = false;
        let fname = String::from_utf8_lossy(filename);
        let mut fields = vec![("rule", "mysql_local_infile".to_string())];
        if let Some(sql) = self.cur.as_ref().and_then(|c| c.sql.as_ref()) {
            fields.push(("db.query.text", sql.to_string()));
        }
        fields.push((
            "reason",
            format!(
                "the database asked the proxy for local file {} (LOAD DATA LOCAL INFILE); refused, \
                 the client never saw the request",
                py_repr_str(&fname)
            ),
        ));
        out.event("alert", fields);
    }

    pub(super) fn response_done(&mut self, s: Summary, now: Instant, out: &mut Out) {
        if self.internal {
            self.setup_response(s, now, out);
            return;
        }
        let cur = self.cur.take();
        if let Some((seq, fwd)) = self.infile.take() {
            self.forward = fwd;
            if fwd {
                write_err(
                    out,
                    seq,
                    ER_NOT_ALLOWED_COMMAND,
                    "LOAD DATA LOCAL INFILE is refused by sandbox-db-proxy: the connection is read-only \
                     and never sends local files.",
                );
            }
        }
        match std::mem::replace(&mut self.after, After::Nothing) {
            After::Nothing => {}
            After::Database(db) => {
                if s.kind != EndKind::Err {
                    out.record(Record::Database(db));
                }
            }
            After::Reset => self.after_reset(&s, now, out),
        }
        let Some(cur) = cur else { return };
        if s.kind == EndKind::Prepared {
            if let (Some(sql), Some(v)) = (&cur.sql, &cur.verdict) {
                self.stmts.insert(s.stmt_id, (sql.clone(), v.clone()));
                self.last_stmt = Some(s.stmt_id);
            }
        }
        // PING, STATISTICS, FETCH, ...: not statements, no record
        let (Some(verdict), Some(sql)) = (cur.verdict, cur.sql) else { return };
        let seconds = now.saturating_duration_since(cur.t0).as_secs_f64();
        let message = cur.message;
        if s.kind == EndKind::Err {
            let code = s.err.as_ref().map(|e| e.code).unwrap_or(0);
            out.record(Record::Done {
                sql: sql.clone(),
                verdict,
                message,
                rows: Some(0),
                seconds,
                outcome: Outcome::Error(code.to_string()),
            });
            if code == ER_READ_ONLY.0 {
                out.event(
                    "alert",
                    vec![
                        ("rule", "mysql_backstop_caught_write".to_string()),
                        (
                            "reason",
                            "the engine allowed a statement the database refused as a write in its \
                             read-only session (the backstop held)"
                                .to_string(),
                        ),
                        ("db.query.text", sql.to_string()),
                    ],
                );
            }
            return;
        }
        let rows = if s.rows != 0 { s.rows } else { s.affected_rows };
        let session = verdict.allowed && verdict.klass == "session";
        out.record(Record::Done { sql, verdict, message, rows: Some(rows), seconds, outcome: Outcome::Ok });
        if session {
            // engine backstop (ARCHITECTURE.md guard 3): is the session still read-only?
            let check = vec![(self.read_only_check.clone(), true)];
            self.run_setup(check, None, now, out);
        }
    }

    pub(super) fn after_reset(&mut self, s: &Summary, now: Instant, out: &mut Out) {
        let reply = self.capture.take().unwrap_or_default();
        if s.kind == EndKind::Err {
            self.forward = true;
            out.to_client.extend_from_slice(&reply);
            return;
        }
        // the reset closed the server-side statements
        self.stmts.clear();
        self.last_stmt = None;
        let statements = self.setup_statements.clone();
        self.run_setup(statements, Some(reply), now, out);
    }

    // ------------------------------------------------------------------ internal statements
    // The proxy's own statements on the backend session (the backstop SETs, the read-only
    // check). Their responses are never forwarded; client packets wait in `pending`.

    pub(super) fn run_setup(&mut self, statements: Vec<(Arc<str>, bool)>, done: Option<Vec<u8>>, now: Instant, out: &mut Out) {
        self.setup_queue = statements.into();
        self.setup_done = done;
        self.forward = false;
        self.setup_next(now, out);
    }

    pub(super) fn setup_next(&mut self, now: Instant, out: &mut Out) {
        let Some((sql, check)) = self.setup_queue.pop_front() else {
            self.internal = false;
            self.forward = true;
            self.capture = None;
            if let Some(reply) = self.setup_done.take() {
                out.to_client.extend_from_slice(&reply);
            }
            return;
        };
        if let Err(e) = self.scan.expect(Expect::Query, 1) {
            self.backend_protocol_error(&e.to_string(), out);
            return;
        }
        self.internal = true;
        self.capture = Some(Vec::new());
        self.setup_check = check;
        self.resp_seq = 1;
        self.busy = true;
        let mut payload = Vec::with_capacity(sql.len() + 1);
        payload.push(COM_QUERY);
        payload.extend_from_slice(sql.as_bytes());
        frame_into(&mut out.to_backend, &payload, 0);
        self.cur = Some(Cur { sql: Some(sql), verdict: None, message: "setup", t0: now });
    }

    pub(super) fn setup_response(&mut self, s: Summary, now: Instant, out: &mut Out) {
        let sql = self.cur.take().and_then(|c| c.sql);
        if let Some((_, fwd)) = self.infile.take() {
            // a LOCAL INFILE request answered to an internal statement: nothing to tell the client
            self.forward = fwd;
        }
        let problem = if s.kind == EndKind::Err {
            let (code, msg) = s.err.as_ref().map(|e| (e.code, String::from_utf8_lossy(&e.message).into_owned())).unwrap_or_default();
            Some(format!("{} failed: {code} {msg}", py_repr_str(sql.as_deref().unwrap_or("?"))))
        } else if self.setup_check {
            expect_single_value_one(self.capture.as_deref().unwrap_or(&[]))
        } else {
            None
        };
        if let Some(problem) = problem {
            let reason = format!("could not keep the database session read-only ({problem})");
            self.internal = false;
            out.record(Record::Metric("backend_error"));
            // The client's last answer is already out; this ERR answers its next command
            // (sequence id 1), so it learns why the connection ends.
            out.event("alert", vec![("rule", "mysql_read_only_lost".to_string()), ("reason", reason.clone())]);
            write_err(out, 1, ER_UNKNOWN_ERROR, &format!("sandbox-db-proxy closed the connection: {reason}"));
            self.close(&reason, out);
            return;
        }
        self.setup_next(now, out);
    }
}
