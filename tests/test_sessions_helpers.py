"""Shared helpers for the session tests (tests/test_sessions_*.py; no tests here).

`SessionProxy` is the shared `proxy_harness.ThreadedProxy` running a complete `ProxyApp`
(`await app.start()`: admin listener with the control API, the PostgreSQL and the MySQL
relay, the session manager) in front of the real `pg_server` and `mariadb_server`, so
blocking clients (psycopg, PyMySQL, urllib) can use it. Audit records are captured in memory
as well as written. Each proxy gets its own SQLite session store unless one is passed
(restart tests).
"""

from __future__ import annotations

import json
import os
import tempfile
import urllib.error
import urllib.request
import uuid

import pytest

import proxy_harness
from proxy_harness import ThreadedProxy, backend, config_text

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


def create_pg_db(pg_server) -> str:
    return proxy_harness.create_pg_db(pg_server, PG_SCHEMA, "sdp_sess")


def create_my_db(mariadb_server) -> str:
    return proxy_harness.create_my_db(mariadb_server, MY_SCHEMA, "sdp_sess")


def make_config(pg_server, pg_db, mariadb_server, my_db, store: str, audit: str, *,
                sessions: dict | None = None, token: str | None = TOKEN, limits: dict | None = None) -> str:
    backends = []
    if pg_server is not None:
        backends.append(backend(PG, "postgres", pg_server, pg_db))
    if mariadb_server is not None:
        backends.append(backend(MY, "mysql", mariadb_server, my_db))
    return config_text(backends, audit, limits=limits, admin={"token": token} if token else None,
                       sessions={"store": store, **(sessions or {})})


class SessionProxy(ThreadedProxy):
    thread_name = "sessions-proxy-test"
    ready_timeout = 60.0
    stop_timeout = 20.0

    def __init__(self, config_text: str, env: dict | None = None):
        super().__init__(config_text, env)
        self.admin_port = 0

    async def serve(self, app, cfg) -> None:
        # The real wiring: start() opens the session store and mounts the API.
        await app.start()
        self.admin_port = app.admin_address[1]

    def after_start(self) -> None:
        for name in (b.name for b in self.app.config.backends):
            assert self.app.backend_status[name][0], self.app.backend_status[name]

    async def shutdown(self) -> None:
        await self.app.drain(0.2)       # also stops the session manager and closes its store

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


def wait_for(pred, timeout: float = 10.0, interval: float = 0.05):
    return proxy_harness.wait_for(pred, timeout, interval)


def start_proxy(pg_server, pg_db, mariadb_server, my_db, *, store: str | None = None, env: dict | None = None,
                **kw) -> SessionProxy:
    tmp = tempfile.mkdtemp(prefix="sdp-sess-")
    store = store or os.path.join(tmp, "sessions.db")
    return SessionProxy(make_config(pg_server, pg_db, mariadb_server, my_db, store,
                                    os.path.join(tmp, "audit.json"), **kw), env=env).start()


@pytest.fixture(scope="module")
def dbs(pg_server, mariadb_server):
    """(PostgreSQL database, MariaDB database) for one test module."""
    return create_pg_db(pg_server), create_my_db(mariadb_server)


def proxy_fixture(**kw):
    """A module-scoped `proxy` fixture: a `SessionProxy` in front of `dbs`, `kw` to start_proxy."""
    @pytest.fixture(scope="module")
    def proxy(pg_server, mariadb_server, dbs):
        with start_proxy(pg_server, dbs[0], mariadb_server, dbs[1], **kw) as p:
            yield p
    return proxy
