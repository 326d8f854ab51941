"""Before/after for an optimisation: two sandbox-db-proxy processes from two source trees, the
same servers, interleaved rounds (A B A B ...), medians (issue 6: "measure before and after
each change").

    .venv/bin/python benches/ab_proxy.py --before /tmp/before-tree/python [--rounds 5] [--seconds 4]
        [--only pgbench,sysbench]

`--before` is a directory holding another copy of the `sandbox_db_proxy` package (for example
`git archive <commit> python | tar -x -C /tmp/before-tree`, plus the built `_native` module);
"after" is this checkout. Reports, per workload, the median TPS of each and the median CPU
time per query of each proxy process (all threads, /proc), and after ÷ before.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import peers  # noqa: E402
from run import pgbench, sysbench  # noqa: E402
from servers import MariaDbServer, PgServer, free_port, tmp_root  # noqa: E402


def measure(rounds: int, targets: dict, workloads: list, runner) -> dict:
    out: dict = {}
    for r in range(rounds):
        for w in workloads:
            for name, peer in targets.items():
                before = peer.cpu_seconds()
                rate, n = runner(peer, w)
                used = peer.cpu_seconds() - before
                row = out.setdefault(w[0], {}).setdefault(name, {"rate": [], "cpu_us": []})
                row["rate"].append(rate)
                row["cpu_us"].append(used / max(n, 1) * 1e6)
            print(f"  round {r + 1} {w[0]}: " + ", ".join(
                f"{n} {out[w[0]][n]['rate'][-1]:.0f}/s {out[w[0]][n]['cpu_us'][-1]:.1f} us/q" for n in targets),
                flush=True)
    return out


def table(title: str, res: dict) -> list[str]:
    lines = [f"**{title}** — median of interleaved rounds", "",
             "| workload | before /s | after /s | after ÷ before | before CPU µs/q | after CPU µs/q |",
             "|---|---|---|---|---|---|"]
    for key, by in res.items():
        b, a = by["before"], by["after"]
        ratio = statistics.median(x / y for x, y in zip(a["rate"], b["rate"]))
        lines.append(f"| {key} | {statistics.median(b['rate']):.0f} | {statistics.median(a['rate']):.0f} | "
                     f"{ratio:.2f}× | {statistics.median(b['cpu_us']):.1f} | {statistics.median(a['cpu_us']):.1f} |")
    return lines + [""]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, help="directory containing the 'before' sandbox_db_proxy package")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--only", default="pgbench,sysbench")
    ap.add_argument("--out", default=str(HERE / "results" / "before-after.md"))
    args = ap.parse_args()
    only = set(args.only.split(","))
    lines: list[str] = []
    if "pgbench" in only:
        pg = PgServer(root=tmp_root("sdp-ab-pg-"), extra_conf="max_connections=300\n").start()
        started = []
        try:
            pg.psql("CREATE DATABASE bench")
            env = dict(os.environ, PGPASSWORD=pg.password)
            subprocess.run(["pgbench", "-i", "-q", "-s", "10", "-h", pg.host, "-p", str(pg.port), "-U", "postgres",
                            "bench"], check=True, env=env, capture_output=True)
            targets = {}
            for name, path in (("before", args.before), ("after", None)):
                port = free_port()
                targets[name] = peers.start_proxy([{"name": "pg", "type": "postgres", "address": pg.host,
                                                    "port": pg.port, "username": "postgres", "password": pg.password,
                                                    "database": "bench", "listen": f"127.0.0.1:{port}"}],
                                                  python_path=path, name=name)
                started.append(targets[name])
            for t in targets.values():
                for mode in ("simple", "extended", "prepared"):
                    pgbench(t.host, t.port, mode, 8, 2, 1, env)
            workloads = [("simple c=8", "simple", 8, 2), ("extended c=8", "extended", 8, 2),
                         ("prepared c=8", "prepared", 8, 2), ("simple c=1", "simple", 1, 1)]
            res = measure(args.rounds, targets, workloads,
                          lambda p, w: pgbench(p.host, p.port, w[1], w[2], w[3], args.seconds, env))
            lines += table("PostgreSQL `pgbench -S` through the proxy, before vs. after", res)
        finally:
            for p in started:
                p.stop()
            pg.stop()
    if "sysbench" in only:
        db = MariaDbServer(root=tmp_root("sdp-ab-mdb-")).start()
        started = []
        try:
            db.sql("CREATE DATABASE sbtest")
            subprocess.run(["sysbench", "oltp_read_only", "--db-driver=mysql", f"--mysql-host={db.host}",
                            f"--mysql-port={db.port}", "--mysql-user=app", "--mysql-password=secret",
                            "--mysql-db=sbtest", "--tables=4", "--table-size=10000", "prepare"],
                           check=True, capture_output=True)
            targets = {}
            for name, path in (("before", args.before), ("after", None)):
                port = free_port()
                targets[name] = peers.start_proxy([{"name": "my", "type": "mysql", "address": db.host,
                                                    "port": db.port, "username": "app", "password": "secret",
                                                    "database": "sbtest", "listen": f"127.0.0.1:{port}"}],
                                                  python_path=path, name=name)
                started.append(targets[name])
            for t in targets.values():
                for test in ("oltp_point_select", "oltp_read_only"):
                    sysbench(test, t.host, t.port, 1)
            workloads = [("oltp_point_select",), ("oltp_read_only",)]
            res = measure(args.rounds, targets, workloads,
                          lambda p, w: sysbench(w[0], p.host, p.port, args.seconds))
            lines += table("MariaDB sysbench (8 threads) through the proxy, before vs. after", res)
        finally:
            for p in started:
                p.stop()
            db.stop()
    text = "\n".join(lines)
    Path(args.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
