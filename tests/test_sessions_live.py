"""Agent sessions end to end: the control API of a running ProxyApp, real PostgreSQL 15 and
MariaDB 10.11 behind it, real clients (psycopg, psql, PyMySQL, a raw MySQL socket).

Create a session, log in with its credentials on both protocols, read, get blocked on a
write (database checksum unchanged), DELETE it and watch the open connections die with the
operator's message and new logins fail; expiry, idle timeout, IP restriction, connection
cap, per-session counters, and a restart on the same SQLite store."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.parse

import psycopg
import pymysql
import pytest

from test_sessions_helpers import MY, PG, dbs, proxy_fixture, start_proxy, wait_for  # noqa: F401 (fixture)

OPERATOR = "session terminated by the operator"

proxy = proxy_fixture(sessions={"max_sessions_per_user": 50, "max_concurrent_agents": 50})


def pg(url: str):
    return psycopg.connect(url, autocommit=True, connect_timeout=10)


def my(url: str, **kw):
    u = urllib.parse.urlparse(url)
    return pymysql.connect(host=u.hostname, port=u.port, user=urllib.parse.unquote(u.username),
                           password=urllib.parse.unquote(u.password), database=u.path.lstrip("/"),
                           connect_timeout=10, read_timeout=20, **kw)


def my_query(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def mysql_raw_login(url: str) -> socket.socket:
    """mysql_native_password login on a raw socket (to read exactly what the proxy sends)."""
    from test_mysql_helpers import raw_login
    u = urllib.parse.urlparse(url)
    return raw_login(u.port, user=u.username, password=u.password, database=u.path.lstrip("/"))


def err_packet(payload: bytes) -> tuple[int, str]:
    assert payload[:1] == b"\xff", payload
    code = int.from_bytes(payload[1:3], "little")
    msg = payload[3:]
    if msg[:1] == b"#":
        msg = msg[6:]
    return code, msg.decode()


def assert_pg_login_fails(url: str):
    with pytest.raises(psycopg.OperationalError) as ei:
        pg(url)
    assert "authentication failed" in str(ei.value)


def assert_my_login_fails(url: str, code: int = 1045):
    with pytest.raises(pymysql.err.OperationalError) as ei:
        my(url)
    assert ei.value.args[0] == code, ei.value.args
    return ei.value


# -- reads, blocked writes, audit ---------------------------------------------------------------

def test_pg_session_reads_and_blocked_write(proxy, pg_server, dbs):
    doc = proxy.create(agent="reader", backends=[PG])
    before = pg_server.checksum(dbs[0])
    with pg(doc["connections"][PG]) as c:
        assert c.execute("SELECT count(*) FROM accounts").fetchone()[0] == 20
        with pytest.raises(psycopg.Error) as ei:
            c.execute("DELETE FROM accounts")
        assert ei.value.sqlstate == "25006" and ei.value.diag.message_primary
        with pytest.raises(psycopg.Error):
            c.execute("UPDATE accounts SET balance = 0")
        assert c.execute("SELECT owner FROM accounts WHERE id = 3").fetchone()[0] == "owner3"
    assert pg_server.checksum(dbs[0]) == before
    sid = doc["id"]
    assert wait_for(lambda: proxy.events("statement", verdict="BLOCKED", **{"session.id": sid}))
    for r in proxy.events(**{"session.id": sid}):
        assert r["agent"] == "reader", r
    kinds = {r["event"] for r in proxy.events(**{"session.id": sid})}
    assert {"session_created", "auth_ok", "statement"} <= kinds


def test_psql_cli_with_the_connection_string(proxy, pg_server, dbs):
    doc = proxy.create(agent="psql", backends=[PG])
    before = pg_server.checksum(dbs[0])
    out = subprocess.run(["psql", "-X", "-A", "-t", doc["connections"][PG] + "?sslmode=disable",
                          "-c", "SELECT sum(id) FROM accounts"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.strip() == "210", out.stderr
    out = subprocess.run(["psql", "-X", doc["connections"][PG] + "?sslmode=disable", "-c", "DROP TABLE accounts"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "read-only" in out.stderr.lower() + out.stdout.lower(), out.stderr
    assert pg_server.checksum(dbs[0]) == before


def test_mysql_session_reads_and_blocked_write(proxy, mariadb_server, dbs):
    doc = proxy.create(agent="myreader", backends=[MY])
    before = mariadb_server.checksum(dbs[1])
    conn = my(doc["connections"][MY])
    try:
        assert my_query(conn, "SELECT count(*) FROM accounts")[0][0] == 3
        for sql in ("DELETE FROM accounts", "UPDATE accounts SET balance = 0", "DROP TABLE accounts"):
            with pytest.raises(pymysql.err.MySQLError) as ei:
                my_query(conn, sql)
            assert ei.value.args[0] == 1792 and ei.value.args[1], ei.value.args
        assert my_query(conn, "SELECT owner FROM accounts WHERE id = 2")[0][0] == "owner2"
    finally:
        conn.close()
    assert mariadb_server.checksum(dbs[1]) == before
    sid = doc["id"]
    assert wait_for(lambda: proxy.events("statement", verdict="BLOCKED", **{"session.id": sid}))
    for r in proxy.events(**{"session.id": sid}):
        assert r["agent"] == "myreader", r


def test_session_logs_in_only_to_its_backends(proxy):
    doc = proxy.create(agent="pgonly", backends=[PG])
    mine = urllib.parse.urlparse(doc["connections"][PG])
    my_url = f"mysql://{mine.username}:{mine.password}@127.0.0.1:{proxy.port(MY)}/x"
    assert_my_login_fails(my_url)
    pg(doc["connections"][PG]).close()


def test_wrong_password_refused(proxy):
    doc = proxy.create(agent="wrongpw", backends=[PG, MY])
    for name, fails in ((PG, assert_pg_login_fails), (MY, assert_my_login_fails)):
        pw = doc["password"]
        wrong = pw[:-1] + ("y" if pw.endswith("x") else "x")      # never the password itself
        bad = doc["connections"][name].replace(pw, wrong)
        fails(bad)


# -- the kill switch ------------------------------------------------------------------------------

def test_delete_kills_open_connections_with_operator_message(proxy, pg_server, mariadb_server, dbs):
    doc = proxy.create(agent="victim", backends=[PG, MY])
    pconn = pg(doc["connections"][PG])
    pconn2 = pg(doc["connections"][PG])
    mconn = my(doc["connections"][MY])
    raw = mysql_raw_login(doc["connections"][MY])
    assert pconn.execute("SELECT 1").fetchone()[0] == 1 and my_query(mconn, "SELECT 1")[0][0] == 1
    assert wait_for(lambda: proxy.api("GET", f"/api/sessions/{doc['id']}")[2]["live_connections"] == 4)
    pg_before, my_before = pg_server.checksum(dbs[0]), mariadb_server.checksum(dbs[1])

    status, _, body = proxy.api("DELETE", f"/api/sessions/{doc['id']}")
    assert status == 200 and body["state"] == "revoked" and body["connections_closed"] == 4

    # PostgreSQL: FATAL 57P01 admin_shutdown with the operator's message.
    for c in (pconn, pconn2):
        with pytest.raises(psycopg.errors.AdminShutdown) as ei:
            c.execute("SELECT 1")
        assert OPERATOR in str(ei.value)
        assert ei.value.sqlstate == "57P01"
    # MySQL: ERR 1927 (ER_CONNECTION_KILLED) carrying the message, then the socket closes.
    from test_mysql_helpers import read_packet
    seq, payload = read_packet(raw, 10)
    code, msg = err_packet(payload)
    assert code == 1927 and OPERATOR in msg, (code, msg)
    assert read_packet(raw, 5) is None
    raw.close()
    # PyMySQL reads that unsolicited ERR as a lost connection (it maps sequence id 0 to 2013).
    with pytest.raises(pymysql.err.OperationalError) as ei:
        my_query(mconn, "SELECT 1")
    assert ei.value.args[0] in (1927, 2006, 2013)
    # New logins fail on both protocols.
    assert_pg_login_fails(doc["connections"][PG])
    assert_my_login_fails(doc["connections"][MY])
    assert wait_for(lambda: proxy.api("GET", f"/api/sessions/{doc['id']}")[2]["live_connections"] == 0)
    rec = proxy.events("session_revoked", **{"session.id": doc["id"]})
    assert rec and rec[0]["agent"] == "victim"
    # The connections' own records (auth_ok ... disconnect) carry the session and the agent.
    gone = wait_for(lambda: (lambda d: d if len(d) >= 4 else None)(
        proxy.events("disconnect", **{"session.id": doc["id"]})))
    assert gone and all(r["agent"] == "victim" for r in gone), gone
    assert pg_server.checksum(dbs[0]) == pg_before and mariadb_server.checksum(dbs[1]) == my_before


def test_delete_other_session_leaves_this_one_alone(proxy):
    keep = proxy.create(agent="keep", backends=[PG])
    kill = proxy.create(agent="kill", backends=[PG])
    a, b = pg(keep["connections"][PG]), pg(kill["connections"][PG])
    proxy.api("DELETE", f"/api/sessions/{kill['id']}")
    with pytest.raises(psycopg.errors.AdminShutdown):
        b.execute("SELECT 1")
    assert a.execute("SELECT 2").fetchone()[0] == 2
    a.close()


# -- lifecycle -------------------------------------------------------------------------------------

def test_expiry_closes_connections_and_refuses_logins(proxy):
    doc = proxy.create(agent="shortlived", backends=[PG, MY], ttl_seconds=2)
    pconn = pg(doc["connections"][PG])
    raw = mysql_raw_login(doc["connections"][MY])
    assert pconn.execute("SELECT 1").fetchone()[0] == 1
    from test_mysql_helpers import read_packet
    seq, payload = read_packet(raw, 10)           # blocks until the proxy closes it at expiry
    code, msg = err_packet(payload)
    assert code == 1927 and "expired" in msg
    raw.close()
    with pytest.raises(psycopg.errors.AdminShutdown) as ei:
        pconn.execute("SELECT 1")
    assert "expired" in str(ei.value)
    assert_pg_login_fails(doc["connections"][PG])
    assert_my_login_fails(doc["connections"][MY])
    _, _, one = proxy.api("GET", f"/api/sessions/{doc['id']}")
    assert one["state"] == "expired" and one["live_connections"] == 0
    assert wait_for(lambda: proxy.events("session_expired", **{"session.id": doc["id"]}))


def test_expiry_without_auto_destroy_only_refuses_new_logins(pg_server, mariadb_server, dbs):
    p = start_proxy(pg_server, dbs[0], mariadb_server, dbs[1], sessions={"auto_destroy": False})
    try:
        doc = p.create(agent="lingers", backends=[PG, MY], ttl_seconds=2)
        pconn, mconn = pg(doc["connections"][PG]), my(doc["connections"][MY])
        assert wait_for(lambda: p.api("GET", f"/api/sessions/{doc['id']}")[2]["state"] == "expired")
        assert wait_for(lambda: p.events("session_expired", **{"session.id": doc["id"]}))
        assert pconn.execute("SELECT 7").fetchone()[0] == 7       # still served
        assert my_query(mconn, "SELECT 8")[0][0] == 8
        assert_pg_login_fails(doc["connections"][PG])
        assert_my_login_fails(doc["connections"][MY])
        # The operator can still kill what lingers.
        status, _, body = p.api("DELETE", f"/api/sessions/{doc['id']}")
        assert status == 200 and body["connections_closed"] == 2
        with pytest.raises(psycopg.errors.AdminShutdown):
            pconn.execute("SELECT 1")
        mconn.close()
    finally:
        p.stop()


def test_idle_timeout_closes_idle_connections_only(proxy):
    doc = proxy.create(agent="idler", backends=[PG, MY], idle_timeout_seconds=1)
    idle, busy = pg(doc["connections"][PG]), pg(doc["connections"][PG])
    raw = mysql_raw_login(doc["connections"][MY])
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:        # keep one connection busy for 3 s
        assert busy.execute("SELECT 1").fetchone()[0] == 1
        time.sleep(0.2)
    with pytest.raises(psycopg.errors.AdminShutdown) as ei:
        idle.execute("SELECT 1")
    assert "idle" in str(ei.value)
    from test_mysql_helpers import read_packet
    seq, payload = read_packet(raw, 5)
    assert err_packet(payload)[0] == 1927 and "idle" in err_packet(payload)[1]
    raw.close()
    assert busy.execute("SELECT 2").fetchone()[0] == 2          # the busy one survived
    busy.close()
    pg(doc["connections"][PG]).close()                          # the session itself is still valid


def test_allowed_ips_restrict_logins(proxy):
    far = proxy.create(agent="far", backends=[PG, MY], allowed_ips=["10.0.0.0/8"])
    assert_pg_login_fails_with(far["connections"][PG], "allowed_ips")
    assert_my_login_fails(far["connections"][MY])
    assert wait_for(lambda: proxy.events("auth_failed", **{"session.id": far["id"]})
                    or [r for r in proxy.events("auth_failed") if "allowed_ips" in r.get("reason", "")])
    near = proxy.create(agent="near", backends=[PG, MY], allowed_ips=["127.0.0.0/8"])
    pg(near["connections"][PG]).close()
    my(near["connections"][MY]).close()


def assert_pg_login_fails_with(url: str, text: str):
    with pytest.raises(psycopg.OperationalError) as ei:
        pg(url)
    assert text in str(ei.value), str(ei.value)


def test_max_connections_per_session(proxy):
    doc = proxy.create(agent="capped", backends=[PG, MY], max_connections=2)
    a = pg(doc["connections"][PG])
    b = my(doc["connections"][MY])
    assert_pg_login_fails_with(doc["connections"][PG], "max_connections")
    with pytest.raises(pymysql.err.OperationalError) as ei:
        my(doc["connections"][MY])
    assert "max_connections" in str(ei.value)
    a.close()
    assert wait_for(lambda: proxy.api("GET", f"/api/sessions/{doc['id']}")[2]["live_connections"] == 1)
    c = pg(doc["connections"][PG])             # a slot is free again
    c.close()
    b.close()


def test_counters(proxy):
    doc = proxy.create(agent="counted", backends=[PG, MY])
    with pg(doc["connections"][PG]) as c:
        for _ in range(3):
            c.execute("SELECT * FROM accounts").fetchall()
        with pytest.raises(psycopg.Error):
            c.execute("DELETE FROM accounts")
        m = my(doc["connections"][MY])
        my_query(m, "SELECT * FROM accounts")
        with pytest.raises(pymysql.err.MySQLError):
            my_query(m, "DELETE FROM accounts")
        one = wait_for(lambda: (lambda d: d if d["statements_blocked"] >= 2 else None)(
            proxy.api("GET", f"/api/sessions/{doc['id']}")[2]))
        assert one, proxy.api("GET", f"/api/sessions/{doc['id']}")[2]
        stmts = [(r.get("verdict"), r.get("db.query.text"), r.get("protocol.message"))
                 for r in proxy.events("statement", **{"session.id": doc["id"]})]
        assert one["statements_allowed"] >= 4 and one["statements_blocked"] == 2, (one, stmts)
        assert one["live_connections"] == 2 and one["connections_total"] == 2
        assert one["bytes_in"] > 0 and one["bytes_out"] > 1000       # 20 + 3 rows came back
        assert one["last_activity"] is not None
        m.close()


# -- restart ----------------------------------------------------------------------------------------

def test_restart_keeps_live_sessions_and_revoked_stay_revoked(pg_server, mariadb_server, dbs, tmp_path):
    store = str(tmp_path / "sessions.db")
    p = start_proxy(pg_server, dbs[0], mariadb_server, dbs[1], store=store)
    try:
        live = p.create(agent="survivor", backends=[PG, MY])
        dead = p.create(agent="revoked", backends=[PG, MY])
        gone = p.create(agent="expiring", backends=[PG], ttl_seconds=1)
        p.api("DELETE", f"/api/sessions/{dead['id']}")
        pg(live["connections"][PG]).close()
    finally:
        p.stop()
    time.sleep(1.2)                              # `gone` lapses while the proxy is down
    p = start_proxy(pg_server, dbs[0], mariadb_server, dbs[1], store=store)
    try:
        # Listener ports are new after the restart: rebuild the URLs with the same credentials.
        def url(doc, name):
            u = urllib.parse.urlparse(doc["connections"][name])
            return u._replace(netloc=f"{u.username}:{u.password}@127.0.0.1:{p.port(name)}").geturl()
        with pg(url(live, PG)) as c:
            assert c.execute("SELECT count(*) FROM accounts").fetchone()[0] == 20
        m = my(url(live, MY))
        assert my_query(m, "SELECT count(*) FROM accounts")[0][0] == 3
        m.close()
        assert_pg_login_fails(url(dead, PG))
        assert_my_login_fails(url(dead, MY))
        assert_pg_login_fails(url(gone, PG))
        states = {s["id"]: s["state"] for s in p.api("GET", "/api/sessions")[2]["sessions"]}
        assert states[live["id"]] == "active" and states[dead["id"]] == "revoked"
        assert states[gone["id"]] == "expired"
        one = p.api("GET", f"/api/sessions/{live['id']}")[2]
        assert one["connections_total"] >= 1          # counters survived the restart
    finally:
        p.stop()
