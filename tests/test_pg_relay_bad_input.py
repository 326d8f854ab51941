"""Bad input to the PostgreSQL relay: malformed and truncated frames, oversized messages,
unknown message types, wrong passwords, refused addresses, connection limits, abrupt
disconnects. Each case: a clear error (or a silent close where the protocol says so), an
audit record, the database unchanged, and other connections unaffected."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time

import psycopg
import pytest

from test_pg_helpers import (AGENT, AGENT_PW, error_fields, msg, proxy, raw_login, read_msgs,  # noqa: F401
                             relay_db, start_proxy, startup_packet)

pytestmark = pytest.mark.pg


def still_works(proxy):
    with psycopg.connect(proxy.dsn(), autocommit=True) as c:
        assert c.execute("SELECT count(*) FROM notes").fetchone()[0] == 3


def last_error(msgs):
    errs = [error_fields(b) for t, b in msgs if t == "E"]
    assert errs, msgs
    return errs[-1]


# -- before login ------------------------------------------------------------------------


@pytest.mark.parametrize("packet, code", [
    (struct.pack("!i", 3), "08P01"),                                   # length < 8
    (struct.pack("!ii", 20000, 196608), "54000"),                      # oversized startup
    (struct.pack("!ii", 9, 80877103) + b"\0", "08P01"),                # SSLRequest with a body
    (struct.pack("!ii", 14, 196608) + b"user\0\0", "08P01"),           # parameter w/o value
    (struct.pack("!ii", 8, 131072), "0A000"),                          # protocol 2.0
])
def test_malformed_startup(proxy, packet, code):
    n0 = len(proxy.events())
    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    s.sendall(packet)
    msgs = read_msgs(s, until=None)
    assert msgs[-1][0] == "EOF"
    err = last_error(msgs)
    assert err["C"] == code and err["S"] == "FATAL"
    s.close()
    assert proxy.wait_for(lambda: [r for r in proxy.records[n0:]
                                   if r["event"] in ("protocol_error", "limit")])
    still_works(proxy)


def test_truncated_startup_then_disconnect(proxy):
    n0 = len(proxy.records)
    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    s.sendall(startup_packet({"user": AGENT})[:11])
    s.close()
    assert proxy.wait_for(lambda: [r for r in proxy.records[n0:] if r["event"] == "disconnect"])
    still_works(proxy)


def test_data_after_sslrequest_is_refused(proxy):
    """CVE-2021-23214 class: bytes sent after SSLRequest before the handshake."""
    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    s.sendall(struct.pack("!ii", 8, 80877103) + startup_packet({"user": AGENT}))
    msgs = read_msgs(s, until=None)
    assert last_error(msgs)["C"] == "08P01"
    still_works(proxy)


def test_ssl_and_gss_requests_answered_n_without_tls(proxy):
    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    s.sendall(struct.pack("!ii", 8, 80877104))
    assert s.recv(1) == b"N"
    s.sendall(struct.pack("!ii", 8, 80877103))
    assert s.recv(1) == b"N"
    s.close()


def test_unknown_user_and_wrong_password(proxy):
    for user, pw in [("nobody", AGENT_PW), (AGENT, "nope")]:
        n0 = len(proxy.records)
        with pytest.raises(ConnectionError) as ei:
            raw_login(proxy.port, user=user, password=pw)
        assert ei.value.args[0]["C"] == "28P01"
        recs = proxy.wait_for(lambda: [r for r in proxy.records[n0:] if r["event"] == "auth_failed"])
        assert recs and recs[0]["user.name"] == user
    still_works(proxy)


def test_replication_and_foreign_database_refused(proxy):
    for extra, code in [({"replication": "database"}, "42501"), ({"database": "postgres"}, "3D000")]:
        s = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        s.sendall(startup_packet({"user": AGENT, **extra}))
        assert last_error(read_msgs(s, until=None))["C"] == code
        s.close()


def test_backend_password_is_not_the_agent_password(proxy, pg_server):
    """Brokered login: the database's own password is not accepted for the agent."""
    with pytest.raises(ConnectionError):
        raw_login(proxy.port, user=AGENT, password=pg_server.password)
    with pytest.raises(ConnectionError):
        raw_login(proxy.port, user=pg_server.user, password=pg_server.password)


# -- after login -------------------------------------------------------------------------


@pytest.mark.parametrize("frame, code", [
    (b"Q" + struct.pack("!i", -1), "08P01"),                              # negative length
    (b"Q" + struct.pack("!i", 2), "08P01"),                               # length < 4
    (msg(b"Q", b"SELECT 1"), "08P01"),                                    # no NUL
    (msg(b"P", b"s\0SELECT 1\0\0\x05"), "08P01"),                         # count mismatch
    (msg(b"D", b"X\0"), "08P01"),                                         # bad Describe kind
    (msg(b"y", b"whatever"), "08P01"),                                    # unknown type
    (msg(b"p", b"password\0"), "08P01"),                                  # password after login
])
def test_malformed_frames_after_login(proxy, pg_server, relay_db, frame, code):
    before = pg_server.checksum(relay_db)
    n0 = len(proxy.records)
    s = raw_login(proxy.port)
    s.sendall(frame)
    msgs = read_msgs(s, until=None)
    assert msgs[-1][0] == "EOF"                      # the proxy closed the connection
    err = last_error(msgs)
    assert err["C"] == code and err["S"] == "FATAL"
    assert proxy.wait_for(lambda: [r for r in proxy.records[n0:] if r["event"] == "protocol_error"])
    still_works(proxy)
    assert pg_server.checksum(relay_db) == before


def test_messages_before_a_bad_frame_are_answered(proxy):
    s = raw_login(proxy.port)
    s.sendall(msg(b"Q", b"SELECT 1\0") + b"Q" + struct.pack("!i", 1))
    msgs = read_msgs(s, until=None)
    tags = [t for t, _ in msgs]
    assert tags[:4] == ["T", "D", "C", "Z"] and tags[-2:] == ["E", "EOF"], tags


def test_truncated_message_then_disconnect(proxy, pg_server, relay_db):
    before = pg_server.checksum(relay_db)
    n0 = len(proxy.records)
    s = raw_login(proxy.port)
    full = msg(b"Q", b"DELETE FROM notes\0")
    s.sendall(full[:9])              # header + part of the body; never completed
    time.sleep(0.1)
    s.close()
    assert proxy.wait_for(lambda: [r for r in proxy.records[n0:] if r["event"] == "disconnect"])
    still_works(proxy)
    assert pg_server.checksum(relay_db) == before


def test_message_split_across_many_chunks(proxy):
    s = raw_login(proxy.port)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    data = msg(b"Q", b"SELECT 'abcdefghijklmnopqrstuvwxyz' AS x\0")
    for i in range(len(data)):
        s.sendall(data[i:i + 1])
        time.sleep(0.002)
    tags = [t for t, _ in read_msgs(s)]
    assert tags == ["T", "D", "C", "Z"]
    s.close()


def test_abrupt_disconnect_during_query_ends_backend_session(proxy, pg_server):
    s = raw_login(proxy.port, extra={"application_name": "sdp_abrupt"})
    s.sendall(msg(b"Q", b"SELECT count(*) FROM generate_series(1, 30000000)\0"))
    time.sleep(0.3)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()                                           # RST
    # The proxy terminates its backend connection (the query may run until it notices).
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        n = pg_server.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sdp_abrupt'")
        if n.strip() == "0":
            break
        time.sleep(0.2)
    assert n.strip() == "0"
    still_works(proxy)


# -- limits ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_limits(pg_server, relay_db):
    with start_proxy(pg_server, relay_db, "sdp-pg-lim-",
                     limits={"max_message_bytes": 4096, "max_client_connections": 2}) as h:
        yield h


def test_oversized_message_refused(small_limits, pg_server, relay_db):
    before = pg_server.checksum(relay_db)
    s = raw_login(small_limits.port)
    big = "SELECT '" + "x" * 10000 + "'"
    s.sendall(msg(b"Q", big.encode() + b"\0")[:2000])   # header announces 10 KB: refused at once
    msgs = read_msgs(s, until=None)
    err = last_error(msgs)
    assert err["C"] == "54000" and "max_message_bytes" in err["M"]
    assert msgs[-1][0] == "EOF"
    rec = small_limits.wait_for(lambda: small_limits.events("limit", limit="max_message_bytes"))
    assert rec
    s.close()
    assert pg_server.checksum(relay_db) == before


def test_max_client_connections(small_limits):
    a = raw_login(small_limits.port)
    b = raw_login(small_limits.port)
    with pytest.raises(psycopg.OperationalError) as ei:
        psycopg.connect(small_limits.dsn())
    assert "too many" in str(ei.value)
    assert small_limits.wait_for(lambda: small_limits.events("limit", limit="max_client_connections"))
    a.sendall(msg(b"X", b""))
    a.close()
    time.sleep(0.2)
    c = raw_login(small_limits.port)                       # a slot is free again
    for s in (b, c):
        s.close()


def test_refused_client_address(pg_server, relay_db):
    h = start_proxy(pg_server, relay_db, "sdp-pg-ip-", security={"allowed_ips": ["10.0.0.0/8", "fd00::/8"]})
    try:
        s = socket.create_connection(("127.0.0.1", h.port), timeout=10)
        s.sendall(startup_packet({"user": AGENT}))
        assert read_msgs(s, until=None) == [("EOF", b"")]     # closed, not a byte said
        rec = h.wait_for(lambda: h.events("ip_denied"))
        assert rec and rec[0]["client.address"] == "127.0.0.1"
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(h.dsn(), connect_timeout=5)
    finally:
        h.stop()


def test_many_concurrent_clients_with_one_misbehaving(proxy):
    """Garbage from one client does not disturb the others."""
    errors = []

    def good(i):
        try:
            with psycopg.connect(proxy.dsn(), autocommit=True) as c:
                for _ in range(20):
                    assert c.execute("SELECT owner FROM accounts WHERE id = %s", (i,)).fetchone()[0] == f"owner{i}"
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=good, args=(i,)) for i in range(1, 7)]
    for t in threads:
        t.start()
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        s.sendall(os.urandom(64))
        s.close()
    for t in threads:
        t.join(60)
    assert not errors
