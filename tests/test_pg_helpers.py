"""Shared helpers for the PostgreSQL relay tests (imported by tests/test_pg_*.py).

`ProxyHarness` runs a real `ProxyApp` + the PostgreSQL listener (server/postgres.py) on its
own event-loop thread, so sync clients (psql, psycopg) and async ones (asyncpg, in the test's
own loop) can all connect to it. Audit records are captured in memory as well as queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import re
import subprocess
import tempfile
import threading
import time
import uuid

import pytest
import yaml

from sandbox_db_proxy.config import load_config_text

AGENT = "agent1"
AGENT_PW = "agent-pw-1"


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
    try:
        from sandbox_db_proxy.engine import Engine
        Engine("postgres").classify("SELECT 1")
        return True
    except Exception:  # noqa: BLE001
        return False


def make_config(pg_server, dbname: str, audit_path: str, *, security: dict | None = None,
                limits: dict | None = None, backend: dict | None = None, agents: bool = True) -> str:
    """Config YAML for one backend `pgtest` in front of `pg_server` (database `dbname`)."""
    b = {"name": "pgtest", "type": "postgres", "address": pg_server.host, "port": pg_server.port,
         "username": pg_server.user, "password": pg_server.password, "database": dbname,
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


class ProxyHarness:
    def __init__(self, config_text: str, force_stand_in: bool = False, engine=None):
        self.config_text = config_text
        self.force_stand_in = force_stand_in
        self.engine = engine
        self.records: list[dict] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.app = None
        self.server = None
        self.port = 0

    def start(self) -> "ProxyHarness":
        ready = threading.Event()
        err: list[BaseException] = []

        def run():
            try:
                import uvloop
                loop = uvloop.new_event_loop()
            except ImportError:
                loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self.loop = loop

            async def boot():
                from sandbox_db_proxy.server import postgres
                from sandbox_db_proxy.server.app import ProxyApp
                cfg = load_config_text(self.config_text, source="<test>", env={})
                app = ProxyApp(cfg)
                if self.engine is not None:
                    app._engines["pgtest"] = self.engine
                elif self.force_stand_in or not real_engine_available():
                    app._engines["pgtest"] = StandInEngine()
                orig = app.audit.emit

                def emit(rec):
                    self.records.append(rec)
                    orig(rec)
                app.audit.emit = emit
                app.audit.start()
                self.app = app
                self.server = await postgres.start(app, cfg.backend("pgtest"))
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

        self.thread = threading.Thread(target=run, daemon=True, name="pg-proxy-test")
        self.thread.start()
        ready.wait(30)
        if err:
            raise err[0]
        return self

    def call(self, fn, *args):
        """Run a plain function on the proxy's loop thread and return its result."""
        fut = asyncio.run_coroutine_threadsafe(_as_coro(fn, *args), self.loop)
        return fut.result(30)

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

    # -- client helpers -----------------------------------------------------------------
    def dsn(self, user: str = AGENT, password: str = AGENT_PW, dbname: str | None = None, **kw) -> str:
        extra = " ".join(f"{k}={v}" for k, v in kw.items())
        db = f" dbname={dbname}" if dbname else ""
        return f"host=127.0.0.1 port={self.port} user={user} password={password}{db} sslmode=disable {extra}".strip()

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


async def _as_coro(fn, *args):
    r = fn(*args)
    if asyncio.iscoroutine(r):
        r = await r
    return r


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


SCHEMA = """
CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric NOT NULL);
INSERT INTO accounts SELECT g, 'owner' || g, g * 10 FROM generate_series(1, 50) g;
CREATE TABLE notes (id serial PRIMARY KEY, body text);
INSERT INTO notes (body) VALUES ('alpha'), ('beta'), ('gamma');
CREATE SEQUENCE counter_seq;
"""


def create_db(pg_server, prefix: str = "sdp_pgrelay") -> str:
    db = unique(prefix)
    pg_server.psql(f"CREATE DATABASE {db}")
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", pg_server.socket_dir, "-p",
                    str(pg_server.port), "-U", "postgres", "-d", db],
                   input=SCHEMA, text=True, check=True, capture_output=True)
    return db


@pytest.fixture(scope="module")
def relay_db(pg_server):
    return create_db(pg_server)


@pytest.fixture(scope="module")
def proxy(pg_server, relay_db):
    tmp = tempfile.mkdtemp(prefix="sdp-pg-audit-")
    h = ProxyHarness(make_config(pg_server, relay_db, os.path.join(tmp, "audit.json"))).start()
    try:
        yield h
    finally:
        h.stop()


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
