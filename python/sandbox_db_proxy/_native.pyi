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
    statements dropped. T-SQL batches without ';' come back as one statement. Raises
    LexError if unlexable."""

def fingerprint(sql: str, dialect: str) -> str:
    """The fingerprint fast_check returns; raises LexError if unlexable."""

def tokenize(sql: str, dialect: str) -> list[tuple[str, str, int, int]]:
    """[(kind, text, start, end)]: start/end are CHARACTER offsets into the Python str.
    kind: word, quoted_ident, string, number, param, variable, operator, punct, comment,
    hint, exec_open, exec_close, other. Whitespace is not returned. Raises LexError on an
    unterminated string/identifier/comment/dollar quote, a NUL character, a comment
    inside a MySQL executable comment, or a quote inside a MySQL optimizer hint."""

# --- pgwire (rust/python/src/pgwire.rs) ------------------------------------------------
# (filled in by the PostgreSQL relay work)

# --- mysqlwire (rust/python/src/mysqlwire.rs) ------------------------------------------
# (filled in by the MySQL relay work)
