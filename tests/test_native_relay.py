"""The native relay (issue 6; server/native.py + rust/core/src/{relay,dataplane}): logged-in
sessions move to the Rust data plane, and everything the Python relay guaranteed still holds
there -- through real servers and real drivers. (The whole relay suite runs on the native
relay too, since it is the default; this module checks what is specific to it: that
sessions really are native, the audit lines the data plane writes itself, the verdict round
trip to the Python engine, the native cache and its invalidation, kill switch, idle timeout,
fail-closed audit, metrics, and which sessions stay in Python.)"""

from __future__ import annotations

import orjson
import psycopg
import pymysql
import pytest
import yaml

import test_mysql_helpers as MH
import test_pg_helpers as PH
from proxy_harness import audit_file, audit_writes_failing, read_audit, unchanged

pytestmark = pytest.mark.pg


def _with(text: str, **sections) -> str:
    cfg = yaml.safe_load(text)
    for k, v in sections.items():
        cfg.setdefault(k, {}).update(v)
    return yaml.safe_dump(cfg)


@pytest.fixture(scope="module")
def pg_db(pg_server):
    return PH.create_db(pg_server, "sdp_native")


@pytest.fixture(scope="module")
def pg_proxy(pg_server, pg_db):
    path = audit_file("sdp-native-")
    with PH.ProxyHarness(PH.make_config(pg_server, pg_db, path)).start() as h:
        h.audit_path = path
        yield h


def _pg(proxy, **kw):
    return psycopg.connect(proxy.dsn(**kw), autocommit=True)


def _native_count(proxy) -> int:
    return proxy.call(lambda: len(proxy.app.native.sessions))


def test_pg_session_is_relayed_natively(pg_proxy):
    before = _native_count(pg_proxy)
    with _pg(pg_proxy) as c:
        assert c.execute("SELECT count(*) FROM accounts").fetchone()[0] == 50
        assert _native_count(pg_proxy) == before + 1
    assert pg_proxy.wait_for(lambda: _native_count(pg_proxy) == before)
    # the connection slot was given back and the connection untracked
    assert pg_proxy.wait_for(lambda: pg_proxy.call(lambda: len(pg_proxy.app.connections)) == 0)


def test_pg_native_audit_line_in_file(pg_proxy):
    """The data plane writes the allowed statement's line itself: same fields as the Python
    relay's record (ts, event, connection fields, verdict, rule, class, text, operation,
    message, rows, duration)."""
    sql = "SELECT id, owner FROM accounts WHERE id < 4 ORDER BY id"
    with _pg(pg_proxy) as c:
        assert len(c.execute(sql, prepare=False).fetchall()) == 3
    pg_proxy.app.audit.flush()

    def line():
        return [r for r in read_audit(pg_proxy.audit_path) if r.get("db.query.text") == sql]
    recs = pg_proxy.wait_for(line)
    assert recs, "no audit line for the statement"
    r = recs[-1]
    assert r["event"] == "statement" and r["verdict"] == "ALLOWED"
    assert r["rule"] and r["class"] == "read"
    assert r["db.operation.name"] == "SELECT" and r["protocol.message"] == "Query"
    assert r["rows"] == 3 and isinstance(r["duration_ms"], float)
    assert r["agent"] == PH.AGENT and r["backend"] == PH.BACKEND and r["db.system.name"] == "postgresql"
    assert r["db.namespace"] and r["connection.id"] and r["ts"].endswith("Z")


def test_pg_blocked_write_native(pg_proxy, pg_server, pg_db):
    with unchanged(pg_server, pg_db):
        with _pg(pg_proxy) as c:
            for sql in ("DELETE FROM accounts", "UPDATE notes SET body = 'x'",
                        "SELECT 1; DROP TABLE notes"):
                with pytest.raises(psycopg.Error) as ei:
                    c.execute(sql, prepare=False)
                assert ei.value.sqlstate == "25006", sql
                assert "sandbox-db-proxy" in (ei.value.diag.message_detail or "")
            # extended protocol too
            with pytest.raises(psycopg.Error) as ei:
                c.execute("INSERT INTO notes (body) VALUES (%s)", ("x",))
            assert ei.value.sqlstate == "25006"
            assert c.execute("SELECT 1").fetchone()[0] == 1
    assert pg_proxy.wait_for(lambda: pg_proxy.events("statement", verdict="BLOCKED",
                                                      **{"db.query.text": "DELETE FROM accounts"}))


def test_pg_verdict_round_trip_then_native_cache(pg_proxy):
    """A statement the Rust cache does not know goes to the Python engine once; afterwards the
    native cache answers (the engine is not asked again)."""
    sql = "WITH x AS (SELECT id FROM accounts WHERE id < 5) SELECT count(*) FROM x"
    eng = pg_proxy.app.engine(PH.BACKEND)
    with _pg(pg_proxy) as c:
        assert c.execute(sql, prepare=False).fetchone()[0] == 4
        seen = eng.stats.cache_hits + eng.stats.deep + eng.stats.fast_allow
        for _ in range(5):
            assert c.execute(sql, prepare=False).fetchone()[0] == 4
        assert eng.stats.cache_hits + eng.stats.deep + eng.stats.fast_allow == seen
    cache = pg_proxy.app.native.caches[PH.BACKEND]
    assert cache.contains(sql)


def test_pg_literal_variants_hit_the_fingerprint(pg_proxy):
    eng = pg_proxy.app.engine(PH.BACKEND)
    with _pg(pg_proxy) as c:
        c.execute("SELECT owner FROM accounts WHERE id = 1", prepare=False)
        asked = eng.stats.cache_hits + eng.stats.deep + eng.stats.fast_allow
        for i in range(2, 30):
            assert c.execute(f"SELECT owner FROM accounts WHERE id = {i}", prepare=False).fetchone()[0] == f"owner{i}"
        assert eng.stats.cache_hits + eng.stats.deep + eng.stats.fast_allow == asked


def test_pg_cache_cleared_on_reload(pg_proxy):
    sql = "SELECT owner FROM accounts WHERE id = 42 AND owner <> 'zz'"
    with _pg(pg_proxy) as c:
        c.execute(sql, prepare=False)
    cache = pg_proxy.app.native.caches[PH.BACKEND]
    assert cache.contains(sql)
    pg_proxy.call(lambda: pg_proxy.app.apply_config(pg_proxy.app.config))
    assert not cache.contains(sql)


def test_pg_kill_switch_reaches_native_session(pg_proxy):
    with _pg(pg_proxy) as c:
        c.execute("SELECT 1")
        n = pg_proxy.call(lambda: pg_proxy.app.close_connections(list(pg_proxy.app.connections), "operator says so"))
        assert n >= 1
        with pytest.raises(psycopg.OperationalError) as ei:
            c.execute("SELECT 1")
        assert "operator says so" in str(ei.value) or c.closed or ei.value.sqlstate in (None, "57P01")


def test_pg_idle_timeout_native(pg_server, pg_db):
    text = PH.make_config(pg_server, pg_db, audit_file("sdp-native-idle-"), limits={"idle_timeout_seconds": 1})
    with PH.ProxyHarness(text).start() as p:
        with _pg(p) as c:
            c.execute("SELECT 1")
            assert p.call(lambda: len(p.app.native.sessions)) == 1
            assert p.wait_for(lambda: p.events("limit", limit="idle_timeout_seconds"), timeout=8)
            with pytest.raises(psycopg.OperationalError):
                c.execute("SELECT 1")


def test_pg_audit_fail_closed_refuses_native(pg_server, pg_db):
    text = _with(PH.make_config(pg_server, pg_db, audit_file("sdp-native-fc-")), audit={"fail_closed": True})
    with PH.ProxyHarness(text).start() as p:
        with _pg(p) as c:
            c.execute("SELECT 2", prepare=False)     # now in the native cache
            with audit_writes_failing(p):
                with pytest.raises(psycopg.Error) as ei:
                    c.execute("SELECT 2", prepare=False)
                assert ei.value.sqlstate == "25006"
                assert "audit" in ei.value.diag.message_primary
            assert c.execute("SELECT 2", prepare=False).fetchone()[0] == 2


def test_pg_metrics_count_native_statements(pg_proxy):
    with _pg(pg_proxy) as c:
        for _ in range(7):
            c.execute("SELECT 1 AS native_metric", prepare=False)
    text = pg_proxy.call(lambda: pg_proxy.app.metrics.render()).decode()
    line = [x for x in text.splitlines()
            if x.startswith("sandbox_db_proxy_statements_total{") and 'verdict="allowed"' in x and PH.BACKEND in x]
    assert line and float(line[0].rsplit(" ", 1)[1]) >= 7
    assert "sandbox_db_proxy_classification_seconds_count{path=\"cache\"}" in text


def test_pg_native_off_keeps_python_relay(pg_server, pg_db):
    text = _with(PH.make_config(pg_server, pg_db, audit_file("sdp-native-off-")), performance={"native_relay": False})
    with PH.ProxyHarness(text).start() as p:
        with _pg(p) as c:
            assert c.execute("SELECT count(*) FROM notes").fetchone()[0] == 3
            assert p.call(lambda: len(p.app.native.sessions)) == 0


def test_pg_monitor_mode_stays_in_python(pg_server, pg_db):
    text = PH.make_config(pg_server, pg_db, audit_file("sdp-native-mon-"), security={"enforce_read_only": False})
    with PH.ProxyHarness(text).start() as p:
        with _pg(p) as c:
            c.execute("SELECT 1")
            assert p.call(lambda: len(p.app.native.sessions)) == 0


def test_pg_many_sessions_and_pipelines(pg_proxy):
    conns = [_pg(pg_proxy) for _ in range(20)]
    try:
        for i, c in enumerate(conns):
            with c.pipeline():
                curs = [c.execute("SELECT %s::int + 1", (j,)) for j in range(10)]
            assert [cur.fetchone()[0] for cur in curs] == list(range(1, 11))
        assert _native_count(pg_proxy) >= 20
    finally:
        for c in conns:
            c.close()


def test_pg_io_threads_spread_sessions(pg_server, pg_db):
    """`performance.io_threads: 3`: three I/O threads, sessions spread over all of them (the
    lane is in the session id's low bits), and on each lane reads pass and writes are
    blocked with the backend unchanged."""
    text = _with(PH.make_config(pg_server, pg_db, audit_file("sdp-native-lanes-")), performance={"io_threads": 3})
    with PH.ProxyHarness(text).start() as p:
        conns = [_pg(p) for _ in range(6)]
        try:
            for c in conns:
                assert c.execute("SELECT count(*) FROM notes").fetchone()[0] == 3
            assert p.call(lambda: p.app.native.dp.threads()) == 3
            lanes = p.call(lambda: sorted(sid & 63 for sid in p.app.native.sessions))
            assert lanes == [0, 0, 1, 1, 2, 2]
            with unchanged(pg_server, pg_db):
                for c in conns:
                    with pytest.raises(psycopg.Error) as ei:
                        c.execute("DELETE FROM notes", prepare=False)
                    assert ei.value.sqlstate == "25006"
                    assert c.execute("SELECT 1").fetchone()[0] == 1
        finally:
            for c in conns:
                c.close()


def test_io_threads_default_is_one_per_cpu_at_most_8():
    import os

    from sandbox_db_proxy.config.models import PerformanceConfig, cgroup_cpu_limit
    assert PerformanceConfig(io_threads=5).effective_io_threads() == 5
    want = min(len(os.sched_getaffinity(0)), cgroup_cpu_limit() or 64, 8)
    assert PerformanceConfig().effective_io_threads() == max(1, want)
    with pytest.raises(ValueError):
        PerformanceConfig(io_threads=65)


@pytest.mark.parametrize("v2,v1,want", [
    ("max 100000", None, None),
    ("150000 100000", None, 2),
    ("50000 100000", None, 1),
    ("400000 100000", None, 4),
    ("garbage", None, None),
    (None, ("-1", "100000"), None),
    (None, ("250000", "100000"), 3),
    (None, ("x", "100000"), None),
    (None, None, None),
])
def test_io_threads_follow_a_container_cpu_quota(tmp_path, v2, v1, want):
    from sandbox_db_proxy.config.models import cgroup_cpu_limit
    p2 = tmp_path / "cpu.max"
    q1, per1 = tmp_path / "cfs_quota_us", tmp_path / "cfs_period_us"
    if v2 is not None:
        p2.write_text(v2 + "\n")
    if v1 is not None:
        q1.write_text(v1[0] + "\n")
        per1.write_text(v1[1] + "\n")
    assert cgroup_cpu_limit(str(p2), (str(q1), str(per1))) == want


# -- MySQL / MariaDB ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def my_db(mariadb_server):
    return MH.create_db(mariadb_server, "sdp_native_my")


@pytest.fixture(scope="module")
def my_proxy(mariadb_server, my_db):
    path = audit_file("sdp-native-my-")
    with MH.MyProxy(MH.make_config(mariadb_server, my_db, path)).start() as h:
        h.audit_path = path
        yield h


def _my(proxy, server, db, **kw):
    return pymysql.connect(host="127.0.0.1", port=proxy.port, user=server.user, password=server.password,
                           database=db, autocommit=True, **kw)


@pytest.mark.mariadb
def test_mysql_session_native_query_and_block(my_proxy, mariadb_server, my_db):
    with unchanged(mariadb_server, my_db):
        c = _my(my_proxy, mariadb_server, my_db)
        try:
            with c.cursor() as cur:
                cur.execute("SELECT count(*) FROM users")
                assert cur.fetchone()[0] == 11
                assert my_proxy.call(lambda: len(my_proxy.app.native.sessions)) >= 1
                with pytest.raises(pymysql.err.MySQLError) as ei:
                    cur.execute("DELETE FROM users")
                assert ei.value.args[0] == 1792
                cur.execute("SELECT name FROM users WHERE id = %s", (2,))
                assert cur.fetchone()[0] == "bob"
        finally:
            c.close()
    my_proxy.app.audit.flush()
    recs = my_proxy.wait_for(lambda: [r for r in read_audit(my_proxy.audit_path)
                                      if r.get("db.query.text") == "SELECT count(*) FROM users"])
    assert recs and recs[-1]["protocol.message"] == "COM_QUERY" and recs[-1]["rows"] == 1
    assert my_proxy.wait_for(lambda: my_proxy.events("statement", verdict="BLOCKED",
                                                      **{"db.query.text": "DELETE FROM users"}))


@pytest.mark.mariadb
def test_mysql_prepared_statements_native(my_proxy, mariadb_server, my_db):
    import mysql.connector
    c = mysql.connector.connect(host="127.0.0.1", port=my_proxy.port, user=mariadb_server.user,
                                password=mariadb_server.password, database=my_db, autocommit=True)
    try:
        cur = c.cursor(prepared=True)
        for i in range(1, 6):
            cur.execute("SELECT name FROM users WHERE id = %s", (i,))
            assert cur.fetchone()[0] in ("alice", "bob", "carol", "dave", "erin")
        with pytest.raises(mysql.connector.Error):
            cur.execute("UPDATE users SET name = %s WHERE id = %s", ("x", 1))
        cur.close()
    finally:
        c.close()


@pytest.mark.mariadb
def test_mysql_use_updates_audit_namespace(mariadb_server, my_db):
    other = MH.create_db(mariadb_server, "sdp_native_other")
    path = audit_file("sdp-native-use-")
    text = MH.make_config(mariadb_server, my_db, path, backend={"allowed_databases": [my_db, other]})
    with MH.MyProxy(text).start() as p:
        c = _my(p, mariadb_server, my_db)
        try:
            with c.cursor() as cur:
                cur.execute(f"USE {other}")
                cur.execute("SELECT count(*) FROM orders")
                assert cur.fetchone()[0] == 3
        finally:
            c.close()
        p.app.audit.flush()
        recs = p.wait_for(lambda: [r for r in read_audit(path)
                                   if r.get("db.query.text") == "SELECT count(*) FROM orders"])
        assert recs and recs[-1]["db.namespace"] == other


@pytest.mark.mariadb
def test_mysql_reload_narrowing_allowed_databases_ends_native_sessions(mariadb_server, my_db):
    """A native session copied allowed_databases at hand-over: a reload that changes it ends
    the session (the client reconnects under the new rules), it never keeps the old list."""
    other = MH.create_db(mariadb_server, "sdp_native_narrow")
    path = audit_file("sdp-native-narrow-")
    text = MH.make_config(mariadb_server, my_db, path, backend={"allowed_databases": [my_db, other]})
    with MH.MyProxy(text).start() as p:
        c = _my(p, mariadb_server, my_db)
        try:
            with c.cursor() as cur:
                cur.execute("SELECT 1")
                from sandbox_db_proxy.config import load_config_text
                narrowed = load_config_text(MH.make_config(mariadb_server, my_db, path), source="<test>")
                p.call(lambda: p.app.apply_config(narrowed))
                with pytest.raises(pymysql.err.MySQLError):
                    cur.execute(f"USE {other}")
                    cur.execute("SELECT 1")
        finally:
            c.close()
        assert p.wait_for(lambda: p.events("disconnect", reason="the proxy configuration changed; reconnect"))


@pytest.mark.mariadb
def test_mysql_slow_reader_is_flow_controlled(my_proxy, my_db):
    """A MySQL client that does not read a ~60 MB result: the data plane stops reading the
    backend instead of buffering the result; the result then arrives complete."""
    import socket
    import time
    s = MH.raw_login(my_proxy.port, database=my_db)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(MH.frame(b"\x03SELECT REPEAT('x', 1000) FROM seq_1_to_60000", 0))
    time.sleep(1.5)

    def peak():
        return [my_proxy.app.native.dp.peak_queued(c.native.sid) for c in my_proxy.app.connections
                if c.native is not None and not c.native.closed]
    peaks = my_proxy.call(peak)
    assert peaks and max(peaks) < 4 * 1024 * 1024, peaks
    packets = MH.read_response(s)
    rows = [p for p in packets[1:] if not p.startswith(b"\x03def") and p[:1] not in (b"\xfe", b"\xff")]
    assert len(rows) == 60000 and packets[-1][:1] == b"\xfe"
    s.close()


def test_native_line_is_valid_json_for_odd_text(pg_proxy):
    sql = "SELECT E'tab\\there \"quoted\" \\\\ back', 'ünï\u2028cødé' AS x -- comment\n"
    with _pg(pg_proxy) as c:
        c.execute(sql, prepare=False).fetchone()
    pg_proxy.app.audit.flush()
    raw = open(pg_proxy.audit_path, "rb").read().splitlines()
    for line in raw:
        orjson.loads(line)        # every line parses
    assert any(orjson.loads(x).get("db.query.text") == sql for x in raw)
