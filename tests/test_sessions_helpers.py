"""Shared helpers for the session tests (tests/test_sessions_*.py; no tests here).

`SessionProxy` runs a complete `ProxyApp` (`await app.start()`: admin listener with the
control API, the PostgreSQL and the MySQL relay, the session manager) on its own uvloop
thread in front of the real `pg_server` and `mariadb_server`, so blocking clients (psycopg,
PyMySQL, urllib) can use it. Audit records are captured in memory as well as written.
Each proxy gets its own SQLite session store unless one is passed (restart tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

import yaml

from sandbox_db_proxy.config import load_config_text

TOKEN = "test-admin-token-" + uuid.uuid4().hex
PG = "pg-prod"
MY = "my-prod"

PG_SCHEMA = """
CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric NOT NULL);
INSERT INTO accounts SELECT g, 'owner' || g, g * 10 FROM generate_series(1, 20) g;
"""
MY_SCHEMA = """
CREATE TABLE accounts (id INT PRIMARY KEY, owner VARCHAR(50) NOT NULL, balance DECIMAL(10,2) NOT NULL);
INSERT INTO accounts VALUES (1, 'owner1', 10), (2, 'owner2', 20), (3, 'owner3', 30);
"""


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def create_pg_db(pg_server) -> str:
    db = unique("sdp_sess")
    pg_server.psql(f"CREATE DATABASE {db}")
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", pg_server.socket_dir, "-p",
                    str(pg_server.port), "-U", "postgres", "-d", db],
                   input=PG_SCHEMA, text=True, check=True, capture_output=True)
    return db


def create_my_db(mariadb_server) -> str:
    db = unique("sdp_sess")
    mariadb_server.sql(f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4")
    mariadb_server.sql(MY_SCHEMA, db)
    return db


def make_config(pg_server, pg_db, mariadb_server, my_db, store: str, audit: str, *,
                sessions: dict | None = None, token: str | None = TOKEN, limits: dict | None = None) -> str:
    backends = []
    if pg_server is not None:
        backends.append({"name": PG, "type": "postgres", "address": pg_server.host, "port": pg_server.port,
                         "username": pg_server.user, "password": pg_server.password, "database": pg_db,
                         "listen": "127.0.0.1:0", "backend_tls": {"mode": "disable"}})
    if mariadb_server is not None:
        backends.append({"name": MY, "type": "mysql", "address": mariadb_server.host,
                         "port": mariadb_server.port, "username": mariadb_server.user,
                         "password": mariadb_server.password, "database": my_db,
                         "listen": "127.0.0.1:0", "backend_tls": {"mode": "disable"}})
    cfg = {"backends": backends,
           "security": {"enforce_read_only": True},
           "limits": {"statement_timeout_ms": 5000, **(limits or {})},
           "audit": {"path": audit, "flush_interval_ms": 50},
           "admin": {"listen": "127.0.0.1:0", **({"token": token} if token else {})},
           "sessions": {"store": store, **(sessions or {})}}
    return yaml.safe_dump(cfg)


class SessionProxy:
    def __init__(self, config_text: str, env: dict | None = None):
        self.config_text = config_text
        self.env = env or {}
        self.records: list[dict] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.app = None
        self.admin_port = 0

    def start(self) -> "SessionProxy":
        ready = threading.Event()
        err: list[BaseException] = []

        def run():
            import uvloop
            loop = uvloop.new_event_loop()
            asyncio.set_event_loop(loop)
            self.loop = loop

            async def boot():
                from sandbox_db_proxy.server.app import ProxyApp
                cfg = load_config_text(self.config_text, source="<test>", env=self.env)
                app = ProxyApp(cfg)
                orig = app.audit.emit

                def emit(rec):
                    self.records.append(rec)
                    orig(rec)
                app.audit.emit = emit
                self.app = app
                # The real wiring: start() opens the session store and mounts the API.
                await app.start()
                self.admin_port = app.admin_address[1]

            try:
                loop.run_until_complete(boot())
            except BaseException as exc:  # noqa: BLE001
                err.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self.thread = threading.Thread(target=run, daemon=True, name="sessions-proxy-test")
        self.thread.start()
        ready.wait(60)
        if err:
            raise err[0]
        for name in (b.name for b in self.app.config.backends):
            assert self.app.backend_status[name][0], self.app.backend_status[name]
        return self

    def call(self, fn, *args):
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
            await self.app.drain(0.2)       # also stops the session manager and closes its store
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop = None

    def port(self, backend: str) -> int:
        return self.app.bound_port(backend)

    # -- HTTP ----------------------------------------------------------------------------
    def api(self, method: str, path: str, body=None, *, token: str | None = TOKEN, raw: bytes | None = None,
            headers: dict | None = None) -> tuple[int, dict, object]:
        """(status, headers, parsed JSON body or raw text)."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        h = {"Content-Type": "application/json"} if data is not None else {}
        if token:
            h["Authorization"] = f"Bearer {token}"
        h.update(headers or {})
        req = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}{path}", data=data, method=method,
                                     headers=h)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, hdrs, text = r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            status, hdrs, text = e.code, dict(e.headers), e.read()
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = text.decode(errors="replace")
        return status, hdrs, parsed

    def create(self, **body) -> dict:
        body.setdefault("agent", "a1")
        body.setdefault("backends", [PG, MY])
        status, _, doc = self.api("POST", "/api/sessions", body)
        assert status == 201, (status, doc)
        return doc

    # -- audit ---------------------------------------------------------------------------
    def events(self, event: str | None = None, **match) -> list[dict]:
        out = []
        for r in list(self.records):
            if event is not None and r.get("event") != event:
                continue
            if all(r.get(k) == v for k, v in match.items()):
                out.append(r)
        return out


def wait_for(pred, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(interval)
    return pred()


def start_proxy(pg_server, pg_db, mariadb_server, my_db, *, store: str | None = None, env: dict | None = None,
                **kw) -> SessionProxy:
    tmp = tempfile.mkdtemp(prefix="sdp-sess-")
    store = store or os.path.join(tmp, "sessions.db")
    return SessionProxy(make_config(pg_server, pg_db, mariadb_server, my_db, store,
                                    os.path.join(tmp, "audit.json"), **kw), env=env).start()
