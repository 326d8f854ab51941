"""Embedded SQLite store for agent sessions (issue 5: "Sessions survive a proxy restart").

One row per session. The generated password is never stored: only what each wire protocol
needs to *verify* it (default deny on secrets at rest):

- PostgreSQL: a SCRAM-SHA-256 verifier `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`
  (RFC 5802 section 3 / RFC 5803; PostgreSQL docs "Password Authentication"), random salt.
- MySQL `mysql_native_password`: SHA1(SHA1(password)) -- the server checks the client's
  scramble from it (MySQL internals, "Native Authentication").
- MySQL `caching_sha2_password` fast auth: SHA256(SHA256(password)) -- enough to check a
  fast-auth scramble (response XOR SHA256(h2 + nonce) = SHA256(pw); SHA256 of that = h2).
  The MySQL relay (auth/mysql_auth.py ServerAuth, via Login.mysql_sha2_hash) uses it for fast
  authentication once a login passed full authentication, which checks the cleartext
  against the native hash.

Durability: state changes (create, revoke, expire) are committed with `synchronous=FULL` in
WAL mode before the API answers, so a crash or restart can neither lose a session nor
resurrect a revoked one. The file is created 0600 (it holds verifiers, which allow offline
guessing of a weak password -- ours are 190-bit random, but the file still is not public).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sqlite3
import threading
import time

from sandbox_db_proxy.auth.scram import Verifier

__all__ = ["SessionRecord", "SessionStore", "credentials_for", "ACTIVE", "REVOKED", "EXPIRED"]

ACTIVE, REVOKED, EXPIRED = "active", "revoked", "expired"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id                   TEXT PRIMARY KEY,
    agent                TEXT NOT NULL,
    username             TEXT NOT NULL UNIQUE,
    backends             TEXT NOT NULL,      -- JSON array of backend names
    created_at           REAL NOT NULL,      -- Unix time (wall clock: must survive restarts)
    expires_at           REAL NOT NULL,
    idle_timeout_seconds REAL,
    max_connections      INTEGER,
    allowed_ips          TEXT NOT NULL,      -- JSON array of CIDRs ([] = any)
    scram_verifier       TEXT NOT NULL,
    mysql_native_hash    BLOB NOT NULL,
    mysql_sha2_hash      BLOB NOT NULL,
    state                TEXT NOT NULL CHECK (state IN ('active', 'revoked', 'expired')),
    ended_at             REAL,
    end_reason           TEXT,
    statements_allowed   INTEGER NOT NULL DEFAULT 0,
    statements_blocked   INTEGER NOT NULL DEFAULT 0,
    bytes_in             INTEGER NOT NULL DEFAULT 0,
    bytes_out            INTEGER NOT NULL DEFAULT 0,
    connections_total    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS sessions_state ON sessions (state);
"""

_COLUMNS = ("id", "agent", "username", "backends", "created_at", "expires_at", "idle_timeout_seconds",
            "max_connections", "allowed_ips", "scram_verifier", "mysql_native_hash", "mysql_sha2_hash",
            "state", "ended_at", "end_reason", "statements_allowed", "statements_blocked", "bytes_in",
            "bytes_out", "connections_total")
_COUNTERS = ("statements_allowed", "statements_blocked", "bytes_in", "bytes_out", "connections_total")


def credentials_for(password: str) -> tuple[str, bytes, bytes]:
    """(SCRAM-SHA-256 verifier text, SHA1(SHA1(pw)), SHA256(SHA256(pw))) for a new password.
    The SCRAM salt is random per session (RFC 5802 section 5.1: salt per user)."""
    pw = password.encode()
    scram = Verifier.from_password(password).to_text()
    native = hashlib.sha1(hashlib.sha1(pw).digest()).digest()
    sha2 = hashlib.sha256(hashlib.sha256(pw).digest()).digest()
    return scram, native, sha2


@dataclasses.dataclass(eq=False)
class SessionRecord:
    id: str
    agent: str
    username: str
    backends: tuple[str, ...]
    created_at: float
    expires_at: float
    idle_timeout_seconds: float | None
    max_connections: int | None
    allowed_ips: tuple[str, ...]
    scram_verifier: str = dataclasses.field(repr=False)
    mysql_native_hash: bytes = dataclasses.field(repr=False)
    mysql_sha2_hash: bytes = dataclasses.field(repr=False)
    state: str = ACTIVE
    ended_at: float | None = None
    end_reason: str | None = None
    statements_allowed: int = 0
    statements_blocked: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    connections_total: int = 0

    def is_active(self, now: float | None = None) -> bool:
        return self.state == ACTIVE and (time.time() if now is None else now) < self.expires_at

    def _row(self) -> tuple:
        d = dataclasses.asdict(self)
        d["backends"] = json.dumps(list(self.backends))
        d["allowed_ips"] = json.dumps(list(self.allowed_ips))
        return tuple(d[c] for c in _COLUMNS)

    @classmethod
    def _from_row(cls, row: tuple) -> "SessionRecord":
        d = dict(zip(_COLUMNS, row))
        d["backends"] = tuple(json.loads(d["backends"]))
        d["allowed_ips"] = tuple(json.loads(d["allowed_ips"]))
        return cls(**d)


class StoreError(Exception):
    """The session store cannot be opened or written."""


class SessionStore:
    """Thread-safe (one lock) wrapper over one SQLite file. `":memory:"` works for tests."""

    def __init__(self, path: str):
        self.path = path
        self._lock = threading.Lock()
        try:
            if path != ":memory:":
                d = os.path.dirname(os.path.abspath(path))
                os.makedirs(d, mode=0o700, exist_ok=True)
                # Create the file 0600 before SQLite does (SQLite would use the umask).
                os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            self._db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL" if path != ":memory:" else "PRAGMA journal_mode=MEMORY")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                self._db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif row[0] != str(SCHEMA_VERSION):
                raise StoreError(f"{path}: session store schema version {row[0]} is not supported "
                                 f"(this proxy uses {SCHEMA_VERSION})")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the session store {path!r}: {exc}") from exc

    def _exec(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"session store {self.path!r}: {exc}") from exc

    def insert(self, rec: SessionRecord) -> None:
        marks = ",".join("?" * len(_COLUMNS))
        self._exec(f"INSERT INTO sessions ({','.join(_COLUMNS)}) VALUES ({marks})", rec._row())

    def load(self) -> list[SessionRecord]:
        rows = self._exec(f"SELECT {','.join(_COLUMNS)} FROM sessions ORDER BY created_at")
        return [SessionRecord._from_row(r) for r in rows]

    def username_taken(self, username: str) -> bool:
        return bool(self._exec("SELECT 1 FROM sessions WHERE username=?", (username,)))

    def end(self, rec: SessionRecord) -> None:
        """Persist a state change (revoked/expired) together with the final counters."""
        self._exec("UPDATE sessions SET state=?, ended_at=?, end_reason=?, statements_allowed=?, "
                   "statements_blocked=?, bytes_in=?, bytes_out=?, connections_total=? WHERE id=?",
                   (rec.state, rec.ended_at, rec.end_reason, *(getattr(rec, c) for c in _COUNTERS), rec.id))

    def save_counters(self, recs: list[SessionRecord]) -> None:
        if not recs:
            return
        with self._lock:
            try:
                with self._db:
                    self._db.execute("BEGIN")
                    self._db.executemany(
                        "UPDATE sessions SET statements_allowed=?, statements_blocked=?, bytes_in=?, "
                        "bytes_out=?, connections_total=? WHERE id=?",
                        [(*(getattr(r, c) for c in _COUNTERS), r.id) for r in recs])
            except sqlite3.Error as exc:
                raise StoreError(f"session store {self.path!r}: {exc}") from exc

    def purge_ended(self, before: float) -> list[str]:
        """Forget sessions that ended before `before` (Unix time); returns their ids. Their
        usernames can never log in again anyway: lookups only match active sessions."""
        rows = self._exec("SELECT id FROM sessions WHERE state != 'active' AND ended_at < ?", (before,))
        if rows:
            self._exec("DELETE FROM sessions WHERE state != 'active' AND ended_at < ?", (before,))
        return [r[0] for r in rows]

    def close(self) -> None:
        with self._lock:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
