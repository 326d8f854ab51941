//! Tests of the MySQL relay, continued (relay/mysql_tests.rs has the helpers): LOCAL
//! INFILE, refused and relayed commands, termination, bad bytes from either side, responses
//! split at every byte offset, and the COM_STMT_EXECUTE hot path.

use super::*;

#[test]
fn local_infile_never_reaches_the_client_whatever_the_chunking() {
    let req = frame(b"\xfb/etc/passwd", 1);
    for cut in 1..req.len() {
        let mut t = T::new();
        t.client(&query("SELECT 1"));
        let mut a = t.backend(&req[..cut]);
        let b = t.backend(&req[cut..]);
        a.to_client.extend_from_slice(&b.to_client);
        assert!(a.to_client.is_empty(), "cut {cut}");
        assert!(a.to_backend.is_empty());
        assert_eq!(packets(&b.to_backend), vec![(2, vec![])]); // "no file"
        let alert = event(&b, "alert").expect("alert");
        assert_eq!(field(alert, "rule"), "mysql_local_infile");
        assert_eq!(field(alert, "db.query.text"), "SELECT 1");
        assert!(field(alert, "reason").contains("local file '/etc/passwd'"));
        let out = t.backend(&err_packet(3, 1148, "42000", b"server gave up"));
        let (seq, code, _, msg) = the_err(&out.to_client);
        assert_eq!((seq, code), (1, 1148));
        assert!(msg.contains("LOCAL INFILE"));
        // the connection goes on
        t.client(&frame(b"\x0e", 0));
        assert_eq!(t.backend(&ok(1)).to_client, ok(1));
    }
}

#[test]
fn refused_commands() {
    let mut t = T::new();
    let out = t.client(&frame(b"\x12\x04\x00\x00\x00", 0));
    assert!(out.to_backend.is_empty());
    let (seq, code, state, msg) = the_err(&out.to_client);
    assert_eq!((seq, code, state.as_str()), (1, 1792, "25006"));
    assert_eq!(
        msg,
        "COM_BINLOG_DUMP is blocked: it streams the replication log (a replica protocol, not a query). This \
         connection is read-only; send read-only SQL (SELECT, SHOW, DESCRIBE, EXPLAIN) with COM_QUERY or \
         prepared statements."
    );
    let (_, rule, _, klass, message, _) = blocked(&out);
    assert_eq!((rule, klass, message), ("mysql_command_binlog_dump", "admin", "COM_BINLOG_DUMP"));
    let out = t.client(&frame(b"\x42", 0));
    let (_, rule, reason, _, message, _) = blocked(&out);
    assert_eq!((rule, message), ("mysql_command_unknown_0x42", "COM_UNKNOWN_0x42"));
    assert!(reason.starts_with("COM_UNKNOWN_0x42 is blocked: it is not a command this proxy knows."));
    for cmd in [COM_CHANGE_USER, COM_PROCESS_KILL, COM_SHUTDOWN, COM_CREATE_DB, COM_STMT_BULK_EXECUTE] {
        let out = t.client(&frame(&[cmd, 1, 2, 3, 4], 0));
        assert!(out.to_backend.is_empty());
        assert_eq!(the_err(&out.to_client).1, 1792);
    }
    assert!(t.r.is_idle() && !t.r.is_closed());
}

#[test]
fn simple_commands_are_relayed() {
    let mut t = T::new();
    for (cmd, resp) in [
        (frame(b"\x0e", 0), ok(1)),
        (frame(b"\x1b\x00\x00", 0), eof_packet(1, 0, 2)),
        (frame(b"\x09", 0), frame(b"Uptime: 5", 1)),
        (frame(b"\x04t\x00", 0), [frame(b"\x03def", 1), eof_packet(2, 0, 2)].concat()),
    ] {
        assert_eq!(t.client(&cmd).to_backend, cmd);
        let out = t.backend(&resp);
        assert_eq!(out.to_client, resp);
        assert!(out.records.is_empty());
        assert!(t.r.is_idle());
    }
}

#[test]
fn quit_is_relayed_and_closes() {
    let mut t = T::new();
    let out = t.client(&frame(b"\x01", 0));
    assert_eq!(out.to_backend, frame(b"\x01", 0));
    assert!(out.close && t.r.is_closed());
    assert_eq!(field(event(&out, "disconnect").expect("disconnect"), "reason"), "client sent COM_QUIT");
}

#[test]
fn terminate_idle_and_admin() {
    let mut t = T::new();
    let mut out = Out::default();
    t.r.terminate(Termination::Idle, "idle for too long", &mut out);
    assert_eq!(the_err(&out.to_client), (1, 4031, "HY000".into(), "idle for too long".into()));
    assert!(out.records.iter().any(|r| matches!(r, Record::Metric("limit:idle_timeout_seconds"))));
    let lim = event(&out, "limit").expect("limit");
    assert_eq!((field(lim, "limit"), field(lim, "reason")), ("idle_timeout_seconds", "idle for too long"));
    assert_eq!(field(event(&out, "disconnect").expect("disconnect"), "reason"), "idle timeout");
    assert!(out.close && t.r.is_closed());
    let mut again = Out::default();
    t.r.terminate(Termination::Admin, "x", &mut again);
    assert!(again.to_client.is_empty() && again.records.is_empty());

    // admin, idle: ERR 1927 with sequence id 1
    let mut t = T::new();
    let mut out = Out::default();
    t.r.terminate(Termination::Admin, "drain", &mut out);
    assert_eq!(the_err(&out.to_client), (1, 1927, "70100".into(), "Connection closed by sandbox-db-proxy: drain".into()));
    assert!(out.close);
    // admin, busy before any response byte: the response's sequence id
    let mut t = T::new();
    t.client(&query("SELECT 1"));
    let mut out = Out::default();
    t.r.terminate(Termination::Admin, "bye", &mut out);
    assert_eq!(the_err(&out.to_client).0, 1);
    // admin, in the middle of a response: no ERR (it would corrupt the stream)
    let mut t = T::new();
    t.client(&query("SELECT 1"));
    t.backend(&one_value(b"1", 1)[..9]);
    let mut out = Out::default();
    t.r.terminate(Termination::Admin, "bye", &mut out);
    assert!(out.to_client.is_empty() && out.close);
}

#[test]
fn closed_sides() {
    let mut t = T::new();
    t.client(&query("SELECT 1"));
    let mut out = Out::default();
    t.r.backend_closed(Some("reset by peer"), &mut out);
    let (seq, code, _, msg) = the_err(&out.to_client);
    assert_eq!((seq, code), (1, 2013));
    assert_eq!(msg, "Lost connection to the database during query (the database closed the connection: reset by peer)");
    let pe = event(&out, "protocol_error").expect("protocol_error");
    assert_eq!(field(pe, "side"), "backend");
    assert!(out.close);

    let mut t = T::new();
    let mut out = Out::default();
    t.r.backend_closed(None, &mut out);
    assert!(out.to_client.is_empty() && out.close);

    let mut t = T::new();
    let mut out = Out::default();
    t.r.client_closed(None, &mut out);
    assert_eq!(field(event(&out, "disconnect").expect("disconnect"), "reason"), "client closed the connection");
    assert!(out.close && t.r.is_closed());
}

#[test]
fn bad_bytes_from_either_side() {
    // unsolicited backend bytes
    let mut t = T::new();
    let out = t.backend(&ok(1));
    assert!(out.close && out.to_client.is_empty());
    // trailing bytes after a complete response
    let mut t = T::new();
    t.client(&frame(b"\x0e", 0));
    let out = t.backend(&[ok(1), ok(2)].concat());
    assert_eq!(out.to_client, ok(1));
    assert!(out.close);
    assert_eq!(field(event(&out, "protocol_error").expect("pe"), "reason"), "11 unexpected bytes after a complete response");
    // a malformed response before anything was forwarded: ERR 1835
    let mut t = T::new();
    t.client(&frame(b"\x0e", 0));
    let out = t.backend(&ok(5));
    assert_eq!(the_err(&out.to_client).1, 1835);
    // a client command with the wrong sequence id
    let mut t = T::new();
    let out = t.client(&frame(b"\x0e", 3));
    let (seq, code, _, msg) = the_err(&out.to_client);
    assert_eq!((seq, code), (0, 1156));
    assert_eq!(msg, "Got packets out of order (sandbox-db-proxy: command packet with sequence id 3, expected 0)");
    assert!(out.close);
    // an empty command packet
    let mut t = T::new();
    let out = t.client(&frame(b"", 0));
    assert_eq!(the_err(&out.to_client).1, 1835);
    // too large, from the header alone
    let mut t = T::new();
    let out = t.client(&[0x01, 0x00, 0x20, 0x00]);
    let (seq, code, _, msg) = the_err(&out.to_client);
    assert_eq!((seq, code), (0, 1153));
    assert!(msg.starts_with("Got a packet bigger than the proxy's limit of 1048576 bytes (limits.max_message_bytes): message of"), "{msg}");
    assert!(out.records.iter().any(|r| matches!(r, Record::Metric("limit:max_message_bytes"))));
    assert!(out.close);
}

/// Run a command, then feed `resp` cut at every pair of offsets: the client must get the
/// response unchanged, and the relay must be idle again.
fn split_everywhere(cmd: &[u8], resp: &[u8], expect_rows: Option<u64>) {
    for i in 0..=resp.len() {
        for j in i..=resp.len() {
            let mut t = T::new();
            if cmd[4] == COM_STMT_EXECUTE {
                t.client(&frame(b"\x16SELECT ?", 0));
                t.backend(&prepare_ok(1));
            }
            assert!(!t.client(cmd).to_backend.is_empty());
            let mut got = Vec::new();
            let mut recs = Vec::new();
            for part in [&resp[..i], &resp[i..j], &resp[j..]] {
                if part.is_empty() {
                    continue;
                }
                let out = t.backend(part);
                assert!(!out.close, "cut {i} {j}");
                got.extend(out.to_client);
                recs.extend(out.records);
            }
            assert_eq!(got, resp, "cut {i} {j}");
            assert!(t.r.is_idle(), "cut {i} {j}");
            if let Some(rows) = expect_rows {
                assert!(recs.iter().any(|r| matches!(r, Record::Done { rows: Some(n), .. } if *n == rows)), "cut {i} {j}");
            }
        }
    }
}

#[test]
fn responses_split_at_every_byte_offset() {
    // text result set with two rows, then a second result (multi-statement)
    let mut resp = frame(b"\x01", 1);
    resp.extend(frame(b"\x03def\x00\x00\x00\x01v\x00\x0c\x3f\x00\x01\x00\x00\x00\x08\x00\x00\x00\x00\x00", 2));
    resp.extend(eof_packet(3, 0, 2));
    resp.extend(frame(b"\x011", 4));
    resp.extend(frame(b"\x012", 5));
    resp.extend(eof_packet(6, 0, 2 | SERVER_MORE_RESULTS_EXISTS));
    resp.extend(ok_packet(7, 3, 0, 2, 0, b"", false));
    split_everywhere(&query("SELECT 1"), &resp, Some(2));
    // binary result set of an EXECUTE
    let mut resp = frame(b"\x01", 1);
    resp.extend(frame(b"\x03def\x00\x00\x00\x01v\x00\x0c\x3f\x00\x01\x00\x00\x00\x08\x00\x00\x00\x00\x00", 2));
    resp.extend(eof_packet(3, 0, 2));
    resp.extend(frame(b"\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00", 4));
    resp.extend(eof_packet(5, 0, 2));
    split_everywhere(&stmt_cmd(COM_STMT_EXECUTE, 1, b"\x00\x01\x00\x00\x00"), &resp, Some(1));
}

#[test]
fn read_only_check_split_at_every_byte_offset() {
    let check = one_value(b"1", 1);
    for i in 1..check.len() {
        let mut t = T::new();
        t.client(&query("SET NAMES utf8mb4"));
        t.backend(&ok(1));
        let a = t.backend(&check[..i]);
        let b = t.backend(&check[i..]);
        assert!(!a.close && !b.close, "cut {i}");
        assert!(a.to_client.is_empty() && b.to_client.is_empty());
        assert!(t.r.is_idle());
    }
}

#[test]
fn execute_hot_path_forwards_the_raw_chunk_and_copies_nothing_else() {
    let mut t = T::new();
    t.client(&frame(b"\x16SELECT ?", 0));
    t.backend(&prepare_ok(1));
    let exec = stmt_cmd(COM_STMT_EXECUTE, 1, b"\x00\x01\x00\x00\x00\x01\x03\x00\x01");
    let resp = one_value(b"1", 1);
    let start = Instant::now();
    let n = 20_000u32;
    for _ in 0..n {
        let mut out = Out::default();
        t.r.client_data(&exec, t.now, &mut t.j, &mut out);
        t.r.backend_data(&resp, t.now, &mut t.j, &mut out);
        assert_eq!(out.to_client.len(), resp.len());
    }
    // generous bound (debug build, shared CPU); the release-build figure is far lower
    let per = start.elapsed().as_secs_f64() / f64::from(n);
    eprintln!("COM_STMT_EXECUTE + response: {:.3} us per command", per * 1e6);
    assert!(per < 50e-6, "{per}");
}
