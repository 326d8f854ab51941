"""Messages the PostgreSQL relay writes itself (protocol section "Message Formats").

Error and notice fields follow "Error and Notice Message Fields": S (localized severity),
V (non-localized severity), C (SQLSTATE), M (message), D (detail), H (hint). SQLSTATEs are
from Appendix A "PostgreSQL Error Codes".
"""

from __future__ import annotations

import struct

from sandbox_db_proxy._native import pg_error_response, pg_startup_message

__all__ = ["error", "fatal", "ready", "auth", "key_data", "query", "parse", "copy_fail",
           "terminate", "pg_startup_message", "SSL_REQUEST", "SQLSTATE"]

# Appendix A codes the relay uses.
SQLSTATE = {
    "read_only_sql_transaction": "25006",
    "invalid_password": "28P01",
    "invalid_authorization_specification": "28000",
    "protocol_violation": "08P01",
    "connection_failure": "08006",
    "sqlclient_unable_to_establish_sqlconnection": "08001",
    "program_limit_exceeded": "54000",
    "too_many_connections": "53300",
    "feature_not_supported": "0A000",
    "invalid_catalog_name": "3D000",
    "idle_session_timeout": "57P05",
    "admin_shutdown": "57P01",
    "character_not_in_repertoire": "22021",
    "insufficient_privilege": "42501",
    "query_canceled": "57014",
}

SSL_REQUEST = struct.pack("!ii", 8, 80877103)
_Z = {s: b"Z\x00\x00\x00\x05" + s.encode() for s in "ITE"}


def error(code: str, message: str, *, detail: str | None = None, hint: str | None = None,
          severity: str = "ERROR") -> bytes:
    fields = [("S", severity), ("V", severity), ("C", code), ("M", message)]
    if detail:
        fields.append(("D", detail))
    if hint:
        fields.append(("H", hint))
    return pg_error_response(fields)


def fatal(code: str, message: str, **kw) -> bytes:
    return error(code, message, severity="FATAL", **kw)


def ready(status: str) -> bytes:
    return _Z[status]


def auth(code: int, data: bytes = b"") -> bytes:
    return b"R" + struct.pack("!ii", len(data) + 8, code) + data


def key_data(pid: int, key: bytes) -> bytes:
    return b"K" + struct.pack("!ii", len(key) + 8, pid) + key


def _cstr(s: str) -> bytes:
    return s.encode().replace(b"\0", b"") + b"\0"


def query(sql: str) -> bytes:
    body = _cstr(sql)
    return b"Q" + struct.pack("!i", len(body) + 4) + body


def parse(name: str, sql: str) -> bytes:
    body = _cstr(name) + _cstr(sql) + b"\0\0"
    return b"P" + struct.pack("!i", len(body) + 4) + body


def copy_fail(message: str) -> bytes:
    body = _cstr(message)
    return b"f" + struct.pack("!i", len(body) + 4) + body


def terminate() -> bytes:
    return b"X\x00\x00\x00\x04"


def cancel_request(pid: int, key: bytes) -> bytes:
    return struct.pack("!iii", 12 + len(key), 80877102, pid) + key


def negotiate_protocol_version(minor: int, options: list[str]) -> bytes:
    body = struct.pack("!ii", minor, len(options)) + b"".join(_cstr(o) for o in options)
    return b"v" + struct.pack("!i", len(body) + 4) + body
