//! One adopted session on the I/O thread: its `Judge` (decided slot, verdict cache,
//! NeedVerdict once per pending text), the calls into its relay, and what is done with each
//! call's `Out` (writes, records, close). The loop that drives sessions is worker.rs.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mio::Poll;

use super::audit::{self, Clock};
use super::io::{Side, Wrote};
use super::stats::BackendStats;
use super::{Counters, DpEvent, NewSession, SessionId, Shared};
use crate::relay::{
    Judge, Judgement, Lookup, Out, Outcome, Record, Relay, Termination, Verdict, VerdictCache,
};

/// At most this much is read from one socket per wakeup, so one busy session cannot starve
/// the others; the socket stays marked readable and is read again next round.
pub(super) const READ_BUDGET: usize = 256 * 1024;
/// How long a closing session may take to flush what is queued.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Texts a session has asked Python about and not had answered yet (normally one: the relay
/// stops at the first Pending).
const MAX_ASKED: usize = 64;

/// What the session's `Judge` keeps.
pub(super) struct JudgeState {
    pub(super) cache: Arc<VerdictCache>,
    pub(super) stats: Arc<BackendStats>,
    /// The engine's last answer, used once for exactly this text (even when it is not cached:
    /// CacheMode::None, or the cache was cleared meanwhile).
    pub(super) decided: Option<(String, Arc<Verdict>)>,
    /// NeedVerdict sent, no answer yet: (text, fingerprint) -- one event per pending text.
    pub(super) asked: Vec<(String, Option<String>)>,
}

struct SessionJudge<'a> {
    st: &'a mut JudgeState,
    events: &'a mut Vec<DpEvent>,
    id: SessionId,
}

impl Judge for SessionJudge<'_> {
    fn judge(&mut self, sql: &str) -> Judgement {
        if matches!(&self.st.decided, Some((text, _)) if text == sql) {
            if let Some((_, v)) = self.st.decided.take() {
                return Judgement::Known(v);
            }
        }
        let t0 = Instant::now();
        match self.st.cache.lookup(sql) {
            Lookup::Hit(v) => {
                self.st.stats.cache_hit(t0.elapsed().as_secs_f64());
                Judgement::Known(v)
            }
            Lookup::Miss { fingerprint, generation } => {
                if !self.st.asked.iter().any(|(s, _)| s == sql) {
                    if self.st.asked.len() >= MAX_ASKED {
                        self.st.asked.remove(0);
                    }
                    self.st.asked.push((sql.to_owned(), fingerprint.clone()));
                    self.events.push(DpEvent::NeedVerdict {
                        session: self.id,
                        sql: sql.to_owned(),
                        fingerprint,
                        generation,
                    });
                }
                Judgement::Pending
            }
        }
    }
}

pub(super) struct Session {
    pub(super) id: SessionId,
    pub(super) client: Side,
    pub(super) backend: Side,
    pub(super) relay: Box<dyn Relay>,
    pub(super) judge: JudgeState,
    pub(super) audit_prefix: Vec<u8>,
    pub(super) database: Option<String>,
    pub(super) counters: Arc<Counters>,
    /// Set once the session ends: flush until this deadline, then close.
    pub(super) closing: Option<Instant>,
    /// The relay panicked: never call it again.
    pub(super) broken: bool,
    /// A write failed; the relay is told on the next step (`*_closed(Some(error))`).
    pub(super) client_err: Option<String>,
    pub(super) backend_err: Option<String>,
    /// Already in this round's ready list.
    pub(super) queued_for_drive: bool,
}

/// One call into the relay.
pub(super) enum Call<'a> {
    Client(&'a [u8]),
    Backend(&'a [u8]),
    ClientClosed(Option<&'a str>),
    BackendClosed(Option<&'a str>),
    Terminate(Termination, &'a str),
}

/// Everything of the I/O thread except the session table (split so a session and these can
/// be borrowed at the same time).
pub(super) struct Ctx {
    pub(super) shared: Arc<Shared>,
    pub(super) out: Out,
    pub(super) events: Vec<DpEvent>,
    pub(super) audit: Vec<u8>,
    pub(super) clock: Clock,
    /// Sessions that used their read budget and still have input: driven again next round.
    pub(super) again: Vec<SessionId>,
    /// Sessions to remove (closed) at the end of this round.
    pub(super) done: Vec<SessionId>,
    /// Sessions flushing before they close (see `CLOSE_GRACE`).
    pub(super) closing: Vec<SessionId>,
    pub(super) high_water: usize,
}

impl Session {
    pub(super) fn new(n: NewSession) -> Session {
        Session {
            id: n.id,
            client: Side::new(n.client),
            backend: Side::new(n.backend),
            relay: n.relay,
            judge: JudgeState { cache: n.cache, stats: n.stats, decided: None, asked: Vec::new() },
            audit_prefix: n.audit_prefix,
            database: n.database,
            counters: n.counters,
            closing: None,
            broken: false,
            client_err: None,
            backend_err: None,
            queued_for_drive: false,
        }
    }

    pub(super) fn relay_alive(&self) -> bool {
        !self.broken && self.closing.is_none() && !self.relay.is_closed()
    }

    pub(super) fn begin_closing(&mut self, ctx: &mut Ctx) {
        if self.closing.is_none() {
            self.closing = Some(Instant::now() + CLOSE_GRACE);
            ctx.closing.push(self.id);
        }
    }

    /// Calls the relay and acts on its `Out`; then tells the relay about failed writes.
    pub(super) fn step(&mut self, ctx: &mut Ctx, call: Call<'_>) {
        self.call(ctx, call);
        self.settle(ctx);
    }

    /// Tells the relay about failed writes (`*_closed(Some(error))`: the peer is gone).
    fn settle(&mut self, ctx: &mut Ctx) {
        loop {
            if let Some(e) = self.backend_err.take() {
                self.call(ctx, Call::BackendClosed(Some(&e)));
            } else if let Some(e) = self.client_err.take() {
                self.call(ctx, Call::ClientClosed(Some(&e)));
            } else {
                break;
            }
        }
        if (self.client.eof || self.client.dead) && (self.backend.eof || self.backend.dead) {
            // Neither side can say anything more: nothing left to relay.
            self.begin_closing(ctx);
        }
    }

    fn call(&mut self, ctx: &mut Ctx, call: Call<'_>) {
        if !self.relay_alive() {
            return;
        }
        let id = self.id;
        let relay = &mut self.relay;
        let st = &mut self.judge;
        let out = &mut ctx.out;
        let events = &mut ctx.events;
        // A bug in one relay must not take the whole I/O thread (every session) with it.
        let ok = catch_unwind(AssertUnwindSafe(|| {
            let mut judge = SessionJudge { st, events, id };
            let now = Instant::now();
            match call {
                Call::Client(d) => relay.client_data(d, now, &mut judge, out),
                Call::Backend(d) => relay.backend_data(d, now, &mut judge, out),
                Call::ClientClosed(e) => relay.client_closed(e, out),
                Call::BackendClosed(e) => relay.backend_closed(e, out),
                Call::Terminate(why, msg) => relay.terminate(why, msg, out),
            }
        }))
        .is_ok();
        if !ok {
            self.broken = true;
            // Tell the client, in its protocol, that the session ended (as the Python relay's
            // internal-error path does); asking a relay that just panicked may panic again.
            let bye = catch_unwind(AssertUnwindSafe(|| self.relay.internal_error())).unwrap_or_default();
            if !bye.is_empty() {
                let mut written = 0;
                let _ = self.client.send(&bye, &mut written);
                Counters::add(&self.counters.bytes_out, written);
            }
            ctx.out.to_client.clear();
            ctx.out.to_backend.clear();
            ctx.out.records.clear();
            ctx.out.close = false;
            ctx.events.push(DpEvent::Records {
                session: id,
                records: vec![Record::Event {
                    event: "protocol_error",
                    fields: vec![("reason", "internal error in the native relay; session closed".into())],
                }],
            });
            self.begin_closing(ctx);
            return;
        }
        self.apply(ctx);
    }

    /// Acts on the relay's output: records (handed over at once), then bytes to the backend,
    /// then to the client, then close (relay/mod.rs `Out`). Records first: a client that has
    /// its answer must find the statement's audit line already handed over (tests and
    /// operators read the log right after a query).
    fn apply(&mut self, ctx: &mut Ctx) {
        if !ctx.out.records.is_empty() {
            self.records(ctx);
            super::worker::publish(ctx);
        }
        let out = &mut ctx.out;
        if !out.to_backend.is_empty() {
            let mut unused = 0;
            if let Wrote::Failed(e) = self.backend.send(&out.to_backend, &mut unused) {
                self.backend_err = Some(e);
            }
            out.to_backend.clear();
        }
        if !out.to_client.is_empty() {
            let mut written = 0;
            if let Wrote::Failed(e) = self.client.send(&out.to_client, &mut written) {
                self.client_err = Some(e);
            }
            Counters::add(&self.counters.bytes_out, written);
            out.to_client.clear();
        }
        let c = &self.counters;
        c.idle.store(self.relay.is_idle(), Ordering::Relaxed);
        c.peak(self.client.queued().max(self.backend.queued()));
        if std::mem::take(&mut ctx.out.close) || self.relay.is_closed() {
            self.begin_closing(ctx);
        }
    }

    /// The hot record (an allowed statement that completed, text short enough) becomes an
    /// audit line and counters here; everything else goes to Python in one event, in order.
    fn records(&mut self, ctx: &mut Ctx) {
        let audit_on = ctx.shared.audit_enabled.load(Ordering::Relaxed);
        let mut batch = Vec::new();
        for r in ctx.out.records.drain(..) {
            match r {
                // (an empty text -- Execute of a portal the relay never saw -- is audited
                // without db.query.text by Python, as the Python relay does)
                Record::Done { sql, verdict, message, rows, seconds, outcome: Outcome::Ok }
                    if !sql.is_empty() && audit::short_enough(&sql) =>
                {
                    self.judge.stats.allowed(&verdict.klass, seconds);
                    Counters::add(&self.counters.allowed, 1);
                    if audit_on {
                        audit::allowed_line(
                            &mut ctx.audit,
                            &mut ctx.clock,
                            SystemTime::now(),
                            &self.audit_prefix,
                            self.database.as_deref(),
                            &verdict,
                            &sql,
                            message,
                            rows,
                            seconds,
                        );
                    }
                }
                Record::Database(db) => {
                    self.database = Some(db.clone());
                    batch.push(Record::Database(db));
                }
                other => batch.push(other),
            }
        }
        if !batch.is_empty() {
            ctx.events.push(DpEvent::Records { session: self.id, records: batch });
        }
    }

    /// Writes what is queued to both sides.
    fn flush(&mut self, ctx: &mut Ctx) {
        let mut unused = 0;
        if let Wrote::Failed(e) = self.backend.flush(&mut unused) {
            self.backend_err = Some(e);
        }
        let mut written = 0;
        if let Wrote::Failed(e) = self.client.flush(&mut written) {
            self.client_err = Some(e);
        }
        Counters::add(&self.counters.bytes_out, written);
        if self.closing.is_some() {
            // The relay has ended the session: nothing more to tell it.
            self.client_err = None;
            self.backend_err = None;
        } else {
            self.settle(ctx);
        }
    }

    fn can_read_backend(&self, hw: usize) -> bool {
        self.backend.readable && !self.backend.eof && self.client.queued() <= hw && self.relay_alive()
    }

    fn can_read_client(&self, hw: usize) -> bool {
        self.client.readable
            && !self.client.eof
            && self.backend.queued() <= hw
            && self.relay_alive()
            && self.relay.wants_client_data()
    }

    /// Everything that can be done now: flush, then read both sides in turn (one chunk
    /// each) while flow control, the relay and the fairness budget allow.
    pub(super) fn drive(&mut self, ctx: &mut Ctx, scratch: &mut [u8]) {
        self.flush(ctx);
        let hw = ctx.high_water;
        let (mut budget_b, mut budget_c) = (READ_BUDGET, READ_BUDGET);
        loop {
            let mut tried = false;
            if budget_b > 0 && self.can_read_backend(hw) {
                tried = true;
                match read(&mut self.backend, scratch) {
                    Read::Data(n) => {
                        budget_b = budget_b.saturating_sub(n);
                        self.step(ctx, Call::Backend(scratch.get(..n).unwrap_or_default()));
                    }
                    Read::Closed(e) => self.step(ctx, Call::BackendClosed(e.as_deref())),
                    Read::Nothing => {}
                }
            }
            if budget_c > 0 && self.can_read_client(hw) {
                tried = true;
                match read(&mut self.client, scratch) {
                    Read::Data(n) => {
                        budget_c = budget_c.saturating_sub(n);
                        Counters::add(&self.counters.activity, 1);
                        Counters::add(&self.counters.bytes_in, n as u64);
                        self.step(ctx, Call::Client(scratch.get(..n).unwrap_or_default()));
                    }
                    Read::Closed(e) => self.step(ctx, Call::ClientClosed(e.as_deref())),
                    Read::Nothing => {}
                }
            }
            if !tried {
                break;
            }
        }
        if (budget_b == 0 && self.can_read_backend(hw)) || (budget_c == 0 && self.can_read_client(hw)) {
            ctx.again.push(self.id);
        }
        if let Some(deadline) = self.closing {
            let b = self.backend.queued() == 0 || self.backend.dead;
            let c = self.client.queued() == 0 || self.client.dead;
            if (b && c) || Instant::now() >= deadline {
                ctx.done.push(self.id);
            }
        }
    }

    /// Closes both sockets (after `shutdown(Write)`: Python may still hold a duplicate).
    pub(super) fn close(mut self, poll: &Poll) {
        let r = poll.registry();
        let _ = r.deregister(&mut self.client.stream);
        let _ = r.deregister(&mut self.backend.stream);
        self.client.stream.shutdown_write();
        self.backend.stream.shutdown_write();
    }
}

enum Read {
    Data(usize),
    /// EOF (None) or a socket error: never read this side again.
    Closed(Option<String>),
    /// WouldBlock: wait for the next READABLE edge.
    Nothing,
}

fn read(side: &mut Side, buf: &mut [u8]) -> Read {
    loop {
        match side.stream.read(buf) {
            Ok(0) => {
                side.eof = true;
                side.readable = false;
                return Read::Closed(None);
            }
            Ok(n) => {
                // A short read drained the socket: the next data raises a new edge, so no
                // extra read() that can only say EAGAIN (one syscall per message saved).
                if n < buf.len() && !side.hup {
                    side.readable = false;
                }
                return Read::Data(n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                side.readable = false;
                return Read::Nothing;
            }
            Err(e) => {
                side.eof = true;
                side.readable = false;
                return Read::Closed(Some(e.to_string()));
            }
        }
    }
}
