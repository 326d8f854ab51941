"""The relay's side towards the database: backend login methods (SCRAM, md5, cleartext,
trust, unix socket, TLS), a backend that is down or restarts mid-session, the read-only
backstop (ParameterStatus watch, COPY IN abort), statement timeout, cancel, idle timeout,
client TLS and monitor mode. A throwaway second PostgreSQL is used where the server is
stopped or reconfigured (the shared session server is never restarted)."""

from __future__ import annotations

import asyncio
import os
import signal
import shutil
import socket
import subprocess
import tempfile
import time

import psycopg
import pytest

from servers import PgServer, tmp_root
from test_pg_helpers import (AGENT, AGENT_PW, AllowAllEngine, create_db, error_fields, msg, proxy,  # noqa: F401
                             raw_login, read_msgs, relay_db, start_proxy)

pytestmark = pytest.mark.pg


def harness(pg_server, db, **kw):
    return start_proxy(pg_server, db, "sdp-pg-be-", **kw)


@pytest.fixture(scope="module")
def spare_pg():
    """A second, throwaway PostgreSQL 15 that tests may stop, restart and reconfigure."""
    server = PgServer(root=tmp_root("sdp-pg-spare-")).start()
    try:
        yield server
    finally:
        server.stop()


# -- backend login methods ---------------------------------------------------------------


@pytest.mark.parametrize("method", ["md5", "password", "trust"])
def test_backend_login_methods(spare_pg, method):
    user = f"sdp_{method}_user"
    spare_pg.psql(f"SET password_encryption = '{'md5' if method == 'md5' else 'scram-sha-256'}'; "
                  f"DROP ROLE IF EXISTS {user}; CREATE ROLE {user} LOGIN PASSWORD 'be-pw-{method}'")
    spare_pg.add_hba(f"host all {user} 127.0.0.1/32 {method}")
    h = harness(spare_pg, "postgres", backend={"username": user, "password": f"be-pw-{method}"})
    try:
        with psycopg.connect(h.dsn(), autocommit=True) as c:
            assert c.execute("SELECT current_user").fetchone()[0] == user
    finally:
        h.stop()


def test_backend_wrong_configured_password(spare_pg):
    h = harness(spare_pg, "postgres", backend={"password": "definitely-wrong"})
    try:
        with pytest.raises(psycopg.OperationalError) as ei:
            psycopg.connect(h.dsn())
        assert "could not log in to the database backend" in str(ei.value)
        assert "definitely-wrong" not in str(ei.value)
    finally:
        h.stop()


def test_backend_over_unix_socket(spare_pg):
    """`address: /dir` connects to /dir/.s.PGSQL.<port> (the embedded demo's setup)."""
    h = harness(spare_pg, "postgres", backend={"address": spare_pg.socket_dir})
    try:
        with psycopg.connect(h.dsn(), autocommit=True) as c:
            assert c.execute("SELECT inet_server_addr()").fetchone()[0] is None   # unix socket
    finally:
        h.stop()


def _self_signed(dirpath: str, owner: str | None = None) -> tuple[str, str]:
    cert, key = os.path.join(dirpath, "server.crt"), os.path.join(dirpath, "server.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=localhost"], check=True, capture_output=True)
    os.chmod(key, 0o600)
    if owner:
        shutil.chown(cert, owner, owner)
        shutil.chown(key, owner, owner)
    return cert, key


def test_backend_tls_required(spare_pg):
    cert, key = _self_signed(str(spare_pg.root), owner="postgres")
    with open(spare_pg.data / "postgresql.conf", "a") as f:
        f.write(f"ssl=on\nssl_cert_file='{cert}'\nssl_key_file='{key}'\n")
    spare_pg.pg_ctl("reload")
    time.sleep(0.3)
    h = harness(spare_pg, "postgres", backend={"backend_tls": {"mode": "require"}})
    try:
        with psycopg.connect(h.dsn(), autocommit=True) as c:
            assert c.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()[0] is True

        async def cancel_over_tls():
            import asyncpg
            conn = await asyncpg.connect(host="127.0.0.1", port=h.port, user=AGENT, password=AGENT_PW,
                                         database="postgres", ssl=False)
            try:
                t0 = time.monotonic()
                with pytest.raises(asyncio.TimeoutError):
                    await conn.fetchval("SELECT count(*) FROM generate_series(1, 300000000)", timeout=0.5)
                assert time.monotonic() - t0 < 4.0
                assert await conn.fetchval("SELECT 1") == 1
            finally:
                await conn.close()
        asyncio.run(cancel_over_tls())
    finally:
        h.stop()


# -- backend down / restarting -----------------------------------------------------------


def test_backend_down_gives_clear_error(pg_server, relay_db):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead_port = s.getsockname()[1]
    s.close()
    h = harness(pg_server, relay_db, backend={"port": dead_port})
    try:
        with pytest.raises(psycopg.OperationalError) as ei:
            psycopg.connect(h.dsn())
        assert "could not connect to the database backend" in str(ei.value)
        assert h.wait_for(lambda: h.events("disconnect"))
    finally:
        h.stop()


def test_backend_restart_mid_session(spare_pg, proxy):
    db = create_db(spare_pg, "sdp_restart")
    h = harness(spare_pg, db)
    try:
        c = psycopg.connect(h.dsn(), autocommit=True)
        assert c.execute("SELECT count(*) FROM notes").fetchone()[0] == 3
        spare_pg.pg_ctl("restart")
        with pytest.raises(psycopg.OperationalError) as ei:
            c.execute("SELECT 1")
        msg_text = str(ei.value)
        assert "terminating connection" in msg_text or "backend" in msg_text, msg_text
        c.close()
        with psycopg.connect(h.dsn(), autocommit=True) as c2:          # reconnect works
            assert c2.execute("SELECT count(*) FROM notes").fetchone()[0] == 3
        assert h.wait_for(lambda: h.events("disconnect"))
        # The other proxy (shared server) was never affected.
        with psycopg.connect(proxy.dsn(), autocommit=True) as c3:
            assert c3.execute("SELECT 1").fetchone()[0] == 1
    finally:
        h.stop()


# -- the read-only backstop ----------------------------------------------------------------


def test_parameter_status_read_only_off_kills_session(pg_server, relay_db):
    """Even with an engine that lets everything through, a backend reporting
    default_transaction_read_only=off ends the session and raises an alert."""
    before = pg_server.checksum(relay_db)
    h = harness(pg_server, relay_db, engine=AllowAllEngine())
    try:
        with psycopg.connect(h.dsn(), autocommit=True) as c:
            with pytest.raises(psycopg.Error) as ei:
                c.execute("SET default_transaction_read_only = off")
                c.execute("SELECT 1")
            assert "no longer read-only" in str(ei.value)
            assert c.broken or c.closed
        rec = h.wait_for(lambda: h.events("alert"))
        assert rec and rec[0]["rule"] == "read-only-disabled"
        for setting in ("client_encoding = 'LATIN1'", "standard_conforming_strings = off"):
            with psycopg.connect(h.dsn(), autocommit=True) as c:
                with pytest.raises(psycopg.Error):
                    c.execute(f"SET {setting}")
                    c.execute("SELECT 1")
    finally:
        h.stop()
    assert pg_server.checksum(relay_db) == before


def test_copy_in_aborted_even_if_engine_allows(pg_server, relay_db):
    before = pg_server.checksum(relay_db)
    h = harness(pg_server, relay_db, engine=AllowAllEngine())
    try:
        with psycopg.connect(h.dsn(), autocommit=True) as c:
            # The backend's own read-only check already stops a plain COPY FROM ...
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                with c.cursor().copy("COPY notes (body) FROM STDIN") as cp:
                    cp.write_row(("evil",))
            # ... but BEGIN READ WRITE (which the real engine blocks, and which changes no
            # reported parameter) gets COPY into COPY IN mode: the relay answers CopyFail.
            c.execute("BEGIN READ WRITE")
            with pytest.raises(psycopg.Error) as ei:
                with c.cursor().copy("COPY notes (body) FROM STDIN") as cp:
                    cp.write_row(("evil",))
            assert ei.value.sqlstate == "25006"
            assert "COPY" in str(ei.value)
            c.execute("ROLLBACK")
            assert c.execute("SELECT count(*) FROM notes").fetchone()[0] == 3
        assert h.wait_for(lambda: h.events("alert"))
    finally:
        h.stop()
    assert pg_server.checksum(relay_db) == before


def test_startup_options_cannot_disable_read_only(proxy, pg_server, relay_db):
    """The client's `options` startup parameter is never passed on."""
    with psycopg.connect(proxy.dsn(), options="-c default_transaction_read_only=off -c statement_timeout=0",
                         autocommit=True) as c:
        assert c.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
        assert c.execute("SHOW statement_timeout").fetchone()[0] == "5s"


# -- limits ---------------------------------------------------------------------------------


def test_statement_timeout_pushed_to_backend(pg_server, relay_db):
    h = harness(pg_server, relay_db, limits={"statement_timeout_ms": 300})
    try:
        with psycopg.connect(h.dsn(), autocommit=True) as c:
            with pytest.raises(psycopg.errors.QueryCanceled):
                c.execute("SELECT count(*) FROM generate_series(1, 200000000)")
            assert c.execute("SELECT 1").fetchone()[0] == 1
    finally:
        h.stop()


async def test_cancel_request_reaches_the_right_backend(proxy, relay_db):
    """asyncpg cancels a timed-out query with a CancelRequest on a new connection, carrying
    the proxy's key; the proxy maps it to the backend's real key. (psycopg's cancel() is not
    used here: it holds the GIL while libpq waits, and this proxy runs in the test process.)"""
    import asyncpg
    kw = dict(host="127.0.0.1", port=proxy.port, user=AGENT, password=AGENT_PW, database=relay_db, ssl=False)
    c = await asyncpg.connect(**kw)
    other = await asyncpg.connect(**kw)
    try:
        real_pid = await c.fetchval("SELECT pg_backend_pid()")
        assert c.get_server_pid() != real_pid           # the client holds the proxy's key
        t0 = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await c.fetchval("SELECT count(*) FROM generate_series(1, 300000000)", timeout=0.5)
        assert time.monotonic() - t0 < 4.0              # cancelled, not the 5 s statement timeout
        assert await other.fetchval("SELECT 2") == 2     # the other session untouched
        assert await c.fetchval("SELECT 3") == 3
    finally:
        await c.close()
        await other.close()


def test_psql_interrupt_cancels(proxy, relay_db):
    env = dict(os.environ, PGPASSWORD=AGENT_PW, PGSSLMODE="disable")
    p = subprocess.Popen(["psql", "-X", "-h", "127.0.0.1", "-p", str(proxy.port), "-U", AGENT, "-d", relay_db,
                          "-c", "SELECT count(*) FROM generate_series(1, 300000000)"],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=20)
    assert "canceling statement due to user request" in err, err
    assert time.monotonic() - t0 < 3.5


def test_idle_timeout(pg_server, relay_db):
    h = harness(pg_server, relay_db, limits={"idle_timeout_seconds": 0.4, "statement_timeout_ms": 60000})
    try:
        s = raw_login(h.port)
        msgs = read_msgs(s, until=None, timeout=5)
        assert msgs[-1][0] == "EOF"
        err = error_fields(msgs[0][1])
        assert err["C"] == "57P05"
        assert h.wait_for(lambda: h.events("limit", limit="idle_timeout_seconds"))
        # A busy connection is not idle.
        s = raw_login(h.port)
        t0 = time.monotonic()
        s.sendall(msg(b"Q", b"SELECT count(*) FROM generate_series(1, 15000000)\0"))
        msgs = read_msgs(s, until="Z", timeout=30)
        assert time.monotonic() - t0 > 0.8     # longer than the idle limit, yet not closed
        assert [t for t, _ in msgs] == ["T", "D", "C", "Z"], [error_fields(b) for t, b in msgs if t == "E"]
    finally:
        h.stop()


# -- client TLS -------------------------------------------------------------------------------


def test_client_tls_required(pg_server, relay_db):
    d = tempfile.mkdtemp(prefix="sdp-pg-tls-")
    cert, key = _self_signed(d)
    h = harness(pg_server, relay_db, backend={"tls": {"cert_file": cert, "key_file": key, "required": True}})
    try:
        with psycopg.connect(h.dsn().replace("sslmode=disable", "sslmode=require"), autocommit=True) as c:
            assert c.pgconn.ssl_in_use
            assert c.execute("SELECT count(*) FROM notes").fetchone()[0] == 3
        with pytest.raises(psycopg.OperationalError) as ei:
            psycopg.connect(h.dsn())                               # sslmode=disable
        assert "requires TLS" in str(ei.value)
    finally:
        h.stop()


# -- monitor mode ----------------------------------------------------------------------------


def test_monitor_mode_forwards_and_audits(pg_server):
    db = create_db(pg_server, "sdp_monitor")
    h = harness(pg_server, db, security={"enforce_read_only": False})
    try:
        with psycopg.connect(h.dsn(), autocommit=True) as c:
            c.execute("DELETE FROM notes WHERE id = 1")
            assert c.execute("SELECT count(*) FROM notes").fetchone()[0] == 2
        recs = h.wait_for(lambda: h.events("statement", would_verdict="BLOCKED"))
        assert recs and recs[0]["monitor"] is True and recs[0]["verdict"] == "ALLOWED"
        assert "DELETE" in recs[0]["db.query.text"]
    finally:
        h.stop()


# -- streaming and flow control ---------------------------------------------------------------


def test_large_result_streams_through(proxy):
    with psycopg.connect(proxy.dsn(), autocommit=True) as c:
        rows = c.execute("SELECT repeat(md5(g::text), 300) FROM generate_series(1, 4000) g").fetchall()
        assert len(rows) == 4000 and all(len(r[0]) == 9600 for r in rows)
        assert c.execute("SELECT 1").fetchone()[0] == 1


def test_slow_reader_applies_backpressure(proxy):
    """A client that does not read a ~60 MB result: the proxy pauses reading the backend
    instead of buffering the result (asyncio flow control)."""
    s = raw_login(proxy.port, extra={"application_name": "sdp_slow_reader"})
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(msg(b"Q", b"SELECT repeat('x', 1000) FROM generate_series(1, 60000)\0"))
    time.sleep(1.5)

    def buffered():
        # Python relay: the transport's write buffer; native relay: the data plane's peak queue.
        sizes = []
        for c in proxy.app.connections:
            if c.session is None or c.session.params.get("application_name") != "sdp_slow_reader":
                continue
            if c.native is not None:
                sizes.append(proxy.app.native.dp.peak_queued(c.native.sid))
            else:
                sizes.append(c.transport.get_write_buffer_size())
        return max(sizes, default=-1)
    size = proxy.call(buffered)
    assert 0 <= size < 4 * 1024 * 1024, size
    # Now read everything: the result is complete and correct.
    total_rows = 0
    buf = b""
    s.settimeout(30)
    while True:
        chunk = s.recv(1 << 20)
        assert chunk
        buf += chunk
        while len(buf) >= 5:
            n = int.from_bytes(buf[1:5], "big")
            if len(buf) < n + 1:
                break
            tag, buf = buf[:1], buf[n + 1:]
            total_rows += tag == b"D"
            if tag == b"Z":
                break
        else:
            continue
        if tag == b"Z":
            break
    assert total_rows == 60000
    s.close()


def test_login_timeout(pg_server, relay_db):
    h = harness(pg_server, relay_db, limits={"connect_timeout_seconds": 0.2})
    try:
        s = socket.create_connection(("127.0.0.1", h.port), timeout=10)
        t0 = time.monotonic()
        msgs = read_msgs(s, until=None, timeout=10)       # say nothing
        assert msgs[-1][0] == "EOF" and 1.5 < time.monotonic() - t0 < 6
        assert error_fields(msgs[0][1])["C"] == "28000"
        assert h.wait_for(lambda: h.events("auth_failed"))
    finally:
        h.stop()
