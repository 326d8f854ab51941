//! Test support for the data plane: a small line-based test relay and a harness over real
//! sockets (Unix socket pairs).

use std::io::{ErrorKind, Read};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::relay::{Judge, Judgement, Out, Outcome, Record, Relay, Termination, Verdict, VerdictCache};
use crate::sql::Dialect;
/// Test relay: client lines are judged one by one; an allowed line goes to the backend
/// upper-cased and leaves a `Done`; a blocked one is answered `BLOCKED`. `raw` switches to
/// forwarding client bytes verbatim; `QUIT` closes; `PANIC` panics. Backend bytes go to the
/// client verbatim (and a waiting line is judged again, as a real relay may do).
#[derive(Default)]
pub(super) struct LineRelay {
    buf: Vec<u8>,
    waiting: bool,
    raw: bool,
    closed: bool,
}

impl LineRelay {
    fn process(&mut self, judge: &mut dyn Judge, out: &mut Out) {
        self.waiting = false;
        loop {
            if self.raw {
                out.to_backend.append(&mut self.buf);
                return;
            }
            let Some(pos) = self.buf.iter().position(|&b| b == b'\n') else { return };
            let line = String::from_utf8_lossy(&self.buf[..pos]).into_owned();
            if line == "QUIT" {
                self.closed = true;
                out.close = true;
                return;
            }
            if line == "PANIC" {
                panic!("test relay panic (expected by the test)");
            }
            match judge.judge(&line) {
                Judgement::Pending => {
                    self.waiting = true;
                    return;
                }
                Judgement::Known(v) => {
                    self.buf.drain(..=pos);
                    if !v.allowed {
                        out.to_client.extend_from_slice(b"BLOCKED\n");
                        out.record(Record::Blocked {
                            sql: Some(line.as_str().into()),
                            rule: v.rule.clone(),
                            reason: v.reason.clone(),
                            klass: v.klass.clone(),
                            message: "Query",
                            extra: vec![],
                        });
                        continue;
                    }
                    if let Some(db) = line.strip_prefix("use ") {
                        out.record(Record::Database(db.to_string()));
                    }
                    if line == "raw" {
                        self.raw = true;
                        continue;
                    }
                    out.to_backend.extend_from_slice(line.to_uppercase().as_bytes());
                    out.to_backend.push(b'\n');
                    let outcome =
                        if line.starts_with("err") { Outcome::Error("42P01".into()) } else { Outcome::Ok };
                    out.record(Record::Done {
                        sql: line.as_str().into(),
                        verdict: v,
                        message: "Query",
                        rows: Some(1),
                        seconds: 0.001,
                        outcome,
                    });
                }
            }
        }
    }
}

impl Relay for LineRelay {
    fn client_data(&mut self, data: &[u8], _now: Instant, judge: &mut dyn Judge, out: &mut Out) {
        self.buf.extend_from_slice(data);
        self.process(judge, out);
    }
    fn backend_data(&mut self, data: &[u8], _now: Instant, judge: &mut dyn Judge, out: &mut Out) {
        out.to_client.extend_from_slice(data);
        if self.waiting {
            self.process(judge, out);
        }
    }
    fn client_closed(&mut self, error: Option<&str>, out: &mut Out) {
        out.event("disconnect", vec![("side", "client".into()), ("error", error.unwrap_or("").into())]);
        self.closed = true;
        out.close = true;
    }
    fn backend_closed(&mut self, _error: Option<&str>, out: &mut Out) {
        self.closed = true;
        out.close = true;
    }
    fn terminate(&mut self, why: Termination, message: &str, out: &mut Out) {
        out.to_client.extend_from_slice(format!("TERMINATED {why:?}: {message}\n").as_bytes());
        self.closed = true;
        out.close = true;
    }
    fn is_idle(&self) -> bool {
        self.buf.is_empty()
    }
    fn wants_client_data(&self) -> bool {
        !self.waiting
    }
    fn is_closed(&self) -> bool {
        self.closed
    }
    fn internal_error(&self) -> Vec<u8> {
        b"INTERNAL ERROR\n".to_vec()
    }
}

pub(super) fn verdict(allowed: bool, klass: &str) -> Arc<Verdict> {
    Arc::new(Verdict {
        allowed,
        rule: if allowed { "read_only".into() } else { "write_statement".into() },
        reason: if allowed { String::new() } else { "writes are not allowed".into() },
        klass: klass.into(),
        verbs: vec![],
        audit_pre: format!("\"verdict\":\"ALLOWED\",\"rule\":\"read_only\",\"class\":\"{klass}\",")
            .into_bytes(),
        audit_post: b",\"db.operation.name\":\"SELECT\"".to_vec(),
    })
}

pub(super) fn cache() -> Arc<VerdictCache> {
    let c = Arc::new(VerdictCache::new(Dialect::Postgres, 1000));
    let g = c.generation();
    for t in ["select 1", "raw", "use shop", "err 1"] {
        c.insert(
            t,
            None,
            verdict(true, if t.starts_with("use") { "session" } else { "read" }),
            CacheMode::Exact,
            g,
        );
    }
    c
}

pub(super) struct Harness {
    pub(super) dp: DataPlane,
    pub(super) notified: Arc<AtomicUsize>,
    pub(super) cache: Arc<VerdictCache>,
    pub(super) stats: Arc<BackendStats>,
    pub(super) events: Vec<DpEvent>,
}

pub(super) struct Conn {
    pub(super) id: SessionId,
    pub(super) client: UnixStream,
    pub(super) backend: UnixStream,
}

pub(super) fn harness(high_water: usize) -> Harness {
    harness_lanes(high_water, 1)
}

pub(super) fn harness_lanes(high_water: usize, lanes: usize) -> Harness {
    let notified = Arc::new(AtomicUsize::new(0));
    let n = Arc::clone(&notified);
    let dp = DataPlane::start(
        Box::new(move || {
            n.fetch_add(1, Ordering::SeqCst);
        }),
        high_water,
        lanes,
    )
    .expect("start");
    Harness { dp, notified, cache: cache(), stats: Arc::new(BackendStats::new()), events: Vec::new() }
}

pub(super) fn unix_pair() -> (UnixStream, OwnedFd) {
    let (app, proxy) = UnixStream::pair().expect("pair");
    proxy.set_nonblocking(true).expect("nonblocking");
    app.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    (app, OwnedFd::from(proxy))
}

impl Harness {
    pub(super) fn adopt_with(&self, prefix: &[u8], database: Option<&str>, ic: &[u8], ib: &[u8]) -> Conn {
        let (client, client_fd) = unix_pair();
        let (backend, backend_fd) = unix_pair();
        let id = self.adopt_fds_with(client_fd, backend_fd, prefix, database, ic, ib).expect("adopt");
        Conn { id, client, backend }
    }

    /// Hands `client_fd`/`backend_fd` over with a `LineRelay` and the harness's cache and stats.
    pub(super) fn adopt_fds_with(
        &self,
        client_fd: OwnedFd,
        backend_fd: OwnedFd,
        prefix: &[u8],
        database: Option<&str>,
        ic: &[u8],
        ib: &[u8],
    ) -> std::io::Result<SessionId> {
        self.dp.adopt(Adopt {
            client_fd,
            backend_fd,
            relay: Box::new(LineRelay::default()),
            cache: Arc::clone(&self.cache),
            stats: Arc::clone(&self.stats),
            audit_prefix: prefix.to_vec(),
            database: database.map(str::to_string),
            initial_client: ic.to_vec(),
            initial_backend: ib.to_vec(),
        })
    }

    pub(super) fn adopt_fds(&self, client_fd: OwnedFd, backend_fd: OwnedFd) -> std::io::Result<SessionId> {
        self.adopt_fds_with(client_fd, backend_fd, b"", None, b"", b"")
    }

    pub(super) fn adopt(&self) -> Conn {
        self.adopt_with(b"", None, b"", b"")
    }

    /// Collects events until `pred` holds for the collected list (5 s at most).
    pub(super) fn wait(&mut self, what: &str, pred: impl Fn(&[DpEvent]) -> bool) {
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            self.events.extend(self.dp.take_events());
            if pred(&self.events) {
                return;
            }
            assert!(Instant::now() < end, "timed out waiting for {what}: {:?}", self.events);
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    pub(super) fn wait_closed(&mut self, id: SessionId) {
        self.wait("Closed", |ev| {
            ev.iter().any(|e| matches!(e, DpEvent::Closed { session } if *session == id))
        });
    }

    pub(super) fn audit(&self, lines: usize) -> Vec<u8> {
        let end = Instant::now() + Duration::from_secs(5);
        let mut all = Vec::new();
        loop {
            all.extend(self.dp.take_audit());
            if all.iter().filter(|&&b| b == b'\n').count() >= lines {
                return all;
            }
            assert!(Instant::now() < end, "timed out waiting for audit: {}", String::from_utf8_lossy(&all));
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

pub(super) fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let end = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

pub(super) fn read_n(s: &mut impl Read, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    s.read_exact(&mut buf).expect("read_exact");
    buf
}

pub(super) fn assert_silent(s: &mut UnixStream) {
    s.set_read_timeout(Some(Duration::from_millis(150))).expect("timeout");
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("expected nothing, got {other:?} {:?}", &b[..]),
    }
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
}

pub(super) fn assert_eof(s: &mut impl Read) {
    let mut b = [0u8; 64];
    let mut tail = Vec::new();
    loop {
        match s.read(&mut b) {
            Ok(0) => return,
            Ok(n) => tail.extend_from_slice(&b[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return,
            Err(e) => panic!("expected EOF, got {e} after {:?}", String::from_utf8_lossy(&tail)),
        }
    }
}
