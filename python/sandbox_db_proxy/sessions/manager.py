"""`SessionManager`: agent sessions' lifecycle (issue 5) on the proxy's event loop.

A session is an agent's lease on one or more backends: generated credentials (the password
is shown once, stored only as verifiers -- see store.py), an expiry (`ttl_seconds`, default
`sessions.timeout_seconds` = the guide's SESSION_TIMEOUT), an optional per-connection idle
timeout, connection cap and IP restriction.

How the relays see sessions (docs/ARCHITECTURE.md "Runtime"):
- `lookup_login(backend, username)` is registered in `ProxyApp.login_providers`: it returns a
  `Login` (source "session", `session_id`, verifiers instead of a password) only while the
  session is active and not past its expiry, and only for its backends. Revoked, expired and
  unknown sessions return None, so a relay that forgets every other check still refuses them
  (default deny).
- `admit(login, client_address, conn)` runs after the client proved the password and before
  the backend is contacted: `allowed_ips` and `max_connections`; returns a refusal reason.
- `observe_statement(record)` counts statements (allowed/blocked) from the audit records the
  relays already produce; bytes and idleness come from the relays' per-connection counters
  (`bytes_in`, `bytes_out`), sampled by the housekeeping loop.

Lifecycle: the loop (`start()`) expires sessions at `expires_at`: with
`sessions.auto_destroy` (AUTO_DESTROY_SESSIONS) their live connections are closed, otherwise
they only stop accepting new logins. `revoke()` (DELETE) always closes every live connection
at once. Creation, revocation and expiry are audited (`session_created`, `session_revoked`,
`session_expired`).

Caps at creation: `sessions.max_sessions_per_user` active sessions per agent name -> 409
Conflict; `sessions.max_concurrent_agents` active sessions fleet-wide -> 429 Too Many Requests
(every active session is one concurrently running agent lease; counting sessions rather
than distinct names is the stricter reading).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import secrets
import string
import time
import uuid
from typing import Any, Iterable
from urllib.parse import quote

from sandbox_db_proxy.server.net import IpAllowlist, parse_network
from sandbox_db_proxy.sessions.store import (ACTIVE, EXPIRED, REVOKED, SessionRecord, SessionStore, StoreError,
                                             credentials_for)

log = logging.getLogger("sandbox_db_proxy.sessions")

__all__ = ["SessionManager", "SessionError", "OPERATOR_REASON", "rfc3339", "attach", "detach"]

# What the client of a killed connection reads (issue 5: "the client gets a protocol-level
# error that says the session was terminated by the operator").
OPERATOR_REASON = "session terminated by the operator"
SESSION_BACKEND_TYPES = ("postgres", "mysql")     # types whose relays log in session credentials
MAX_TTL_SECONDS = 7 * 24 * 3600                    # unless sessions.timeout_seconds is longer
TICK_SECONDS = 0.5
FLUSH_SECONDS = 5.0
RETAIN_ENDED_SECONDS = 24 * 3600                   # GET shows ended sessions this long
_PW_ALPHABET = string.ascii_letters + string.digits  # URL-safe in connection strings, no quoting
PASSWORD_LENGTH = 32                               # 32 * log2(62) ~ 190 bits


class SessionError(Exception):
    """A refusal the API turns into an RFC 9457 problem document."""

    def __init__(self, status: int, kind: str, title: str, detail: str, **extra: Any):
        super().__init__(detail)
        self.status, self.kind, self.title, self.detail, self.extra = status, kind, title, detail, extra


def rfc3339(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat(
        timespec="seconds").replace("+00:00", "Z")


class _Session:
    """In-memory state of one session: its record, its prebuilt Login, its IP allowlist."""

    __slots__ = ("rec", "login", "allow", "last_activity", "dirty")

    def __init__(self, rec: SessionRecord, login: Any):
        self.rec = rec
        self.login = login
        self.allow = IpAllowlist(parse_network(c) for c in rec.allowed_ips)
        self.last_activity: float | None = None
        self.dirty = False


class _ConnState:
    __slots__ = ("session", "bytes_in", "bytes_out", "last_active", "closing")

    def __init__(self, session: _Session, now: float):
        self.session = session
        self.bytes_in = 0               # client byte counts already folded into the session
        self.bytes_out = 0
        self.last_active = now          # monotonic
        self.closing = False            # the manager asked it to close; gone at the next sample


class SessionManager:
    def __init__(self, app: Any, store: SessionStore, *, clock=time.time, monotonic=time.monotonic):
        self.app = app
        self.store = store
        self.clock = clock
        self.monotonic = monotonic
        self._by_id: dict[str, _Session] = {}
        self._by_user: dict[str, _Session] = {}
        self._conns: dict[Any, _ConnState] = {}
        self._task: asyncio.Task | None = None
        self._last_flush = 0.0
        self._last_purge = 0.0
        for rec in store.load():
            self._add(rec)

    @classmethod
    def open(cls, app: Any) -> "SessionManager":
        """Open `sessions.store` from the app's config (raises StoreError)."""
        return cls(app, SessionStore(app.config.sessions.store))

    # -- construction helpers ------------------------------------------------------------
    def _add(self, rec: SessionRecord) -> _Session:
        from sandbox_db_proxy.server.app import Login   # runtime contract type (server/app.py)
        login = Login(agent=rec.agent, username=rec.username, password=None,
                      scram_verifier=rec.scram_verifier, mysql_native_hash=rec.mysql_native_hash,
                      mysql_sha2_hash=rec.mysql_sha2_hash,
                      session_id=rec.id, source="session", backends=tuple(rec.backends))
        s = _Session(rec, login)
        self._by_id[rec.id] = s
        self._by_user[rec.username] = s
        return s

    def _config(self):
        return self.app.config

    # -- creation ------------------------------------------------------------------------
    def create(self, *, agent: str, backends: Iterable[str], ttl_seconds: int | None = None,
               idle_timeout_seconds: int | None = None, max_connections: int | None = None,
               allowed_ips: Iterable[str] = (), host: str | None = None) -> tuple[SessionRecord, str, dict]:
        """New session -> (record, password, {backend: connection string}). Raises SessionError
        (422 unknown backend / bad TTL, 409 per-agent cap, 429 fleet cap). Nothing is stored
        or audited unless every check passed."""
        cfg = self._config()
        sc = cfg.sessions
        names = list(dict.fromkeys(backends))
        for name in names:
            if not cfg.has_backend(name):
                known = ", ".join(b.name for b in cfg.backends if b.type in SESSION_BACKEND_TYPES)
                raise SessionError(422, "unknown-backend", "Unknown backend",
                                   f"backend {name!r} is not configured on this proxy (known: {known or 'none'})")
            b = cfg.backend(name)
            if b.type not in SESSION_BACKEND_TYPES:
                raise SessionError(422, "unsupported-backend", "Backend does not support sessions",
                                   f"backend {name!r} has type {b.type!r}; sessions can use "
                                   f"{' and '.join(SESSION_BACKEND_TYPES)} backends")
        if not names:
            raise SessionError(422, "validation", "Invalid request", "backends must name at least one backend")
        ttl = sc.timeout_seconds if ttl_seconds is None else ttl_seconds
        max_ttl = max(MAX_TTL_SECONDS, sc.timeout_seconds)
        if not 1 <= ttl <= max_ttl:
            raise SessionError(422, "validation", "Invalid request",
                               f"ttl_seconds must be between 1 and {max_ttl} (got {ttl})")
        nets = []
        for c in allowed_ips:
            try:
                nets.append(str(parse_network(c)))
            except ValueError as exc:
                raise SessionError(422, "validation", "Invalid request", f"allowed_ips: {exc}") from None
        now = self.clock()
        self._expire_due(now)        # a lapsed session must not hold a cap slot
        active = [s for s in self._by_id.values() if s.rec.is_active(now)]
        mine = sum(1 for s in active if s.rec.agent == agent)
        if mine >= sc.max_sessions_per_user:
            raise SessionError(409, "agent-session-limit", "Too many sessions for this agent",
                               f"agent {agent!r} already holds {mine} active session(s); the limit is "
                               f"{sc.max_sessions_per_user} (sessions.max_sessions_per_user / "
                               "MAX_SESSIONS_PER_USER). Revoke one (DELETE /api/sessions/{id}) or wait "
                               "for one to expire.", limit=sc.max_sessions_per_user, active=mine)
        if len(active) >= sc.max_concurrent_agents:
            raise SessionError(429, "fleet-session-limit", "Too many concurrent agent sessions",
                               f"{len(active)} sessions are active fleet-wide; the limit is "
                               f"{sc.max_concurrent_agents} (sessions.max_concurrent_agents / "
                               "MAX_CONCURRENT_AGENTS). Retry after a session ends.",
                               limit=sc.max_concurrent_agents, active=len(active))
        username = self._new_username(agent, names)
        password = "".join(secrets.choice(_PW_ALPHABET) for _ in range(PASSWORD_LENGTH))
        scram, native, sha2 = credentials_for(password)
        rec = SessionRecord(id=str(uuid.uuid4()), agent=agent, username=username, backends=tuple(names),
                            created_at=now, expires_at=now + ttl,
                            idle_timeout_seconds=float(idle_timeout_seconds) if idle_timeout_seconds else None,
                            max_connections=max_connections, allowed_ips=tuple(nets),
                            scram_verifier=scram, mysql_native_hash=native, mysql_sha2_hash=sha2)
        try:
            self.store.insert(rec)
        except StoreError as exc:
            log.error("%s", exc)
            raise SessionError(503, "store-unavailable", "Session store unavailable",
                               "the session could not be stored; nothing was created") from None
        self._add(rec)
        self.app.audit.event(None, "session_created", **{
            "session.id": rec.id, "agent": agent, "user.name": username, "backends": list(names),
            "expires_at": rfc3339(rec.expires_at), "ttl_seconds": ttl,
            "idle_timeout_seconds": idle_timeout_seconds, "max_connections": max_connections,
            "allowed_ips": list(nets) or None})
        log.info("session %s created for agent %s (%s), expires %s", rec.id, agent, ", ".join(names),
                 rfc3339(rec.expires_at))
        return rec, password, {n: self.connection_string(n, username, password, host) for n in names}

    def _new_username(self, agent: str, backends: list[str]) -> str:
        slug = "".join(c for c in agent.lower() if c.isascii() and c.isalnum())[:12] or "agent"
        for _ in range(100):
            name = f"sdp_{slug}_{secrets.token_hex(4)}"
            if name in self._by_user or self.store.username_taken(name):
                continue
            # Never shadow a static agent or a backend's own login name.
            if any(self._static_login(b, name) for b in backends):
                continue
            return name
        raise SessionError(503, "username-exhausted", "Cannot allocate a user name",
                           "could not generate a unique session user name; retry")

    def _static_login(self, backend: str, username: str) -> bool:
        # `name` is not in self._by_user yet, so our own provider answers None: anything
        # found is a static agent or a backend's own login.
        return self.app.lookup_login(backend, username) is not None

    def connection_string(self, backend_name: str, username: str, password: str, host: str | None) -> str:
        """`postgresql://` / `mysql://` URI (RFC 3986) for the backend's proxy listener. A
        wildcard listener (0.0.0.0, ::) is reached at the host the operator used for the admin
        request (the Host header), else 127.0.0.1."""
        b = self._config().backend(backend_name)
        lhost = b.listen_host
        if lhost in ("0.0.0.0", "::", ""):
            lhost = host or "127.0.0.1"
        port = b.listen_port
        bound = getattr(self.app, "bound_port", None)
        if callable(bound):
            port = bound(backend_name) or port
        if ":" in lhost:
            lhost = f"[{lhost}]"
        scheme = "postgresql" if b.type == "postgres" else "mysql"
        path = "/" + quote(b.database, safe="") if b.database else ""
        return f"{scheme}://{quote(username, safe='')}:{quote(password, safe='')}@{lhost}:{port}{path}"

    # -- queries -------------------------------------------------------------------------
    def get(self, session_id: str) -> SessionRecord | None:
        s = self._by_id.get(session_id)
        return s.rec if s is not None else None

    def list(self) -> list[SessionRecord]:
        return [s.rec for s in sorted(self._by_id.values(), key=lambda s: s.rec.created_at)]

    def views(self) -> list[dict]:
        self._sample()
        return [self.view(r, sample=False) for r in self.list()]

    def view(self, rec: SessionRecord, sample: bool = True) -> dict:
        """The public (secret-free) description of a session (GET /api/sessions/{id})."""
        if sample:
            self._sample()
        s = self._by_id.get(rec.id)
        now = self.clock()
        state = rec.state
        if state == ACTIVE and now >= rec.expires_at:
            state = EXPIRED          # the loop will record it within a tick
        live = sum(1 for st in self._conns.values() if st.session is s and not st.closing)
        return {
            "id": rec.id, "agent": rec.agent, "username": rec.username, "backends": list(rec.backends),
            "state": state, "created_at": rfc3339(rec.created_at), "expires_at": rfc3339(rec.expires_at),
            "ended_at": rfc3339(rec.ended_at), "end_reason": rec.end_reason,
            "idle_timeout_seconds": int(rec.idle_timeout_seconds) if rec.idle_timeout_seconds else None,
            "max_connections": rec.max_connections, "allowed_ips": list(rec.allowed_ips),
            "live_connections": live, "connections_total": rec.connections_total,
            "statements_allowed": rec.statements_allowed, "statements_blocked": rec.statements_blocked,
            "bytes_in": rec.bytes_in, "bytes_out": rec.bytes_out,
            "last_activity": rfc3339(s.last_activity) if s is not None else None,
        }

    # -- relay hooks ---------------------------------------------------------------------
    def lookup_login(self, backend_name: str, username: str):
        s = self._by_user.get(username)
        if s is None or backend_name not in s.rec.backends or not s.rec.is_active(self.clock()):
            return None
        return s.login

    def admit(self, login: Any, client_address: str | None, conn: Any = None) -> str | None:
        """Per-session checks after authentication; None = admitted, else why not."""
        s = self._by_id.get(getattr(login, "session_id", None) or "")
        if s is None or not s.rec.is_active(self.clock()):
            return "this session has ended; ask the operator for a new session"
        if s.allow.networks and (client_address is None or not s.allow.allowed(client_address)):
            return (f"session {s.rec.id} does not allow connections from {client_address} "
                    "(the session's allowed_ips)")
        if s.rec.max_connections is not None:
            self._sample()
            live = sum(1 for c, st in self._conns.items() if st.session is s and c is not conn and not st.closing)
            if live >= s.rec.max_connections:
                return (f"session {s.rec.id} already has {live} live connection(s), its limit "
                        f"(max_connections); close one and retry")
        s.rec.connections_total += 1
        s.dirty = True
        s.last_activity = self.clock()
        if conn is not None:
            self._conns[conn] = _ConnState(s, self.monotonic())
        return None

    def observe_statement(self, record: dict) -> None:
        """Audit hook: one statement record of a session login."""
        s = self._by_id.get(record.get("session.id") or "")
        if s is None:
            return
        if record.get("verdict") == "BLOCKED":
            s.rec.statements_blocked += 1
        else:
            s.rec.statements_allowed += 1
        s.dirty = True
        s.last_activity = self.clock()

    def observe_allowed(self, session_id: str, n: int) -> None:
        """`n` allowed statements of a session relayed natively (server/native.py counts
        them in Rust; the audit lines are written there too)."""
        s = self._by_id.get(session_id)
        if s is None:
            return
        s.rec.statements_allowed += n
        s.dirty = True
        s.last_activity = self.clock()

    def connection_closed(self, conn: Any) -> None:
        """The connection is gone (no longer tracked by the app): fold its final byte counts
        into its session and forget it."""
        st = self._conns.pop(conn, None)
        if st is not None:
            self._fold(conn, st)

    def _mark_closing(self, conns: Iterable) -> None:
        for c in conns:
            st = self._conns.get(c)
            if st is not None:
                st.closing = True

    def _fold(self, conn: Any, st: _ConnState) -> bool:
        """Add the connection's byte counts since the last sample; True if it moved."""
        bi = getattr(conn, "bytes_in", 0) or 0
        bo = getattr(conn, "bytes_out", 0) or 0
        moved = bi != st.bytes_in or bo != st.bytes_out
        if moved:
            rec = st.session.rec
            rec.bytes_in += max(0, bi - st.bytes_in)
            rec.bytes_out += max(0, bo - st.bytes_out)
            st.bytes_in, st.bytes_out = bi, bo
            st.session.dirty = True
        return moved

    def _sample(self) -> None:
        """Bring the per-connection view up to date with the app's tracked connections."""
        native = getattr(self.app, "native", None)
        if native is not None:
            native.sync()            # natively relayed connections' counters, as of now
        now = self.monotonic()
        live = set()
        for c in list(getattr(self.app, "connections", ())):
            sid = getattr(c, "session_id", None)
            if sid is None:
                continue
            live.add(c)
            st = self._conns.get(c)
            if st is None:
                s = self._by_id.get(sid)
                if s is None:
                    continue
                st = self._conns[c] = _ConnState(s, now)
            if self._fold(c, st) or getattr(c, "idle", True) is False:
                st.last_active = now
                st.session.last_activity = self.clock()
        for c in [c for c in self._conns if c not in live]:
            self.connection_closed(c)

    # -- revocation and expiry -----------------------------------------------------------
    async def revoke(self, session_id: str, reason: str = OPERATOR_REASON) -> tuple[SessionRecord, int] | None:
        """Revoke the credentials (persisted first) and close every live connection at once.
        Returns (record, connections closed) or None for an unknown id. Revoking an ended
        session closes whatever still runs on it (AUTO_DESTROY_SESSIONS=false) and marks it
        revoked."""
        s = self._by_id.get(session_id)
        if s is None:
            return None
        rec = s.rec
        if rec.state != REVOKED:
            prev = rec.state
            self._sample()
            rec.state, rec.ended_at, rec.end_reason = REVOKED, self.clock(), reason
            try:
                self.store.end(rec)
            except StoreError as exc:
                rec.state, rec.ended_at, rec.end_reason = prev, None, None
                log.error("%s", exc)
                raise SessionError(503, "store-unavailable", "Session store unavailable",
                                   "the revocation could not be stored; the session is unchanged") from None
            self.app.audit.event(None, "session_revoked", reason=reason, **{
                "session.id": rec.id, "agent": rec.agent, "user.name": rec.username})
            log.warning("session %s of agent %s revoked: %s", rec.id, rec.agent, reason)
        closed = await self._close_session_connections(rec.id, reason)
        return rec, closed

    async def _close_session_connections(self, session_id: str, reason: str) -> int:
        self._sample()
        conns = self.app.connections_of(session_id=session_id)
        self._mark_closing(conns)
        if not conns:
            return 0
        return await self.app.close_connections(conns, reason)

    def _expire_due(self, now: float) -> list[SessionRecord]:
        """Mark sessions past `expires_at` expired (persisted, audited); returns them."""
        out = []
        for s in list(self._by_id.values()):
            rec = s.rec
            if rec.state == ACTIVE and now >= rec.expires_at:
                self._sample()
                rec.state, rec.ended_at = EXPIRED, now
                rec.end_reason = f"the session's lease ended at {rfc3339(rec.expires_at)}"
                try:
                    self.store.end(rec)
                except StoreError as exc:
                    log.error("%s (session %s expires in memory only)", exc, rec.id)
                self.app.audit.event(None, "session_expired", reason=rec.end_reason, **{
                    "session.id": rec.id, "agent": rec.agent, "user.name": rec.username,
                    "auto_destroy": self._config().sessions.auto_destroy})
                log.info("session %s of agent %s expired", rec.id, rec.agent)
                out.append(rec)
        return out

    async def tick(self) -> None:
        """One housekeeping pass: expiry, idle connections, counter flush, purge."""
        now = self.clock()
        expired = self._expire_due(now)
        if expired and self._config().sessions.auto_destroy:
            for rec in expired:
                await self._close_session_connections(
                    rec.id, "session expired (its ttl_seconds lease ended); ask the operator for a new session")
        self._sample()
        mono = self.monotonic()
        idle = []
        for c, st in list(self._conns.items()):
            limit = st.session.rec.idle_timeout_seconds
            if limit and not st.closing and mono - st.last_active >= limit:
                idle.append((c, limit))
        for c, limit in idle:
            self._mark_closing([c])
            st_rec = self._by_id.get(getattr(c, "session_id", None) or "")
            if st_rec is not None:
                self.app.audit.event(None, "limit", limit="session.idle_timeout_seconds", **{
                    "session.id": st_rec.rec.id, "agent": st_rec.rec.agent,
                    "reason": f"connection idle for {limit:g} s (the session's idle_timeout_seconds)"})
            await self.app.close_connections(
                [c], f"idle for more than {limit:g} s (the session's idle_timeout_seconds); reconnect to continue")
        if mono - self._last_flush >= FLUSH_SECONDS:
            self.flush()
        if mono - self._last_purge >= 3600:
            self._last_purge = mono
            try:
                for sid in self.store.purge_ended(now - RETAIN_ENDED_SECONDS):
                    s = self._by_id.pop(sid, None)
                    if s is not None and self._by_user.get(s.rec.username) is s:
                        del self._by_user[s.rec.username]
            except StoreError as exc:
                log.error("%s", exc)

    def flush(self) -> None:
        self._last_flush = self.monotonic()
        dirty = [s for s in self._by_id.values() if s.dirty]
        if not dirty:
            return
        try:
            self.store.save_counters([s.rec for s in dirty])
            for s in dirty:
                s.dirty = False
        except StoreError as exc:
            log.error("%s", exc)

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 -- housekeeping must keep running
                log.exception("session housekeeping failed")
            await asyncio.sleep(TICK_SECONDS)

    def start(self) -> None:
        if self._task is None:
            self._last_purge = self.monotonic() - 3600   # purge old ended sessions at start
            self._task = asyncio.get_running_loop().create_task(self._run(), name="sessions")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        self._sample()
        self.flush()
        self.store.close()



def attach(app: Any) -> SessionManager | None:
    """Open the store from `app.config.sessions.store`, register the login provider and the
    statement observer, start the housekeeping loop; sets `app.sessions`. Called by
    `ProxyApp.start()` (needs the running loop). A store that cannot be opened is logged
    loudly and leaves `app.sessions` None: static agents keep working, the session API
    answers 503 and no session login is possible (default deny)."""
    try:
        mgr = SessionManager.open(app)
    except StoreError as exc:
        log.error("ERROR: sessions disabled: %s", exc)
        app.sessions = None
        return None
    app.sessions = mgr
    app.login_providers.append(mgr.lookup_login)
    # audit.py calls this for every statement record of a session login (if it supports it).
    if hasattr(app.audit, "session_observer"):
        app.audit.session_observer = mgr.observe_statement
    mgr.start()
    return mgr


async def detach(app: Any) -> None:
    """Stop the loop, flush counters, close the store (ProxyApp.drain)."""
    mgr = getattr(app, "sessions", None)
    if mgr is None:
        return
    if mgr.lookup_login in app.login_providers:
        app.login_providers.remove(mgr.lookup_login)
    if getattr(app.audit, "session_observer", None) == mgr.observe_statement:
        app.audit.session_observer = None
    app.sessions = None
    await mgr.stop()
