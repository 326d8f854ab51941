"""Session logins over MySQL `caching_sha2_password` (issue 5; docs/mysql-relay.md).

A session stores only verifiers (sessions/store.py); its `Login` carries SHA256(SHA256(pw))
as `mysql_sha2_hash`, so the relay's `ServerAuth` can check a fast-auth scramble without the
password. As mysqld does, the first login of a credential on a listener performs full
authentication (here: the proxy's RSA key, no TLS); later logins use fast authentication.

The math is checked against the MySQL source docs ("Caching_sha2_password information":
Scramble = XOR(SHA256(password), SHA256(SHA256(SHA256(password)), Nonce)), hash entry =
SHA256(SHA256(password))) and against two real client implementations (PyMySQL and
mysql-connector-python), then end to end: a real MariaDB 10.11 behind a real ProxyApp with
the control API, a second MySQL listener whose greeting asks for caching_sha2_password
(`server/mysql.py start(..., client_auth_plugin=)`).
"""

from __future__ import annotations

import functools
import hashlib
import os
import urllib.parse

import pymysql
import pytest

from sandbox_db_proxy.auth import mysql_auth as A
from test_sessions_helpers import MY, create_my_db, start_proxy, wait_for

SHA2 = "caching_sha2_password"


# -- the fast-auth math, no server ---------------------------------------------------------------

def test_sha2_verify_from_stored_hash_matches_real_clients():
    from pymysql._auth import scramble_caching_sha2
    for password in (b"p", b"s3cr3t-\xc3\xa9", os.urandom(32).hex().encode()):
        nonce = A.new_scramble()
        stored = hashlib.sha256(hashlib.sha256(password).digest()).digest()
        assert A.sha2_hash(password) == stored
        # what PyMySQL sends is what the proxy computes, and it verifies from the hash alone
        response = scramble_caching_sha2(password, nonce)
        assert response == A.sha2_scramble(password, nonce)
        assert A.sha2_verify(response, nonce, stored_hash=stored)
        assert A.sha2_verify(response, nonce, password=password)
        # wrong password, another nonce, a truncated response, the stored hash itself: refused
        assert not A.sha2_verify(A.sha2_scramble(password + b"x", nonce), nonce, stored_hash=stored)
        assert not A.sha2_verify(response, A.new_scramble(), stored_hash=stored)
        assert not A.sha2_verify(response[:31], nonce, stored_hash=stored)
        assert not A.sha2_verify(stored, nonce, stored_hash=stored)
        assert not A.sha2_verify(response, nonce)
        assert not A.sha2_verify(b"", nonce, stored_hash=stored)


def test_sha2_scramble_matches_mysql_connector():
    from mysql.connector.plugins.caching_sha2_password import MySQLCachingSHA2PasswordAuthPlugin
    nonce = A.new_scramble()
    plugin = MySQLCachingSHA2PasswordAuthPlugin("u", "pw", ssl_enabled=False)
    theirs = plugin._scramble(nonce) if hasattr(plugin, "_scramble") else plugin.auth_response(nonce)
    assert theirs == A.sha2_scramble(b"pw", nonce)
    assert A.sha2_verify(theirs, nonce, stored_hash=A.sha2_hash(b"pw"))


def _login(**kw):
    from sandbox_db_proxy.server.app import Login
    return Login(agent="a", username="sess_u", source="session", session_id="s1", **kw)


def test_server_auth_session_login_full_then_fast():
    """ServerAuth with a session-style Login (no password; native + sha2 hashes): full auth
    first (RSA), then fast auth from the stored SHA256(SHA256(pw)); a wrong password fails."""
    pw = b"generated-password"
    login = _login(mysql_native_hash=A.native_hash(pw), mysql_sha2_hash=A.sha2_hash(pw))
    cache: set = set()

    scramble = A.new_scramble()
    auth = A.ServerAuth(login, scramble, tls=False, preferred=SHA2, fast_cache=cache)
    step = auth.begin(SHA2, A.sha2_scramble(pw, scramble))
    assert step.done is None and step.send == [A.more_data_payload(bytes([A.SHA2_PERFORM_FULL_AUTH]))]
    step = auth.next(bytes([A.SHA2_REQUEST_PUBLIC_KEY]))
    pem = step.send[0][1:]
    step = auth.next(A.rsa_encrypt_password(pw, scramble, pem))
    assert step.done is True and auth.path == "sha2-full-rsa"

    scramble = A.new_scramble()
    auth = A.ServerAuth(login, scramble, tls=False, preferred=SHA2, fast_cache=cache)
    step = auth.begin(SHA2, A.sha2_scramble(pw, scramble))
    assert step.done is True and auth.path == "sha2-fast"
    assert step.send == [A.more_data_payload(bytes([A.SHA2_FAST_AUTH_OK]))]

    scramble = A.new_scramble()
    auth = A.ServerAuth(login, scramble, tls=False, preferred=SHA2, fast_cache=cache)
    step = auth.begin(SHA2, A.sha2_scramble(b"wrong", scramble))
    assert step.done is False and auth.path == "sha2-fast"

    # without the sha2 hash a session login never takes the fast path, even when cached
    no_sha2 = _login(mysql_native_hash=A.native_hash(pw))
    auth = A.ServerAuth(no_sha2, A.new_scramble(), tls=False, preferred=SHA2, fast_cache=cache)
    step = auth.begin(SHA2, A.sha2_scramble(pw, auth.scramble))
    assert step.done is None and auth.stage == "sha2_full"


# -- end to end: API session, real clients, real MariaDB --------------------------------------------

@pytest.fixture(scope="module")
def my_db(mariadb_server):
    return create_my_db(mariadb_server)


@pytest.fixture(scope="module")
def proxy(mariadb_server, my_db):
    with start_proxy(None, None, mariadb_server, my_db,
                     sessions={"max_sessions_per_user": 20, "max_concurrent_agents": 20}) as p:
        yield p


@pytest.fixture(scope="module")
def sha2_port(proxy):
    """A second MySQL listener of the same app whose greeting asks for caching_sha2_password."""
    from sandbox_db_proxy.server import mysql as relay
    app = proxy.app
    server = proxy.call(functools.partial(relay.start, app, app.config.backend(MY),
                                          client_auth_plugin=SHA2))
    yield server.sockets[0].getsockname()[1]
    proxy.call(server.close)


def _creds(doc: dict) -> tuple[str, str, str]:
    u = urllib.parse.urlparse(doc["connections"][MY])
    return (urllib.parse.unquote(u.username), urllib.parse.unquote(u.password), u.path.lstrip("/"))


def _pymysql(port: int, user: str, password: str, database: str):
    return pymysql.connect(host="127.0.0.1", port=port, user=user, password=password,
                           database=database, connect_timeout=10, read_timeout=20)


def _auth_events(proxy, sid: str, n: int) -> list[dict]:
    recs = wait_for(lambda: len(proxy.events("auth_ok", **{"session.id": sid})) >= n
                    and proxy.events("auth_ok", **{"session.id": sid}))
    assert recs, proxy.events("auth_failed")
    return recs


def test_session_login_carries_sha2_hash(proxy):
    doc = proxy.create(agent="sha2-hash", backends=[MY])
    user, password, _ = _creds(doc)
    login = proxy.call(proxy.app.lookup_login, MY, user)
    assert login is not None and login.session_id == doc["id"] and login.password is None
    assert login.mysql_sha2_hash == A.sha2_hash(password.encode())


def test_pymysql_session_full_then_fast_auth(proxy, sha2_port, mariadb_server, my_db):
    doc = proxy.create(agent="sha2-pymysql", backends=[MY])
    sid = doc["id"]
    user, password, db = _creds(doc)
    before = mariadb_server.checksum(my_db)
    for _ in range(3):
        conn = _pymysql(sha2_port, user, password, db)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM accounts")
                assert cur.fetchall()[0][0] == 3
                with pytest.raises(pymysql.err.MySQLError) as ei:
                    cur.execute("DELETE FROM accounts")
                assert ei.value.args[0] == 1792 and "DELETE" in ei.value.args[1], ei.value.args
        finally:
            conn.close()
    assert mariadb_server.checksum(my_db) == before
    recs = _auth_events(proxy, sid, 3)
    assert [r["auth.plugin"] for r in recs] == [SHA2] * 3
    assert [r["auth.path"] for r in recs] == ["sha2-full-rsa", "sha2-fast", "sha2-fast"]
    assert all(r["agent"] == "sha2-pymysql" for r in recs)

    # the fast path refuses a wrong password
    with pytest.raises(pymysql.err.OperationalError) as ei:
        _pymysql(sha2_port, user, password + "x", db)
    assert ei.value.args[0] == 1045, ei.value.args
    assert len(proxy.events("auth_ok", **{"session.id": sid})) == 3


def test_connector_session_fast_auth_without_tls(proxy, sha2_port):
    """mysql-connector-python cannot do full authentication without TLS; once the session's
    credential passed full authentication (PyMySQL, RSA) it logs in by fast auth alone."""
    import mysql.connector
    doc = proxy.create(agent="sha2-connector", backends=[MY])
    sid = doc["id"]
    user, password, db = _creds(doc)

    def connect():
        return mysql.connector.connect(host="127.0.0.1", port=sha2_port, user=user, password=password,
                                       database=db, auth_plugin=SHA2, ssl_disabled=True,
                                       connection_timeout=10)

    # first login of this credential on this listener: full auth, which the connector refuses
    # to do in clear text -- so no auth_ok yet
    with pytest.raises(mysql.connector.Error):
        connect()
    assert not proxy.events("auth_ok", **{"session.id": sid})
    _pymysql(sha2_port, user, password, db).close()            # full auth via RSA
    c = connect()
    try:
        cur = c.cursor()
        cur.execute("SELECT owner FROM accounts WHERE id = 2")
        assert cur.fetchall() == [("owner2",)]
    finally:
        c.close()
    recs = _auth_events(proxy, sid, 2)
    assert [r["auth.path"] for r in recs] == ["sha2-full-rsa", "sha2-fast"]


def test_revoked_session_cannot_fast_auth(proxy, sha2_port):
    doc = proxy.create(agent="sha2-revoked", backends=[MY])
    user, password, db = _creds(doc)
    _pymysql(sha2_port, user, password, db).close()             # full auth: now cached
    status, _, _ = proxy.api("DELETE", f"/api/sessions/{doc['id']}")
    assert status in (200, 204)
    with pytest.raises(pymysql.err.OperationalError) as ei:
        _pymysql(sha2_port, user, password, db)
    assert ei.value.args[0] == 1045, ei.value.args
