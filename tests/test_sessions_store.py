"""Session store (sessions/store.py): what lands on disk, and that it is enough to verify.

No server needed: these check the SQLite file itself -- never the password, only the
verifiers each protocol needs -- and that those verifiers accept exactly the password."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import time

import pytest

from sandbox_db_proxy.auth import mysql_auth as A
from sandbox_db_proxy.auth.scram import ScramClient, ScramError, ScramServer, Verifier
from sandbox_db_proxy.sessions.store import (ACTIVE, REVOKED, SessionRecord, SessionStore, StoreError,
                                             credentials_for)

PASSWORD = "Zq8T1cXwY0pL3mN5vB7nK9jH2gF4dS6a"


def _rec(sid="s1", username="sdp_a1_00000001", **kw) -> SessionRecord:
    scram, native, sha2 = credentials_for(PASSWORD)
    base = dict(id=sid, agent="a1", username=username, backends=("pg-prod", "my-prod"), created_at=time.time(),
                expires_at=time.time() + 600, idle_timeout_seconds=None, max_connections=None,
                allowed_ips=("10.0.0.0/8",), scram_verifier=scram, mysql_native_hash=native, mysql_sha2_hash=sha2)
    base.update(kw)
    return SessionRecord(**base)


def test_password_never_on_disk_and_file_is_private(tmp_path):
    path = str(tmp_path / "sub" / "sessions.db")
    st = SessionStore(path)
    st.insert(_rec())
    st.close()
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode & 0o077 == 0, oct(mode)
    blob = b"".join(open(os.path.join(tmp_path, "sub", f), "rb").read()
                    for f in os.listdir(tmp_path / "sub"))
    assert PASSWORD.encode() not in blob
    # ...and not its unsalted single hashes either (those would be password-equivalent).
    assert hashlib.sha1(PASSWORD.encode()).digest() not in blob
    assert hashlib.sha256(PASSWORD.encode()).digest() not in blob
    assert b"sdp_a1_00000001" in blob          # the row is really there


def test_scram_verifier_accepts_only_the_password():
    scram, _, _ = credentials_for(PASSWORD)
    v = Verifier.parse(scram)
    assert v.iterations >= 4096 and len(v.salt) >= 16

    def login(pw: str) -> bool:
        server, client = ScramServer(v), ScramClient(pw)
        try:
            final = server.final(client.final(server.first(client.first())))
            client.verify(final)
            return True
        except ScramError:
            return False
    assert login(PASSWORD)
    assert not login(PASSWORD + "x")
    # Two sessions with the same password still get different salts.
    assert Verifier.parse(credentials_for(PASSWORD)[0]).salt != v.salt


def test_mysql_hashes_verify():
    _, native, sha2 = credentials_for(PASSWORD)
    scramble = A.new_scramble()
    assert A.native_verify(A.native_scramble(PASSWORD.encode(), scramble), scramble, stored_hash=native)
    assert not A.native_verify(A.native_scramble(b"wrong", scramble), scramble, stored_hash=native)
    # caching_sha2 fast auth from SHA256(SHA256(pw)): response XOR SHA256(h2 + nonce) = SHA256(pw).
    resp = A.sha2_scramble(PASSWORD.encode(), scramble)
    x = hashlib.sha256(sha2 + scramble).digest()
    p1 = bytes(a ^ b for a, b in zip(resp, x))
    assert hashlib.sha256(p1).digest() == sha2


def test_round_trip_state_and_counters(tmp_path):
    path = str(tmp_path / "s.db")
    st = SessionStore(path)
    a, b = _rec("a", "u_a"), _rec("b", "u_b", allowed_ips=())
    st.insert(a)
    st.insert(b)
    a.statements_allowed, a.bytes_in = 5, 1234
    st.save_counters([a])
    b.state, b.ended_at, b.end_reason, b.statements_blocked = REVOKED, time.time(), "operator", 2
    st.end(b)
    st.close()
    got = {r.id: r for r in SessionStore(path).load()}
    assert got["a"].state == ACTIVE and got["a"].statements_allowed == 5 and got["a"].bytes_in == 1234
    assert got["a"].backends == ("pg-prod", "my-prod") and got["a"].allowed_ips == ("10.0.0.0/8",)
    assert got["b"].state == REVOKED and got["b"].end_reason == "operator" and got["b"].statements_blocked == 2
    assert got["a"].scram_verifier == a.scram_verifier and got["a"].mysql_native_hash == a.mysql_native_hash


def test_duplicate_username_refused(tmp_path):
    st = SessionStore(str(tmp_path / "s.db"))
    st.insert(_rec("a", "same"))
    with pytest.raises(StoreError):
        st.insert(_rec("b", "same"))
    assert [r.id for r in st.load()] == ["a"]


def test_purge_only_old_ended_sessions(tmp_path):
    st = SessionStore(str(tmp_path / "s.db"))
    old, live = _rec("old", "u1"), _rec("live", "u2")
    st.insert(old)
    st.insert(live)
    old.state, old.ended_at = REVOKED, time.time() - 10_000
    st.end(old)
    assert st.purge_ended(time.time() - 5_000) == ["old"]
    assert [r.id for r in st.load()] == ["live"]


def test_unopenable_or_foreign_store_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="cannot open the session store"):
        SessionStore(str(tmp_path))                       # a directory, not a file
    path = str(tmp_path / "v.db")
    SessionStore(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="schema version 99"):
        SessionStore(path)


def test_relay_verifiers_accept_session_logins():
    """The relays' own server-side auth code (auth/mysql_auth.py) logs a session in from the
    stored hash alone: mysql_native_password, and caching_sha2_password full auth over TLS."""
    from sandbox_db_proxy.server.app import Login
    _, native, _ = credentials_for(PASSWORD)
    login = Login(agent="a1", username="u", mysql_native_hash=native, session_id="s", source="session")
    scramble = A.new_scramble()
    ok = A.ServerAuth(login, scramble, tls=False).begin(A.NATIVE, A.native_scramble(PASSWORD.encode(), scramble))
    assert ok.done is True
    bad = A.ServerAuth(login, scramble, tls=False).begin(A.NATIVE, A.native_scramble(b"nope", scramble))
    assert bad.done is False
    sa = A.ServerAuth(login, scramble, tls=True, preferred=A.SHA2)
    step = sa.begin(A.SHA2, A.sha2_scramble(PASSWORD.encode(), scramble))
    assert step.done is None                       # "perform full authentication"
    assert sa.next(PASSWORD.encode() + b"\0").done is True
    sa = A.ServerAuth(login, scramble, tls=True, preferred=A.SHA2)
    sa.begin(A.SHA2, A.sha2_scramble(PASSWORD.encode(), scramble))
    assert sa.next(b"wrong\0").done is False
