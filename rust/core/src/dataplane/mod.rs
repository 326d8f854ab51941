//! The data plane (issue 6): native I/O threads ("lanes": mio, epoll, edge-triggered) that own
//! the sockets of logged-in sessions and drive one [`Relay`] per session, so the steady state
//! of a session costs no Python. A session lives on one lane for its whole life (its id says
//! which); a new session goes to the lane with the fewest live sessions. Several lanes let the
//! relay use several cores, as HAProxy's threads do (`performance.io_threads`). Python keeps
//! what is rare or slow: login, the engine's deep check (`DpEvent::NeedVerdict` ->
//! [`DataPlane::verdict`]), audit records other than the hot one (`DpEvent::Records`), and
//! writing the audit file (`write_audit`).
//!
//! Threads: every method of [`DataPlane`] may be called from any thread; commands reach a
//! lane's I/O thread through its queue and `mio::Waker`, results come back through the event
//! queue (`notify` says it became non-empty), the audit buffer, and per-session / per-backend
//! counters. Nothing here may panic on network input: a panic on an I/O thread would end
//! every session of its lane. A panic inside a relay ends that relay's session only
//! (session.rs).

use std::collections::{HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::relay::{CacheMode, Record, Relay, Termination, Verdict, VerdictCache};

pub mod audit;
mod io;
mod session;
pub mod stats;
mod worker;

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod timing;

pub use stats::{BackendStats, StatsDelta};

pub type SessionId = u64;

/// A logged-in session handed over by Python.
pub struct Adopt {
    /// TCP or Unix stream socket, already non-blocking; now ours to close.
    pub client_fd: OwnedFd,
    /// Same, to the backend.
    pub backend_fd: OwnedFd,
    pub relay: Box<dyn Relay>,
    /// Verdicts of this backend's engine.
    pub cache: Arc<VerdictCache>,
    /// Per-backend metric accumulators.
    pub stats: Arc<BackendStats>,
    /// Audit fields of the connection: JSON object members, each followed by ','
    /// (`ConnContext.base_json` without `db.namespace`).
    pub audit_prefix: Vec<u8>,
    /// Current `db.namespace` (written after the prefix when Some).
    pub database: Option<String>,
    /// Client bytes Python had read but not relayed: fed first.
    pub initial_client: Vec<u8>,
    /// Same for the backend.
    pub initial_backend: Vec<u8>,
}

#[derive(Debug)]
pub enum DpEvent {
    /// The relay waits for the engine's verdict on `sql`: answer with [`DataPlane::verdict`].
    NeedVerdict { session: SessionId, sql: String, fingerprint: Option<String>, generation: u64 },
    /// Records of one relay call that Python audits / counts (in order).
    Records { session: SessionId, records: Vec<Record> },
    /// Both sockets are closed; the session is gone.
    Closed { session: SessionId },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SessionStats {
    /// Client bytes read.
    pub bytes_in: u64,
    /// Client bytes written.
    pub bytes_out: u64,
    /// Client reads that returned data.
    pub activity: u64,
    /// Allowed statements completed on the hot path (not those handed to Python).
    pub allowed: u64,
    /// No statement in flight (`Relay::is_idle`).
    pub idle: bool,
}

/// Counters of one session, written by the I/O thread, read by `session_stats`.
///
/// One writer: the lane that owns the session (a session never changes lane; the values
/// set before adoption reach the lane through its command queue's lock). So the lane adds
/// with a plain load and store ([`Counters::add`]) rather than a locked read-modify-write
/// per message; readers see each value whole (Relaxed atomics), never torn.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) activity: AtomicU64,
    pub(crate) allowed: AtomicU64,
    pub(crate) idle: AtomicBool,
    /// Largest write queue seen (either side): flow control is tested with it.
    pub(crate) peak_queued: AtomicUsize,
}

impl Counters {
    /// `counter += n` by the owning lane (the only writer, see above).
    #[inline]
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        if n != 0 {
            counter.store(counter.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
        }
    }

    /// `peak_queued = max(peak_queued, queued)` by the owning lane.
    #[inline]
    pub(crate) fn peak(&self, queued: usize) {
        if queued > self.peak_queued.load(Ordering::Relaxed) {
            self.peak_queued.store(queued, Ordering::Relaxed);
        }
    }
}

/// A session on its way to the I/O thread.
pub(crate) struct NewSession {
    pub(crate) id: SessionId,
    pub(crate) client: io::Stream,
    pub(crate) backend: io::Stream,
    pub(crate) relay: Box<dyn Relay>,
    pub(crate) cache: Arc<VerdictCache>,
    pub(crate) stats: Arc<BackendStats>,
    pub(crate) audit_prefix: Vec<u8>,
    pub(crate) database: Option<String>,
    pub(crate) initial_client: Vec<u8>,
    pub(crate) initial_backend: Vec<u8>,
    pub(crate) counters: Arc<Counters>,
}

pub(crate) enum Cmd {
    Adopt(Box<NewSession>),
    Verdict { id: SessionId, sql: String, verdict: Arc<Verdict>, mode: CacheMode, generation: u64 },
    Terminate { id: SessionId, why: Termination, message: String },
    Shutdown,
}

/// Most lanes (I/O threads) a data plane runs; the lane index is kept in a session id's low
/// bits.
pub const MAX_LANES: usize = 64;
const LANE_BITS: u32 = 6;

/// The lane that owns session `id`.
pub(crate) fn lane_of(id: SessionId) -> usize {
    (id & ((1 << LANE_BITS) - 1)) as usize
}

/// One I/O thread's command queue.
pub(crate) struct Lane {
    pub(crate) index: usize,
    pub(crate) cmds: Mutex<VecDeque<Cmd>>,
    pub(crate) waker: mio::Waker,
    /// Set (under the `cmds` lock) once shutdown began or the thread ended: no new sessions
    /// or commands for this lane.
    pub(crate) stopped: AtomicBool,
    /// Sessions adopted onto this lane and not yet closed (lane choice).
    pub(crate) live: AtomicUsize,
}

/// State shared by the handle and every I/O thread.
pub(crate) struct Shared {
    pub(crate) events: Mutex<Vec<DpEvent>>,
    pub(crate) notify: Box<dyn Fn() + Send + Sync>,
    pub(crate) audit: Mutex<audit::AuditBuf>,
    /// The writer's buffer (`write_audit`): swapped with `audit.buf`, so both keep their
    /// memory and the steady state touches no fresh pages (page faults cost ~1 us/query).
    pub(crate) audit_spare: Mutex<Vec<u8>>,
    pub(crate) audit_enabled: AtomicBool,
    pub(crate) sessions: Mutex<HashMap<SessionId, Arc<Counters>>>,
    /// Final counters of closed sessions, kept until the `take_events` call after the one
    /// that handed out their `Closed` (the Python side reads them when it sees `Closed`).
    pub(crate) closed: Mutex<HashMap<SessionId, (Arc<Counters>, bool)>>,
    /// Set once `shutdown` began: no events are handed out after it.
    pub(crate) stopped: AtomicBool,
    pub(crate) high_water: usize,
}

/// A poisoned lock only means a panic elsewhere while it was held; the data (queues,
/// counters) is still usable, and refusing it would stop every session.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Lane {
    /// Queues a command for the lane's thread; false when the lane is stopped. The waker is
    /// used only when the queue was empty: the thread drains the whole queue per wake.
    fn push(&self, cmd: Cmd) -> bool {
        let was_empty = {
            let mut q = lock(&self.cmds);
            if self.stopped.load(Ordering::Acquire) {
                return false;
            }
            let was_empty = q.is_empty();
            q.push_back(cmd);
            was_empty
        };
        if was_empty {
            // A failed wake (eventfd full) still leaves a wake pending: nothing to do.
            let _ = self.waker.wake();
        }
        true
    }
}

/// Handle of the I/O threads.
pub struct DataPlane {
    shared: Arc<Shared>,
    lanes: Vec<Arc<Lane>>,
    next_seq: AtomicU64,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl DataPlane {
    /// Start `lanes` I/O threads (1..=[`MAX_LANES`]). `notify` is called from an I/O thread
    /// when the event queue goes from empty to non-empty. `high_water`: bytes queued to one
    /// side beyond which the other side is not read (flow control).
    pub fn start(notify: Box<dyn Fn() + Send + Sync>, high_water: usize, lanes: usize) -> std::io::Result<DataPlane> {
        let n = lanes.clamp(1, MAX_LANES);
        let shared = Arc::new(Shared {
            events: Mutex::new(Vec::new()),
            notify,
            audit: Mutex::new(audit::AuditBuf::new(audit::AUDIT_CAP)),
            audit_spare: Mutex::new(Vec::new()),
            audit_enabled: AtomicBool::new(true),
            sessions: Mutex::new(HashMap::new()),
            closed: Mutex::new(HashMap::new()),
            stopped: AtomicBool::new(false),
            high_water,
        });
        let mut dp =
            DataPlane { shared, lanes: Vec::with_capacity(n), next_seq: AtomicU64::new(1), threads: Mutex::new(Vec::new()) };
        for index in 0..n {
            let poll = mio::Poll::new()?;
            let waker = mio::Waker::new(poll.registry(), worker::WAKER)?;
            let lane = Arc::new(Lane {
                index,
                cmds: Mutex::new(VecDeque::new()),
                waker,
                stopped: AtomicBool::new(false),
                live: AtomicUsize::new(0),
            });
            let (sh, ln) = (Arc::clone(&dp.shared), Arc::clone(&lane));
            // On an error the lanes started so far are stopped by `dp`'s drop.
            let thread = std::thread::Builder::new()
                .name(format!("sdp-dataplane-{index}"))
                .spawn(move || worker::thread_main(sh, ln, poll))?;
            dp.lanes.push(lane);
            lock(&dp.threads).push(thread);
        }
        Ok(dp)
    }

    /// Number of I/O threads.
    pub fn lanes(&self) -> usize {
        self.lanes.len()
    }

    /// The running lane with the fewest live sessions (the first such on a tie).
    fn pick_lane(&self) -> Option<&Arc<Lane>> {
        self.lanes
            .iter()
            .filter(|l| !l.stopped.load(Ordering::Acquire))
            .min_by_key(|l| l.live.load(Ordering::Relaxed))
    }

    fn push(&self, id: SessionId, cmd: Cmd) -> bool {
        self.lanes.get(lane_of(id)).is_some_and(|l| l.push(cmd))
    }

    /// Hand a session to the I/O thread. On error both sockets are closed.
    pub fn adopt(&self, a: Adopt) -> std::io::Result<SessionId> {
        let Adopt {
            client_fd,
            backend_fd,
            relay,
            cache,
            stats,
            audit_prefix,
            database,
            initial_client,
            initial_backend,
        } = a;
        let client = io::Stream::from_fd(client_fd)?;
        let backend = io::Stream::from_fd(backend_fd)?;
        let Some(lane) = self.pick_lane() else {
            return Err(std::io::Error::other("data plane stopped"));
        };
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let id = (seq << LANE_BITS) | lane.index as u64;
        let counters = Arc::new(Counters::default());
        counters.idle.store(relay.is_idle(), Ordering::Relaxed);
        lock(&self.shared.sessions).insert(id, Arc::clone(&counters));
        let s = NewSession {
            id,
            client,
            backend,
            relay,
            cache,
            stats,
            audit_prefix,
            database,
            initial_client,
            initial_backend,
            counters,
        };
        lane.live.fetch_add(1, Ordering::Relaxed);
        if !lane.push(Cmd::Adopt(Box::new(s))) {
            lane.live.fetch_sub(1, Ordering::Relaxed);
            lock(&self.shared.sessions).remove(&id);
            return Err(std::io::Error::other("data plane stopped"));
        }
        Ok(id)
    }

    /// The Python engine's answer to `NeedVerdict`: stored in the session's cache per `mode`
    /// (when `generation` is still current), put in the session's one-shot "decided" slot,
    /// then the relay continues. Unknown or ended sessions: ignored.
    pub fn verdict(
        &self,
        session: SessionId,
        sql: String,
        verdict: Arc<Verdict>,
        mode: CacheMode,
        generation: u64,
    ) {
        self.push(session, Cmd::Verdict { id: session, sql, verdict, mode, generation });
    }

    /// End a session with an error the client understands (`Relay::terminate`), then close.
    pub fn terminate(&self, session: SessionId, why: Termination, message: String) {
        self.push(session, Cmd::Terminate { id: session, why, message });
    }

    /// Audit lines of allowed statements on/off (stats and counters are kept either way).
    pub fn set_audit_enabled(&self, on: bool) {
        self.shared.audit_enabled.store(on, Ordering::Relaxed);
    }

    pub fn take_events(&self) -> Vec<DpEvent> {
        let evs = std::mem::take(&mut *lock(&self.shared.events));
        let mut closed = lock(&self.shared.closed);
        closed.retain(|_, (_, handed)| !*handed);
        for e in &evs {
            if let DpEvent::Closed { session } = e {
                if let Some(entry) = closed.get_mut(session) {
                    entry.1 = true;
                }
            }
        }
        evs
    }

    /// Finished JSON lines of allowed statements, oldest first; empties the buffer.
    pub fn take_audit(&self) -> Vec<u8> {
        let mut spare = lock(&self.shared.audit_spare);
        let mut out = std::mem::take(&mut *spare);
        out.extend_from_slice(&lock(&self.shared.audit).buf);
        lock(&self.shared.audit).buf.clear();
        out
    }

    /// Writes the finished audit lines to `out` (the audit file), without copying them out:
    /// the writer's buffer and the I/O thread's are swapped, the writer's is written and
    /// cleared (keeping its memory). Returns the number of lines written. On an error the
    /// unwritten lines are kept for the next call (bounded by the cap; beyond it they are
    /// dropped and counted in `audit_dropped`).
    pub fn write_audit(&self, out: &mut dyn std::io::Write) -> std::io::Result<usize> {
        let mut spare = lock(&self.shared.audit_spare);
        {
            let mut a = lock(&self.shared.audit);
            if spare.is_empty() {
                std::mem::swap(&mut *spare, &mut a.buf);
            } else {
                let room = audit::AUDIT_CAP.saturating_sub(spare.len());
                if a.buf.len() > room {
                    let lost = audit::count_lines(&a.buf) as u64;
                    a.dropped += lost;
                } else {
                    spare.extend_from_slice(&a.buf);
                }
                a.buf.clear();
            }
        }
        if spare.is_empty() {
            return Ok(0);
        }
        let mut done = 0;
        while done < spare.len() {
            match out.write(spare.get(done..).unwrap_or_default()) {
                Ok(0) => {
                    spare.drain(..done);
                    return Err(std::io::Error::new(std::io::ErrorKind::WriteZero, "audit file accepted no bytes"));
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Keep whole unwritten lines only: a line cut by the error is lost
                    // (its start is in the file already).
                    let rest = spare.get(done..).unwrap_or_default();
                    let cut = if done == 0 { 0 } else { rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |i| i + 1) };
                    spare.drain(..done + cut);
                    return Err(e);
                }
            }
        }
        let lines = audit::count_lines(&spare);
        spare.clear();
        if spare.capacity() > 4 * audit::AUDIT_CAP / 16 {
            spare.shrink_to(audit::AUDIT_CAP / 16);
        }
        Ok(lines)
    }

    /// Lines dropped because the buffer was over its cap (64 MiB).
    pub fn audit_dropped(&self) -> u64 {
        lock(&self.shared.audit).dropped
    }

    /// Counters of a live session, or of one whose `Closed` was handed out by the latest
    /// `take_events` (its final counts).
    pub fn session_stats(&self, session: SessionId) -> Option<SessionStats> {
        let live = lock(&self.shared.sessions).get(&session).cloned();
        let c = match live {
            Some(c) => c,
            None => lock(&self.shared.closed).get(&session).map(|(c, _)| Arc::clone(c))?,
        };
        Some(SessionStats {
            bytes_in: c.bytes_in.load(Ordering::Relaxed),
            bytes_out: c.bytes_out.load(Ordering::Relaxed),
            activity: c.activity.load(Ordering::Relaxed),
            allowed: c.allowed.load(Ordering::Relaxed),
            idle: c.idle.load(Ordering::Relaxed),
        })
    }

    /// Sessions adopted and not yet closed.
    pub fn session_count(&self) -> usize {
        lock(&self.shared.sessions).len()
    }

    /// Stop the threads and close every socket; no events after. Idempotent.
    pub fn shutdown(&self) {
        self.shared.stopped.store(true, Ordering::Release);
        for lane in &self.lanes {
            {
                let mut q = lock(&lane.cmds);
                if !lane.stopped.swap(true, Ordering::AcqRel) {
                    q.push_back(Cmd::Shutdown);
                }
            }
            let _ = lane.waker.wake();
        }
        let handles = std::mem::take(&mut *lock(&self.threads));
        for h in handles {
            if h.thread().id() == std::thread::current().id() {
                // Called from `notify` on an I/O thread itself: it sees Shutdown and ends.
                drop(h);
            } else {
                let _ = h.join();
            }
        }
        // Commands never seen (an Adopt's sockets are closed by the drop), and no events.
        for lane in &self.lanes {
            lock(&lane.cmds).clear();
        }
        lock(&self.shared.events).clear();
        lock(&self.shared.sessions).clear();
        lock(&self.shared.closed).clear();
    }

    /// The most bytes ever queued towards one side of the session (flow control keeps it
    /// near `high_water`): what a slow reader made the proxy buffer.
    pub fn peak_queued(&self, session: SessionId) -> Option<usize> {
        let c = lock(&self.shared.sessions).get(&session).cloned()?;
        Some(c.peak_queued.load(Ordering::Relaxed))
    }
}

impl Drop for DataPlane {
    fn drop(&mut self) {
        self.shutdown();
    }
}
