//! Tests of the MySQL relay (relay/mysql.rs), driven without sockets: exact bytes out for
//! each command class, pipelining, pending verdicts, the backstop, LOCAL INFILE and responses
//! split at every byte offset. The same scenarios as tests/test_mysql_sansio.py where both exist.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::*;
use crate::mysqlwire::consts::*;
use crate::mysqlwire::framing::frame;
use crate::mysqlwire::packets::{eof_packet, ok_packet};
use crate::relay::{Judgement, Outcome};

#[path = "mysql_tests_wire.rs"]
mod wire;

/// Verdicts by exact text; anything else is Pending (the Python engine has not answered).
#[derive(Default)]
struct FakeJudge {
    known: HashMap<String, Arc<Verdict>>,
    asked: Vec<String>,
}

impl Judge for FakeJudge {
    fn judge(&mut self, sql: &str) -> Judgement {
        self.asked.push(sql.to_string());
        match self.known.get(sql) {
            Some(v) => Judgement::Known(v.clone()),
            None => Judgement::Pending,
        }
    }
}

fn allow(klass: &str, verbs: &[&str]) -> Arc<Verdict> {
    Arc::new(Verdict {
        allowed: true,
        rule: "read_only".into(),
        klass: klass.into(),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        ..Default::default()
    })
}

fn block(rule: &str, reason: &str) -> Arc<Verdict> {
    Arc::new(Verdict {
        allowed: false,
        rule: rule.into(),
        reason: reason.into(),
        klass: "write".into(),
        verbs: vec!["DELETE".into()],
        ..Default::default()
    })
}

fn judge() -> FakeJudge {
    let mut j = FakeJudge::default();
    j.known.insert("SELECT 1".into(), allow("read", &["SELECT"]));
    j.known.insert("SELECT ?".into(), allow("read", &["SELECT"]));
    j.known.insert("DELETE FROM users".into(), block("write_statement", "DELETE is a write."));
    j.known.insert("SET NAMES utf8mb4".into(), allow("session", &["SET"]));
    j.known.insert("USE shop".into(), allow("session", &["USE"]));
    j.known.insert("USE other".into(), allow("session", &["USE"]));
    j.known.insert("USE shop; SELECT 1".into(), allow("session", &["USE", "SELECT"]));
    j
}

fn config() -> MyRelayConfig {
    MyRelayConfig {
        max_message: 1 << 20,
        deprecate_eof: false,
        mariadb: true,
        allowed_databases: vec!["shop".into()],
        allowed_db_text: "'shop'".into(),
        setup_statements: vec![
            ("SET SESSION TRANSACTION READ ONLY".into(), false),
            ("SET SESSION max_statement_time = 5.000".into(), false),
            ("SELECT @@session.tx_read_only".into(), true),
        ],
        read_only_check: "SELECT @@session.tx_read_only".into(),
    }
}

/// A relay and its judge, with helpers that return what came out of each call.
struct T {
    r: MyRelay,
    j: FakeJudge,
    now: Instant,
}

impl T {
    fn new() -> T {
        T { r: MyRelay::new(config()), j: judge(), now: Instant::now() }
    }
    fn client(&mut self, data: &[u8]) -> Out {
        let mut out = Out::default();
        self.r.client_data(data, self.now, &mut self.j, &mut out);
        out
    }
    fn backend(&mut self, data: &[u8]) -> Out {
        let mut out = Out::default();
        self.r.backend_data(data, self.now, &mut self.j, &mut out);
        out
    }
}

fn packets(data: &[u8]) -> Vec<(u8, Vec<u8>)> {
    match PacketDecoder::new(1 << 30).feed(data) {
        Ok(Decoded::Packets(ps)) => ps.into_iter().map(|p| (p.seq, p.payload)).collect(),
        Ok(Decoded::NeedMore) => vec![],
        Err(e) => panic!("{e}"),
    }
}

/// (seq, code, sqlstate, message) of the single ERR packet in `data`.
fn the_err(data: &[u8]) -> (u8, u16, String, String) {
    let ps = packets(data);
    assert_eq!(ps.len(), 1, "{ps:?}");
    let (seq, p) = &ps[0];
    assert_eq!(p[0], 0xff);
    let code = u16::from_le_bytes([p[1], p[2]]);
    (*seq, code, String::from_utf8_lossy(&p[4..9]).into(), String::from_utf8_lossy(&p[9..]).into())
}

fn ok(seq: u8) -> Vec<u8> {
    ok_packet(seq, 0, 0, 2, 0, b"", false)
}

/// A one-column, one-row text result (no DEPRECATE_EOF).
fn one_value(value: &[u8], seq0: u8) -> Vec<u8> {
    let mut b = frame(b"\x01", seq0);
    b.extend(frame(b"\x03def\x00\x00\x00\x01v\x00\x0c\x3f\x00\x01\x00\x00\x00\x08\x00\x00\x00\x00\x00", seq0 + 1));
    b.extend(eof_packet(seq0 + 2, 0, 2));
    let mut row = vec![value.len() as u8];
    row.extend_from_slice(value);
    b.extend(frame(&row, seq0 + 3));
    b.extend(eof_packet(seq0 + 4, 0, 2));
    b
}

fn query(sql: &str) -> Vec<u8> {
    let mut p = vec![COM_QUERY];
    p.extend_from_slice(sql.as_bytes());
    frame(&p, 0)
}

fn stmt_cmd(cmd: u8, id: u32, rest: &[u8]) -> Vec<u8> {
    let mut p = vec![cmd];
    p.extend_from_slice(&id.to_le_bytes());
    p.extend_from_slice(rest);
    frame(&p, 0)
}

/// PREPARE OK for `id` with one parameter and no columns, then its definition and EOF.
fn prepare_ok(id: u32) -> Vec<u8> {
    let mut p = vec![0u8];
    p.extend_from_slice(&id.to_le_bytes());
    p.extend_from_slice(b"\x00\x00\x01\x00\x00\x00\x00");
    let mut b = frame(&p, 1);
    b.extend(frame(b"\x03def?", 2));
    b.extend(eof_packet(3, 0, 2));
    b
}

fn event<'a>(out: &'a Out, name: &str) -> Option<&'a Vec<(&'static str, String)>> {
    out.records.iter().find_map(|r| match r {
        Record::Event { event, fields } if *event == name => Some(fields),
        _ => None,
    })
}

fn field<'a>(fields: &'a [(&'static str, String)], key: &str) -> &'a str {
    fields.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str()).unwrap_or("")
}

type BlockedView<'a> = (&'a Option<Arc<str>>, &'a str, &'a str, &'a str, &'static str, &'a Vec<(&'static str, String)>);

/// (sql, rule, reason, klass, message, extra) of the first Blocked record.
fn blocked(out: &Out) -> BlockedView<'_> {
    out.records
        .iter()
        .find_map(|r| match r {
            Record::Blocked { sql, rule, reason, klass, message, extra } => {
                Some((sql, rule.as_str(), reason.as_str(), klass.as_str(), *message, extra))
            }
            _ => None,
        })
        .expect("a Blocked record")
}

fn done(out: &Out) -> (&str, &'static str, Option<u64>, &Outcome) {
    out.records
        .iter()
        .find_map(|r| match r {
            Record::Done { sql, message, rows, outcome, .. } => Some((&**sql, *message, *rows, outcome)),
            _ => None,
        })
        .expect("a Done record")
}

#[test]
fn allowed_query_is_forwarded_and_audited_after_its_response() {
    let mut t = T::new();
    let q = query("SELECT 1");
    let out = t.client(&q);
    assert_eq!(out.to_backend, q);
    assert!(out.to_client.is_empty() && out.records.is_empty());
    assert!(!t.r.is_idle());
    let resp = one_value(b"1", 1);
    let out = t.backend(&resp);
    assert_eq!(out.to_client, resp);
    assert_eq!(done(&out), ("SELECT 1", "COM_QUERY", Some(1), &Outcome::Ok));
    assert!(t.r.is_idle() && t.r.wants_client_data() && !out.close);
}

#[test]
fn blocked_query_gets_err_1792_and_never_reaches_the_backend() {
    let mut t = T::new();
    let out = t.client(&query("DELETE FROM users"));
    assert!(out.to_backend.is_empty());
    assert_eq!(the_err(&out.to_client), (1, 1792, "25006".into(), "DELETE is a write.".into()));
    let (sql, rule, reason, klass, message, _) = blocked(&out);
    assert_eq!((sql.as_deref(), rule, reason, klass, message), (Some("DELETE FROM users"), "write_statement", "DELETE is a write.", "write", "COM_QUERY"));
    assert!(t.r.is_idle());
}

#[test]
fn non_utf8_text_is_refused() {
    let mut t = T::new();
    let out = t.client(&frame(b"\x03SELECT '\xbf\x27'", 0));
    assert!(out.to_backend.is_empty());
    let (seq, code, _, msg) = the_err(&out.to_client);
    assert_eq!((seq, code), (1, 1792));
    assert!(msg.starts_with("The COM_QUERY text is not valid UTF-8"), "{msg}");
    assert_eq!(blocked(&out).1, "mysql_non_utf8_text");
    assert!(t.j.asked.is_empty());
}

#[test]
fn pending_verdict_holds_input_until_resumed() {
    let mut t = T::new();
    let out = t.client(&query("SELECT 2"));
    assert!(out.to_backend.is_empty() && out.to_client.is_empty());
    assert!(!t.r.wants_client_data() && !t.r.is_idle());
    // more input behind it waits too
    let out = t.client(&frame(b"\x0e", 0));
    assert!(out.to_backend.is_empty());
    // still unknown
    let out = t.client(&[]);
    assert!(out.to_backend.is_empty() && !t.r.wants_client_data());
    t.j.known.insert("SELECT 2".into(), allow("read", &["SELECT"]));
    let out = t.client(&[]);
    assert_eq!(out.to_backend, query("SELECT 2"));
    assert!(t.r.wants_client_data());
    let out = t.backend(&one_value(b"2", 1));
    assert_eq!(done(&out).0, "SELECT 2");
    assert_eq!(out.to_backend, frame(b"\x0e", 0)); // then the ping
    let out = t.backend(&ok(1));
    assert_eq!(out.to_client, ok(1));
    assert!(out.records.is_empty() && t.r.is_idle());
}

#[test]
fn pending_verdict_in_the_middle_of_a_pipeline_keeps_the_order() {
    let mut t = T::new();
    let mut chunk = query("SELECT 1");
    chunk.extend(query("SELECT 3"));
    chunk.extend(query("DELETE FROM users"));
    let out = t.client(&chunk);
    assert_eq!(out.to_backend, query("SELECT 1"));
    let out = t.backend(&one_value(b"1", 1));
    assert!(out.to_backend.is_empty() && !t.r.wants_client_data());
    t.j.known.insert("SELECT 3".into(), allow("read", &["SELECT"]));
    let out = t.client(&[]);
    assert_eq!(out.to_backend, query("SELECT 3"));
    let out = t.backend(&one_value(b"3", 1));
    let resp = one_value(b"3", 1);
    assert_eq!(&out.to_client[..resp.len()], &resp[..]);
    assert_eq!(the_err(&out.to_client[resp.len()..]).1, 1792); // the DELETE's ERR, after the result
}

#[test]
fn pipelined_commands_wait_for_the_response() {
    let mut t = T::new();
    let mut chunk = query("SELECT 1");
    chunk.extend(query("DELETE FROM users"));
    chunk.extend(frame(b"\x0e", 0));
    let out = t.client(&chunk);
    assert_eq!(out.to_backend, query("SELECT 1"));
    assert!(out.to_client.is_empty());
    let resp = one_value(b"1", 1);
    let out = t.backend(&resp);
    assert_eq!(&out.to_client[..resp.len()], &resp[..]);
    assert_eq!(the_err(&out.to_client[resp.len()..]).0, 1);
    assert_eq!(out.to_backend, frame(b"\x0e", 0));
    let out = t.backend(&ok(1));
    assert_eq!(out.to_client, ok(1));
}

#[test]
fn many_pipelined_commands_pause_reading() {
    let mut t = T::new();
    t.client(&query("SELECT 1"));
    let mut chunk = Vec::new();
    for _ in 0..(PENDING_PAUSE + 1) {
        chunk.extend(frame(b"\x0e", 0));
    }
    t.client(&chunk);
    assert!(!t.r.wants_client_data());
    t.backend(&one_value(b"1", 1));
    for _ in 0..(PENDING_PAUSE / 2) {
        assert!(!t.r.wants_client_data());
        t.backend(&ok(1));
    }
    assert!(t.r.wants_client_data());
}

#[test]
fn prepare_execute_close_and_unknown_ids() {
    let mut t = T::new();
    let prep = frame(b"\x16SELECT ?", 0);
    assert_eq!(t.client(&prep).to_backend, prep);
    let out = t.backend(&prepare_ok(5));
    assert_eq!(out.to_client, prepare_ok(5));
    assert_eq!(done(&out), ("SELECT ?", "COM_STMT_PREPARE", Some(0), &Outcome::Ok));
    // EXECUTE of the recorded id: the client's bytes, unchanged
    let exec = stmt_cmd(COM_STMT_EXECUTE, 5, b"\x00\x01\x00\x00\x00\x01\x03\x00\x01");
    assert_eq!(t.client(&exec).to_backend, exec);
    let out = t.backend(&ok(1));
    assert_eq!(out.to_client, ok(1));
    assert_eq!(done(&out), ("SELECT ?", "COM_STMT_EXECUTE", Some(0), &Outcome::Ok));
    // MariaDB: -1 is the statement prepared last
    let exec_last = stmt_cmd(COM_STMT_EXECUTE, u32::MAX, b"\x00\x01\x00\x00\x00");
    assert_eq!(t.client(&exec_last).to_backend, exec_last);
    assert_eq!(done(&t.backend(&ok(1))).1, "COM_STMT_EXECUTE");
    // unknown id: ERR 1243, nothing forwarded
    let out = t.client(&stmt_cmd(COM_STMT_EXECUTE, 6, b"\x00\x01\x00\x00\x00"));
    assert!(out.to_backend.is_empty());
    let (seq, code, state, msg) = the_err(&out.to_client);
    assert_eq!((seq, code, state.as_str()), (1, 1243, "HY000"));
    assert!(msg.starts_with("Unknown prepared statement handler (6) given to COM_STMT_EXECUTE"), "{msg}");
    // too short for an id
    let out = t.client(&frame(b"\x17\x05", 0));
    assert!(the_err(&out.to_client).3.starts_with("Unknown prepared statement handler (-1)"));
    // CLOSE of an unknown id: no response, dropped, audited
    let out = t.client(&stmt_cmd(COM_STMT_CLOSE, 9, b""));
    assert!(out.to_backend.is_empty() && out.to_client.is_empty());
    let (sql, rule, reason, _, message, _) = blocked(&out);
    assert_eq!((sql, rule, message), (&None, "mysql_unknown_statement_id", "COM_STMT_CLOSE"));
    assert_eq!(reason, "COM_STMT_CLOSE for statement id 9, which was not prepared through this proxy");
    // CLOSE of the known id: forwarded (no response), then the id is unknown
    let close = stmt_cmd(COM_STMT_CLOSE, 5, b"");
    let out = t.client(&close);
    assert_eq!(out.to_backend, close);
    assert!(t.r.is_idle());
    let out = t.client(&exec);
    assert_eq!(the_err(&out.to_client).1, 1243);
    let out = t.client(&exec_last);
    assert_eq!(the_err(&out.to_client).1, 1243);
}

#[test]
fn fetch_and_reset_of_known_statements_are_relayed() {
    let mut t = T::new();
    t.client(&frame(b"\x16SELECT ?", 0));
    t.backend(&prepare_ok(7));
    let fetch = stmt_cmd(COM_STMT_FETCH, 7, &10u32.to_le_bytes());
    assert_eq!(t.client(&fetch).to_backend, fetch);
    let mut rows = frame(b"\x00\x00\x01", 1);
    rows.extend(eof_packet(2, 0, 2 | 0x80));
    let out = t.backend(&rows);
    assert_eq!(out.to_client, rows);
    assert!(out.records.is_empty());
    let reset = stmt_cmd(COM_STMT_RESET, 7, b"");
    assert_eq!(t.client(&reset).to_backend, reset);
    assert_eq!(t.backend(&ok(1)).to_client, ok(1));
    let out = t.client(&stmt_cmd(COM_STMT_SEND_LONG_DATA, 8, b"\x00\x00abc"));
    assert!(out.to_client.is_empty() && out.to_backend.is_empty());
    assert_eq!(blocked(&out).4, "COM_STMT_SEND_LONG_DATA");
}

#[test]
fn blocked_prepare_forgets_the_last_statement() {
    let mut t = T::new();
    t.j.known.insert("DELETE FROM t WHERE id = ?".into(), block("write_statement", "no"));
    t.client(&frame(b"\x16SELECT ?", 0));
    t.backend(&prepare_ok(3));
    let out = t.client(&frame(b"\x16DELETE FROM t WHERE id = ?", 0));
    assert_eq!(blocked(&out).4, "COM_STMT_PREPARE");
    let out = t.client(&stmt_cmd(COM_STMT_EXECUTE, u32::MAX, b"\x00\x01\x00\x00\x00"));
    assert_eq!(the_err(&out.to_client).1, 1243);
}

#[test]
fn use_of_an_allowed_database_switches_then_checks_read_only() {
    let mut t = T::new();
    let out = t.client(&query("USE shop"));
    assert_eq!(out.to_backend, query("USE shop"));
    let out = t.backend(&ok(1));
    assert_eq!(out.to_client, ok(1));
    assert!(matches!(&out.records[0], Record::Database(db) if db == "shop"));
    assert!(matches!(&out.records[1], Record::Done { .. }));
    // a session-class statement: the read-only check runs before anything else
    assert_eq!(out.to_backend, query("SELECT @@session.tx_read_only"));
    assert!(!t.r.is_idle());
    let out = t.client(&frame(b"\x0e", 0));
    assert!(out.to_backend.is_empty()); // waits for the check
    let out = t.backend(&one_value(b"1", 1));
    assert!(out.to_client.is_empty() && out.records.is_empty());
    assert_eq!(out.to_backend, frame(b"\x0e", 0));
    assert_eq!(t.backend(&ok(1)).to_client, ok(1));
}

#[test]
fn use_of_another_database_is_refused() {
    let mut t = T::new();
    for (sql, name) in [("USE other", "other"), ("USE shop; SELECT 1", "(unparsed)")] {
        let out = t.client(&query(sql));
        assert!(out.to_backend.is_empty());
        let (seq, code, state, msg) = the_err(&out.to_client);
        assert_eq!((seq, code, state.as_str()), (1, 1044, "42000"));
        assert_eq!(
            msg,
            format!("Switching to database {name} is not allowed through this proxy; it allows 'shop'. Query tables of the allowed database instead.")
        );
        let (s, rule, _, klass, message, _) = blocked(&out);
        assert_eq!((s.as_deref(), rule, klass, message), (Some(sql), "mysql_database_not_allowed", "session", "COM_QUERY"));
    }
}

#[test]
fn init_db() {
    let mut t = T::new();
    let out = t.client(&frame(b"\x02mysql", 0));
    assert!(out.to_backend.is_empty());
    let (seq, code, _, msg) = the_err(&out.to_client);
    assert_eq!((seq, code), (1, 1044));
    assert_eq!(msg, "Access denied to database 'mysql': this proxy allows 'shop'. Query tables of the allowed database instead.");
    let (_, rule, _, klass, message, extra) = blocked(&out);
    assert_eq!((rule, klass, message), ("mysql_database_not_allowed", "session", "COM_INIT_DB"));
    assert_eq!(extra, &vec![("db.namespace", "mysql".to_string())]);
    // allowed, but the server refuses: no switch
    let init = frame(b"\x02shop", 0);
    assert_eq!(t.client(&init).to_backend, init);
    let out = t.backend(&err_packet(1, 1049, "42000", b"Unknown database"));
    assert!(out.records.is_empty());
    t.client(&init);
    let out = t.backend(&ok(1));
    assert!(matches!(&out.records[..], [Record::Database(db)] if db == "shop"));
}

#[test]
fn reset_connection_holds_ok_until_the_backstop_is_back() {
    let mut t = T::new();
    t.client(&frame(b"\x16SELECT ?", 0));
    t.backend(&prepare_ok(5));
    let out = t.client(&frame(b"\x1f", 0));
    assert_eq!(out.to_backend, frame(b"\x1f", 0));
    let out = t.backend(&ok(1));
    assert!(out.to_client.is_empty()); // held
    assert_eq!(packets(&out.to_backend), vec![(0, b"\x03SET SESSION TRANSACTION READ ONLY".to_vec())]);
    let out = t.backend(&ok(1));
    assert_eq!(packets(&out.to_backend), vec![(0, b"\x03SET SESSION max_statement_time = 5.000".to_vec())]);
    let out = t.backend(&ok(1));
    assert_eq!(packets(&out.to_backend), vec![(0, b"\x03SELECT @@session.tx_read_only".to_vec())]);
    assert!(out.to_client.is_empty());
    let out = t.backend(&one_value(b"1", 1));
    assert_eq!(out.to_client, ok(1));
    assert!(t.r.is_idle());
    let out = t.client(&stmt_cmd(COM_STMT_EXECUTE, 5, b"\x00\x01\x00\x00\x00"));
    assert_eq!(the_err(&out.to_client).1, 1243);
    // a refused reset: its ERR goes out at once, statements stay
    t.client(&frame(b"\x16SELECT ?", 0));
    t.backend(&prepare_ok(6));
    t.client(&frame(b"\x1f", 0));
    let e = err_packet(1, 1047, "08S01", b"Unknown command");
    let out = t.backend(&e);
    assert_eq!(out.to_client, e);
    assert!(out.to_backend.is_empty());
    let exec = stmt_cmd(COM_STMT_EXECUTE, 6, b"\x00\x01\x00\x00\x00");
    assert_eq!(t.client(&exec).to_backend, exec);
}

#[test]
fn session_statement_read_only_lost_kills_the_session() {
    let mut t = T::new();
    t.client(&query("SET NAMES utf8mb4"));
    let out = t.backend(&ok(1));
    assert_eq!(out.to_client, ok(1));
    assert_eq!(out.to_backend, query("SELECT @@session.tx_read_only"));
    t.client(&query("SELECT 1")); // queued behind the check
    let out = t.backend(&one_value(b"0", 1));
    assert!(out.close && t.r.is_closed());
    assert!(out.to_backend.is_empty());
    let (seq, code, state, msg) = the_err(&out.to_client);
    assert_eq!((seq, code, state.as_str()), (1, 1105, "HY000"));
    let reason = "could not keep the database session read-only (the database reports the session is no longer read-only (value b'0'))";
    assert_eq!(msg, format!("sandbox-db-proxy closed the connection: {reason}"));
    let alert = event(&out, "alert").expect("alert");
    assert_eq!((field(alert, "rule"), field(alert, "reason")), ("mysql_read_only_lost", reason));
    assert_eq!(field(event(&out, "disconnect").expect("disconnect"), "reason"), reason);
    assert!(out.records.iter().any(|r| matches!(r, Record::Metric("backend_error"))));
    // nothing more happens
    assert!(t.client(&query("SELECT 1")).to_backend.is_empty());
}

#[test]
fn failing_internal_statement_names_it() {
    let mut t = T::new();
    t.client(&frame(b"\x1f", 0));
    t.backend(&ok(1));
    let out = t.backend(&err_packet(1, 1227, "42000", b"Access denied"));
    let (_, code, _, msg) = the_err(&out.to_client);
    assert_eq!(code, 1105);
    assert!(msg.ends_with("('SET SESSION TRANSACTION READ ONLY' failed: 1227 Access denied)"), "{msg}");
    assert!(out.close);
}

#[test]
fn backend_refusing_a_write_raises_an_alert() {
    let mut t = T::new();
    t.client(&query("SELECT 1"));
    let out = t.backend(&err_packet(1, 1792, "25006", b"read only"));
    assert_eq!(done(&out), ("SELECT 1", "COM_QUERY", Some(0), &Outcome::Error("1792".into())));
    let alert = event(&out, "alert").expect("alert");
    assert_eq!(field(alert, "rule"), "mysql_backstop_caught_write");
    assert_eq!(field(alert, "db.query.text"), "SELECT 1");
    assert!(!out.close);
}

#[test]
fn internal_error_is_err_1105_for_the_next_command() {
    let r = MyRelay::new(MyRelayConfig::default());
    let bytes = r.internal_error();
    // header: 3-byte length, sequence id 1; payload: 0xff, error 1105 little-endian
    assert_eq!(bytes.get(3), Some(&1));
    assert_eq!(bytes.get(4..7), Some(&[0xff, 0x51, 0x04][..]));
}
