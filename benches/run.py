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
import resource
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
import proxy_metrics  # noqa: E402
from servers import MariaDbServer, PgServer, free_port, tmp_root  # noqa: E402

RESULTS = HERE / "results"
# The same proxy with the native relay switched off (every session relayed by the Python
# layer, as before issue 6's data plane): the before/after in the same run.
PYTHON_RELAY = "performance:\n  native_relay: false\n"
ONE_THREAD = "performance:\n  io_threads: 1\n"


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
def pgbench(host: str, port: int, mode: str, clients: int, threads: int, seconds: int, env: dict) -> tuple[float, int]:
    """(TPS without connection time, transactions processed)."""
    out = subprocess.run(["pgbench", "-n", "-S", "-M", mode, "-c", str(clients), "-j", str(threads),
                          "-T", str(seconds), "-h", host, "-p", str(port), "-U", "postgres", "bench"],
                         capture_output=True, text=True, env=env)
    m = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out.stdout)
    n = re.search(r"number of transactions actually processed: (\d+)", out.stdout)
    if not m or not n or out.returncode != 0:
        raise RuntimeError(f"pgbench failed against {host}:{port}: {out.stdout[-500:]} {out.stderr[-1500:]}")
    return float(m.group(1)), int(n.group(1))


def bench_agent(pg: PgServer, proxy: peers.Peer, rounds: int) -> dict:
    """Agent-like mixed workload, direct vs. proxy interleaved; cache hit rate from /metrics,
    per round (round 1 meets a cold cache for these texts, later rounds a warm one)."""
    stmts = agent_workload.make_statements(n=3000, distinct=300, write_share=0.02)
    direct_dsn = pg.dsn("bench")
    proxy_dsn = f"host={proxy.host} port={proxy.port} dbname=bench user=postgres password={pg.password}"
    admin = proxy.extra["admin_port"]
    per_round, rounds_paths = [], []
    blocked = 0
    for r in range(rounds):
        d, _, _ = agent_workload.run(direct_dsn, stmts, skip_writes=True)
        before = proxy_metrics.scrape(admin)
        p, _, blocked = agent_workload.run(proxy_dsn, stmts, skip_writes=False)
        paths = proxy_metrics.delta(before, proxy_metrics.scrape(admin))
        total = sum(paths["counts"].values()) or 1
        paths["cache_hit_rate"] = paths["counts"].get("cache", 0) / total
        rounds_paths.append(paths)
        per_round.append(p / d)
        print(f"  round {r + 1} agent workload: direct {d:.0f}/s, proxy {p:.0f}/s, cache hit rate "
              f"{paths['cache_hit_rate']:.1%}, deep {paths['deep']}", flush=True)
    counts: dict[str, int] = {}
    for rp in rounds_paths:
        for k, v in rp["counts"].items():
            counts[k] = counts.get(k, 0) + v
    total = sum(counts.values()) or 1
    return {"ratio_vs_direct": statistics.median(per_round), "blocked_writes_per_round": blocked,
            "statements_per_round": len(stmts), "classification_paths": counts, "rounds": rounds_paths,
            "cache_hit_rate": counts.get("cache", 0) / total,
            "cache_hit_rate_first_round": rounds_paths[0]["cache_hit_rate"] if rounds_paths else None,
            "deep_per_1000": 1000 * counts.get("deep", 0) / total}


def bench_pgbench(rounds: int, seconds: int, only: set[str] = frozenset()) -> dict:
    """pgbench rounds (when "pgbench" is in `only`), then the agent workload and the memory
    test against the same servers (when "agent" / "memory" are)."""
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
        pyrelay = peers.start_proxy([{"name": "pg", "type": "postgres", "address": pg.host, "port": pg.port,
                                      "username": "postgres", "password": pg.password, "database": "bench",
                                      "listen": f"127.0.0.1:{free_port()}"}], PYTHON_RELAY, name="python-relay")
        started.append(pyrelay)
        one = peers.start_proxy([{"name": "pg", "type": "postgres", "address": pg.host, "port": pg.port,
                                  "username": "postgres", "password": pg.password, "database": "bench",
                                  "listen": f"127.0.0.1:{free_port()}"}], ONE_THREAD, name="one-thread")
        started.append(one)
        bouncer = peers.start_pgbouncer(pg.host, pg.port, "postgres", pg.password, "bench")
        started.append(bouncer)
        haproxy = peers.start_haproxy(pg.host, pg.port)
        started.append(haproxy)
        bare = peers.start_bare_forwarder(pg.host, pg.port)
        started.append(bare)
        targets = {"direct": (pg.host, pg.port, None), "sandbox-db-proxy": (proxy.host, proxy.port, proxy),
                   "one-thread": (one.host, one.port, one),
                   "python-relay": (pyrelay.host, pyrelay.port, pyrelay),
                   "pgbouncer": (bouncer.host, bouncer.port, bouncer), "haproxy": (haproxy.host, haproxy.port, haproxy),
                   "uvloop-forwarder": (bare.host, bare.port, bare)}
        workloads = [("simple", 8, 2), ("extended", 8, 2), ("prepared", 8, 2), ("simple", 1, 1)]
        raw: dict[str, dict[str, list[float]]] = {}
        cpu: dict[str, dict[str, list[float]]] = {}
        # warm-up: connections, caches, the backend's shared buffers; every mode once, so the
        # proxy has seen each statement shape before the measured rounds
        for name, (h, p, _) in targets.items():
            for mode in ("simple", "extended", "prepared"):
                pgbench(h, p, mode, 8, 2, 1, env)
        paths_before = proxy_metrics.scrape(proxy.extra["admin_port"])
        user: dict[str, dict[str, list[float]]] = {}
        for r in range(rounds if "pgbench" in only else 0):
            for mode, c, j in workloads:
                key = f"{mode} c={c}"
                for name, (h, p, peer) in rotated(targets, r):
                    # CPU includes the 8 logins (SCRAM) of the run: what a real run costs
                    record_run((raw, cpu, user), key, name, peer,
                               lambda: pgbench(h, p, mode, c, j, seconds, env))
                print(f"  round {r + 1} {key}: " + ", ".join(f"{n} {raw[key][n][-1]:.0f}" for n in targets), flush=True)
        paths = proxy_metrics.delta(paths_before, proxy_metrics.scrape(proxy.extra["admin_port"]))
        print(f"  deep-path classifications after warm-up: {paths['deep']} in {paths['statements']} statements "
              f"({paths['deep_per_1000']:.3f} per 1,000); paths {paths['counts']}", flush=True)
        result = {"raw_tps": raw, "cpu_us_per_query": cpu, "user_cpu_us_per_query": user, "classification_paths": paths,
                  "ratios": ratios(raw, base="direct"), "vs_pgbouncer": ratios(raw, base="pgbouncer"),
                  "vs_haproxy": ratios(raw, base="haproxy"), "rounds_vs_direct": round_ratios(raw, "direct"),
                  "rounds_vs_pgbouncer": round_ratios(raw, "pgbouncer"), "rounds_vs_haproxy": round_ratios(raw, "haproxy")}
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


def record_run(acc: tuple[dict, dict, dict], key: str, name: str, peer: peers.Peer | None, run) -> None:
    """One measured run against one peer: `run()` gives (rate, statements); its rate goes into
    `acc[0]`, the peer's CPU µs per statement into `acc[1]` and the user-space part of it into
    `acc[2]` (from /proc; a direct connection has no peer process)."""
    raw, cpu, user = acc
    before = peer.cpu_split() if peer else (0.0, 0.0)
    rate, n = run()
    after = peer.cpu_split() if peer else (0.0, 0.0)
    raw.setdefault(key, {}).setdefault(name, []).append(rate)
    if peer:
        cpu.setdefault(key, {}).setdefault(name, []).append((sum(after) - sum(before)) / max(n, 1) * 1e6)
        user.setdefault(key, {}).setdefault(name, []).append((after[0] - before[0]) / max(n, 1) * 1e6)


def rotated(targets: dict, r: int) -> list:
    """The targets in round `r`'s order: the list rotated by one place per round, so that no
    peer always runs right after the same neighbour (a checkpoint, a CPU-hungry predecessor
    or a warm cache would otherwise favour one position every round)."""
    items = list(targets.items())
    k = r % len(items) if items else 0
    return items[k:] + items[:k]


def round_ratios(raw: dict, base: str) -> dict:
    """Per workload and target: (target TPS / base TPS) of each round, in round order."""
    return {key: {name: [v / b for v, b in zip(values, by_target[base]) if b] for name, values in by_target.items()}
            for key, by_target in raw.items()}


def ratios(raw: dict, base: str) -> dict:
    """Per workload and target: median over rounds of (target TPS / base TPS in the same round)."""
    return {key: {name: statistics.median(rs) if rs else None for name, rs in by_target.items()}
            for key, by_target in round_ratios(raw, base).items()}


def spread(per_round: list[float] | None, need: float) -> str:
    """How the rounds fell around a target: their range and how many met it. On a shared
    2-core box one round's ratio moves by ±10% and more, so a median alone can mislead."""
    if not per_round:
        return ""
    met = sum(r >= need for r in per_round)
    return f" (rounds {min(per_round):.2f}–{max(per_round):.2f}; {met} of {len(per_round)} ≥ {need:.2f})"


# --------------------------------------------------------------------------- sysbench
def sysbench(test: str, host: str, port: int, seconds: int, threads: int = 8) -> tuple[float, int]:
    """(queries per second, queries run)."""
    out = subprocess.run(["sysbench", test, "--db-driver=mysql", f"--mysql-host={host}", f"--mysql-port={port}",
                          "--mysql-user=app", "--mysql-password=secret", "--mysql-db=sbtest", "--tables=4",
                          "--table-size=10000", f"--threads={threads}", f"--time={seconds}", "--db-ps-mode=auto",
                          "--mysql-ssl=off", "run"], capture_output=True, text=True)
    m = re.search(r"queries:\s+(\d+)\s+\(([0-9.]+) per sec", out.stdout)
    if not m or out.returncode != 0:
        raise RuntimeError(f"sysbench failed against {host}:{port}: {out.stdout[-800:]} {out.stderr[-800:]}")
    return float(m.group(2)), int(m.group(1))


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
        pyrelay = peers.start_proxy([{"name": "my", "type": "mysql", "address": db.host, "port": db.port,
                                      "username": "app", "password": "secret", "database": "sbtest",
                                      "listen": f"127.0.0.1:{free_port()}"}], PYTHON_RELAY, name="python-relay")
        started.append(pyrelay)
        one = peers.start_proxy([{"name": "my", "type": "mysql", "address": db.host, "port": db.port,
                                  "username": "app", "password": "secret", "database": "sbtest",
                                  "listen": f"127.0.0.1:{free_port()}"}], ONE_THREAD, name="one-thread")
        started.append(one)
        haproxy = peers.start_haproxy(db.host, db.port)
        started.append(haproxy)
        bare = peers.start_bare_forwarder(db.host, db.port)
        started.append(bare)
        targets = {"direct": (db.host, db.port, None), "sandbox-db-proxy": (proxy.host, proxy.port, proxy),
                   "one-thread": (one.host, one.port, one),
                   "python-relay": (pyrelay.host, pyrelay.port, pyrelay),
                   "haproxy": (haproxy.host, haproxy.port, haproxy), "uvloop-forwarder": (bare.host, bare.port, bare)}
        raw: dict[str, dict[str, list[float]]] = {}
        cpu: dict[str, dict[str, list[float]]] = {}
        # warm-up: both tests (oltp_read_only adds BEGIN/COMMIT and range queries)
        for name, (h, p, _) in targets.items():
            for test in ("oltp_point_select", "oltp_read_only"):
                sysbench(test, h, p, 1)
        paths_before = proxy_metrics.scrape(proxy.extra["admin_port"])
        user: dict[str, dict[str, list[float]]] = {}
        for r in range(rounds):
            for test in ("oltp_point_select", "oltp_read_only"):
                for name, (h, p, peer) in rotated(targets, r):
                    record_run((raw, cpu, user), test, name, peer,
                               lambda: sysbench(test, h, p, seconds))
                print(f"  round {r + 1} {test}: " + ", ".join(f"{n} {raw[test][n][-1]:.0f}" for n in targets), flush=True)
        paths = proxy_metrics.delta(paths_before, proxy_metrics.scrape(proxy.extra["admin_port"]))
        print(f"  deep-path classifications after warm-up: {paths['deep']} in {paths['statements']} statements "
              f"({paths['deep_per_1000']:.3f} per 1,000); paths {paths['counts']}", flush=True)
        return {"raw_qps": raw, "cpu_us_per_query": cpu, "user_cpu_us_per_query": user, "classification_paths": paths,
                "ratios": ratios(raw, base="direct"), "vs_haproxy": ratios(raw, base="haproxy"),
                "rounds_vs_direct": round_ratios(raw, "direct"), "rounds_vs_haproxy": round_ratios(raw, "haproxy")}
    finally:
        for p in started:
            p.stop()
        db.stop()


# --------------------------------------------------------------------------- classifier
def bench_classifier() -> dict:
    # 1 s per measurement (best pass within it): the 0.4 s default is too easily spoilt by
    # a busy neighbour on these shared VMs.
    out = subprocess.run([sys.executable, str(HERE / "bench_classifier.py"), "--seconds", "1.0",
                          "--out", str(RESULTS / "classifier.json")], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads((RESULTS / "classifier.json").read_text())


# --------------------------------------------------------------------------- report
def fmt(x) -> str:
    return "–" if x is None else f"{x:.2f}×"


def med(values) -> float | None:
    return statistics.median(values) if values else None


def fmt_us(x) -> str:
    return "–" if x is None else f"{x:.1f}"


def classifier_markdown(rows: list[dict], when: str | None = None) -> list[str]:
    lines = ["**Verdict engine** (`Engine.classify`, CPU time, best pass on this shared box; `fast_check` is the "
             "bare Rust call for reference) — µs per statement" + (f"; measured {when}" if when else ""), "",
             "| dialect | size | cache hit | fast path | deep path | bare fast_check |", "|---|---|---|---|---|---|"]
    by = {}
    for r in rows:
        by.setdefault((r["dialect"], r["size"]), {})[r["path"]] = r
    for (dialect, size), paths in by.items():
        cells = []
        for path in ("cache", "fast", "deep", "fast_check"):
            r = paths.get(path)
            cells.append("–" if not r or r["us_per_stmt"] is None else
                         f"{r['us_per_stmt']:.2f}" + (f" ({r['statements']})" if path in ("fast", "deep") else ""))
        avg = next(iter(paths.values()))["avg_chars"]
        lines.append(f"| {dialect} | {size} (avg {avg} chars) | " + " | ".join(cells) + " |")
    lines.append("(in brackets: how many of the statements take that path)")
    return lines


def targets(result: dict) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for every issue-6 target the run measured."""
    out: list[tuple[str, str, bool | None]] = []
    pb = result.get("pgbench")
    if pb and pb["raw_tps"]:
        rounds = lambda k, key: pb.get(k, {}).get(key, {}).get("sandbox-db-proxy")  # noqa: E731
        for key, need in (("simple c=8", 0.70), ("extended c=8", 0.70), ("prepared c=8", 0.50)):
            r = pb["ratios"].get(key, {}).get("sandbox-db-proxy")
            out.append((f"pgbench {key} ≥ {need:.2f}× direct", fmt(r) + spread(rounds("rounds_vs_direct", key), need),
                        None if r is None else r >= need))
        for key in pb["ratios"]:
            r = pb["vs_pgbouncer"][key].get("sandbox-db-proxy")
            out.append((f"pgbench {key} ≥ 0.95× PgBouncer", fmt(r) + spread(rounds("rounds_vs_pgbouncer", key), 0.95),
                        None if r is None else r >= 0.95))
        d = pb["classification_paths"]
        out.append(("no pgbench statement on the deep path after warm-up",
                    f"{d['deep']} deep in {d['statements']} statements", d["deep"] == 0))
    if pb:
        mem = pb.get("memory", {}).get("sandbox-db-proxy")
        if mem:
            kb = mem["bytes_per_connection"] / 1024
            out.append(("1,000 idle connections ≤ 100 KB each", f"{kb:.1f} KiB", kb <= 100))
    sb = result.get("sysbench")
    if sb:
        rounds = lambda k, key: sb.get(k, {}).get(key, {}).get("sandbox-db-proxy")  # noqa: E731
        for key in sb["ratios"]:
            r = sb["ratios"][key].get("sandbox-db-proxy")
            out.append((f"sysbench {key} ≥ 0.70× direct", fmt(r) + spread(rounds("rounds_vs_direct", key), 0.70),
                        None if r is None else r >= 0.70))
            r = sb["vs_haproxy"][key].get("sandbox-db-proxy")
            out.append((f"sysbench {key} ≥ 0.95× HAProxy", fmt(r) + spread(rounds("rounds_vs_haproxy", key), 0.95),
                        None if r is None else r >= 0.95))
        d = sb["classification_paths"]
        out.append(("no sysbench statement on the deep path after warm-up",
                    f"{d['deep']} deep in {d['statements']} statements", d["deep"] == 0))
    cl = result.get("classifier")
    if cl:
        short = [r for r in cl["rows"] if r["size"] == "short" and r["us_per_stmt"] is not None]
        hit = max((r["us_per_stmt"] for r in short if r["path"] == "cache"), default=None)
        fast = max((r["us_per_stmt"] for r in short if r["path"] == "fast"), default=None)
        if hit is not None:
            out.append(("verdict-cache hit ≤ 1 µs (slowest dialect)", f"{hit:.2f} µs", hit <= 1.0))
        if fast is not None:
            out.append(("fast path ≤ 5 µs, short statement (slowest dialect)", f"{fast:.2f} µs", fast <= 5.0))
    return out


def user_cpu_lines(section: dict, names: dict) -> list[str]:
    """The user-space part (utime) of the CPU per query: the peer's own code, as opposed to
    the kernel's socket work that every forwarder pays."""
    user = section.get("user_cpu_us_per_query")
    if not user:
        return []
    parts = [f"{key}: " + ", ".join(f"{label} {fmt_us(med(user[key].get(n)))}" for n, label in names.items())
             for key in user]
    return ["", "User-space CPU µs per query (utime: the share of the CPU µs/q above spent in the peer's own code; the rest is kernel time): "
            + "; ".join(parts) + "."]


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_mib']} MiB, kernel {m['kernel']}, "
             f"Python {m['python']}; run {m['date']}; median of {result['rounds']} interleaved rounds of "
             f"{result['seconds']} s (the peers' order rotated by one place each round). The database, the load "
             "generator and the peer under test share the 2 cores, so ratios against direct are bounded by CPU contention; CPU µs per query (from /proc, "
             "all threads of the peer's process) is the steadier figure. `uvloop-forwarder` is a bare Python "
             "forwarder on the same event loop (benches/bare_forwarder.py): the floor for any Python proxy. "
             "`sandbox-db-proxy` relays logged-in sessions in its Rust data plane with the default "
             "`performance.io_threads` (one I/O thread per CPU: 2 here, as HAProxy runs 2 threads here); "
             "`(1 I/O thread)` is the same with `io_threads: 1`, single-threaded like PgBouncer; `(Python relay)` "
             "is the same proxy with `performance.native_relay: false`, i.e. every statement relayed by the "
             "Python layer as before the data plane existed.", ""]
    if result.get("pgbench", {}).get("raw_tps"):
        pb = result["pgbench"]
        names = ("sandbox-db-proxy", "one-thread", "python-relay", "pgbouncer", "haproxy", "uvloop-forwarder")
        lines += ["**PostgreSQL 15, `pgbench -S` (scale 10, 8 clients / 2 threads, and 1 client)** — TPS ratio vs. "
                  "direct in the same round; CPU µs per query of each peer", "",
                  "| workload | direct TPS | sandbox-db-proxy | (1 I/O thread) | (Python relay) | PgBouncer (session) "
                  "| HAProxy TCP | uvloop forwarder | proxy ÷ PgBouncer | (1 I/O thread) ÷ PgBouncer | proxy ÷ HAProxy "
                  "| CPU µs/q: proxy | (1 I/O thread) | (Python relay) | PgBouncer | HAProxy | uvloop fwd |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for key, r in pb["ratios"].items():
            cpu = pb["cpu_us_per_query"].get(key, {})
            lines.append(f"| {key} | {statistics.median(pb['raw_tps'][key]['direct']):.0f} | "
                         + " | ".join(fmt(r.get(n)) for n in names) + " | "
                         + f"{fmt(pb['vs_pgbouncer'][key].get('sandbox-db-proxy'))} | "
                         + f"{fmt(pb['vs_pgbouncer'][key].get('one-thread'))} | "
                         + f"{fmt(pb['vs_haproxy'][key].get('sandbox-db-proxy'))} | "
                         + " | ".join(fmt_us(med(cpu.get(n))) for n in names) + " |")
        lines += user_cpu_lines(pb, {"sandbox-db-proxy": "proxy", "one-thread": "(1 I/O thread)",
                                     "pgbouncer": "PgBouncer", "haproxy": "HAProxy"})
        d = pb["classification_paths"]
        lines += ["", f"Deep-path classifications after warm-up: {d['deep']} in {d['statements']} statements "
                  f"({d['deep_per_1000']:.2f} per 1,000); classifications by path {d['counts']}.", ""]
    if "pgbench" in result:
        pb = result["pgbench"]
        if "agent" in pb:
            a = pb["agent"]
            first = a.get("cache_hit_rate_first_round")
            lines += [f"**Agent-like workload** ({a['statements_per_round']} statements per round, one connection: 300 "
                      f"distinct analytic SELECTs with inline literals, skewed repeats, 2% writes that are blocked): "
                      f"proxy ÷ direct {fmt(a['ratio_vs_direct'])}; verdict-cache hit rate "
                      + (f"{first:.1%} in the first round, " if first is not None else "")
                      + f"{a['cache_hit_rate']:.1%} over all rounds; deep-path calls {a['deep_per_1000']:.1f} per "
                      f"1,000 classifications; paths {a['classification_paths']}.", ""]
        if "memory" in pb:
            mm = pb["memory"]
            lines += ["**Memory, 1,000 idle client connections** (each logged in, with its backend connection): "
                      + "; ".join(f"{n} {v['bytes_per_connection'] / 1024:.1f} KiB per connection "
                                  f"(RSS {v['rss_before_bytes'] / 2**20:.0f} → {v['rss_after_bytes'] / 2**20:.0f} MiB)"
                                  for n, v in mm.items()), ""]
    if "sysbench" in result:
        sb = result["sysbench"]
        names = ("sandbox-db-proxy", "one-thread", "python-relay", "haproxy", "uvloop-forwarder")
        lines += ["**MariaDB 10.11, sysbench (8 threads, 4 tables × 10,000 rows, server-side prepared statements)** — "
                  "QPS ratio vs. direct in the same round; CPU µs per query of each peer", "",
                  "| test | direct QPS | sandbox-db-proxy | (1 I/O thread) | (Python relay) | HAProxy TCP "
                  "| uvloop forwarder | proxy ÷ HAProxy | (1 I/O thread) ÷ HAProxy | CPU µs/q: proxy | (1 I/O thread) "
                  "| (Python relay) | HAProxy | uvloop fwd |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for key, r in sb["ratios"].items():
            cpu = sb["cpu_us_per_query"].get(key, {})
            lines.append(f"| {key} | {statistics.median(sb['raw_qps'][key]['direct']):.0f} | "
                         + " | ".join(fmt(r.get(n)) for n in names) + " | "
                         + f"{fmt(sb['vs_haproxy'][key].get('sandbox-db-proxy'))} | "
                         + f"{fmt(sb['vs_haproxy'][key].get('one-thread'))} | "
                         + " | ".join(fmt_us(med(cpu.get(n))) for n in names) + " |")
        lines += user_cpu_lines(sb, {"sandbox-db-proxy": "proxy", "one-thread": "(1 I/O thread)", "haproxy": "HAProxy"})
        d = sb["classification_paths"]
        lines += ["", f"Deep-path classifications after warm-up: {d['deep']} in {d['statements']} statements "
                  f"({d['deep_per_1000']:.2f} per 1,000); classifications by path {d['counts']}.", ""]
    if "classifier" in result:
        lines += classifier_markdown(result["classifier"]["rows"], result["classifier"].get("when")) + [""]
    t = targets(result)
    if t:
        lines += ["**Issue 6 targets in this run**", "", "| target | measured | met |", "|---|---|---|"]
        lines += [f"| {name} | {value} | {'–' if ok is None else ('yes' if ok else 'no')} |" for name, value, ok in t]
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--only", default="classifier,pgbench,agent,memory,sysbench")
    ap.add_argument("--merge", action="store_true",
                    help="keep the sections of the previous results/latest.json this run does not measure")
    args = ap.parse_args()
    only = set(args.only.split(","))
    # Every peer (started from here) inherits the open-file limit: 1,000 idle clients need
    # 2,000 sockets in a forwarder, more than the usual soft limit of 1,024.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    RESULTS.mkdir(exist_ok=True)
    result: dict = {"machine": machine(), "rounds": args.rounds, "seconds": args.seconds}
    if args.merge and (RESULTS / "latest.json").exists():
        previous = json.loads((RESULTS / "latest.json").read_text())
        if not only & {"pgbench", "agent", "memory", "sysbench"}:
            # only the classifier (which carries its own date): the header stays the
            # previous run's, which measured the rounds it describes
            result = {**previous, **{k: v for k, v in result.items() if k not in previous}}
        else:
            result = {**previous, **result}
    if "classifier" in only:
        print("== classifier micro-benchmarks", flush=True)
        result["classifier"] = bench_classifier()
    if only & {"pgbench", "agent", "memory"}:
        print("== pgbench / agent workload / memory", flush=True)
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
