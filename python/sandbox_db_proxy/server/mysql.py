"""MySQL / MariaDB listener: the I/O layer under `protocols/mysql.py` (all protocol logic is
there). asyncio/uvloop Protocols and transports, not streams: every received chunk goes to
the state machine in one call and, for results, leaves in one `transport.write`.

- Accept: `app.admit` (IP allowlist, then the connection limit) in `connection_made`, before a
  byte is read. A refused address is aborted silently (audited by `admit`); over the limit
  the client gets ERR 1040 "Too many connections" first.
- Client TLS: the greeting offers CLIENT_SSL only when the backend has a `tls` certificate;
  on SSLRequest `loop.start_tls(server_side=True)`. The client does not wait for an answer
  to its SSLRequest (MySQL dev docs "Protocol::SSLRequest"), so its ClientHello may already
  be in the chunk the SSLRequest came in; those bytes are handed to the TLS layer.
- Backend: TCP, or a unix socket when `address` starts with '/' (the socket file). TLS per
  `backend_tls.mode` (`prefer` uses TLS when the server offers it). Connect timeout
  `limits.connect_timeout_seconds`; the whole login must finish within 3x that.
- Flow control: when one side's write buffer passes the high-water mark the other side's
  reading pauses (asyncio "Flow control callbacks"), so a slow client never makes the proxy
  buffer a whole result set.
- `start()` reads the backend's greeting once in the background (version, capabilities,
  MariaDB or MySQL) so the proxy's own greeting mirrors the real server from the first
  client on; every backend login refreshes it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl

from sandbox_db_proxy import _native as N
from sandbox_db_proxy.auth import mysql_auth as A
from sandbox_db_proxy.audit import ConnContext
from sandbox_db_proxy.protocols import mysql_consts as C
from sandbox_db_proxy.protocols.mysql import BackendInfo, MySQLSession, SessionOptions
from sandbox_db_proxy.server.conn import ClientBase, ListenerBase, addresses, set_nodelay
from sandbox_db_proxy.server.flow import set_reading

log = logging.getLogger("sandbox_db_proxy.mysql")

PROTOCOL = "mysql"
_conn_ids = itertools.count(1)


async def start(app, backend, *, client_auth_plugin: str | None = None) -> asyncio.AbstractServer:
    """Start the listener for one `type: mysql` backend (contract: docs/ARCHITECTURE.md).
    `client_auth_plugin` forces the plugin the proxy's greeting asks clients for
    (default: caching_sha2_password in front of MySQL 8+, else mysql_native_password)."""
    listener = MySQLListener(app, backend.name, client_auth_plugin)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: ClientConnection(listener), backend.listen_host,
                                      backend.listen_port, reuse_address=True, backlog=1024)
    listener.server = server
    listener.probe_task = loop.create_task(listener.probe())
    return server


class MySQLListener(ListenerBase):
    """State shared by the connections of one backend listener."""

    def __init__(self, app, backend_name: str, client_auth_plugin: str | None = None):
        super().__init__(app, backend_name)
        self.client_auth_plugin = client_auth_plugin
        self.info = BackendInfo()
        self.fast_cache: set = set()
        self.probe_task: asyncio.Task | None = None


    def preferred_plugin(self) -> str:
        if self.client_auth_plugin:
            return self.client_auth_plugin
        if self.info.flavor == "mysql" and self.info.major_version >= 8:
            return A.SHA2
        return A.NATIVE

    async def connect(self, protocol_factory):
        b = self.backend
        loop = asyncio.get_running_loop()
        timeout = self.app.config.limits.connect_timeout_seconds
        if b.is_unix_socket:
            coro = loop.create_unix_connection(protocol_factory, b.address)
        else:
            coro = loop.create_connection(protocol_factory, b.address, b.port)
        transport, proto = await asyncio.wait_for(coro, timeout)
        set_nodelay(transport)
        return transport, proto

    async def probe(self) -> None:
        """Read the backend's greeting once (then hang up) to learn its version and flavor."""
        got = asyncio.get_running_loop().create_future()

        class _Probe(asyncio.Protocol):
            def __init__(self):
                self.dec = N.MysqlPacketDecoder(1 << 16)

            def data_received(self, data):
                try:
                    packets = self.dec.feed(data)
                except N.NativeError as exc:
                    if not got.done():
                        got.set_exception(exc)
                    return
                if packets and not got.done():
                    got.set_result(packets[0][1])

            def connection_lost(self, exc):
                if not got.done():
                    got.set_exception(ConnectionError("closed before the greeting"))

        transport = None
        try:
            transport, _ = await self.connect(_Probe)
            payload = await asyncio.wait_for(got, self.app.config.limits.connect_timeout_seconds)
            hs = N.mysql_parse_handshake(payload)
            version = hs["server_version"]
            flavor = "mariadb" if b"mariadb" in version.lower() else "mysql"
            if not self.info.learned:
                self.info.learn(version, hs["capabilities"], hs["charset"], flavor)
            log.info("backend %s: %s %s", self.backend_name, flavor, version.decode("latin-1"))
        except Exception as exc:  # noqa: BLE001 -- best effort; learned again at the first login
            log.warning("backend %s: could not read the server greeting yet (%s); using defaults "
                        "until the first login", self.backend_name, exc)
        finally:
            if transport is not None:
                transport.close()


class BackendConnection(asyncio.Protocol):
    """The proxy's connection to the database for one client."""

    __slots__ = ("client", "transport", "closing")

    def __init__(self, client: "ClientConnection"):
        self.client = client
        self.transport = None
        self.closing = False

    def connection_made(self, transport):
        # Attach at once: the server's greeting can arrive before the connecting coroutine
        # resumes, and it must reach the session in its greeting stage.
        self.transport = transport
        client = self.client
        if client.closed or client.session is None or client.session.closed:
            self.closing = True
            transport.close()
            return
        client.backend = self
        client.session.backend_connected()

    def data_received(self, data):
        self.client.session.backend_data(data)

    def connection_lost(self, exc):
        if not self.closing:
            self.closing = True
            self.client.session.backend_closed(str(exc) if exc else "")

    def pause_writing(self):
        set_reading(self.client.transport, False)

    def resume_writing(self):
        set_reading(self.client.transport, True)


class ClientConnection(ClientBase):
    """One client connection: the `RelayIO` of its MySQLSession and the app's TrackedConnection."""

    PROTOCOL = PROTOCOL

    def __init__(self, listener: MySQLListener):
        super().__init__(listener)
        # While start_tls runs, decrypted bytes can reach data_received before the awaiting
        # coroutine has the new transport: they wait here and are replayed in order.
        self._tls_wait: list[bytes] | None = None
        self._tasks: set[asyncio.Task] = set()

    def close(self, reason: str | None = None) -> None:
        """Both `RelayIO.close()` (no reason: the session decided to end and already said
        why) and `TrackedConnection.close(reason)` (the app wants the connection gone: the
        session tells the client why first, then calls back here without a reason)."""
        if self.native is not None:
            if reason is not None:
                self.app.native.terminate(self.native, reason)
            return
        if reason is not None and self.session is not None and not self.session.closed:
            self.session.kill(reason)
            return
        self._close_all()

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport
        ip, port, sip, sport = addresses(transport)
        info = self.listener.info
        ctx = ConnContext(self.backend_name, info.flavor, client_address=ip, client_port=port,
                          server_address=sip, server_port=sport)
        adm = self.app.admit(self.backend_name, ip, port, ctx, protocol=PROTOCOL)
        if not adm.ok:
            self.closed = True
            if adm.kind == "limit":
                transport.write(N.mysql_err(0, *C.ER_TOO_MANY_CONNECTIONS, f"Too many connections: {adm.reason}"))
                transport.close()
            else:
                transport.abort()  # refused address: nothing read, nothing said
            return
        self.admitted = True
        set_nodelay(transport)
        b = self.listener.backend
        tls_ctx = self.listener.client_ssl()
        opts = SessionOptions(conn_id=next(_conn_ids), peer=(ip, port), local=(sip, sport),
                              tls_available=tls_ctx is not None,
                              tls_required=bool(b.tls is not None and b.tls.required),
                              preferred_plugin=self.listener.preferred_plugin(),
                              fast_cache=self.listener.fast_cache)
        self.session = MySQLSession(self.app, self.backend_name, self, info, opts)
        self.session.ctx = ctx  # the connection id admit() saw is the one later records use
        self.app.track(self)
        self.bm.active.inc()
        loop = asyncio.get_running_loop()
        login_limit = max(3 * self.app.config.limits.connect_timeout_seconds, 5.0)
        self._timers.append(loop.call_later(login_limit, self.session.login_timeout, login_limit))
        self._arm_idle()
        self.session.start()

    def data_received(self, data):
        self._activity += 1
        self.bytes_in += len(data)
        if self._tls_wait is not None:
            self._tls_wait.append(data)
            return
        self.session.client_data(data)

    def connection_lost(self, exc):
        if self.session is None or self.native is not None:
            return
        self._cleanup()
        self.session.client_closed()
        self._close_backend()

    # -- ClientBase hooks ----------------------------------------------------------------------
    def _relay_idle(self) -> bool:
        s = self.session
        return not s.busy and not s.pending

    def _relay_idle_timeout(self, secs: float) -> bool:
        self.session.idle_timeout(secs)
        return True

    def _idle_message(self, secs: float) -> str:
        return (f"The client was disconnected by sandbox-db-proxy because of inactivity "
                f"(limits.idle_timeout_seconds = {secs:g}); reconnect to continue.")

    def _mark_session_closed(self) -> None:
        if self.session is not None:
            self.session.closed = True

    def _forget(self) -> None:
        for task in self._tasks:
            task.cancel()

    # -- native relay ----------------------------------------------------------------------
    def go_native(self, initial: bytes) -> bool:
        """Hand the logged-in session to the native relay (NativeRelay.hand_over)."""
        s = self.session
        if s is None or self._tls_wait is not None:
            return False
        backend = self.app.config.backend(self.backend_name)
        setup = [(x, False) if isinstance(x, str) else (x[0], True) for x in s._setup_statements()]
        return self.app.native.hand_over(
            self, "mysql", initial, b"", max_message=s.max_message,
            deprecate_eof=bool(s.backend_caps & C.CLIENT_DEPRECATE_EOF), mariadb=s.flavor == "mariadb",
            allowed_databases=list(backend.allowed_databases or ()), allowed_db_text=s._allowed_db_text(),
            setup_statements=setup, read_only_check=s._read_only_check()[0])

    def native_database(self, db: str) -> None:
        if self.session is not None:
            self.session.database = db

    def write_client(self, data: bytes) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            self.bytes_out += len(data)
            t.write(data)

    def write_backend(self, data: bytes) -> None:
        b = self.backend
        if b is not None and b.transport is not None and not b.transport.is_closing():
            b.transport.write(data)

    def pause_client(self) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            t.pause_reading()

    def resume_client(self) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            t.resume_reading()

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def connect_backend(self) -> None:
        self._spawn(self._connect_backend())

    async def _connect_backend(self):
        try:
            transport, proto = await self.listener.connect(lambda: BackendConnection(self))
        except asyncio.TimeoutError:
            self.session.backend_failed(f"connect timeout after {self.app.config.limits.connect_timeout_seconds:g}s")
            return
        except OSError as exc:
            self.session.backend_failed(exc.strerror or str(exc))
            return
        if self.closed or self.session.closed:
            transport.close()

    def start_backend_tls(self) -> None:
        self._spawn(self._backend_tls())

    async def _backend_tls(self):
        b = self.listener.backend
        ctx = b.backend_tls.client_context()
        loop = asyncio.get_running_loop()
        hostname = b.address if b.backend_tls.mode == "verify-full" else None
        try:
            transport = await asyncio.wait_for(
                loop.start_tls(self.backend.transport, self.backend, ctx, server_hostname=hostname),
                self.app.config.limits.connect_timeout_seconds)
        except (OSError, ssl.SSLError, asyncio.TimeoutError, ConnectionError) as exc:
            self.session._fail_backend_login(f"TLS to the database failed: {exc}")
            return
        self.backend.transport = transport
        self.session.backend_tls_done()

    def start_client_tls(self, leftover: bytes) -> None:
        self._spawn(self._client_tls(leftover))

    async def _client_tls(self, leftover: bytes):
        loop = asyncio.get_running_loop()
        ctx = self.listener.client_ssl()
        old = self.transport
        if ctx is None:
            self.session._protocol_error("TLS is not available", C.ER_UNKNOWN_ERROR, "TLS is not configured")
            return
        self._tls_wait = []
        tls = loop.create_task(loop.start_tls(old, self, ctx, server_side=True,
                                              ssl_handshake_timeout=self.app.config.limits.connect_timeout_seconds))
        if leftover:
            # start_tls swaps the transport's protocol for its SSL protocol and schedules
            # connection_made/resume_reading; feed the early handshake bytes right after.
            loop.call_soon(lambda: loop.call_soon(_inject, old, leftover))
        try:
            transport = await tls
        except (OSError, ssl.SSLError, asyncio.TimeoutError, ConnectionError) as exc:
            self.app.audit.event(self.session.ctx, "protocol_error", side="client",
                                 reason=f"TLS handshake with the client failed: {exc}")
            self.session._close(f"client TLS handshake failed: {exc}")
            return
        self.transport = transport
        waiting, self._tls_wait = self._tls_wait, None
        self.session.client_tls_done()
        for data in waiting:
            if self.session.closed:
                break
            self.session.client_data(data)

    def _close_all(self) -> None:
        self.closed = True
        t = self.transport
        if t is not None and not t.is_closing():
            t.close()  # flushes what was written (e.g. a final ERR) first
        self._close_backend()

    def _close_backend(self) -> None:
        b = self.backend
        if b is not None and b.transport is not None and not b.transport.is_closing():
            b.closing = True
            b.transport.close()


def _inject(transport, data: bytes) -> None:
    """Deliver bytes that arrived before TLS started to the SSL protocol now in charge."""
    proto = transport.get_protocol()
    try:
        buf = proto.get_buffer(len(data))
        n = min(len(buf), len(data))
        buf[:n] = data[:n]
        proto.buffer_updated(n)
        if n < len(data):
            _inject(transport, data[n:])
    except AttributeError:
        proto.data_received(data)
