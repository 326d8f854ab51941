"""Extended protocol and pipelining through the relay: psycopg pipeline mode, asyncpg,
raw frames. A blocked Parse in a pipeline yields its error AFTER the responses to the
messages before it, the rest of the pipeline up to Sync is skipped (as PostgreSQL itself
does after an error), and the transaction status matches the backend's."""

from __future__ import annotations

import asyncio
import socket
import struct

import asyncpg
import psycopg
import pytest

from test_pg_helpers import AGENT, AGENT_PW, msg, proxy, read_msgs, relay_db  # noqa: F401 (fixtures)

pytestmark = pytest.mark.pg


def test_psycopg_pipeline_error_order(proxy, pg_server, relay_db):
    before = pg_server.checksum(relay_db)
    with psycopg.connect(proxy.dsn(), autocommit=True) as c:
        with pytest.raises(psycopg.Error) as ei:
            with c.pipeline() as p:
                cur1 = c.execute("SELECT owner FROM accounts WHERE id = %s", (3,))
                cur2 = c.execute("SELECT count(*) FROM notes")
                c.execute("DELETE FROM notes WHERE id = %s", (1,))
                c.execute("SELECT 42")                       # skipped after the error
                p.sync()
        assert ei.value.sqlstate == "25006"
        # The responses before the blocked statement arrived and are intact.
        assert cur1.fetchone()[0] == "owner3"
        assert cur2.fetchone()[0] == 3
        # Connection usable, pipeline again.
        with c.pipeline():
            r = [c.execute("SELECT %s::int", (i,)) for i in range(20)]
        assert [x.fetchone()[0] for x in r] == list(range(20))
    assert pg_server.checksum(relay_db) == before


def test_psycopg_pipeline_in_transaction(proxy, pg_server, relay_db):
    before = pg_server.checksum(relay_db)
    with psycopg.connect(proxy.dsn()) as c:
        with pytest.raises(psycopg.Error):
            with c.pipeline():
                c.execute("SELECT 1")
                c.execute("INSERT INTO notes (body) VALUES (%s)", ("evil",))
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        c.rollback()
        assert c.execute("SELECT count(*) FROM notes").fetchone()[0] == 3
    assert pg_server.checksum(relay_db) == before


async def test_asyncpg_reads_and_blocked_writes(proxy, pg_server, relay_db):
    before = await asyncio.to_thread(pg_server.checksum, relay_db)
    conn = await asyncpg.connect(host="127.0.0.1", port=proxy.port, user=AGENT, password=AGENT_PW,
                                 database=relay_db, ssl=False)
    try:
        assert await conn.fetchval("SELECT count(*) FROM accounts") == 50
        rows = await conn.fetch("SELECT id, owner FROM accounts WHERE id < $1 ORDER BY id", 4)
        assert [r["owner"] for r in rows] == ["owner1", "owner2", "owner3"]
        stmt = await conn.prepare("SELECT balance FROM accounts WHERE id = $1")
        assert [await stmt.fetchval(i) for i in (1, 2, 3)] == [10, 20, 30]
        with pytest.raises(asyncpg.PostgresError) as ei:
            await conn.execute("UPDATE accounts SET balance = 0")
        assert ei.value.sqlstate == "25006"
        with pytest.raises(asyncpg.PostgresError) as ei:
            await conn.fetch("DELETE FROM accounts WHERE id = $1 RETURNING id", 1)
        assert ei.value.sqlstate == "25006"
        with pytest.raises(asyncpg.PostgresError) as ei:
            await conn.prepare("INSERT INTO notes (body) VALUES ($1)")
        assert ei.value.sqlstate == "25006"
        # executemany pipelines Bind/Execute; a blocked statement fails up front.
        with pytest.raises(asyncpg.PostgresError):
            await conn.executemany("INSERT INTO notes (body) VALUES ($1)", [("a",), ("b",)])
        async with conn.transaction():
            assert await conn.fetchval("SELECT 7") == 7
        # Transaction: blocked statement aborts it, rollback restores.
        tr = conn.transaction()
        await tr.start()
        with pytest.raises(asyncpg.PostgresError):
            await conn.execute("DELETE FROM notes")
        with pytest.raises(asyncpg.exceptions.InFailedSQLTransactionError):
            await conn.fetchval("SELECT 1")
        await tr.rollback()
        assert await conn.fetchval("SELECT count(*) FROM notes") == 3
        # Cursor (portal with row limit -> PortalSuspended).
        async with conn.transaction():
            cur = await conn.cursor("SELECT id FROM accounts ORDER BY id")
            assert [r["id"] for r in await cur.fetch(5)] == [1, 2, 3, 4, 5]
    finally:
        await conn.close()
    assert await asyncio.to_thread(pg_server.checksum, relay_db) == before


async def _no_reset(conn):
    # asyncpg's default reset runs `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    # RESET ALL;` -- whether that passes is the engine's decision, not the relay's.
    return None


async def test_asyncpg_concurrent_pool(proxy, relay_db):
    pool = await asyncpg.create_pool(host="127.0.0.1", port=proxy.port, user=AGENT, password=AGENT_PW,
                                     database=relay_db, ssl=False, min_size=2, max_size=4, reset=_no_reset)
    try:
        async def one(i):
            return await pool.fetchval("SELECT owner FROM accounts WHERE id = $1", i)
        got = await asyncio.gather(*(one(i) for i in range(1, 41)))
        assert got == [f"owner{i}" for i in range(1, 41)]
    finally:
        await pool.close()


# -- raw protocol ------------------------------------------------------------------------


def _parse(name: str, sql: str) -> bytes:
    return msg(b"P", name.encode() + b"\0" + sql.encode() + b"\0\0\0")


def _bind(portal: str, stmt: str) -> bytes:
    return msg(b"B", portal.encode() + b"\0" + stmt.encode() + b"\0" + b"\0\0\0\0\0\0")


def _execute(portal: str = "") -> bytes:
    return msg(b"E", portal.encode() + b"\0\0\0\0\0")


SYNC = msg(b"S", b"")


def raw_login(proxy) -> socket.socket:
    """Log in with a real driver's SCRAM and then take over its socket (psycopg's libpq),
    by duplicating the file descriptor."""
    conn = psycopg.connect(proxy.dsn(), autocommit=True)
    fd = conn.pgconn.socket
    s = socket.socket(fileno=socket.dup(fd))
    s.setblocking(True)
    s.settimeout(10)
    raw_login.keep.append(conn)       # keep libpq's side open (it just idles)
    return s


raw_login.keep = []


def test_raw_pipeline_ordering(proxy, pg_server, relay_db):
    """P1 B1 E1 P2(blocked) B2 E2 P3 S: responses 1 2 D C, then our 25006 error, then Z;
    P3 is skipped (never parsed) exactly like PostgreSQL skips after an error."""
    before = pg_server.checksum(relay_db)
    s = raw_login(proxy)
    s.sendall(_parse("", "SELECT 11") + _bind("", "") + _execute() +
              _parse("", "DELETE FROM accounts") + _bind("", "") + _execute() +
              _parse("s3", "SELECT 33") + SYNC)
    msgs = read_msgs(s)
    tags = [t for t, _ in msgs]
    assert tags == ["1", "2", "D", "C", "E", "Z"], tags
    err = msgs[4][1]
    assert b"C25006\0" in err
    assert msgs[-1][1] == b"I"
    # s3 was never prepared; the unnamed statement is gone as after a failed Parse.
    s.sendall(_bind("", "s3") + _execute() + SYNC)
    msgs = read_msgs(s)
    assert [t for t, _ in msgs] == ["E", "Z"]
    s.sendall(_parse("", "SELECT 5") + _bind("", "") + _execute() + SYNC)
    assert [t for t, _ in read_msgs(s)] == ["1", "2", "D", "C", "Z"]
    s.close()
    assert pg_server.checksum(relay_db) == before


def test_raw_function_call_blocked(proxy, pg_server, relay_db):
    before = pg_server.checksum(relay_db)
    s = raw_login(proxy)
    # FunctionCall of nextval-like OID: blocked whatever the function.
    s.sendall(msg(b"F", struct.pack("!ihhihh", 1574, 0, 1, 4, 0, 0)[:-2] + b"\0\0"))
    msgs = read_msgs(s)
    assert [t for t, _ in msgs] == ["E", "Z"]
    assert b"C25006\0" in msgs[0][1]
    s.sendall(msg(b"Q", b"SELECT 1\0"))
    assert [t for t, _ in read_msgs(s)] == ["T", "D", "C", "Z"]
    s.close()
    assert pg_server.checksum(relay_db) == before
