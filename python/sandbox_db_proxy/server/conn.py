"""What the listeners' client connections share (server/postgres.py, server/mysql.py): the
app's `TrackedConnection` side (agent, session id, byte counts, `idle`, `close`), flow control
towards the backend, the idle timer, cleanup, and the hand-over to the native relay
(server/native.py). The protocol-specific parts are the hooks at the end.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sandbox_db_proxy.server.flow import set_reading


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
