"""The engine's whole PostgreSQL write corpus (tests/corpus/postgres.jsonl) through a live
proxied connection, over the simple protocol (Query: multi-statement strings included) and
the extended protocol (Parse/Bind/Execute): every write must be refused BY THE PROXY (our
25006 with the "Blocked by sandbox-db-proxy" detail, not merely by the read-only backend),
and the database must be unchanged afterwards.

Runs against a throwaway second server: if the engine ever let a side-effecting function
through (pg_terminate_backend, COPY ... TO PROGRAM, ...), the shared server stays safe.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg.pq import DiagnosticField, ExecStatus, TransactionStatus

from corpus_util import apply_schema_pg, load_corpus
from servers import PgServer, tmp_root
from test_pg_helpers import real_engine_available, start_proxy

pytestmark = [pytest.mark.pg,
              pytest.mark.skipif(not real_engine_available(), reason="needs the real verdict engine")]

DB = "sdp_pg_relay_corpus"
PROXY_DETAIL = "Blocked by sandbox-db-proxy"


@pytest.fixture(scope="module")
def corpus_proxy():
    server = PgServer(root=tmp_root("sdp-pg-corpus-")).start()
    try:
        apply_schema_pg(server, DB)
        with start_proxy(server, DB, "sdp-pg-corpus-audit-") as h:
            yield server, h
    finally:
        server.stop()


def _run(conn, sql: str, extended: bool):
    pg = conn.pgconn
    res = pg.exec_params(sql.encode(), []) if extended else pg.exec_(sql.encode())
    return res


def _proxy_blocked(res) -> bool:
    if res.status != ExecStatus.FATAL_ERROR:
        return False
    code = (res.error_field(DiagnosticField.SQLSTATE) or b"").decode()
    detail = (res.error_field(DiagnosticField.MESSAGE_DETAIL) or b"").decode()
    return code == "25006" and PROXY_DETAIL in detail


@pytest.mark.parametrize("extended", [False, True], ids=["simple", "extended"])
def test_write_corpus_blocked_by_proxy(corpus_proxy, extended):
    server, h = corpus_proxy
    writes = load_corpus("postgres", label="write")
    assert len(writes) > 100
    before = server.checksum(DB)
    missed = []
    conn = psycopg.connect(h.dsn(dbname=DB), autocommit=True)
    try:
        for e in writes:
            if conn.broken or conn.closed:
                conn = psycopg.connect(h.dsn(dbname=DB), autocommit=True)
            res = _run(conn, e["sql"], extended)
            if not _proxy_blocked(res):
                missed.append((e["id"], e["sql"][:80], ExecStatus(res.status).name,
                               (res.error_message or b"")[:120]))
            # After every statement the session is usable and not in a transaction.
            ts = TransactionStatus(conn.pgconn.transaction_status)
            assert ts in (TransactionStatus.IDLE, TransactionStatus.INERROR), e["id"]
            if ts == TransactionStatus.INERROR:
                conn.pgconn.exec_(b"ROLLBACK")
    finally:
        conn.close()
    assert not missed, f"{len(missed)} corpus writes were not blocked by the proxy: {missed[:10]}"
    assert server.checksum(DB) == before
    blocked = h.events("statement", verdict="BLOCKED")
    assert len(blocked) >= len(writes)


@pytest.mark.timeout(120)
def test_read_corpus_not_disturbed_by_relay(corpus_proxy):
    """Reads the engine allows reach the backend and come back (COPY TO included)."""
    from sandbox_db_proxy.engine import Engine
    server, h = corpus_proxy
    eng = Engine("postgres")
    reads = [e for e in load_corpus("postgres", label="read") if eng.classify(e["sql"]).allowed]
    assert reads
    bad = []
    with psycopg.connect(h.dsn(dbname=DB), autocommit=True) as conn:
        for e in reads:
            if e["sql"].lstrip().upper().startswith("COPY"):
                # psycopg's copy API (it waits without holding the GIL; this proxy runs in
                # the test process).
                try:
                    with conn.cursor().copy(e["sql"]) as cp:
                        for _ in cp:
                            pass
                except psycopg.Error as exc:
                    bad.append((e["id"], "COPY", str(exc)[:120]))
                continue
            res = conn.pgconn.exec_(e["sql"].encode())
            st = ExecStatus(res.status)
            # The backend may still refuse a read on its own terms (e.g. SAVEPOINT outside a
            # transaction block): that proves the statement reached it. The relay must not
            # have refused it, and must not have mangled the exchange.
            if _proxy_blocked(res) or st not in (ExecStatus.TUPLES_OK, ExecStatus.COMMAND_OK,
                                                 ExecStatus.FATAL_ERROR):
                bad.append((e["id"], st.name, (res.error_message or b"")[:120]))
            assert not conn.broken
            if TransactionStatus(conn.pgconn.transaction_status) != TransactionStatus.IDLE:
                conn.pgconn.exec_(b"ROLLBACK")
    assert not bad, bad[:10]
