"""What the benchmarks read from the proxy's own /metrics (names as defined in
python/sandbox_db_proxy/metrics.py; Prometheus text exposition format 0.0.4):

- `sandbox_db_proxy_classification_seconds_count{path=...}`: classifications per engine path
  (cache, fast, deep);
- `sandbox_db_proxy_statements_total{backend=...,verdict=...,class=...}`: statements the relays
  finished (allowed, blocked, monitored), the denominator of "deep-path calls per 1,000
  statements" (with prepared statements one classification serves many executions).
"""

from __future__ import annotations

import re
import urllib.request

_CLASSIFY = re.compile(r'^sandbox_db_proxy_classification_seconds_count\{[^}]*path="(\w+)"[^}]*\} ([0-9.e+]+)$', re.M)
_STATEMENTS = re.compile(r'^sandbox_db_proxy_statements_total\{[^}]*verdict="(\w+)"[^}]*\} ([0-9.e+]+)$', re.M)


def scrape(admin_port: int) -> dict:
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5).read().decode()
    paths: dict[str, float] = {}
    for m in _CLASSIFY.finditer(text):
        paths[m.group(1)] = paths.get(m.group(1), 0.0) + float(m.group(2))
    statements: dict[str, float] = {}
    for m in _STATEMENTS.finditer(text):
        statements[m.group(1)] = statements.get(m.group(1), 0.0) + float(m.group(2))
    if "sandbox_db_proxy_classification_seconds" not in text or "sandbox_db_proxy_statements_total" not in text:
        raise RuntimeError("the proxy's /metrics lacks the classification/statement series the benchmark reads")
    return {"paths": paths, "statements": statements}


def delta(before: dict, after: dict) -> dict:
    """Counts between two scrapes, and deep-path classifications per 1,000 statements."""
    paths = {k: after["paths"].get(k, 0.0) - before["paths"].get(k, 0.0)
             for k in set(after["paths"]) | set(before["paths"])}
    stmts = sum(after["statements"].values()) - sum(before["statements"].values())
    deep = paths.get("deep", 0.0)
    return {"counts": {k: int(v) for k, v in sorted(paths.items())}, "statements": int(stmts),
            "deep": int(deep), "deep_per_1000": 1000.0 * deep / stmts if stmts else 0.0}
