"""Brokered login of the MySQL relay, both sides, with real clients and the real MariaDB.

Client side (the proxy as server): mysql_native_password, caching_sha2_password (fast auth,
full auth over TLS and with the RSA key exchange; tested with MySQL 8 client libraries,
PyMySQL and mysql-connector-python, since there is no MySQL 8 server here), TLS upgrade
(also when the ClientHello shares a TCP segment with the SSLRequest), wrong passwords,
agents. Backend side (the proxy as client): MariaDB client_ed25519 reached through an auth
switch, and caching_sha2_password against a second proxy instance acting as the server
(our own server side, not a MySQL 8 server: stated plainly).
"""

from __future__ import annotations

import socket
import tempfile
import uuid

import pytest

from test_mysql_helpers import (AGENT, AGENT_PW, MemTlsClient, create_db, frame, make_cert, read_packet,
                                start_proxy)

pytestmark = pytest.mark.mariadb


@pytest.fixture(scope="module")
def db(mariadb_server):
    return create_db(mariadb_server, "sdp_myauth")


@pytest.fixture(scope="module")
def certs():
    return make_cert(tempfile.mkdtemp(prefix="sdp-my-tls-"))


def pm(port, db, **kw):
    import pymysql
    args = dict(host="127.0.0.1", port=port, user="app", password="secret", database=db, connect_timeout=10)
    args.update(kw)
    return pymysql.connect(**args)


def one(conn, sql):
    cur = conn.cursor()
    cur.execute(sql)
    return cur.fetchone()


# ----------------------------------------------------------------------------- client side

def test_wrong_password_and_unknown_user(mariadb_server, db):
    import pymysql
    p = start_proxy(mariadb_server, db)
    try:
        good = pm(p.port, db)
        for user, pw in (("app", "wrong"), ("nobody", "secret"), ("app", "")):
            with pytest.raises(pymysql.err.OperationalError) as ei:
                pm(p.port, db, user=user, password=pw)
            assert ei.value.args[0] == 1045, ei.value.args
            assert "Access denied" in ei.value.args[1]
        failed = p.wait_for(lambda: len(p.events("auth_failed")) >= 3 and p.events("auth_failed"))
        assert {r["reason"] for r in failed} >= {"wrong password", "unknown user"}
        assert one(good, "SELECT 1") == (1,)        # other connections unaffected
        good.close()
    finally:
        p.stop()


def test_agents_replace_backend_credentials(mariadb_server, db):
    """With agents configured the agent logs in with its own password; the database
    password is not a valid login (agents never learn it)."""
    import pymysql
    p = start_proxy(mariadb_server, db, agents=True)
    try:
        c = pm(p.port, db, user=AGENT, password=AGENT_PW)
        assert one(c, "SELECT CURRENT_USER()")[0].startswith("app@")   # the backend's identity
        c.close()
        with pytest.raises(pymysql.err.OperationalError) as ei:
            pm(p.port, db, user="app", password="secret")
        assert ei.value.args[0] == 1045
        ok = p.wait_for(lambda: p.events("auth_ok", agent=AGENT))
        assert ok[0]["auth.plugin"] == "mysql_native_password"
    finally:
        p.stop()


def test_caching_sha2_full_then_fast_pymysql(mariadb_server, db):
    """PyMySQL follows the greeting's caching_sha2_password: the first login performs full
    authentication with the proxy's RSA key (no TLS), the next one uses fast auth."""
    import pymysql
    p = start_proxy(mariadb_server, db, client_auth_plugin="caching_sha2_password")
    try:
        for _ in range(2):
            c = pm(p.port, db)
            assert one(c, "SELECT 2") == (2,)
            c.close()
        with pytest.raises(pymysql.err.OperationalError) as ei:
            pm(p.port, db, password="nope")
        assert ei.value.args[0] == 1045
        oks = p.wait_for(lambda: len(p.events("auth_ok")) >= 2 and p.events("auth_ok"))
        assert [r["auth.plugin"] for r in oks] == ["caching_sha2_password"] * 2
        assert [r["auth.path"] for r in oks] == ["sha2-full-rsa", "sha2-fast"]
    finally:
        p.stop()


def test_caching_sha2_connector_over_tls(mariadb_server, db, certs):
    """mysql-connector-python answers with caching_sha2_password on its own (auth_plugin=)
    while the proxy greets with mysql_native_password; full auth sends the password over TLS."""
    import mysql.connector
    cert, key = certs
    p = start_proxy(mariadb_server, db, backend={"tls": {"cert_file": cert, "key_file": key}})
    try:
        for _ in range(2):
            c = mysql.connector.connect(host="127.0.0.1", port=p.port, user="app", password="secret",
                                        database=db, auth_plugin="caching_sha2_password",
                                        ssl_verify_cert=False)
            cur = c.cursor()
            cur.execute("SELECT 3")
            assert cur.fetchall() == [(3,)]
            c.close()
        oks = p.wait_for(lambda: len(p.events("auth_ok")) >= 2 and p.events("auth_ok"))
        assert [r["auth.path"] for r in oks] == ["sha2-full-tls", "sha2-fast"]
        assert all(r["tls"] for r in oks)
    finally:
        p.stop()


def test_tls_pymysql_upgrades_by_itself(mariadb_server, db, certs):
    cert, key = certs
    p = start_proxy(mariadb_server, db, backend={"tls": {"cert_file": cert, "key_file": key}})
    try:
        c = pm(p.port, db)                                   # PyMySQL sees CLIENT_SSL and upgrades
        assert one(c, "SELECT 4") == (4,)
        c.close()
        c = pm(p.port, db, ssl={"ca": cert})                 # and with certificate verification
        assert one(c, "SELECT 5") == (5,)
        import ssl as _ssl
        assert isinstance(c._sock, _ssl.SSLSocket)
        c.close()
        oks = p.wait_for(lambda: len(p.events("auth_ok")) >= 2 and p.events("auth_ok"))
        assert all(r["tls"] for r in oks)
    finally:
        p.stop()


def test_tls_required_refuses_plaintext(mariadb_server, db, certs):
    import pymysql
    cert, key = certs
    p = start_proxy(mariadb_server, db, backend={"tls": {"cert_file": cert, "key_file": key, "required": True}})
    try:
        with pytest.raises(pymysql.err.OperationalError) as ei:
            pm(p.port, db, ssl_disabled=True)
        assert ei.value.args[0] == 3159
        c = pm(p.port, db)
        assert one(c, "SELECT 6") == (6,)
        c.close()
    finally:
        p.stop()


def test_tls_client_hello_in_the_same_segment_as_sslrequest(mariadb_server, db, certs):
    """The client does not wait after its SSLRequest: the proxy must hand bytes that
    arrived with it to the TLS layer instead of dropping them."""
    from sandbox_db_proxy import _native as N
    from sandbox_db_proxy.auth import mysql_auth as A
    from sandbox_db_proxy.protocols import mysql_consts as C
    cert, key = certs
    p = start_proxy(mariadb_server, db, backend={"tls": {"cert_file": cert, "key_file": key}})
    try:
        s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _seq, greeting = read_packet(s)
        hs = N.mysql_parse_handshake(greeting)
        assert hs["capabilities"] & C.CLIENT_SSL
        caps = C.CLIENT_PROTOCOL_41 | C.CLIENT_SECURE_CONNECTION | C.CLIENT_PLUGIN_AUTH | C.CLIENT_SSL
        tls = MemTlsClient(s, cafile=cert)
        s.sendall(N.mysql_ssl_request(1, caps, 1 << 24, 45) + tls.client_hello())   # ONE write
        tls.finish_handshake()
        auth = A.native_scramble(b"secret", hs["scramble"])
        tls.send(N.mysql_handshake_response(2, caps, 1 << 24, 45, b"app", auth, db.encode(),
                                            b"mysql_native_password", []))
        seq, ok = tls.read_packet()
        assert ok[:1] == b"\x00" and seq == 3, ok
        tls.send(frame(b"\x03SELECT 7", 0))
        seq, first = tls.read_packet()
        assert first == b"\x01" and seq == 1
        s.close()
    finally:
        p.stop()


def test_connection_limit(mariadb_server, db):
    import pymysql
    p = start_proxy(mariadb_server, db, limits={"max_client_connections": 2})
    try:
        a, b = pm(p.port, db), pm(p.port, db)
        with pytest.raises(pymysql.err.OperationalError) as ei:
            pm(p.port, db)
        assert ei.value.args[0] == 1040
        assert one(a, "SELECT 1") == (1,) and one(b, "SELECT 1") == (1,)
        a.close()
        c = p.wait_for(lambda: _try(lambda: pm(p.port, db)))
        assert c is not None
        c.close()
        b.close()
        assert p.events("limit", limit="max_client_connections")
    finally:
        p.stop()


def _try(fn):
    try:
        return fn()
    except Exception:  # noqa: BLE001
        return None


# ----------------------------------------------------------------------------- backend side

def test_backend_ed25519_through_auth_switch(mariadb_server, db):
    """MariaDB greets with mysql_native_password and switches this user to client_ed25519."""
    user = f"ed_{uuid.uuid4().hex[:6]}"
    mariadb_server.sql("INSTALL SONAME 'auth_ed25519'") if not mariadb_server.sql(
        "SELECT COUNT(*) FROM information_schema.plugins WHERE plugin_name = 'ed25519'").strip() == "1" else None
    mariadb_server.sql(f"CREATE USER '{user}'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('ed-pw-1');"
                       f"GRANT SELECT ON `{db}`.* TO '{user}'@'%'")
    try:
        p = start_proxy(mariadb_server, db, backend={"username": user, "password": "ed-pw-1"})
        try:
            c = pm(p.port, db, user=user, password="ed-pw-1")
            assert one(c, "SELECT CURRENT_USER()")[0] == f"{user}@%"
            assert one(c, "SELECT COUNT(*) FROM users") == (11,)
            c.close()
        finally:
            p.stop()
    finally:
        mariadb_server.sql(f"DROP USER '{user}'@'%'")


@pytest.mark.parametrize("backend_tls", ["disable", "require"])
def test_backend_caching_sha2_against_proxy_server_side(mariadb_server, db, certs, backend_tls):
    """Proxy A logs in to proxy B (which speaks caching_sha2_password as a server) in front of
    MariaDB: full auth (RSA without TLS, cleartext with TLS), then fast auth."""
    cert, key = certs
    inner = start_proxy(mariadb_server, db, client_auth_plugin="caching_sha2_password",
                        backend={"tls": {"cert_file": cert, "key_file": key}})
    try:
        class Hop:
            host, port, user, password = "127.0.0.1", inner.port, "app", "secret"
        outer = start_proxy(Hop, db, backend={"backend_tls": {"mode": backend_tls}})
        try:
            for _ in range(2):
                c = pm(outer.port, db)
                assert one(c, "SELECT COUNT(*) FROM orders") == (3,)
                c.close()
            oks = inner.wait_for(lambda: len(inner.events("auth_ok")) >= 2 and inner.events("auth_ok"))
            first = "sha2-full-tls" if backend_tls == "require" else "sha2-full-rsa"
            assert [r["auth.path"] for r in oks] == [first, "sha2-fast"]
            assert all(r["tls"] == (backend_tls == "require") for r in oks)
        finally:
            outer.stop()
    finally:
        inner.stop()
