"""The SQL lexer against real servers: texts that hide a write behind a lexical trap.

Shared by tests/test_lexer_server_agreement.py (the permanent test, on the session's
`pg_server` / `mariadb_server`) and fuzz/server_agreement.py (the same run on throwaway
servers, printing every row). No pytest dependency, no side effect on import.

Each trap hides `INSERT INTO probe VALUES (1)` behind comment endings, nested or executable
comments, backslash escapes, dollar quotes, ... and is sent as ONE real multi-statement query:
PyMySQL with CLIENT_MULTI_STATEMENTS (MySQL protocol, COM_QUERY), libpq PQexec (PostgreSQL
protocol, simple Query message: several statements in one string run in one implicit
transaction). Server truth = did the probe table get a row. The rule: whenever a server ran
the hidden write, the fast path (`_native.fast_check`, the first thing the relays ask) must
have said BLOCK -- it may DEFER or ALLOW only texts the server did not run as a write.

Sessions are also run with MySQL `sql_mode` NO_BACKSLASH_ESCAPES / ANSI_QUOTES and PostgreSQL
`standard_conforming_strings = off`: an agent may set those, and then string and identifier
boundaries move (ARCHITECTURE.md "Native SQL API", rule `ambiguous_quoting`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

PROBE = "INSERT INTO probe VALUES (1)"
P = PROBE

# A plain two-statement text: the server MUST run its write. If it does not, the probe cannot
# be observed (no multi-statement support, wrong database, mode broke the session) and every
# "the server did not run it" below would prove nothing.
CONTROL = "SELECT 1; " + P

MYSQL_TRAPS = [
    "SELECT 1 -- x\r" + P,
    "SELECT 1 -- x\r; " + P,
    "SELECT 1 -- \r'\n; " + P + "; -- '",
    "SELECT 1--1; " + P,
    "SELECT 1 /*! ; " + P + " */",
    "SELECT 1 /*!99999 ; " + P + " */",
    "SELECT 1 /*!50000 ; " + P + " */",
    "SELECT 1 /*M! ; " + P + " */",
    "SELECT 1 /*M!100000 ; " + P + " */",
    "SELECT 1 /*!100000 ; " + P + " */",
    "SELECT 1 /*!1000001; " + P + " */",
    "SELECT 1 /* /* */ ; " + P + "; */",
    "SELECT 'a\\'; " + P + "; -- '",
    "SELECT \"a\\\"; " + P + "; -- \"",
    "SELECT 1 #x\n; " + P,
    "SELECT 1 /*+ x */ ; " + P,
    "SELECT 1 --\x01x\n; " + P,
    "SELECT 1 --x\n; " + P,
    "SELECT `a``b` FROM (SELECT 1 AS `a``b`) t; " + P,
    "SELECT 1 /*!*/; " + P,
    "SELECT 1; /*!50000 " + P + " */",
    "/*!50000 " + P + " */",
    "SELECT 1 /*! /* x */ ; " + P + " */",
    "SELECT 1 /*! -- x\n ; " + P + " */",
    "SELECT 2*/*x*/3; " + P,
    "SELECT 1 -- x\u00a0; " + P,
    "SELECT 1 /*+ '*/ '; " + P + "; -- ' */",
]
PG_TRAPS = [
    "SELECT 1 -- x\r; " + P,
    "SELECT 1 -- x\r" + P,
    "SELECT 1 /* /* */ ; " + P + "; */",
    "SELECT 'a\\'; " + P + "; --'",
    "SELECT E'a\\'; " + P + "; --'",
    "SELECT $$; " + P + "; $$",
    "SELECT $a$ ; $b$ ; " + P + "; $a$",
    "SELECT a$$b FROM (SELECT 1 AS \"a$$b\") t; " + P,
    "SELECT U&'\\0027'; " + P,
    "SELECT B'0''; " + P + "; --'",
    "SELECT 1 /*/ ; " + P + "; */ */",
    "SELECT 1 -- x\u2028; " + P,
    "SELECT 1 #-- x\n; " + P,
    "SELECT 1 @-- x\n; " + P,
    "SELECT $1$ ; " + P,
]

# Session modes: (label, statement that sets it, statement that reads it back, value expected
# in the read-back). None = the server's default.
MYSQL_MODES = {
    "default": None,
    "NO_BACKSLASH_ESCAPES": ("SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'", "SELECT @@SESSION.sql_mode",
                             "NO_BACKSLASH_ESCAPES"),
    "ANSI_QUOTES": ("SET SESSION sql_mode = 'ANSI_QUOTES'", "SELECT @@SESSION.sql_mode", "ANSI_QUOTES"),
}
PG_MODES = {
    "default": None,
    "standard_conforming_strings=off": ("SET standard_conforming_strings = off",
                                        "SHOW standard_conforming_strings", "off"),
}

DIALECT_TRAPS = {"mysql": MYSQL_TRAPS, "postgres": PG_TRAPS}
DIALECT_MODES = {"mysql": MYSQL_MODES, "postgres": PG_MODES}
DECISIONS = {0: "DEFER", 1: "ALLOW", 2: "BLOCK"}


@dataclass(frozen=True)
class Outcome:
    """What one server did with one text in one session mode."""

    dialect: str          # fast_check dialect: "mysql" (MariaDB) or "postgres"
    mode: str             # key of MYSQL_MODES / PG_MODES
    sql: str
    executed: bool        # the probe table got a row: the server ran the hidden write
    mode_seen: str | None  # the mode's read-back value in that very session (None: default mode)
    error: str | None     # the server's error for the text, if any (diagnostics only)


def run_mysql(server, database: str, mode: str, texts=None) -> list[Outcome]:
    """Send each text as one COM_QUERY with CLIENT_MULTI_STATEMENTS to MariaDB, one fresh
    session per text (a trap may leave results or state behind), mode set first."""
    import pymysql
    from pymysql.constants import CLIENT

    setting = MYSQL_MODES[mode]

    def connect(**kw):
        return pymysql.connect(host=server.host, port=server.port, user=server.user,
                               password=server.password, database=database, autocommit=True, **kw)

    out = []
    checker = connect()           # autocommit: every count sees what the probe session committed
    try:
        for sql in MYSQL_TRAPS if texts is None else texts:
            c = connect(client_flag=CLIENT.MULTI_STATEMENTS)
            try:
                cur = c.cursor()
                seen = None
                if setting:
                    cur.execute(setting[0])
                    cur.execute(setting[1])
                    seen = cur.fetchone()[0]
                cur.execute("DELETE FROM probe")
                err = None
                try:
                    cur.execute(sql)
                    while cur.nextset():
                        pass
                except pymysql.MySQLError as e:
                    err = f"{type(e).__name__}{e.args[:1]}"
            finally:
                c.close()
            with checker.cursor() as cnt:
                cnt.execute("SELECT count(*) FROM probe")
                executed = cnt.fetchone()[0] > 0
            out.append(Outcome("mysql", mode, sql, executed, seen, err))
    finally:
        checker.close()
    return out


def run_pg(server, database: str, mode: str, texts=None) -> list[Outcome]:
    """Send each text with libpq PQexec (one simple-protocol Query message) to PostgreSQL,
    one fresh session per text, mode set first."""
    import psycopg

    setting = PG_MODES[mode]
    out = []
    for sql in PG_TRAPS if texts is None else texts:
        with psycopg.connect(server.dsn(dbname=database), autocommit=True) as conn:
            conn.execute("DELETE FROM probe")
            seen = None
            if setting:
                conn.pgconn.exec_(setting[0].encode())
                seen = conn.execute(setting[1]).fetchone()[0]
            res = conn.pgconn.exec_(sql.encode())
            err = res.error_message.decode(errors="replace")[:80] if res.error_message else None
            executed = conn.execute("SELECT count(*) FROM probe").fetchone()[0] > 0
        out.append(Outcome("postgres", mode, sql, executed, seen, err))
    return out


RUNNERS = {"mysql": run_mysql, "postgres": run_pg}


def lexer_view(sql: str, dialect: str) -> str:
    """Diagnostics: does the lexer see the INSERT as code ("sees"), hide it ("hidden"), or
    refuse the text ("lexerr")?"""
    from sandbox_db_proxy import _native as n
    try:
        toks = n.tokenize(sql, dialect)
    except n.LexError:
        return "lexerr"
    return "sees" if any(k == "word" and t.upper() == "INSERT" for k, t, _, _ in toks) else "hidden"


def fast_decision(sql: str, dialect: str) -> int:
    from sandbox_db_proxy import _native as n
    return n.fast_check(sql, dialect)[0]


def missed(outcomes, decide: Callable[[str, str], int] = fast_decision) -> list[Outcome]:
    """The outcomes where the server ran the hidden write and `decide` did not say BLOCK."""
    from sandbox_db_proxy import _native as n
    return [o for o in outcomes if o.executed and decide(o.sql, o.dialect) != n.BLOCK]


def describe(o: Outcome, decide: Callable[[str, str], int] = fast_decision) -> str:
    """One line per outcome, the format fuzz/server_agreement.py has always printed."""
    d = decide(o.sql, o.dialect)
    from sandbox_db_proxy import _native as n
    danger = o.executed and d != n.BLOCK
    mode = "" if o.mode == "default" else f"[{o.mode}] "
    return (f"{'DANGER' if danger else 'ok    '} {o.dialect:8} server={'EXEC' if o.executed else 'no  '} "
            f"lexer={lexer_view(o.sql, o.dialect):6} fast={DECISIONS[d]:5} {o.sql!r} {mode}{o.error or ''}")
