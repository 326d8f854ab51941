"""PostgreSQL relay state machine (sans-I/O), protocol 3.0.

Events in (`client_data`, `backend_connected`, `backend_data`, `backend_failed`,
`backend_lost`, `client_lost`, `client_tls_started`, `idle_timeout`, `close`); commands out
through a `Sink` (`send_client`, `send_backend`, `connect_backend`, `start_client_tls`,
`close_client`, `close_backend`, `cancel`) plus audit records and metrics via the
`ProxyApp`. No sockets here: `server/postgres.py` is the I/O layer. Design notes and the
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
import struct
import time
from collections import deque
from typing import Any, Protocol

from sandbox_db_proxy._native import (FrameError, TooLargeError, pg_parse_startup, pg_scan_backend,
                                      pg_split_frontend)
from sandbox_db_proxy.auth.pg_auth import BackendAuth, BackendAuthError
from sandbox_db_proxy.auth.scram import MECHANISM, ScramError, ScramServer, Verifier, verifier_for_password
from sandbox_db_proxy.protocols import pg_messages as M

DB_SYSTEM = "postgresql"

# Phases.
STARTUP, AUTH, CONNECTING, BACKEND_AUTH, READY, CLOSED, DRAINING = range(7)

DECOY_PREFIX = "__sdp_blocked_"
# Biggest backend message the relay holds whole (ErrorResponse, ParameterStatus, ...); rows
# are never held. PostgreSQL's own limit for a message is 1 GB; an error text of 16 MB is
# already absurd.
MAX_INSPECTED = 16 * 1024 * 1024
# Authentication messages are small; refuse anything bigger before SCRAM runs.
MAX_AUTH_MESSAGE = 8192

# Startup parameters passed from the client to the backend (everything else, in particular
# `options`, which can carry `-c default_transaction_read_only=off`, is dropped).
PASS_PARAMS = {"application_name": "application_name", "datestyle": "DateStyle",
               "timezone": "TimeZone", "extra_float_digits": "extra_float_digits",
               "intervalstyle": "IntervalStyle"}
UTF8_NAMES = {"utf8", "unicode"}


def _enc(name: str) -> str:
    """Encoding names compare like PostgreSQL's pg_char_to_encoding: case-insensitive,
    non-alphanumerics ignored ('UTF-8', 'utf8', "'utf-8'" are all UTF8)."""
    return "".join(c for c in name.lower() if c.isalnum())

# Engine stand-in results for messages that are refused before classification.
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


def _cstr_at(body: bytes, at: int) -> tuple[bytes, int]:
    end = body.index(b"\0", at)
    return body[at:end], end + 1


class PgSession:
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
        self._scram: ScramServer | None = None
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

    def close(self, reason: str) -> None:
        """Administrative close (session killed, drain, backend removed)."""
        if self.state == CLOSED:
            return
        self._fatal(M.SQLSTATE["admin_shutdown"], f"terminating connection: {reason}", event="disconnect")

    # =====================================================================================
    # startup

    def _startup_data(self, data: bytes) -> None:
        buf = self._cbuf + data if self._cbuf else data
        try:
            pkt = pg_parse_startup(buf)
        except TooLargeError as exc:
            return self._protocol_error(f"startup packet too large: {exc}", limit=True)
        except FrameError as exc:
            return self._protocol_error(f"invalid startup packet: {exc}")
        if pkt is None:
            self._cbuf = buf
            return
        size, kind, a, b = pkt
        rest = buf[size:]
        self._cbuf = b""
        if kind == "ssl":
            if self.client_tls:
                return self._protocol_error("SSLRequest received twice")
            if rest:
                # Bytes sent after SSLRequest but before the TLS handshake would be read as if
                # they were encrypted (CVE-2021-23214): refuse.
                return self._protocol_error("unexpected data after SSLRequest")
            if self.tls_available:
                self.sink.send_client(b"S")
                self.sink.start_client_tls()
            else:
                self.sink.send_client(b"N")
            return
        if kind == "gss":
            if rest:
                return self._protocol_error("unexpected data after GSSENCRequest")
            self.sink.send_client(b"N")   # GSSAPI encryption is not offered
            return
        if kind == "cancel":
            self.sink.cancel(a, b)
            self.state = CLOSED
            self.sink.close_client()
            return
        self._startup_message(a, b, rest)

    def _startup_message(self, version: tuple[int, int], params: list[tuple[str, str]], rest: bytes) -> None:
        major, minor = version
        if major != 3:
            return self._fatal(M.SQLSTATE["feature_not_supported"],
                               f"unsupported frontend protocol {major}.{minor}: server supports 3.0",
                               event="protocol_error")
        p: dict[str, str] = {}
        unknown_pq: list[str] = []
        for k, v in params:
            if k.startswith("_pq_."):
                unknown_pq.append(k)
            else:
                p[k] = v
        self.params = p
        if self.refuse is not None:
            code, msg = self.refuse
            return self._fatal(code, msg, event=None)
        if self.backend.tls is not None and self.backend.tls.required and not self.client_tls:
            return self._fatal(M.SQLSTATE["invalid_authorization_specification"],
                               "this proxy requires TLS: connect with sslmode=require",
                               event="auth_failed")
        repl = p.get("replication")
        if repl is not None and repl.lower() not in ("false", "off", "no", "0"):
            return self._fatal(M.SQLSTATE["insufficient_privilege"],
                               "replication connections are not allowed through sandbox-db-proxy",
                               event="auth_failed")
        user = p.get("user")
        if not user:
            return self._fatal(M.SQLSTATE["invalid_authorization_specification"],
                               "no PostgreSQL user name specified in startup packet", event="auth_failed")
        self.user = user
        db = self._choose_database(p.get("database") or user, user)
        if db is None:
            allowed = ", ".join(self.backend.allowed_databases or ()) or "(none configured)"
            return self._fatal(M.SQLSTATE["invalid_catalog_name"],
                               f"database \"{p.get('database') or user}\" is not served by this proxy; "
                               f"allowed: {allowed}", event="auth_failed")
        self.database = db
        self.ctx.update(database=db)
        enc = p.get("client_encoding")
        if enc is not None and _enc(enc) not in UTF8_NAMES | {"auto", "sqlascii"}:
            # The relay reads statement text as UTF-8; other client encodings (SJIS, BIG5,
            # GBK, ...) can hide quote or backslash bytes inside multibyte characters.
            return self._fatal(M.SQLSTATE["feature_not_supported"],
                               f"client_encoding {enc} is not supported by sandbox-db-proxy: use UTF8",
                               event="protocol_error")
        out = []
        if minor != 0 or unknown_pq:
            out.append(M.negotiate_protocol_version(0, unknown_pq))
        login = self.app.lookup_login(self.backend_name, user)
        if login is not None and login.backends is not None and self.backend_name not in login.backends:
            login = None
        verifier = None
        if login is not None:
            try:
                if login.scram_verifier:
                    verifier = Verifier.parse(login.scram_verifier)
                elif login.password is not None:
                    verifier = verifier_for_password(login.password)
            except ScramError:
                verifier = None
        self._login = login if verifier is not None else None
        self._scram = ScramServer(verifier, mock_user=user)
        self._scram_step = 0
        self.state = AUTH
        out.append(M.auth(10, MECHANISM.encode() + b"\0\0"))
        self.sink.send_client(b"".join(out))
        if rest:
            self._auth_data(rest)

    def _choose_database(self, requested: str, user: str) -> str | None:
        b = self.backend
        if b.database_allowed(requested):
            return requested
        # libpq and most drivers default the database name to the user name; map that
        # default to the configured database instead of refusing it.
        if requested == user and b.database:
            return b.database
        return None

    # -- client authentication (SCRAM-SHA-256, protocol "SASL Authentication") ----------
    def _auth_data(self, data: bytes) -> None:
        buf = self._cbuf + data if self._cbuf else data
        try:
            consumed, msgs, bad, _need = pg_split_frontend(buf, MAX_AUTH_MESSAGE)
            if bad:
                pg_split_frontend(buf[consumed:], MAX_AUTH_MESSAGE)
        except FrameError as exc:
            return self._protocol_error(f"invalid authentication message: {exc}")
        self._cbuf = buf[consumed:]
        for tag, start, end, _a, _b in msgs:
            if self.state != AUTH:
                # Messages pipelined after the password (e.g. by a driver that does not
                # wait for AuthenticationOk) are held for READY.
                self._early.append(buf[start:end])
                continue
            if tag != "p":
                return self._protocol_error(f"expected a password message, got '{tag}'")
            self._auth_step(buf[start + 5:end])
        if self.state != AUTH and self._cbuf:
            self._early.append(self._cbuf)
            self._cbuf = b""

    def _auth_step(self, body: bytes) -> None:
        scram = self._scram
        try:
            if self._scram_step == 0:
                mech, at = _cstr_at(body, 0)
                if mech.decode() != MECHANISM:
                    raise ScramError(f"unsupported SASL mechanism {mech.decode(errors='replace')}")
                (n,) = struct.unpack_from("!i", body, at)
                data = body[at + 4:at + 4 + n] if n >= 0 else b""
                if n < 0 or len(data) != n:
                    raise ScramError("malformed SASLInitialResponse")
                server_first = scram.first(data.decode())
                self._scram_step = 1
                self.sink.send_client(M.auth(11, server_first.encode()))
            else:
                server_final = scram.final(body.decode())
                self._auth_ok(server_final)
        except (ScramError, ValueError, struct.error, UnicodeDecodeError) as exc:
            self._auth_failed(str(exc))

    def _auth_failed(self, detail: str) -> None:
        self.bm.connection("auth_failed")
        self._audit_event("auth_failed", reason=f"SCRAM-SHA-256 authentication failed for user "
                          f"{self.user!r}: {detail}", **{"user.name": self.user})
        self._send_fatal_now(M.fatal(M.SQLSTATE["invalid_password"],
                                           f"password authentication failed for user \"{self.user}\""))

    def _auth_ok(self, server_final: str) -> None:
        login = self._login
        if login.session_id is not None:
            # Agent sessions (issue 5, sessions/manager.py): the session's allowed_ips and
            # max_connections, checked once the password is proven and before the backend is
            # contacted. No session manager = no session login (default deny).
            sessions = getattr(self.app, "sessions", None)
            why = (sessions.admit(login, self.ctx.client_address, self.sink) if sessions is not None
                   else "agent sessions are not available on this proxy")
            if why:
                self.bm.connection("auth_failed")
                self._audit_event("auth_failed", reason=why, agent=login.agent,
                                  **{"user.name": self.user, "session.id": login.session_id})
                self._send_fatal_now(M.fatal(M.SQLSTATE["invalid_authorization_specification"],
                                             f"login refused: {why}"))
                return
        self.agent = login.agent
        self.session_id = login.session_id
        self.ctx.update(agent=login.agent, session_id=login.session_id)
        self._audit_event("auth_ok", **{"user.name": self.user})
        self.sink.send_client(M.auth(12, server_final.encode()) + M.auth(0))
        self.state = CONNECTING
        self.sink.connect_backend()

    def _backend_params(self) -> list[tuple[str, str]]:
        cfg = self._cfg
        b = self.backend
        timeout = cfg.statement_timeout_ms(b)
        # Engine backstop (docs/ARCHITECTURE.md guard 3): the session starts read-only; the
        # strings and encoding settings the relay's lexer assumes are pinned as well.
        opts = []
        if not self.monitor:
            opts.append("-c default_transaction_read_only=on")
        opts.append(f"-c statement_timeout={int(timeout)}")
        opts.append("-c standard_conforming_strings=on")
        params = [("user", b.username), ("database", self.database or b.database or b.username),
                  ("options", " ".join(opts)), ("client_encoding", "UTF8")]
        for k, v in self.params.items():
            name = PASS_PARAMS.get(k.lower())
            if name is not None:
                params.append((name, v[:200]))
        return params

    # -- backend login --------------------------------------------------------------------
    def backend_data(self, data: bytes) -> None:
        if self.state == READY:
            self._ready_backend(data)
        elif self.state == BACKEND_AUTH:
            self._backend_auth_data(data)
        elif self.state == DRAINING:
            self._ready_backend(data)
            if self.state == DRAINING and self.sent_z == self.recv_z:
                self._send_fatal_now(self._deferred_fatal)

    def _scan(self, data: bytes):
        buf = self._bbuf + data if self._bbuf else data
        fwd, self._bskip, self._bneed, events = pg_scan_backend(buf, self._bskip, MAX_INSPECTED)
        self._bbuf = buf[fwd:] if fwd < len(buf) else b""
        return buf, fwd, events

    def _backend_auth_data(self, data: bytes) -> None:
        try:
            buf, fwd, events = self._scan(data)
        except FrameError as exc:
            return self._backend_protocol_error(str(exc))
        out = self._startup_out
        run = 0
        for tag, start, end, a, b, c in events:
            if start > run:
                out.append(buf[run:start])      # e.g. NoticeResponse: passed on
            run = end
            if tag == "R":
                try:
                    reply = self._bauth.on_request(a, b)
                except BackendAuthError as exc:
                    return self._backend_login_failed("28000", str(exc))
                if reply is not None:
                    self.sink.send_backend(reply)
            elif tag == "E":
                return self._backend_login_failed(b, c)
            elif tag == "S":
                if self._param_violation(a, b):
                    return
                out.append(buf[start:end])
            elif tag == "K":
                self.backend_key = (a, b)
                out.append(M.key_data(self.proxy_pid, self.proxy_key))
            elif tag == "Z":
                if not self._bauth.done:
                    return self._backend_login_failed("08P01", "backend became ready without authenticating")
                self.txn = a
                out.append(buf[start:end])
                self._startup_out = []
                self.sink.send_client(b"".join(out))
                self.state = READY
                # Anything after ReadyForQuery in this chunk is relay traffic: scan it again.
                tail = buf[end:]
                self._bbuf, self._bskip, self._bneed = b"", 0, 0
                if tail:
                    self._ready_backend(tail)
                if self._early and self.state == READY:
                    early, self._early = b"".join(self._early), []
                    self._ready_client(early)
                return
            # 'v' NegotiateProtocolVersion and anything else inspected: not for the client.
        if fwd > run:
            out.append(buf[run:fwd])

    def _backend_login_failed(self, code: str, message: str) -> None:
        self.bm.backend_error()
        self._fatal(code or "08006", f"sandbox-db-proxy could not log in to the database backend "
                    f"{self.backend_name!r}: {message}", event="disconnect")

    def _backend_protocol_error(self, detail: str) -> None:
        self.bm.backend_error()
        self._audit_event("protocol_error", reason=f"invalid data from the database backend: {detail}")
        self._send_fatal_now(M.fatal(M.SQLSTATE["protocol_violation"],
                                           "sandbox-db-proxy received invalid data from the database backend"))

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
            self._refresh()
        out: list | None = None
        run = 0
        now = time.perf_counter()
        for tag, start, end, a, b in msgs:
            if tag == "Q" or tag == "P":
                if self.skip:
                    # The backend would ignore it too (extended protocol error recovery).
                    out, run = self._cut(out, buf, run, start, end, None)
                    continue
                sql = a if tag == "Q" else b
                v = self._classify(sql)
                if v is None or v.allowed:
                    if tag == "Q":
                        self.inflight.append(["Q", sql, v, now, None, self.sent_z, None])
                        self.sent_z += 1
                    else:
                        self.stmts[a] = (sql, v)
                    continue
                if self.monitor:
                    # Monitor mode: forwarded; audited once, when it completes (_finish).
                    if tag == "Q":
                        self.inflight.append(["Q", sql, v, now, None, self.sent_z, None])
                        self.sent_z += 1
                    else:
                        self.stmts[a] = (sql, v)
                    continue
                self._audit_block(v, sql, tag)
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
                self.portals[a] = st
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
        t0 = time.perf_counter()
        try:
            v = self.engine.classify(sql)
        except Exception as exc:  # noqa: BLE001 -- fail closed on any engine failure
            return Blocked("engine-error", f"The statement could not be classified ({type(exc).__name__}), "
                           "so it is blocked. Simplify the statement or split it.")
        self.bm.classification(v.path, time.perf_counter() - t0)
        return v

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
        if self._bbuf and len(self._bbuf) + len(data) < self._bneed:
            self._bbuf += data
            return
        try:
            buf, fwd, events = self._scan(data)
        except FrameError as exc:
            return self._backend_protocol_error(str(exc))
        if not events:
            if fwd:
                self.sink.send_client(buf if fwd == len(buf) else buf[:fwd])
            return
        out = None
        run = 0
        for tag, start, end, a, b, c in events:
            if tag == "Z":
                self.txn = a
                self.recv_z += 1
                self.copy_in = False
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
        dt = time.perf_counter() - t0
        bm = self.bm
        bm.query_seconds.observe(dt)
        monitored = v is not None and not v.allowed
        bm.statement("monitored" if monitored else "allowed", v.klass if v is not None else "read")
        self.app.audit.statement(self.ctx, sql=sql, verdict=v if v is not None else "ALLOWED",
                                 message="Query" if kind == "Q" else "Execute", rows=rows,
                                 duration_ms=dt * 1000.0, monitor=monitored,
                                 **({"db.response.status_code": err} if err else {}))

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
