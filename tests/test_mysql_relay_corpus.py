"""The engine's whole MySQL corpus through live proxied connections to the real MariaDB.

- Every `write` entry, sent as COM_QUERY (PyMySQL, multi-statements enabled) and as
  COM_STMT_PREPARE (raw protocol; bypass #14: "prepared statements skip the read-only
  check"), is refused by the proxy itself: the client gets an ERR, the audit log has a
  BLOCKED record for that exact text, and the database checksum is unchanged.
- Every `read` entry the engine allows runs through the proxy and returns its results (the
  relay copes with every result shape the corpus produces), again with the checksum unchanged.
"""

from __future__ import annotations

import uuid

import pytest

from corpus_util import apply_schema_mysql, load_corpus
from test_mysql_helpers import frame, raw_login, read_packet, start_proxy

pytestmark = pytest.mark.mariadb

REFUSAL_CODES = {1792, 1044}   # read-only refusal; database switch refused


@pytest.fixture(scope="module")
def corpus_db(mariadb_server):
    name = f"sdp_mycorpus_{uuid.uuid4().hex[:8]}"
    apply_schema_mysql(mariadb_server, name)
    return name


@pytest.fixture(scope="module")
def proxy(mariadb_server, corpus_db):
    with start_proxy(mariadb_server, corpus_db, limits={"statement_timeout_ms": 10000}) as p:
        yield p


def _connect(proxy, db):
    """PyMySQL through the proxy, several statements per COM_QUERY allowed."""
    import pymysql
    from pymysql.constants import CLIENT
    return pymysql.connect(host="127.0.0.1", port=proxy.port, user="app", password="secret",
                           database=db, client_flag=CLIENT.MULTI_STATEMENTS, autocommit=True)


def _blocked_texts(proxy) -> set[str]:
    return {r.get("db.query.text") for r in proxy.events("statement") if r.get("verdict") == "BLOCKED"}


def test_every_write_is_blocked_as_com_query(proxy, mariadb_server, corpus_db):
    import pymysql
    writes = load_corpus("mysql", "write")
    assert len(writes) > 100
    before = mariadb_server.checksum(corpus_db)
    c = _connect(proxy, corpus_db)
    failures = []
    try:
        cur = c.cursor()
        for e in writes:
            try:
                cur.execute(e["sql"])
                failures.append(f"{e['id']}: executed without error")
            except pymysql.err.MySQLError as exc:
                if exc.args[0] not in REFUSAL_CODES:
                    failures.append(f"{e['id']}: error {exc.args} is not the proxy's refusal")
        cur.execute("SELECT 1")                       # the connection survived all of them
        assert cur.fetchone() == (1,)
    finally:
        c.close()
    assert not failures, "\n".join(failures)
    blocked = proxy.wait_for(lambda: _blocked_texts(proxy) >= {e["sql"] for e in writes} and _blocked_texts(proxy))
    missing = [e["id"] for e in writes if e["sql"] not in blocked]
    assert not missing, f"no BLOCKED audit record for {missing}"
    assert mariadb_server.checksum(corpus_db) == before


def test_every_write_is_blocked_as_com_stmt_prepare(proxy, mariadb_server, corpus_db):
    writes = load_corpus("mysql", "write")
    before = mariadb_server.checksum(corpus_db)
    s = raw_login(proxy.port, database=corpus_db)
    failures = []
    try:
        for e in writes:
            s.sendall(frame(b"\x16" + e["sql"].encode(), 0))
            got = read_packet(s)
            if got is None:
                failures.append(f"{e['id']}: connection lost")
                break
            seq, payload = got
            if payload[:1] != b"\xff" or seq != 1:
                failures.append(f"{e['id']}: PREPARE was not refused ({payload[:20]!r})")
                # drain a successful prepare so the stream stays in sync
                break
            code = int.from_bytes(payload[1:3], "little")
            if code not in REFUSAL_CODES:
                failures.append(f"{e['id']}: error {code} is not the proxy's refusal")
        s.sendall(frame(b"\x0e", 0))
        assert read_packet(s)[1][:1] == b"\x00"
    finally:
        s.close()
    assert not failures, "\n".join(failures)
    assert mariadb_server.checksum(corpus_db) == before


def test_allowed_reads_run_through_the_proxy(proxy, mariadb_server, corpus_db):
    import pymysql
    engine = proxy.app.engine("mdb")
    reads = [e for e in load_corpus("mysql", "read") if engine.classify(e["sql"]).allowed]
    assert len(reads) > 50
    before = mariadb_server.checksum(corpus_db)
    c = _connect(proxy, corpus_db)
    failures = []
    try:
        cur = c.cursor()
        for e in reads:
            try:
                cur.execute(e["sql"])
                while True:
                    cur.fetchall()
                    if not cur.nextset():
                        break
            except pymysql.err.MySQLError as exc:
                # `USE <db>` is a read, but switching to a database outside
                # allowed_databases is the relay's own refusal (same rule as COM_INIT_DB).
                if exc.args[0] == 1044 and e["sql"].lstrip().upper().startswith("USE"):
                    continue
                failures.append(f"{e['id']}: {exc.args}")
    finally:
        c.close()
    assert not failures, "\n".join(failures)
    assert mariadb_server.checksum(corpus_db) == before
