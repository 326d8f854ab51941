"""sysbench 1.0 (libmysqlclient/libmariadb, server-side prepared statements by default) through
the proxy: `oltp_point_select` and `oltp_read_only` finish without errors, the database is
unchanged, and `oltp_write_only` gets nothing past the proxy. Small runs (--time=3); the
tables are prepared directly on the server, never through the proxy. No timing assertions
(throughput comparisons live in benches/).
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from test_mysql_helpers import start_proxy, unique

pytestmark = [pytest.mark.mariadb,
              pytest.mark.skipif(shutil.which("sysbench") is None, reason="sysbench not installed")]

TABLE_SIZE = 2000


@pytest.fixture(scope="module")
def sbdb(mariadb_server):
    db = unique("sdp_mysb")
    mariadb_server.sql(f"CREATE DATABASE `{db}`")
    subprocess.run(["sysbench", "oltp_read_only", f"--mysql-socket={mariadb_server.socket}", "--mysql-user=root",
                    f"--mysql-db={db}", "--tables=2", f"--table-size={TABLE_SIZE}", "prepare"],
                   check=True, capture_output=True, text=True, timeout=120)
    return db


@pytest.fixture(scope="module")
def proxy(mariadb_server, sbdb):
    with start_proxy(mariadb_server, sbdb) as p:
        yield p


def sysbench(test: str, port: int, db: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sysbench", test, "--mysql-host=127.0.0.1", f"--mysql-port={port}",
                           "--mysql-user=app", "--mysql-password=secret", f"--mysql-db={db}",
                           "--mysql-ssl=off", "--tables=2", f"--table-size={TABLE_SIZE}", "--threads=2",
                           "--time=3", "--report-interval=0", *extra, "run"],
                          capture_output=True, text=True, timeout=120)


def stats(out: str) -> dict[str, int]:
    def num(label):
        m = re.search(rf"{label}:\s+(\d+)", out)
        return int(m.group(1)) if m else -1
    return {"queries": num("queries"), "errors": num("ignored errors"), "reconnects": num("reconnects"),
            "transactions": num("transactions")}


@pytest.mark.parametrize("test", ["oltp_point_select", "oltp_read_only"])
@pytest.mark.parametrize("ps_mode", ["auto", "disable"])
def test_read_workloads_pass_through(proxy, mariadb_server, sbdb, test, ps_mode):
    before = mariadb_server.checksum(sbdb)
    r = sysbench(test, proxy.port, sbdb, f"--db-ps-mode={ps_mode}")
    assert r.returncode == 0, r.stdout + r.stderr
    s = stats(r.stdout)
    assert s["queries"] > 100 and s["errors"] == 0 and s["reconnects"] == 0, r.stdout
    assert mariadb_server.checksum(sbdb) == before
    assert not [x for x in proxy.events("statement") if x.get("verdict") == "BLOCKED"]


def test_write_workload_is_stopped(proxy, mariadb_server, sbdb):
    before = mariadb_server.checksum(sbdb)
    r = sysbench("oltp_write_only", proxy.port, sbdb, "--time=1")
    assert r.returncode != 0                       # sysbench aborts on the first refused write
    assert "1792" in r.stdout + r.stderr, r.stdout + r.stderr
    assert mariadb_server.checksum(sbdb) == before
    assert [x for x in proxy.events("statement") if x.get("verdict") == "BLOCKED"]
