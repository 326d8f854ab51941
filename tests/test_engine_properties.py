"""Property tests (hypothesis) for the verdict engine and the native lexer it sits on:
- the lexer and every native SQL function return or raise a `_native.NativeError` subclass on
  arbitrary text, never anything else;
- `Engine.classify` returns a Verdict for arbitrary text (no exception escapes);
- wrapping a write in comments, changing letter case or whitespace never turns it into an allow
  (read-only-bypasses.md item 6: comment tricks beat guards that match on raw text).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox_db_proxy import _native
from sandbox_db_proxy.engine import Engine, Verdict

DIALECTS = ("postgres", "mysql", "tsql")
ENGINES = {d: Engine(d, cache_size=0) for d in DIALECTS}     # no cache: every example is checked

WRITES = {
    "postgres": [
        "DELETE FROM users", "UPDATE users SET name = 'x' WHERE id = 1",
        "INSERT INTO users VALUES (1)", "DROP TABLE users", "TRUNCATE users",
        "WITH x AS (DELETE FROM users RETURNING *) SELECT * FROM x",
        "SELECT 1; COMMIT; DROP SCHEMA public CASCADE", "BEGIN READ WRITE",
        "SET default_transaction_read_only = off", "SELECT nextval('s')",
        "SELECT * INTO t2 FROM users", "SELECT * FROM users FOR UPDATE",
        "COPY users TO PROGRAM 'id'", "SELECT dblink_exec('x', 'DELETE FROM t')",
        "DO $$BEGIN DELETE FROM t; END$$", "SET ROLE postgres", "CALL p()",
    ],
    "mysql": [
        "DELETE FROM users", "UPDATE users SET name = 'x'", "REPLACE INTO users VALUES (1)",
        "DROP TABLE users", "SELECT 1; DELETE FROM users", "START TRANSACTION READ WRITE",
        "SET SESSION TRANSACTION READ WRITE", "SELECT * FROM users INTO OUTFILE '/tmp/x'",
        "SELECT LOAD_FILE('/etc/passwd')", "SELECT SLEEP(10)", "LOCK TABLES users WRITE",
        "PREPARE s FROM 'DELETE FROM t'", "SELECT * FROM users FOR UPDATE",
        "SELECT 1 /*!50000 INTO OUTFILE '/tmp/x' */", "/*!50000 DROP TABLE users */",
        "SET GLOBAL read_only = 0", "KILL 1",
    ],
    "tsql": [
        "DELETE FROM dbo.users", "UPDATE dbo.users SET name = 'x'", "DROP TABLE dbo.users",
        "EXEC('DELETE FROM dbo.users')", "EXEC xp_cmdshell 'dir'",
        "EXEC sp_executesql N'DELETE FROM t'", "SELECT * INTO #t FROM dbo.users",
        "SELECT * FROM OPENROWSET('a', 'b', 'SELECT 1')", "SELECT 1 DELETE FROM dbo.users",
        "SELECT * FROM dbo.t WITH (UPDLOCK)", "TRUNCATE TABLE dbo.users",
    ],
}

# Separators that every dialect's server treats as whitespace between tokens.
_SEPS = {
    "postgres": [" ", "  ", "\t", "\n", "\r\n", "/**/", " /* x */ ", "/* /* nested */ */",
                 " -- c\n", "\n-- DELETE\n", "\f"],
    "mysql": [" ", "  ", "\t", "\n", "\r\n", "/**/", " /* x */ ", " -- c\n", " # c\n", "\n#\n"],
    "tsql": [" ", "  ", "\t", "\n", "\r\n", "/**/", " /* x */ ", " -- c\n", "/* /* n */ */"],
}
_WRAP = ["", "/* SELECT 1 */ ", "-- SELECT 1\n", "  \n", "/* x */\n/* y */ ", "\n\n"]
_TAIL = ["", ";", " ;", " -- trailing", " /* trailing */", ";\n"]


def _recase(text: str, flags: list[bool]) -> str:
    """Change the case of letters outside quotes (keywords and identifiers; string literal
    contents keep their case so the statement keeps its meaning)."""
    out, quote = [], None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
            out.append(ch)
            continue
        if ch in "'\"$`[":
            quote = {"[": "]", "$": "$"}.get(ch, ch)
            out.append(ch)
            continue
        out.append(ch.swapcase() if flags[i % len(flags)] and ch.isalpha() else ch)
    return "".join(out)


@st.composite
def disguised_write(draw, dialect: str):
    sql = draw(st.sampled_from(WRITES[dialect]))
    parts = sql.split(" ")
    seps = draw(st.lists(st.sampled_from(_SEPS[dialect]), min_size=len(parts) - 1,
                         max_size=len(parts) - 1))
    text = parts[0] + "".join(s + p for s, p in zip(seps, parts[1:]))
    flags = draw(st.lists(st.booleans(), min_size=1, max_size=8))
    text = _recase(text, flags)
    return draw(st.sampled_from(_WRAP)) + text + draw(st.sampled_from(_TAIL))


@pytest.mark.parametrize("dialect", DIALECTS)
def test_disguised_writes_never_allowed(dialect):
    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(disguised_write(dialect))
    def check(text):
        v = ENGINES[dialect].classify(text)
        assert not v.allowed, (text, v.rule, v.reason)
    check()


def _native_calls(text: str, dialect: str) -> None:
    for fn in (lambda: _native.fast_check(text, dialect), lambda: _native.tokenize(text, dialect),
               lambda: _native.split_statements(text, dialect),
               lambda: _native.expand_sql(text, dialect)):
        try:
            fn()
        except _native.NativeError:
            pass


_sqlish = st.text(alphabet=st.sampled_from(list("SELECTFROMWHEREdelete ;'\"`$[]()/*-#!\\\n\tE&N@:0x5")),
                  max_size=80)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), _sqlish,
                 st.binary(max_size=200).map(lambda b: b.decode("utf-8", errors="replace")),
                 st.binary(max_size=200).map(lambda b: b.decode("latin-1"))),
       st.sampled_from(DIALECTS))
def test_native_lexer_never_crashes(text, dialect):
    _native_calls(text, dialect)


@settings(max_examples=200, deadline=None)
@given(st.one_of(_sqlish, st.text(max_size=120)), st.sampled_from(DIALECTS))
def test_classify_always_returns_a_verdict(text, dialect):
    v = ENGINES[dialect].classify(text)
    assert isinstance(v, Verdict) and v.verdict in ("allow", "block") and v.reason


def test_lexer_refuses_unknown_dialect_with_invalid_argument():
    with pytest.raises(_native.InvalidArgument):
        _native.fast_check("SELECT 1", "oracle")
