"""MySQL relay against the real MariaDB 10.11 with real clients: the guide's read-only check,
blocked writes (client error + backend unchanged), databases, prepared statements, audit.

Every write-blocking test takes `mariadb_server.checksum(db)` before and after.
"""

from __future__ import annotations

import asyncio

import pytest

from test_mysql_helpers import (BACKEND, create_db, mariadb_cli, raw_login, read_packet, read_response,
                                frame, start_proxy)

pytestmark = pytest.mark.mariadb

GUIDE_BLOCK = """-- This should work
SELECT * FROM users LIMIT 10;

-- These should be blocked
INSERT INTO users (name) VALUES ('test');
UPDATE users SET name = 'test' WHERE id = 1;
DELETE FROM users WHERE id = 1;
"""
GUIDE_WRITES = ["INSERT INTO users (name) VALUES ('test');",
                "UPDATE users SET name = 'test' WHERE id = 1;",
                "DELETE FROM users WHERE id = 1;"]


@pytest.fixture(scope="module")
def db(mariadb_server):
    return create_db(mariadb_server, "sdp_mybasic")


@pytest.fixture(scope="module")
def other_db(mariadb_server):
    return create_db(mariadb_server, "sdp_myother")


@pytest.fixture(scope="module")
def proxy(mariadb_server, db):
    with start_proxy(mariadb_server, db) as p:
        yield p


def connect(proxy, db, **kw):
    import pymysql
    args = dict(host="127.0.0.1", port=proxy.port, user="app", password="secret", database=db,
                connect_timeout=10)
    args.update(kw)
    return pymysql.connect(**args)


# ----------------------------------------------------------------------------- the guide

def test_guide_block_with_mariadb_cli(proxy, mariadb_server, db):
    before = mariadb_server.checksum(db)
    r = mariadb_cli(proxy.port, GUIDE_BLOCK, database=db, extra=("--force",))
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    assert len(rows) == 10 and rows[0][:2] == ["1", "alice"], r.stdout
    errors = [line for line in r.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 3, r.stderr
    for line in errors:
        assert line.startswith("ERROR 1792 (25006)"), line
    assert "INSERT" in errors[0] and "UPDATE" in errors[1] and "DELETE" in errors[2], errors
    assert mariadb_server.checksum(db) == before
    blocked = proxy.wait_for(lambda: [r for r in proxy.events("statement") if r.get("verdict") == "BLOCKED"
                                      and r.get("db.query.text") in {w.rstrip(";") for w in GUIDE_WRITES}
                                      | set(GUIDE_WRITES)])
    assert len(blocked) >= 3


def test_guide_block_with_pymysql(proxy, mariadb_server, db):
    import pymysql
    before = mariadb_server.checksum(db)
    c = connect(proxy, db)
    try:
        cur = c.cursor()
        cur.execute("SELECT * FROM users LIMIT 10;")
        rows = cur.fetchall()
        assert len(rows) == 10 and rows[0][1] == "alice"
        for sql in GUIDE_WRITES:
            with pytest.raises(pymysql.err.MySQLError) as ei:
                cur.execute(sql)
            code, msg = ei.value.args
            assert code == 1792, (sql, msg)
            assert sql.split()[0] in msg, msg      # the engine's reason names what was blocked
        # the connection stays usable with correct sequence ids
        cur.execute("SELECT COUNT(*) FROM users")
        assert cur.fetchone() == (11,)
        c.ping()
    finally:
        c.close()
    assert mariadb_server.checksum(db) == before


def test_blocked_inside_transaction_keeps_connection(proxy, mariadb_server, db):
    import pymysql
    before = mariadb_server.checksum(db)
    c = connect(proxy, db, autocommit=False)
    try:
        cur = c.cursor()
        cur.execute("SELECT id FROM users WHERE id = 1")
        with pytest.raises(pymysql.err.MySQLError):
            cur.execute("UPDATE users SET plan = 'pro'")
        cur.execute("SELECT plan FROM users WHERE id = 1")
        assert cur.fetchone() == ("free",)
        c.commit()
    finally:
        c.close()
    assert mariadb_server.checksum(db) == before


def test_backstop_session_is_read_only(proxy, db):
    """The backend session really is read-only (engine backstop), whatever the engine says."""
    c = connect(proxy, db)
    try:
        cur = c.cursor()
        cur.execute("SELECT @@session.tx_read_only, @@session.max_statement_time")
        ro, mst = cur.fetchone()
        assert int(ro) == 1
        assert float(mst) == pytest.approx(5.0)
    finally:
        c.close()


def test_multi_statement_text_needs_every_statement_to_pass(proxy, mariadb_server, db):
    import pymysql
    from pymysql.constants import CLIENT
    before = mariadb_server.checksum(db)
    c = connect(proxy, db, client_flag=CLIENT.MULTI_STATEMENTS)
    try:
        cur = c.cursor()
        cur.execute("SELECT 1; SELECT 2")
        assert cur.fetchall() == ((1,),)
        assert cur.nextset()
        assert cur.fetchall() == ((2,),)
        with pytest.raises(pymysql.err.MySQLError) as ei:
            cur.execute("SELECT 1; DELETE FROM users")
        assert ei.value.args[0] == 1792
        cur.execute("SELECT COUNT(*) FROM users")
        assert cur.fetchone() == (11,)
    finally:
        c.close()
    assert mariadb_server.checksum(db) == before


def test_sensitive_show_blocked_by_default(proxy, db):
    import pymysql
    c = connect(proxy, db)
    try:
        cur = c.cursor()
        with pytest.raises(pymysql.err.MySQLError) as ei:
            cur.execute("SHOW PROCESSLIST")
        assert ei.value.args[0] == 1792
        cur.execute("SHOW TABLES")
        assert {r[0] for r in cur.fetchall()} >= {"users", "orders"}
    finally:
        c.close()


def test_sensitive_show_configurable(mariadb_server, db):
    p = start_proxy(mariadb_server, db, backend={"block_sensitive_show": False})
    try:
        if p.stand_in:
            pytest.skip("needs the real engine (block_sensitive_show is an engine setting)")
        c = connect(p, db)
        try:
            cur = c.cursor()
            cur.execute("SHOW PROCESSLIST")
            assert cur.fetchall()
        finally:
            c.close()
    finally:
        p.stop()


# ----------------------------------------------------------------------------- databases

def test_init_db_only_for_allowed_databases(proxy, db, other_db):
    import pymysql
    c = connect(proxy, db)
    try:
        with pytest.raises(pymysql.err.MySQLError) as ei:
            c.select_db(other_db)                      # COM_INIT_DB
        assert ei.value.args[0] == 1044
        cur = c.cursor()
        cur.execute("SELECT DATABASE()")
        assert cur.fetchone() == (db,)
        c.select_db(db)
        with pytest.raises(pymysql.err.MySQLError) as ei:
            cur.execute(f"USE `{other_db}`")
        assert ei.value.args[0] in (1044, 1792)
        cur.execute(f"USE `{db}`")                             # the allowed one is fine
        from pymysql.constants import CLIENT
        m = connect(proxy, db, client_flag=CLIENT.MULTI_STATEMENTS)
        with pytest.raises(pymysql.err.MySQLError) as ei:
            m.cursor().execute(f"SELECT 1; USE `{other_db}`")   # hidden behind a first statement
        assert ei.value.args[0] in (1044, 1792)
        m.close()
        cur.execute("SELECT DATABASE()")
        assert cur.fetchone() == (db,)
    finally:
        c.close()
    assert proxy.events("statement", rule="mysql_database_not_allowed")


def test_login_to_a_database_not_allowed(proxy, other_db):
    import pymysql
    with pytest.raises(pymysql.err.MySQLError) as ei:
        connect(proxy, other_db)
    assert ei.value.args[0] == 1044


def test_login_without_database_uses_configured_one(proxy, db):
    c = connect(proxy, None)
    try:
        cur = c.cursor()
        cur.execute("SELECT DATABASE()")
        assert cur.fetchone() == (db,)
    finally:
        c.close()


# ----------------------------------------------------------------------------- commands

def test_protocol_level_commands(proxy, mariadb_server, db):
    """COM_PING / COM_STATISTICS / COM_FIELD_LIST / COM_SET_OPTION relayed; the dangerous
    ones refused with ERR and audited; the connection survives every refusal."""
    before = mariadb_server.checksum(db)
    s = raw_login(proxy.port, database=db)
    try:
        s.sendall(frame(b"\x0e", 0))                       # COM_PING
        assert read_packet(s)[1][:1] == b"\x00"
        s.sendall(frame(b"\x09", 0))                       # COM_STATISTICS
        assert b"Uptime" in read_packet(s)[1]
        s.sendall(frame(b"\x04users\x00", 0))              # COM_FIELD_LIST
        pkts = [read_packet(s)[1] for _ in range(5)]
        assert pkts[-1][:1] == b"\xfe" and b"email" in pkts[2]   # 4 column definitions + EOF
        s.sendall(frame(b"\x1b\x01\x00", 0))               # COM_SET_OPTION multi-statements off
        assert read_packet(s)[1][:1] in (b"\x00", b"\xfe")
        for cmd, name in [(b"\x08\x00", "COM_SHUTDOWN"), (b"\x0c\x01\x00\x00\x00", "COM_PROCESS_KILL"),
                          (b"\x0a", "COM_PROCESS_INFO"), (b"\x07\x01", "COM_REFRESH"), (b"\x0d", "COM_DEBUG"),
                          (b"\x12" + bytes(10), "COM_BINLOG_DUMP"), (b"\x1e" + bytes(10), "COM_BINLOG_DUMP_GTID"),
                          (b"\x15" + bytes(10), "COM_REGISTER_SLAVE"), (b"\x11app\x00\x00", "COM_CHANGE_USER"),
                          (b"\x13", "COM_TABLE_DUMP"), (b"\x1d", "COM_DAEMON"), (b"\x14", "COM_CONNECT_OUT"),
                          (b"\x06" + db.encode(), "COM_DROP_DB"), (b"\x05x", "COM_CREATE_DB"),
                          (b"\x77", "COM_UNKNOWN_0x77"), (b"\xfa\x01\x00\x00\x00", "COM_STMT_BULK_EXECUTE")]:
            s.sendall(frame(cmd, 0))
            seq, err = read_packet(s)
            assert seq == 1 and err[:1] == b"\xff", name
            assert int.from_bytes(err[1:3], "little") == 1792 and err[4:9] == b"25006", name
            assert name in err[9:].decode(), err
            assert proxy.wait_for(lambda: proxy.events("statement", **{"protocol.message": name})), name
        s.sendall(frame(b"\x03SELECT 42", 0))
        pkts = read_response(s)
        assert pkts[-2] == b"\x0242"
        s.sendall(frame(b"\x01", 0))                       # COM_QUIT
        assert read_packet(s, 5) is None
    finally:
        s.close()
    assert mariadb_server.checksum(db) == before


def test_statement_ids_must_have_passed(proxy, mariadb_server, db):
    """COM_STMT_EXECUTE / FETCH / RESET only for ids whose PREPARE passed here."""
    before = mariadb_server.checksum(db)
    s = raw_login(proxy.port, database=db)
    try:
        s.sendall(frame(b"\x16DELETE FROM users", 0))      # blocked PREPARE
        seq, err = read_packet(s)
        assert err[:1] == b"\xff" and int.from_bytes(err[1:3], "little") == 1792
        s.sendall(frame(b"\x16SELECT name FROM users WHERE id = ?", 0))
        pkts = read_response_prepare(s)
        sid = int.from_bytes(pkts[0][1:5], "little")
        for bogus in (sid + 1, 0xFFFFFFF0):
            s.sendall(frame(b"\x17" + bogus.to_bytes(4, "little") + b"\x00\x01\x00\x00\x00", 0))
            seq, err = read_packet(s)
            assert err[:1] == b"\xff" and int.from_bytes(err[1:3], "little") == 1243, err
            s.sendall(frame(b"\x1a" + bogus.to_bytes(4, "little"), 0))   # COM_STMT_RESET
            assert read_packet(s)[1][:1] == b"\xff"
        # COM_STMT_CLOSE of an unknown id: no response, dropped, audited
        s.sendall(frame(b"\x19" + (sid + 7).to_bytes(4, "little"), 0))
        # the real one executes (int param = 1)
        s.sendall(frame(b"\x17" + sid.to_bytes(4, "little") + b"\x00\x01\x00\x00\x00"
                        + b"\x00" + b"\x01" + b"\x03\x00" + (1).to_bytes(4, "little"), 0))
        pkts = read_response(s)
        assert any(b"alice" in p for p in pkts), pkts
        s.sendall(frame(b"\x19" + sid.to_bytes(4, "little"), 0))          # close: no answer
        s.sendall(frame(b"\x17" + sid.to_bytes(4, "little") + b"\x00\x01\x00\x00\x00", 0))
        seq, err = read_packet(s)
        assert int.from_bytes(err[1:3], "little") == 1243        # closed ids are gone too
        s.sendall(frame(b"\x0e", 0))
        assert read_packet(s)[1][:1] == b"\x00"
    finally:
        s.close()
    assert mariadb_server.checksum(db) == before
    assert proxy.events("statement", rule="mysql_unknown_statement_id")


def read_response_prepare(sock) -> list[bytes]:
    """PREPARE OK + param defs + EOF + column defs + EOF (no DEPRECATE_EOF)."""
    seq, first = read_packet(sock)
    out = [first]
    params = int.from_bytes(first[7:9], "little")
    cols = int.from_bytes(first[5:7], "little")
    for n in (params, cols):
        if n:
            for _ in range(n + 1):
                out.append(read_packet(sock)[1])
    return out


def test_reset_connection_reapplies_read_only(proxy, db):
    c = connect(proxy, db)
    try:
        cur = c.cursor()
        cur.execute("SELECT @@session.tx_read_only")
        assert int(cur.fetchone()[0]) == 1
        c._execute_command(0x1F, b"")                       # COM_RESET_CONNECTION
        c._read_ok_packet()
        cur.execute("SELECT @@session.tx_read_only, @@session.max_statement_time")
        ro, mst = cur.fetchone()
        assert int(ro) == 1 and float(mst) == pytest.approx(5.0)
    finally:
        c.close()


# ----------------------------------------------------------------------------- drivers

def test_mysqlclient(proxy, mariadb_server, db):
    import MySQLdb
    before = mariadb_server.checksum(db)
    c = MySQLdb.connect(host="127.0.0.1", port=proxy.port, user="app", password="secret", database=db)
    try:
        cur = c.cursor()
        cur.execute("SELECT name FROM users WHERE id = %s", (2,))
        assert cur.fetchone() == ("bob",)
        with pytest.raises(MySQLdb.MySQLError) as ei:
            cur.execute("UPDATE users SET name = 'x' WHERE id = 2")
        assert ei.value.args[0] == 1792
        cur.execute("SELECT COUNT(*) FROM orders")
        assert cur.fetchone() == (3,)
    finally:
        c.close()
    assert mariadb_server.checksum(db) == before


def test_mysql_connector_text_and_prepared(proxy, mariadb_server, db):
    import mysql.connector
    before = mariadb_server.checksum(db)
    c = mysql.connector.connect(host="127.0.0.1", port=proxy.port, user="app", password="secret",
                                database=db, ssl_disabled=True)
    try:
        cur = c.cursor()
        cur.execute("SELECT name FROM users ORDER BY id LIMIT 3")
        assert [r[0] for r in cur.fetchall()] == ["alice", "bob", "carol"]
        with pytest.raises(mysql.connector.Error) as ei:
            cur.execute("DELETE FROM users WHERE id = 3")
        assert ei.value.errno == 1792
        pcur = c.cursor(prepared=True)                      # COM_STMT_PREPARE / EXECUTE
        pcur.execute("SELECT name, email FROM users WHERE id = %s", (4,))
        assert pcur.fetchall() == [("dave", "d@example.com")]
        pcur.execute("SELECT name, email FROM users WHERE id = %s", (5,))
        assert pcur.fetchall() == [("erin", "e@example.com")]
        with pytest.raises(mysql.connector.Error) as ei:
            pcur.execute("UPDATE users SET name = %s WHERE id = %s", ("x", 1))
        assert ei.value.errno == 1792
        pcur.execute("SELECT COUNT(*) FROM users WHERE id > %s", (0,))
        assert pcur.fetchall() == [(11,)]
    finally:
        c.close()
    assert mariadb_server.checksum(db) == before
    prep = proxy.events("statement", **{"protocol.message": "COM_STMT_PREPARE"})
    assert any(r["verdict"] == "BLOCKED" for r in prep)
    assert proxy.events("statement", **{"protocol.message": "COM_STMT_EXECUTE"})


def test_aiomysql(proxy, mariadb_server, db):
    import aiomysql
    import pymysql
    before = mariadb_server.checksum(db)

    async def go():
        conn = await aiomysql.connect(host="127.0.0.1", port=proxy.port, user="app", password="secret", db=db)
        try:
            async with conn.cursor() as cur:
                await cur.execute("SELECT id, total FROM orders ORDER BY id")
                rows = await cur.fetchall()
                assert len(rows) == 3
                with pytest.raises(pymysql.err.MySQLError) as ei:
                    await cur.execute("INSERT INTO orders (user_id, total) VALUES (1, 1)")
                assert ei.value.args[0] == 1792
                await cur.execute("SELECT 1")
                assert await cur.fetchone() == (1,)
        finally:
            conn.close()

    asyncio.run(go())
    assert mariadb_server.checksum(db) == before


def test_large_result(proxy, db):
    """A result set much bigger than one read streams through and is counted."""
    c = connect(proxy, db)
    try:
        cur = c.cursor()
        cur.execute("SELECT seq FROM seq_1_to_200000")
        assert len(cur.fetchall()) == 200000
    finally:
        c.close()
    done = proxy.wait_for(lambda: [r for r in proxy.events("statement")
                                   if r.get("db.query.text") == "SELECT seq FROM seq_1_to_200000"])
    assert done[0]["rows"] == 200000


def test_audit_records(proxy, db):
    c = connect(proxy, db)
    try:
        c.cursor().execute("SELECT name FROM users WHERE id = 7")
    finally:
        c.close()
    rec = proxy.wait_for(lambda: [r for r in proxy.events("statement", verdict="ALLOWED")
                                  if r.get("db.query.text") == "SELECT name FROM users WHERE id = 7"])[0]
    assert rec["backend"] == BACKEND
    assert rec["db.system.name"] == "mariadb"
    assert rec["db.namespace"] == db
    assert rec["agent"] == "app"
    assert rec["protocol.message"] == "COM_QUERY"
    assert rec["rows"] == 1 and rec["duration_ms"] >= 0
    assert rec["client.address"] == "127.0.0.1"
    assert proxy.events("auth_ok") and proxy.events("connect") and proxy.events("disconnect")


def test_monitor_mode_forwards_and_audits(mariadb_server):
    """security.enforce_read_only: false -- loud monitor mode: would-be blocks are forwarded
    and audited as such (here on a throwaway database, which is expected to change)."""
    import pymysql
    scratch = create_db(mariadb_server, "sdp_mymon")
    p = start_proxy(mariadb_server, scratch, security={"enforce_read_only": False})
    try:
        c = connect(p, scratch, autocommit=True)
        try:
            cur = c.cursor()
            cur.execute("INSERT INTO users (name) VALUES ('monitored')")
            # relay-level refusals still hold in monitor mode
            with pytest.raises(pymysql.err.MySQLError):
                c._execute_command(0x08, b"\x00")
                c._read_ok_packet()
        finally:
            c.close()
        assert mariadb_server.sql("SELECT COUNT(*) FROM users WHERE name = 'monitored'", scratch).strip() == "1"
        rec = p.wait_for(lambda: [r for r in p.events("statement") if r.get("monitor")])
        assert rec[0]["verdict"] == "ALLOWED" and rec[0]["would_verdict"] == "BLOCKED"
    finally:
        p.stop()


def test_backstop_catches_an_engine_miss(mariadb_server, db):
    """Simulate an engine bug that lets `SET SESSION TRANSACTION READ WRITE` through: the
    proxy's read-only check after every allowed session statement sees the session is no
    longer read-only, kills it (ERR + alert), and the following write never runs."""
    import pymysql
    p = start_proxy(mariadb_server, db)
    try:
        real = p.app.engine(BACKEND)

        class LeakyEngine:
            def classify(self, sql):
                v = real.classify(sql)
                if "READ WRITE" in sql.upper():
                    import dataclasses
                    return dataclasses.replace(real.classify("SET autocommit = 1"), verdict="allow")
                return v
        p.app._engines[BACKEND] = LeakyEngine()
        before = mariadb_server.checksum(db)
        c = connect(p, db)
        cur = c.cursor()
        cur.execute("SET SESSION TRANSACTION READ WRITE")          # the leak
        with pytest.raises(pymysql.err.MySQLError) as ei:
            cur.execute("SELECT 1")                                  # answered with the reason
        assert "no longer read-only" in str(ei.value)
        with pytest.raises(pymysql.err.MySQLError):
            cur.execute("DELETE FROM users")
        c.close()
        assert mariadb_server.checksum(db) == before
        assert p.wait_for(lambda: p.events("alert", rule="mysql_read_only_lost"))
    finally:
        p.stop()


def test_proxy_closing_a_connection_says_why(mariadb_server, db):
    """app.close_connections (drain, session destroyed): the client's next command gets an
    ERR naming the reason, then the connection is gone; audit `disconnect`."""
    import pymysql
    p = start_proxy(mariadb_server, db)
    try:
        c = connect(p, db)
        assert c.cursor().execute("SELECT 1") == 1
        p.call(p.app.close_connections, list(p.app.connections), "session destroyed by the operator")
        with pytest.raises(pymysql.err.MySQLError) as ei:
            c.cursor().execute("SELECT 1")
        assert "session destroyed by the operator" in str(ei.value)
        assert p.wait_for(lambda: p.events("disconnect", reason="session destroyed by the operator"))
        c.close()
    finally:
        p.stop()
