"""The read half of the labelled corpus runs on the real servers.

Why: a "read" in tests/corpus/*.jsonl is a promise that the statement is valid SQL an analyst
agent may send and that the engine must allow. This test proves the first half of that promise
on PostgreSQL 15 and MariaDB 10.11 (the `pg_server` / `mariadb_server` fixtures), against the
schema in tests/corpus/schema_*.sql; tests/test_corpus.py checks the engine's side.

Guards, so a mislabelled "read" cannot do damage or hang the suite:
- every read runs inside its own read-only transaction that is then rolled back
  (PostgreSQL `BEGIN READ ONLY`, docs "SQL Commands: BEGIN"; MariaDB `START TRANSACTION
  READ ONLY`, KB "START TRANSACTION"), on a session whose default is read-only as well
  (`default_transaction_read_only=on` / `SET SESSION TRANSACTION READ ONLY`), so that a read
  that is itself COMMIT or BEGIN still leaves the next statement read-only;
- a per-statement time limit (`statement_timeout`, MariaDB `max_statement_time`);
- a checksum of the whole database before and after: a "read" that changed anything (e.g. a
  sequence advanced by nextval) fails the test even where the read-only transaction let it through.
Writes are never executed here: many have effects that outlive a rollback (issue 2).
Also here, because it needs the live server: the per-backend function catalogue read from
pg_proc makes the engine allow the schema's IMMUTABLE/STABLE functions and still block every write.
T-SQL reads cannot be run: there is no SQL Server on this machine (tests/corpus/README.md).
"""

from __future__ import annotations

import re

import pytest

from corpus_util import apply_schema_mysql, apply_schema_pg, load_corpus

PG_DB = "corpus_live_pg"
MY_DB = "corpus_live_my"
STATEMENT_TIMEOUT_S = 10

# psycopg refuses COPY in execute(); COPY ... TO STDOUT is read through the copy() API
# (PostgreSQL protocol "COPY Operations": the CopyOut sub-protocol).
_COPY_RE = re.compile(r"^\s*COPY\b", re.IGNORECASE)


# --- PostgreSQL ---------------------------------------------------------------------------------

def pg_connect(pg_server, dbname: str):
    """One autocommit connection whose session default is read-only with a statement timeout
    (libpq `options`, docs "19.1 Setting Parameters": -c name=value at connection start)."""
    import psycopg

    return psycopg.connect(
        pg_server.dsn(dbname), autocommit=True,
        options=f"-c default_transaction_read_only=on -c statement_timeout={STATEMENT_TIMEOUT_S}s")


def run_pg_read(conn, sql: str) -> None:
    """Run one corpus read in its own READ ONLY transaction, consume every result, roll back."""
    conn.execute("BEGIN READ ONLY")
    try:
        cur = conn.cursor()
        if _COPY_RE.match(sql):
            with cur.copy(sql) as copy:
                for _ in copy:
                    pass
        else:
            cur.execute(sql)
            while True:  # a multi-statement Query returns one result per statement
                if cur.description is not None:
                    cur.fetchall()
                if not cur.nextset():
                    break
    finally:
        conn.execute("ROLLBACK")  # a WARNING only, when the read itself ended the transaction


def run_reads(entries: list[dict], run, errors) -> list[str]:
    """`run(sql)` for every entry; the driver's `errors` become "id: error" lines (an empty
    list means every read ran)."""
    failures = []
    for entry in entries:
        try:
            run(entry["sql"])
        except errors as exc:
            failures.append(f"{entry['id']}: {type(exc).__name__}: {str(exc).strip()}")
    return failures


def run_pg_reads(conn, entries: list[dict]) -> list[str]:
    import psycopg

    return run_reads(entries, lambda sql: run_pg_read(conn, sql), psycopg.Error)


@pytest.fixture(scope="module")
def pg_corpus_db(pg_server):
    apply_schema_pg(pg_server, PG_DB)
    return PG_DB


@pytest.mark.pg
def test_pg_session_guard_is_read_only(pg_server, pg_corpus_db):
    """The guard this file relies on is real: the session reports read-only."""
    with pg_connect(pg_server, pg_corpus_db) as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == f"{STATEMENT_TIMEOUT_S}s"
        conn.execute("BEGIN READ ONLY")
        assert conn.execute("SHOW transaction_read_only").fetchone()[0] == "on"
        conn.execute("ROLLBACK")


@pytest.mark.pg
def test_pg_corpus_reads_run_on_postgres(pg_server, pg_corpus_db):
    reads = load_corpus("postgres", label="read")
    assert len(reads) >= 100
    before = pg_server.checksum(pg_corpus_db)
    with pg_connect(pg_server, pg_corpus_db) as conn:
        failures = run_pg_reads(conn, reads)
    after = pg_server.checksum(pg_corpus_db)
    assert not failures, f"{len(failures)} corpus reads failed on PostgreSQL:\n" + "\n".join(failures)
    assert before == after, "running the corpus reads changed the database"


_USER_FN_CALL = re.compile(r"\b(fmt_money|user_order_total)\s*\(")


@pytest.mark.pg
def test_pg_catalogue_from_the_server_decides_user_functions(pg_server, pg_corpus_db):
    """The per-backend function catalogue (issue 2, "Function policy"): read from this server's
    pg_proc, it lets the engine allow the schema's IMMUTABLE/STABLE functions (PostgreSQL refuses
    data-modifying statements inside them, docs "38.7 Function Volatility Categories") while every
    write in the corpus, including calls of the schema's VOLATILE functions, its writing operator
    and cast, stays blocked."""
    from sandbox_db_proxy.engine import PG_PROC_QUERY, Engine, FunctionCatalog

    with pg_connect(pg_server, pg_corpus_db) as conn:
        rows = conn.execute(PG_PROC_QUERY).fetchall()
    engine = Engine("postgres", catalog=FunctionCatalog.from_pg_proc(rows))

    user_reads = [e for e in load_corpus("postgres", label="read") if _USER_FN_CALL.search(e["sql"])]
    assert len(user_reads) >= 2
    refused = [f"{e['id']}: {engine.classify(e['sql']).reason}" for e in user_reads
               if not engine.classify(e["sql"]).allowed]
    assert not refused, "reads of IMMUTABLE/STABLE user functions blocked despite the catalogue:\n" + \
        "\n".join(refused)

    allowed = [f"{e['id']}: {e['sql'][:80]!r}" for e in load_corpus("postgres", label="write")
               if engine.classify(e["sql"]).allowed]
    assert not allowed, "writes allowed once the catalogue is given:\n" + "\n".join(allowed)


# --- MariaDB --------------------------------------------------------------------------------------

def my_connect(mariadb_server, database: str):
    """One autocommit PyMySQL connection, multi-statements on (some reads are two statements),
    session read-only with a statement time limit (MariaDB KB "SET TRANSACTION",
    "Server System Variables: tx_read_only, max_statement_time")."""
    import pymysql
    from pymysql.constants import CLIENT

    return pymysql.connect(
        host=mariadb_server.host, port=mariadb_server.port, user=mariadb_server.user,
        password=mariadb_server.password, database=database, autocommit=True,
        client_flag=CLIENT.MULTI_STATEMENTS, connect_timeout=10,
        # tx_read_only is the variable behind SET SESSION TRANSACTION READ ONLY; one SET
        # statement with two assignments, because init_command is a single statement.
        init_command=f"SET SESSION tx_read_only = 1, SESSION max_statement_time = {STATEMENT_TIMEOUT_S}")


# ER_CANT_CHANGE_TX_CHARACTERISTICS: `SET SESSION TRANSACTION ...` is refused inside a transaction.
_ER_CANT_CHANGE_TX_CHARACTERISTICS = 1568


def _run_my_statement(cur, sql: str) -> None:
    cur.execute(sql)
    while True:
        cur.fetchall()
        if not cur.nextset():
            break


def run_my_read(conn, database: str, sql: str) -> None:
    """Run one corpus read in its own read-only transaction, consume every result set, roll back.
    COM_INIT_DB first: some reads are `USE other_db`. A read that sets session transaction
    characteristics cannot run inside a transaction; it runs on its own, still under the
    session's tx_read_only = 1 and the before/after checksum."""
    import pymysql

    conn.select_db(database)
    with conn.cursor() as cur:
        cur.execute("START TRANSACTION READ ONLY")
        try:
            _run_my_statement(cur, sql)
        except pymysql.OperationalError as exc:
            if exc.args[0] != _ER_CANT_CHANGE_TX_CHARACTERISTICS:
                raise
            cur.execute("ROLLBACK")
            _run_my_statement(cur, sql)
        finally:
            cur.execute("ROLLBACK")


def run_my_reads(conn, database: str, entries: list[dict]) -> list[str]:
    import pymysql

    return run_reads(entries, lambda sql: run_my_read(conn, database, sql), pymysql.MySQLError)


@pytest.fixture(scope="module")
def my_corpus_db(mariadb_server):
    apply_schema_mysql(mariadb_server, MY_DB)
    return MY_DB


@pytest.mark.mariadb
def test_mariadb_session_guard_is_read_only(mariadb_server, my_corpus_db):
    conn = my_connect(mariadb_server, my_corpus_db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@session.tx_read_only, @@session.max_statement_time")
            ro, limit = cur.fetchone()
            assert int(ro) == 1
            assert float(limit) == STATEMENT_TIMEOUT_S
    finally:
        conn.close()


@pytest.mark.mariadb
def test_mysql_corpus_reads_run_on_mariadb(mariadb_server, my_corpus_db):
    reads = load_corpus("mysql", label="read")
    assert len(reads) >= 60
    before = mariadb_server.checksum(my_corpus_db)
    conn = my_connect(mariadb_server, my_corpus_db)
    try:
        failures = run_my_reads(conn, my_corpus_db, reads)
    finally:
        conn.close()
    after = mariadb_server.checksum(my_corpus_db)
    assert not failures, f"{len(failures)} corpus reads failed on MariaDB:\n" + "\n".join(failures)
    assert before == after, "running the corpus reads changed the database"
