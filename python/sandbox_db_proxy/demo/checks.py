"""The guide's "Security Verification" > "Test Read-Only Enforcement" checks, run through the
proxy with a real PostgreSQL client: the SELECT must return rows, the INSERT, UPDATE and
DELETE must be refused (SQLSTATE 25006, read_only_sql_transaction, is what the relay sends),
plus two well-known tricks (a data-modifying CTE, switching the session to read-write).
The caller compares a checksum taken on the server before and after.

psycopg 3 is used when installed; otherwise the `psql` that ships inside pgserver."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess

# (statement, expect_allowed)
GUIDE_CHECKS: tuple[tuple[str, bool], ...] = (
    ("SELECT * FROM users LIMIT 10;", True),
    ("INSERT INTO users (name) VALUES ('test');", False),
    ("UPDATE users SET name = 'test' WHERE id = 1;", False),
    ("DELETE FROM users WHERE id = 1;", False),
)
EXTRA_CHECKS: tuple[tuple[str, bool], ...] = (
    ("WITH gone AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM gone;", False),
    ("SET default_transaction_read_only = off;", False),
)


@dataclasses.dataclass
class CheckResult:
    sql: str
    expect_allowed: bool
    allowed: bool
    detail: str          # row count, or the error the client got

    @property
    def passed(self) -> bool:
        return self.allowed == self.expect_allowed


def run_checks(host: str, port: int, user: str, password: str, dbname: str,
               checks=GUIDE_CHECKS + EXTRA_CHECKS, psql_path: str | None = None) -> list[CheckResult]:
    try:
        return _run_psycopg(host, port, user, password, dbname, checks)
    except ImportError:  # no psycopg (e.g. the Docker image): the psql bundled with pgserver
        return [_run_psql(psql_path or "psql", host, port, user, password, dbname, sql, ok) for sql, ok in checks]


def _run_psycopg(host, port, user, password, dbname, checks) -> list[CheckResult]:
    import psycopg

    out = []
    with psycopg.connect(host=host, port=port, user=user, password=password, dbname=dbname,
                         autocommit=True, connect_timeout=10, sslmode="disable") as conn:
        for sql, expect in checks:
            try:
                with conn.cursor() as cur:
                    cur.execute(sql)
                    rows = cur.fetchall() if cur.description else []
                out.append(CheckResult(sql, expect, True, f"{len(rows)} row{'s' * (len(rows) != 1)}"))
            except psycopg.Error as exc:
                diag = exc.diag
                msg = (diag.message_primary or str(exc)).strip()
                out.append(CheckResult(sql, expect, False, f"[{diag.sqlstate}] {msg}"))
    return out


def _run_psql(psql, host, port, user, password, dbname, sql, expect) -> CheckResult:
    env = {**os.environ, "PGPASSWORD": password, "PGSSLMODE": "disable", "PGCONNECT_TIMEOUT": "10"}
    r = subprocess.run([psql, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose",
                        "-h", host, "-p", str(port), "-U", user, "-d", dbname, "-c", sql],
                       capture_output=True, text=True, env=env, timeout=60)
    if r.returncode == 0:
        n = len([line for line in r.stdout.splitlines() if line.strip()])
        return CheckResult(sql, expect, True, f"{n} row{'s' * (n != 1)}")
    # verbose errors read "...ERROR:  25006: <message>"
    first = next((line for line in r.stderr.splitlines() if "ERROR:" in line), r.stderr.strip())
    m = re.search(r"ERROR:\s+([0-9A-Z]{5}):\s*(.*)", first)
    detail = f"[{m.group(1)}] {m.group(2).strip()}" if m else " ".join(first.split())
    return CheckResult(sql, expect, False, detail)
