"""Real PostgreSQL client programs through the relay: psql, pgbench -S (simple, extended,
prepared), COPY TO STDOUT allowed, COPY FROM blocked."""

from __future__ import annotations

import os
import subprocess

import psycopg
import pytest

from test_pg_helpers import AGENT, AGENT_PW, proxy, relay_db, start_proxy, unique  # noqa: F401

pytestmark = pytest.mark.pg


def psql(proxy, db, *args, input=None, check=False):
    env = dict(os.environ, PGPASSWORD=AGENT_PW, PGSSLMODE="disable", PGCONNECT_TIMEOUT="10")
    return subprocess.run(["psql", "-X", "-h", "127.0.0.1", "-p", str(proxy.port), "-U", AGENT, "-d", db,
                           "-v", "ON_ERROR_STOP=0", *args], input=input, env=env, text=True,
                          capture_output=True, timeout=60, check=check)


def test_psql_select_and_blocked_write(proxy, pg_server, relay_db):
    before = pg_server.checksum(relay_db)
    r = psql(proxy, relay_db, "-A", "-t", "-c", "SELECT owner FROM accounts WHERE id = 9")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "owner9"
    r = psql(proxy, relay_db, "-c", "DROP TABLE accounts")
    assert r.returncode != 0
    assert "ERROR" in r.stderr and "DETAIL:  Blocked by sandbox-db-proxy" in r.stderr
    assert pg_server.checksum(relay_db) == before


def test_psql_script_transaction_consistency(proxy, pg_server, relay_db):
    """BEGIN; SELECT; DELETE (blocked); SELECT (fails: aborted); ROLLBACK; SELECT works."""
    before = pg_server.checksum(relay_db)
    script = ("BEGIN;\nSELECT 1 AS one;\nDELETE FROM notes;\nSELECT 2 AS two;\nROLLBACK;\n"
              "SELECT count(*) AS n FROM notes;\n")
    r = psql(proxy, relay_db, "-A", "-t", input=script)
    assert "current transaction is aborted" in r.stderr, r.stderr
    lines = [l for l in r.stdout.splitlines() if l.strip()]
    assert lines == ["BEGIN", "1", "ROLLBACK", "3"], r.stdout
    assert pg_server.checksum(relay_db) == before


def test_copy_to_stdout_allowed_copy_from_blocked(proxy, pg_server, relay_db):
    before = pg_server.checksum(relay_db)
    r = psql(proxy, relay_db, "-c", "COPY (SELECT id, owner FROM accounts WHERE id <= 3 ORDER BY id) TO STDOUT")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["1\towner1", "2\towner2", "3\towner3"]
    r = psql(proxy, relay_db, "-c", "COPY notes (body) FROM STDIN", input="x\ny\n\\.\n")
    assert r.returncode != 0 and "ERROR" in r.stderr
    with psycopg.connect(proxy.dsn(), autocommit=True) as c:
        with pytest.raises(psycopg.Error) as ei:
            with c.cursor().copy("COPY notes (body) FROM STDIN") as cp:
                cp.write_row(("evil",))
        assert ei.value.sqlstate == "25006"
        with c.cursor().copy("COPY notes TO STDOUT") as cp:
            assert len(list(cp.rows())) == 3
        assert c.execute("SELECT 1").fetchone() == (1,)
    assert pg_server.checksum(relay_db) == before


@pytest.fixture(scope="module")
def bench(pg_server):
    db = unique("sdp_pgbench")
    pg_server.psql(f"CREATE DATABASE {db}")
    subprocess.run(["pgbench", "-i", "-s", "1", "-q", "-h", pg_server.socket_dir, "-p", str(pg_server.port),
                    "-U", "postgres", db], check=True, capture_output=True)
    with start_proxy(pg_server, db, "sdp-pgb-") as h:
        yield h, db


@pytest.mark.parametrize("mode", ["simple", "extended", "prepared"])
def test_pgbench_select_only(bench, pg_server, mode):
    h, db = bench
    before = pg_server.checksum(db)
    env = dict(os.environ, PGPASSWORD=AGENT_PW, PGSSLMODE="disable")
    r = subprocess.run(["pgbench", "-n", "-S", "-M", mode, "-t", "50", "-c", "2", "-j", "1",
                        "-h", "127.0.0.1", "-p", str(h.port), "-U", AGENT, db],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "number of transactions actually processed: 100/100" in r.stdout
    # The write part of the default TPC-B script is refused through the proxy.
    r = subprocess.run(["pgbench", "-n", "-M", mode, "-t", "1", "-c", "1",
                        "-h", "127.0.0.1", "-p", str(h.port), "-U", AGENT, db],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and ("25006" in r.stderr or "read-only" in r.stderr.lower()
                                  or "blocked" in r.stderr.lower()), r.stderr
    assert pg_server.checksum(db) == before
