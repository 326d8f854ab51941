"""Differential check of the SQL lexer against real servers (PostgreSQL 15, MariaDB 10.11).

Each text hides `INSERT INTO probe VALUES (1)` behind a lexical trap (comment endings, nested
comments, executable comments, backslash escapes, dollar quotes, ...) and is sent as a real
multi-statement query: PyMySQL with CLIENT.MULTI_STATEMENTS, libpq PQexec (simple query).
Server truth = did the probe table get a row. A disagreement is fatal when the server ran
the INSERT and the fast path did not BLOCK it (it must never ALLOW, and here the leading
verb of the hidden statement is a write). Sessions are also run with MySQL NO_BACKSLASH_ESCAPES
/ ANSI_QUOTES and PostgreSQL standard_conforming_strings=off, where only the
`ambiguous_quoting` rule saves the day.

Run from the repository root: .venv/bin/python fuzz/server_agreement.py  (about 10 s)
"""
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import pymysql, psycopg
from pymysql.constants import CLIENT
from servers import MariaDbServer, PgServer, tmp_root
from sandbox_db_proxy import _native as n

P = "INSERT INTO probe VALUES (1)"
MY = [
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
PG = [
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

def lexer_view(sql, d):
    try:
        toks = n.tokenize(sql, d)
    except n.LexError:
        return "lexerr"
    return "sees" if any(k == "word" and t.upper() == "INSERT" for k, t, _, _ in toks) else "hidden"

FAILURES = []

def report(d, sql, executed, err):
    lv = lexer_view(sql, d)
    fc = n.fast_check(sql, d)
    danger = executed and fc[0] != n.BLOCK
    if danger:
        FAILURES.append((d, sql))
    print(f"{'DANGER' if danger else 'ok    '} {d:8} server={'EXEC' if executed else 'no  '} lexer={lv:6} fast={ {0:'DEFER',1:'ALLOW',2:'BLOCK'}[fc[0]]:5} {sql!r} {err or ''}")

def run_mysql(srv, mode=None):
    for sql in MY:
        c = pymysql.connect(host=srv.host, port=srv.port, user=srv.user, password=srv.password,
                            database="lexprobe", client_flag=CLIENT.MULTI_STATEMENTS, autocommit=True)
        cur = c.cursor()
        if mode:
            cur.execute(f"SET SESSION sql_mode = '{mode}'")
        cur.execute("DELETE FROM probe")
        err = None
        try:
            cur.execute(sql)
            while cur.nextset():
                pass
        except Exception as e:
            err = type(e).__name__ + str(e.args[:1])[:60]
        c2 = pymysql.connect(host=srv.host, port=srv.port, user=srv.user, password=srv.password, database="lexprobe")
        cnt = c2.cursor(); cnt.execute("SELECT count(*) FROM probe"); executed = cnt.fetchone()[0] > 0
        c2.close(); c.close()
        report("mysql", sql, executed, (f"[{mode}] " if mode else "") + (err or ""))

def run_pg(srv, pre=None):
    for sql in PG:
        conn = psycopg.connect(srv.dsn(dbname="lexprobe"), autocommit=True)
        conn.execute("DELETE FROM probe")
        if pre:
            conn.pgconn.exec_(pre.encode())
        res = conn.pgconn.exec_(sql.encode())
        err = res.error_message.decode()[:60] if res.error_message else None
        executed = conn.execute("SELECT count(*) FROM probe").fetchone()[0] > 0
        conn.close()
        report("postgres", sql, executed, (f"[{pre}] " if pre else "") + (err or ""))

my = MariaDbServer(tmp_root("lexmy")).start()
pg = PgServer(tmp_root("lexpg")).start()
try:
    my.sql("CREATE DATABASE lexprobe; CREATE TABLE lexprobe.probe (id int)")
    pg.psql("CREATE DATABASE lexprobe")
    pg.psql("CREATE TABLE probe (id int)", "lexprobe")
    run_mysql(my)
    run_mysql(my, "NO_BACKSLASH_ESCAPES")
    run_mysql(my, "ANSI_QUOTES")
    run_pg(pg)
    run_pg(pg, "SET standard_conforming_strings = off")
finally:
    my.stop(); pg.stop()
print(f"{len(FAILURES)} disagreement(s) where the server ran a hidden write the fast path did not block")
sys.exit(1 if FAILURES else 0)
