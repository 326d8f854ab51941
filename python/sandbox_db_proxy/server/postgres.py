"""PostgreSQL listener: the I/O layer under `protocols/postgres.py` (which holds all protocol
logic). asyncio/uvloop Protocols and transports, not streams: each received chunk goes to
the state machine in one call and leaves in one `transport.write`.

- Accept: `app.admit` (IP allowlist, connection limit) runs in `connection_made`, before a
  byte is read; a refused address is closed at once (audited by `admit`).
- TLS to clients: SSLRequest -> 'S' -> `loop.start_tls` with the backend's `tls` cert.
- Backend: TCP or unix socket (`address` starting with '/' is the socket directory,
  `{address}/.s.PGSQL.{port}`, as libpq), TLS per `backend_tls.mode` (libpq sslmode
  semantics), connect timeout `limits.connect_timeout_seconds`.
- Flow control: when one side's write buffer passes the high-water mark the other side's
  reading is paused (asyncio "Flow control callbacks"), so a slow client cannot make the
  proxy buffer a whole result set.
- CancelRequest: the client presents the proxy's cancel key; the listener finds the session
  and sends the backend's real key on a new backend connection (protocol "Canceling
  Requests in Progress").
- Catalogue: before the first backend session (and again after a config reload) the
  backend's pg_proc is read over a proxy-owned connection and given to the engine.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import socket
import ssl

from sandbox_db_proxy.audit import ConnContext
from sandbox_db_proxy.protocols import pg_messages as M
from sandbox_db_proxy.protocols.pg_client import OneQuery
from sandbox_db_proxy.protocols.postgres import CLOSED, DB_SYSTEM, READY, PgSession
from sandbox_db_proxy.protocols.pg_startup import MAX_INSPECTED
from sandbox_db_proxy.server.conn import ClientBase, ListenerBase, addresses, set_nodelay
from sandbox_db_proxy.server.flow import set_reading

log = logging.getLogger("sandbox_db_proxy.postgres")

CATALOG_RETRY_SECONDS = 30.0


async def start(app, backend) -> asyncio.AbstractServer:
    """Start the listener for one `type: postgres` backend (contract: docs/ARCHITECTURE.md)."""
    listener = PgListener(app, backend.name)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: ClientConnection(listener), backend.listen_host,
                                      backend.listen_port, reuse_address=True, backlog=1024)
    listener.server = server
    return server


class PgListener(ListenerBase):
    """Shared state of one backend's listener."""

    def __init__(self, app, backend_name: str):
        super().__init__(app, backend_name)
        self.sessions: dict[int, ClientConnection] = {}      # proxy cancel pid -> connection
        self._catalog_cfg = None
        self._catalog_task: asyncio.Task | None = None
        self._catalog_failed_at = -1e9


    # -- backend connections ---------------------------------------------------------------
    async def open_backend(self, protocol_factory):
        """Connect to the backend (TCP or unix socket), negotiate TLS per backend_tls.mode.
        Returns (transport, protocol). Raises OSError/ConnectionError with a clear message."""
        b = self.backend
        loop = asyncio.get_running_loop()
        timeout = self.app.config.limits.connect_timeout_seconds

        async def go():
            if b.is_unix_socket:
                path = f"{b.address.rstrip('/')}/.s.PGSQL.{b.port}"
                transport, proto = await loop.create_unix_connection(protocol_factory, path)
                return transport, proto            # libpq does not use TLS over unix sockets
            transport, proto = await loop.create_connection(protocol_factory, b.address, b.port)
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            ctx = b.backend_tls.client_context()
            if ctx is None:
                return transport, proto
            answer = await proto.negotiate_ssl(transport)
            if answer == b"S":
                hostname = b.address if b.backend_tls.mode == "verify-full" else None
                transport = await loop.start_tls(transport, proto, ctx, server_hostname=hostname)
                proto.transport = transport
            elif b.backend_tls.mode in ("require", "verify-ca", "verify-full"):
                transport.close()
                raise ConnectionError(f"the backend does not accept TLS (backend_tls.mode={b.backend_tls.mode})")
            return transport, proto

        return await asyncio.wait_for(go(), timeout)

    async def cancel(self, pid: int, key: bytes) -> None:
        conn = self.sessions.get(pid)
        if conn is None or conn.session is None:
            return
        s = conn.session
        if not hmac.compare_digest(key, s.proxy_key) or s.backend_key is None:
            return
        bpid, bkey = s.backend_key
        try:
            transport, _ = await self.open_backend(lambda: _Discard())
            transport.write(M.cancel_request(bpid, bkey))
            transport.close()
        except (OSError, asyncio.TimeoutError, ConnectionError) as exc:
            log.warning("backend %s: cancel request failed: %s", self.backend_name, exc)

    # -- function catalogue ----------------------------------------------------------------
    async def ensure_catalog(self) -> None:
        """Read pg_proc once per config snapshot (first connect, reload); concurrent callers
        share one read. A failure is logged and retried later; the engine keeps its built-in
        defaults meanwhile (which deny unknown functions)."""
        cfg = self.app.config
        if self._catalog_cfg is cfg:
            return
        loop = asyncio.get_running_loop()
        if self._catalog_task is None:
            if loop.time() - self._catalog_failed_at < CATALOG_RETRY_SECONDS:
                return
            self._catalog_task = loop.create_task(self._load_catalog(cfg))
        try:
            await asyncio.shield(self._catalog_task)
        except Exception:  # noqa: BLE001 -- logged in _load_catalog
            pass

    async def _load_catalog(self, cfg) -> None:
        loop = asyncio.get_running_loop()
        try:
            from sandbox_db_proxy.engine.functions import PG_PROC_QUERY, FunctionCatalog
            rows = await self.run_query(PG_PROC_QUERY)
            catalog = FunctionCatalog.from_pg_proc(rows)
            self.app.engine(self.backend_name).set_catalog(catalog)
            self.app.native.verdicts_changed(self.backend_name)   # its cache was made without it
            self._catalog_cfg = cfg
            log.info("backend %s: loaded %d functions from pg_proc", self.backend_name, len(rows))
        except Exception as exc:  # noqa: BLE001 -- never let the catalogue stop the relay
            self._catalog_failed_at = loop.time()
            log.error("backend %s: could not read pg_proc (functions judged by built-in lists "
                      "only): %s", self.backend_name, exc)
        finally:
            self._catalog_task = None

    async def run_query(self, sql: str) -> list[tuple]:
        b = self.backend
        pw = b.password.get_secret_value() if b.password is not None else None
        q = OneQuery(b.username, pw, b.database or b.username, sql)
        done = asyncio.get_running_loop().create_future()
        proto = _QueryProtocol(q, done)
        transport, proto = await self.open_backend(lambda: proto)
        try:
            transport.write(q.startup)
            await asyncio.wait_for(done, self.app.config.limits.connect_timeout_seconds * 3)
        finally:
            transport.close()
        if q.error:
            raise ConnectionError(q.error)
        return q.rows


class _SslProbe(asyncio.Protocol):
    """A proxy-owned backend connection that may ask for TLS first: SSLRequest, then the
    server's one-byte answer ('S' or 'N'; protocol docs, "SSL Session Encryption")."""

    def __init__(self):
        self.transport = None
        self._ssl_answer: asyncio.Future | None = None

    def connection_made(self, transport):
        self.transport = transport

    async def negotiate_ssl(self, transport) -> bytes:
        self._ssl_answer = asyncio.get_running_loop().create_future()
        transport.write(M.SSL_REQUEST)
        return await self._ssl_answer

    def _ssl_answered(self, data) -> bool:
        """True when `data` was the awaited SSL answer (and is consumed by it)."""
        if self._ssl_answer is not None and not self._ssl_answer.done():
            self._ssl_answer.set_result(data[:1])
            return True
        return False

    def connection_lost(self, exc):
        if self._ssl_answer is not None and not self._ssl_answer.done():
            self._ssl_answer.set_exception(ConnectionError("backend closed during TLS negotiation"))


class _Discard(_SslProbe):
    """CancelRequest connection: nothing is read back (the server just closes it)."""

    def data_received(self, data):
        self._ssl_answered(data)


class _QueryProtocol(_SslProbe):
    def __init__(self, q: OneQuery, done: asyncio.Future):
        super().__init__()
        self.q, self.done = q, done

    def data_received(self, data):
        if self._ssl_answered(data):
            return
        try:
            out = self.q.feed(data)
        except Exception as exc:  # noqa: BLE001
            if not self.done.done():
                self.done.set_exception(exc)
            return
        if out:
            self.transport.write(out)
        if self.q.done and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc):
        super().connection_lost(exc)
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"backend closed the connection ({exc})"))


class BackendConnection(asyncio.Protocol):
    """The proxy's connection to the database for one client."""

    __slots__ = ("client", "transport", "_ssl_answer", "closing")

    def __init__(self, client: "ClientConnection"):
        self.client = client
        self.transport = None
        self._ssl_answer: asyncio.Future | None = None
        self.closing = False

    def connection_made(self, transport):
        self.transport = transport

    async def negotiate_ssl(self, transport) -> bytes:
        self._ssl_answer = asyncio.get_running_loop().create_future()
        transport.write(M.SSL_REQUEST)
        return await self._ssl_answer

    def data_received(self, data):
        if self._ssl_answer is not None and not self._ssl_answer.done():
            if len(data) != 1:
                # Bytes after the one-byte answer would be unencrypted data injected ahead
                # of the TLS handshake (CVE-2021-23222): refuse.
                self._ssl_answer.set_exception(ConnectionError("unexpected data after the backend's SSL answer"))
            else:
                self._ssl_answer.set_result(data)
            return
        try:
            self.client.session.backend_data(data)
        except Exception:  # noqa: BLE001 -- a relay bug must close the session, not leak it
            self.client.internal_error("backend data")

    def connection_lost(self, exc):
        if self._ssl_answer is not None and not self._ssl_answer.done():
            self._ssl_answer.set_exception(ConnectionError("backend closed during TLS negotiation"))
            return
        if not self.closing:
            self.client.session.backend_lost(exc)

    # backend transport's write buffer is full -> stop reading the client
    def pause_writing(self):
        set_reading(self.client.transport, False)

    def resume_writing(self):
        set_reading(self.client.transport, True)


class ClientConnection(ClientBase):
    """One client: the `Sink` of its PgSession and the `TrackedConnection` of the app."""

    PROTOCOL = DB_SYSTEM

    def close(self, reason: str):
        if self.native is not None:
            self.app.native.terminate(self.native, reason)
        elif self.session is not None:
            self.session.close(reason)

    # -- native relay ----------------------------------------------------------------------
    def go_native(self, backend_tail: bytes, early: bytes) -> bool:
        """Hand the logged-in session to the native relay. False: keep relaying here (TLS,
        disabled, bytes still queued); True: the native relay has it (or, if handing over
        failed half-way, the session is ending)."""
        s = self.session
        return self.app.native.hand_over(self, "postgres", early, backend_tail,
                                         max_message=s.max_message, max_inspected=MAX_INSPECTED)

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport
        ip, port, sip, sport = addresses(transport)
        ctx = ConnContext(self.backend_name, DB_SYSTEM, client_address=ip, client_port=port,
                          server_address=sip, server_port=sport)
        adm = self.app.admit(self.backend_name, ip, port, ctx, protocol=DB_SYSTEM)
        if not adm.ok and adm.kind == "ip_denied":
            self.closed = True
            transport.abort()                  # nothing read, nothing said
            return
        refuse = None
        if adm.ok:
            self.admitted = True
        else:
            refuse = (M.SQLSTATE["too_many_connections"], f"sorry, too many clients already: {adm.reason}")
        set_nodelay(transport)
        self.session = PgSession(self.app, self.backend_name, self, ctx,
                                 tls=self.listener.client_ssl() is not None, refuse=refuse)
        self.listener.sessions[self.session.proxy_pid] = self
        self.app.track(self)
        self.bm.active.inc()
        if adm.ok:
            self.app.audit.event(ctx, "connect")
        self._arm_idle()
        # Like PostgreSQL's authentication_timeout: a client that never finishes logging in
        # (or a backend that never answers the login) does not hold a slot forever.
        limit = max(2.0, 6 * self.app.config.limits.connect_timeout_seconds)
        self._timers.append(asyncio.get_running_loop().call_later(limit, self._login_timeout))

    def _login_timeout(self):
        if not self.closed and self.session is not None:
            self.session.login_timeout()

    def data_received(self, data):
        self._activity += 1
        self.bytes_in += len(data)
        try:
            self.session.client_data(data)
        except Exception:  # noqa: BLE001 -- a relay bug must close the session, not leak it
            self.internal_error("client data")

    def internal_error(self, where: str) -> None:
        """Fail closed on an unexpected exception in the relay: log it, audit it, and end
        both connections (nothing more is forwarded)."""
        log.exception("backend %s: internal error while handling %s; closing the session",
                      self.backend_name, where)
        s = self.session
        try:
            self.app.audit.event(s.ctx, "protocol_error", reason=f"internal error while handling {where}")
        except Exception:  # noqa: BLE001
            pass
        s.state = CLOSED
        try:
            self.send_client(M.fatal("XX000", "sandbox-db-proxy internal error; the session was closed"))
        finally:
            self.close_backend()
            self.close_client()

    def connection_lost(self, exc):
        if self.session is None or self.native is not None:
            return
        self._cleanup()
        self.session.client_lost(exc)

    # -- ClientBase hooks ----------------------------------------------------------------------
    def _relay_idle(self) -> bool:
        s = self.session
        return s.state != READY or s.sent_z == s.recv_z

    def _relay_idle_timeout(self, secs: float) -> bool:
        return self.session.idle_timeout()

    def _idle_message(self, secs: float) -> str:
        return f"terminating connection due to idle timeout ({secs:g} s, limits.idle_timeout_seconds)"

    def _mark_session_closed(self) -> None:
        if self.session is not None:
            self.session.state = CLOSED

    def _forget(self) -> None:
        self.listener.sessions.pop(self.session.proxy_pid, None)

    # -- Sink -------------------------------------------------------------------------------
    def send_client(self, data: bytes) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            self.bytes_out += len(data)
            t.write(data)

    def send_backend(self, data: bytes) -> None:
        b = self.backend
        if b is not None and b.transport is not None and not b.transport.is_closing():
            b.transport.write(data)

    def connect_backend(self) -> None:
        asyncio.get_running_loop().create_task(self._connect_backend())

    async def _connect_backend(self):
        await self.listener.ensure_catalog()
        if self.closed or self.session is None or self.transport is None or self.transport.is_closing():
            return
        try:
            transport, proto = await self.listener.open_backend(lambda: BackendConnection(self))
        except (OSError, asyncio.TimeoutError, ConnectionError, ssl.SSLError) as exc:
            msg = str(exc) or type(exc).__name__
            if isinstance(exc, asyncio.TimeoutError):
                msg = f"timed out after {self.app.config.limits.connect_timeout_seconds:g} s"
            self.session.backend_failed(msg)
            return
        if self.closed or self.transport.is_closing():
            proto.closing = True
            transport.close()
            return
        self.backend = proto
        proto.transport = transport
        self.session.backend_connected()

    def start_client_tls(self) -> None:
        asyncio.get_running_loop().create_task(self._start_tls())

    async def _start_tls(self):
        ctx = self.listener.client_ssl()
        loop = asyncio.get_running_loop()
        try:
            new = await loop.start_tls(self.transport, self, ctx, server_side=True)
        except (OSError, ssl.SSLError, ConnectionError, asyncio.TimeoutError) as exc:
            self.app.audit.event(self.session.ctx, "protocol_error", reason=f"TLS handshake failed: {exc}")
            if self.transport is not None:
                self.transport.abort()
            return
        if new is None:
            return
        self.transport = new
        self.session.client_tls_started()

    def close_client(self) -> None:
        self.closed = True
        t = self.transport
        if t is not None and not t.is_closing():
            t.close()                           # after pending writes are flushed
        self._cleanup()

    def close_backend(self) -> None:
        b = self.backend
        if b is not None and b.transport is not None:
            b.closing = True
            b.transport.close()

    def cancel(self, pid: int, key: bytes) -> None:
        asyncio.get_running_loop().create_task(self.listener.cancel(pid, key))
