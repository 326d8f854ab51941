"""PostgreSQL relay, login phases (mixed into `PgSession`, protocols/postgres.py): the
untyped startup packets, the proxy's own SCRAM-SHA-256 authentication of the client, and the
proxy's login to the backend with the backend's configured credentials. Sans-I/O like the
rest of the session: bytes in, `self.sink` calls out.

Protocol references: "Message Flow" > "Start-up", "SASL Authentication"; "Message Formats"
(StartupMessage, SSLRequest, GSSENCRequest, CancelRequest, SASLInitialResponse,
SASLResponse, NegotiateProtocolVersion). Design notes: docs/pg-relay.md.
"""

from __future__ import annotations

import struct

from sandbox_db_proxy._native import (FrameError, TooLargeError, pg_parse_startup, pg_scan_backend,
                                      pg_split_frontend)
from sandbox_db_proxy.auth.pg_auth import BackendAuthError
from sandbox_db_proxy.auth.scram import MECHANISM, ScramError, ScramServer, Verifier, verifier_for_password
from sandbox_db_proxy.protocols import pg_messages as M

# Phases of a session (see the PgSession docstring).
STARTUP, AUTH, CONNECTING, BACKEND_AUTH, READY, CLOSED, DRAINING = range(7)

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


def _cstr_at(body: bytes, at: int) -> tuple[bytes, int]:
    end = body.index(b"\0", at)
    return body[at:end], end + 1


class StartupPhase:
    """STARTUP, AUTH, CONNECTING and BACKEND_AUTH handling of `PgSession` (a mixin: it uses
    the session's attributes and its `_fatal`/`_audit_event`/`_ready_*` methods)."""

    # -- startup packets ------------------------------------------------------------------
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
                # Logged in: the native relay takes both sockets over when it can
                # (server/native.py); early pipelined client bytes go with them.
                go = getattr(self.sink, "go_native", None)
                if go is not None and not self.monitor and go(tail, b"".join(self._early)):
                    self._early = []
                    return
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

