"""The native relay's Python side (issue 6; docs/ARCHITECTURE.md, "Native relay").

After a client and its backend connection are logged in, the listener hands both sockets to
the Rust data plane (`_native.DataPlane`), which relays the session from then on in one of
its I/O threads (`performance.io_threads`, read once when the data plane starts): framing,
verdict-cache lookups, forwarding, decoys/errors for blocked statements, and the audit line
of every allowed statement. Python keeps what needs Python:

- **verdicts on a cache miss**: the data plane pauses that session and sends a `verdict`
  event; `_on_verdict` asks this backend's `Engine` (deep check, function policy) and
  answers with the verdict and where it may be cached (the engine's own caching rules);
- **records other than allowed statements** (blocks, events, errors): audited and counted
  here with the same `AuditLog`/`BackendMetrics` calls the Python relays make;
- **lifecycle**: `closed` events release the connection slot and untrack it; the kill
  switch, drain and idle timeouts reach the session through `terminate`;
- **bookkeeping**: a tick folds the native counters into the metrics cells and the
  per-session counters (bytes, allowed statements) into the session manager.

Sessions stay in Python when the native relay cannot take them: client or backend TLS (the
TLS state lives in Python's ssl objects), monitor mode (writes are forwarded on purpose), or
`performance.native_relay: false`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from sandbox_db_proxy import _native

log = logging.getLogger("sandbox_db_proxy.native")

TICK_SECONDS = 0.25
CACHE_ENTRIES = 10_000
# engine.MAX_CACHED_TEXT: texts the engine keeps in its exact-text cache.
MAX_CACHED_TEXT = 16 * 1024


class NativeSession:
    """What Python keeps of one natively relayed session."""

    __slots__ = ("sid", "conn", "ctx", "backend_name", "bm", "allowed_seen", "base_in", "base_out",
                 "closed", "on_closed", "settings")

    def __init__(self, sid: int, conn: Any, ctx: Any, backend_name: str, bm: Any, on_closed):
        self.sid = sid
        self.conn = conn
        self.ctx = ctx
        self.backend_name = backend_name
        self.bm = bm
        self.allowed_seen = 0
        self.base_in = getattr(conn, "bytes_in", 0) or 0
        self.base_out = getattr(conn, "bytes_out", 0) or 0
        self.closed = False
        self.on_closed = on_closed
        self.settings: tuple = ()


class NativeRelay:
    """One per ProxyApp: the data plane, its event pump and per-backend caches/stats."""

    def __init__(self, app: Any):
        self.app = app
        self.dp: Any = None
        self.sessions: dict[int, NativeSession] = {}
        self.caches: dict[str, Any] = {}
        self.stats: dict[str, tuple[Any, Any]] = {}    # backend -> (BackendStats, BackendMetrics)
        self._dropped_seen = 0                          # DataPlane.audit_dropped() folded so far
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tick_handle: asyncio.TimerHandle | None = None
        self._frag: dict = {}

    # -- lifecycle ---------------------------------------------------------------------
    def enabled(self) -> bool:
        cfg = self.app.config
        return bool(cfg.performance.native_relay) and not cfg.monitor_mode

    def _ensure(self) -> Any:
        if self.dp is None:
            loop = asyncio.get_running_loop()
            perf = self.app.config.performance
            self.dp = _native.DataPlane(perf.write_buffer_high_water, perf.effective_io_threads())
            self.dp.set_audit_enabled(bool(self.app.config.security.audit_enabled))
            self._loop = loop
            loop.add_reader(self.dp.notify_fd(), self._pump)
            self.app.audit.native_sources.append(self.dp)
            self.app.audit.refuse_listeners.append(self._set_refuse)
            self.app.metrics.before_render.append(self._fold_stats)
            self._tick_handle = loop.call_later(TICK_SECONDS, self._tick)
        return self.dp

    def stop(self) -> None:
        """Close every native session and stop the I/O threads (after drain)."""
        dp = self.dp
        if dp is None:
            return
        self._pump()
        self._fold_stats()
        try:
            self._loop.remove_reader(dp.notify_fd())
        except Exception:  # noqa: BLE001
            pass
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        dp.shutdown()
        for s in list(self.sessions.values()):
            self._closed(s)
        audit = self.app.audit
        # the last lines go out with the final flush
        data = dp.take_audit()
        if data:
            audit._native_held.append(data)
        if dp in audit.native_sources:
            audit.native_sources.remove(dp)
        if self._set_refuse in audit.refuse_listeners:
            audit.refuse_listeners.remove(self._set_refuse)
        if self._fold_stats in self.app.metrics.before_render:
            self.app.metrics.before_render.remove(self._fold_stats)
        self.dp = None
        self._dropped_seen = 0

    def config_changed(self) -> None:
        """A reload: engines may have changed, so every cached verdict is dropped. A native
        session copied some settings when it was handed over (limits.max_message_bytes, the
        MySQL allowed_databases and statement timeout); if they changed it is ended, so the
        client reconnects under the new configuration (never a looser old one)."""
        for c in self.caches.values():
            c.clear()
        cfg = self.app.config
        for s in list(self.sessions.values()):
            if not cfg.has_backend(s.backend_name):
                continue                    # the listener's removal closes these
            if _relay_settings(cfg, s.backend_name) != s.settings:
                self.terminate(s, "the proxy configuration changed; reconnect")
        if self.dp is not None:
            self.dp.set_audit_enabled(bool(self.app.config.security.audit_enabled))
        self._frag.clear()

    def verdicts_changed(self, backend_name: str) -> None:
        """The backend's engine decides differently from now on (a new pg_proc catalogue):
        drop what the native cache holds for it (Engine.clear_cache does too, for the engine
        the cache is attached to; this covers an engine replaced by a reload meanwhile)."""
        c = self.caches.get(backend_name)
        if c is not None:
            c.clear()

    def _set_refuse(self, on: bool) -> None:
        for c in self.caches.values():
            c.set_refuse(on)

    def cache(self, backend_name: str, dialect: str) -> Any:
        c = self.caches.get(backend_name)
        if c is None:
            c = self.caches[backend_name] = _native.VerdictCache(dialect, CACHE_ENTRIES)
            c.set_refuse(self.app.audit.refuse)
        eng = self.app.engine(backend_name)
        if getattr(eng, "native_cache", None) is not c:
            eng.native_cache = c     # Engine.clear_cache() (new catalogue) clears it too
        return c

    def backend_stats(self, backend_name: str, bm: Any) -> Any:
        """The backend's native accumulators; folded into `bm` (its BackendMetrics)."""
        entry = self.stats.get(backend_name)
        if entry is None:
            entry = self.stats[backend_name] = (_native.BackendStats(), bm)
        return entry[0]

    # -- handing a session over --------------------------------------------------------
    def _adopt(self, conn: Any, kind: str, initial_client: bytes, initial_backend: bytes,
               relay_args: dict) -> NativeSession | None:
        """Take both sockets from `conn`'s asyncio transports and give them to the data plane.
        Returns the NativeSession, or None when the transports cannot be handed over (bytes
        still queued for writing): the caller keeps relaying in Python then."""
        client_transport, backend_transport = conn.transport, conn.backend.transport
        ctx, backend_name, bm = conn.session.ctx, conn.backend_name, conn.bm
        if client_transport.get_write_buffer_size() or backend_transport.get_write_buffer_size():
            return None
        csock = client_transport.get_extra_info("socket")
        bsock = backend_transport.get_extra_info("socket")
        if csock is None or bsock is None:
            return None
        dp = self._ensure()
        cfd = os.dup(csock.fileno())
        try:
            bfd = os.dup(bsock.fileno())
        except OSError:
            os.close(cfd)
            raise
        # The transports are closed without touching the connections (close(2) of our
        # duplicates only; libuv removes them from its epoll set first).
        client_transport.pause_reading()
        backend_transport.pause_reading()
        client_transport.abort()
        backend_transport.abort()
        prefix, database = _audit_prefix(ctx)
        adopt = dp.adopt_pg if kind == "postgres" else dp.adopt_mysql
        try:
            sid = adopt(cfd, bfd, self.cache(backend_name, kind), self.backend_stats(backend_name, bm),
                        prefix, database, initial_client, initial_backend, **relay_args)
        except Exception:
            for fd in (cfd, bfd):
                try:
                    os.close(fd)
                except OSError:
                    pass
            raise
        s = NativeSession(sid, conn, ctx, backend_name, bm, conn._native_closed)
        s.settings = _relay_settings(self.app.config, backend_name)
        self.sessions[sid] = s
        return s

    def hand_over(self, conn: Any, kind: str, initial_client: bytes, initial_backend: bytes,
                  **relay_args: Any) -> bool:
        """`kind`: "postgres" or "mysql" (also the engine dialect). A listener's connection (`conn`: .transport, .backend.transport, .session with .ctx
        and .client_tls, .backend_name, .bm, ._native_closed) hands its logged-in session over.
        False: keep relaying in Python (disabled, TLS on either side, bytes still queued);
        True: the native relay has it -- or handing over failed half-way and the session ends
        (the transports are gone; their connection_lost cleans up)."""
        s = conn.session
        b = conn.backend
        if (not self.enabled() or s is None or s.client_tls or b is None or b.transport is None
                or conn.transport is None or conn.transport.get_extra_info("sslcontext") is not None
                or b.transport.get_extra_info("sslcontext") is not None):
            return False
        try:
            ns = self._adopt(conn, kind, initial_client, initial_backend, relay_args)
        except Exception:  # noqa: BLE001
            log.exception("backend %s: handing the session to the native relay failed", conn.backend_name)
            return True
        if ns is None:
            return False
        conn.native = ns
        b.closing = True
        return True

    def terminate(self, s: NativeSession, message: str, *, admin: bool = True) -> None:
        if self.dp is not None and not s.closed:
            self.dp.terminate(s.sid, admin, message)

    def session_stats(self, s: NativeSession):
        if self.dp is None or s.closed:
            return None
        return self.dp.session_stats(s.sid)

    # -- events from the I/O threads ---------------------------------------------------
    def _pump(self) -> None:
        dp = self.dp
        if dp is None:
            return
        try:
            events = dp.events()
        except Exception:  # noqa: BLE001
            log.exception("native relay: reading events failed")
            return
        for ev in events:
            kind = ev[0]
            s = self.sessions.get(ev[1])
            if s is None:
                continue
            try:
                if kind == "verdict":
                    self._on_verdict(s, ev[2], ev[3], ev[4])
                elif kind == "records":
                    for r in ev[2]:
                        self._on_record(s, r)
                elif kind == "closed":
                    self._closed(s)
            except Exception:  # noqa: BLE001 -- fail closed: end that session, keep the rest
                log.exception("native relay: handling %s for session %s failed; closing it", kind, ev[1])
                self.terminate(s, "internal error in sandbox-db-proxy")

    def _on_verdict(self, s: NativeSession, sql: str, fingerprint: str | None, generation: int) -> None:
        app = self.app
        if app.audit.refuse:
            self.dp.verdict(s.sid, sql, generation, 0, False, "audit-unavailable",
                            "The audit log cannot be written and audit.fail_closed is set, so no statement "
                            "is run until it is writable again. Retry later.", "unknown", (), b"", b"")
            return
        engine = app.engine(s.backend_name)
        t0 = time.perf_counter()
        try:
            v = engine.classify(sql)
        except Exception as exc:  # noqa: BLE001 -- fail closed
            self.dp.verdict(s.sid, sql, generation, 0, False, "engine-error",
                            f"The statement could not be classified ({type(exc).__name__}), so it is "
                            "blocked. Simplify the statement or split it.", "unknown", (), b"", b"")
            return
        s.bm.classification(v.path, time.perf_counter() - t0)
        # Cached natively exactly where the engine itself keeps the verdict (engine.py:
        # exact text; the fingerprint only for what _fingerprint_cacheable admitted).
        mode = 0
        exact = getattr(engine, "_exact_data", None)
        if exact is not None and len(sql) <= MAX_CACHED_TEXT and sql in exact:
            mode = 1
            fp = getattr(engine, "_fp_data", None)
            if fingerprint is not None and fp is not None:
                fv = fp.get(fingerprint)
                if fv is not None and fv.verdict == v.verdict and fv.rule == v.rule and fv.klass == v.klass:
                    mode = 2
        verbs = tuple(_operation(st.verbs) for st in v.statements)
        pre, post = self._fragments(v) if v.allowed else (b"", b"")
        self.dp.verdict(s.sid, sql, generation, mode, bool(v.allowed), v.rule,
                        v.reason or "", v.klass or "unknown", verbs, pre, post)

    def _fragments(self, v: Any) -> tuple[bytes, bytes]:
        key = (v.verdict, v.rule, v.klass, v.statements)
        f = self._frag.get(key)
        if f is None:
            frag = self.app.audit._fragments(v, None)
            f = (frag[1], frag[2]) if frag is not None else (b'"verdict":"ALLOWED",', b"")
            if len(self._frag) > 4096:
                self._frag.clear()
            self._frag[key] = f
        return f

    def _on_record(self, s: NativeSession, r: tuple) -> None:
        kind = r[0]
        audit = self.app.audit
        bm = s.bm
        if kind == "done":
            _, sql, _allowed, rule, klass, verbs, message, rows, seconds, error = r
            op = None
            for verb in verbs[:1]:
                op = verb or None
            extra = {"db.response.status_code": error} if error is not None else {}
            audit.statement(s.ctx, sql=sql or None, verdict="ALLOWED", rule=rule, klass=klass,
                            message=message, operation=op, rows=rows, duration_ms=seconds * 1000.0,
                            **extra)
            bm.statement("allowed", klass)
            bm.query_seconds.observe(seconds)
        elif kind == "blocked":
            _, sql, rule, reason, klass, message, extra = r
            audit.statement(s.ctx, sql=sql, verdict="BLOCKED", rule=rule, reason=reason, klass=klass,
                            message=message, monitor=False, **extra)
            bm.statement("blocked", klass or "unknown")
            bm.block(rule)
        elif kind == "event":
            _, name, fields = r
            audit.event(s.ctx, name, **fields)
            if name == "alert" and fields.get("rule") == "mysql_local_infile":
                bm.block("mysql_local_infile")
        elif kind == "metric":
            name = r[1]
            if name == "backend_error":
                bm.backend_error()
            elif name.startswith("limit:"):
                bm.limit(name[6:])
        elif kind == "database":
            s.ctx.update(database=r[1])
            conn = s.conn
            if hasattr(conn, "native_database"):
                conn.native_database(r[1])

    def _closed(self, s: NativeSession) -> None:
        if s.closed:
            return
        self._sync_session(s)
        s.closed = True
        self.sessions.pop(s.sid, None)
        try:
            s.on_closed()
        except Exception:  # noqa: BLE001
            log.exception("native relay: cleanup after close failed")

    # -- periodic bookkeeping ------------------------------------------------------------
    def _tick(self) -> None:
        self._tick_handle = None
        try:
            self._pump()
            self._fold_stats()
            for s in list(self.sessions.values()):
                self._sync_session(s)
        except Exception:  # noqa: BLE001
            log.exception("native relay: bookkeeping failed")
        if self.dp is not None and self._loop is not None:
            self._tick_handle = self._loop.call_later(TICK_SECONDS, self._tick)

    def sync(self) -> None:
        """Pending events handled and per-session counters folded in, as of now (the
        session API calls this before it reports counts)."""
        if self.dp is None:
            return
        self._pump()
        for s in list(self.sessions.values()):
            self._sync_session(s)

    def _fold_stats(self) -> None:
        for st, bm in self.stats.values():
            delta = st.take()
            if delta[0] or delta[3]:
                bm.merge_native(delta)
        if self.dp is not None:
            dropped = self.dp.audit_dropped()
            if dropped > self._dropped_seen:
                self.app.audit.count_dropped(dropped - self._dropped_seen)
                self._dropped_seen = dropped

    def _sync_session(self, s: NativeSession) -> None:
        st = self.session_stats(s)
        if st is None:
            return
        bytes_in, bytes_out, activity, allowed, idle = st
        conn = s.conn
        conn.bytes_in = s.base_in + bytes_in
        conn.bytes_out = s.base_out + bytes_out
        conn.native_activity = activity
        conn.native_idle = idle
        n = allowed - s.allowed_seen
        if n > 0:
            s.allowed_seen = allowed
            sid = s.ctx.session_id
            mgr = self.app.sessions
            if sid is not None and mgr is not None:
                mgr.observe_allowed(sid, n)


def _relay_settings(cfg: Any, backend_name: str) -> tuple:
    """The configuration a native relay copied at hand-over (see config_changed)."""
    b = cfg.backend(backend_name)
    return (cfg.limits.max_message_bytes, tuple(b.allowed_databases or ()), cfg.statement_timeout_ms(b))


def _operation(verbs: tuple[str, ...]) -> str:
    """OTel db.operation.name of one statement, as audit._verdict_fields picks it: the first
    verb, skipping a leading WITH when something follows."""
    op = ""
    for verb in verbs:
        op = verb
        if verb != "WITH":
            break
    return op


def _audit_prefix(ctx: Any) -> tuple[bytes, str | None]:
    """The connection's audit fields as JSON members (without db.namespace, which the data
    plane writes itself because USE / COM_INIT_DB change it), and the current database."""
    database = ctx.database
    if database is None:
        return ctx.base_json(), None
    ctx.update(database=None)
    try:
        prefix = ctx.base_json()
    finally:
        ctx.update(database=database)
    return prefix, database
