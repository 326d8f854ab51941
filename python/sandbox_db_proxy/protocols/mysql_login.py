"""Connection phase of the MySQL relay: the brokered login (issue 4, step 1).

Part of the sans-I/O `MySQLSession` (protocols/mysql.py), as a mixin so the state lives in
one object. Two halves, in order:

1. **Client side** (the proxy is the server; MySQL dev docs "Connection Phase"):
   HandshakeV10 with the proxy's own scramble and capabilities (never CLIENT_LOCAL_FILES;
   CLIENT_SSL only when a certificate is configured) -> optional SSLRequest + TLS ->
   HandshakeResponse41 -> `ServerAuth` (mysql_native_password / caching_sha2_password,
   auth switch) against `app.lookup_login()`. Wrong password: ERR 1045 + audit `auth_failed`.
2. **Backend side** (the proxy is a client): connect, read the server's HandshakeV10, TLS per
   `backend_tls.mode`, HandshakeResponse41 with the *backend's* credentials and the
   capabilities the client negotiated (minus anything the proxy does not relay), `BackendAuth`
   (native, caching_sha2 fast/full, sha256, ed25519, auth switch), then the engine backstop:
   `SET SESSION TRANSACTION READ ONLY` and the statement timeout (`max_statement_time` in
   seconds on MariaDB, `max_execution_time` in ms on MySQL). Only then does the client get
   its OK packet, so no client command can ever run on a session without the backstop.

Sequence ids: each side's exchange numbers its packets 0, 1, 2, ...; the proxy answers a
packet with sequence id n using n + 1 (MySQL dev docs "Sequence ID").
"""

from __future__ import annotations

import logging

from sandbox_db_proxy import _native as N
from sandbox_db_proxy.auth import mysql_auth as A
from sandbox_db_proxy.protocols import mysql_consts as C

log = logging.getLogger("sandbox_db_proxy.mysql")

# client-side login stages
L_HELLO, L_TLS, L_AUTH, L_BACKEND, L_DONE = range(5)
# backend-side stages
B_CONNECTING, B_GREETING, B_TLS, B_AUTH, B_SETUP, B_READY = range(6)


def _text(b: bytes | None) -> str | None:
    return None if b is None else b.decode("utf-8", "replace")


class LoginPhase:
    """Mixin: the connection phase of MySQLSession. Uses the session's `io`, `app`, `ctx`,
    `backend`, `info`, `bm` and its `_close`, `_protocol_error` helpers."""

    # ------------------------------------------------------------------ client side
    def _advertised_capabilities(self) -> int:
        caps = C.PROXY_CAPABILITIES & (self.info.capabilities | ~C.LAYOUT_CAPABILITIES)
        if self.tls_context_available:
            caps |= C.CLIENT_SSL
        return caps

    def _send_greeting(self) -> None:
        self.scramble = A.new_scramble()
        self.adv_caps = self._advertised_capabilities()
        version = self.info.server_version + b"-sandbox-db-proxy"
        pkt = N.mysql_handshake(version, self.conn_id & 0xFFFFFFFF, self.scramble, self.adv_caps,
                                self.info.charset, C.SERVER_STATUS_AUTOCOMMIT, self.preferred_plugin.encode())
        self.io.write_client(pkt)
        self.cseq = 1
        self.lstage = L_HELLO

    def _login_packet(self, seq: int, payload: bytes) -> None:
        """One client packet during the connection phase."""
        if seq != self.cseq:
            expected = self.cseq
            self.cseq = seq + 1
            self._protocol_error(f"login packet out of order: sequence id {seq}, expected {expected}",
                                 C.ER_NET_PACKETS_OUT_OF_ORDER, "Got packets out of order")
            return
        self.cseq = seq + 1          # from here on: the sequence id of the proxy's answer
        if self.lstage == L_HELLO:
            self._on_handshake_response(payload)
        elif self.lstage == L_AUTH:
            self._auth_step(self.sauth.next(payload))
        else:
            self._protocol_error("unexpected client packet while the proxy logs in to the database",
                                 C.ER_MALFORMED_PACKET, "Malformed communication packet")

    def _on_handshake_response(self, payload: bytes) -> None:
        try:
            hs = N.mysql_parse_handshake_response(payload)
        except N.NativeError as exc:
            self._protocol_error(f"bad handshake response: {exc}", C.ER_MALFORMED_PACKET,
                                 "Malformed handshake response packet")
            return
        if hs["ssl_request"]:
            if not self.tls_context_available:
                self._protocol_error("client sent an SSLRequest but the proxy did not offer TLS",
                                     C.ER_MALFORMED_PACKET, "TLS is not configured on this proxy listener")
                return
            # TLS starts now; the caller hands the bytes after this packet to the TLS layer.
            # The client's HandshakeResponse41 then comes with the next sequence id.
            self.lstage = L_TLS
            return
        if self.tls_required and not self.client_tls:
            self._login_refused("insecure transport", C.ER_SECURE_TRANSPORT_REQUIRED,
                                "Connections using insecure transport are prohibited: this proxy "
                                "requires TLS (connect with ssl / --ssl).")
            return
        self.client_caps = hs["capabilities"] & self.adv_caps
        self.client_charset = hs["charset"]
        self.client_max_packet = hs["max_packet"] or C.MAX_PACKET
        self.client_attrs = hs["attributes"]
        self.username = _text(hs["username"]) or ""
        db = hs["database"] if hs["capabilities"] & C.CLIENT_CONNECT_WITH_DB else None
        self.requested_db = _text(db) if db else None
        self.used_password = bool(hs["auth_response"])
        self.login = self.app.lookup_login(self.backend_name, self.username)
        self.sauth = A.ServerAuth(self.login, self.scramble, tls=self.client_tls,
                                  preferred=self.preferred_plugin, fast_cache=self.fast_cache)
        plugin = _text(hs["auth_plugin"]) if hs["capabilities"] & C.CLIENT_PLUGIN_AUTH else None
        self.lstage = L_AUTH
        self._auth_step(self.sauth.begin(plugin, hs["auth_response"]))

    def client_tls_done(self) -> None:
        """The server layer finished the TLS handshake with the client."""
        self.client_tls = True
        self.cdec = N.MysqlPacketDecoder(self.max_message)
        self.lstage = L_HELLO

    def _auth_step(self, step: A.Step) -> None:
        for payload in step.send:
            self.io.write_client(N.mysql_frame(payload, self.cseq & 0xFF))
            self.cseq += 1
        if step.done is None:
            return
        if step.done is False:
            using = "YES" if self.used_password else "NO"
            self._login_refused(step.reason, C.ER_ACCESS_DENIED,
                                f"Access denied for user '{self.username}'@'{self.ctx.client_address}' "
                                f"(using password: {using})")
            return
        # Authenticated. Which database? The client's, only if the backend allows it.
        db = self.requested_db
        if db is not None and not self.backend.database_allowed(db):
            self._login_refused(f"database {db!r} is not allowed", C.ER_DBACCESS_DENIED,
                                f"Access denied for user '{self.username}' to database '{db}': "
                                f"this proxy only allows {self._allowed_db_text()}.")
            return
        self.database = db if db is not None else self.backend.database
        login = self.login
        if getattr(login, "session_id", None) is not None:
            # Agent sessions (issue 5, sessions/manager.py): the session's allowed_ips and
            # max_connections, checked once the password is proven and before the backend is
            # contacted. No session manager = no session login (default deny).
            sessions = getattr(self.app, "sessions", None)
            why = (sessions.admit(login, self.ctx.client_address, self.io) if sessions is not None
                   else "agent sessions are not available on this proxy")
            if why:
                self.ctx.update(agent=login.agent, session_id=login.session_id)   # for the audit record
                self._login_refused(why, C.ER_ACCESS_DENIED,
                                    f"Access denied for user '{self.username}': login refused: {why}")
                return
        self.agent = getattr(login, "agent", None) or self.username
        self.session_id = getattr(login, "session_id", None)
        self.ctx.update(agent=self.agent, session_id=self.session_id, database=self.database)
        self.lstage = L_BACKEND
        self.bstage = B_CONNECTING
        self.io.connect_backend()

    def _allowed_db_text(self) -> str:
        dbs = self.backend.allowed_databases or ()
        return ", ".join(repr(d) for d in dbs) if dbs else "no database switch"

    def _login_refused(self, why: str, err: tuple[int, str], message: str) -> None:
        self.io.write_client(N.mysql_err(self.cseq & 0xFF, err[0], err[1], message))
        self.bm.connection("auth_failed")
        self.app.audit.event(self.ctx, "auth_failed", reason=why, **{"db.user.name": self.username or None})
        self._close(f"login refused: {why}")

    # ------------------------------------------------------------------ backend side
    def backend_connected(self) -> None:
        self.bstage = B_GREETING
        self.bdec = N.MysqlPacketDecoder(1 << 30)
        self.bseq = 0

    def backend_failed(self, reason: str) -> None:
        """The backend could not be reached (connect error or timeout)."""
        self.bm.backend_error()
        self._fail_backend_login(f"cannot connect to the database: {reason}", C.CR_CONN_HOST_ERROR)

    def _fail_backend_login(self, reason: str, err: tuple[int, str] = C.ER_UNKNOWN_ERROR) -> None:
        msg = f"sandbox-db-proxy: backend '{self.backend_name}' is unavailable ({reason})"
        self.io.write_client(N.mysql_err(self.cseq & 0xFF, err[0], err[1], msg))
        self.app.audit.event(self.ctx, "protocol_error", reason=reason, side="backend")
        self._close(f"backend login failed: {reason}", audit=True)

    def _backend_login_data(self, data: bytes) -> None:
        try:
            packets = self.bdec.feed(data)
        except N.NativeError as exc:
            self.bm.backend_error()
            self._fail_backend_login(f"bad packet from the database during login: {exc}")
            return
        for seq, payload, _next in packets:
            if self.closed:
                return
            if self.bstage == B_GREETING:
                self._on_backend_greeting(payload)
            elif self.bstage == B_AUTH:
                self._on_backend_auth(seq, payload)
            else:
                self.bm.backend_error()
                self._fail_backend_login("unexpected packet from the database during login")
                return

    def _on_backend_greeting(self, payload: bytes) -> None:
        if payload[:1] == b"\xff":
            code, _state, msg = N.mysql_parse_err(payload)
            self.bm.backend_error()
            self._fail_backend_login(f"database refused the connection: {code} {_text(msg)}")
            return
        try:
            hs = N.mysql_parse_handshake(payload)
        except N.NativeError as exc:
            self.bm.backend_error()
            self._fail_backend_login(f"bad handshake from the database: {exc}")
            return
        version = hs["server_version"]
        flavor = "mariadb" if b"mariadb" in version.lower() else "mysql"
        self.info.learn(version, hs["capabilities"], hs["charset"], flavor)
        self.flavor = flavor
        self.ctx.update(db_system=flavor)
        server_caps = hs["capabilities"]
        # Layout capabilities the client negotiated must be there on the backend too.
        missing = self.client_caps & C.LAYOUT_CAPABILITIES & ~server_caps
        if missing:
            self._fail_backend_login(f"the database lacks protocol capabilities 0x{missing:x} the client negotiated")
            return
        caps = (self.client_caps & C.PROXY_CAPABILITIES & server_caps & ~C.CLIENT_SSL) | C.BACKEND_REQUIRED
        caps &= ~C.CLIENT_LOCAL_FILES  # never: a LOAD DATA LOCAL request is refused (issue 4)
        mode = self.backend.backend_tls.mode
        use_tls = mode != "disable" and bool(server_caps & C.CLIENT_SSL)
        if mode in ("require", "verify-ca", "verify-full") and not use_tls:
            self._fail_backend_login(f"backend_tls.mode is {mode} but the database does not offer TLS")
            return
        self.backend_caps = caps
        self.backend_scramble = hs["scramble"]
        self.backend_plugin = _text(hs["auth_plugin"]) or A.NATIVE
        self.scan.set_deprecate_eof(bool(caps & C.CLIENT_DEPRECATE_EOF))
        self.bseq = 1
        if use_tls:
            self.io.write_backend(N.mysql_ssl_request(1, caps | C.CLIENT_SSL, self.client_max_packet,
                                                      self.client_charset))
            self.backend_caps = caps | C.CLIENT_SSL
            self.bseq = 2
            self.bstage = B_TLS
            self.io.start_backend_tls()
            return
        self._send_backend_login(tls=False)

    def backend_tls_done(self) -> None:
        self.bdec = N.MysqlPacketDecoder(1 << 30)
        self._send_backend_login(tls=True)

    def _send_backend_login(self, tls: bool) -> None:
        b = self.backend
        password = b.password.get_secret_value().encode() if b.password is not None else b""
        self.bauth = A.BackendAuth(password, tls=tls)
        try:
            plugin, resp = self.bauth.first(self.backend_plugin, self.backend_scramble)
        except Exception as exc:  # noqa: BLE001 -- e.g. PyNaCl missing for client_ed25519
            self._fail_backend_login(f"cannot answer the database's {self.backend_plugin}: {exc}")
            return
        db = self.database.encode() if self.database else None
        attrs = [(k, v) for k, v in self.client_attrs if len(k) < 64][:32]
        attrs.append((b"sdp_agent", (self.agent or "").encode()[:64]))
        pkt = N.mysql_handshake_response(self.bseq & 0xFF, self.backend_caps, self.client_max_packet,
                                         self.client_charset, b.username.encode(), resp, db,
                                         plugin.encode(), attrs)
        self.bseq += 1
        self.bstage = B_AUTH
        self.io.write_backend(pkt)

    def _on_backend_auth(self, seq: int, payload: bytes) -> None:
        self.bseq = seq + 1
        what, data = self.bauth.next(payload)
        if what == "send":
            self.io.write_backend(N.mysql_frame(data, self.bseq & 0xFF))
            self.bseq += 1
        elif what == "wait":
            return
        elif what == "ok":
            if self.bdec.buffered:
                self._fail_backend_login("the database sent data after its login OK")
                return
            self.bstage = B_SETUP
            self._run_setup(self._setup_statements(), self._backend_ready)
        else:
            detail = data or "refused"
            if payload[:1] == b"\xff":
                code, _st, msg = N.mysql_parse_err(payload)
                detail = f"{code} {_text(msg)}"
            self.bm.backend_error()
            self._fail_backend_login(f"the database refused the proxy's configured credentials: {detail}",
                                     C.ER_ACCESS_DENIED)

    def _setup_statements(self) -> list[str]:
        """The engine backstop (ARCHITECTURE.md guard 3). Monitor mode forwards would-be
        blocks on purpose, so it does not make the session read-only either."""
        out: list = []
        if not self.app.config.monitor_mode:
            out.append("SET SESSION TRANSACTION READ ONLY")
        ms = self.app.config.statement_timeout_ms(self.backend)
        if ms:
            if self.flavor == "mariadb":
                out.append(f"SET SESSION max_statement_time = {ms / 1000:.3f}")
            else:
                out.append(f"SET SESSION max_execution_time = {int(ms)}")
        if not self.app.config.monitor_mode:
            out.append(self._read_only_check())   # trust, but verify: the server must say so
        return out

    def _backend_ready(self, status: int) -> None:
        """Backend logged in and hardened: answer the client's login with OK."""
        self.bstage = B_READY
        self.lstage = L_DONE
        info = b"\x00" if self.client_caps & C.CLIENT_SESSION_TRACK else b""
        self.io.write_client(N.mysql_ok(self.cseq & 0xFF, 0, 0, status or C.SERVER_STATUS_AUTOCOMMIT, 0, info))
        self.app.audit.event(self.ctx, "auth_ok", **{"db.user.name": self.username,
                                                     "auth.plugin": self.sauth.plugin,
                                                     "auth.path": self.sauth.path,
                                                     "tls": self.client_tls})
        self._enter_command_phase()
