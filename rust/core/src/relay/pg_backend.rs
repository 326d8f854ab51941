//! Backend -> client half of [`PgRelay`] (postgres.py `_ready_backend`, `_param_violation`,
//! `_finish_segment`). One header scan per chunk (`pgwire::backend::scan`): rows are never
//! decoded, and a row larger than the chunk is forwarded before its end arrives (`bskip`).

use std::time::Instant;

use super::{block_error, put, sqlstate, Kind, PgRelay, Phase, DECOY_PREFIX};
use crate::pgwire::backend::{self, Event};
use crate::pgwire::build;
use crate::relay::{Out, Record};

/// Decoy number named in a backend error message: the first `__sdp_blocked_<n>__` token,
/// with `<n>` exactly as the relay wrote it (postgres.py `_decoy_error`).
fn decoy_number(message: &str) -> Option<u64> {
    let i = message.find(DECOY_PREFIX)?;
    let rest = message.get(i + DECOY_PREFIX.len()..)?;
    let j = rest.find("__")?;
    let digits = rest.get(..j)?;
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Encoding names compare like PostgreSQL's pg_char_to_encoding: case-insensitive,
/// punctuation ignored ('UTF-8', 'utf8' are UTF8). pg_startup.py `_enc` + UTF8_NAMES.
/// Any non-ASCII character makes the name "not UTF8" (default deny).
fn is_utf8_name(value: &str) -> bool {
    let mut norm = [0u8; 8];
    let mut n = 0usize;
    for b in value.bytes() {
        if !b.is_ascii() {
            return false;
        }
        if b.is_ascii_alphanumeric() {
            match norm.get_mut(n) {
                Some(slot) => *slot = b.to_ascii_lowercase(),
                None => return false, // longer than any accepted name
            }
            n += 1;
        }
    }
    matches!(norm.get(..n), Some(b"utf8") | Some(b"unicode"))
}

impl PgRelay {
    pub(super) fn on_backend_data(&mut self, data: &[u8], now: Instant, out: &mut Out) {
        if self.phase == Phase::Closed {
            return;
        }
        if self.bbuf.is_empty() {
            // Common case: scan and forward straight from the caller's buffer.
            let fwd = self.relay_backend(data, now, out);
            if self.phase != Phase::Closed {
                if let Some(rest) = data.get(fwd..) {
                    self.bbuf.extend_from_slice(rest);
                }
            }
        } else if self.bbuf.len() + data.len() < self.bneed {
            self.bbuf.extend_from_slice(data); // the inspected message is still incomplete
        } else {
            self.bbuf.extend_from_slice(data);
            let mut buf = std::mem::take(&mut self.bbuf);
            let fwd = self.relay_backend(&buf, now, out);
            if self.phase != Phase::Closed && fwd < buf.len() {
                buf.drain(..fwd.min(buf.len()));
                self.bbuf = buf;
            }
        }
        if self.phase == Phase::Draining && self.sent_z == self.recv_z {
            // Everything forwarded before the bad client message is answered: now the error.
            let err = self.deferred_fatal.take().unwrap_or_default();
            self.send_fatal_now(err, out);
        }
    }

    /// Relay what can be forwarded of `buf`; returns the bytes consumed (the rest is an
    /// incomplete inspected message, kept for the next chunk).
    fn relay_backend(&mut self, buf: &[u8], now: Instant, out: &mut Out) -> usize {
        let scan = match backend::scan(buf, self.bskip, self.cfg.max_inspected) {
            Ok(s) => s,
            Err(e) => {
                self.backend_protocol_error(&e.to_string(), out);
                return buf.len();
            }
        };
        self.bskip = scan.skip;
        self.bneed = scan.need;
        let fwd = scan.forward;
        let base = out.to_client.len();
        let mut run = 0usize; // buf[run..] is not yet passed on
        for ev in &scan.events {
            match &ev.event {
                Event::Ready { status } => {
                    self.txn = *status;
                    self.recv_z += 1;
                    if !self.inflight.is_empty() || !self.decoys.is_empty() {
                        self.finish_segment(now, out);
                    }
                }
                Event::Complete { rows, .. } => {
                    if let Some(head) = self.inflight.front_mut() {
                        if head.kind == Kind::Execute {
                            head.rows = *rows;
                            if let Some(e) = self.inflight.pop_front() {
                                Self::finish(e, now, out);
                            }
                        } else if let Some(n) = rows {
                            // A Query's rows: the sum of its CommandComplete counts.
                            head.rows = Some(head.rows.unwrap_or(0).saturating_add(*n));
                        }
                    }
                }
                Event::Error { severity, code, message } => {
                    if severity == "FATAL" || severity == "PANIC" {
                        self.fatal_forwarded = true;
                    }
                    if !self.decoys.is_empty() && code == "42601" {
                        if let Some(rep) = decoy_number(message).and_then(|n| self.decoys.remove(&n)) {
                            // The backend rejected a decoy: the client gets the block error.
                            put(&mut out.to_client, buf, run, ev.start);
                            out.to_client.extend_from_slice(&rep);
                            run = ev.end;
                            continue;
                        }
                    }
                    if let Some(rep) = self.copy_fail_pending.take() {
                        // The answer to the relay's CopyFail: replaced by the block error.
                        put(&mut out.to_client, buf, run, ev.start);
                        out.to_client.extend_from_slice(&rep);
                        run = ev.end;
                        continue;
                    }
                    let rz = self.recv_z;
                    if let Some(head) = self.inflight.front_mut() {
                        if head.seg == rz {
                            head.err = Some(code.to_string());
                            if head.kind == Kind::Execute {
                                if let Some(e) = self.inflight.pop_front() {
                                    Self::finish(e, now, out);
                                }
                            }
                        }
                    }
                }
                Event::EmptyQuery | Event::Suspended => {
                    if self.inflight.front().is_some_and(|h| h.kind == Kind::Execute) {
                        if let Some(e) = self.inflight.pop_front() {
                            Self::finish(e, now, out);
                        }
                    }
                }
                Event::Param { name, value } => {
                    if let Some((reason, rule)) = param_violation(name, value) {
                        // Nothing more of this chunk reaches the client (postgres.py).
                        out.to_client.truncate(base);
                        self.kill(&reason, rule, out);
                        return buf.len();
                    }
                }
                Event::CopyIn => {
                    // COPY FROM STDIN reached the backend (the engine should have blocked
                    // it): the client never sees CopyInResponse; the backend gets CopyFail
                    // and answers with an error, which is replaced by the relay's own.
                    put(&mut out.to_client, buf, run, ev.start);
                    run = ev.end;
                    out.event(
                        "alert",
                        vec![("reason", "backend entered COPY IN mode; aborted with CopyFail".to_string())],
                    );
                    self.copy_fail_pending = Some(block_error(
                        "copy-from-stdin",
                        "COPY ... FROM STDIN writes into a table and is blocked. \
                         Use COPY ... TO STDOUT or SELECT to read data.",
                        "write",
                    ));
                    out.to_backend
                        .extend_from_slice(&build::copy_fail("COPY FROM STDIN is blocked by sandbox-db-proxy"));
                }
                Event::CopyBoth => {
                    put(&mut out.to_client, buf, run, ev.start);
                    self.kill("backend entered COPY BOTH (replication) mode", "copy-both", out);
                    return buf.len();
                }
                Event::KeyData { .. } | Event::Auth { .. } | Event::NegotiateVersion => {
                    // Never after startup: dropped.
                    put(&mut out.to_client, buf, run, ev.start);
                    run = ev.end;
                }
                Event::CopyOut => {}
            }
        }
        put(&mut out.to_client, buf, run, fwd);
        fwd
    }

    /// A ReadyForQuery ended segment `recv_z - 1`: every statement sent before it is done
    /// (Executes after an error were skipped by the backend).
    fn finish_segment(&mut self, now: Instant, out: &mut Out) {
        let rz = self.recv_z;
        while self.inflight.front().is_some_and(|h| h.seg < rz) {
            let Some(mut e) = self.inflight.pop_front() else { break };
            if e.kind == Kind::Execute && e.err.is_none() && e.rows.is_none() {
                e.err = Some("skipped".to_string());
            }
            Self::finish(e, now, out);
        }
        if self.sent_z == rz && !self.decoys.is_empty() {
            self.decoys.clear(); // nothing in flight: remaining decoys were skipped
        }
    }

    fn backend_protocol_error(&mut self, detail: &str, out: &mut Out) {
        out.record(Record::Metric("backend_error"));
        out.event("protocol_error", vec![("reason", format!("invalid data from the database backend: {detail}"))]);
        let err = build::fatal(
            sqlstate::PROTOCOL_VIOLATION,
            "sandbox-db-proxy received invalid data from the database backend",
        );
        self.send_fatal_now(err, out);
    }
}

/// Backstop checks on ParameterStatus (docs/pg-relay.md, "What the relay watches on the way
/// back"): Some((reason, rule)) when the session must be killed.
fn param_violation(name: &str, value: &str) -> Option<(String, &'static str)> {
    let is = |s: &str| name.eq_ignore_ascii_case(s);
    if is("default_transaction_read_only") || is("transaction_read_only") {
        if !value.eq_ignore_ascii_case("on") {
            return Some((
                format!("the backend reports {name}={value}: the session is no longer read-only"),
                "read-only-disabled",
            ));
        }
    } else if is("client_encoding") {
        if !is_utf8_name(value) {
            return Some((
                format!("the backend reports client_encoding={value}; the relay only reads UTF8"),
                "client-encoding-changed",
            ));
        }
    } else if is("standard_conforming_strings") && !value.eq_ignore_ascii_case("on") {
        // With it off, backslashes escape quotes in '...' and the relay's lexer would no
        // longer see statement boundaries the way the server does.
        return Some((
            format!("the backend reports standard_conforming_strings={value}"),
            "standard-conforming-strings-off",
        ));
    }
    None
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn decoy_tokens() {
        assert_eq!(decoy_number("syntax error at or near \"__sdp_blocked_12__\""), Some(12));
        assert_eq!(decoy_number("__sdp_blocked_1___"), Some(1));
        assert_eq!(decoy_number("__sdp_blocked_01__"), None);
        assert_eq!(decoy_number("__sdp_blocked___"), None);
        assert_eq!(decoy_number("__sdp_blocked_1"), None);
        assert_eq!(decoy_number("__sdp_blocked_x1__ __sdp_blocked_2__"), None); // first only
        assert_eq!(decoy_number("__sdp_blocked_99999999999999999999999__"), None);
    }

    #[test]
    fn encodings() {
        for ok in ["UTF8", "utf-8", "'utf-8'", "Unicode", "U_T_F_8"] {
            assert!(is_utf8_name(ok), "{ok}");
        }
        for bad in ["LATIN1", "SQL_ASCII", "utf8\u{e9}", "utf16", "", "utf8x"] {
            assert!(!is_utf8_name(bad), "{bad}");
        }
        assert!(param_violation("Default_Transaction_Read_Only", "ON").is_none());
        assert!(param_violation("transaction_read_only", "off").is_some());
        assert!(param_violation("standard_conforming_strings", "off").is_some());
        assert!(param_violation("client_encoding", "LATIN1").is_some());
        assert!(param_violation("TimeZone", "UTC").is_none());
    }
}
