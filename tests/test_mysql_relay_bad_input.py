"""Bad input and failures around the MySQL relay: malformed and truncated packets, wrong
sequence ids, oversized packets, refused addresses, idle clients, a LOCAL INFILE request, a
backend that is down or goes away. Each gives the client a clear error (where a client is
still listening), an audit record, and leaves other connections working.
"""

from __future__ import annotations

import random
import socket
import threading

import pytest

from servers import MariaDbServer, tmp_root
from test_mysql_helpers import create_db, frame, raw_login, read_packet, read_response, start_proxy

pytestmark = pytest.mark.mariadb


@pytest.fixture(scope="module")
def db(mariadb_server):
    return create_db(mariadb_server, "sdp_mybad")


@pytest.fixture(scope="module")
def proxy(mariadb_server, db):
    with start_proxy(mariadb_server, db, limits={"max_message_bytes": 64 * 1024}) as p:
        yield p


def err_of(payload: bytes) -> tuple[int, str, str]:
    assert payload[:1] == b"\xff", payload[:40]
    return int.from_bytes(payload[1:3], "little"), payload[4:9].decode(), payload[9:].decode("utf-8", "replace")


def healthy(port: int, db: str) -> bool:
    s = raw_login(port, database=db)
    try:
        s.sendall(frame(b"\x03SELECT COUNT(*) FROM users", 0))
        return read_response(s)[-2] == b"\x0211"
    finally:
        s.close()


def greeting(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    assert read_packet(s)[1][:1] == b"\x0a"
    return s


# ----------------------------------------------------------------------------- login phase

def test_malformed_handshake_response(proxy, db):
    before = len(proxy.events("protocol_error"))
    for junk in (b"\x00" * 40, b"\xff\xff\xff\xff", b"\x00\x02\x00\x00" + b"\x01" * 3):
        s = greeting(proxy.port)
        try:
            s.sendall(frame(junk, 1))
            seq, payload = read_packet(s)
            code, state, msg = err_of(payload)
            assert code == 1835 and seq == 2, (code, msg)
            assert read_packet(s, 5) is None                # closed after the error
        finally:
            s.close()
    assert proxy.wait_for(lambda: len(proxy.events("protocol_error")) >= before + 3)
    assert healthy(proxy.port, db)


def test_login_packet_out_of_order(proxy, db):
    s = greeting(proxy.port)
    try:
        s.sendall(frame(b"\x00" * 40, 5))
        seq, payload = read_packet(s)
        code, state, msg = err_of(payload)
        assert code == 1156 and state == "08S01" and "order" in msg
    finally:
        s.close()
    assert healthy(proxy.port, db)


def test_oversized_before_login_is_refused_from_the_header(proxy, db):
    s = greeting(proxy.port)
    try:
        s.sendall(b"\xff\xff\xff\x01")                       # claims 16 MB, sends nothing more
        seq, payload = read_packet(s)
        assert err_of(payload)[0] == 1153
    finally:
        s.close()
    assert healthy(proxy.port, db)


def test_client_closes_mid_packet(proxy, db):
    active = proxy.app.metrics.connections_active.labels("mdb")
    s = greeting(proxy.port)
    s.sendall(frame(b"\x00" * 40, 1)[:10])
    s.close()
    s = raw_login(proxy.port, database=db)
    s.sendall(frame(b"\x03SELECT 1", 0)[:7])
    s.close()
    assert proxy.wait_for(lambda: active._value.get() == 0)
    assert healthy(proxy.port, db)


# ----------------------------------------------------------------------------- command phase

def test_command_with_wrong_sequence_id(proxy, mariadb_server, db):
    before = mariadb_server.checksum(db)
    s = raw_login(proxy.port, database=db)
    try:
        s.sendall(frame(b"\x03DELETE FROM users", 3))
        seq, payload = read_packet(s)
        code, state, msg = err_of(payload)
        assert code == 1156
        assert read_packet(s, 5) is None
    finally:
        s.close()
    assert mariadb_server.checksum(db) == before
    assert proxy.wait_for(lambda: [r for r in proxy.events("protocol_error") if "sequence id 3" in r.get("reason", "")])
    assert healthy(proxy.port, db)


def test_empty_command_packet(proxy, db):
    s = raw_login(proxy.port, database=db)
    try:
        s.sendall(frame(b"", 0))
        assert err_of(read_packet(s)[1])[0] == 1835
    finally:
        s.close()


def test_oversized_command(proxy, mariadb_server, db):
    """limits.max_message_bytes = 64 KiB: a bigger COM_QUERY is refused (ERR 1153, audit
    `limit`) and never reaches the server."""
    before = mariadb_server.checksum(db)
    s = raw_login(proxy.port, database=db)
    try:
        sql = b"\x03UPDATE users SET name = '" + b"x" * 70000 + b"'"
        s.sendall(frame(sql, 0))
        seq, payload = read_packet(s)
        code, state, msg = err_of(payload)
        assert code == 1153 and "max_message_bytes" in msg
    finally:
        s.close()
    assert proxy.wait_for(lambda: proxy.events("limit", limit="max_message_bytes"))
    assert mariadb_server.checksum(db) == before
    assert healthy(proxy.port, db)


def test_pipelined_commands_answered_in_order(proxy, mariadb_server, db):
    """Several commands in one segment (blocked ones among them): answers in order, each
    blocked one an ERR with sequence id 1, nothing blocked reaches the server."""
    before = mariadb_server.checksum(db)
    s = raw_login(proxy.port, database=db)
    try:
        s.sendall(frame(b"\x03SELECT 1", 0) + frame(b"\x03DELETE FROM users", 0) + frame(b"\x0e", 0)
                  + frame(b"\x08\x00", 0) + frame(b"\x03SELECT 2", 0))
        r1 = read_response(s)
        assert r1[-2] == b"\x011"
        seq, e = read_packet(s)
        assert seq == 1 and err_of(e)[0] == 1792
        assert read_packet(s)[1][:1] == b"\x00"               # ping
        seq, e = read_packet(s)
        assert seq == 1 and err_of(e)[0] == 1792              # COM_SHUTDOWN
        assert read_response(s)[-2] == b"\x012"
    finally:
        s.close()
    assert mariadb_server.checksum(db) == before


def test_random_garbage_commands_never_break_the_proxy(proxy, mariadb_server, db):
    rng = random.Random(4)
    before = mariadb_server.checksum(db)
    for _ in range(20):
        s = raw_login(proxy.port, database=db)
        try:
            blob = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
            s.sendall(blob)
            s.settimeout(0.3)
            try:
                while s.recv(65536):
                    pass
            except (socket.timeout, ConnectionResetError):
                pass
        finally:
            s.close()
    assert mariadb_server.checksum(db) == before
    assert healthy(proxy.port, db)


def test_refused_address(mariadb_server, db):
    p = start_proxy(mariadb_server, db, security={"allowed_ips": ["10.99.0.0/16"]})
    try:
        s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
        try:
            assert read_packet(s, 5) is None                 # closed before a greeting
        finally:
            s.close()
        rec = p.wait_for(lambda: p.events("ip_denied"))
        assert rec[0]["client.address"] == "127.0.0.1"
        assert not p.events("connect")
    finally:
        p.stop()


def test_idle_timeout(mariadb_server, db):
    p = start_proxy(mariadb_server, db, limits={"idle_timeout_seconds": 0.5})
    try:
        s = raw_login(p.port, database=db)
        try:
            seq, payload = read_packet(s, 10)                 # no command: the proxy says why and closes
            assert err_of(payload)[0] == 4031
            assert read_packet(s, 5) is None
        finally:
            s.close()
        assert p.wait_for(lambda: p.events("limit", limit="idle_timeout_seconds"))
    finally:
        p.stop()


# ----------------------------------------------------------------------------- the backend

def test_backend_down_at_login(mariadb_server, db):
    import pymysql

    class Nowhere:
        host, user, password = "127.0.0.1", "app", "secret"
        with socket.socket() as _s:
            _s.bind(("127.0.0.1", 0))
            port = _s.getsockname()[1]
    p = start_proxy(Nowhere, db)
    try:
        with pytest.raises(pymysql.err.OperationalError) as ei:
            pymysql.connect(host="127.0.0.1", port=p.port, user="app", password="secret", database=db,
                            connect_timeout=10)
        assert ei.value.args[0] == 2003 and "unavailable" in ei.value.args[1]
        assert p.wait_for(lambda: p.events("protocol_error", side="backend"))
    finally:
        p.stop()


def test_backend_goes_away_and_big_rows(mariadb_server, db):
    """A second, throwaway MariaDB: 20 MB values (multi-packet rows) stream through; then the
    server dies mid-session: the client gets an error, the audit log says so, and a proxy in
    front of the main server keeps working."""
    import pymysql
    srv = MariaDbServer(root=tmp_root("sdp-mdb-gone-")).start()
    try:
        srv.sql("SET GLOBAL max_allowed_packet = 67108864")
        tdb = create_db(srv, "sdp_mygone")
        srv.sql("INSERT INTO blobs VALUES (1, REPEAT('x', 20 * 1024 * 1024)), (2, 'small')", tdb)
        p = start_proxy(srv, tdb)
        main = start_proxy(mariadb_server, db)
        try:
            c = pymysql.connect(host="127.0.0.1", port=p.port, user="app", password="secret", database=tdb,
                                max_allowed_packet=64 * 1024 * 1024)
            cur = c.cursor()
            cur.execute("SELECT id, LENGTH(data), data FROM blobs ORDER BY id")
            rows = cur.fetchall()
            assert rows[0][1] == 20 * 1024 * 1024 and len(rows[0][2]) == rows[0][1]
            assert rows[1][2] == b"small"
            srv.stop()
            with pytest.raises(pymysql.err.OperationalError) as ei:
                cur.execute("SELECT 1")
            assert ei.value.args[0] in (2013, 2006)
            assert p.wait_for(lambda: p.events("protocol_error", side="backend") or p.events("disconnect"))
            assert healthy(main.port, db)
            with pytest.raises(pymysql.err.OperationalError) as ei:
                pymysql.connect(host="127.0.0.1", port=p.port, user="app", password="secret", database=tdb)
            assert ei.value.args[0] == 2003
        finally:
            p.stop()
            main.stop()
    finally:
        srv.stop()


# ----------------------------------------------------------------------------- LOCAL INFILE

class InfileServer:
    """A scripted MySQL server for the one behaviour no real server here can be made to show:
    asking for a local file although the client never negotiated CLIENT_LOCAL_FILES. It logs
    any client in, answers queries with OK, and answers `SELECT 'infile'` with a 0xfb
    request for /etc/passwd; it records what the proxy sends back."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.received: list[tuple[int, bytes]] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        from sandbox_db_proxy import _native as N
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._client, args=(conn, N), daemon=True).start()

    def _client(self, conn, N):
        caps = 0xFFFFF7FF & ~(1 << 11) & ~(1 << 5) & ~(1 << 26) & ~(1 << 25) & ~(1 << 27)
        conn.sendall(N.mysql_handshake(b"8.0.99-fake", 7, b"a" * 20, caps, 45, 2, b"mysql_native_password"))
        if read_packet(conn) is None:                        # handshake response: accept anything
            return                                           # (the proxy's greeting probe hangs up)
        conn.sendall(N.mysql_ok(2))
        while True:
            got = read_packet(conn, 30)
            if got is None:
                return
            seq, payload = got
            self.received.append(got)
            if payload == b"\x03SELECT 'infile'":
                conn.sendall(frame(b"\xfb/etc/passwd", 1))
                got = read_packet(conn)
                self.received.append(got)
                conn.sendall(N.mysql_ok(3))
            elif payload.startswith(b"\x03SELECT @@session."):     # the proxy's read-only check
                conn.sendall(frame(b"\x01", 1) + frame(b"\x03def\x00\x00\x00\x01v\x00\x0c\x3f\x00\x01\x00\x00\x00"
                                                      b"\x08\x00\x00\x00\x00\x00", 2)
                             + N.mysql_eof(3, 0, 2) + frame(b"\x011", 4) + N.mysql_eof(5, 0, 2))
            elif payload[:1] == b"\x03":
                conn.sendall(N.mysql_ok(1))

    def close(self):
        self.sock.close()


def test_local_infile_request_is_refused(db):
    fake = InfileServer()
    p = start_proxy(type("Fake", (), {"host": "127.0.0.1", "port": fake.port, "user": "app",
                                      "password": "x"}), db)
    try:
        s = raw_login(p.port, password="x", database=db)
        try:
            s.sendall(frame(b"\x03SELECT 'infile'", 0))
            seq, payload = read_packet(s)
            code, state, msg = err_of(payload)
            assert code == 1148 and seq == 1 and "LOCAL INFILE" in msg
            s.sendall(frame(b"\x03SELECT 'after'", 0))        # the connection goes on
            assert read_packet(s)[1][:1] == b"\x00"
        finally:
            s.close()
        # the server got an empty packet ("no file") with the next sequence id, never file data
        i = [k for k, (_seq, pl) in enumerate(fake.received) if pl == b"\x03SELECT 'infile'"][0]
        assert fake.received[i + 1] == (2, b"")
        alert = p.wait_for(lambda: p.events("alert", rule="mysql_local_infile"))
        assert "/etc/passwd" in alert[0]["reason"]
    finally:
        p.stop()
        fake.close()
