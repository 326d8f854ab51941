"""A minimal sans-I/O PostgreSQL client for the proxy's own queries (the pg_proc catalogue
read on first connect): log in with the backend's configured credentials, run one simple
Query, collect the text-format rows, Terminate. Not on the hot path; rows are decoded here
because this is the proxy's own data, not an agent's result set.

Protocol references: "Message Flow" > "Start-up" and "Simple Query"; "Message Formats" >
DataRow (Int16 column count, then per column Int32 length (-1 = NULL) and bytes).
"""

from __future__ import annotations

import struct

from sandbox_db_proxy._native import pg_scan_backend
from sandbox_db_proxy.auth.pg_auth import BackendAuth
from sandbox_db_proxy.protocols import pg_messages as M


class QueryFailed(Exception):
    pass


def parse_data_rows(buf: bytes) -> list[tuple[str | None, ...]]:
    """All DataRow messages in `buf` (complete messages only), decoded as UTF-8 text."""
    rows = []
    at = 0
    n = len(buf)
    while at + 5 <= n:
        tag = buf[at]
        (length,) = struct.unpack_from("!i", buf, at + 1)
        end = at + 1 + length
        if length < 4 or end > n:
            break
        if tag == 0x44:  # 'D'
            (ncol,) = struct.unpack_from("!h", buf, at + 5)
            p = at + 7
            row = []
            for _ in range(ncol):
                (clen,) = struct.unpack_from("!i", buf, p)
                p += 4
                if clen < 0:
                    row.append(None)
                else:
                    row.append(buf[p:p + clen].decode("utf-8", "replace"))
                    p += clen
            rows.append(tuple(row))
        at = end
    return rows


class OneQuery:
    """Feed backend bytes with `feed(data) -> bytes to send`; `done`, `rows`, `error`."""

    def __init__(self, user: str, password: str | None, database: str, sql: str,
                 application_name: str = "sandbox-db-proxy"):
        self.auth = BackendAuth(user, password)
        self.sql = sql
        self.startup = M.pg_startup_message([("user", user), ("database", database),
                                             ("application_name", application_name),
                                             ("options", "-c default_transaction_read_only=on"),
                                             ("client_encoding", "UTF8")])
        self.buf = b""
        self.pos = 0
        self.query_start = 0
        self.sent_query = False
        self.done = False
        self.error: str | None = None
        self.rows: list[tuple] = []

    def feed(self, data: bytes) -> bytes:
        self.buf += data
        base = self.pos
        _fwd, _skip, _need, events = pg_scan_backend(self.buf[base:], 0, 64 * 1024 * 1024)
        out = []
        for tag, start, end, a, b, c in events:
            self.pos = base + end
            if tag == "R":
                reply = self.auth.on_request(a, b)
                if reply:
                    out.append(reply)
            elif tag == "E":
                self.error = f"{b}: {c}"
            elif tag == "Z":
                if not self.sent_query:
                    if self.error:
                        self.done = True
                        break
                    self.sent_query = True
                    self.query_start = self.pos
                    out.append(M.query(self.sql))
                else:
                    self.rows = parse_data_rows(self.buf[self.query_start:base + start])
                    self.done = True
                    out.append(M.terminate())
                    break
        return b"".join(out)
