"""The MySQL relay's sans-I/O state machine (protocols/mysql.py) driven byte by byte, no
sockets: exact bytes out for the orderings a real server or client rarely produces on cue
(chunk boundaries inside a LOCAL INFILE request, pipelined commands during a response,
COM_RESET_CONNECTION, a failing backstop, capabilities never passed to the backend).
"""

from __future__ import annotations

import os
import tempfile

import pytest

from sandbox_db_proxy import _native as N
from sandbox_db_proxy.auth import mysql_auth as A
from sandbox_db_proxy.config import load_config_text
from sandbox_db_proxy.protocols import mysql_consts as C
from sandbox_db_proxy.protocols.mysql import BackendInfo, MySQLSession, SessionOptions
from sandbox_db_proxy.server.app import ProxyApp
from test_mysql_helpers import StandInEngine, make_config, real_engine_available


class FakeIO:
    def __init__(self):
        self.client: list[bytes] = []
        self.backend: list[bytes] = []
        self.events: list[str] = []
        self.closed = False

    def write_client(self, d):
        self.client.append(d)

    def write_backend(self, d):
        self.backend.append(d)

    def start_client_tls(self, leftover):
        self.events.append("client_tls")

    def connect_backend(self):
        self.events.append("connect")

    def start_backend_tls(self):
        self.events.append("backend_tls")

    def pause_client(self):
        self.events.append("pause")

    def resume_client(self):
        self.events.append("resume")

    def close(self):
        self.closed = True

    def take_client(self) -> list[tuple[int, bytes]]:
        data = b"".join(self.client)
        self.client.clear()
        return [(s, p) for s, p, _ in N.MysqlPacketDecoder(1 << 30).feed(data)]

    def take_backend(self) -> list[tuple[int, bytes]]:
        data = b"".join(self.backend)
        self.backend.clear()
        return [(s, p) for s, p, _ in N.MysqlPacketDecoder(1 << 30).feed(data)]


class Srv:
    host, port, user, password = "127.0.0.1", 3306, "app", "secret"


@pytest.fixture
def app():
    cfg = load_config_text(make_config(Srv, "shop", os.path.join(tempfile.mkdtemp(), "a.json")), env={})
    a = ProxyApp(cfg)
    if not real_engine_available():
        a._engines["mdb"] = StandInEngine()
    a.audit.enabled = True
    a.records = []
    a.audit.emit = a.records.append
    return a


def ok(seq, status=2):
    return N.mysql_ok(seq, 0, 0, status, 0, b"", False)


def one_value(value: bytes, seq0=1) -> bytes:
    """A one-column, one-row text result (no DEPRECATE_EOF)."""
    return (N.mysql_frame(b"\x01", seq0) + N.mysql_frame(b"\x03def\x00\x00\x00\x01v\x00\x0c\x3f\x00\x01\x00\x00\x00"
                                                       b"\x08\x00\x00\x00\x00\x00", seq0 + 1)
            + N.mysql_eof(seq0 + 2, 0, 2) + N.mysql_frame(bytes([len(value)]) + value, seq0 + 3)
            + N.mysql_eof(seq0 + 4, 0, 2))


BACKEND_CAPS = 0xFFFFFFFF & ~C.CLIENT_SSL & ~C.CLIENT_COMPRESS & ~(1 << 25) & ~(1 << 26) & ~(1 << 27) \
    & ~C.CLIENT_DEPRECATE_EOF


def logged_in(app, client_caps_extra=0) -> tuple[MySQLSession, FakeIO]:
    io = FakeIO()
    s = MySQLSession(app, "mdb", io, BackendInfo(), SessionOptions(conn_id=9, peer=("127.0.0.1", 5555)))
    s.start()
    (seq, greet), = io.take_client()
    hs = N.mysql_parse_handshake(greet)
    assert not hs["capabilities"] & C.CLIENT_LOCAL_FILES
    assert not hs["capabilities"] & C.CLIENT_SSL                 # no certificate configured
    caps = (C.CLIENT_PROTOCOL_41 | C.CLIENT_SECURE_CONNECTION | C.CLIENT_PLUGIN_AUTH | C.CLIENT_LONG_PASSWORD
            | C.CLIENT_MULTI_RESULTS | client_caps_extra)
    s.client_data(N.mysql_handshake_response(1, caps, 1 << 24, 45, b"app", A.native_scramble(b"secret", hs["scramble"]),
                                             None, b"mysql_native_password", []))
    assert io.events == ["connect"]
    s.backend_connected()
    s.backend_data(N.mysql_handshake(b"5.5.5-10.11.14-MariaDB", 77, b"b" * 20, BACKEND_CAPS, 45, 2,
                                     b"mysql_native_password"))
    (seq, resp), = io.take_backend()
    bh = N.mysql_parse_handshake_response(resp)
    assert seq == 1 and bh["username"] == b"app" and bh["database"] == b"shop"
    assert not bh["capabilities"] & C.CLIENT_LOCAL_FILES
    assert bh["auth_response"] == A.native_scramble(b"secret", b"b" * 20)
    s.backend_data(ok(2))
    # the backstop, one statement at a time, before the client hears anything
    setup = []
    for answer in (ok(1), ok(1), one_value(b"1")):
        (seq, q), = io.take_backend()
        setup.append(q[1:].decode())
        assert io.client == []
        s.backend_data(answer)
    assert setup == ["SET SESSION TRANSACTION READ ONLY", "SET SESSION max_statement_time = 5.000",
                     "SELECT @@session.tx_read_only"]
    (seq, hello), = io.take_client()
    assert seq == 2 and hello[:1] == b"\x00"
    return s, io


def test_login_never_passes_local_files(app):
    s, io = logged_in(app, client_caps_extra=C.CLIENT_LOCAL_FILES)
    assert [r["event"] for r in app.records] == ["connect", "auth_ok"]


def test_failed_backstop_refuses_the_login(app):
    io = FakeIO()
    s = MySQLSession(app, "mdb", io, BackendInfo(), SessionOptions(conn_id=9, peer=("127.0.0.1", 5555)))
    s.start()
    (_, greet), = io.take_client()
    hs = N.mysql_parse_handshake(greet)
    caps = C.CLIENT_PROTOCOL_41 | C.CLIENT_SECURE_CONNECTION | C.CLIENT_PLUGIN_AUTH
    s.client_data(N.mysql_handshake_response(1, caps, 1 << 24, 45, b"app", A.native_scramble(b"secret", hs["scramble"]),
                                             None, b"mysql_native_password", []))
    s.backend_connected()
    s.backend_data(N.mysql_handshake(b"5.5.5-10.11.14-MariaDB", 1, b"b" * 20, BACKEND_CAPS, 45, 2,
                                     b"mysql_native_password"))
    io.take_backend()
    s.backend_data(ok(2))
    io.take_backend()
    s.backend_data(N.mysql_err(1, 1227, "42000", "Access denied; you need the SUPER privilege"))
    (seq, err), = io.take_client()
    assert err[:1] == b"\xff" and b"read-only" in err and seq == 2
    assert io.closed


def test_local_infile_never_reaches_the_client_whatever_the_chunking(app):
    for cut in range(1, 12):
        s, io = logged_in(app)
        s.client_data(N.mysql_frame(b"\x03SELECT 1", 0))
        io.take_backend()
        req = N.mysql_frame(b"\xfb/etc/passwd", 1)
        s.backend_data(req[:cut])
        s.backend_data(req[cut:])
        assert io.client == [] or b"".join(io.client) == b"", cut
        (seq, empty), = io.take_backend()
        assert (seq, empty) == (2, b"")                             # "no file"
        s.backend_data(N.mysql_err(3, 1148, "42000", "server gave up"))
        (seq, err), = io.take_client()
        assert seq == 1 and int.from_bytes(err[1:3], "little") == 1148 and b"LOCAL INFILE" in err
        # the connection goes on
        s.client_data(N.mysql_frame(b"\x0e", 0))
        io.take_backend()
        s.backend_data(ok(1))
        assert io.take_client()[0][1][:1] == b"\x00"


def test_held_first_packet_is_released_in_order(app):
    """A response header split across chunks is held (it could be a LOCAL INFILE request)
    and released, bytes in order, once it is known to be a result set."""
    s, io = logged_in(app)
    s.client_data(N.mysql_frame(b"\x03SELECT 1", 0))
    io.take_backend()
    resp = one_value(b"1")
    s.backend_data(resp[:2])
    assert io.client == []
    s.backend_data(resp[2:7])
    s.backend_data(resp[7:])
    assert b"".join(io.client) == resp


def test_pipelined_commands_wait_for_the_response(app):
    s, io = logged_in(app)
    s.client_data(N.mysql_frame(b"\x03SELECT 1", 0) + N.mysql_frame(b"\x03DELETE FROM users", 0)
                  + N.mysql_frame(b"\x0e", 0))
    assert len(io.take_backend()) == 1                           # only the first went out
    assert io.client == []
    s.backend_data(one_value(b"1"))
    out = io.take_client()
    assert out[-1][0] == 1 and out[-1][1][:1] == b"\xff"         # the DELETE's ERR, after the result
    (seq, ping), = io.take_backend()                             # then the ping
    assert ping == b"\x0e"
    s.backend_data(ok(1))
    assert io.take_client()[0][1][:1] == b"\x00"


def test_reset_connection_holds_ok_until_backstop_is_back(app):
    s, io = logged_in(app)
    s.client_data(N.mysql_frame(b"\x16SELECT ?", 0))
    io.take_backend()
    prep = b"\x00" + (5).to_bytes(4, "little") + b"\x00\x00\x01\x00\x00\x00\x00"
    s.backend_data(N.mysql_frame(prep, 1) + N.mysql_frame(b"\x03def?", 2) + N.mysql_eof(3, 0, 2))
    io.take_client()
    assert 5 in s.stmts
    s.client_data(N.mysql_frame(b"\x1f", 0))
    assert io.take_backend() == [(0, b"\x1f")]
    s.backend_data(ok(1))
    assert io.client == []                                       # held
    for answer in (ok(1), ok(1), one_value(b"1")):
        io.take_backend()
        s.backend_data(answer)
    (seq, reply), = io.take_client()
    assert (seq, reply[:1]) == (1, b"\x00")
    assert s.stmts == {}                                         # the reset closed them server-side
    s.client_data(N.mysql_frame(b"\x17" + (5).to_bytes(4, "little") + b"\x00\x01\x00\x00\x00", 0))
    assert int.from_bytes(io.take_client()[0][1][1:3], "little") == 1243


def test_backend_lost_mid_query(app):
    s, io = logged_in(app)
    s.client_data(N.mysql_frame(b"\x03SELECT 1", 0))
    s.backend_closed("reset by peer")
    (seq, err), = io.take_client()
    assert seq == 1 and int.from_bytes(err[1:3], "little") == 2013
    assert io.closed
    assert [r for r in app.records if r["event"] == "protocol_error" and r["side"] == "backend"]


def test_unsolicited_backend_bytes_close_the_session(app):
    s, io = logged_in(app)
    s.backend_data(ok(1))
    assert io.closed
