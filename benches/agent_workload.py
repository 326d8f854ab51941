"""An agent-like workload (issue 6): a few hundred distinct analytic SELECTs with inline
literals, some repeated, and a few writes that get blocked — the traffic an agent fleet
sends, not pgbench's one statement. Shows the verdict cache's real hit rate and the deep-path
share in the proxy (read from its /metrics), and throughput against a direct connection
measured in the same run (the direct run skips the writes: they would change the database).
"""

from __future__ import annotations

import random
import time

import psycopg

import proxy_metrics

TEMPLATES = [
    "SELECT bid, count(*), avg(abalance) FROM pgbench_accounts WHERE aid BETWEEN {a} AND {b} GROUP BY bid ORDER BY bid",
    "SELECT a.aid, a.abalance, b.bbalance FROM pgbench_accounts a JOIN pgbench_branches b ON a.bid = b.bid WHERE a.aid = {a}",
    "WITH t AS (SELECT tid, tbalance FROM pgbench_tellers WHERE bid = {bid}) SELECT max(tbalance) - min(tbalance) FROM t",
    "SELECT aid, abalance, rank() OVER (PARTITION BY bid ORDER BY abalance DESC) FROM pgbench_accounts WHERE aid < {a} + 50 AND aid >= {a} ORDER BY aid LIMIT 20",
    "SELECT count(*) FROM pgbench_accounts WHERE abalance > {n} AND bid = {bid}",
    "SELECT coalesce(sum(delta), 0) FROM pgbench_history WHERE tid = {tid}",
    "SELECT t.tid, t.tbalance, b.bbalance FROM pgbench_tellers t, pgbench_branches b WHERE t.bid = b.bid AND t.tid IN ({tid}, {tid2}, {tid3})",
    "SELECT date_trunc('day', now()) AS d, {n} AS marker, upper('{word}') AS w",
    "SELECT aid FROM pgbench_accounts WHERE filler LIKE '{word}%' AND aid BETWEEN {a} AND {b} LIMIT 5",
    "SELECT bid, percentile_cont(0.5) WITHIN GROUP (ORDER BY abalance) FROM pgbench_accounts WHERE aid BETWEEN {a} AND {b} GROUP BY bid",
]
WRITES = [
    "UPDATE pgbench_accounts SET abalance = abalance + {n} WHERE aid = {a}",
    "DELETE FROM pgbench_history WHERE tid = {tid}",
    "WITH x AS (DELETE FROM pgbench_history RETURNING *) SELECT count(*) FROM x",
    "SELECT nextval('pgbench_history_seq')",
]
WORDS = ["alpha", "beta", "gamma", "delete", "drop table", "update"]


def make_statements(n: int, distinct: int, write_share: float, seed: int = 7) -> list[tuple[str, bool]]:
    """`distinct` different read texts (templates × literals), drawn with a skew so some
    repeat, mixed with writes; each item is (sql, is_write)."""
    rnd = random.Random(seed)
    pool = []
    for i in range(distinct):
        a = rnd.randint(1, 990_000)
        vals = dict(a=a, b=a + rnd.randint(10, 5000), bid=rnd.randint(1, 10), n=rnd.randint(-5000, 5000),
                    tid=rnd.randint(1, 100), tid2=rnd.randint(1, 100), tid3=rnd.randint(1, 100),
                    word=rnd.choice(WORDS).replace("'", ""))
        pool.append(TEMPLATES[i % len(TEMPLATES)].format(**vals))
    writes = [w.format(n=rnd.randint(1, 9), a=rnd.randint(1, 1000), tid=rnd.randint(1, 100)) for w in WRITES]
    out = []
    for _ in range(n):
        if rnd.random() < write_share:
            out.append((rnd.choice(writes), True))
        else:
            out.append((pool[min(int(rnd.paretovariate(1.2)) - 1, distinct - 1)] if rnd.random() < 0.5
                        else rnd.choice(pool), False))
    return out


def run(dsn: str, statements: list[tuple[str, bool]], skip_writes: bool) -> tuple[float, int, int]:
    """Statements per second (sequential, one connection), reads answered, writes blocked."""
    ok = blocked = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        t0 = time.perf_counter()
        for sql, is_write in statements:
            if skip_writes and is_write:
                continue
            try:
                conn.execute(sql).fetchall()
                ok += 1
            except psycopg.errors.ReadOnlySqlTransaction:
                blocked += 1
        elapsed = time.perf_counter() - t0
    return (ok + blocked) / elapsed, ok, blocked


def classification_counts(admin_port: int) -> dict[str, float]:
    """Per-path classification counts from the proxy's own histogram."""
    return proxy_metrics.scrape(admin_port)["paths"]
