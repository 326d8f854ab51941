"""Shared helpers for the PostgreSQL relay tests (imported by tests/test_pg_*.py).

`ProxyHarness` is the shared `proxy_harness.RelayProxy` with the PostgreSQL listener
(server/postgres.py) for backend `pgtest`, so sync clients (psql, psycopg) and async ones
(asyncpg, in the test's own loop) can all connect to it. Audit records are captured in
memory as well as queued. What is PostgreSQL-specific stays here: the stand-in engines, the
schema, the raw protocol client.
"""

from __future__ import annotations

import re
import socket
import struct

import pytest

from proxy_harness import (AGENT, AGENT_PW, RelayProxy, audit_file, create_pg_db, engine_available,  # noqa: F401
                           relay_config, unique)

BACKEND = "pgtest"


class _StandInVerdict:
    """Used only while the real engine cannot be built (it is written concurrently)."""

    def __init__(self, allowed, rule, reason, klass):
        self.allowed, self.rule, self.reason, self.klass = allowed, rule, reason, klass
        self.verdict = "allow" if allowed else "block"
        self.statements = ()
        self.path = "fast"


class StandInEngine:
    READ = ("SELECT", "SHOW", "EXPLAIN", "VALUES", "TABLE", "BEGIN", "COMMIT", "ROLLBACK", "START",
            "END", "ABORT")

    def __init__(self):
        self.catalog = None

    def set_catalog(self, cat):
        self.catalog = cat

    def classify(self, sql):
        text = re.sub(r"--[^\n]*|/\*.*?\*/", " ", sql, flags=re.S).strip().rstrip(";").strip()
        parts = [p for p in text.split(";") if p.strip()]
        for p in parts or [""]:
            w = (p.split() or [""])[0].upper()
            if w == "COPY" and re.search(r"\bTO\s+STDOUT\b", p, re.I):
                continue
            if w not in self.READ or re.search(r"\b(INSERT|UPDATE|DELETE|DROP|INTO|nextval|pg_sleep)\b", p, re.I):
                return _StandInVerdict(False, "stand-in-write", f"{w or 'empty'} statement is not read-only: "
                                       "send a SELECT instead", "write")
        return _StandInVerdict(True, "stand-in-read", "", "read")


class AllowAllEngine(StandInEngine):
    """Lets everything through: used to prove the relay's own backstops (ParameterStatus
    watch, COPY IN abort) hold even when the engine is wrong."""

    def classify(self, sql):
        return _StandInVerdict(True, "allow-all", "", "read")


def real_engine_available() -> bool:
    return engine_available("postgres")


def make_config(pg_server, dbname: str, audit_path: str, *, agents: bool = True, **kw) -> str:
    """Config YAML for one backend `pgtest` in front of `pg_server` (database `dbname`), with
    the static agent by default; `kw`: security, limits, backend (see proxy_harness.relay_config)."""
    return relay_config(BACKEND, "postgres", pg_server, dbname, audit_path, agents=agents, **kw)


class ProxyHarness(RelayProxy):
    thread_name = "pg-proxy-test"

    def __init__(self, config_text: str, force_stand_in: bool = False, engine=None):
        super().__init__(config_text, "postgres", BACKEND)
        self.force_stand_in = force_stand_in
        self.engine = engine

    def prepare(self, app) -> None:
        if self.engine is not None:
            app._engines[BACKEND] = self.engine
        elif self.force_stand_in or not real_engine_available():
            app._engines[BACKEND] = StandInEngine()

    # -- client helpers -----------------------------------------------------------------
    def dsn(self, user: str = AGENT, password: str = AGENT_PW, dbname: str | None = None, **kw) -> str:
        extra = " ".join(f"{k}={v}" for k, v in kw.items())
        db = f" dbname={dbname}" if dbname else ""
        return f"host=127.0.0.1 port={self.port} user={user} password={password}{db} sslmode=disable {extra}".strip()


def start_proxy(pg_server, db: str, prefix: str = "sdp-pg-audit-", engine=None, **kw) -> ProxyHarness:
    """A started `ProxyHarness` in front of `db` with its own audit file; `kw` go to make_config."""
    return ProxyHarness(make_config(pg_server, db, audit_file(prefix), **kw), engine=engine).start()


SCHEMA = """
CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric NOT NULL);
INSERT INTO accounts SELECT g, 'owner' || g, g * 10 FROM generate_series(1, 50) g;
CREATE TABLE notes (id serial PRIMARY KEY, body text);
INSERT INTO notes (body) VALUES ('alpha'), ('beta'), ('gamma');
CREATE SEQUENCE counter_seq;
"""


def create_db(pg_server, prefix: str = "sdp_pgrelay") -> str:
    return create_pg_db(pg_server, SCHEMA, prefix)


@pytest.fixture(scope="module")
def relay_db(pg_server):
    return create_db(pg_server)


@pytest.fixture(scope="module")
def proxy(pg_server, relay_db):
    with start_proxy(pg_server, relay_db) as h:
        yield h


# -- raw protocol client (for malformed/truncated input tests) ---------------------------

def msg(tag: bytes, body: bytes) -> bytes:
    return tag + struct.pack("!i", len(body) + 4) + body


def startup_packet(params: dict) -> bytes:
    body = struct.pack("!i", 196608) + b"".join(k.encode() + b"\0" + v.encode() + b"\0"
                                                 for k, v in params.items()) + b"\0"
    return struct.pack("!i", len(body) + 4) + body


def read_msgs(sock, until: str | None = "Z", timeout: float = 10.0) -> list[tuple[str, bytes]]:
    """Read messages until one with tag `until` (or EOF, reported as ("EOF", b""))."""
    sock.settimeout(timeout)
    out: list[tuple[str, bytes]] = []
    buf = b""
    while True:
        while len(buf) >= 5:
            (n,) = struct.unpack("!i", buf[1:5])
            if len(buf) < n + 1:
                break
            out.append((chr(buf[0]), buf[5:n + 1]))
            buf = buf[n + 1:]
            if until is not None and out[-1][0] == until:
                return out
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError, socket.timeout):
            chunk = b""
        if not chunk:
            out.append(("EOF", b""))
            return out
        buf += chunk


def error_fields(body: bytes) -> dict[str, str]:
    out = {}
    for part in body.split(b"\0"):
        if part:
            out[chr(part[0])] = part[1:].decode()
    return out


def raw_login(port: int, user: str = AGENT, password: str = AGENT_PW, database: str | None = None,
              extra: dict | None = None) -> socket.socket:
    """Startup + SCRAM-SHA-256 by hand; returns the socket after ReadyForQuery."""
    from sandbox_db_proxy.auth.scram import ScramClient
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    params = {"user": user, **({"database": database} if database else {}), **(extra or {})}
    s.sendall(startup_packet(params))
    (tag, body), = read_msgs(s, until="R")[-1:]
    assert tag == "R" and struct.unpack("!i", body[:4])[0] == 10, (tag, body)
    sc = ScramClient(password)
    first = sc.first().encode()
    s.sendall(msg(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first))
    tag, body = read_msgs(s, until="R")[-1]
    if tag != "R":
        raise ConnectionError(error_fields(body))
    s.sendall(msg(b"p", sc.final(body[4:].decode()).encode()))
    msgs = read_msgs(s, until="Z")
    if msgs[-1][0] != "Z":
        errs = [error_fields(b) for t, b in msgs if t == "E"]
        raise ConnectionError(errs[0] if errs else {"C": "EOF"})
    return s
