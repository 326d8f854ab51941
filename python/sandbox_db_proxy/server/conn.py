"""What the listeners' client connections share (server/postgres.py, server/mysql.py): the
app's `TrackedConnection` side (agent, session id, byte counts, `idle`, `close`), flow control
towards the backend, the idle timer, cleanup, and the hand-over to the native relay
(server/native.py). The protocol-specific parts are the hooks at the end.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from typing import Any

from sandbox_db_proxy.server.flow import set_reading

log = logging.getLogger("sandbox_db_proxy.server")


class ListenerBase:
    """State shared by the connections of one backend's listener."""

    def __init__(self, app: Any, backend_name: str):
        self.app = app
        self.backend_name = backend_name
        self.server: asyncio.AbstractServer | None = None
        self._ssl: tuple[Any, ssl.SSLContext | None] | None = None

    @property
    def backend(self):
        return self.app.config.backend(self.backend_name)

    def client_ssl(self) -> ssl.SSLContext | None:
        """The server-side TLS context for clients (rebuilt when a reload changes `tls`); None
        without a certificate, or when it cannot be loaded (logged)."""
        tls = self.backend.tls
        if self._ssl is None or self._ssl[0] is not tls:
            ctx = None
            if tls is not None:
                try:
                    ctx = tls.server_context()
                except (OSError, ssl.SSLError) as exc:
                    log.error("backend %s: cannot load TLS certificate: %s", self.backend_name, exc)
            self._ssl = (tls, ctx)
        return self._ssl[1]


def addresses(transport) -> tuple[str | None, int | None, str | None, int | None]:
    """(client ip, client port, local ip, local port) of an accepted connection."""
    peer = transport.get_extra_info("peername")
    local = transport.get_extra_info("sockname")
    ip, port = (peer[0], peer[1]) if isinstance(peer, tuple) else (None, None)
    sip, sport = (local[0], local[1]) if isinstance(local, tuple) else (None, None)
    return ip, port, sip, sport


def set_nodelay(transport) -> None:
    """TCP_NODELAY on a TCP socket: replies are small and must not wait for Nagle."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


class ClientBase(asyncio.Protocol):
    """Base of one listener's client connection (subclasses set PROTOCOL and the hooks)."""

    PROTOCOL = ""                # metrics label: "postgresql" / "mysql"
    # Bytes from / to the client: per-session counters and idle detection (sessions/manager.py).
    bytes_in = 0
    bytes_out = 0
    # Set once the native relay owns the sockets: its NativeSession, and its counters as the
    # native relay's tick last saw them.
    native = None
    native_activity = 0
    native_idle = False

    def __init__(self, listener: Any):
        self.listener = listener
        self.app = listener.app
        self.backend_name = listener.backend_name
        self.transport = None
        self.backend: Any = None
        self.session: Any = None
        self.admitted = False
        self.closed = False
        self._cleaned = False
        self._activity = 0
        self._idle_seen = -1
        self._idle_strikes = 0
        self._idle_handle: asyncio.TimerHandle | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self.bm = self.app.metrics.backend(self.backend_name, self.PROTOCOL)

    # -- TrackedConnection -------------------------------------------------------------------
    @property
    def agent(self):
        return self.session.agent if self.session else None

    @property
    def session_id(self):
        return self.session.session_id if self.session else None

    @property
    def idle(self) -> bool:
        """No statement in flight (drain closes idle connections first)."""
        if self.native is not None:
            return bool(self.native_idle)
        return self.session is not None and self._relay_idle()

    # -- flow control: the client's write buffer is full -> stop reading the backend ----------
    def pause_writing(self):
        set_reading(self.backend.transport if self.backend else None, False)

    def resume_writing(self):
        set_reading(self.backend.transport if self.backend else None, True)

    # -- end of the connection ---------------------------------------------------------------
    def _cleanup(self) -> None:
        """Once: untrack, give the connection slot back, stop the timers."""
        if self._cleaned or self.session is None:
            return
        self._cleaned = True
        self._forget()
        self.app.untrack(self)
        self.bm.active.dec()
        if self.admitted:
            self.app.release(self.backend_name)
        if self._idle_handle is not None:
            self._idle_handle.cancel()
        for t in self._timers:
            t.cancel()
        self._timers.clear()

    # -- idle timeout (a counter per received chunk, not a timestamp) -------------------------
    def _arm_idle(self) -> None:
        secs = self.app.config.limits.idle_timeout_seconds
        if secs and secs > 0 and not self.closed:
            # Check twice per period: a connection idles out between 1 and 1.5 periods
            # after its last byte.
            self._idle_handle = asyncio.get_running_loop().call_later(secs / 2, self._idle_tick, secs)

    def _idle_tick(self, secs: float) -> None:
        self._idle_handle = None
        if self.closed or self.session is None:
            return
        native = self.native is not None
        activity = self.native_activity if native else self._activity
        quiet = self.native_idle if native else self._relay_idle()
        if activity == self._idle_seen and quiet:
            self._idle_strikes += 1
            if self._idle_strikes >= 2:
                if native:
                    self.app.native.terminate(self.native, self._idle_message(secs), admin=False)
                    return
                if self._relay_idle_timeout(secs):
                    return
        else:
            self._idle_strikes = 0
        self._idle_seen = activity
        self._arm_idle()

    # -- the native relay ----------------------------------------------------------------------
    def _native_closed(self) -> None:
        """The native relay ended the session (NativeRelay `closed` event)."""
        self.closed = True
        self._mark_session_closed()
        self._cleanup()

    # -- hooks -----------------------------------------------------------------------------------
    def _relay_idle(self) -> bool:
        """The Python relay has no statement in flight."""
        raise NotImplementedError

    def _relay_idle_timeout(self, secs: float) -> bool:
        """Tell the Python relay the client idled out; True when the connection was closed."""
        raise NotImplementedError

    def _idle_message(self, secs: float) -> str:
        """What the client reads when the native relay ends an idle session."""
        raise NotImplementedError

    def _mark_session_closed(self) -> None:
        raise NotImplementedError

    def _forget(self) -> None:
        """Listener-specific cleanup (cancel-key table, tasks)."""
