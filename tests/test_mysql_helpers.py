"""Shared helpers for the MySQL relay tests (imported by tests/test_mysql_*.py; no tests here).

`MyProxy` is the shared `proxy_harness.RelayProxy` with the MySQL listener (server/mysql.py)
for backend `mdb`, so blocking clients (the mariadb CLI, PyMySQL, mysqlclient,
mysql-connector) and async ones (aiomysql, in the test's own loop) can all connect to it.
Audit records are captured in memory as well as written to the file. What is MySQL-specific
stays here: the stand-in engine, the schema, the raw protocol and TLS clients.

Every test database is created directly on the `mariadb_server` fixture (as root over its
socket), never through the proxy, with a unique name so parallel modules never collide.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import subprocess

from proxy_harness import (AGENT, AGENT_PW, RelayProxy, audit_file, create_my_db, engine_available,  # noqa: F401
                           relay_config, unique)

BACKEND = "mdb"


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
    return engine_available("mysql")


def make_config(server, dbname: str, audit_path: str, *, agents: bool = False, **kw) -> str:
    """Config YAML for one backend `mdb` in front of `server` (database `dbname`), without
    agents by default (clients log in as the backend's user); `kw`: security, limits, backend."""
    return relay_config(BACKEND, "mysql", server, dbname, audit_path, agents=agents, **kw)


class MyProxy(RelayProxy):
    thread_name = "mysql-proxy-test"

    def __init__(self, config_text: str, *, client_auth_plugin: str | None = None):
        super().__init__(config_text, "mysql", BACKEND, client_auth_plugin=client_auth_plugin)
        self.client_auth_plugin = client_auth_plugin
        self.stand_in = False

    def prepare(self, app) -> None:
        if not real_engine_available():
            self.stand_in = True
            app._engines[BACKEND] = StandInEngine()


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
    return create_my_db(mariadb_server, SCHEMA, prefix)


def start_proxy(server, db: str, **kw) -> MyProxy:
    plugin = kw.pop("client_auth_plugin", None)
    return MyProxy(make_config(server, db, audit_file("sdp-my-audit-"), **kw), client_auth_plugin=plugin).start()


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
