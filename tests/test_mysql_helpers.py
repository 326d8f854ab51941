"""Shared helpers for the MySQL relay tests (imported by tests/test_mysql_*.py; no tests here).

`MyProxy` runs a real `ProxyApp` + the MySQL listener (server/mysql.py) on its own uvloop
thread, so blocking clients (the mariadb CLI, PyMySQL, mysqlclient, mysql-connector) and
async ones (aiomysql, in the test's own loop) can all connect to it. Audit records are
captured in memory as well as written to the file.

Every test database is created directly on the `mariadb_server` fixture (as root over its
socket), never through the proxy, with a unique name so parallel modules never collide.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import struct
import subprocess
import tempfile
import threading
import time
import uuid

import yaml

from sandbox_db_proxy.config import load_config_text

BACKEND = "mdb"
AGENT = "agent1"
AGENT_PW = "agent-pw-1"


class _StandInVerdict:
    """Used only while the real engine cannot be built (it is written concurrently)."""

    def __init__(self, allowed, rule, reason, klass, verbs=()):
        self.allowed, self.rule, self.reason, self.klass = allowed, rule, reason, klass
        self.verdict = "allow" if allowed else "block"
        from collections import namedtuple
        St = namedtuple("St", "verbs klass")
        self.statements = tuple(St((v,), klass) for v in verbs)
        self.path = "fast"


class StandInEngine:
    READ = ("SELECT", "SHOW", "EXPLAIN", "DESCRIBE", "DESC", "SET", "USE")
    SENSITIVE = re.compile(r"^\s*SHOW\s+(FULL\s+)?PROCESSLIST|^\s*SHOW\s+GRANTS", re.I)

    def classify(self, sql):
        text = re.sub(r"--[^\n]*|#[^\n]*|/\*(?!!).*?\*/", " ", sql, flags=re.S).strip().rstrip(";").strip()
        parts = [p for p in text.split(";") if p.strip()]
        verbs = []
        for p in parts or [""]:
            w = (p.split() or [""])[0].upper()
            verbs.append(w)
            bad = re.search(r"\b(INSERT|UPDATE|DELETE|DROP|INTO|WRITE|READ\s+WRITE|LOAD|SLEEP|GET_LOCK)\b|/\*!",
                            p, re.I)
            if w not in self.READ or bad or self.SENSITIVE.search(p):
                return _StandInVerdict(False, "stand-in-write", f"{w or 'empty'} statement is not read-only: "
                                       "send a SELECT instead", "write", verbs)
        return _StandInVerdict(True, "stand-in-read", "", "read", verbs)


def real_engine_available() -> bool:
    try:
        from sandbox_db_proxy.engine import Engine
        Engine("mysql").classify("SELECT 1")
        return True
    except Exception:  # noqa: BLE001
        return False


def make_config(server, dbname: str, audit_path: str, *, security: dict | None = None,
                limits: dict | None = None, backend: dict | None = None, agents: bool = False) -> str:
    """Config YAML for one backend `mdb` in front of `server` (database `dbname`)."""
    b = {"name": BACKEND, "type": "mysql", "address": server.host, "port": server.port,
         "username": server.user, "password": server.password, "database": dbname,
         "listen": "127.0.0.1:0", "backend_tls": {"mode": "disable"}}
    b.update(backend or {})
    cfg = {"backends": [b],
           "security": {"enforce_read_only": True, **(security or {})},
           "limits": {"statement_timeout_ms": 5000, **(limits or {})},
           "audit": {"path": audit_path, "flush_interval_ms": 50},
           "admin": {"listen": "127.0.0.1:0"}}
    if agents:
        cfg["agents"] = [{"name": AGENT, "password": AGENT_PW}]
    return yaml.safe_dump(cfg)


class MyProxy:
    def __init__(self, config_text: str, *, client_auth_plugin: str | None = None):
        self.config_text = config_text
        self.client_auth_plugin = client_auth_plugin
        self.records: list[dict] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.app = None
        self.server = None
        self.port = 0
        self.stand_in = False

    def start(self) -> "MyProxy":
        ready = threading.Event()
        err: list[BaseException] = []

        def run():
            import uvloop
            loop = uvloop.new_event_loop()
            asyncio.set_event_loop(loop)
            self.loop = loop

            async def boot():
                from sandbox_db_proxy.server import mysql
                from sandbox_db_proxy.server.app import ProxyApp
                cfg = load_config_text(self.config_text, source="<test>", env={})
                app = ProxyApp(cfg)
                if not real_engine_available():
                    self.stand_in = True
                    app._engines[BACKEND] = StandInEngine()
                orig = app.audit.emit

                def emit(rec):
                    self.records.append(rec)
                    orig(rec)
                app.audit.emit = emit
                app.audit.start()
                self.app = app
                self.server = await mysql.start(app, cfg.backend(BACKEND),
                                                client_auth_plugin=self.client_auth_plugin)
                self.port = self.server.sockets[0].getsockname()[1]

            try:
                loop.run_until_complete(boot())
            except BaseException as exc:  # noqa: BLE001
                err.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self.thread = threading.Thread(target=run, daemon=True, name="mysql-proxy-test")
        self.thread.start()
        ready.wait(30)
        if err:
            raise err[0]
        return self

    def call(self, fn, *args):
        """Run a plain function (or coroutine function) on the proxy's loop thread."""
        async def go():
            r = fn(*args)
            if asyncio.iscoroutine(r):
                r = await r
            return r
        return asyncio.run_coroutine_threadsafe(go(), self.loop).result(30)

    def stop(self) -> None:
        if self.loop is None:
            return

        async def shutdown():
            self.server.close()
            await self.app.close_connections(list(self.app.connections), "test over")
            await asyncio.sleep(0.05)
            self.app.audit.close()
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def events(self, event: str | None = None, **match) -> list[dict]:
        out = []
        for r in list(self.records):
            if event is not None and r.get("event") != event:
                continue
            if all(r.get(k) == v for k, v in match.items()):
                out.append(r)
        return out

    def wait_for(self, pred, timeout: float = 5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = pred()
            if got:
                return got
            time.sleep(0.02)
        return pred()


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


SCHEMA = """
CREATE TABLE users (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(100) NOT NULL,
                    email VARCHAR(200), plan VARCHAR(20) DEFAULT 'free');
INSERT INTO users (name, email) VALUES ('alice', 'a@example.com'), ('bob', 'b@example.com'),
  ('carol', 'c@example.com'), ('dave', 'd@example.com'), ('erin', 'e@example.com'),
  ('frank', 'f@example.com'), ('grace', 'g@example.com'), ('heidi', 'h@example.com'),
  ('ivan', 'i@example.com'), ('judy', 'j@example.com'), ('mallory', 'm@example.com');
CREATE TABLE orders (id INT PRIMARY KEY AUTO_INCREMENT, user_id INT, total DECIMAL(10,2));
INSERT INTO orders (user_id, total) VALUES (1, 10.50), (2, 99.99), (3, 5.00);
CREATE TABLE blobs (id INT PRIMARY KEY, data LONGBLOB);
"""


def create_db(mariadb_server, prefix: str = "sdp_my") -> str:
    db = unique(prefix)
    mariadb_server.sql(f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4")
    mariadb_server.sql(SCHEMA, db)
    return db


def start_proxy(server, db: str, **kw) -> MyProxy:
    plugin = kw.pop("client_auth_plugin", None)
    tmp = tempfile.mkdtemp(prefix="sdp-my-audit-")
    return MyProxy(make_config(server, db, os.path.join(tmp, "audit.json"), **kw),
                   client_auth_plugin=plugin).start()


def mariadb_cli(port: int, sql: str, *, user: str = "app", password: str = "secret",
                database: str | None = None, extra: tuple = ()) -> subprocess.CompletedProcess:
    """Run the `mariadb` command-line client against the proxy (TCP, no TLS)."""
    cmd = ["mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", str(port), "-u", user,
           f"-p{password}", "--skip-ssl", "-N", "-B", *extra]
    if database:
        cmd.append(database)
    return subprocess.run(cmd, input=sql, capture_output=True, text=True, timeout=60)


# -- raw protocol client (malformed input tests) -----------------------------------------

def frame(payload: bytes, seq: int) -> bytes:
    return struct.pack("<I", len(payload))[:3] + bytes([seq & 0xFF]) + payload


def read_packet(sock: socket.socket, timeout: float = 10.0) -> tuple[int, bytes] | None:
    """One packet (seq, payload), or None at EOF."""
    sock.settimeout(timeout)
    hdr = _read_exact(sock, 4)
    if hdr is None:
        return None
    n = hdr[0] | hdr[1] << 8 | hdr[2] << 16
    body = _read_exact(sock, n)
    if body is None:
        return None
    return hdr[3], body


def _read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        try:
            got = sock.recv(n - len(buf))
        except (ConnectionResetError, socket.timeout):
            return None
        if not got:
            return None
        buf += got
    return buf


def raw_login(port: int, user: str = "app", password: str = "secret", database: str | None = None,
              caps_extra: int = 0) -> socket.socket:
    """Log in with mysql_native_password over a raw socket; returns the socket after OK."""
    from sandbox_db_proxy import _native as N
    from sandbox_db_proxy.auth import mysql_auth as A
    from sandbox_db_proxy.protocols import mysql_consts as C
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    seq, greeting = read_packet(s)
    hs = N.mysql_parse_handshake(greeting)
    caps = (C.CLIENT_PROTOCOL_41 | C.CLIENT_SECURE_CONNECTION | C.CLIENT_PLUGIN_AUTH | C.CLIENT_LONG_PASSWORD
            | C.CLIENT_TRANSACTIONS | C.CLIENT_MULTI_RESULTS | caps_extra)
    auth = A.native_scramble(password.encode(), hs["scramble"])
    s.sendall(N.mysql_handshake_response(1, caps, 1 << 24, 45, user.encode(), auth,
                                         database.encode() if database else None,
                                         b"mysql_native_password", []))
    seq, reply = read_packet(s)
    assert reply[:1] == b"\x00", reply
    return s


def read_response(sock) -> list[bytes]:
    """Packets of one text-protocol response (no DEPRECATE_EOF): until OK/ERR or the second EOF."""
    out = []
    eofs = 0
    first = True
    while True:
        p = read_packet(sock)
        if p is None:
            out.append(b"<EOF>")
            return out
        seq, payload = p
        out.append(payload)
        if first and payload[:1] in (b"\x00", b"\xff"):
            return out
        first = False
        if payload[:1] == b"\xff":
            return out
        if payload[:1] == b"\xfe" and len(payload) < 9:
            eofs += 1
            if eofs == 2:
                return out


# -- TLS ---------------------------------------------------------------------------------

def make_cert(directory: str) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 / localhost (cryptography); returns paths."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sandbox-db-proxy test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path = os.path.join(directory, "proxy.crt")
    key_path = os.path.join(directory, "proxy.key")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


class MemTlsClient:
    """A TLS client over a raw socket through ssl.MemoryBIO, so a test controls exactly which
    bytes go out in which write (e.g. SSLRequest and ClientHello in ONE segment)."""

    def __init__(self, sock: socket.socket, cafile: str | None = None):
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if cafile:
            ctx.load_verify_locations(cafile)
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        self.sock = sock
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname="127.0.0.1" if cafile else None)

    def client_hello(self) -> bytes:
        import ssl
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return self.out.read()

    def finish_handshake(self) -> None:
        import ssl
        self.sock.settimeout(10)
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                pending = self.out.read()
                if pending:
                    self.sock.sendall(pending)
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("server closed during the TLS handshake")
                self.inc.write(chunk)
        pending = self.out.read()
        if pending:
            self.sock.sendall(pending)

    def send(self, data: bytes) -> None:
        self.obj.write(data)
        self.sock.sendall(self.out.read())

    def read_packet(self) -> tuple[int, bytes]:
        import ssl
        buf = b""
        while True:
            if len(buf) >= 4:
                n = buf[0] | buf[1] << 8 | buf[2] << 16
                if len(buf) >= 4 + n:
                    return buf[3], buf[4:4 + n]
            try:
                got = self.obj.read(65536)
                if not got:
                    raise ConnectionError("TLS closed")
                buf += got
                continue
            except ssl.SSLWantReadError:
                pass
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.inc.write(chunk)
