"""The benchmark suite (issue 6): one command, a Markdown table and a JSON file.

    ./dev.sh bench [--rounds 3] [--seconds 5] [--only pgbench,sysbench,classifier,memory,agent]

Every figure is a ratio against a baseline measured in the same round (these machines are
shared and noisy; absolute numbers drift by 20% and more): rounds are interleaved
(A B C A B C ...) and the median over rounds is reported. Proxy CPU time per forwarded query
comes from /proc (utime+stime), which is steadier than TPS on a shared box.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import agent_workload  # noqa: E402
import memory  # noqa: E402
import peers  # noqa: E402
from servers import MariaDbServer, PgServer, free_port, tmp_root  # noqa: E402

RESULTS = HERE / "results"


def machine() -> dict:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_mib": mem, "kernel": platform.release(),
            "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


# --------------------------------------------------------------------------- pgbench
def pgbench(host: str, port: int, mode: str, clients: int, threads: int, seconds: int, env: dict) -> float:
    out = subprocess.run(["pgbench", "-n", "-S", "-M", mode, "-c", str(clients), "-j", str(threads),
                          "-T", str(seconds), "-h", host, "-p", str(port), "-U", "postgres", "bench"],
                         capture_output=True, text=True, env=env)
    m = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out.stdout)
    if not m or out.returncode != 0:
        raise RuntimeError(f"pgbench failed against {host}:{port}: {out.stdout[-500:]} {out.stderr[-1500:]}")
    return float(m.group(1))


def bench_agent(pg: PgServer, proxy: peers.Peer, rounds: int) -> dict:
    """Agent-like mixed workload, direct vs. proxy interleaved; cache hit rate from /metrics."""
    stmts = agent_workload.make_statements(n=3000, distinct=300, write_share=0.02)
    direct_dsn = pg.dsn("bench")
    proxy_dsn = f"host={proxy.host} port={proxy.port} dbname=bench user=postgres password={pg.password}"
    before = agent_workload.classification_counts(proxy.extra["admin_port"])
    per_round = []
    blocked = 0
    for r in range(rounds):
        d, _, _ = agent_workload.run(direct_dsn, stmts, skip_writes=True)
        p, _, blocked = agent_workload.run(proxy_dsn, stmts, skip_writes=False)
        per_round.append(p / d)
        print(f"  round {r + 1} agent workload: direct {d:.0f}/s, proxy {p:.0f}/s", flush=True)
    after = agent_workload.classification_counts(proxy.extra["admin_port"])
    paths = {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)}
    total = sum(paths.values()) or 1
    return {"ratio_vs_direct": statistics.median(per_round), "blocked_writes_per_round": blocked,
            "statements_per_round": len(stmts), "classification_paths": paths,
            "cache_hit_rate": paths.get("cache", 0) / total,
            "deep_per_1000": 1000 * paths.get("deep", 0) / total}


def bench_pgbench(rounds: int, seconds: int, only: set[str] = frozenset()) -> dict:
    pg = PgServer(root=tmp_root("sdp-bench-pg-"), extra_conf="max_connections=1200\n").start()
    started: list[peers.Peer] = []
    try:
        pg.psql("CREATE DATABASE bench")
        env = dict(os.environ, PGPASSWORD=pg.password)
        subprocess.run(["pgbench", "-i", "-q", "-s", "10", "-h", pg.host, "-p", str(pg.port), "-U", "postgres", "bench"],
                       check=True, env=env, capture_output=True)
        proxy_port = free_port()
        proxy = peers.start_proxy([{"name": "pg", "type": "postgres", "address": pg.host, "port": pg.port,
                                    "username": "postgres", "password": pg.password, "database": "bench",
                                    "listen": f"127.0.0.1:{proxy_port}"}])
        started.append(proxy)
        bouncer = peers.start_pgbouncer(pg.host, pg.port, "postgres", pg.password, "bench")
        started.append(bouncer)
        haproxy = peers.start_haproxy(pg.host, pg.port)
        started.append(haproxy)
        targets = {"direct": (pg.host, pg.port, None), "sandbox-db-proxy": (proxy.host, proxy.port, proxy),
                   "pgbouncer": (bouncer.host, bouncer.port, bouncer), "haproxy": (haproxy.host, haproxy.port, haproxy)}
        workloads = [("simple", 8, 2), ("extended", 8, 2), ("prepared", 8, 2), ("simple", 1, 1)]
        raw: dict[str, dict[str, list[float]]] = {}
        cpu: dict[str, dict[str, list[float]]] = {}
        # warm-up: connections, caches, the backend's shared buffers
        for name, (h, p, _) in targets.items():
            pgbench(h, p, "simple", 8, 2, 2, env)
        paths_before = agent_workload.classification_counts(proxy.extra["admin_port"])
        for r in range(rounds):
            for mode, c, j in workloads:
                key = f"{mode} c={c}"
                for name, (h, p, peer) in targets.items():
                    before = peer.cpu_seconds() if peer else 0.0
                    tps = pgbench(h, p, mode, c, j, seconds, env)
                    used = (peer.cpu_seconds() - before) if peer else 0.0
                    raw.setdefault(key, {}).setdefault(name, []).append(tps)
                    if peer:
                        cpu.setdefault(key, {}).setdefault(name, []).append(used / max(tps * seconds, 1) * 1e6)
                print(f"  round {r + 1} {key}: " + ", ".join(f"{n} {raw[key][n][-1]:.0f}" for n in targets), flush=True)
        paths = paths_delta(proxy, paths_before)
        result = {"raw_tps": raw, "cpu_us_per_query": cpu, "classification_paths": paths,
                  "ratios": ratios(raw, base="direct"), "vs_pgbouncer": ratios(raw, base="pgbouncer")}
        if "agent" in only:
            result["agent"] = bench_agent(pg, proxy, rounds)
        if "memory" in only:
            print("  memory: 1000 idle connections", flush=True)
            result["memory"] = {"sandbox-db-proxy": memory.idle_connections_rss(proxy, "postgres", pg.password, "bench"),
                                "pgbouncer": memory.idle_connections_rss(bouncer, "postgres", pg.password, "bench")}
        return result
    finally:
        for p in started:
            p.stop()
        pg.stop()


def paths_delta(proxy: peers.Peer, before: dict) -> dict:
    """Classification counts per path (cache/fast/deep) since `before`, and deep calls per 1,000."""
    after = agent_workload.classification_counts(proxy.extra["admin_port"])
    paths = {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)}
    total = sum(paths.values()) or 1
    return {"counts": paths, "deep_per_1000": 1000 * paths.get("deep", 0) / total}


def ratios(raw: dict, base: str) -> dict:
    """Per workload and target: median over rounds of (target TPS / base TPS in the same round)."""
    out = {}
    for key, by_target in raw.items():
        out[key] = {}
        for name, values in by_target.items():
            per_round = [v / b for v, b in zip(values, by_target[base]) if b]
            out[key][name] = statistics.median(per_round) if per_round else None
    return out


# --------------------------------------------------------------------------- sysbench
def sysbench(test: str, host: str, port: int, seconds: int, threads: int = 8) -> float:
    out = subprocess.run(["sysbench", test, "--db-driver=mysql", f"--mysql-host={host}", f"--mysql-port={port}",
                          "--mysql-user=app", "--mysql-password=secret", "--mysql-db=sbtest", "--tables=4",
                          "--table-size=10000", f"--threads={threads}", f"--time={seconds}", "--db-ps-mode=auto",
                          "--mysql-ssl=off", "run"], capture_output=True, text=True)
    m = re.search(r"queries:\s+\d+\s+\(([0-9.]+) per sec", out.stdout)
    if not m or out.returncode != 0:
        raise RuntimeError(f"sysbench failed against {host}:{port}: {out.stdout[-800:]} {out.stderr[-800:]}")
    return float(m.group(1))


def bench_sysbench(rounds: int, seconds: int) -> dict:
    db = MariaDbServer(root=tmp_root("sdp-bench-mdb-")).start()
    started: list[peers.Peer] = []
    try:
        db.sql("CREATE DATABASE sbtest")
        subprocess.run(["sysbench", "oltp_read_only", "--db-driver=mysql", f"--mysql-host={db.host}",
                        f"--mysql-port={db.port}", "--mysql-user=app", "--mysql-password=secret", "--mysql-db=sbtest",
                        "--tables=4", "--table-size=10000", "prepare"], check=True, capture_output=True)
        proxy_port = free_port()
        proxy = peers.start_proxy([{"name": "my", "type": "mysql", "address": db.host, "port": db.port,
                                    "username": "app", "password": "secret", "database": "sbtest",
                                    "listen": f"127.0.0.1:{proxy_port}"}])
        started.append(proxy)
        haproxy = peers.start_haproxy(db.host, db.port)
        started.append(haproxy)
        targets = {"direct": (db.host, db.port, None), "sandbox-db-proxy": (proxy.host, proxy.port, proxy),
                   "haproxy": (haproxy.host, haproxy.port, haproxy)}
        raw: dict[str, dict[str, list[float]]] = {}
        cpu: dict[str, dict[str, list[float]]] = {}
        for name, (h, p, _) in targets.items():
            sysbench("oltp_point_select", h, p, 2)
        paths_before = agent_workload.classification_counts(proxy.extra["admin_port"])
        for r in range(rounds):
            for test in ("oltp_point_select", "oltp_read_only"):
                for name, (h, p, peer) in targets.items():
                    before = peer.cpu_seconds() if peer else 0.0
                    qps = sysbench(test, h, p, seconds)
                    used = (peer.cpu_seconds() - before) if peer else 0.0
                    raw.setdefault(test, {}).setdefault(name, []).append(qps)
                    if peer:
                        cpu.setdefault(test, {}).setdefault(name, []).append(used / max(qps * seconds, 1) * 1e6)
                print(f"  round {r + 1} {test}: " + ", ".join(f"{n} {raw[test][n][-1]:.0f}" for n in targets), flush=True)
        return {"raw_qps": raw, "cpu_us_per_query": cpu, "classification_paths": paths_delta(proxy, paths_before),
                "ratios": ratios(raw, base="direct"),
                "vs_haproxy": ratios(raw, base="haproxy")}
    finally:
        for p in started:
            p.stop()
        db.stop()


# --------------------------------------------------------------------------- classifier
def bench_classifier() -> dict:
    out = subprocess.run([sys.executable, str(HERE / "bench_classifier.py"), "--json"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    path = RESULTS / "classifier.json"
    return json.loads(path.read_text()) if path.exists() else {"stdout": out.stdout}


# --------------------------------------------------------------------------- report
def fmt(x) -> str:
    return "–" if x is None else f"{x:.2f}×"


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_mib']} MiB, kernel {m['kernel']}, "
             f"Python {m['python']}; run {m['date']}; median of {result['rounds']} interleaved rounds of "
             f"{result['seconds']} s.", ""]
    if "pgbench" in result:
        pb = result["pgbench"]
        lines += ["**PostgreSQL, `pgbench -S` (scale 10)** — TPS ratio vs. direct in the same round; proxy "
                  "CPU µs/query from /proc", "",
                  "| workload | direct TPS | sandbox-db-proxy | PgBouncer | HAProxy TCP | proxy ÷ PgBouncer | proxy CPU µs/q | PgBouncer CPU µs/q | HAProxy CPU µs/q |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for key, r in pb["ratios"].items():
            cpu = pb["cpu_us_per_query"].get(key, {})
            med = lambda n: statistics.median(cpu[n]) if n in cpu else None  # noqa: E731
            lines.append(f"| {key} | {statistics.median(pb['raw_tps'][key]['direct']):.0f} | "
                         f"{fmt(r.get('sandbox-db-proxy'))} | {fmt(r.get('pgbouncer'))} | {fmt(r.get('haproxy'))} | "
                         f"{fmt(pb['vs_pgbouncer'][key].get('sandbox-db-proxy'))} | "
                         + " | ".join("–" if med(n) is None else f"{med(n):.1f}"
                                      for n in ("sandbox-db-proxy", "pgbouncer", "haproxy")) + " |")
        lines.append(f"Deep-path calls after warm-up: {pb['classification_paths']['deep_per_1000']:.2f} per 1,000 "
                     f"statements (paths {pb['classification_paths']['counts']}).")
        lines.append("")
        if "agent" in pb:
            a = pb["agent"]
            lines += [f"**Agent-like workload** ({a['statements_per_round']} statements: 300 distinct analytic SELECTs "
                      f"with inline literals, skewed repeats, 2% writes that are blocked): proxy ÷ direct "
                      f"{fmt(a['ratio_vs_direct'])}; verdict-cache hit rate {a['cache_hit_rate']:.1%}; deep-path calls "
                      f"{a['deep_per_1000']:.1f} per 1,000 statements; paths {a['classification_paths']}.", ""]
        if "memory" in pb:
            mm = pb["memory"]
            lines += ["**Memory, 1,000 idle client connections** (each with its backend connection): "
                      + "; ".join(f"{n} {v['bytes_per_connection'] / 1024:.1f} KiB per connection "
                                  f"(RSS {v['rss_before_bytes'] / 2**20:.0f} → {v['rss_after_bytes'] / 2**20:.0f} MiB)"
                                  for n, v in mm.items()), ""]
    if "sysbench" in result:
        sb = result["sysbench"]
        lines += ["**MariaDB 10.11, sysbench (8 threads)** — QPS ratio vs. direct in the same round", "",
                  "| test | direct QPS | sandbox-db-proxy | HAProxy TCP | proxy ÷ HAProxy | proxy CPU µs/q |",
                  "|---|---|---|---|---|---|"]
        for key, r in sb["ratios"].items():
            cpu = sb["cpu_us_per_query"].get(key, {}).get("sandbox-db-proxy")
            lines.append(f"| {key} | {statistics.median(sb['raw_qps'][key]['direct']):.0f} | "
                         f"{fmt(r.get('sandbox-db-proxy'))} | {fmt(r.get('haproxy'))} | "
                         f"{fmt(sb['vs_haproxy'][key].get('sandbox-db-proxy'))} | "
                         f"{'–' if not cpu else f'{statistics.median(cpu):.1f}'} |")
        lines.append(f"Deep-path calls after warm-up: {sb['classification_paths']['deep_per_1000']:.2f} per 1,000 "
                     f"statements (paths {sb['classification_paths']['counts']}).")
        lines.append("")
    if "classifier_markdown" in result:
        lines += [result["classifier_markdown"], ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--only", default="classifier,pgbench,agent,memory,sysbench")
    args = ap.parse_args()
    only = set(args.only.split(","))
    RESULTS.mkdir(exist_ok=True)
    result: dict = {"machine": machine(), "rounds": args.rounds, "seconds": args.seconds}
    if "classifier" in only:
        print("== classifier micro-benchmarks", flush=True)
        result["classifier"] = bench_classifier()
        md = RESULTS / "classifier.md"
        if md.exists():
            result["classifier_markdown"] = md.read_text()
    if "pgbench" in only:
        print("== pgbench", flush=True)
        result["pgbench"] = bench_pgbench(args.rounds, args.seconds, only)
    if "sysbench" in only:
        print("== sysbench", flush=True)
        result["sysbench"] = bench_sysbench(args.rounds, args.seconds)
    (RESULTS / "latest.json").write_text(json.dumps(result, indent=2))
    text = markdown(result)
    (RESULTS / "latest.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
