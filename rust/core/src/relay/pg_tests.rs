//! Byte-level tests of [`PgRelay`] (no sockets, no Python): a fake judge, client and backend
//! bytes in, the exact bytes and records out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::pgwire::build;
use crate::relay::{Judge, Judgement, Out, Outcome, Record, Relay, Termination, Verdict};

// -- fake judge ----------------------------------------------------------------------------

#[derive(Default)]
struct FakeJudge {
    known: HashMap<String, Arc<Verdict>>,
    calls: Vec<String>,
}

impl Judge for FakeJudge {
    fn judge(&mut self, sql: &str) -> Judgement {
        self.calls.push(sql.to_string());
        match self.known.get(sql) {
            Some(v) => Judgement::Known(Arc::clone(v)),
            None => Judgement::Pending,
        }
    }
}

fn allow() -> Arc<Verdict> {
    Arc::new(Verdict { allowed: true, rule: "read_only".into(), klass: "read".into(), ..Verdict::default() })
}

fn deny() -> Arc<Verdict> {
    Arc::new(Verdict {
        allowed: false,
        rule: "write_statement".into(),
        reason: "DELETE changes data and is blocked: send a SELECT instead.".into(),
        klass: "write".into(),
        ..Verdict::default()
    })
}

const READS: &[&str] = &["SELECT 1", "SELECT 2", "SELECT 3", "SELECT $1", "SELECT nope", "COPY t FROM STDIN", "BEGIN"];
const WRITES: &[&str] = &["DELETE FROM t", "UPDATE t SET a = 1"];

fn judge() -> FakeJudge {
    let mut j = FakeJudge::default();
    for s in READS {
        j.known.insert(s.to_string(), allow());
    }
    for s in WRITES {
        j.known.insert(s.to_string(), deny());
    }
    j
}

// -- harness -------------------------------------------------------------------------------

struct H {
    r: PgRelay,
    j: FakeJudge,
    now: Instant,
}

impl H {
    fn new() -> H {
        H::with(PgRelayConfig { max_message: 1 << 20, max_inspected: 1 << 20 })
    }
    fn with(cfg: PgRelayConfig) -> H {
        H { r: PgRelay::new(cfg), j: judge(), now: Instant::now() }
    }
    fn client(&mut self, b: &[u8]) -> Out {
        let mut o = Out::default();
        self.r.client_data(b, self.now, &mut self.j, &mut o);
        o
    }
    fn backend(&mut self, b: &[u8]) -> Out {
        let mut o = Out::default();
        self.r.backend_data(b, self.now, &mut self.j, &mut o);
        o
    }
}

// -- message builders ------------------------------------------------------------------------

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}
fn q(sql: &str) -> Vec<u8> {
    build::query(sql)
}
fn p(name: &str, sql: &str) -> Vec<u8> {
    build::parse(name, sql)
}
fn bind(portal: &str, stmt: &str) -> Vec<u8> {
    let mut b = format!("{portal}\0{stmt}\0").into_bytes();
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // no formats, no params, no result formats
    build::message(b'B', &b)
}
fn exec(portal: &str) -> Vec<u8> {
    let mut b = format!("{portal}\0").into_bytes();
    b.extend_from_slice(&0i32.to_be_bytes());
    build::message(b'E', &b)
}
fn describe(kind: u8, name: &str) -> Vec<u8> {
    let mut b = vec![kind];
    b.extend_from_slice(format!("{name}\0").as_bytes());
    build::message(b'D', &b)
}
fn close_msg(kind: u8, name: &str) -> Vec<u8> {
    let mut b = vec![kind];
    b.extend_from_slice(format!("{name}\0").as_bytes());
    build::message(b'C', &b)
}
fn sync() -> Vec<u8> {
    build::message(b'S', b"")
}
fn rowdesc() -> Vec<u8> {
    build::message(b'T', b"\0\x01a\0\0\0\0\0\0\0\0\0\0\x17\0\x04\xff\xff\xff\xff\0\0")
}
fn row() -> Vec<u8> {
    build::message(b'D', b"\0\x01\0\0\0\x011")
}
fn cc(tag: &str) -> Vec<u8> {
    build::message(b'C', format!("{tag}\0").as_bytes())
}
fn z(s: u8) -> Vec<u8> {
    build::ready_for_query(s)
}
fn be_err(code: &str, message: &str) -> Vec<u8> {
    build::error_response(&[(b'S', "ERROR"), (b'V', "ERROR"), (b'C', code), (b'M', message)])
}
fn decoy_err(n: u64) -> Vec<u8> {
    be_err("42601", &format!("syntax error at or near \"__sdp_blocked_{n}__\""))
}
fn select_response(rows: usize) -> Vec<u8> {
    let mut b = rowdesc();
    for _ in 0..rows {
        b.extend(row());
    }
    b.extend(cc(&format!("SELECT {rows}")));
    b.extend(z(b'I'));
    b
}

/// Split a byte stream into (tag, body) messages.
fn messages(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while b.len() >= 5 {
        let n = i32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize;
        out.push((b[0], b[5..n + 1].to_vec()));
        b = &b[n + 1..];
    }
    assert!(b.is_empty(), "trailing bytes");
    out
}

fn fields(body: &[u8]) -> HashMap<u8, String> {
    body.split(|&c| c == 0)
        .filter(|p| !p.is_empty())
        .map(|p| (p[0], String::from_utf8_lossy(&p[1..]).into_owned()))
        .collect()
}

/// The error fields of the only 'E' message in `b`.
fn the_error(b: &[u8]) -> HashMap<u8, String> {
    let errs: Vec<_> = messages(b).into_iter().filter(|(t, _)| *t == b'E').collect();
    assert_eq!(errs.len(), 1, "{b:?}");
    fields(&errs[0].1)
}

fn done(r: &Record) -> (&str, &'static str, Option<u64>, &Outcome) {
    match r {
        Record::Done { sql, message, rows, outcome, .. } => (sql, message, *rows, outcome),
        other => panic!("not Done: {other:?}"),
    }
}

fn blocked(r: &Record) -> (Option<&str>, &str, &str, &'static str) {
    match r {
        Record::Blocked { sql, rule, klass, message, .. } => (sql.as_deref(), rule, klass, message),
        other => panic!("not Blocked: {other:?}"),
    }
}

fn event(r: &Record) -> (&'static str, &[(&'static str, String)]) {
    match r {
        Record::Event { event, fields } => (event, fields),
        other => panic!("not Event: {other:?}"),
    }
}

// -- simple query ----------------------------------------------------------------------------

#[test]
fn simple_query_allowed_passes_unchanged_and_is_audited_after_z() {
    let mut h = H::new();
    let query = q("SELECT 1");
    let o = h.client(&query);
    assert_eq!(o.to_backend, query);
    assert!(o.to_client.is_empty() && o.records.is_empty() && !o.close);
    assert!(!h.r.is_idle());
    let resp = select_response(1);
    let o = h.backend(&resp[..resp.len() - 6]); // up to the CommandComplete
    assert!(o.records.is_empty());
    let mut all = o.to_client;
    let o = h.backend(&resp[resp.len() - 6..]);
    all.extend(o.to_client);
    assert_eq!(all, resp);
    assert_eq!(o.records.len(), 1);
    assert_eq!(done(&o.records[0]), ("SELECT 1", "Query", Some(1), &Outcome::Ok));
    match &o.records[0] {
        Record::Done { verdict, seconds, .. } => {
            assert_eq!(verdict.rule, "read_only");
            assert_eq!(*seconds, 0.0);
        }
        _ => unreachable!(),
    }
    assert!(h.r.is_idle());
    assert_eq!(h.r.transaction_status(), b'I');
    assert_eq!(h.j.calls, vec!["SELECT 1"]);
}

#[test]
fn duration_is_measured_from_forwarding_to_completion() {
    let mut h = H::new();
    h.client(&q("SELECT 1"));
    h.now += Duration::from_millis(250);
    let o = h.backend(&select_response(0));
    match &o.records[0] {
        Record::Done { seconds, rows, .. } => {
            assert!((*seconds - 0.25).abs() < 1e-9);
            assert_eq!(*rows, Some(0));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn blocked_query_becomes_a_decoy_and_its_error_is_swapped() {
    let mut h = H::new();
    let o = h.client(&q("DELETE FROM t"));
    assert_eq!(o.to_backend, q("__sdp_blocked_1__"));
    assert_eq!(o.records.len(), 1);
    assert_eq!(blocked(&o.records[0]), (Some("DELETE FROM t"), "write_statement", "write", "Query"));
    assert!(!h.r.is_idle());
    // The backend rejects the decoy (raw parser) and is ready again; status passes through.
    let o = h.backend(&cat(&[&decoy_err(1), &z(b'E')]));
    let msgs = messages(&o.to_client);
    assert_eq!(msgs.len(), 2);
    let f = fields(&msgs[0].1);
    assert_eq!(f[&b'C'], "25006");
    assert_eq!(f[&b'S'], "ERROR");
    assert_eq!(f[&b'V'], "ERROR");
    assert_eq!(f[&b'M'], "DELETE changes data and is blocked: send a SELECT instead.");
    assert_eq!(
        f[&b'D'],
        "Blocked by sandbox-db-proxy (rule: write_statement, class: write). The statement was not sent to the database."
    );
    assert!(f[&b'H'].starts_with("This connection is read-only"));
    assert_eq!(msgs[1], (b'Z', vec![b'E']));
    assert!(o.records.is_empty());
    assert!(h.r.is_idle());
    assert_eq!(h.r.transaction_status(), b'E');
    assert!(h.r.decoys.is_empty());
}

#[test]
fn a_42601_that_is_not_a_decoy_passes_unchanged() {
    let mut h = H::new();
    h.client(&cat(&[&q("DELETE FROM t"), &q("SELECT 1")]));
    let other = be_err("42601", "syntax error at or near \"__sdp_blocked_7__\"");
    let o = h.backend(&cat(&[&other, &z(b'I')]));
    assert_eq!(o.to_client, cat(&[&other, &z(b'I')])); // token 7 is not ours
    let o = h.backend(&cat(&[&decoy_err(1), &z(b'I')]));
    assert_eq!(the_error(&o.to_client)[&b'C'], "25006");
}

#[test]
fn empty_query_is_forwarded_unjudged() {
    let mut h = H::new();
    let o = h.client(&q(""));
    assert_eq!(o.to_backend, q(""));
    assert!(h.j.calls.is_empty());
    let resp = cat(&[&build::message(b'I', b""), &z(b'I')]);
    let o = h.backend(&resp);
    assert_eq!(o.to_client, resp);
    assert_eq!(done(&o.records[0]), ("", "Query", None, &Outcome::Ok));
    match &o.records[0] {
        Record::Done { verdict, .. } => assert!(verdict.allowed && verdict.rule.is_empty() && verdict.klass == "read"),
        _ => unreachable!(),
    }
}

#[test]
fn invalid_utf8_text_is_blocked_by_the_relay() {
    let mut h = H::new();
    let o = h.client(&build::message(b'Q', b"SELECT '\xff'\0"));
    assert_eq!(o.to_backend, q("__sdp_blocked_1__"));
    assert_eq!(blocked(&o.records[0]), (None, "invalid-encoding", "unknown", "Query"));
    assert!(h.j.calls.is_empty());
}

#[test]
fn query_error_is_recorded_with_its_sqlstate() {
    let mut h = H::new();
    h.client(&q("SELECT nope"));
    let o = h.backend(&cat(&[&be_err("42703", "column \"nope\" does not exist"), &z(b'I')]));
    assert_eq!(done(&o.records[0]), ("SELECT nope", "Query", None, &Outcome::Error("42703".into())));
}

// -- pending verdicts ------------------------------------------------------------------------

#[test]
fn pending_verdict_holds_input_from_that_message_and_resumes() {
    let mut h = H::new();
    let chunk = cat(&[&q("SELECT 1"), &q("SELECT 42"), &q("SELECT 2")]);
    let o = h.client(&chunk);
    assert_eq!(o.to_backend, q("SELECT 1"));
    assert!(!h.r.wants_client_data());
    assert_eq!(h.j.calls, vec!["SELECT 1", "SELECT 42"]);
    // Still unknown: nothing moves, and the judge is asked once per pass.
    let o = h.client(&[]);
    assert!(o.to_backend.is_empty());
    assert_eq!(h.j.calls.len(), 3);
    h.j.known.insert("SELECT 42".into(), allow());
    let o = h.client(&[]);
    assert_eq!(o.to_backend, cat(&[&q("SELECT 42"), &q("SELECT 2")]));
    assert!(h.r.wants_client_data());
    assert_eq!(h.j.calls, vec!["SELECT 1", "SELECT 42", "SELECT 42", "SELECT 42", "SELECT 2"]);
    // Three segments in flight, answered in order.
    let o = h.backend(&cat(&[&select_response(1), &select_response(2), &select_response(3)]));
    let d: Vec<_> = o.records.iter().map(done).collect();
    assert_eq!(d[0].0, "SELECT 1");
    assert_eq!((d[1].0, d[1].2), ("SELECT 42", Some(2)));
    assert_eq!((d[2].0, d[2].2), ("SELECT 2", Some(3)));
}

#[test]
fn pending_then_blocked_and_partial_tail_kept() {
    let mut h = H::new();
    let tail = q("SELECT 3");
    let chunk = cat(&[&q("DROP TABLE x"), &tail[..4]]);
    let o = h.client(&chunk);
    assert!(o.to_backend.is_empty() && !h.r.wants_client_data());
    h.j.known.insert("DROP TABLE x".into(), deny());
    let o = h.client(&[]);
    assert_eq!(o.to_backend, q("__sdp_blocked_1__"));
    assert!(h.r.wants_client_data());
    let o = h.client(&tail[4..]);
    assert_eq!(o.to_backend, tail);
}

// -- extended protocol -----------------------------------------------------------------------

#[test]
fn extended_allowed_passes_and_execute_is_audited() {
    let mut h = H::new();
    let chunk = cat(&[&p("s1", "SELECT $1"), &bind("", "s1"), &describe(b'P', ""), &exec(""), &sync()]);
    let o = h.client(&chunk);
    assert_eq!(o.to_backend, chunk);
    let resp = cat(&[
        &build::message(b'1', b""),
        &build::message(b'2', b""),
        &rowdesc(),
        &row(),
        &row(),
        &cc("SELECT 2"),
        &z(b'I'),
    ]);
    let o = h.backend(&resp);
    assert_eq!(o.to_client, resp);
    assert_eq!(o.records.len(), 1);
    assert_eq!(done(&o.records[0]), ("SELECT $1", "Execute", Some(2), &Outcome::Ok));
    // The named statement stays usable: Bind again, Describe it, then Close it.
    let chunk = cat(&[&describe(b'S', "s1"), &bind("p", "s1"), &exec("p"), &close_msg(b'S', "s1"), &sync()]);
    assert_eq!(h.client(&chunk).to_backend, chunk);
    let o = h.client(&cat(&[&bind("", "s1"), &sync()]));
    assert_eq!(blocked(&o.records[0]).1, "unknown-prepared-statement");
}

#[test]
fn extended_blocked_parse_skips_until_sync() {
    let mut h = H::new();
    let chunk = cat(&[&p("w", "DELETE FROM t"), &bind("", "w"), &describe(b'P', ""), &exec(""), &sync()]);
    let o = h.client(&chunk);
    assert_eq!(o.to_backend, cat(&[&p("w", "__sdp_blocked_1__"), &sync()]));
    assert_eq!(o.records.len(), 1);
    assert_eq!(blocked(&o.records[0]), (Some("DELETE FROM t"), "write_statement", "write", "Parse"));
    let o = h.backend(&cat(&[&decoy_err(1), &z(b'I')]));
    assert_eq!(the_error(&o.to_client)[&b'C'], "25006");
    assert!(o.records.is_empty());
    // After Sync the statement name is unknown: a Bind naming it is refused.
    let o = h.client(&cat(&[&bind("", "w"), &exec(""), &sync()]));
    assert_eq!(o.to_backend, cat(&[&p("__sdp_unknown__", "__sdp_blocked_2__"), &sync()]));
}

#[test]
fn unknown_statement_bind_and_describe_are_refused() {
    let mut h = H::new();
    let o = h.client(&cat(&[&bind("", "s9"), &exec(""), &sync()]));
    assert_eq!(o.to_backend, cat(&[&p("__sdp_unknown__", "__sdp_blocked_1__"), &sync()]));
    assert_eq!(blocked(&o.records[0]), (None, "unknown-prepared-statement", "unknown", "Bind"));
    match &o.records[0] {
        Record::Blocked { reason, .. } => {
            assert!(reason.starts_with("Bind refers to prepared statement \"s9\", which"))
        }
        _ => unreachable!(),
    }
    let o = h.backend(&cat(&[&decoy_err(1), &z(b'I')]));
    let f = the_error(&o.to_client);
    assert_eq!(f[&b'C'], "25006");
    assert!(f[&b'D'].contains("rule: unknown-prepared-statement, class: unknown"));
    let o = h.client(&cat(&[&describe(b'S', ""), &sync()]));
    match &o.records[0] {
        Record::Blocked { reason, message, .. } => {
            assert_eq!(*message, "Describe");
            assert!(reason.starts_with("Describe refers to the unnamed prepared statement"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn execute_errors_and_skipped_executes() {
    let mut h = H::new();
    let chunk = cat(&[&p("", "SELECT nope"), &bind("", ""), &exec(""), &bind("", ""), &exec(""), &sync()]);
    assert_eq!(h.client(&chunk).to_backend, chunk);
    let o = h.backend(&cat(&[&be_err("42703", "column"), &z(b'I')]));
    assert_eq!(o.records.len(), 2);
    assert_eq!(done(&o.records[0]).3, &Outcome::Error("42703".into()));
    assert_eq!(done(&o.records[1]).3, &Outcome::Error("skipped".into()));
}

#[test]
fn execute_of_unknown_portal_is_audited_with_empty_text() {
    let mut h = H::new();
    let chunk = cat(&[&exec("nope"), &sync()]);
    assert_eq!(h.client(&chunk).to_backend, chunk);
    let o = h.backend(&cat(&[&be_err("34000", "portal \"nope\" does not exist"), &z(b'I')]));
    assert_eq!(done(&o.records[0]), ("", "Execute", None, &Outcome::Error("34000".into())));
}

#[test]
fn portal_suspended_and_empty_query_finish_an_execute() {
    let mut h = H::new();
    h.client(&cat(&[&p("", "SELECT 1"), &bind("", ""), &exec(""), &sync()]));
    let o = h.backend(&cat(&[&row(), &build::message(b's', b""), &z(b'T')]));
    assert_eq!(done(&o.records[0]), ("SELECT 1", "Execute", None, &Outcome::Ok));
    assert_eq!(h.r.transaction_status(), b'T');
}

#[test]
fn too_many_prepared_statements() {
    let mut h = H::new();
    let mut chunk = Vec::new();
    for i in 0..MAX_PREPARED {
        chunk.extend(p(&format!("s{i}"), "SELECT 1"));
    }
    chunk.extend(p("s0", "SELECT 2")); // re-using a name is fine
    chunk.extend(p("", "SELECT 2")); // so is the unnamed statement
    assert_eq!(h.client(&chunk).to_backend, chunk);
    let o = h.client(&cat(&[&p("one-more", "SELECT 1"), &sync()]));
    assert_eq!(o.to_backend, cat(&[&p("one-more", "__sdp_blocked_1__"), &sync()]));
    assert_eq!(blocked(&o.records[0]), (Some("SELECT 1"), "too-many-prepared-statements", "unknown", "Parse"));
}

// -- pipelines -------------------------------------------------------------------------------

#[test]
fn pipeline_of_queries_keeps_error_order() {
    let mut h = H::new();
    let chunk = cat(&[&q("SELECT 1"), &q("DELETE FROM t"), &q("SELECT 2")]);
    let o = h.client(&chunk);
    assert_eq!(o.to_backend, cat(&[&q("SELECT 1"), &q("__sdp_blocked_1__"), &q("SELECT 2")]));
    let resp = cat(&[&select_response(1), &decoy_err(1), &z(b'I'), &select_response(2)]);
    let o = h.backend(&resp);
    let tags: Vec<u8> = messages(&o.to_client).iter().map(|m| m.0).collect();
    assert_eq!(tags, b"TDCZEZTDDCZ".to_vec());
    assert_eq!(the_error(&o.to_client)[&b'C'], "25006");
    let d: Vec<_> = o.records.iter().map(done).collect();
    assert_eq!(d, vec![("SELECT 1", "Query", Some(1), &Outcome::Ok), ("SELECT 2", "Query", Some(2), &Outcome::Ok)]);
}

#[test]
fn skipped_decoy_is_forgotten() {
    let mut h = H::new();
    let chunk =
        cat(&[&p("", "SELECT nope"), &bind("", ""), &exec(""), &p("w", "DELETE FROM t"), &bind("", "w"), &sync()]);
    let o = h.client(&chunk);
    assert_eq!(h.r.decoys.len(), 1);
    // The Bind after the blocked Parse is dropped.
    assert_eq!(messages(&o.to_backend).len(), 5);
    // The backend fails the first Parse and skips everything up to Sync (the decoy included).
    let o = h.backend(&cat(&[&be_err("42703", "column"), &z(b'I')]));
    assert_eq!(o.to_client, cat(&[&be_err("42703", "column"), &z(b'I')]));
    assert!(h.r.decoys.is_empty());
}

#[test]
fn multi_statement_query_rows_are_summed() {
    let mut h = H::new();
    h.client(&q("BEGIN"));
    let o = h.backend(&cat(&[&cc("BEGIN"), &rowdesc(), &row(), &cc("SELECT 1"), &cc("SELECT 4"), &z(b'T')]));
    assert_eq!(done(&o.records[0]).2, Some(5));
}

// -- other messages ----------------------------------------------------------------------------

#[test]
fn function_call_is_blocked_with_a_decoy_query() {
    let mut h = H::new();
    let f = build::message(b'F', b"\0\0\x04\xd2\0\0\0\0\0\0");
    let o = h.client(&f);
    assert_eq!(o.to_backend, q("__sdp_blocked_1__"));
    assert_eq!(blocked(&o.records[0]), (None, "function-call-message", "function", "FunctionCall"));
    assert!(!h.r.is_idle());
    let o = h.backend(&cat(&[&decoy_err(1), &z(b'I')]));
    assert!(the_error(&o.to_client)[&b'D'].contains("class: function"));
}

#[test]
fn client_copy_data_is_dropped_and_flush_passes() {
    let mut h = H::new();
    let chunk = cat(&[
        &build::message(b'd', b"1\n"),
        &build::message(b'c', b""),
        &build::message(b'f', b"no\0"),
        &build::message(b'H', b""),
    ]);
    assert_eq!(h.client(&chunk).to_backend, build::message(b'H', b""));
}

#[test]
fn terminate_passes_on_and_closes() {
    let mut h = H::new();
    let chunk = cat(&[&q("SELECT 1"), &build::message(b'X', b""), &q("SELECT 2")]);
    let o = h.client(&chunk);
    assert_eq!(o.to_backend, cat(&[&q("SELECT 1"), &build::terminate()]));
    assert!(o.close && h.r.is_closed() && !h.r.wants_client_data());
    assert_eq!(event(&o.records[0]), ("disconnect", &[("reason", "client sent Terminate".to_string())][..]));
    assert_eq!(done(&o.records[1]).3, &Outcome::Error("client_terminated".into()));
    // Closed: everything else is ignored.
    assert!(h.client(&q("SELECT 1")).to_backend.is_empty());
    let o = h.backend(&select_response(1));
    assert!(o.to_client.is_empty() && o.records.is_empty());
}

#[test]
fn unsupported_message_type_is_a_protocol_error() {
    let mut h = H::new();
    let o = h.client(&cat(&[&sync(), &build::message(b'p', b"x\0")]));
    // The Sync is in flight: its answer comes first (DRAINING), then the FATAL.
    assert_eq!(o.to_backend, sync());
    assert!(!o.close && h.r.is_draining());
    assert_eq!(
        event(&o.records[0]),
        ("protocol_error", &[("reason", "unsupported frontend message type 'p'".to_string())][..])
    );
    let o = h.backend(&z(b'I'));
    let msgs = messages(&o.to_client);
    assert_eq!(msgs[0], (b'Z', vec![b'I']));
    let f = fields(&msgs[1].1);
    assert_eq!((f[&b'S'].as_str(), f[&b'C'].as_str()), ("FATAL", "08P01"));
    assert_eq!(f[&b'M'], "sandbox-db-proxy: unsupported frontend message type 'p'");
    assert!(o.close && h.r.is_closed());
    assert_eq!(o.to_backend, build::terminate());
}

// -- limits and protocol errors ----------------------------------------------------------------

#[test]
fn oversize_message_is_refused_from_its_header() {
    let mut h = H::with(PgRelayConfig { max_message: 1000, max_inspected: 1 << 20 });
    let mut b = vec![b'Q'];
    b.extend(5000i32.to_be_bytes());
    let o = h.client(&b);
    assert!(o.close && o.to_backend == build::terminate());
    let f = the_error(&o.to_client);
    assert_eq!((f[&b'S'].as_str(), f[&b'C'].as_str()), ("FATAL", "54000"));
    assert_eq!(
        f[&b'M'],
        "message too large: message of 5001 bytes exceeds the limit of 1000 bytes (limits.max_message_bytes)"
    );
    assert!(matches!(o.records[0], Record::Metric("limit:max_message_bytes")));
    let (ev, fl) = event(&o.records[1]);
    assert_eq!(ev, "limit");
    assert_eq!(fl[0], ("limit", "max_message_bytes".to_string()));
}

#[test]
fn malformed_frame_while_in_flight_drains_first() {
    let mut h = H::new();
    let bad = build::message(b'Q', b"SELECT 1"); // no NUL
    let o = h.client(&cat(&[&q("SELECT 1"), &bad]));
    assert_eq!(o.to_backend, q("SELECT 1"));
    assert!(o.to_client.is_empty() && !o.close);
    assert!(h.r.is_draining() && !h.r.wants_client_data());
    assert_eq!(event(&o.records[0]).0, "protocol_error");
    assert!(h.client(&q("SELECT 2")).to_backend.is_empty()); // no longer read
    let resp = select_response(1);
    let o = h.backend(&resp[..resp.len() - 3]);
    assert_eq!(o.to_client, resp[..resp.len() - 6].to_vec());
    assert!(!o.close);
    let o = h.backend(&resp[resp.len() - 3..]);
    assert!(o.close && h.r.is_closed());
    let msgs = messages(&o.to_client);
    assert_eq!(msgs[0], (b'Z', vec![b'I']));
    let f = fields(&msgs[1].1);
    assert_eq!(f[&b'C'], "08P01");
    assert!(f[&b'M'].starts_with("sandbox-db-proxy: invalid message: protocol framing error:"));
    assert_eq!(done(&o.records[0]).0, "SELECT 1");
}

#[test]
fn malformed_frame_when_idle_closes_at_once() {
    let mut h = H::new();
    let mut b = vec![b'Q'];
    b.extend(2i32.to_be_bytes());
    let o = h.client(&b);
    assert!(o.close);
    assert_eq!(the_error(&o.to_client)[&b'C'], "08P01");
}

#[test]
fn invalid_backend_data_is_fatal() {
    let mut h = H::new();
    h.client(&q("SELECT 1"));
    let o = h.backend(&[b'Z', 0, 0, 0, 5, b'X']);
    assert!(o.close);
    let f = the_error(&o.to_client);
    assert_eq!(f[&b'M'], "sandbox-db-proxy received invalid data from the database backend");
    assert!(matches!(o.records[0], Record::Metric("backend_error")));
    assert_eq!(event(&o.records[1]).0, "protocol_error");
    assert_eq!(done(&o.records[2]).3, &Outcome::Error("connection_closed".into()));
}

// -- backstops ------------------------------------------------------------------------------------

#[test]
fn parameter_status_read_only_off_kills() {
    let mut h = H::new();
    h.client(&q("SET default_transaction_read_only = off"));
    h.j.known.insert("SET default_transaction_read_only = off".into(), allow());
    h.client(&[]);
    let o = h.backend(&cat(&[&cc("SET"), &build::parameter_status("default_transaction_read_only", "off"), &z(b'I')]));
    assert!(o.close && h.r.is_closed());
    let f = the_error(&o.to_client);
    assert_eq!(messages(&o.to_client).len(), 1); // nothing else of that chunk
    assert_eq!((f[&b'S'].as_str(), f[&b'C'].as_str()), ("FATAL", "25006"));
    assert_eq!(
        f[&b'M'],
        "sandbox-db-proxy closed the session: the backend reports default_transaction_read_only=off: \
         the session is no longer read-only"
    );
    assert_eq!(o.to_backend, build::terminate());
    let (ev, fl) = event(&o.records[0]);
    assert_eq!((ev, fl[0].clone()), ("alert", ("rule", "read-only-disabled".to_string())));
    assert_eq!(done(&o.records[1]).3, &Outcome::Error("connection_closed".into()));
}

#[test]
fn harmless_parameter_status_passes() {
    let mut h = H::new();
    let b = cat(&[&build::parameter_status("TimeZone", "UTC"), &build::parameter_status("client_encoding", "UTF8")]);
    let o = h.backend(&b);
    assert_eq!(o.to_client, b);
    assert!(!o.close);
}

#[test]
fn copy_in_response_is_answered_with_copy_fail() {
    let mut h = H::new();
    h.client(&q("COPY t FROM STDIN"));
    let g = build::message(b'G', b"\0\0\x01\0\0");
    let o = h.backend(&g);
    assert!(o.to_client.is_empty());
    assert_eq!(o.to_backend, build::copy_fail("COPY FROM STDIN is blocked by sandbox-db-proxy"));
    assert_eq!(event(&o.records[0]).0, "alert");
    let o = h.backend(&cat(&[&be_err("57014", "COPY from stdin failed"), &z(b'I')]));
    let f = the_error(&o.to_client);
    assert_eq!(f[&b'C'], "25006");
    assert!(f[&b'D'].contains("rule: copy-from-stdin, class: write"));
    assert_eq!(done(&o.records[0]).0, "COPY t FROM STDIN");
}

#[test]
fn copy_both_kills_and_startup_messages_are_dropped() {
    let mut h = H::new();
    let b = cat(&[
        &build::backend_key_data(1, &[0, 0, 0, 1]),
        &build::auth_request(0, b""),
        &build::parameter_status("a", "b"),
    ]);
    assert_eq!(h.backend(&b).to_client, build::parameter_status("a", "b"));
    let n = build::message(b'N', b"SNOTICE\0\0");
    let o = h.backend(&cat(&[&n, &build::message(b'W', b"\0\0\0")]));
    assert!(o.close);
    let msgs = messages(&o.to_client);
    assert_eq!(msgs[0].0, b'N'); // what came before is forwarded
    assert!(fields(&msgs[1].1)[&b'M'].contains("COPY BOTH"));
}

// -- endings ---------------------------------------------------------------------------------------

#[test]
fn idle_terminate_waits_for_running_statements() {
    let mut h = H::new();
    h.client(&q("SELECT 1"));
    let mut o = Out::default();
    h.r.terminate(
        Termination::Idle,
        "terminating connection due to idle timeout (60 s, limits.idle_timeout_seconds)",
        &mut o,
    );
    assert!(!o.close && o.records.is_empty() && !h.r.is_closed());
    h.backend(&select_response(1));
    let mut o = Out::default();
    h.r.terminate(
        Termination::Idle,
        "terminating connection due to idle timeout (60 s, limits.idle_timeout_seconds)",
        &mut o,
    );
    assert!(o.close && h.r.is_closed());
    let f = the_error(&o.to_client);
    assert_eq!((f[&b'S'].as_str(), f[&b'C'].as_str()), ("FATAL", "57P05"));
    assert!(matches!(o.records[0], Record::Metric("limit:idle_timeout_seconds")));
    let (ev, fl) = event(&o.records[1]);
    assert_eq!(ev, "limit");
    assert_eq!(fl[0], ("limit", "idle_timeout_seconds".to_string()));
    assert_eq!(o.to_backend, build::terminate());
}

#[test]
fn admin_terminate_is_immediate() {
    let mut h = H::new();
    h.client(&q("SELECT 1"));
    let mut o = Out::default();
    h.r.terminate(Termination::Admin, "session revoked", &mut o);
    assert!(o.close);
    let f = the_error(&o.to_client);
    assert_eq!((f[&b'C'].as_str(), f[&b'M'].as_str()), ("57P01", "terminating connection: session revoked"));
    assert_eq!(
        event(&o.records[0]),
        ("disconnect", &[("reason", "terminating connection: session revoked".to_string())][..])
    );
    assert_eq!(done(&o.records[1]).3, &Outcome::Error("connection_closed".into()));
    let mut o = Out::default();
    h.r.terminate(Termination::Admin, "again", &mut o);
    assert!(o.to_client.is_empty() && o.records.is_empty());
}

#[test]
fn backend_closed_mid_statement() {
    let mut h = H::new();
    h.client(&q("SELECT 1"));
    let o = h.backend(&rowdesc()[..7]);
    assert!(o.to_client.len() <= 7);
    let mut o = Out::default();
    h.r.backend_closed(None, &mut o);
    assert!(o.close && h.r.is_closed() && o.to_backend.is_empty());
    assert!(matches!(o.records[0], Record::Metric("backend_error")));
    assert_eq!(done(&o.records[1]).3, &Outcome::Error("backend_lost".into()));
    let msg = "sandbox-db-proxy: the database backend closed the connection; reconnect to continue";
    assert_eq!(event(&o.records[2]), ("disconnect", &[("reason", msg.to_string())][..]));
    let f = the_error(&o.to_client);
    assert_eq!((f[&b'C'].as_str(), f[&b'M'].as_str()), ("08006", msg));
}

#[test]
fn backend_closed_after_its_own_fatal_adds_nothing() {
    let mut h = H::new();
    let fatal = build::error_response(&[(b'S', "FATAL"), (b'V', "FATAL"), (b'C', "57P01"), (b'M', "bye")]);
    assert_eq!(h.backend(&fatal).to_client, fatal);
    let mut o = Out::default();
    h.r.backend_closed(Some("reset"), &mut o);
    assert!(o.close && o.to_client.is_empty());
    assert_eq!(
        event(&o.records[1]),
        ("disconnect", &[("reason", "the database backend closed the connection (reset)".to_string())][..])
    );
}

#[test]
fn client_closed_sends_terminate() {
    let mut h = H::new();
    h.client(&q("SELECT 1"));
    let mut o = Out::default();
    h.r.client_closed(Some("Connection reset by peer"), &mut o);
    assert!(o.close && o.to_client.is_empty());
    assert_eq!(o.to_backend, build::terminate());
    assert_eq!(done(&o.records[0]).3, &Outcome::Error("client_disconnected".into()));
    assert_eq!(
        event(&o.records[1]),
        ("disconnect", &[("reason", "client connection lost: Connection reset by peer".to_string())][..])
    );
}

// -- chunking: every split gives the same result -----------------------------------------------

enum Step {
    C(Vec<u8>),
    B(Vec<u8>),
}

fn scenario() -> Vec<Step> {
    let big = build::message(b'D', &vec![7u8; 3000]);
    vec![
        Step::C(cat(&[&q("SELECT 1"), &q("DELETE FROM t"), &q("")])),
        Step::B(cat(&[&select_response(2), &decoy_err(1), &z(b'I'), &build::message(b'I', b""), &z(b'I')])),
        Step::C(cat(&[
            &p("s", "SELECT $1"),
            &bind("", "s"),
            &exec(""),
            &p("w", "UPDATE t SET a = 1"),
            &bind("", "w"),
            &sync(),
        ])),
        Step::B(cat(&[
            &build::message(b'1', b""),
            &build::message(b'2', b""),
            &rowdesc(),
            &big,
            &cc("SELECT 1"),
            &decoy_err(2),
            &z(b'I'),
        ])),
        Step::C(cat(&[&bind("x", "s"), &exec("x"), &exec("x"), &sync(), &build::message(b'H', b"")])),
        Step::B(cat(&[
            &build::message(b'2', b""),
            &be_err("22P02", "bad input"),
            &build::parameter_status("TimeZone", "UTC"),
            &z(b'I'),
        ])),
        Step::C(cat(&[&q("SELECT 2"), &build::message(b'X', b"")])),
    ]
}

/// Run the scenario feeding each step in pieces given by `cuts(step_len)`; returns all
/// output (bytes to backend, bytes to client, records, closed).
fn run(cuts: &dyn Fn(usize) -> Vec<usize>) -> (Vec<u8>, Vec<u8>, Vec<String>, bool) {
    let mut h = H::new();
    let (mut tb, mut tc, mut recs, mut closed) = (Vec::new(), Vec::new(), Vec::new(), false);
    for step in scenario() {
        let (bytes, client) = match &step {
            Step::C(b) => (b, true),
            Step::B(b) => (b, false),
        };
        let mut at = 0;
        let mut points = cuts(bytes.len());
        points.push(bytes.len());
        for end in points {
            let piece = &bytes[at..end];
            at = end;
            let o = if client { h.client(piece) } else { h.backend(piece) };
            tb.extend(o.to_backend);
            tc.extend(o.to_client);
            recs.extend(o.records.iter().map(|r| format!("{r:?}")));
            closed |= o.close;
        }
    }
    (tb, tc, recs, closed)
}

#[test]
fn one_byte_at_a_time_gives_the_same_output() {
    let whole = run(&|_| vec![]);
    assert!(whole.3);
    assert_eq!(messages(&whole.1).iter().filter(|m| m.0 == b'E').count(), 3);
    let bytewise = run(&|n| (1..n).collect());
    assert_eq!(whole.0, bytewise.0);
    assert_eq!(whole.1, bytewise.1);
    assert_eq!(whole.2, bytewise.2);
    assert_eq!(whole.3, bytewise.3);
}

#[test]
fn every_two_way_split_gives_the_same_output() {
    let whole = run(&|_| vec![]);
    let longest = scenario()
        .iter()
        .map(|s| match s {
            Step::C(b) | Step::B(b) => b.len(),
        })
        .max()
        .unwrap_or(0);
    for k in 1..longest {
        let got = run(&|n| if k < n { vec![k] } else { vec![] });
        assert_eq!(whole, got, "split at {k}");
    }
}

#[test]
fn fuzz_like_input_never_panics() {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..3000 {
        let mut h = H::with(PgRelayConfig { max_message: 256, max_inspected: 256 });
        // Start from a valid prefix so the random bytes land in interesting states.
        h.client(&cat(&[&p("s", "SELECT 1"), &bind("", "s")]));
        for _ in 0..4 {
            let n = (next() % 40) as usize;
            let mut b: Vec<u8> = (0..n).map(|_| (next() & 0xff) as u8).collect();
            if round % 3 == 0 && !b.is_empty() {
                b[0] = b"QPBEDCSHFXdcfZ"[(next() % 14) as usize];
            }
            if next() % 2 == 0 {
                h.client(&b);
            } else {
                h.backend(&b);
            }
        }
    }
}

#[test]
fn internal_error_is_a_fatal_xx000() {
    let r = PgRelay::new(PgRelayConfig::default());
    let bytes = r.internal_error();
    assert_eq!(bytes.first(), Some(&b'E'));
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("FATAL") && text.contains("XX000") && text.contains("internal error"));
}
