"""ProxyApp + admin listener with a tiny fake relay (the real relays are tested in their own
files): probes, metrics, IP allowlist and connection limit at accept, SIGHUP-style reload,
drain, logins, engine caching."""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import textwrap

import aiohttp
import orjson
import pytest

from proxy_harness import read_audit
from sandbox_db_proxy.config import load_config
from sandbox_db_proxy.metrics import CLASSIFY_BUCKETS, Metrics
from sandbox_db_proxy.server import admin
from sandbox_db_proxy.server.app import ProxyApp

FAKE_RELAY = '''
import asyncio

class Conn:
    def __init__(self, app, backend, writer):
        self.app, self.writer = app, writer
        self.backend_name, self.agent, self.session_id = backend.name, None, None
        self.closed_with = None
    def close(self, reason):
        self.closed_with = reason
        CLOSED.append(reason)
        self.writer.write(("BYE " + reason + "\\n").encode())
        self.writer.close()

CLOSED = []

async def start(app, backend):
    async def handle(reader, writer):
        ip, port = writer.get_extra_info("peername")[:2]
        adm = app.admit(backend.name, ip, port)
        if not adm.ok:
            if adm.kind == "limit":
                writer.write(("ERR " + adm.reason + "\\n").encode())
            writer.close()
            return
        conn = Conn(app, backend, writer)
        app.track(conn)
        try:
            writer.write(b"HELLO\\n")
            await writer.drain()
            while await reader.readline():
                writer.write(b"OK\\n")
        finally:
            app.untrack(conn)
            app.release(backend.name)
            writer.close()
    return await asyncio.start_server(handle, backend.listen_host, backend.listen_port)
'''

_n = itertools.count()


class FakeEngine:
    """Stands in for sandbox_db_proxy.engine.Engine (tested in its own files)."""

    def __init__(self, dialect, blocked_commands=(), allow_unknown_functions=False, catalog=None,
                 cache_size=10_000, block_sensitive_show=True):
        self.dialect, self.blocked_commands = dialect, tuple(blocked_commands)
        self.allow_unknown_functions, self.catalog = allow_unknown_functions, catalog
        self.block_sensitive_show = block_sensitive_show


@pytest.fixture(autouse=True)
def fake_engine(monkeypatch):
    import sandbox_db_proxy.engine as engine_pkg
    monkeypatch.setattr(engine_pkg, "Engine", FakeEngine, raising=False)


@pytest.fixture
def relay(tmp_path, monkeypatch):
    """A fresh fake relay module (unique name so module caches never mix tests)."""
    name = f"fake_relay_{next(_n)}"
    (tmp_path / f"{name}.py").write_text(FAKE_RELAY)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def config_file(tmp_path, extra_backends: str = "", security: str = "", limits: str = "", audit: str = "",
                name: str = "config.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent("""\
        backends:
          - {{name: pg, type: postgres, address: 127.0.0.1, username: dbuser, password: dbpw, listen: "127.0.0.1:0"}}
        {extra_backends}
        admin: {{listen: "127.0.0.1:0", token: admintok}}
        audit: {{path: "{tmp_path}/audit.json", flush_interval_ms: 20 {audit}}}
        security: {{enforce_read_only: true {security}}}
        limits: {{drain_timeout_seconds: 5 {limits}}}
        sessions: {{store: "{tmp_path}/sessions.db"}}
        """).format(extra_backends=extra_backends, tmp_path=tmp_path, audit=audit, security=security, limits=limits))
    return p


async def make_app(path, relay, env=None) -> ProxyApp:
    app = ProxyApp(load_config(path, env=env or {}), config_path=str(path), env=env or {},
                   relays={"postgres": relay, "mysql": relay})
    await app.start()
    return app


async def get(app, path, headers=None):
    host, port = app.admin_address
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://{host}:{port}{path}", headers=headers) as r:
            return r.status, r.headers.get("Content-Type", ""), await r.read()


def audit_records(tmp_path) -> list[dict]:
    return read_audit(tmp_path / "audit.json")


async def flushed_events(app, tmp_path, event: str) -> list[dict]:
    """The audit file's records of `event`, once the batched writer has flushed."""
    await app.audit.aflush()
    return [x for x in audit_records(tmp_path) if x["event"] == event]


async def hello(app, backend="pg"):
    r, w = await asyncio.open_connection("127.0.0.1", app.bound_port(backend))
    line = await asyncio.wait_for(r.readline(), 5)
    return r, w, line


async def test_probes_metrics_and_ready(tmp_path, relay):
    app = await make_app(config_file(tmp_path), relay)
    try:
        status, ctype, body = await get(app, "/livez")
        assert status == 200 and orjson.loads(body)["status"] == "alive"
        status, ctype, body = await get(app, "/readyz")
        assert status == 200, body
        doc = orjson.loads(body)
        assert doc["status"] == "ready" and doc["backends"]["pg"]["ready"] is True
        assert doc["monitor_mode"] is False and "warning" not in doc
        r, w, line = await hello(app)
        assert line == b"HELLO\n"
        w.close()
        status, ctype, body = await get(app, "/metrics")
        assert status == 200 and ctype.startswith("text/plain")
        text = body.decode()
        for name in ("sandbox_db_proxy_connections_total{backend=\"pg\",outcome=\"accepted\",protocol=\"postgresql\"} 1.0",
                     "sandbox_db_proxy_monitor_mode 0.0", "sandbox_db_proxy_audit_queue_depth",
                     "sandbox_db_proxy_audit_dropped_total 0.0", 'sandbox_db_proxy_backend_ready{backend="pg"} 1.0'):
            assert name in text, name
        # probes and metrics need no token; nothing secret in them
        for secret in ("dbpw", "admintok"):
            assert secret not in text and secret.encode() not in (await get(app, "/readyz"))[2]
    finally:
        await app.drain(1)


async def test_backend_without_relay_is_not_ready_but_others_serve(tmp_path, relay, caplog):
    path = config_file(tmp_path, extra_backends=(
        "  - {name: ms, type: mssql, address: 127.0.0.1, username: u, password: p, listen: '127.0.0.1:0'}\n"
        "  - {name: mg, type: mongodb, address: 127.0.0.1, username: u, password: p, listen: '127.0.0.1:0'}"))
    app = await make_app(path, relay)
    try:
        status, _, body = await get(app, "/readyz")
        doc = orjson.loads(body)
        assert status == 503 and doc["status"] == "not ready"
        assert doc["backends"]["pg"]["ready"] is True
        assert doc["backends"]["ms"]["ready"] is False and "no relay for backend type 'mssql'" in doc["backends"]["ms"]["detail"]
        assert doc["backends"]["mg"]["ready"] is False
        assert any("ERROR: no relay for backend type 'mssql'" in r.getMessage() for r in caplog.records)
        _, _, line = await hello(app)  # pg still serves
        assert line == b"HELLO\n"
    finally:
        await app.drain(1)


async def test_backend_whose_engine_fails_is_not_served(tmp_path, relay, monkeypatch):
    import sandbox_db_proxy.engine as engine_pkg

    def broken(**kw):
        raise AttributeError("module 'sandbox_db_proxy._native' has no attribute 'fast_check'")

    monkeypatch.setattr(engine_pkg, "Engine", broken)
    app = await make_app(config_file(tmp_path), relay)
    try:
        assert app.servers == {}  # the relay was never started
        status, _, body = await get(app, "/readyz")
        assert status == 503 and "fast_check" in orjson.loads(body)["backends"]["pg"]["detail"]
    finally:
        await app.drain(1)


async def test_relay_that_fails_to_start_is_reported(tmp_path, relay):
    path = config_file(tmp_path)
    app = ProxyApp(load_config(path, env={}), relays={"postgres": "no_such_relay_module_xyz"})
    await app.start()
    try:
        status, _, body = await get(app, "/readyz")
        assert status == 503
        assert "ModuleNotFoundError" in orjson.loads(body)["backends"]["pg"]["detail"]
    finally:
        await app.drain(1)


async def test_monitor_mode_is_loud(tmp_path, relay, caplog):
    app = await make_app(config_file(tmp_path), relay, env={"ENFORCE_READ_ONLY": "false"})
    try:
        assert any("MONITOR MODE" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
        status, _, body = await get(app, "/readyz")
        doc = orjson.loads(body)
        assert doc["monitor_mode"] is True and "NOT enforcing read-only" in doc["warning"]
        assert "sandbox_db_proxy_monitor_mode 1.0" in (await get(app, "/metrics"))[2].decode()
    finally:
        await app.drain(1)


async def test_ip_allowlist_refuses_before_reading(tmp_path, relay):
    app = await make_app(config_file(tmp_path, security=", allowed_ips: [10.0.0.0/8]"), relay)
    try:
        r, w = await asyncio.open_connection("127.0.0.1", app.bound_port("pg"))
        assert await asyncio.wait_for(r.read(), 5) == b""  # closed without a greeting
        w.close()
        (rec,) = await flushed_events(app, tmp_path, "ip_denied")
        assert rec["client.address"] == "127.0.0.1" and rec["backend"] == "pg"
        assert "security.allowed_ips" in rec["reason"]
        text = (await get(app, "/metrics"))[2].decode()
        assert 'sandbox_db_proxy_ip_denied_total{backend="pg"} 1.0' in text
        assert 'outcome="ip_denied"' in text
    finally:
        await app.drain(1)


async def test_connection_limit(tmp_path, relay):
    app = await make_app(config_file(tmp_path, limits=", max_client_connections: 1"), relay)
    try:
        r1, w1, line = await hello(app)
        assert line == b"HELLO\n"
        r2, w2 = await asyncio.open_connection("127.0.0.1", app.bound_port("pg"))
        refused = await asyncio.wait_for(r2.read(), 5)
        assert refused.startswith(b"ERR too many connections") and b"max_client_connections" in refused
        w1.close()
        await asyncio.sleep(0.1)
        r3, w3, line = await hello(app)  # the slot is free again
        assert line == b"HELLO\n"
        w3.close()
        (rec,) = await flushed_events(app, tmp_path, "limit")
        assert rec["limit"] == "max_client_connections"
        assert 'sandbox_db_proxy_limit_breaches_total{backend="pg",limit="max_client_connections"} 1.0' in \
            (await get(app, "/metrics"))[2].decode()
    finally:
        await app.drain(1)


async def test_reload_swaps_config_or_keeps_old(tmp_path, relay, caplog):
    path = config_file(tmp_path)
    app = await make_app(path, relay)
    try:
        first = app.config
        # invalid file: old config stays, error logged and audited
        path.write_text(path.read_text().replace("enforce_read_only: true", "enforce_read_only: maybe"))
        assert app.reload() is False
        assert app.config is first
        assert any("config reload FAILED" in r.getMessage() and "enforce_read_only" in r.getMessage()
                   for r in caplog.records)
        # valid change: new snapshot; limits apply to the next connection
        path.write_text(path.read_text().replace("enforce_read_only: maybe", "enforce_read_only: true")
                        .replace("drain_timeout_seconds: 5", "drain_timeout_seconds: 5, max_client_connections: 1"))
        assert app.reload() is True
        assert app.config is not first and app.config.limits.max_client_connections == 1
        reloads = await flushed_events(app, tmp_path, "config_reload")
        assert [x["outcome"] for x in reloads] == ["error", "success"]
        assert "enforce_read_only" in reloads[0]["reason"]
        text = (await get(app, "/metrics"))[2].decode()
        assert 'sandbox_db_proxy_config_reloads_total{outcome="error"} 1.0' in text
        assert 'sandbox_db_proxy_config_reloads_total{outcome="success"} 1.0' in text
    finally:
        await app.drain(1)


async def test_reload_adds_and_removes_backends(tmp_path, relay):
    path = config_file(tmp_path)
    app = await make_app(path, relay)
    try:
        text = path.read_text()
        path.write_text(text.replace("admin:", "  - {name: my, type: mysql, address: 127.0.0.1, username: u, "
                                     "password: p, listen: '127.0.0.1:0'}\nadmin:"))
        assert app.reload()
        for _ in range(1000):
            if app.bound_port("my"):
                break
            await asyncio.sleep(0.02)
        _, w, line = await hello(app, "my")
        assert line == b"HELLO\n"
        path.write_text(text)  # remove "my" again: its open connection is closed with a reason
        assert app.reload()
        for _ in range(1000):
            if "my" not in app.servers:
                break
            await asyncio.sleep(0.02)
        assert "my" not in app.servers and app.bound_port("my") is None
        ready, body = app.readiness()
        assert ready and list(body["backends"]) == ["pg"]
    finally:
        await app.drain(1)


async def test_drain_waits_then_closes_with_reason(tmp_path, relay):
    app = await make_app(config_file(tmp_path), relay)
    r, w, line = await hello(app)
    port = app.bound_port("pg")
    app.audit.event(None, "alert", note="before drain")
    await app.drain(0.3)
    rest = await asyncio.wait_for(r.read(), 5)
    assert rest == b"BYE the proxy is shutting down\n"
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)  # no longer accepting
    assert any(x.get("note") == "before drain" for x in audit_records(tmp_path))  # flushed


async def test_drain_closes_idle_connections_at_once(tmp_path, relay):
    app = await make_app(config_file(tmp_path), relay)
    r1, w1, _ = await hello(app)
    r2, w2, _ = await hello(app)
    for _ in range(1000):
        if len(app.connections) == 2:
            break
        await asyncio.sleep(0.01)
    busy, idle = sorted(app.connections, key=id)
    idle.idle = True          # a relay sets this between statements
    busy.idle = False

    async def busy_finishes():
        await asyncio.sleep(0.5)
        app.untrack(busy)     # the running statement completed; the relay lets go

    task = asyncio.create_task(busy_finishes())
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await app.drain(30)
    await task
    assert idle.closed_with == "the proxy is shutting down"
    assert busy.closed_with is None   # finished on its own, not cut off
    assert loop.time() - t0 < 20      # did not sit out the 30 s timeout for the idle one


async def test_drain_lets_finished_connections_go_quietly(tmp_path, relay):
    app = await make_app(config_file(tmp_path), relay)
    r, w, _ = await hello(app)

    async def client_finishes():
        await asyncio.sleep(0.2)
        w.close()

    task = asyncio.create_task(client_finishes())
    await app.drain(5)
    await task
    assert not app.connections


async def test_fail_closed_audit_makes_readyz_fail(tmp_path, relay):
    (tmp_path / "blocker").write_text("x")
    path = config_file(tmp_path, audit=", fail_closed: true")
    path.write_text(path.read_text().replace(str(tmp_path / "audit.json"), str(tmp_path / "blocker" / "a.json")))
    app = await make_app(path, relay)
    try:
        status, _, body = await get(app, "/readyz")
        doc = orjson.loads(body)
        assert status == 503 and doc["audit"]["healthy"] is False and doc["audit"]["error"]
        assert app.audit.refuse
    finally:
        await app.drain(1)


def test_lookup_login(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(textwrap.dedent("""\
        backends:
          - {name: pg, type: postgres, address: h, username: dbuser, password: dbpw, listen: "127.0.0.1:0"}
          - {name: my, type: mysql, address: h, username: myuser, password: mypw, listen: "127.0.0.1:0"}
          - {name: pg2, type: postgres, address: h, username: other, password: otherpw, listen: "127.0.0.1:0"}
        agents:
          - {name: bot, username: botuser, password: botpw, backends: [pg, my]}
        """))
    app = ProxyApp(load_config(p, env={}))
    login = app.lookup_login("pg", "botuser")
    assert (login.agent, login.username, login.password, login.source) == ("bot", "botuser", "botpw", "agent")
    assert "botpw" not in repr(login)
    # agents list pg: the database's own credentials are not a login there
    assert app.lookup_login("pg", "dbuser") is None
    assert app.lookup_login("pg2", "botuser") is None
    fallback = app.lookup_login("pg2", "other")
    assert (fallback.password, fallback.source, fallback.session_id) == ("otherpw", "backend", None)
    assert app.lookup_login("pg2", "nobody") is None

    from sandbox_db_proxy.server.app import Login
    app.login_providers.append(lambda b, u: Login(agent="s-agent", username=u, scram_verifier="SCRAM-SHA-256$...",
                                                  session_id="s1", source="session") if u == "sess_1" else None)
    assert app.lookup_login("pg", "sess_1").session_id == "s1"
    assert app.lookup_login("pg", "botuser").source == "agent"


def test_engine_per_backend_cached_across_compatible_reloads(tmp_path):
    p = tmp_path / "c.yaml"
    base = textwrap.dedent("""\
        backends:
          - {name: pg, type: postgres, address: h, username: u, password: p, listen: "127.0.0.1:0"}
          - {name: my, type: mysql, address: h, username: u, password: p, listen: "127.0.0.1:0", block_sensitive_show: false}
          - {name: ms, type: mssql, address: h, username: u, password: p, listen: "127.0.0.1:0"}
          - {name: mg, type: mongodb, address: h, username: u, password: p, listen: "127.0.0.1:0"}
        security: {blocked_commands: [COPY]}
        limits: {idle_timeout_seconds: 900}
        """)
    p.write_text(base)
    app = ProxyApp(load_config(p, env={}), config_path=str(p), env={})
    pg, my, ms = app.engine("pg"), app.engine("my"), app.engine("ms")
    assert (pg.dialect, my.dialect, ms.dialect) == ("postgres", "mysql", "tsql")
    assert pg.blocked_commands == ("COPY",) and my.block_sensitive_show is False
    assert app.engine("pg") is pg
    with pytest.raises(ValueError, match="no SQL engine"):
        app.engine("mg")
    pg.catalog = "pg_proc catalogue"
    p.write_text(base.replace("idle_timeout_seconds: 900", "idle_timeout_seconds: 60"))
    assert app.reload()
    assert app.engine("pg") is pg  # unchanged settings: same engine, cache and catalogue kept
    p.write_text(base.replace("[COPY]", "[COPY, GRANT]"))
    assert app.reload()
    new_pg = app.engine("pg")
    assert new_pg is not pg and new_pg.blocked_commands == ("COPY", "GRANT")
    assert new_pg.catalog == "pg_proc catalogue"  # carried over


def test_backend_metrics_prebound():
    m = Metrics()
    bm = m.backend("pg", "postgresql")
    assert m.backend("pg", "postgresql") is bm
    bm.statement("allowed", "read")
    bm.statement("allowed", "read")
    bm.statement("blocked", "write")
    bm.block("dml-insert")
    bm.classification("fast", 2e-6)
    bm.query_seconds.observe(0.002)
    bm.active.inc()
    bm.backend_error()
    text = m.render().decode()
    assert 'sandbox_db_proxy_statements_total{backend="pg",class="read",verdict="allowed"} 2.0' in text
    assert 'sandbox_db_proxy_blocks_total{backend="pg",rule="dml-insert"} 1.0' in text
    assert 'sandbox_db_proxy_classification_seconds_bucket{le="1e-06",path="fast"} 0.0' in text
    assert 'sandbox_db_proxy_classification_seconds_bucket{le="2.5e-06",path="fast"} 1.0' in text
    assert 'sandbox_db_proxy_query_seconds_count{backend="pg"} 1.0' in text
    assert 'sandbox_db_proxy_connections_active{backend="pg"} 1.0' in text
    assert 'sandbox_db_proxy_backend_errors_total{backend="pg"} 1.0' in text
    assert CLASSIFY_BUCKETS[0] == 1e-6
    assert "_created" not in text
    # `le` is inclusive: an observation exactly on a bound counts in that bucket
    bm.classification("deep", 1e-6)
    bm.classification("deep", 0.5)
    text = m.render().decode()
    assert 'sandbox_db_proxy_classification_seconds_bucket{le="1e-06",path="deep"} 1.0' in text
    assert 'sandbox_db_proxy_classification_seconds_bucket{le="0.1",path="deep"} 1.0' in text
    assert 'sandbox_db_proxy_classification_seconds_bucket{le="+Inf",path="deep"} 2.0' in text
    assert 'sandbox_db_proxy_classification_seconds_count{path="deep"} 2.0' in text
    assert 'sandbox_db_proxy_classification_seconds_sum{path="deep"} 0.500001' in text
    # the exposition parses as Prometheus text format
    from prometheus_client.parser import text_string_to_metric_families
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"sandbox_db_proxy_statements", "sandbox_db_proxy_blocks", "sandbox_db_proxy_classification_seconds",
            "sandbox_db_proxy_query_seconds", "sandbox_db_proxy_connections", "sandbox_db_proxy_audit_dropped",
            "sandbox_db_proxy_monitor_mode", "sandbox_db_proxy_limit_breaches", "sandbox_db_proxy_ip_denied",
            "sandbox_db_proxy_config_reloads", "sandbox_db_proxy_backend_errors",
            "sandbox_db_proxy_audit_queue_depth", "sandbox_db_proxy_connections_active"} <= names


async def test_check_bearer(tmp_path, relay):
    app = await make_app(config_file(tmp_path), relay)
    try:
        from aiohttp.test_utils import make_mocked_request
        ok = make_mocked_request("GET", "/api/x", headers={"Authorization": "Bearer admintok"})
        bad = make_mocked_request("GET", "/api/x", headers={"Authorization": "Bearer admintoK"})
        none = make_mocked_request("GET", "/api/x")
        basic = make_mocked_request("GET", "/api/x", headers={"Authorization": "Basic admintok"})
        assert admin.check_bearer(ok, app) and not admin.check_bearer(bad, app)
        assert not admin.check_bearer(none, app) and not admin.check_bearer(basic, app)
    finally:
        await app.drain(1)


async def test_admin_setup_hook_adds_routes(tmp_path, relay):
    from aiohttp import web

    async def hello_route(request):
        return web.json_response({"hi": True})

    app = ProxyApp(load_config(config_file(tmp_path), env={}), relays={"postgres": relay})
    app.admin_setup_hooks.append(lambda web_app, proxy: web_app.router.add_get("/hook/hello", hello_route))
    await app.start()
    try:
        status, _, body = await get(app, "/hook/hello")
        assert status == 200 and orjson.loads(body) == {"hi": True}
    finally:
        await app.drain(1)


def test_reload_fails_whole_when_an_engine_cannot_be_built(tmp_path, monkeypatch):
    import sandbox_db_proxy.engine as engine_pkg

    p = tmp_path / "c.yaml"
    base = ('backends: [{name: pg, type: postgres, address: h, username: u, password: p, listen: "127.0.0.1:0"}]\n'
            "security: {blocked_commands: [COPY]}\n")
    p.write_text(base)
    app = ProxyApp(load_config(p, env={}), config_path=str(p), env={})
    pg = app.engine("pg")
    first = app.config

    def broken(**kw):
        raise RuntimeError("grammar failed to load")

    monkeypatch.setattr(engine_pkg, "Engine", broken)
    p.write_text(base.replace("[COPY]", "[COPY, GRANT]"))
    assert app.reload() is False
    assert app.config is first and app.engine("pg") is pg  # nothing half-applied


async def test_reload_closes_connections_of_removed_agents(tmp_path, relay):
    path = config_file(tmp_path)
    text = path.read_text()
    path.write_text(text.replace("admin:", "agents:\n  - {name: bot1, password: a}\n  - {name: bot2, password: b}\nadmin:"))
    app = await make_app(path, relay)
    try:
        r1, w1, _ = await hello(app)
        r2, w2, _ = await hello(app)
        for _ in range(1000):
            if len(app.connections) == 2:
                break
            await asyncio.sleep(0.01)
        by_port = {c.writer.get_extra_info("peername")[1]: c for c in app.connections}
        c1 = by_port[w1.get_extra_info("sockname")[1]]
        c2 = by_port[w2.get_extra_info("sockname")[1]]
        c1.agent, c2.agent = "bot1", "bot2"   # what the relay sets after login
        path.write_text(text.replace("admin:", "agents:\n  - {name: bot2, password: b}\nadmin:"))
        assert app.reload()
        gone = await asyncio.wait_for(r1.read(), 5)
        assert gone == b"BYE your login was removed from the proxy configuration; connection closed\n"
        assert c2.closed_with is None and c2 in app.connections
    finally:
        await app.drain(1)


async def test_sessions_attached_on_start_and_detached_on_drain(tmp_path, relay):
    """Issue 5's manager is started with the app: its login provider is consulted, its API is
    mounted on the admin listener (token required), and drain stops it."""
    if importlib.util.find_spec("sandbox_db_proxy.sessions.manager") is None:
        pytest.skip("sessions not built yet")
    app = await make_app(config_file(tmp_path), relay)
    try:
        assert app.sessions is not None
        assert app.sessions.lookup_login in app.login_providers
        assert (tmp_path / "sessions.db").exists()
        status, _, _ = await get(app, "/api/sessions")
        assert status == 401
        status, _, _ = await get(app, "/api/sessions", headers={"Authorization": "Bearer admintok"})
        assert status == 200
    finally:
        await app.drain(1)
    assert not app.login_providers
