//! One I/O thread (a lane): the mio loop over the sessions adopted onto it (session.rs), the
//! commands from other threads, closing, and handing events and audit lines over once per
//! round.
//!
//! Readiness is edge-triggered (epoll EPOLLET): both sockets of a session are registered once
//! for READABLE | WRITABLE and never re-registered. A READABLE edge sets `Side::readable`,
//! which stays set until a read returns WouldBlock, so reading may stop at any time (fairness
//! budget, flow control, a pending verdict) and resume later without a new edge. WRITABLE
//! edges only come after a write hit a full socket buffer, so they cost nothing while writes
//! go through at once.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

use super::audit::Clock;
use super::session::{Call, Ctx, Session, READ_BUDGET};
use super::{lane_of, lock, Cmd, DpEvent, Lane, NewSession, SessionId, Shared};
use crate::relay::{CacheMode, Out, Verdict};

pub(crate) const WAKER: Token = Token(usize::MAX);
/// Scratch read buffer (one per thread, reused).
const READ_CHUNK: usize = 64 * 1024;

fn token(id: SessionId, backend: bool) -> Token {
    Token(((id as usize) << 1) | usize::from(backend))
}

/// Hasher of the lane's session table. Session ids are the data plane's own sequence
/// numbers (never chosen by a peer), so the DoS-resistant default SipHash is not needed on a
/// lookup made for every readiness event. A multiply mixes an id into the high bits (which
/// hashbrown uses for its control bytes); folding them down mixes the low bits (the slot),
/// which would otherwise all carry the lane index of the id's low 6 bits.
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 32)
    }
    fn write(&mut self, bytes: &[u8]) {
        // not used for u64 keys; kept correct for any other key
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, id: u64) {
        self.0 = (id ^ self.0).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type SessionTable = HashMap<SessionId, Session, std::hash::BuildHasherDefault<IdHasher>>;

struct Worker {
    lane: Arc<Lane>,
    poll: Poll,
    sessions: SessionTable,
    ctx: Ctx,
    scratch: Vec<u8>,
}

/// Body of a lane's I/O thread. Whatever ends it (shutdown, a poll failure, a bug), every
/// socket of its sessions is closed; unless Python asked for the shutdown it is told `Closed`
/// for each of them (the other lanes keep running).
pub(crate) fn thread_main(shared: Arc<Shared>, lane: Arc<Lane>, poll: Poll) {
    let sh = Arc::clone(&shared);
    let ln = Arc::clone(&lane);
    let result = catch_unwind(AssertUnwindSafe(move || {
        let mut w = Worker {
            lane: ln,
            poll,
            sessions: SessionTable::default(),
            ctx: Ctx {
                high_water: sh.high_water,
                shared: sh,
                out: Out::default(),
                events: Vec::new(),
                audit: Vec::new(),
                clock: Clock::new(),
                again: Vec::new(),
                done: Vec::new(),
                closing: Vec::new(),
            },
            scratch: vec![0; READ_CHUNK],
        };
        w.run();
        w.close_all();
    }));
    let _ = result;
    let ended_by_shutdown = {
        let _q = lock(&lane.cmds);
        lane.stopped.swap(true, Ordering::AcqRel)
    };
    if !ended_by_shutdown {
        let ids: Vec<SessionId> = {
            let mut live = lock(&shared.sessions);
            let mine: Vec<SessionId> = live.keys().copied().filter(|id| lane_of(*id) == lane.index).collect();
            for id in &mine {
                live.remove(id);
            }
            mine
        };
        if !ids.is_empty() {
            lock(&shared.events).extend(ids.into_iter().map(|session| DpEvent::Closed { session }));
            let _ = catch_unwind(AssertUnwindSafe(|| (shared.notify)()));
        }
    }
}

impl Worker {
    fn run(&mut self) {
        let mut events = Events::with_capacity(1024);
        let mut ready: Vec<SessionId> = Vec::new();
        loop {
            let timeout = self.timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return;
            }
            ready.clear();
            for id in self.ctx.again.drain(..) {
                if let Some(s) = self.sessions.get_mut(&id) {
                    if !s.queued_for_drive {
                        s.queued_for_drive = true;
                        ready.push(id);
                    }
                }
            }
            let mut commands = false;
            for ev in events.iter() {
                if ev.token() == WAKER {
                    commands = true;
                    continue;
                }
                let id = (ev.token().0 >> 1) as SessionId;
                let Some(s) = self.sessions.get_mut(&id) else { continue };
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    // The peer's FIN (or an error) may have come with the last data: then
                    // read until EOF, since no further edge will announce it.
                    let hup = ev.is_read_closed() || ev.is_error();
                    let side = if ev.token().0 & 1 == 1 { &mut s.backend } else { &mut s.client };
                    side.readable = true;
                    side.hup |= hup;
                }
                if !s.queued_for_drive {
                    s.queued_for_drive = true;
                    ready.push(id);
                }
            }
            for &id in &ready {
                if let Some(s) = self.sessions.get_mut(&id) {
                    s.queued_for_drive = false;
                    s.drive(&mut self.ctx, &mut self.scratch);
                }
            }
            if commands && !self.commands() {
                return;
            }
            self.expire();
            self.reap();
            self.publish();
        }
    }

    /// No timeout unless a session has to be driven again at once, or a closing session may
    /// reach its deadline.
    fn timeout(&self) -> Option<Duration> {
        if !self.ctx.again.is_empty() {
            return Some(Duration::ZERO);
        }
        if self.ctx.closing.is_empty() {
            return None; // the common case: no clock read per round
        }
        let now = Instant::now();
        self.ctx
            .closing
            .iter()
            .filter_map(|id| self.sessions.get(id)?.closing)
            .map(|d| d.saturating_duration_since(now) + Duration::from_millis(1))
            .min()
    }

    /// Closing sessions past their deadline (a peer that does not read).
    fn expire(&mut self) {
        if self.ctx.closing.is_empty() {
            return; // the common case: no clock read per round
        }
        let now = Instant::now();
        let sessions = &self.sessions;
        let done = &mut self.ctx.done;
        self.ctx.closing.retain(|id| match sessions.get(id).and_then(|s| s.closing) {
            Some(d) if now >= d => {
                done.push(*id);
                false
            }
            Some(_) => true,
            None => false,
        });
    }

    fn reap(&mut self) {
        while let Some(id) = self.ctx.done.pop() {
            if let Some(s) = self.sessions.remove(&id) {
                s.close(&self.poll);
                if let Some(c) = lock(&self.ctx.shared.sessions).remove(&id) {
                    lock(&self.ctx.shared.closed).insert(id, (c, false));
                }
                self.lane.live.fetch_sub(1, Ordering::Relaxed);
                self.ctx.events.push(DpEvent::Closed { session: id });
            }
        }
    }

    /// Hands this round's events and audit lines over (one lock each per round).
    fn publish(&mut self) {
        publish(&mut self.ctx);
    }

    /// Runs the queued commands; false on Shutdown.
    fn commands(&mut self) -> bool {
        let cmds = std::mem::take(&mut *lock(&self.lane.cmds));
        for cmd in cmds {
            match cmd {
                Cmd::Shutdown => return false,
                Cmd::Adopt(n) => self.adopt(*n),
                Cmd::Verdict { id, sql, verdict, mode, generation } => {
                    self.verdict(id, sql, verdict, mode, generation)
                }
                Cmd::Terminate { id, why, message } => {
                    if let Some(s) = self.sessions.get_mut(&id) {
                        s.step(&mut self.ctx, Call::Terminate(why, &message));
                        // An operator's kill ends the session whatever the relay did.
                        s.begin_closing(&mut self.ctx);
                        s.drive(&mut self.ctx, &mut self.scratch);
                    }
                }
            }
        }
        true
    }

    fn adopt(&mut self, mut n: NewSession) {
        let id = n.id;
        let r = self.poll.registry();
        let both = Interest::READABLE | Interest::WRITABLE;
        if r.register(&mut n.client, token(id, false), both).is_err()
            || r.register(&mut n.backend, token(id, true), both).is_err()
        {
            let _ = r.deregister(&mut n.client);
            lock(&self.ctx.shared.sessions).remove(&id);
            self.lane.live.fetch_sub(1, Ordering::Relaxed);
            self.ctx.events.push(DpEvent::Closed { session: id });
            return;
        }
        let initial_backend = std::mem::take(&mut n.initial_backend);
        let initial_client = std::mem::take(&mut n.initial_client);
        let mut s = Session::new(n);
        // What the backend sent before what the client sends next: backend bytes first.
        if !initial_backend.is_empty() {
            s.step(&mut self.ctx, Call::Backend(&initial_backend));
        }
        if !initial_client.is_empty() {
            s.step(&mut self.ctx, Call::Client(&initial_client));
        }
        // Registration reports data that is already there, but reading at once is harmless.
        s.drive(&mut self.ctx, &mut self.scratch);
        self.sessions.insert(id, s);
    }

    fn verdict(&mut self, id: SessionId, sql: String, v: Arc<Verdict>, mode: CacheMode, generation: u64) {
        let Some(s) = self.sessions.get_mut(&id) else { return };
        let fingerprint = match s.judge.asked.iter().position(|(t, _)| *t == sql) {
            Some(i) => s.judge.asked.remove(i).1,
            None if mode == CacheMode::Fingerprint => {
                crate::sql::fast_check(&sql, s.judge.cache.dialect()).fingerprint
            }
            None => None,
        };
        s.judge.cache.insert(&sql, fingerprint.as_deref(), Arc::clone(&v), mode, generation);
        s.judge.decided = Some((sql, v));
        s.step(&mut self.ctx, Call::Client(&[]));
        s.drive(&mut self.ctx, &mut self.scratch);
    }

    /// Shutdown: every socket closed, no relay call, no event.
    fn close_all(&mut self) {
        for (_, s) in self.sessions.drain() {
            s.close(&self.poll);
        }
    }
}

/// Hands the events and audit lines collected so far over to the other threads. Also called
/// by a session before it writes a response to its client, so that a client holding its
/// answer finds the statement's audit line and records already handed over.
pub(super) fn publish(ctx: &mut Ctx) {
    if !ctx.audit.is_empty() {
        lock(&ctx.shared.audit).append(&ctx.audit);
        ctx.audit.clear();
        if ctx.audit.capacity() > 4 * READ_BUDGET {
            ctx.audit.shrink_to(READ_BUDGET);
        }
    }
    if !ctx.events.is_empty() {
        let was_empty = {
            let mut q = lock(&ctx.shared.events);
            let was_empty = q.is_empty();
            q.append(&mut ctx.events);
            was_empty
        };
        if was_empty && !ctx.shared.stopped.load(Ordering::Acquire) {
            let notify = &ctx.shared.notify;
            let _ = catch_unwind(AssertUnwindSafe(notify));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::hash::{BuildHasher, BuildHasherDefault};

    use super::super::LANE_BITS;
    use super::IdHasher;

    /// One lane's ids share their low bits (the lane index): the hash must still spread them
    /// over the low bits (table slots) and the top 7 (control bytes).
    #[test]
    fn id_hash_spreads_one_lanes_ids() {
        let h = BuildHasherDefault::<IdHasher>::default();
        for lane in [0u64, 1, 5] {
            let hashes: Vec<u64> = (1..=256u64).map(|seq| h.hash_one((seq << LANE_BITS) | lane)).collect();
            let low: std::collections::HashSet<u64> = hashes.iter().map(|x| x & 0xff).collect();
            let top: std::collections::HashSet<u64> = hashes.iter().map(|x| x >> 57).collect();
            assert!(low.len() > 128, "lane {lane}: {} distinct low bytes", low.len());
            assert!(top.len() > 64, "lane {lane}: {} distinct control values", top.len());
        }
    }
}
