"""Type stub for the private native module built from rust/python (pyo3).

Each section belongs to one binding file in rust/python/src/; edit only your section.
"""

__version__: str

# --- errors (rust/python/src/errors.rs) ------------------------------------------------
class NativeError(Exception): ...
class LexError(NativeError): ...
class FrameError(NativeError): ...
class TooLargeError(FrameError): ...
class InvalidArgument(NativeError): ...

# --- sql (rust/python/src/sql.rs) ------------------------------------------------------
# Dialects: "postgres", "mysql" (MySQL and MariaDB), "tsql"; anything else raises
# InvalidArgument. Lexing follows each server's own lexer (PostgreSQL scan.l, MySQL
# sql_lex.cc); MySQL executable comments /*! */, /*!50000 */, /*M! */ are code.
DEFER: int  # 0: not certain either way; run the deep check
ALLOW: int  # 1: certainly one plain SELECT of known-safe syntax and pure functions
BLOCK: int  # 2: certainly a write (leading write verb), unlexable, or ambiguous quoting

def fast_check(
    sql: str, dialect: str, *, strict_quoting: bool = True
) -> tuple[int, str, str, str, tuple[str, ...], str | None]:
    """(decision, rule, reason, class, verbs, fingerprint).

    strict_quoting (default True): a text whose strings end elsewhere under other escape
    settings (MySQL NO_BACKSLASH_ESCAPES / ANSI_QUOTES, PostgreSQL
    standard_conforming_strings=off) must be a plain read under every reading, else BLOCK
    "ambiguous_quoting". Pass False only if the relay pins the server defaults.

    ALLOW also requires: no system catalog/schema name (pg_*, information_schema, mysql,
    performance_schema, sys, ...: the deep check owns that policy) and casts only to
    built-in types. rule: "plain_select" (ALLOW); "write_verb", "lex_error",
    "ambiguous_quoting" (BLOCK);
    "" (DEFER, reason ""). class: read/write/ddl/dcl/transaction/session/function/admin/
    unknown (for DEFER a hint from the leading verbs). verbs: leading word of each
    non-empty statement, upper-cased ("" when a statement starts with something else).
    fingerprint: literals -> ?, keywords upper-cased, comments dropped, whitespace -> one
    space; strings whose end depends on backslash settings and MySQL "..." stay verbatim;
    None when the text cannot be lexed. Never raises except InvalidArgument."""

def expand_sql(sql: str, dialect: str) -> str:
    """Text for the deep parser: comments -> one space, MySQL executable-comment markers
    removed (contents become plain code), hints kept. Raises LexError if unlexable."""

def split_statements(sql: str, dialect: str) -> list[str]:
    """Statements split on ';' outside quotes/comments (also inside parentheses and inside
    executable comments), each rendered like expand_sql, trimmed, without the ';'; empty
    statements dropped. T-SQL: also split where a statement of a batch begins without ';'
    (`SELECT 1 DELETE FROM t` -> two statements; rules in rust/core/src/sql/split.rs,
    tsql_batch_ranges). Raises LexError if unlexable."""

def fingerprint(sql: str, dialect: str) -> str:
    """The fingerprint fast_check returns; raises LexError if unlexable."""

def tokenize(sql: str, dialect: str) -> list[tuple[str, str, int, int]]:
    """[(kind, text, start, end)]: start/end are CHARACTER offsets into the Python str.
    kind: word, quoted_ident, string, number, param, variable, operator, punct, comment,
    hint, exec_open, exec_close, other. Whitespace is not returned. Raises LexError on an
    unterminated string/identifier/comment/dollar quote, a NUL character, a comment
    inside a MySQL executable comment, or a quote inside a MySQL optimizer hint."""

# --- pgwire (rust/python/src/pgwire.rs) ------------------------------------------------
# One call per received chunk. Offsets index the `buf` passed in.
def pg_split_frontend(buf: bytes, max_message: int) -> tuple[
        int, list[tuple[str, int, int, object, object]], bool, int]:
    """Complete typed client messages: (consumed, msgs, bad, need). msgs are
    (tag, start, end, a, b): Q (sql|None, None); P (name|None, sql|None); B (portal, stmt);
    D/C (kind 'S'|'P', name); E (portal, max_rows); others (None, None). Text fields are None
    when not valid UTF-8. bad: the bytes at `consumed` are invalid (call again on
    buf[consumed:] to raise). need: size of the incomplete message at `consumed` (0: unknown).
    Raises TooLargeError (message > max_message, from its header alone) or FrameError when
    the first message is bad."""
def pg_parse_startup(buf: bytes) -> tuple[int, str, object, object] | None:
    """One startup packet: None (need more) or (size, kind, a, b): 'ssl' | 'gss' |
    'cancel' (pid, key bytes) | 'startup' ((major, minor), [(name, value), ...]; params are
    only parsed for major 3). Raises FrameError / TooLargeError (> 10000 bytes)."""
def pg_scan_backend(buf: bytes, skip: int, max_inspected: int) -> tuple[
        int, int, int, list[tuple[str, int, int, object, object, object]]]:
    """Zero-copy scan of backend bytes: (forward, skip, need, events). Send buf[:forward]
    on, keep the rest, pass `skip` back next time (bytes still to come of a streamed
    message), don't rescan before `need` bytes are pending. Events only for inspected
    messages: Z (status,); C (command tag, rows|None); E (severity, sqlstate, message);
    S (name, value); K (pid, key bytes); R (code, data bytes); G/H/W/I/s/v (). Rows
    (D, T, d, ...) are never reported. Raises FrameError / TooLargeError."""
def pg_error_response(fields: list[tuple[str, str]], tag: str = "E") -> bytes:
    """ErrorResponse ('E') or NoticeResponse ('N') from (field code, value) pairs."""
def pg_startup_message(params: list[tuple[str, str]]) -> bytes:
    """StartupMessage for protocol 3.0."""

# --- mysqlwire (rust/python/src/mysqlwire.rs) ------------------------------------------
MYSQL_MAX_FRAME_PAYLOAD: int          # 0xffffff: a frame this long continues in the next one
MYSQL_CLIENT_LOCAL_FILES: int

class MysqlPacketDecoder:
    """3-byte length + sequence id framing; reassembles 16 MB multi-frame payloads; the size
    limit is enforced from the headers. Raises FrameError / TooLargeError (then stays failed)."""
    def __init__(self, max_payload: int = 64 * 1024 * 1024) -> None: ...
    def feed(self, data: bytes) -> list[tuple[int, bytes, int]]:
        """Complete packets of this chunk: (first sequence id, payload, next sequence id)."""
    def take_raw(self) -> bytes:
        """Raw bytes buffered after the last complete packet (e.g. a TLS ClientHello)."""
    def set_max_payload(self, max_payload: int) -> None: ...
    @property
    def buffered(self) -> int: ...
    @property
    def idle(self) -> bool: ...

class MysqlResponseScanner:
    """Walks server responses without copying rows. expect(kind, seq) after forwarding a
    command (kind: 0 query, 1 prepare, 2 execute, 3 fetch, 4 field list, 5 simple OK/ERR/EOF,
    6 statistics; seq: the response's first sequence id). feed(chunk) returns
      None                          the response goes on: forward the whole chunk
      (0, hold_from, None)          forward chunk[:hold_from] only; hold the rest (maybe LOCAL INFILE)
      (1, end, summary)             the response ends at chunk[end]; the scanner is idle again
      (2, start, (seq, filename))   a LOCAL INFILE request starts at chunk[start]
    summary = (kind 0 OK / 1 ERR / 2 result set / 3 prepared / 4 text, affected_rows,
               last_insert_id, status, warnings, rows, result_sets, err_code, sqlstate,
               err_message: bytes, stmt_id, num_params, num_columns)"""
    def __init__(self, deprecate_eof: bool = True) -> None: ...
    def set_deprecate_eof(self, on: bool) -> None: ...
    def expect(self, kind: int, seq: int) -> None: ...
    def feed(self, data: bytes) -> tuple[int, int, object] | None: ...
    def reset(self) -> None: ...
    @property
    def idle(self) -> bool: ...

def mysql_frame(payload: bytes, seq: int) -> bytes: ...
def mysql_err(seq: int, code: int, sqlstate: str, message: str) -> bytes: ...
def mysql_ok(seq: int, affected_rows: int = 0, last_insert_id: int = 0, status: int = 2, warnings: int = 0,
             info: bytes = b"", eof_header: bool = False) -> bytes: ...
def mysql_eof(seq: int, warnings: int, status: int) -> bytes: ...
def mysql_handshake(server_version: bytes, connection_id: int, scramble: bytes, capabilities: int, charset: int,
                    status: int, auth_plugin: bytes) -> bytes: ...
def mysql_parse_handshake(payload: bytes) -> dict:
    """HandshakeV10: protocol_version, server_version, connection_id, scramble, capabilities,
    charset, status, auth_plugin, mariadb_caps."""
def mysql_parse_handshake_response(payload: bytes) -> dict:
    """HandshakeResponse41 / SSLRequest: capabilities, max_packet, charset, ssl_request,
    username, auth_response, database, auth_plugin, attributes."""
def mysql_handshake_response(seq: int, capabilities: int, max_packet: int, charset: int, username: bytes,
                             auth_response: bytes, database: bytes | None, auth_plugin: bytes,
                             attributes: list[tuple[bytes, bytes]] = ...) -> bytes: ...
def mysql_ssl_request(seq: int, capabilities: int, max_packet: int, charset: int) -> bytes: ...
def mysql_auth_switch(seq: int, plugin: bytes, data: bytes) -> bytes: ...
def mysql_parse_auth_switch(payload: bytes) -> tuple[bytes, bytes]: ...
def mysql_parse_ok(payload: bytes) -> tuple[int, int, int, int]:
    """(affected_rows, last_insert_id, status, warnings)"""
def mysql_parse_err(payload: bytes) -> tuple[int, str, bytes]:
    """(code, sqlstate, message)"""

# --- native relay (rust/python/src/dataplane.rs) ----------------------------------------
class VerdictCache:
    """Rust-side copy of one backend engine's verdict caches (exact text; fingerprint only
    for what the engine itself fingerprint-cached). Misses go to the Python engine."""
    def __init__(self, dialect: str, capacity: int) -> None: ...
    def clear(self) -> None: ...
    def set_refuse(self, on: bool) -> None: ...
    def generation(self) -> int: ...
    def contains(self, sql: str) -> bool: ...
    def __len__(self) -> int: ...

class BackendStats:
    """Metric accumulators of one backend, filled by the I/O thread."""
    def __init__(self) -> None: ...
    def take(
        self,
    ) -> tuple[list[tuple[str, int]], list[int], float, int, list[int], float]:
        """(allowed_by_class, query_buckets, query_sum, cache_hits, classify_buckets,
        classify_sum) since the last call; per-bucket counts (metrics.py bucket layout)."""

class DataPlane:
    """The native relay's I/O threads: own the sockets of the sessions handed to them."""
    def __init__(self, high_water: int = 262144, threads: int = 1) -> None: ...
    def threads(self) -> int: ...
    def notify_fd(self) -> int: ...
    def adopt_pg(
        self, client_fd: int, backend_fd: int, cache: VerdictCache, stats: BackendStats,
        audit_prefix: bytes, database: str | None, initial_client: bytes, initial_backend: bytes,
        *, max_message: int, max_inspected: int,
    ) -> int: ...
    def adopt_mysql(
        self, client_fd: int, backend_fd: int, cache: VerdictCache, stats: BackendStats,
        audit_prefix: bytes, database: str | None, initial_client: bytes, initial_backend: bytes,
        *, max_message: int, deprecate_eof: bool, mariadb: bool, allowed_databases: list[str],
        allowed_db_text: str, setup_statements: list[tuple[str, bool]], read_only_check: str,
    ) -> int: ...
    def verdict(
        self, session: int, sql: str, generation: int, mode: int, allowed: bool, rule: str,
        reason: str, klass: str,
        verbs: tuple[str, ...], audit_pre: bytes, audit_post: bytes,
    ) -> None: ...
    def terminate(self, session: int, admin: bool, message: str) -> None: ...
    def set_audit_enabled(self, on: bool) -> None: ...
    def events(self) -> list[tuple]: ...
    def take_audit(self) -> bytes: ...
    def audit_dropped(self) -> int: ...
    def session_stats(self, session: int) -> tuple[int, int, int, int, bool] | None: ...
    def peak_queued(self, session: int) -> int | None: ...
    def session_count(self) -> int: ...
    def shutdown(self) -> None: ...
