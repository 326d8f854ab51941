//! Data plane tests over real sockets (Unix socket pairs and TCP on 127.0.0.1), driving the
//! line-based test relay of test_support.rs.

use std::io::{ErrorKind, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::test_support::*;
use super::*;
use crate::relay::{Lookup, Outcome, Record, Termination};
#[test]
fn round_trip_audit_line_and_stats() {
    let mut h = harness(1 << 20);
    let mut c = h.adopt_with(br#""agent":"a","connection.id":"c1","#, Some("db\"1"), b"", b"");
    c.client.write_all(b"select 1\n").unwrap();
    assert_eq!(read_n(&mut c.backend, 9), b"SELECT 1\n");
    c.backend.write_all(b"row 1\n").unwrap();
    assert_eq!(read_n(&mut c.client, 6), b"row 1\n");
    let line = h.audit(1);
    let line = String::from_utf8(line).unwrap();
    assert!(line.starts_with("{\"ts\":\"20"), "{line}");
    assert_eq!(&line[30..33], "Z\",", "{line}");
    assert_eq!(
        &line[33..],
        "\"event\":\"statement\",\"agent\":\"a\",\"connection.id\":\"c1\",\"db.namespace\":\"db\\\"1\",\
         \"verdict\":\"ALLOWED\",\"rule\":\"read_only\",\"class\":\"read\",\"db.query.text\":\"select 1\",\
         \"db.operation.name\":\"SELECT\",\"protocol.message\":\"Query\",\"rows\":1,\"duration_ms\":1.000}\n"
    );
    let want = SessionStats { bytes_in: 9, bytes_out: 6, activity: 1, allowed: 1, idle: true };
    wait_until("session stats", || h.dp.session_stats(c.id) == Some(want));
    let d = h.stats.take();
    assert_eq!(d.allowed_by_class, vec![("read".to_string(), 1)]);
    assert_eq!(d.query_buckets[3], 1);
    assert_eq!(d.query_buckets.iter().sum::<u64>(), 1);
    assert!((d.query_sum - 0.001).abs() < 1e-12);
    assert_eq!(d.cache_hits, 1);
    assert_eq!(d.classify_buckets.iter().sum::<u64>(), 1);
    assert!(d.classify_sum > 0.0);
    assert_eq!(h.stats.take().cache_hits, 0);
    h.events.extend(h.dp.take_events());
    assert!(h.events.is_empty(), "{:?}", h.events);
    assert_eq!(h.dp.session_count(), 1);
    assert_eq!(h.dp.audit_dropped(), 0);
}

#[test]
fn initial_bytes_are_fed_first() {
    let h = harness(1 << 20);
    let mut c = h.adopt_with(b"", None, b"select 1\n", b"hello\n");
    assert_eq!(read_n(&mut c.client, 6), b"hello\n");
    assert_eq!(read_n(&mut c.backend, 9), b"SELECT 1\n");
    c.client.write_all(b"select 1\n").unwrap();
    assert_eq!(read_n(&mut c.backend, 9), b"SELECT 1\n");
    wait_until("allowed 2", || h.dp.session_stats(c.id).map(|s| s.allowed) == Some(2));
    let st = h.dp.session_stats(c.id).unwrap();
    assert_eq!((st.bytes_in, st.bytes_out, st.activity, st.allowed), (9, 6, 1, 2));
}

#[test]
fn pending_verdict_then_resume() {
    let mut h = harness(1 << 20);
    let mut c = h.adopt();
    let before = h.notified.load(Ordering::SeqCst);
    c.client.write_all(b"select 2\nselect 1\n").unwrap();
    h.wait("NeedVerdict", |ev| !ev.is_empty());
    assert!(h.notified.load(Ordering::SeqCst) > before);
    let gen = h.cache.generation();
    match h.events.as_slice() {
        [DpEvent::NeedVerdict { session, sql, fingerprint, generation }] => {
            assert_eq!(*session, c.id);
            assert_eq!(sql, "select 2");
            assert!(fingerprint.is_some());
            assert_eq!(*generation, gen);
        }
        other => panic!("{other:?}"),
    }
    // Nothing passes before the verdict, not even the known statement behind it.
    assert_silent(&mut c.backend);
    assert!(!h.dp.session_stats(c.id).unwrap().idle);
    // Backend bytes while waiting: the relay judges the line again, no second event.
    c.backend.write_all(b"notice\n").unwrap();
    assert_eq!(read_n(&mut c.client, 7), b"notice\n");
    std::thread::sleep(Duration::from_millis(50));
    assert!(h.dp.take_events().is_empty());
    h.events.clear();

    h.dp.verdict(c.id, "select 2".into(), verdict(true, "read"), CacheMode::Exact, gen);
    assert_eq!(read_n(&mut c.backend, 18), b"SELECT 2\nSELECT 1\n");
    assert!(matches!(h.cache.lookup("select 2"), Lookup::Hit(_)));

    // CacheMode::None: passes once, not cached.
    c.client.write_all(b"select 3\n").unwrap();
    h.wait("NeedVerdict", |ev| !ev.is_empty());
    h.dp.verdict(c.id, "select 3".into(), verdict(true, "read"), CacheMode::None, gen);
    assert_eq!(read_n(&mut c.backend, 9), b"SELECT 3\n");
    assert!(matches!(h.cache.lookup("select 3"), Lookup::Miss { .. }));
    // A stale generation (cache cleared meanwhile) is not stored, but the statement passes.
    h.events.clear();
    c.client.write_all(b"select 4\n").unwrap();
    h.wait("NeedVerdict", |ev| !ev.is_empty());
    h.cache.clear();
    h.dp.verdict(c.id, "select 4".into(), verdict(true, "read"), CacheMode::Exact, gen);
    assert_eq!(read_n(&mut c.backend, 9), b"SELECT 4\n");
    assert!(matches!(h.cache.lookup("select 4"), Lookup::Miss { .. }));
    wait_until("allowed 4", || h.dp.session_stats(c.id).map(|s| s.allowed) == Some(4));
}

#[test]
fn blocked_verdict_and_records() {
    let mut h = harness(1 << 20);
    let mut c = h.adopt();
    c.client.write_all(b"delete from t\n").unwrap();
    h.wait("NeedVerdict", |ev| matches!(ev, [DpEvent::NeedVerdict { .. }]));
    h.events.clear();
    h.dp.verdict(
        c.id,
        "delete from t".into(),
        verdict(false, "write"),
        CacheMode::Exact,
        h.cache.generation(),
    );
    assert_eq!(read_n(&mut c.client, 8), b"BLOCKED\n");
    h.wait("Records", |ev| !ev.is_empty());
    match h.events.as_slice() {
        [DpEvent::Records { session, records }] => {
            assert_eq!(*session, c.id);
            assert!(
                matches!(records.as_slice(), [Record::Blocked { rule, .. }] if rule == "write_statement")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_silent(&mut c.backend);
    h.events.clear();

    // Database: kept for later lines and passed on; an error outcome goes to Python.
    c.client.write_all(b"use shop\nerr 1\n").unwrap();
    assert_eq!(read_n(&mut c.backend, 15), b"USE SHOP\nERR 1\n");
    h.wait("Records", |ev| !ev.is_empty());
    match h.events.as_slice() {
        [DpEvent::Records { records, .. }] => match records.as_slice() {
            [Record::Database(db), Record::Done { outcome: Outcome::Error(code), .. }] => {
                assert_eq!(db, "shop");
                assert_eq!(code, "42P01");
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    c.client.write_all(b"select 1\n").unwrap();
    assert_eq!(read_n(&mut c.backend, 9), b"SELECT 1\n");
    let audit = String::from_utf8(h.audit(2)).unwrap();
    let lines: Vec<&str> = audit.lines().collect();
    assert_eq!(lines.len(), 2, "{audit}");
    assert!(lines[0].contains("\"db.namespace\":\"shop\",\"verdict\":\"ALLOWED\",\"rule\":\"read_only\",\"class\":\"session\",\"db.query.text\":\"use shop\""), "{audit}");
    assert!(lines[1].contains("\"db.namespace\":\"shop\",\"verdict\""), "{audit}");
    let d = h.stats.take();
    assert_eq!(d.allowed_by_class, vec![("session".to_string(), 1), ("read".to_string(), 1)]);
}

#[test]
fn audit_disabled_still_counts() {
    let h = harness(1 << 20);
    h.dp.set_audit_enabled(false);
    let mut c = h.adopt();
    c.client.write_all(b"select 1\n").unwrap();
    assert_eq!(read_n(&mut c.backend, 9), b"SELECT 1\n");
    std::thread::sleep(Duration::from_millis(30));
    assert!(h.dp.take_audit().is_empty());
    wait_until("allowed 1", || h.dp.session_stats(c.id).map(|s| s.allowed) == Some(1));
    assert_eq!(h.stats.take().allowed_by_class, vec![("read".to_string(), 1)]);
    h.dp.set_audit_enabled(true);
    c.client.write_all(b"select 1\n").unwrap();
    assert_eq!(h.audit(1).iter().filter(|&&b| b == b'\n').count(), 1);
}

#[test]
fn long_text_goes_to_python() {
    let mut h = harness(1 << 20);
    let long = format!("select '{}'", "x".repeat(70_000));
    h.cache.insert(&long, None, verdict(true, "read"), CacheMode::Exact, h.cache.generation());
    let mut c = h.adopt();
    c.client.write_all(format!("{long}\n").as_bytes()).unwrap();
    h.wait("NeedVerdict (text over the exact-cache limit)", |ev| !ev.is_empty());
    h.events.clear();
    h.dp.verdict(c.id, long.clone(), verdict(true, "read"), CacheMode::Exact, h.cache.generation());
    assert_eq!(read_n(&mut c.backend, long.len() + 1).len(), long.len() + 1);
    h.wait("Records", |ev| !ev.is_empty());
    assert!(
        matches!(h.events.as_slice(), [DpEvent::Records { records, .. }] if matches!(records.as_slice(), [Record::Done { .. }]))
    );
    assert!(h.dp.take_audit().is_empty());
    assert_eq!(h.dp.session_stats(c.id).unwrap().allowed, 0);
}

#[test]
fn terminate_closes_both() {
    let mut h = harness(1 << 20);
    let mut c = h.adopt();
    h.dp.terminate(c.id, Termination::Admin, "bye".into());
    let msg = b"TERMINATED Admin: bye\n";
    assert_eq!(read_n(&mut c.client, msg.len()), msg);
    assert_eof(&mut c.client);
    assert_eof(&mut c.backend);
    h.wait_closed(c.id);
    assert_eq!(h.dp.session_count(), 0);
    // Final counters stay readable until the next take_events, then are forgotten.
    assert!(h.dp.session_stats(c.id).is_some());
    let _ = h.dp.take_events();
    assert!(h.dp.session_stats(c.id).is_none());
    // Commands for a gone session are ignored.
    h.dp.terminate(c.id, Termination::Idle, "again".into());
    h.dp.verdict(c.id, "x".into(), verdict(true, "read"), CacheMode::Exact, 1);
}

#[test]
fn client_eof_closes_both() {
    let mut h = harness(1 << 20);
    let c = h.adopt();
    let Conn { id, client, mut backend } = c;
    drop(client);
    assert_eof(&mut backend);
    h.wait_closed(id);
    match h.events.as_slice() {
        [DpEvent::Records { records, .. }, DpEvent::Closed { .. }] => {
            assert!(matches!(records.as_slice(), [Record::Event { event: "disconnect", .. }]));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.dp.session_count(), 0);
}

#[test]
fn backend_eof_closes_both() {
    let mut h = harness(1 << 20);
    let Conn { id, mut client, backend } = h.adopt();
    drop(backend);
    assert_eof(&mut client);
    h.wait_closed(id);
    assert_eq!(h.dp.session_count(), 0);
}

#[test]
fn quit_flushes_then_closes() {
    let mut h = harness(1 << 20);
    let mut c = h.adopt();
    c.client.write_all(b"select 1\nQUIT\n").unwrap();
    assert_eq!(read_n(&mut c.backend, 9), b"SELECT 1\n");
    assert_eof(&mut c.backend);
    assert_eof(&mut c.client);
    h.wait_closed(c.id);
}

/// Writes from `w` (non-blocking) until it has been blocked for a while: the proxy has
/// stopped reading. Returns the bytes written.
fn flood(w: &mut UnixStream) -> usize {
    w.set_nonblocking(true).unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    let mut total = 0;
    let mut blocked_since: Option<Instant> = None;
    loop {
        match w.write(&chunk) {
            Ok(n) => {
                total += n;
                blocked_since = None;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let since = *blocked_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(300) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("{e}"),
        }
        assert!(total < 256 << 20, "the proxy never stopped reading");
    }
    w.set_nonblocking(false).unwrap();
    total
}

#[test]
fn flow_control_bounds_memory() {
    let hw = 64 * 1024;
    let h = harness(hw);
    let mut c = h.adopt();
    // Backend -> a client that does not read.
    let sent = flood(&mut c.backend);
    let peak = h.dp.peak_queued(c.id).unwrap();
    assert!(peak > 0 && peak <= hw + 64 * 1024, "queued {peak}");
    assert_eq!(read_n(&mut c.client, sent).len(), sent);
    // Client -> a backend that does not read (relay in raw mode).
    c.client.write_all(b"raw\n").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let sent = flood(&mut c.client);
    let peak = h.dp.peak_queued(c.id).unwrap();
    assert!(peak <= hw + 64 * 1024, "queued {peak}");
    let got = read_n(&mut c.backend, sent);
    assert!(got.iter().all(|&b| b == b'x'));
    let st = h.dp.session_stats(c.id).unwrap();
    assert_eq!(st.bytes_in, 4 + sent as u64);
}

#[test]
fn hundred_sessions_over_tcp() {
    // three lanes: the sessions spread over three I/O threads
    let mut h = harness_lanes(1 << 20, 3);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let mut conns = Vec::new();
    for _ in 0..100 {
        let client_app = TcpStream::connect(addr).unwrap();
        let (client_proxy, _) = l.accept().unwrap();
        let backend_proxy = TcpStream::connect(addr).unwrap();
        let (backend_app, _) = l.accept().unwrap();
        for s in [&client_app, &backend_app] {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        }
        client_proxy.set_nonblocking(true).unwrap();
        backend_proxy.set_nonblocking(true).unwrap();
        let id = h.adopt_fds(client_proxy.into(), backend_proxy.into()).unwrap();
        conns.push((id, client_app, backend_app));
    }
    assert_eq!(h.dp.session_count(), 100);
    for lane in 0..3 {
        let n = conns.iter().filter(|c| lane_of(c.0) == lane).count();
        assert!((33..=34).contains(&n), "lane {lane}: {n} sessions");
    }
    for (_, c, _) in &mut conns {
        c.write_all(b"select 1\n").unwrap();
    }
    for (_, _, b) in &mut conns {
        assert_eq!(read_n(b, 9), b"SELECT 1\n");
        b.write_all(b"ok\n").unwrap();
    }
    for (_, c, _) in &mut conns {
        assert_eq!(read_n(c, 3), b"ok\n");
    }
    assert_eq!(h.audit(100).iter().filter(|&&b| b == b'\n').count(), 100);
    assert_eq!(h.stats.take().allowed_by_class, vec![("read".to_string(), 100)]);
    let ids: Vec<SessionId> = conns.iter().map(|c| c.0).collect();
    drop(conns);
    h.wait("100 Closed", |ev| ev.iter().filter(|e| matches!(e, DpEvent::Closed { .. })).count() == 100);
    for id in ids {
        assert!(h.events.iter().any(|e| matches!(e, DpEvent::Closed { session } if *session == id)));
    }
    assert_eq!(h.dp.session_count(), 0);
}

#[test]
fn relay_panic_ends_only_its_session() {
    let mut h = harness(1 << 20);
    relay_panic_case(&mut h);
    // the same across lanes: the two sessions on different I/O threads
    let mut h = harness_lanes(1 << 20, 2);
    relay_panic_case(&mut h);
}

fn relay_panic_case(h: &mut Harness) {
    let mut bad = h.adopt();
    let mut good = h.adopt();
    bad.client.write_all(b"PANIC\n").unwrap();
    // the client is told, in its protocol (Relay::internal_error), before the end
    assert_eq!(read_n(&mut bad.client, 15), b"INTERNAL ERROR\n");
    assert_eof(&mut bad.client);
    h.wait_closed(bad.id);
    assert!(h.events.iter().any(|e| matches!(e, DpEvent::Records { session, records }
        if *session == bad.id && matches!(records.as_slice(), [Record::Event { event: "protocol_error", .. }]))));
    good.client.write_all(b"select 1\n").unwrap();
    assert_eq!(read_n(&mut good.backend, 9), b"SELECT 1\n");
    assert_eq!(h.dp.session_count(), 1);
}

#[test]
fn shutdown_closes_everything() {
    // two lanes: shutdown stops and joins both threads
    let h = harness_lanes(1 << 20, 2);
    let mut a = h.adopt();
    let mut b = h.adopt();
    assert_ne!(lane_of(a.id), lane_of(b.id));
    a.client.write_all(b"select 2\n").unwrap(); // leaves a NeedVerdict event behind
    std::thread::sleep(Duration::from_millis(30));
    h.dp.shutdown();
    for s in [&mut a.client, &mut a.backend, &mut b.client, &mut b.backend] {
        assert_eof(s);
    }
    assert!(h.dp.take_events().is_empty());
    assert_eq!(h.dp.session_count(), 0);
    let (_c, client_fd) = unix_pair();
    let (_b, backend_fd) = unix_pair();
    let r = h.adopt_fds(client_fd, backend_fd);
    assert!(r.is_err());
    h.dp.verdict(a.id, "select 2".into(), verdict(true, "read"), CacheMode::Exact, 1);
    h.dp.shutdown();
    assert!(h.dp.take_events().is_empty());
}

#[test]
fn adopt_refuses_a_non_socket() {
    let h = harness(1 << 20);
    let f = std::fs::File::open("/dev/null").unwrap();
    let (_b, backend_fd) = unix_pair();
    let r = h.adopt_fds(OwnedFd::from(f), backend_fd);
    assert!(r.is_err());
    assert_eq!(h.dp.session_count(), 0);
}

#[test]
fn lanes_route_commands_and_balance() {
    let mut h = harness_lanes(1 << 20, 3);
    assert_eq!(h.dp.lanes(), 3);
    let mut conns: Vec<Conn> = (0..6).map(|_| h.adopt()).collect();
    let mut per_lane = [0; 3];
    for c in &conns {
        per_lane[lane_of(c.id)] += 1;
    }
    assert_eq!(per_lane, [2, 2, 2]);
    // a verdict and a termination reach the lane that owns the session
    for (i, c) in conns.iter_mut().enumerate() {
        c.client.write_all(format!("select {}\n", 100 + i).as_bytes()).unwrap();
    }
    h.wait("6 NeedVerdict", |ev| ev.iter().filter(|e| matches!(e, DpEvent::NeedVerdict { .. })).count() == 6);
    let gen = h.cache.generation();
    for (i, c) in conns.iter_mut().enumerate() {
        h.dp.verdict(c.id, format!("select {}", 100 + i), verdict(true, "read"), CacheMode::Exact, gen);
        assert_eq!(read_n(&mut c.backend, 11), format!("SELECT {}\n", 100 + i).as_bytes());
    }
    let victim = conns.remove(4);
    h.dp.terminate(victim.id, Termination::Admin, "bye".into());
    let mut vc = victim.client;
    let msg = b"TERMINATED Admin: bye\n";
    assert_eq!(read_n(&mut vc, msg.len()), msg);
    assert_eof(&mut vc);
    h.wait_closed(victim.id);
    // the next session goes to the lane that lost one
    let next = h.adopt();
    assert_eq!(lane_of(next.id), lane_of(victim.id));
    assert_eq!(h.dp.session_count(), 6);
}
