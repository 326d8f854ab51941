"""Property tests of the sans-I/O PostgreSQL state machine (no server needed): whatever a
client sends, in whatever chunking, (1) the relay never raises, and (2) no Query or Parse
whose text the engine blocks ever appears in the bytes sent to the backend; also the backend
direction: arbitrary server bytes never crash the relay."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox_db_proxy._native import FrameError, pg_split_frontend
from sandbox_db_proxy.audit import ConnContext
from sandbox_db_proxy.config import load_config_text
from sandbox_db_proxy.protocols import postgres as P
from sandbox_db_proxy.server.app import ProxyApp
from test_pg_helpers import make_config


class _V:
    def __init__(self, ok):
        self.allowed = ok
        self.verdict = "allow" if ok else "block"
        self.rule, self.reason, self.klass = ("r", "blocked: evil", "write") if not ok else ("r", "", "read")
        self.statements = ()
        self.path = "fast"


class EvilEngine:
    """Blocks any text containing 'evil' (case-insensitive)."""

    def classify(self, sql):
        return _V("evil" not in sql.lower())


class RecordingSink:
    def __init__(self):
        self.to_backend = bytearray()
        self.to_client = bytearray()
        self.closed = False

    def send_client(self, d):
        self.to_client += d

    def send_backend(self, d):
        self.to_backend += d

    def close_client(self):
        self.closed = True

    def close_backend(self):
        self.closed = True

    def connect_backend(self):
        pass

    def start_client_tls(self):
        pass

    def cancel(self, pid, key):
        pass


class _Srv:
    host, port, user, password = "127.0.0.1", 5432, "u", "p"


_APP = None


def app():
    global _APP
    if _APP is None:
        _APP = ProxyApp(load_config_text(make_config(_Srv, "db", "/tmp/sdp-fuzz-audit.json"), env={}))
        _APP._engines["pgtest"] = EvilEngine()
        _APP.audit.queue_size = 1000
    return _APP


def ready_session():
    sink = RecordingSink()
    s = P.PgSession(app(), "pgtest", sink, ConnContext("pgtest", "postgresql"))
    s.state = P.READY
    s.backend_key = (1, b"\0\0\0\1")
    return s, sink


def m(tag: bytes, body: bytes) -> bytes:
    return tag + struct.pack("!i", len(body) + 4) + body


SQL = st.sampled_from(["SELECT 1", "evil", "SELECT 'evil'", "DELETE evil", "SELECT 2; EVIL", "", "sel\xe9ct"])
NAME = st.sampled_from(["", "s1", "s2", "evil"])


def message():
    return st.one_of(
        st.builds(lambda q: m(b"Q", q.encode() + b"\0"), SQL),
        st.builds(lambda n, q: m(b"P", n.encode() + b"\0" + q.encode() + b"\0\0\0"), NAME, SQL),
        st.builds(lambda p, n: m(b"B", p.encode() + b"\0" + n.encode() + b"\0\0\0\0\0\0\0"), NAME, NAME),
        st.builds(lambda p: m(b"E", p.encode() + b"\0\0\0\0\0"), NAME),
        st.builds(lambda k, n: m(b"D", k + n.encode() + b"\0"), st.sampled_from([b"S", b"P"]), NAME),
        st.builds(lambda k, n: m(b"C", k + n.encode() + b"\0"), st.sampled_from([b"S", b"P"]), NAME),
        st.just(m(b"S", b"")), st.just(m(b"H", b"")),
        st.just(m(b"F", b"\0\0\0\1\0\0\0\0\0\0")),
        st.just(m(b"d", b"evil data")),
        st.binary(min_size=1, max_size=12),               # garbage
    )


def backend_texts(data: bytes) -> list[str]:
    """Every Query/Parse text in the bytes the relay sent to the backend."""
    texts = []
    consumed, msgs, bad, _ = pg_split_frontend(bytes(data), 1 << 30)
    assert not bad and consumed == len(data), "the relay sent malformed bytes to the backend"
    for tag, _s, _e, a, b in msgs:
        if tag == "Q":
            texts.append(a)
        elif tag == "P":
            texts.append(b)
    return texts


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(message(), min_size=1, max_size=12), st.lists(st.integers(1, 40), min_size=1, max_size=30))
def test_blocked_text_never_reaches_backend(msgs, cuts):
    s, sink = ready_session()
    data = b"".join(msgs)
    i = 0
    for c in cuts * 10:
        if i >= len(data) or s.state == P.CLOSED:
            break
        s.client_data(data[i:i + c])
        i += c
    if i < len(data) and s.state != P.CLOSED:
        s.client_data(data[i:])
    for text in backend_texts(sink.to_backend):
        assert text is not None and "evil" not in text.lower(), text


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(1, 50))
def test_arbitrary_backend_bytes_never_crash(data, cut):
    s, sink = ready_session()
    s.client_data(m(b"Q", b"SELECT 1\0"))
    for i in range(0, len(data), cut):
        if s.state == P.CLOSED:
            break
        s.backend_data(data[i:i + cut])


def test_split_frontend_rejects_what_it_cannot_frame():
    with pytest.raises(FrameError):
        pg_split_frontend(b"Q\xff\xff\xff\xff", 1000)
