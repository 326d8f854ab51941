"""The MySQL / MariaDB relay as a sans-I/O state machine (issue 4; docs/mysql-relay.md).

Events in -- `start()`, `client_data(bytes)`, `backend_data(bytes)`, `client_tls_done()`,
`backend_connected()`, `backend_failed(reason)`, `backend_tls_done()`, `client_closed()`,
`backend_closed(reason)`, `kill(reason)`, `idle_timeout()` -- and commands out, through the
`RelayIO` the server layer passes in (`write_client`, `write_backend`, `start_client_tls`,
`connect_backend`, `start_backend_tls`, `pause_client`, `resume_client`, `close`). No sockets
here, so every path is testable without a network.

Phases: LOGIN (protocols/mysql_login.py: the proxy's own handshake, client auth, backend
login, read-only backstop) then COMMAND. In COMMAND the protocol is strictly
request/response (MySQL dev docs "Command Phase"): the relay forwards one command, then
waits for the Rust `MysqlResponseScanner` to say its response is complete before it looks
at the next one. Client packets that arrive meanwhile wait in `pending` (reading pauses if
that queue grows), so a blocked command's ERR always comes in order and with the sequence
id the client expects.

Each command (first payload byte) is handled by default deny:
- COM_QUERY / COM_STMT_PREPARE: the text goes through the verdict engine (the engine blocks a
  multi-statement text unless every statement passes). Blocked -> ERR 1792 / SQLSTATE 25006
  with the engine's reason; the backend never sees it.
- COM_STMT_EXECUTE / FETCH / RESET / CLOSE / SEND_LONG_DATA: only for statement ids whose
  PREPARE passed and that the backend confirmed (ids are the backend's, passed through).
- COM_INIT_DB: only for `allowed_databases`. COM_PING, COM_QUIT, COM_FIELD_LIST,
  COM_STATISTICS, COM_SET_OPTION, COM_RESET_CONNECTION (the backstop is re-applied before the
  client sees its OK): relayed.
- Everything else (COM_CHANGE_USER, COM_PROCESS_KILL, COM_SHUTDOWN, COM_BINLOG_DUMP*, ...,
  unknown bytes): ERR + audit, never forwarded, also in monitor mode.

Server responses are forwarded in bulk, one write per received chunk; the scanner walks the
same bytes without copying rows. A LOCAL INFILE request (0xfb) is never forwarded: the relay
answers the server with an empty packet ("no file") and the client gets ERR 1148.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any, Protocol

from sandbox_db_proxy import _native as N
from sandbox_db_proxy.audit import ConnContext
from sandbox_db_proxy.protocols import mysql_consts as C
from sandbox_db_proxy.protocols.mysql_login import B_AUTH, B_GREETING, B_TLS, L_BACKEND, L_TLS, LoginPhase

log = logging.getLogger("sandbox_db_proxy.mysql")

P_LOGIN, P_COMMAND = 0, 1
PRE_AUTH_MAX_PACKET = 1 << 20      # a HandshakeResponse41 is small; refuse megabytes before login
PENDING_PAUSE = 64                 # queued client packets before client reading pauses

_R_QUERY, _R_PREPARE, _R_EXECUTE, _R_FETCH = C.R_QUERY, C.R_PREPARE, C.R_EXECUTE, C.R_FETCH
# `USE db` / `USE `db``: anything else starting with USE (comments, several statements) is
# refused rather than guessed at (MySQL manual "USE Statement"; identifiers: "Schema Object Names").
_USE_RE = re.compile(r"\s*use\s+(`(?:[^`]|``)+`|[A-Za-z0-9_$]+)\s*;?\s*", re.I)
_EV_DONE, _EV_HOLD = C.EV_DONE, C.EV_HOLD
_END_PREPARED, _END_ERR = C.END_PREPARED, C.END_ERR
_READ_ONLY_CODE, _READ_ONLY_STATE = C.ER_READ_ONLY


class RelayIO(Protocol):
    def write_client(self, data: bytes) -> None: ...
    def write_backend(self, data: bytes) -> None: ...
    def start_client_tls(self, leftover: bytes) -> None: ...
    def connect_backend(self) -> None: ...
    def start_backend_tls(self) -> None: ...
    def pause_client(self) -> None: ...
    def resume_client(self) -> None: ...
    def close(self) -> None: ...


@dataclass
class BackendInfo:
    """What the proxy knows about a backend from its last handshake, shared by the
    connections of one listener: the proxy's own greeting mirrors it (version, layout
    capabilities, charset) so clients see the server they will really talk to."""
    server_version: bytes = b"5.5.5-10.11.0-MariaDB"
    capabilities: int = C.PROXY_CAPABILITIES | C.CLIENT_SSL
    charset: int = 45  # utf8mb4_general_ci
    flavor: str = "mariadb"
    learned: bool = False

    def learn(self, version: bytes, caps: int, charset: int, flavor: str) -> None:
        self.server_version, self.capabilities, self.charset, self.flavor = version, caps, charset, flavor
        self.learned = True

    @property
    def major_version(self) -> int:
        v = self.server_version.decode("latin-1")
        if v.startswith("5.5.5-"):
            v = v[6:]
        head = v.split(".", 1)[0]
        return int(head) if head.isdigit() else 0


@dataclass
class SessionOptions:
    conn_id: int
    peer: tuple[str | None, int | None]
    local: tuple[str | None, int | None] = (None, None)
    tls_available: bool = False
    tls_required: bool = False
    preferred_plugin: str = "mysql_native_password"
    fast_cache: set = field(default_factory=set)


class MySQLSession(LoginPhase):
    def __init__(self, app: Any, backend_name: str, io: RelayIO, info: BackendInfo, opts: SessionOptions):
        self.app = app
        self.backend_name = backend_name
        self.backend = app.config.backend(backend_name)
        self.io = io
        self.info = info
        self.conn_id = opts.conn_id
        self.tls_context_available = opts.tls_available
        self.tls_required = opts.tls_required
        self.preferred_plugin = opts.preferred_plugin
        self.fast_cache = opts.fast_cache
        self.max_message = app.config.limits.max_message_bytes
        self.cdec = N.MysqlPacketDecoder(PRE_AUTH_MAX_PACKET)
        self.bdec = None
        self.scan = N.MysqlResponseScanner(True)
        self.bm = app.metrics.backend(backend_name, "mysql")
        self.ctx = ConnContext(backend_name, info.flavor, client_address=opts.peer[0],
                               client_port=opts.peer[1], server_address=opts.local[0],
                               server_port=opts.local[1])
        self.flavor = info.flavor
        # login state (mysql_login.py)
        self.client_tls = False
        self.client_caps = 0
        self.client_charset = info.charset
        self.client_max_packet = C.MAX_PACKET
        self.client_attrs: list = []
        self.username = ""
        self.requested_db: str | None = None
        self.database: str | None = None
        self.agent: str | None = None
        self.session_id: str | None = None
        self.login = None
        self.sauth = None
        self.bauth = None
        self.lstage = 0
        self.bstage = 0
        self.cseq = 0
        self.bseq = 0
        # command phase
        self.phase = P_LOGIN
        self.closed = False
        self.busy = False
        self.pending: deque = deque()
        self.paused = False
        self.stmts: dict[int, tuple] = {}
        self.last_stmt: int | None = None
        self.held = b""
        self.forward = True
        self.capture: list | None = None
        self.started = False          # some bytes of the current response reached the client
        self.cur: tuple | None = None  # (sql, verdict, message, t0)
        self.resp_seq = 1
        self.after = None             # callback(info) after the current response
        self.internal = False
        self.infile: tuple | None = None
        self._setup_queue: list = []
        self._setup_check = None
        self._setup_done = None
        self._setup_status = 0

    # ------------------------------------------------------------------ lifecycle events
    def start(self) -> None:
        self.app.audit.event(self.ctx, "connect")
        self._send_greeting()

    def client_closed(self) -> None:
        if not self.closed:
            self._close("client closed the connection")

    def backend_closed(self, reason: str = "") -> None:
        if self.closed:
            return
        why = f"the database closed the connection{': ' + reason if reason else ''}"
        if self.phase != P_COMMAND:
            self.bm.backend_error()
            self._fail_backend_login(why, C.CR_SERVER_LOST)
            return
        self.bm.backend_error()
        if self.busy and not self.started and not self.internal:
            self.io.write_client(N.mysql_err(self.resp_seq & 0xFF, *C.CR_SERVER_LOST,
                                             f"Lost connection to the database during query ({why})"))
        self.app.audit.event(self.ctx, "protocol_error", side="backend", reason=why)
        self._close(why)

    def kill(self, reason: str) -> None:
        """Closed by the proxy (drain, session destroyed, backend removed)."""
        if self.closed:
            return
        if self.phase == P_COMMAND and not (self.busy and self.started):
            # Idle: sequence id 1 makes the ERR read as the answer to the client's next
            # command (a 0 reads as "server lost" in PyMySQL); busy: the pending response.
            seq = self.resp_seq if self.busy else 1
            self.io.write_client(N.mysql_err(seq & 0xFF, 1927, "70100",
                                             f"Connection closed by sandbox-db-proxy: {reason}"))
        self._close(reason)

    def idle_timeout(self, seconds: float) -> None:
        if self.closed:
            return
        msg = (f"The client was disconnected by sandbox-db-proxy because of inactivity "
               f"(limits.idle_timeout_seconds = {seconds:g}); reconnect to continue.")
        if self.phase == P_COMMAND and not self.busy:
            self.io.write_client(N.mysql_err(1, *C.ER_CLIENT_INTERACTION_TIMEOUT, msg))
        self.bm.limit("idle_timeout_seconds")
        self.app.audit.event(self.ctx, "limit", limit="idle_timeout_seconds", reason=msg)
        self._close("idle timeout")

    def login_timeout(self, seconds: float) -> None:
        if self.closed or self.phase == P_COMMAND:
            return
        msg = f"sandbox-db-proxy: login did not complete within {seconds:g} seconds"
        self.io.write_client(N.mysql_err(self.cseq & 0xFF, *C.ER_UNKNOWN_ERROR, msg))
        self.bm.limit("login_timeout")
        self.app.audit.event(self.ctx, "limit", limit="connect_timeout_seconds", reason=msg)
        self._close("login timeout")

    def _close(self, reason: str, audit: bool = True) -> None:
        if self.closed:
            return
        self.closed = True
        self.pending.clear()
        self.app.audit.event(self.ctx, "disconnect", reason=reason)
        self.io.close()

    def _protocol_error(self, detail: str, err: tuple[int, str], client_msg: str) -> None:
        """A client broke the protocol: clear ERR, audit, close (the stream cannot be resynced)."""
        seq = 0 if self.phase == P_COMMAND else self.cseq
        self.io.write_client(N.mysql_err(seq & 0xFF, err[0], err[1], f"{client_msg} (sandbox-db-proxy: {detail})"))
        self.app.audit.event(self.ctx, "protocol_error", side="client", reason=detail)
        self._close(f"protocol error: {detail}")

    def _too_large(self, exc: Exception) -> None:
        limit = self.max_message if self.phase == P_COMMAND else PRE_AUTH_MAX_PACKET
        msg = (f"Got a packet bigger than the proxy's limit of {limit} bytes "
               f"(limits.max_message_bytes): {exc}")
        seq = 0 if self.phase == P_COMMAND else self.cseq
        self.io.write_client(N.mysql_err(seq & 0xFF, *C.ER_NET_PACKET_TOO_LARGE, msg))
        self.bm.limit("max_message_bytes")
        self.app.audit.event(self.ctx, "limit", limit="max_message_bytes", reason=msg)
        self._close("packet too large")

    # ------------------------------------------------------------------ client bytes
    def client_data(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            packets = self.cdec.feed(data)
        except N.TooLargeError as exc:
            self._too_large(exc)
            return
        except N.NativeError as exc:
            self._protocol_error(str(exc), C.ER_NET_PACKETS_OUT_OF_ORDER if "order" in str(exc)
                                 else C.ER_MALFORMED_PACKET, "Malformed communication packet")
            return
        if not packets:
            return
        if self.phase == P_COMMAND:
            if self.busy or self.pending:
                self._queue(packets)
                return
            if len(packets) == 1:
                seq, payload, nseq = packets[0]
                raw = data if (len(data) == len(payload) + 4 and not self.cdec.buffered) else None
                self._command(seq, payload, raw, nseq)
            else:
                self._queue(packets)
            return
        self._login_data(packets)

    def _login_data(self, packets: list) -> None:
        for i, (seq, payload, _n) in enumerate(packets):
            if self.closed:
                return
            if self.lstage == L_BACKEND or self.phase == P_COMMAND:
                self._queue(packets[i:])   # pipelined before the login OK: run after it
                return
            self._login_packet(seq, payload)
            if self.lstage == L_TLS:
                # Everything after the SSLRequest is the TLS handshake (the client does not
                # wait for an answer, so its ClientHello can share the chunk): hand it over.
                rest = b"".join(N.mysql_frame(p, s) for s, p, _ in packets[i + 1:])
                try:
                    rest += self.cdec.take_raw()
                except N.NativeError as exc:
                    self._protocol_error(str(exc), C.ER_MALFORMED_PACKET, "Malformed SSLRequest")
                    return
                self.io.start_client_tls(rest)
                return

    def _queue(self, packets: list) -> None:
        self.pending.extend(packets)
        if len(self.pending) > PENDING_PAUSE and not self.paused:
            self.paused = True
            self.io.pause_client()
        if not self.busy and self.phase == P_COMMAND:
            self._drain_pending()

    def _drain_pending(self) -> None:
        pending = self.pending
        while pending and not self.busy and not self.closed:
            seq, payload, nseq = pending.popleft()
            self._command(seq, payload, None, nseq)
        if self.paused and len(pending) <= PENDING_PAUSE // 2 and not self.closed:
            self.paused = False
            self.io.resume_client()

    def _enter_command_phase(self) -> None:
        self.phase = P_COMMAND
        self.cdec.set_max_payload(self.max_message)
        # Logged in and hardened: the native relay takes both sockets over when it can
        # (server/native.py); commands pipelined behind the login go with them.
        go = getattr(self.io, "go_native", None)
        if go is not None and not self.busy and not self.closed and not self.client_tls \
                and not self.app.config.monitor_mode:
            try:
                initial = b"".join(N.mysql_frame(p, q) for q, p, _n in self.pending) + self.cdec.take_raw()
            except N.NativeError:
                initial = None
            if initial is not None and go(initial):
                self.pending.clear()
                return
        if self.pending:
            self._drain_pending()

    # ------------------------------------------------------------------ commands
    def _command(self, seq: int, payload: bytes, raw: bytes | None, nseq: int = 1) -> None:
        # The response continues the command's sequence: 1, or more after a >16 MB command.
        self.resp_seq = nseq & 0xFF
        if seq != 0:
            self._protocol_error(f"command packet with sequence id {seq}, expected 0",
                                 C.ER_NET_PACKETS_OUT_OF_ORDER, "Got packets out of order")
            return
        if not payload:
            self._protocol_error("empty command packet", C.ER_MALFORMED_PACKET, "Malformed communication packet")
            return
        cmd = payload[0]
        if cmd == C.COM_QUERY:
            self._com_query(payload, raw)
        elif cmd == C.COM_STMT_EXECUTE:
            # hot path (sysbench, connectors with server-side prepared statements)
            entry = self.stmts.get(int.from_bytes(payload[1:5], "little")) if len(payload) >= 5 else None
            if entry is None:
                self._com_stmt(payload, raw, cmd)
            else:
                self._forward(payload, raw, _R_EXECUTE, entry[0], entry[1], "COM_STMT_EXECUTE", perf_counter())
        else:
            handler = _DISPATCH.get(cmd)
            if handler is None:
                self._refuse_command(cmd)
            else:
                handler(self, payload, raw)

    def _forward(self, payload: bytes, raw: bytes | None, kind: int, sql: str | None, verdict: Any,
                 message: str, t0: float) -> None:
        self.scan.expect(kind, self.resp_seq)
        self.busy = True
        self.started = False
        self.cur = (sql, verdict, message, t0)
        self.io.write_backend(raw if raw is not None else N.mysql_frame(payload, 0))

    def _classify(self, payload: bytes, message: str) -> tuple[str | None, Any, float] | None:
        """Decode and classify a statement; sends the ERR and returns None when blocked."""
        try:
            sql = payload[1:].decode("utf-8")
        except UnicodeDecodeError:
            # The server decodes in the connection charset; the engine can only judge text it
            # reads exactly as the server will. Multi-byte charsets whose trail bytes include
            # '\\' or quotes (GBK, SJIS, Big5) are never valid UTF-8, so this also closes the
            # charset-confusion class of quote escapes.
            self._block_raw(message, None, "mysql_non_utf8_text",
                            f"The {message} text is not valid UTF-8, so the proxy cannot check it. "
                            "Send statements as UTF-8 (e.g. connect with charset utf8mb4).")
            return None
        app = self.app
        if app.audit.refuse:
            self._block_raw(message, sql, "audit_unavailable",
                            "The audit log cannot be written and audit.fail_closed is on, so the proxy "
                            "refuses statements until it recovers; retry later.", klass="unknown")
            return None
        t0 = perf_counter()
        verdict = app.engine(self.backend_name).classify(sql)
        self.bm.classification(verdict.path, perf_counter() - t0)
        if not verdict.allowed:
            if not app.config.monitor_mode:
                self.io.write_client(N.mysql_err(self.resp_seq, _READ_ONLY_CODE, _READ_ONLY_STATE, verdict.reason))
                app.audit.statement(self.ctx, sql=sql, verdict=verdict, message=message)
                self.bm.statement("blocked", verdict.klass)
                self.bm.block(verdict.rule)
                if message == "COM_STMT_PREPARE":
                    self.last_stmt = None
                return None
            self.bm.statement("monitored", verdict.klass)
        return sql, verdict, t0

    def _com_query(self, payload: bytes, raw: bytes | None) -> None:
        r = self._classify(payload, "COM_QUERY")
        if r is None:
            return
        sql, verdict, t0 = r
        for st in verdict.statements:
            if st.verbs[:1] == ("USE",):        # also inside a multi-statement text
                if not self._use_allowed(sql, verdict):
                    return
                break
        self._forward(payload, raw, _R_QUERY, sql, verdict, "COM_QUERY", t0)

    def _com_prepare(self, payload: bytes, raw: bytes | None) -> None:
        r = self._classify(payload, "COM_STMT_PREPARE")
        if r is None:
            return
        sql, verdict, t0 = r
        self._forward(payload, raw, _R_PREPARE, sql, verdict, "COM_STMT_PREPARE", t0)

    def _use_allowed(self, sql: str, verdict: Any) -> bool:
        """`USE db` switches databases like COM_INIT_DB: same allowed_databases check."""
        m = _USE_RE.fullmatch(sql)
        db = None
        if m and len(verdict.statements) == 1:
            db = m.group(1)
            if db.startswith("`"):
                db = db[1:-1].replace("``", "`")
        backend = self.app.config.backend(self.backend_name)
        if db is not None and backend.database_allowed(db):
            self.after = lambda info, db=db: self._db_switched(info, db)
            return True
        name = db if db is not None else "(unparsed)"
        self._block_raw("COM_QUERY", sql, "mysql_database_not_allowed",
                        f"Switching to database {name} is not allowed through this proxy; it allows "
                        f"{self._allowed_db_text()}. Query tables of the allowed database instead.",
                        err=C.ER_DBACCESS_DENIED, klass="session")
        return False

    def _db_switched(self, info: tuple, db: str) -> None:
        if info[C.S_KIND] != C.END_ERR:
            self.database = db
            self.ctx.update(database=db)

    def _stmt_entry(self, payload: bytes) -> tuple[int, tuple | None]:
        if len(payload) < 5:
            return -1, None
        sid = int.from_bytes(payload[1:5], "little")
        entry = self.stmts.get(sid)
        if entry is None and sid == 0xFFFFFFFF and self.last_stmt is not None:
            # MariaDB: -1 = the statement prepared last (only if that PREPARE passed here)
            entry = self.stmts.get(self.last_stmt)
        return sid, entry

    def _com_stmt(self, payload: bytes, raw: bytes | None, cmd: int) -> None:
        sid, entry = self._stmt_entry(payload)
        name = C.command_name(cmd)
        if entry is None:
            if cmd in (C.COM_STMT_CLOSE, C.COM_STMT_SEND_LONG_DATA):
                # These have no response: drop silently (the client expects nothing), audit.
                self._audit_refusal(name, "mysql_unknown_statement_id",
                                    f"{name} for statement id {sid}, which was not prepared through this proxy")
                return
            self._block_raw(name, None, "mysql_unknown_statement_id",
                            f"Unknown prepared statement handler ({sid}) given to {name}: only statements "
                            "prepared through this proxy, whose SQL passed its read-only check, can be used.",
                            err=C.ER_UNKNOWN_STMT_HANDLER)
            return
        if cmd == C.COM_STMT_EXECUTE:
            self._forward(payload, raw, _R_EXECUTE, entry[0], entry[1], name, perf_counter())
        elif cmd == C.COM_STMT_FETCH:
            self._forward(payload, raw, _R_FETCH, None, None, name, perf_counter())
        elif cmd == C.COM_STMT_RESET:
            self._forward(payload, raw, C.R_SIMPLE, None, None, name, perf_counter())
        else:  # CLOSE / SEND_LONG_DATA: no response from the server
            if cmd == C.COM_STMT_CLOSE:
                self.stmts.pop(sid, None)
                if self.last_stmt == sid:
                    self.last_stmt = None
            self.io.write_backend(raw if raw is not None else N.mysql_frame(payload, 0))

    def _com_init_db(self, payload: bytes, raw: bytes | None) -> None:
        db = payload[1:].decode("utf-8", "replace")
        backend = self.app.config.backend(self.backend_name)
        if not backend.database_allowed(db):
            self._block_raw("COM_INIT_DB", None, "mysql_database_not_allowed",
                            f"Access denied to database '{db}': this proxy allows {self._allowed_db_text()}. "
                            "Query tables of the allowed database instead.",
                            err=C.ER_DBACCESS_DENIED, klass="session", extra={"db.namespace": db})
            return
        self.after = lambda info, db=db: self._db_switched(info, db)
        self._forward(payload, raw, C.R_SIMPLE, None, None, "COM_INIT_DB", perf_counter())

    def _com_simple(self, payload: bytes, raw: bytes | None) -> None:
        cmd = payload[0]
        kind = {C.COM_PING: C.R_SIMPLE, C.COM_SET_OPTION: C.R_SIMPLE, C.COM_STATISTICS: C.R_STATISTICS,
                C.COM_FIELD_LIST: C.R_FIELD_LIST}[cmd]
        self._forward(payload, raw, kind, None, None, C.command_name(cmd), perf_counter())

    def _com_quit(self, payload: bytes, raw: bytes | None) -> None:
        self.io.write_backend(N.mysql_frame(b"\x01", 0))
        self._close("client sent COM_QUIT")

    def _com_reset_connection(self, payload: bytes, raw: bytes | None) -> None:
        # Hold the server's OK until the read-only backstop is back (the reset cleared it).
        self.forward = False
        self.capture = []
        self.after = self._after_reset
        self._forward(payload, raw, C.R_SIMPLE, None, None, "COM_RESET_CONNECTION", perf_counter())

    def _after_reset(self, info: tuple) -> None:
        reply = b"".join(self.capture or ())
        self.capture = None
        if info[C.S_KIND] == C.END_ERR:
            self.forward = True
            self.io.write_client(reply)
            return
        self.stmts.clear()
        self.last_stmt = None

        def done(status: int, reply=reply) -> None:
            self.io.write_client(reply)
        self._run_setup(self._setup_statements(), done)

    def _refuse_command(self, cmd: int) -> None:
        name = C.command_name(cmd)
        why = C.BLOCKED_COMMANDS.get(cmd, "is not a command this proxy knows")
        self._block_raw(name, None, f"mysql_command_{name[4:].lower()}",
                        f"{name} is blocked: it {why}. This connection is read-only; send read-only "
                        "SQL (SELECT, SHOW, DESCRIBE, EXPLAIN) with COM_QUERY or prepared statements.",
                        klass="admin")

    # ------------------------------------------------------------------ refusals
    def _block_raw(self, message: str, sql: str | None, rule: str, reason: str,
                   err: tuple[int, str] = C.ER_READ_ONLY, klass: str = "unknown", extra: dict | None = None) -> None:
        """A refusal decided by the relay itself (not the engine): holds in monitor mode too."""
        self.io.write_client(N.mysql_err(self.resp_seq, err[0], err[1], reason))
        self.app.audit.statement(self.ctx, sql=sql, verdict="BLOCKED", rule=rule, reason=reason,
                                 klass=klass, message=message, monitor=False, **(extra or {}))
        self.bm.statement("blocked", klass)
        self.bm.block(rule)

    def _audit_refusal(self, message: str, rule: str, reason: str) -> None:
        self.app.audit.statement(self.ctx, sql=None, verdict="BLOCKED", rule=rule, reason=reason,
                                 klass="unknown", message=message, monitor=False)
        self.bm.block(rule)

    # ------------------------------------------------------------------ backend bytes
    def backend_data(self, data: bytes) -> None:
        if self.closed:
            return
        if self.phase == P_LOGIN and self.bstage in (B_GREETING, B_AUTH, B_TLS):
            self._backend_login_data(data)
            return
        try:
            r = self.scan.feed(data)
        except N.NativeError as exc:
            self._backend_protocol_error(str(exc))
            return
        if r is None:
            if self.forward:
                if self.held:
                    data = self.held + data
                    self.held = b""
                self.started = True
                self.io.write_client(data)
            elif self.capture is not None:
                if self.held:       # held bytes come first, also for the proxy's own statements
                    data = self.held + data
                    self.held = b""
                self.capture.append(data)
            return
        ev, off, info = r
        if ev == _EV_DONE:
            chunk = data if off == len(data) else data[:off]
            if self.held:
                chunk = self.held + chunk
                self.held = b""
            if self.forward:
                self.io.write_client(chunk)
            elif self.capture is not None:
                self.capture.append(chunk)
            self.busy = False
            self._response_done(info)
            if off != len(data) and not self.closed:
                self._backend_protocol_error(f"{len(data) - off} unexpected bytes after a complete response")
            elif self.pending and not self.busy:
                self._drain_pending()
        elif ev == _EV_HOLD:
            if off:
                chunk = data[:off]
                if self.held:
                    chunk = self.held + chunk
                    self.held = b""
                if self.forward:
                    self.started = True
                    self.io.write_client(chunk)
                elif self.capture is not None:
                    self.capture.append(chunk)
                self.held = data[off:]
            else:
                self.held += data
        else:
            self._refuse_infile(data, off, info)

    def _backend_protocol_error(self, detail: str) -> None:
        self.bm.backend_error()
        if self.busy and not self.started:
            self.io.write_client(N.mysql_err(self.resp_seq & 0xFF, *C.ER_MALFORMED_PACKET,
                                             f"sandbox-db-proxy: bad response from the database ({detail})"))
        self.app.audit.event(self.ctx, "protocol_error", side="backend", reason=detail)
        self._close(f"backend protocol error: {detail}")

    def _refuse_infile(self, data: bytes, off: int, info: tuple) -> None:
        seq, filename = info
        # Held bytes are the start of the request itself when it starts at offset 0;
        # otherwise they belong to an earlier packet that completed in this chunk.
        chunk = (self.held + data[:off]) if off else b""
        self.held = b""
        if chunk and self.forward:
            self.started = True
            self.io.write_client(chunk)
        # Answer "no file" (an empty packet) so the server ends the statement; its reply is
        # swallowed and the client gets an ERR in its place, with the sequence id it expects.
        self.io.write_backend(N.mysql_frame(b"", (seq + 1) & 0xFF))
        self.infile = (seq, self.forward)
        self.forward = False
        fname = filename.decode("utf-8", "replace")
        sql = self.cur[0] if self.cur else None
        self.bm.block("mysql_local_infile")
        self.app.audit.event(self.ctx, "alert", rule="mysql_local_infile", **{"db.query.text": sql},
                             reason=f"the database asked the proxy for local file {fname!r} (LOAD DATA LOCAL "
                                    "INFILE); refused, the client never saw the request")

    def _response_done(self, info: tuple) -> None:
        if self.internal:
            self._setup_response(info)
            return
        cur = self.cur
        self.cur = None
        if self.infile is not None:
            seq, fwd = self.infile
            self.infile = None
            self.forward = fwd
            if fwd:
                self.io.write_client(N.mysql_err(seq & 0xFF, *C.ER_NOT_ALLOWED_COMMAND,
                                                 "LOAD DATA LOCAL INFILE is refused by sandbox-db-proxy: "
                                                 "the connection is read-only and never sends local files."))
        after = self.after
        if after is not None:
            self.after = None
            after(info)
        if cur is None:
            return
        sql, verdict, message, t0 = cur
        kind = info[0]
        if kind == _END_PREPARED:
            sid = info[C.S_STMT_ID]
            self.stmts[sid] = (sql, verdict)
            self.last_stmt = sid
        if verdict is None:
            return  # PING, STATISTICS, FETCH, ...: not statements
        dt = perf_counter() - t0
        rows = info[5] or info[1]
        if kind != _END_ERR and verdict.allowed:
            # the hot path: AuditLog.allowed() writes the same record statement() would
            self.app.audit.allowed(self.ctx, sql, verdict, message, rows, dt * 1000.0)
            bm = self.bm
            bm.statement("allowed", verdict.klass)
            bm.query_seconds.observe(dt)
            if verdict.klass == "session" and not self.app.config.monitor_mode:
                self._verify_read_only()
            return
        if kind == C.END_ERR:
            code = info[C.S_ERR_CODE]
            self.app.audit.statement(self.ctx, sql=sql, verdict=verdict, message=message, rows=0,
                                     duration_ms=dt * 1000.0, **{"db.response.status_code": str(code)})
            if code == _READ_ONLY_CODE and not self.app.config.monitor_mode:
                self.app.audit.event(self.ctx, "alert", rule="mysql_backstop_caught_write",
                                     reason="the engine allowed a statement the database refused as a write "
                                            "in its read-only session (the backstop held)",
                                     **{"db.query.text": sql})
        else:
            self.app.audit.statement(self.ctx, sql=sql, verdict=verdict, message=message, rows=rows,
                                     duration_ms=dt * 1000.0)
        if verdict.allowed:
            self.bm.statement("allowed", verdict.klass)
        self.bm.query_seconds.observe(dt)

    # ------------------------------------------------------------------ internal statements
    # The proxy's own statements on the backend session (the backstop SETs, the read-only
    # check). Their responses are never forwarded; client packets wait in `pending`.
    def _run_setup(self, statements: list, done) -> None:
        """statements: SQL strings, or (sql, check) where check(response bytes) returns an
        error string (None = fine)."""
        self._setup_queue = list(statements)
        self._setup_done = done
        self._setup_status = C.SERVER_STATUS_AUTOCOMMIT
        self.forward = False      # internal responses are the proxy's own: never forwarded
        self._setup_next()

    def _setup_next(self) -> None:
        if not self._setup_queue:
            self.internal = False
            self.forward = True
            self.capture = None
            done, self._setup_done = self._setup_done, None
            if done is not None:
                done(self._setup_status)
            if self.pending and not self.busy and self.phase == P_COMMAND:
                self._drain_pending()
            return
        item = self._setup_queue.pop(0)
        sql, check = item if isinstance(item, tuple) else (item, None)
        self.internal = True
        self.capture = []
        self._setup_check = check
        self.scan.expect(_R_QUERY, 1)
        self.resp_seq = 1
        self.busy = True
        self.cur = (sql, None, "setup", perf_counter())
        self.io.write_backend(N.mysql_frame(b"\x03" + sql.encode(), 0))

    def _setup_response(self, info: tuple) -> None:
        sql = self.cur[0] if self.cur else "?"
        self.cur = None
        problem = None
        if info[C.S_KIND] == C.END_ERR:
            msg = info[C.S_ERR_MSG].decode("utf-8", "replace")
            problem = f"{sql!r} failed: {info[C.S_ERR_CODE]} {msg}"
        elif self._setup_check is not None:
            problem = self._setup_check(b"".join(self.capture or ()))
        if problem is not None:
            reason = f"could not keep the database session read-only ({problem})"
            self.internal = False
            self.bm.backend_error()
            if self.phase == P_COMMAND:
                # The client's last answer is already out; this ERR answers its next command
                # (sequence id 1), so it learns why the connection ends.
                self.app.audit.event(self.ctx, "alert", rule="mysql_read_only_lost", reason=reason)
                self.io.write_client(N.mysql_err(1, *C.ER_UNKNOWN_ERROR,
                                                 f"sandbox-db-proxy closed the connection: {reason}"))
                self._close(reason)
            else:
                self._fail_backend_login(reason)
            return
        self._setup_status = info[C.S_STATUS]
        self._setup_next()

    def _read_only_check(self) -> tuple:
        """The backstop check: the session variable the server itself reports (MariaDB
        `tx_read_only`; MySQL 8 removed it in favour of `transaction_read_only`)."""
        var = "tx_read_only" if self.flavor == "mariadb" else "transaction_read_only"
        return (f"SELECT @@session.{var}", _expect_single_value_one)

    def _verify_read_only(self) -> None:
        """After a session-changing statement the engine allowed: make sure the session is
        still read-only (engine backstop, ARCHITECTURE.md guard 3); if not, kill it."""
        self._run_setup([self._read_only_check()], None)


def _expect_single_value_one(raw: bytes) -> str | None:
    """Check a one-row, one-column text result whose value must be 1."""
    try:
        dec = N.MysqlPacketDecoder(1 << 20)
        packets = [p for _s, p, _n in dec.feed(raw)]
    except N.NativeError as exc:
        return f"unreadable check result: {exc}"
    rows = [p for p in packets[1:] if p[:1] not in (b"\xfe", b"\xff") and not p.startswith(b"\x03def")]
    if len(rows) != 1:
        return "the read-only check returned no row"
    row = rows[0]
    n = row[0] if row else 0
    value = row[1:1 + n] if n < 251 else b""
    if value != b"1":
        return f"the database reports the session is no longer read-only (value {value!r})"
    return None

_DISPATCH = {
    C.COM_STMT_PREPARE: MySQLSession._com_prepare,
    C.COM_STMT_FETCH: lambda s, p, r: s._com_stmt(p, r, C.COM_STMT_FETCH),
    C.COM_STMT_RESET: lambda s, p, r: s._com_stmt(p, r, C.COM_STMT_RESET),
    C.COM_STMT_CLOSE: lambda s, p, r: s._com_stmt(p, r, C.COM_STMT_CLOSE),
    C.COM_STMT_SEND_LONG_DATA: lambda s, p, r: s._com_stmt(p, r, C.COM_STMT_SEND_LONG_DATA),
    C.COM_INIT_DB: MySQLSession._com_init_db,
    C.COM_PING: MySQLSession._com_simple,
    C.COM_SET_OPTION: MySQLSession._com_simple,
    C.COM_STATISTICS: MySQLSession._com_simple,
    C.COM_FIELD_LIST: MySQLSession._com_simple,
    C.COM_QUIT: MySQLSession._com_quit,
    C.COM_RESET_CONNECTION: MySQLSession._com_reset_connection,
}
