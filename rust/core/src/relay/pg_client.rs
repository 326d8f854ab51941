//! Client -> backend half of [`PgRelay`] (postgres.py `_ready_client`). PostgreSQL docs,
//! "Frontend/Backend Protocol" > "Message Flow" ("Simple Query", "Extended Query",
//! "Function Call", "COPY Operations", "Termination") and "Message Formats".

use std::sync::Arc;
use std::time::Instant;

use super::{block_error, put, InFlight, Kind, PgRelay, Phase, Stmt, MAX_PREPARED};
use crate::pgwire::frontend::{self, Frame, FrontendMsg};
use crate::relay::{Judge, Judgement, Out, Record};

/// What becomes of one client message.
enum Step {
    /// Forwarded unchanged (stays in the current run of input bytes).
    Pass,
    /// Not forwarded.
    Drop,
    /// Replaced by these bytes (a decoy).
    Replace(Vec<u8>),
    /// Verdict pending: keep this message and everything after it.
    Hold,
    /// 'X' Terminate.
    Terminate,
    /// A message type that is not allowed after login.
    Unsupported,
}

/// The `n`-th NUL-terminated string of a message body (raw bytes: prepared statement and
/// portal names are keyed exactly as the backend keys them). The body was validated by
/// `frontend::decode`, so the field exists; a missing one reads as "".
#[inline]
fn cstr_field(body: &[u8], n: usize) -> &[u8] {
    body.split(|&c| c == 0).nth(n).unwrap_or(&[])
}

impl PgRelay {
    pub(super) fn on_client_data(&mut self, data: &[u8], now: Instant, judge: &mut dyn Judge, out: &mut Out) {
        if self.phase != Phase::Ready {
            return; // DRAINING / CLOSED: client input is no longer read
        }
        if self.cbuf.is_empty() {
            // Common case: whole messages straight from the caller's buffer, no copy.
            if data.is_empty() {
                return;
            }
            let used = self.relay_client(data, now, judge, out);
            if self.phase == Phase::Ready {
                if let Some(rest) = data.get(used..) {
                    self.cbuf.extend_from_slice(rest);
                }
            }
            return;
        }
        self.cbuf.extend_from_slice(data);
        if !self.held && self.cbuf.len() < self.cneed {
            return; // the incomplete message is still incomplete: don't split again
        }
        self.held = false;
        let mut buf = std::mem::take(&mut self.cbuf);
        let used = self.relay_client(&buf, now, judge, out);
        if self.phase == Phase::Ready && used < buf.len() {
            buf.drain(..used.min(buf.len()));
            self.cbuf = buf;
        }
    }

    /// Relay the complete messages at the start of `buf`; returns the bytes consumed (the
    /// rest is an incomplete message or, with `held`, the input from a pending message on).
    fn relay_client(&mut self, buf: &[u8], now: Instant, judge: &mut dyn Judge, out: &mut Out) -> usize {
        let split = match frontend::split(buf, self.cfg.max_message) {
            Ok(s) => s,
            Err(e) => {
                self.client_frame_error(e, out);
                return buf.len();
            }
        };
        self.cneed = split.need;
        let mut run = 0usize; // buf[run..] is not yet passed on
        for f in &split.frames {
            let msg = match frontend::decode(buf, f) {
                Ok(m) => m,
                Err(e) => {
                    put(&mut out.to_backend, buf, run, f.start);
                    self.client_frame_error(e, out);
                    return buf.len();
                }
            };
            match self.client_message(f, msg, buf, now, judge, out) {
                Step::Pass => {}
                Step::Drop => {
                    put(&mut out.to_backend, buf, run, f.start);
                    run = f.end;
                }
                Step::Replace(bytes) => {
                    put(&mut out.to_backend, buf, run, f.start);
                    out.to_backend.extend_from_slice(&bytes);
                    run = f.end;
                }
                Step::Hold => {
                    put(&mut out.to_backend, buf, run, f.start);
                    self.held = true;
                    return f.start;
                }
                Step::Terminate => {
                    put(&mut out.to_backend, buf, run, f.start);
                    self.client_terminate(out);
                    return buf.len();
                }
                Step::Unsupported => {
                    put(&mut out.to_backend, buf, run, f.start);
                    let detail = format!("unsupported frontend message type '{}'", f.tag as char);
                    self.protocol_error(&detail, out);
                    return buf.len();
                }
            }
        }
        put(&mut out.to_backend, buf, run, split.consumed);
        if split.bad {
            // The bytes at `consumed` are an invalid or oversized header: get its error.
            match frontend::split(buf.get(split.consumed..).unwrap_or(&[]), self.cfg.max_message) {
                Err(e) => self.client_frame_error(e, out),
                Ok(_) => self.protocol_error("invalid message", out),
            }
            return buf.len();
        }
        split.consumed
    }

    fn client_message(
        &mut self,
        f: &Frame,
        msg: FrontendMsg<'_>,
        buf: &[u8],
        now: Instant,
        judge: &mut dyn Judge,
        out: &mut Out,
    ) -> Step {
        let body = f.body(buf).unwrap_or_default();
        match msg {
            FrontendMsg::Query { sql } => {
                if self.skip {
                    return Step::Drop; // the backend would ignore it too (error recovery)
                }
                self.statement(None, b"", sql, now, judge, out)
            }
            FrontendMsg::Parse { name, sql, .. } => {
                if self.skip {
                    return Step::Drop;
                }
                self.statement(Some(name), cstr_field(body, 0), sql, now, judge, out)
            }
            FrontendMsg::Bind { statement, .. } => {
                if self.skip {
                    return Step::Drop;
                }
                let Some(st) = self.stmts.get(cstr_field(body, 1)).cloned() else {
                    return self.refuse_unknown("Bind", statement, out);
                };
                let portal = cstr_field(body, 0);
                if let Some(slot) = self.portals.get_mut(portal) {
                    *slot = st;
                } else {
                    if self.portals.len() >= MAX_PREPARED {
                        // Only used for audit text; the backend drops portals at
                        // transaction end anyway.
                        self.portals.clear();
                    }
                    self.portals.insert(portal, st);
                }
                Step::Pass
            }
            FrontendMsg::Execute { .. } => {
                if self.skip {
                    return Step::Drop;
                }
                let (sql, verdict) = match self.portals.get(cstr_field(body, 0)) {
                    Some(st) => (Arc::clone(&st.sql), Arc::clone(&st.verdict)),
                    None => (Arc::clone(&self.empty_sql), Arc::clone(&self.no_verdict)),
                };
                self.inflight.push_back(InFlight {
                    kind: Kind::Execute,
                    sql,
                    verdict,
                    t0: now,
                    rows: None,
                    seg: self.sent_z,
                    err: None,
                });
                Step::Pass
            }
            FrontendMsg::Describe { kind, name } => {
                if self.skip {
                    return Step::Drop;
                }
                let raw = cstr_field(body.get(1..).unwrap_or(&[]), 0);
                if kind == b'S' && !self.stmts.contains_key(raw) {
                    return self.refuse_unknown("Describe", name, out);
                }
                Step::Pass
            }
            FrontendMsg::Close { kind, .. } => {
                if self.skip {
                    return Step::Drop;
                }
                let raw = cstr_field(body.get(1..).unwrap_or(&[]), 0);
                if kind == b'S' {
                    self.stmts.remove(raw);
                } else {
                    self.portals.remove(raw);
                }
                Step::Pass
            }
            FrontendMsg::Other => match f.tag {
                b'S' => {
                    self.skip = false;
                    self.sent_z += 1;
                    Step::Pass
                }
                b'H' => Step::Pass, // Flush: harmless
                b'X' => Step::Terminate,
                b'F' => {
                    if self.skip {
                        return Step::Drop;
                    }
                    // Calls a function by OID, no SQL to judge: always refused.
                    let err = self.block(
                        "function-call-message",
                        "The FunctionCall protocol message calls a server function by OID without \
                         SQL, so its effect cannot be checked; it is blocked. Call the function in \
                         a SELECT statement instead (read-only functions are allowed).",
                        "function",
                        None,
                        "FunctionCall",
                        out,
                    );
                    let decoy = self.decoy(true, "", err);
                    self.sent_z += 1;
                    Step::Replace(decoy)
                }
                // COPY FROM STDIN data: never forwarded (COPY FROM is blocked, and a
                // CopyInResponse is answered with CopyFail by the relay itself).
                b'd' | b'c' | b'f' => Step::Drop,
                _ => Step::Unsupported,
            },
        }
    }

    /// A Query (`parse_name` None) or a Parse (`parse_name` Some(decoded name), `raw_name`).
    fn statement(
        &mut self,
        parse_name: Option<Option<&str>>,
        raw_name: &[u8],
        sql: Option<&str>,
        now: Instant,
        judge: &mut dyn Judge,
        out: &mut Out,
    ) -> Step {
        let is_query = parse_name.is_none();
        let message = if is_query { "Query" } else { "Parse" };
        // (rule, reason, class) of a block, or the verdict of an allowed statement.
        let mut op: Option<String> = None;
        let decided = if !is_query
            && !raw_name.is_empty()
            && self.stmts.len() >= MAX_PREPARED
            && !self.stmts.contains_key(raw_name)
        {
            Err((
                "too-many-prepared-statements".to_string(),
                format!(
                    "This connection already holds {MAX_PREPARED} named prepared statements; \
                     Close some (or DEALLOCATE) before preparing more, or use the unnamed statement."
                ),
                "unknown".to_string(),
            ))
        } else {
            match sql {
                None => Err((
                    "invalid-encoding".to_string(),
                    "The statement text is not valid UTF-8, so it cannot be checked; it is blocked. \
                     Send UTF-8 text (client_encoding UTF8)."
                        .to_string(),
                    "unknown".to_string(),
                )),
                // The empty query is not judged: the backend answers EmptyQueryResponse.
                Some("") => Ok(Arc::clone(&self.no_verdict)),
                Some(text) => match judge.judge(text) {
                    Judgement::Pending => return Step::Hold,
                    Judgement::Known(v) if v.allowed => Ok(v),
                    Judgement::Known(v) => {
                        op = crate::relay::operation(&v);
                        Err((v.rule.clone(), v.reason.clone(), v.klass.clone()))
                    }
                },
            }
        };
        match decided {
            Ok(verdict) => {
                let text = match sql {
                    // A driver re-Parsing the same text into the same (usually unnamed)
                    // statement keeps the stored copy: no allocation per statement.
                    Some(s) if !s.is_empty() => match self.stmts.get(raw_name) {
                        Some(st) if !is_query && &*st.sql == s => Arc::clone(&st.sql),
                        _ => Arc::from(s),
                    },
                    _ => Arc::clone(&self.empty_sql),
                };
                if is_query {
                    self.inflight.push_back(InFlight {
                        kind: Kind::Query,
                        sql: text,
                        verdict,
                        t0: now,
                        rows: None,
                        seg: self.sent_z,
                        err: None,
                    });
                    self.sent_z += 1;
                } else {
                    self.stmts.insert(raw_name, Stmt { sql: text, verdict });
                }
                Step::Pass
            }
            Err((rule, reason, klass)) => {
                let err = self.block(&rule, &reason, &klass, sql, message, out);
                crate::relay::add_operation(out, op);
                match parse_name {
                    None => {
                        let decoy = self.decoy(true, "", err);
                        self.sent_z += 1;
                        Step::Replace(decoy)
                    }
                    Some(name) => {
                        self.stmts.remove(raw_name);
                        self.skip = true;
                        Step::Replace(self.decoy(false, name.unwrap_or(""), err))
                    }
                }
            }
        }
    }

    /// Bind / Describe naming a statement that no Parse created here.
    fn refuse_unknown(&mut self, message: &'static str, name: Option<&str>, out: &mut Out) -> Step {
        let what = match name {
            Some(n) if !n.is_empty() => format!("prepared statement \"{n}\""),
            _ => "the unnamed prepared statement".to_string(),
        };
        let reason = format!(
            "{message} refers to {what}, which was not prepared (Parse) on this connection through the \
             proxy, so it is blocked. Prepare the statement with a Parse message (your driver's prepare) first."
        );
        let err = self.block("unknown-prepared-statement", &reason, "unknown", None, message, out);
        self.skip = true;
        Step::Replace(self.decoy(false, "__sdp_unknown__", err))
    }

    /// Record a block; returns the ErrorResponse the client will get for its decoy.
    fn block(
        &mut self,
        rule: &str,
        reason: &str,
        klass: &str,
        sql: Option<&str>,
        message: &'static str,
        out: &mut Out,
    ) -> Vec<u8> {
        out.record(Record::Blocked {
            sql: sql.map(Arc::from),
            rule: rule.to_string(),
            reason: reason.to_string(),
            klass: klass.to_string(),
            message,
            extra: Vec::new(),
        });
        block_error(rule, reason, klass)
    }
}
