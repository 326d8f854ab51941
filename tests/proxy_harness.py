"""The one test harness for running the proxy (no tests here; imported by the test modules).

- config: `backend()` + `config_text()` build the YAML a test proxy starts from (one place
  for the defaults every test relies on: listen on port 0, no backend TLS, enforce
  read-only, a 5 s statement timeout, a fast audit flush).
- running: `ThreadedProxy` runs a real `ProxyApp` on its own uvloop thread, so blocking
  clients (psql, psycopg, PyMySQL, the mariadb CLI, urllib) and async ones (in the test's own
  loop) can all connect to it; `RelayProxy` is that with one relay listener
  (server/postgres.py or server/mysql.py, ARCHITECTURE.md "Runtime": `start(app, backend)`).
  Both are context managers: `with RelayProxy(...) as p:` stops the proxy whatever happens.
- audit: every record the app emits is captured in memory (`events()`), as well as written to
  the file; `read_audit()` reads a JSON-lines audit file written by a proxy in a subprocess.
- waiting: `wait_for()` polls a predicate (audit records arrive from the writer a little later).
- databases: `create_pg_db()` / `create_my_db()` make a uniquely named database per test
  module on the shared session servers, so parallel modules never collide;
  `unchanged()` is the checksum guard every write-blocking test ends with.
- processes: `reap()` makes sure a proxy started as a subprocess (CLI, demo) is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import yaml

AGENT = "agent1"
AGENT_PW = "agent-pw-1"


# -- small things -----------------------------------------------------------------------------

def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def wait_for(pred, timeout: float = 5.0, interval: float = 0.02):
    """Poll `pred` until it returns something truthy (returned) or `timeout` passes (then its
    last value is returned, so `assert wait_for(...)` fails with what it saw)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(interval)
    return pred()


def audit_file(prefix: str) -> str:
    """A fresh audit log path in its own temporary directory."""
    return os.path.join(tempfile.mkdtemp(prefix=prefix), "audit.json")


def read_audit(path) -> list[dict]:
    """The records of a JSON-lines audit file (ARCHITECTURE.md "Audit record"); [] while it
    does not exist yet."""
    import orjson
    p = Path(path)
    return [orjson.loads(x) for x in p.read_bytes().splitlines()] if p.exists() else []


def reap(proc: subprocess.Popen) -> None:
    """Kill a proxy subprocess that is still running (a test failed before it stopped it)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def unchanged(server, database: str | None = None):
    """Checksum guard: the database (schema, data, roles) is the same after the block as
    before it. Yields the checksum taken before."""
    before = server.checksum(database)
    yield before
    assert server.checksum(database) == before, f"database {database or '(all)'} changed"


# -- databases --------------------------------------------------------------------------------

@contextlib.contextmanager
def audit_writes_failing(proxy):
    """Inside the block the audit writer's own writes fail (ENOSPC) and the log is unhealthy;
    after it, writes work again and a flush succeeds. A real failure, not the `healthy` flag
    flipped from outside: the writer thread would flip that back on its next good write."""
    audit = proxy.app.audit

    def disk_full(data: bytes) -> None:
        raise OSError(28, "No space left on device (test)")
    audit._write = disk_full          # instance attribute: the writer thread's next write
    try:
        proxy.call(audit.emit, {"event": "test_marker"})
        assert not audit.flush()
        yield audit
    finally:
        del audit._write
    assert audit.flush()


def create_pg_db(pg_server, schema: str, prefix: str) -> str:
    """A new database on `pg_server` with `schema` applied by psql as the superuser."""
    db = unique(prefix)
    pg_server.psql(f"CREATE DATABASE {db}")
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", pg_server.socket_dir, "-p",
                    str(pg_server.port), "-U", "postgres", "-d", db],
                   input=schema, text=True, check=True, capture_output=True)
    return db


def create_my_db(mariadb_server, schema: str, prefix: str) -> str:
    """A new utf8mb4 database on `mariadb_server` with `schema` applied as root."""
    db = unique(prefix)
    mariadb_server.sql(f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4")
    mariadb_server.sql(schema, db)
    return db


# -- config -----------------------------------------------------------------------------------

def backend(name: str, type_: str, server, database: str, **overrides) -> dict:
    """One `backends[]` entry in front of `server` (anything with host/port/user/password)."""
    b = {"name": name, "type": type_, "address": server.host, "port": server.port,
         "username": server.user, "password": server.password, "database": database,
         "listen": "127.0.0.1:0", "backend_tls": {"mode": "disable"}}
    b.update(overrides)
    return b


_backend_entry = backend      # relay_config's keyword `backend` (overrides) shadows the name


def config_text(backends: list[dict], audit_path: str, *, security: dict | None = None,
                limits: dict | None = None, admin: dict | None = None, agents: list[dict] | None = None,
                sessions: dict | None = None, performance: dict | None = None) -> str:
    """The YAML config (issue 2's keys) for `backends`; extra keys merge over the defaults."""
    cfg = {"backends": backends,
           "security": {"enforce_read_only": True, **(security or {})},
           "limits": {"statement_timeout_ms": 5000, **(limits or {})},
           "audit": {"path": audit_path, "flush_interval_ms": 50},
           "admin": {"listen": "127.0.0.1:0", **(admin or {})}}
    if agents:
        cfg["agents"] = agents
    if sessions is not None:
        cfg["sessions"] = sessions
    if performance is not None:
        cfg["performance"] = performance
    return yaml.safe_dump(cfg)


def relay_config(name: str, type_: str, server, dbname: str, audit_path: str, *, security: dict | None = None,
                 limits: dict | None = None, backend: dict | None = None, agents: bool = False,
                 performance: dict | None = None) -> str:
    """Config for one relay test: backend `name` in front of `server` (database `dbname`),
    `backend` merged into its entry; `agents` adds the static agent AGENT / AGENT_PW."""
    b = _backend_entry(name, type_, server, dbname, **(backend or {}))
    return config_text([b], audit_path, security=security, limits=limits,
                       agents=[{"name": AGENT, "password": AGENT_PW}] if agents else None,
                       performance=performance)


def engine_available(dialect: str) -> bool:
    """Whether the real verdict engine can be built and used (it is written concurrently by
    others; relay tests fall back to a stand-in engine meanwhile)."""
    try:
        from sandbox_db_proxy.engine import Engine
        Engine(dialect).classify("SELECT 1")
        return True
    except Exception:  # noqa: BLE001
        return False


# -- a ProxyApp on its own loop thread --------------------------------------------------------

class ThreadedProxy:
    """A real `ProxyApp` on a uvloop thread. Subclasses say how it starts (`serve`) and stops
    (`shutdown`); audit records are captured in `records` before they are queued."""

    thread_name = "proxy-test"
    ready_timeout = 30.0      # seconds to wait for `serve` to finish
    stop_timeout = 10.0       # seconds to wait for `shutdown`
    wait_timeout = 5.0        # default of the `wait_for` method

    def __init__(self, config_text: str, env: dict | None = None):
        self.config_text = config_text
        self.env = env or {}
        self.records: list[dict] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.app = None

    # hooks
    def prepare(self, app) -> None:
        """Called with the new app before anything starts (e.g. to swap an engine)."""

    async def serve(self, app, cfg) -> None:
        raise NotImplementedError

    async def shutdown(self) -> None:
        raise NotImplementedError

    def after_start(self) -> None:
        """Called on the test's thread once `serve` has finished."""

    # life cycle
    def start(self):
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
            try:
                loop.run_until_complete(self._boot())
            except BaseException as exc:  # noqa: BLE001 -- re-raised on the test's thread
                err.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self.thread = threading.Thread(target=run, daemon=True, name=self.thread_name)
        self.thread.start()
        ready.wait(self.ready_timeout)
        if err:
            raise err[0]
        self.after_start()
        return self

    async def _boot(self) -> None:
        from sandbox_db_proxy.config import load_config_text
        from sandbox_db_proxy.server.app import ProxyApp
        cfg = load_config_text(self.config_text, source="<test>", env=self.env)
        app = ProxyApp(cfg)
        self.prepare(app)
        orig = app.audit.emit

        def emit(rec):
            self.records.append(rec)
            orig(rec)
        app.audit.emit = emit
        self.app = app
        await self.serve(app, cfg)

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
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.shutdown(), self.loop).result(self.stop_timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # audit
    def events(self, event: str | None = None, **match) -> list[dict]:
        """Captured records of `event` (any when None) whose fields equal `match`."""
        if self.app is not None:
            self.app.audit._write_native()   # lines of the native relay (server/native.py)
        out = []
        for r in list(self.records):
            if event is not None and r.get("event") != event:
                continue
            if all(r.get(k) == v for k, v in match.items()):
                out.append(r)
        return out

    def wait_for(self, pred, timeout: float | None = None):
        return wait_for(pred, self.wait_timeout if timeout is None else timeout)


class RelayProxy(ThreadedProxy):
    """One relay listener (`relay`: "postgres" or "mysql") for backend `backend_name`; the
    bound port is `port`. Extra keyword arguments go to the relay's `start()`."""

    def __init__(self, config_text: str, relay: str, backend_name: str, env: dict | None = None, **start_kw):
        super().__init__(config_text, env)
        self.relay = relay
        self.backend_name = backend_name
        self.start_kw = start_kw
        self.server = None
        self.port = 0

    async def serve(self, app, cfg) -> None:
        import importlib
        module = importlib.import_module(f"sandbox_db_proxy.server.{self.relay}")
        app.audit.start()
        self.server = await module.start(app, cfg.backend(self.backend_name), **self.start_kw)
        self.port = self.server.sockets[0].getsockname()[1]

    async def shutdown(self) -> None:
        self.server.close()
        await self.app.close_connections(list(self.app.connections), "test over")
        await asyncio.sleep(0.05)
        self.app.audit.close()
