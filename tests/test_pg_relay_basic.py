"""PostgreSQL relay: login, simple query, blocked writes, transaction status (real server,
real drivers). Every blocked-write test checks the client's error AND the database checksum."""

from __future__ import annotations

import psycopg
import pytest

from proxy_harness import audit_writes_failing
from test_pg_helpers import AGENT, proxy, relay_db, start_proxy  # noqa: F401 (fixtures)

pytestmark = pytest.mark.pg


def connect(proxy, **kw):
    return psycopg.connect(proxy.dsn(**kw), autocommit=True)


def test_select_through_proxy(proxy):
    with connect(proxy) as c:
        assert c.execute("SELECT count(*) FROM accounts").fetchone()[0] == 50
        assert c.execute("SELECT owner FROM accounts WHERE id = %s", (7,)).fetchone()[0] == "owner7"
    rec = proxy.wait_for(lambda: proxy.events("statement", verdict="ALLOWED"))
    assert rec and rec[0]["db.system.name"] == "postgresql" and rec[0]["agent"] == AGENT


def test_backend_session_is_read_only(proxy):
    with connect(proxy) as c:
        assert c.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
        assert c.info.parameter_status("default_transaction_read_only") == "on"


def test_blocked_delete_simple_query(proxy, pg_server, relay_db):
    before = pg_server.checksum(relay_db)
    with connect(proxy) as c:
        with pytest.raises(psycopg.Error) as ei:
            c.execute("DELETE FROM accounts", prepare=False)
        assert ei.value.sqlstate == "25006"
        assert ei.value.diag.message_primary
        # connection still usable
        assert c.execute("SELECT 1").fetchone()[0] == 1
    assert pg_server.checksum(relay_db) == before
    assert proxy.wait_for(lambda: proxy.events("statement", verdict="BLOCKED"))


def test_wrong_password_is_refused(proxy):
    with pytest.raises(psycopg.OperationalError) as ei:
        psycopg.connect(proxy.dsn(password="wrong"))
    assert "password authentication failed" in str(ei.value)
    assert proxy.wait_for(lambda: proxy.events("auth_failed"))


def test_blocked_inside_explicit_transaction_fails_the_transaction(proxy, pg_server, relay_db):
    """BEGIN; SELECT; DELETE -> client sees 25006 and an aborted transaction ('E'), exactly
    like the backend; ROLLBACK works and the connection is usable again."""
    before = pg_server.checksum(relay_db)
    with psycopg.connect(proxy.dsn()) as c:          # autocommit off: psycopg sends BEGIN
        assert c.execute("SELECT count(*) FROM notes").fetchone()[0] == 3
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        with pytest.raises(psycopg.Error) as ei:
            c.execute("UPDATE notes SET body = 'x'", prepare=False)
        assert ei.value.sqlstate == "25006"
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            c.execute("SELECT 1")
        c.rollback()
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert c.execute("SELECT body FROM notes ORDER BY id").fetchall()[0][0] == "alpha"
    assert pg_server.checksum(relay_db) == before


def test_multi_statement_string_blocked_as_a_whole(proxy, pg_server, relay_db):
    """Publicly reported bypass #1: `SELECT 1; COMMIT; DROP ...` in one simple Query."""
    before = pg_server.checksum(relay_db)
    with connect(proxy) as c:
        for sql in ["SELECT 1; COMMIT; DROP TABLE notes", "SELECT 1; DELETE FROM accounts",
                    "BEGIN; DELETE FROM accounts; COMMIT"]:
            with pytest.raises(psycopg.Error) as ei:
                c.execute(sql, prepare=False)
            assert ei.value.sqlstate == "25006", sql
            assert c.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert c.execute("SELECT count(*) FROM notes").fetchone()[0] == 3
    assert pg_server.checksum(relay_db) == before


def test_server_side_prepared_statements(proxy, pg_server, relay_db):
    before = pg_server.checksum(relay_db)
    with connect(proxy) as c:
        for i in range(1, 8):                              # prepare_threshold=5 -> named stmt
            assert c.execute("SELECT balance FROM accounts WHERE id = %s", (i,), prepare=True).fetchone()[0] == i * 10
        with pytest.raises(psycopg.Error) as ei:
            c.execute("UPDATE accounts SET balance = 0 WHERE id = %s", (1,), prepare=True)
        assert ei.value.sqlstate == "25006"
        assert c.execute("SELECT balance FROM accounts WHERE id = %s", (2,), prepare=True).fetchone()[0] == 20
    assert pg_server.checksum(relay_db) == before


def test_audit_fail_closed_refuses_statements(proxy, pg_server, relay_db):
    """With audit.fail_closed, a failing audit log refuses statements, and they pass again
    once it writes again."""
    with connect(proxy) as c:
        # known to every verdict cache first: the refusal must not come from a cache miss
        assert c.execute("SELECT 1").fetchone()[0] == 1
        proxy.call(setattr, proxy.app.audit, "fail_closed", True)
        try:
            with audit_writes_failing(proxy) as audit:
                assert proxy.call(lambda: audit.refuse)
                with pytest.raises(psycopg.Error) as ei:
                    c.execute("SELECT 1")
                assert ei.value.sqlstate == "25006" and "audit" in str(ei.value)
        finally:
            proxy.call(setattr, proxy.app.audit, "fail_closed", False)
        assert c.execute("SELECT 1").fetchone()[0] == 1


def test_metrics_and_audit_records(proxy):
    with connect(proxy) as c:
        c.execute("SELECT id FROM accounts WHERE id < %s", (4,)).fetchall()
        with pytest.raises(psycopg.Error):
            c.execute("TRUNCATE notes")
    text = proxy.call(proxy.app.metrics.render).decode()
    assert 'sandbox_db_proxy_statements_total{backend="pgtest",class="read",verdict="allowed"}' in text
    assert 'sandbox_db_proxy_blocks_total{backend="pgtest"' in text
    recs = proxy.wait_for(lambda: [r for r in proxy.events("statement", verdict="ALLOWED")
                                   if r.get("db.query.text", "").startswith("SELECT id FROM accounts")])
    r = recs[-1]
    assert r["rows"] == 3 and r["protocol.message"] == "Execute" and r["duration_ms"] >= 0
    for key in ("connection.id", "client.address", "client.port", "backend", "db.namespace", "agent"):
        assert key in r, key
    blocked = [b for b in proxy.events("statement", verdict="BLOCKED") if "TRUNCATE" in b.get("db.query.text", "")]
    assert blocked and blocked[-1]["reason"] and blocked[-1]["rule"]
    events = {r["event"] for r in proxy.records}
    assert {"connect", "auth_ok", "statement", "disconnect"} <= events


def test_pg_proc_catalogue_loaded_on_first_connect(proxy, pg_server, relay_db):
    """The backend's pg_proc (name, volatility) is read over a proxy-owned connection before
    the first session and handed to the engine."""
    with connect(proxy) as c:
        c.execute("SELECT 1")
    eng = proxy.app.engine("pgtest")
    cat = getattr(eng, "catalog", None)
    assert cat is not None
    assert cat.volatility("now") in ("s", "v") and cat.volatility("lower") == "i"
    assert cat.volatility("pg_read_file") == "v"


def test_internal_error_fails_closed(pg_server, relay_db):
    """An unexpected exception inside the (Python) relay closes that session (FATAL XX000,
    audited); nothing is forwarded and other sessions are unaffected. The native relay's
    equivalent (a panic ends only its session) is dataplane::tests::relay_panic_ends_only_its_session."""
    before = pg_server.checksum(relay_db)
    with start_proxy(pg_server, relay_db, performance={"native_relay": False}) as proxy, \
            connect(proxy) as c, connect(proxy) as other:
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        conn = next(x for x in proxy.app.connections if x.session is not None and x.session.backend_key
                    and x.session.backend_key[0] == pid)

        def boom(*a, **k):
            raise RuntimeError("injected")
        proxy.call(setattr, conn.session, "_ready_client", boom)
        with pytest.raises(psycopg.Error) as ei:
            c.execute("DELETE FROM notes")
        assert "internal error" in str(ei.value) and ei.value.sqlstate == "XX000"
        assert other.execute("SELECT 1").fetchone()[0] == 1
    assert proxy.wait_for(lambda: [r for r in proxy.events("protocol_error") if "internal" in r.get("reason", "")])
    assert pg_server.checksum(relay_db) == before
