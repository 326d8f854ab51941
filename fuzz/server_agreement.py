"""Differential check of the SQL lexer against real servers (PostgreSQL 15, MariaDB 10.11).

Each text hides `INSERT INTO probe VALUES (1)` behind a lexical trap (comment endings, nested
comments, executable comments, backslash escapes, dollar quotes, ...) and is sent as a real
multi-statement query: PyMySQL with CLIENT.MULTI_STATEMENTS, libpq PQexec (simple query).
Server truth = did the probe table get a row. A disagreement is fatal when the server ran
the INSERT and the fast path did not BLOCK it (it must never ALLOW, and here the leading
verb of the hidden statement is a write). Sessions are also run with MySQL NO_BACKSLASH_ESCAPES
/ ANSI_QUOTES and PostgreSQL standard_conforming_strings=off, where only the
`ambiguous_quoting` rule saves the day.

The traps and the runners live in tests/lexer_agreement.py, shared with the permanent test
tests/test_lexer_server_agreement.py; this script runs them on throwaway servers of its own
and prints every row (add traps there, not here).

Run from the repository root: .venv/bin/python fuzz/server_agreement.py  (about 10 s)
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import lexer_agreement as LA  # noqa: E402
from servers import MariaDbServer, PgServer, tmp_root  # noqa: E402

DB = "lexprobe"


def main() -> int:
    failures = []
    my = MariaDbServer(tmp_root("lexmy")).start()
    pg = PgServer(tmp_root("lexpg")).start()
    try:
        my.sql(f"CREATE DATABASE {DB}; CREATE TABLE {DB}.probe (id int)")
        pg.psql(f"CREATE DATABASE {DB}")
        pg.psql("CREATE TABLE probe (id int)", DB)
        for dialect, server in (("mysql", my), ("postgres", pg)):
            for mode in LA.DIALECT_MODES[dialect]:
                outcomes = LA.RUNNERS[dialect](server, DB, mode)
                for o in outcomes:
                    print(LA.describe(o))
                failures += LA.missed(outcomes)
    finally:
        my.stop()
        pg.stop()
    print(f"{len(failures)} disagreement(s) where the server ran a hidden write the fast path did not block")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
