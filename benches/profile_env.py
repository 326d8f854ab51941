"""A long-running benchmark environment for profiling (issue 6: "profile with py-spy, perf").

    .venv/bin/python benches/profile_env.py [--pg] [--mysql] [--state /tmp/sdp-profile.json]

Starts the same servers and proxy configuration as `benches/run.py` (PostgreSQL with the
pgbench `bench` database at scale 10, MariaDB with the sysbench `sbtest` tables, one
sandbox-db-proxy with classification and audit on), writes their ports and the proxy's pid to
the state file, and waits for Ctrl-C / SIGTERM, then stops everything. Meanwhile:

    pgbench -n -S -M simple -c 8 -j 2 -T 10 -h 127.0.0.1 -p <pg_proxy_port> -U postgres bench
    py-spy record -r 250 -o /tmp/pg.svg --pid <proxy_pid> --duration 8
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import peers  # noqa: E402
from servers import MariaDbServer, PgServer, free_port, tmp_root  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pg", action="store_true")
    ap.add_argument("--mysql", action="store_true")
    ap.add_argument("--state", default="/tmp/sdp-profile.json")
    args = ap.parse_args()
    if not (args.pg or args.mysql):
        args.pg = args.mysql = True
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    servers: list = []
    started: list[peers.Peer] = []
    backends: list[dict] = []
    state: dict = {}
    try:
        if args.pg:
            pg = PgServer(root=tmp_root("sdp-prof-pg-"), extra_conf="max_connections=1200\n").start()
            servers.append(pg)
            pg.psql("CREATE DATABASE bench")
            env = dict(os.environ, PGPASSWORD=pg.password)
            subprocess.run(["pgbench", "-i", "-q", "-s", "10", "-h", pg.host, "-p", str(pg.port), "-U",
                            "postgres", "bench"], check=True, env=env, capture_output=True)
            port = free_port()
            backends.append({"name": "pg", "type": "postgres", "address": pg.host, "port": pg.port,
                             "username": "postgres", "password": pg.password, "database": "bench",
                             "listen": f"127.0.0.1:{port}"})
            state.update(pg_port=pg.port, pg_proxy_port=port, pg_password=pg.password)
        if args.mysql:
            db = MariaDbServer(root=tmp_root("sdp-prof-mdb-")).start()
            servers.append(db)
            db.sql("CREATE DATABASE sbtest")
            subprocess.run(["sysbench", "oltp_read_only", "--db-driver=mysql", f"--mysql-host={db.host}",
                            f"--mysql-port={db.port}", "--mysql-user=app", "--mysql-password=secret",
                            "--mysql-db=sbtest", "--tables=4", "--table-size=10000", "prepare"],
                           check=True, capture_output=True)
            port = free_port()
            backends.append({"name": "my", "type": "mysql", "address": db.host, "port": db.port,
                             "username": "app", "password": "secret", "database": "sbtest",
                             "listen": f"127.0.0.1:{port}"})
            state.update(mysql_port=db.port, mysql_proxy_port=port)
        proxy = peers.start_proxy(backends)
        started.append(proxy)
        state.update(proxy_pid=proxy.pid, admin_port=proxy.extra["admin_port"], workdir=str(proxy.workdir))
        Path(args.state).write_text(json.dumps(state, indent=2))
        print(json.dumps(state, indent=2), flush=True)
        stop.wait()
    finally:
        for p in started:
            p.stop()
        for s in servers:
            s.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
