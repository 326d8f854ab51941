"""PostgreSQL relay state machine (sans-I/O), protocol 3.0.

Events in (`client_data`, `backend_connected`, `backend_data`, `backend_failed`,
`backend_lost`, `client_lost`, `client_tls_started`, `idle_timeout`, `close`); commands out
through a `Sink` (`send_client`, `send_backend`, `connect_backend`, `start_client_tls`,
`close_client`, `close_backend`, `cancel`) plus audit records and metrics via the
`ProxyApp`. No sockets here: `server/postgres.py` is the I/O layer. The login phases live
in `pg_startup.StartupPhase` (mixed in); this module is the relay. Design notes and the
reasoning behind them: docs/pg-relay.md.

Phases (PostgreSQL docs, "Message Flow" > "Start-up"):
  STARTUP       untyped packets: SSLRequest ('S' + TLS, or 'N'), GSSENCRequest ('N'),
                CancelRequest (mapped to the backend's real key), StartupMessage.
  AUTH          the proxy itself authenticates the client with SCRAM-SHA-256 against
                `app.lookup_login`; the agent never learns the database password.
  CONNECTING    waiting for the I/O layer to open the backend socket (and its TLS).
  BACKEND_AUTH  the proxy logs in with the backend's configured credentials; the backend's
                ParameterStatus/ReadyForQuery go to the client, BackendKeyData is replaced
                by the proxy's own cancel key.
  READY         relay: every Query and Parse is classified; blocked ones never reach the
                backend (see "decoys" below); result rows stream through untouched.
  DRAINING      the client sent something fatal (malformed frame, unknown message type)
                after statements that are still running: their results are delivered
                first, then the FATAL error -- the order PostgreSQL itself would answer in.

Decoys (how a blocked statement keeps client and backend in step). A blocked Query,
FunctionCall or Parse is replaced by a *decoy*: the same message type carrying the text
`__sdp_blocked_<n>__`, which the backend rejects in its raw parser (SQLSTATE 42601) before it
looks at anything else -- also inside an aborted transaction. The backend therefore goes
through exactly the state change the client expects from a failed statement (an explicit
transaction becomes failed 'E', an implicit one is rolled back, the extended protocol skips
to Sync), and its ErrorResponse arrives exactly where the error belongs among the responses
to earlier pipelined messages. The relay swaps that ErrorResponse for its own (SQLSTATE
25006 and the engine's reason) and forwards the backend's ReadyForQuery unchanged, so the
transaction status the client sees is always the backend's. Nothing of the blocked text
reaches the backend.
"""

from __future__ import annotations

import secrets
from collections import deque
from time import perf_counter
from typing import Any, Protocol

from sandbox_db_proxy._native import FrameError, TooLargeError, pg_scan_backend, pg_split_frontend
from sandbox_db_proxy.auth.pg_auth import BackendAuth
from sandbox_db_proxy.protocols import pg_messages as M
from sandbox_db_proxy.protocols.pg_startup import (AUTH, BACKEND_AUTH, CLOSED, CONNECTING, DRAINING,  # noqa: F401
                                                   MAX_INSPECTED, READY, STARTUP, UTF8_NAMES, StartupPhase, _enc)

DB_SYSTEM = "postgresql"

DECOY_PREFIX = "__sdp_blocked_"
# Named prepared statements tracked per connection (each holds its SQL text): a client
# creating them without end must not grow the proxy's memory without bound.
MAX_PREPARED = 10_000

# Protocol message names as audited (`protocol.message`).
_MSG = {"Q": "Query", "E": "Execute"}
_TXT = {"Q": "Query", "P": "Parse", "B": "Bind", "D": "Describe", "E": "Execute", "F": "FunctionCall"}


class Blocked:
    """A protocol-level refusal shaped like an engine Verdict (audit and metrics read the
    same attributes)."""

    __slots__ = ("rule", "reason", "klass", "statements", "path")
    allowed = False
    verdict = "block"

    def __init__(self, rule: str, reason: str, klass: str = "unknown"):
        self.rule, self.reason, self.klass = rule, reason, klass
        self.statements = ()
        self.path = "protocol"


class Sink(Protocol):
    def send_client(self, data: bytes) -> None: ...
    def send_backend(self, data: bytes) -> None: ...
    def connect_backend(self) -> None: ...
    def start_client_tls(self) -> None: ...
    def close_client(self) -> None: ...
    def close_backend(self) -> None: ...
    def cancel(self, pid: int, key: bytes) -> None: ...


class PgSession(StartupPhase):
    """One client connection and its backend connection."""

    def __init__(self, app: Any, backend_name: str, sink: Sink, ctx: Any, *, tls: bool = False,
                 refuse: tuple[str, str] | None = None):
        self.app = app
        self.backend_name = backend_name
        self.sink = sink
        self.ctx = ctx
        self.tls_available = tls
        self.refuse = refuse                 # (sqlstate, message): answer the startup with it
        self.state = STARTUP
        self.client_tls = False
        self.agent: str | None = None
        self.session_id: str | None = None
        self.user: str | None = None
        self.database: str | None = None
        self.params: dict[str, str] = {}
        self._cbuf = b""                    # unconsumed client bytes
        self._cneed = 0                     # don't split again before this many bytes
        self._cpend: list[bytes] = []       # READY: chunks of an incomplete message
        self._cplen = 0
        self._early: list[bytes] = []       # client bytes that arrived before READY
        self._bbuf = b""
        self._bskip = 0
        self._bneed = 0
        self._scram = None                  # ScramServer during AUTH
        self._scram_step = 0
        self._login = None
        self._bauth: BackendAuth | None = None
        self._startup_out: list[bytes] = []
        # Cancel keys: the client only ever sees the proxy's own (pid, key).
        self.proxy_pid = secrets.randbits(31) or 1
        self.proxy_key = secrets.token_bytes(4)
        self.backend_key: tuple[int, bytes] | None = None
        # Relay state.
        self.txn = "I"                      # backend's last ReadyForQuery status
        self.sent_z = 0                     # Sync/Query/FunctionCall forwarded (each -> one Z)
        self.recv_z = 0                     # ReadyForQuery received
        self.skip = False                   # a Parse/Bind was blocked: drop until Sync
        self.stmts: dict[str, tuple[str, Any]] = {}    # prepared statement -> (sql, verdict)
        self.portals: dict[str, tuple[str, Any] | None] = {}
        self.inflight: deque = deque()      # [kind, sql, verdict, t0, rows, seg, error]
        self.decoys: dict[str, Any] = {}    # decoy token -> error bytes for the client
        self._decoy_n = 0
        self._copy_fail_pending: bytes | None = None
        self.copy_in = False                # monitor mode only: backend in COPY IN
        self._fatal_forwarded = False
        self.closed_reason: str | None = None
        self._cfg = None
        self._refresh()
        self.bm = app.metrics.backend(backend_name, DB_SYSTEM)

    # -- config snapshot (SIGHUP swaps app.config; re-read when it changed) --------------
    def _refresh(self) -> None:
        cfg = self.app.config
        self._cfg = cfg
        self.backend = cfg.backend(self.backend_name)
        self.monitor = cfg.monitor_mode
        self.max_message = cfg.limits.max_message_bytes
        self.engine = self.app.engine(self.backend_name)

    # =====================================================================================
    # events

    def client_data(self, data: bytes) -> None:
        if self.state == READY:
            self._ready_client(data)
        elif self.state == STARTUP:
            self._startup_data(data)
        elif self.state == AUTH:
            self._auth_data(data)
        elif self.state in (CONNECTING, BACKEND_AUTH):
            # Hold early pipelined messages until the backend is ready, within the limit.
            self._early.append(data)
            if sum(map(len, self._early)) > self.max_message:
                self._limit("max_message_bytes", "54000",
                            "too much data sent before the session was ready "
                            f"(limits.max_message_bytes = {self.max_message})")

    def client_tls_started(self) -> None:
        self.client_tls = True

    def client_lost(self, exc: BaseException | None = None) -> None:
        if self.state == CLOSED:
            return
        reason = "client closed the connection" if exc is None else f"client connection lost: {exc}"
        self._finish_inflight(error="client_disconnected")
        self._audit_event("disconnect", reason=reason)
        self.state = CLOSED
        if self.backend_key is not None or self._bauth is not None:
            self.sink.send_backend(M.terminate())
        self.sink.close_backend()

    def backend_connected(self) -> None:
        if self.state != CONNECTING:
            return
        self.state = BACKEND_AUTH
        b = self.backend
        pw = b.password.get_secret_value() if b.password is not None else None
        self._bauth = BackendAuth(b.username, pw)
        self.sink.send_backend(M.pg_startup_message(self._backend_params()))

    def backend_failed(self, reason: str) -> None:
        """The I/O layer could not reach the backend (connect/TLS failure, timeout)."""
        if self.state == CLOSED:
            return
        self.bm.backend_error()
        self._fatal("08001", f"sandbox-db-proxy could not connect to the database backend "
                    f"{self.backend_name!r}: {reason}", event="disconnect")

    def backend_lost(self, exc: BaseException | None = None) -> None:
        if self.state == CLOSED:
            return
        self.bm.backend_error()
        reason = "the database backend closed the connection" + (f" ({exc})" if exc else "")
        self._finish_inflight(error="backend_lost")
        if self._fatal_forwarded:
            self._audit_event("disconnect", reason=reason)
            self._close_both()
        else:
            self._fatal("08006", f"sandbox-db-proxy: {reason}; reconnect to continue",
                        event="disconnect")

    def idle_timeout(self) -> bool:
        """Called by the I/O layer when the client sent nothing for
        `limits.idle_timeout_seconds`. Returns True when the connection was closed (it is not
        while a statement is still running)."""
        if self.state == CLOSED:
            return True
        if self.state == READY and self.sent_z != self.recv_z:
            return False
        secs = self._cfg.limits.idle_timeout_seconds
        self._limit("idle_timeout_seconds", M.SQLSTATE["idle_session_timeout"],
                    f"terminating connection due to idle timeout ({secs:g} s, limits.idle_timeout_seconds)")
        return True

    def login_timeout(self) -> bool:
        """Called by the I/O layer when login (client authentication plus the backend
        login) has not finished in time; True when the connection was closed."""
        if self.state in (READY, CLOSED, DRAINING):
            return False
        if self.state in (CONNECTING, BACKEND_AUTH):
            self.bm.backend_error()
            self._fatal("08006", "sandbox-db-proxy: timed out logging in to the database backend",
                        event="disconnect")
        else:
            self._fatal(M.SQLSTATE["invalid_authorization_specification"],
                        "canceling authentication due to timeout", event="auth_failed")
        return True

    def close(self, reason: str) -> None:
        """Administrative close (session killed, drain, backend removed)."""
        if self.state == CLOSED:
            return
        self._fatal(M.SQLSTATE["admin_shutdown"], f"terminating connection: {reason}", event="disconnect")

    # -- backend data (dispatch; the login phase is in pg_startup.StartupPhase) --------
    def backend_data(self, data: bytes) -> None:
        if self.state == READY:
            self._ready_backend(data)
        elif self.state == BACKEND_AUTH:
            self._backend_auth_data(data)
        elif self.state == DRAINING:
            self._ready_backend(data)
            if self.state == DRAINING and self.sent_z == self.recv_z:
                self._send_fatal_now(self._deferred_fatal)

    # =====================================================================================
    # relay: client -> backend

    def _ready_client(self, data: bytes) -> None:
        if self._cpend:
            # A message is incomplete: collect chunks without copying until it can be whole
            # (joining on every chunk would be quadratic for a large Bind).
            self._cpend.append(data)
            self._cplen += len(data)
            if self._cplen < self._cneed:
                return
            buf = b"".join(self._cpend)
            self._cpend = []
        else:
            buf = data
        try:
            consumed, msgs, bad, need = pg_split_frontend(buf, self.max_message)
        except TooLargeError as exc:
            return self._limit("max_message_bytes", M.SQLSTATE["program_limit_exceeded"],
                               f"message too large: {exc} (limits.max_message_bytes)")
        except FrameError as exc:
            return self._protocol_error(f"invalid message: {exc}")
        self._cneed = need
        if consumed < len(buf):
            rest = buf[consumed:]
            self._cpend = [rest]
            self._cplen = len(rest)
        if self._cfg is not self.app.config:
            try:
                self._refresh()
            except (KeyError, ValueError, ImportError):
                # The backend left the configuration: the app closes its connections.
                return self.close("backend removed from the proxy configuration")
        out: list | None = None
        run = 0
        now = perf_counter()
        audit = self.app.audit
        for tag, start, end, a, b in msgs:
            if tag == "Q" or tag == "P":
                if self.skip:
                    # The backend would ignore it too (extended protocol error recovery).
                    out, run = self._cut(out, buf, run, start, end, None)
                    continue
                sql = a if tag == "Q" else b
                if sql and not (audit.fail_closed and audit.refuse):
                    t0 = perf_counter()
                    try:
                        v = self.engine.classify(sql)
                    except Exception:  # noqa: BLE001 -- fail closed
                        v = self._classify_failed()
                    else:
                        self.bm.classification(v.path, perf_counter() - t0)
                else:
                    v = self._classify(sql)
                if tag == "P" and a and len(self.stmts) >= MAX_PREPARED and a not in self.stmts:
                    v = Blocked("too-many-prepared-statements",
                                f"This connection already holds {MAX_PREPARED} named prepared statements; "
                                "Close some (or DEALLOCATE) before preparing more, or use the unnamed statement.")
                if v is None or v.allowed:
                    if tag == "Q":
                        self.inflight.append(["Q", sql, v, now, None, self.sent_z, None])
                        self.sent_z += 1
                    else:
                        self.stmts[a] = (sql, v)
                    continue
                protocol_refusal = isinstance(v, Blocked)
                if self.monitor and not protocol_refusal:
                    # Monitor mode: forwarded; audited once, when it completes (_finish).
                    # (Protocol-level refusals -- encoding, audit fail-closed, limits -- hold.)
                    if tag == "Q":
                        self.inflight.append(["Q", sql, v, now, None, self.sent_z, None])
                        self.sent_z += 1
                    else:
                        self.stmts[a] = (sql, v)
                    continue
                self._audit_block(v, sql, tag, monitor=False if protocol_refusal else None)
                out, run = self._cut(out, buf, run, start, end, self._decoy(tag, v, a if tag == "P" else None))
                if tag == "Q":
                    self.sent_z += 1
                else:
                    self.stmts.pop(a, None)
                    self.skip = True
            elif tag == "B":
                if self.skip:
                    out, run = self._cut(out, buf, run, start, end, None)
                    continue
                st = self.stmts.get(b)
                if st is None:
                    out, run = self._refuse_unknown(out, buf, run, start, end, "B", b)
                    continue
                portals = self.portals
                if len(portals) >= MAX_PREPARED and a not in portals:
                    portals.clear()         # only used for audit text; the backend drops
                                            # portals at transaction end anyway
                portals[a] = st
            elif tag == "E":
                if self.skip:
                    out, run = self._cut(out, buf, run, start, end, None)
                    continue
                st = self.portals.get(a)
                self.inflight.append(["E", st[0] if st else None, st[1] if st else None, now, None,
                                      self.sent_z, None])
            elif tag == "S":
                self.skip = False
                self.sent_z += 1
            elif tag == "D":
                if self.skip:
                    out, run = self._cut(out, buf, run, start, end, None)
                elif a == "S" and b not in self.stmts:
                    out, run = self._refuse_unknown(out, buf, run, start, end, "D", b)
            elif tag == "C":
                if self.skip:
                    out, run = self._cut(out, buf, run, start, end, None)
                elif a == "S":
                    self.stmts.pop(b, None)
                else:
                    self.portals.pop(b, None)
            elif tag == "H":
                pass                                  # Flush: harmless, always forwarded
            elif tag == "X":
                out, run = self._cut(out, buf, run, start, end, None)
                self._flush_out(out, buf, run, start)
                return self._terminate()
            elif tag == "F":
                if self.skip:
                    out, run = self._cut(out, buf, run, start, end, None)
                    continue
                v = Blocked("function-call-message",
                            "The FunctionCall protocol message calls a server function by OID without "
                            "SQL, so its effect cannot be checked; it is blocked. Call the function in "
                            "a SELECT statement instead (read-only functions are allowed).", "function")
                self._audit_block(v, None, "F", monitor=False)
                out, run = self._cut(out, buf, run, start, end, self._decoy("Q", v, None))
                self.sent_z += 1
            elif tag == "d" or tag == "c" or tag == "f":
                # COPY FROM STDIN data: never forwarded (COPY FROM is blocked and a
                # CopyInResponse is answered with CopyFail by the relay itself), except in
                # monitor mode while the backend is in COPY IN.
                if not self.copy_in:
                    out, run = self._cut(out, buf, run, start, end, None)
            else:
                self._flush_out(out, buf, run, start)
                return self._protocol_error(f"unsupported frontend message type '{tag}'")
        if out is None:
            if consumed:
                self.sink.send_backend(buf if consumed == len(buf) else buf[:consumed])
        else:
            self._flush_out(out, buf, run, consumed)
        if bad:
            try:
                pg_split_frontend(buf[consumed:], self.max_message)
            except TooLargeError as exc:
                return self._limit("max_message_bytes", M.SQLSTATE["program_limit_exceeded"],
                                   f"message too large: {exc} (limits.max_message_bytes)")
            except FrameError as exc:
                return self._protocol_error(f"invalid message: {exc}")

    @staticmethod
    def _cut(out, buf, run, start, end, replacement):
        """Replace buf[start:end] in the outgoing stream (None: drop it)."""
        if out is None:
            out = []
        if start > run:
            out.append(buf[run:start])
        if replacement is not None:
            out.append(replacement)
        return out, end

    def _flush_out(self, out, buf, run, upto) -> None:
        if out is None:
            if upto:
                self.sink.send_backend(buf if upto == len(buf) else buf[:upto])
            return
        if upto > run:
            out.append(buf[run:upto])
        if out:
            self.sink.send_backend(b"".join(out))

    def _classify(self, sql: str | None):
        """The engine's verdict, or a refusal when the text cannot be judged. Returns None
        for the empty query (the backend answers EmptyQueryResponse; nothing runs)."""
        if sql is None:
            return Blocked("invalid-encoding", "The statement text is not valid UTF-8, so it cannot be "
                           "checked; it is blocked. Send UTF-8 text (client_encoding UTF8).")
        if not sql:
            return None
        if self.app.audit.refuse:
            return Blocked("audit-unavailable", "The audit log cannot be written and audit.fail_closed is "
                           "set, so no statement is run until it is writable again. Retry later.")
        t0 = perf_counter()
        try:
            v = self.engine.classify(sql)
        except Exception:  # noqa: BLE001 -- fail closed on any engine failure
            return self._classify_failed()
        self.bm.classification(v.path, perf_counter() - t0)
        return v

    @staticmethod
    def _classify_failed():
        import sys
        exc = sys.exc_info()[1]
        return Blocked("engine-error", f"The statement could not be classified ({type(exc).__name__}), "
                       "so it is blocked. Simplify the statement or split it.")

    def _decoy(self, tag: str, v: Any, name: str | None) -> bytes:
        """A message of the same kind that the backend's raw parser rejects (42601)."""
        self._decoy_n += 1
        token = f"{DECOY_PREFIX}{self._decoy_n}__"
        self.decoys[token] = self._block_error(v)
        if len(self.decoys) > 10_000:       # stale entries (the decoy was skipped)
            self.decoys.pop(next(iter(self.decoys)))
        return M.query(token) if tag == "Q" else M.parse(name or "", token)

    def _block_error(self, v: Any) -> bytes:
        return M.error(M.SQLSTATE["read_only_sql_transaction"], v.reason or "statement blocked",
                       detail=f"Blocked by sandbox-db-proxy (rule: {v.rule}, class: {v.klass}). "
                              "The statement was not sent to the database.",
                       hint="This connection is read-only: send a single read-only statement "
                            "(SELECT, SHOW, EXPLAIN, ...).")

    def _refuse_unknown(self, out, buf, run, start, end, tag: str, name: str | None):
        what = f"prepared statement \"{name}\"" if name else "the unnamed prepared statement"
        v = Blocked("unknown-prepared-statement",
                    f"{_TXT[tag]} refers to {what}, which was not prepared (Parse) on this connection "
                    "through the proxy, so it is blocked. Prepare the statement with a Parse message "
                    "(your driver's prepare) first.")
        self._audit_block(v, None, tag, monitor=False)
        out, run = self._cut(out, buf, run, start, end, self._decoy("P", v, "__sdp_unknown__"))
        self.skip = True
        return out, run

    # =====================================================================================
    # relay: backend -> client

    def _ready_backend(self, data: bytes) -> None:
        # Hot path: one Rust scan per chunk; the chunk itself is what gets written on.
        bbuf = self._bbuf
        if bbuf:
            if len(bbuf) + len(data) < self._bneed:
                self._bbuf = bbuf + data
                return
            buf = bbuf + data
        else:
            buf = data
        try:
            fwd, self._bskip, self._bneed, events = pg_scan_backend(buf, self._bskip, MAX_INSPECTED)
        except FrameError as exc:
            return self._backend_protocol_error(str(exc))
        n = len(buf)
        self._bbuf = buf[fwd:] if fwd < n else b""
        if not events:
            if fwd:
                self.sink.send_client(buf if fwd == n else buf[:fwd])
            return
        out = None
        run = 0
        for tag, start, end, a, b, c in events:
            if tag == "Z":
                self.txn = a
                self.recv_z += 1
                self.copy_in = False
                if self.inflight or self.decoys:
                    self._finish_segment()
            elif tag == "C":
                inflight = self.inflight
                if inflight:
                    head = inflight[0]
                    if head[0] == "E":
                        head[4] = b
                        inflight.popleft()
                        self._finish(head)
                    else:
                        head[4] = (head[4] or 0) + (b or 0) if b is not None else head[4]
            elif tag == "E":
                if a in ("FATAL", "PANIC"):
                    self._fatal_forwarded = True
                if self.decoys and b == "42601":
                    rep = self._decoy_error(c)
                    if rep is not None:
                        out, run = self._cut(out, buf, run, start, end, rep)
                        continue
                if self._copy_fail_pending is not None:
                    rep, self._copy_fail_pending = self._copy_fail_pending, None
                    out, run = self._cut(out, buf, run, start, end, rep)
                    continue
                inflight = self.inflight
                if inflight and inflight[0][5] == self.recv_z:
                    head = inflight[0]
                    head[6] = b
                    if head[0] == "E":
                        inflight.popleft()
                        self._finish(head)
            elif tag == "I" or tag == "s":
                inflight = self.inflight
                if inflight and inflight[0][0] == "E":
                    self._finish(inflight.popleft())
            elif tag == "S":
                if self._param_violation(a, b):
                    return
            elif tag == "G":
                # COPY FROM STDIN reached the backend (the engine should have blocked it):
                # the client never sees CopyInResponse; the backend gets CopyFail and
                # answers with an error, which is replaced by the relay's own.
                out, run = self._cut(out, buf, run, start, end, None)
                if not self.monitor:
                    v = Blocked("copy-from-stdin", "COPY ... FROM STDIN writes into a table and is blocked. "
                                "Use COPY ... TO STDOUT or SELECT to read data.", "write")
                    self._audit_event("alert", reason="backend entered COPY IN mode; aborted with CopyFail")
                    self._copy_fail_pending = self._block_error(v)
                    self.sink.send_backend(M.copy_fail("COPY FROM STDIN is blocked by sandbox-db-proxy"))
                else:
                    out.append(buf[start:end])
                    self.copy_in = True
            elif tag == "W":
                self._flush_client(out, buf, run, start)
                return self._kill("backend entered COPY BOTH (replication) mode", "copy-both")
            elif tag == "K" or tag == "R" or tag == "v":
                out, run = self._cut(out, buf, run, start, end, None)   # never after startup
        if out is None:
            if fwd:
                self.sink.send_client(buf if fwd == n else buf[:fwd])
        else:
            self._flush_client(out, buf, run, fwd)

    def _flush_client(self, out, buf, run, upto) -> None:
        if out is None:
            if upto:
                self.sink.send_client(buf if upto == len(buf) else buf[:upto])
            return
        if upto > run:
            out.append(buf[run:upto])
        if out:
            self.sink.send_client(b"".join(out))

    def _decoy_error(self, message: str) -> bytes | None:
        i = message.find(DECOY_PREFIX)
        if i < 0:
            return None
        j = message.find("__", i + len(DECOY_PREFIX))
        if j < 0:
            return None
        return self.decoys.pop(message[i:j + 2], None)

    def _param_violation(self, name: str, value: str) -> bool:
        """Backstop checks on ParameterStatus. True when the session was killed."""
        n = name.lower()
        v = value.lower()
        if n in ("default_transaction_read_only", "transaction_read_only"):
            if v != "on" and not self.monitor:
                self._kill(f"the backend reports {name}={value}: the session is no longer read-only",
                           "read-only-disabled")
                return True
        elif n == "client_encoding":
            if _enc(v) not in UTF8_NAMES:
                self._kill(f"the backend reports client_encoding={value}; the relay only reads UTF8",
                           "client-encoding-changed")
                return True
        elif n == "standard_conforming_strings":
            if v != "on":
                # With it off, backslashes escape quotes in '...' and the relay's lexer
                # would no longer see statement boundaries the way the server does.
                self._kill(f"the backend reports standard_conforming_strings={value}",
                           "standard-conforming-strings-off")
                return True
        return False

    # =====================================================================================
    # audit of allowed statements

    def _finish_segment(self) -> None:
        """A ReadyForQuery ended segment `recv_z - 1`: every statement sent before it is done
        (Executes after an error were skipped by the backend)."""
        inflight = self.inflight
        rz = self.recv_z
        while inflight and inflight[0][5] < rz:
            e = inflight.popleft()
            if e[0] == "E" and e[6] is None and e[4] is None:
                e[6] = "skipped"
            self._finish(e)
        if self.sent_z == rz and self.decoys:
            self.decoys.clear()         # nothing in flight: remaining decoys were skipped

    def _finish(self, e: list) -> None:
        kind, sql, v, t0, rows, _seg, err = e
        dt = perf_counter() - t0
        bm = self.bm
        bm.query_seconds.observe(dt)
        if v is None:
            v, monitored, klass = "ALLOWED", False, "read"
        else:
            monitored = not v.allowed
            klass = v.klass
        bm.statement("monitored" if monitored else "allowed", klass)
        if err is None:
            if monitored:
                self.app.audit.statement(self.ctx, sql=sql, verdict=v, message=_MSG[kind], rows=rows,
                                         duration_ms=dt * 1000.0, monitor=True)
            else:
                # the hot path (issue 6): same record, built from pre-serialised pieces
                self.app.audit.allowed(self.ctx, sql, v, _MSG[kind], rows, dt * 1000.0)
        else:
            self.app.audit.statement(self.ctx, sql=sql, verdict=v, message=_MSG[kind], rows=rows,
                                     duration_ms=dt * 1000.0, monitor=monitored,
                                     **{"db.response.status_code": err})

    def _finish_inflight(self, error: str) -> None:
        while self.inflight:
            e = self.inflight.popleft()
            if e[6] is None:
                e[6] = error
            self._finish(e)

    def _audit_block(self, v: Any, sql: str | None, tag: str, monitor: bool | None = None) -> None:
        mon = self.monitor if monitor is None else monitor
        self.bm.statement("monitored" if mon else "blocked", v.klass or "unknown")
        if not mon:
            self.bm.block(v.rule)
        self.app.audit.statement(self.ctx, sql=sql, verdict=v, message=_TXT.get(tag, tag), monitor=mon)

    def _audit_event(self, event: str, **fields: Any) -> None:
        self.app.audit.event(self.ctx, event, **fields)

    # =====================================================================================
    # endings

    def _terminate(self) -> None:
        self._audit_event("disconnect", reason="client sent Terminate")
        self._finish_inflight(error="client_terminated")
        self.state = CLOSED
        self.sink.send_backend(M.terminate())
        self.sink.close_backend()
        self.sink.close_client()

    def _kill(self, reason: str, rule: str) -> None:
        """Engine backstop tripped: end the session, loudly."""
        self._audit_event("alert", rule=rule, reason=reason)
        self._send_fatal_now(M.fatal(M.SQLSTATE["read_only_sql_transaction"],
                                           f"sandbox-db-proxy closed the session: {reason}"))

    def _limit(self, limit: str, code: str, message: str) -> None:
        self.bm.limit(limit)
        self._audit_event("limit", limit=limit, reason=message)
        self._send_fatal_and_close(M.fatal(code, message))

    def _protocol_error(self, detail: str, limit: bool = False) -> None:
        if limit:
            self.bm.limit("max_message_bytes")
        self._audit_event("limit" if limit else "protocol_error", reason=detail)
        self._send_fatal_and_close(M.fatal(M.SQLSTATE["program_limit_exceeded" if limit else "protocol_violation"],
                                           f"sandbox-db-proxy: {detail}"))

    def _send_fatal_and_close(self, err: bytes) -> None:
        if self.state == READY and self.sent_z != self.recv_z:
            # Statements forwarded before the bad message are still running: answer them
            # first (DRAINING), then the error. Client input is no longer read.
            self.state = DRAINING
            self._deferred_fatal = err
            return
        self._send_fatal_now(err)

    def _fatal(self, code: str, message: str, event: str | None) -> None:
        if event is not None:
            self._audit_event(event, reason=message)
        self._send_fatal_now(M.fatal(code, message))

    def _send_fatal_now(self, err: bytes) -> None:
        if self.state == CLOSED:
            return
        self._finish_inflight(error="connection_closed")
        self.state = CLOSED
        self.sink.send_client(err)
        self._close_both()

    def _close_both(self) -> None:
        self.state = CLOSED
        if self.backend_key is not None:
            self.sink.send_backend(M.terminate())
        self.sink.close_backend()
        self.sink.close_client()
