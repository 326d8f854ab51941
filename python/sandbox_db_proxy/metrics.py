"""Prometheus metrics (prometheus-client), named per prometheus.io "Metric and label naming":
`sandbox_db_proxy_` prefix, `_total` for counters, seconds for durations, and only bounded
labels (backend names, protocol, verdict, statement class, rule names) -- never agent ids,
session ids or SQL text, which would make the series count unbounded.

Each `ProxyApp` owns one `Metrics` with its own `CollectorRegistry`, so several apps (tests)
never collide in the process-global default registry.

Hot path (issue 6 budget: a few microseconds per statement): relays bind label children once
per connection with `metrics.backend(name, protocol)` -> `BackendMetrics`; nothing builds label
dicts per statement. The four per-statement series (statements, blocks, classification and
query latency) are plain Python cells exported by a custom collector at scrape time: no lock
per increment (prometheus-client takes a mutex on every inc()/observe(), ~0.6-0.9 us here; a
cell costs ~0.1 us). They are updated only from the event loop thread, and a scrape runs on
the same loop, so no lock is needed.

    bm = app.metrics.backend("pg-prod", "postgresql")
    bm.connection("accepted"); bm.active.inc()          # ... bm.active.dec() on close
    bm.statement("allowed", "read")                     # verdict in (allowed, blocked, monitored)
    bm.block("dml-insert")                              # rule that blocked
    bm.classification(verdict.path, seconds)            # path: cache | fast | deep
    bm.query_seconds.observe(seconds)
    bm.backend_error(); bm.limit("max_message_bytes"); bm.ip_denied()
"""

from __future__ import annotations

from bisect import bisect_left

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

__all__ = ["Metrics", "BackendMetrics", "CONTENT_TYPE_LATEST"]

P = "sandbox_db_proxy_"

# `*_created` timestamp series double the exposition size and no dashboard of ours uses them.
disable_created_metrics()

# Classification runs in ~1 us on a cache hit and up to milliseconds on a deep parse.
CLASSIFY_BUCKETS = (1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4,
                    1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1, float("inf"))
# End to end (client statement in -> last result byte out).
QUERY_BUCKETS = (1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25,
                 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, float("inf"))


class _CounterFamily:
    """Lock-free labelled counter: `cell(*labels)` returns a one-element list to `+= 1`."""

    def __init__(self, name: str, doc: str, labelnames: tuple[str, ...]):
        self.name, self.doc, self.labelnames = name, doc, labelnames
        self.cells: dict[tuple[str, ...], list] = {}

    def cell(self, *labels: str) -> list:
        c = self.cells.get(labels)
        if c is None:
            c = self.cells[labels] = [0.0]
        return c

    def collect(self):
        fam = CounterMetricFamily(self.name, self.doc, labels=self.labelnames)
        for labels, c in list(self.cells.items()):
            fam.add_metric(labels, c[0])
        return fam


class HistogramCell:
    """One labelled histogram child: `observe(seconds)` = one bisect + two additions."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value


def _add_counts(cell: HistogramCell, counts, total: float) -> None:
    cc = cell.counts
    for i, n in enumerate(counts[:len(cc)]):
        cc[i] += n
    cell.sum += total


class _HistogramFamily:
    def __init__(self, name: str, doc: str, labelnames: tuple[str, ...], buckets: tuple[float, ...]):
        self.name, self.doc, self.labelnames = name, doc, labelnames
        self.bounds = tuple(b for b in buckets if b != float("inf"))
        self.cells: dict[tuple[str, ...], HistogramCell] = {}

    def cell(self, *labels: str) -> HistogramCell:
        c = self.cells.get(labels)
        if c is None:
            c = self.cells[labels] = HistogramCell(self.bounds)
        return c

    def collect(self):
        fam = HistogramMetricFamily(self.name, self.doc, labels=self.labelnames)
        for labels, c in list(self.cells.items()):
            acc, buckets = 0, []
            # `le` is inclusive (exposition format): bisect_left puts v == bound in that bucket.
            for bound, n in zip(self.bounds + (float("inf"),), c.counts):
                acc += n
                buckets.append((_fmt_le(bound), acc))
            fam.add_metric(labels, buckets, c.sum)
        return fam


def _fmt_le(bound: float) -> str:
    if bound == float("inf"):
        return "+Inf"
    return repr(float(bound))


class _HotCollector(Collector):
    def __init__(self, families):
        self.families = families

    def collect(self):
        for f in self.families:
            yield f.collect()


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        r = self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.connections_total = Counter(P + "connections", "Client connections by outcome "
                                         "(accepted, ip_denied, limit, auth_failed, error).",
                                         ("backend", "protocol", "outcome"), registry=r)
        self.connections_active = Gauge(P + "connections_active", "Open client connections.",
                                        ("backend",), registry=r)
        self.statements_total = _CounterFamily(P + "statements", "Statements by verdict and class.",
                                               ("backend", "verdict", "class"))
        self.blocks_total = _CounterFamily(P + "blocks", "Blocked statements/messages by rule.",
                                           ("backend", "rule"))
        self.classification_seconds = _HistogramFamily(P + "classification_seconds",
                                                       "Time to classify one statement, by engine path.",
                                                       ("path",), CLASSIFY_BUCKETS)
        self.query_seconds = _HistogramFamily(P + "query_seconds",
                                              "End-to-end statement latency through the proxy.",
                                              ("backend",), QUERY_BUCKETS)
        r.register(_HotCollector((self.statements_total, self.blocks_total, self.classification_seconds,
                                  self.query_seconds)))
        self.backend_errors_total = Counter(P + "backend_errors", "Backend connection/login/IO failures.",
                                            ("backend",), registry=r)
        self.audit_queue_depth = Gauge(P + "audit_queue_depth", "Audit records waiting to be written.",
                                       registry=r)
        self.audit_dropped_total = Counter(P + "audit_dropped", "Audit records dropped (queue full).",
                                           registry=r)
        self.audit_write_errors_total = Counter(P + "audit_write_errors", "Failed audit log writes.",
                                                registry=r)
        self.config_reloads_total = Counter(P + "config_reloads", "Configuration reloads by outcome.",
                                            ("outcome",), registry=r)
        self.monitor_mode = Gauge(P + "monitor_mode", "1 when security.enforce_read_only is false "
                                  "(writes are forwarded and only audited).", registry=r)
        self.ip_denied_total = Counter(P + "ip_denied", "Connections refused by security.allowed_ips.",
                                       ("backend",), registry=r)
        self.limit_breaches_total = Counter(P + "limit_breaches", "Limit breaches by limit name.",
                                            ("backend", "limit"), registry=r)
        self.backend_ready = Gauge(P + "backend_ready", "1 when the backend's listener is serving.",
                                   ("backend",), registry=r)
        self._classify_cells: dict[str, HistogramCell] = {}
        self.before_render: list = []
        self._backends: dict[tuple[str, str], BackendMetrics] = {}

    def backend(self, name: str, protocol: str) -> "BackendMetrics":
        """Label children for one backend, created once and shared by its connections."""
        key = (name, protocol)
        bm = self._backends.get(key)
        if bm is None:
            bm = self._backends[key] = BackendMetrics(self, name, protocol)
        return bm

    def classification(self, path: str, seconds: float) -> None:
        cell = self._classify_cells.get(path)
        if cell is None:
            cell = self._classify_cells[path] = self.classification_seconds.cell(path)
        cell.observe(seconds)

    def render(self) -> bytes:
        """Text exposition format 0.0.4 for /metrics."""
        for hook in self.before_render:
            hook()           # the native relay folds its counters in (server/native.py)
        return generate_latest(self.registry)


class BackendMetrics:
    """Pre-bound children for one (backend, protocol)."""

    __slots__ = ("m", "name", "protocol", "active", "query_seconds", "_stmt", "_block", "_conn",
                 "_limit", "_backend_errors", "_ip_denied", "_classify")

    def __init__(self, m: Metrics, name: str, protocol: str):
        self.m = m
        self.name = name
        self.protocol = protocol
        self.active = m.connections_active.labels(name)
        self.query_seconds = m.query_seconds.cell(name)   # .observe(seconds)
        self._backend_errors = m.backend_errors_total.labels(name)
        self._ip_denied = m.ip_denied_total.labels(name)
        self._stmt: dict[tuple[str, str], object] = {}
        self._block: dict[str, object] = {}
        self._conn: dict[str, object] = {}
        self._limit: dict[str, object] = {}
        self._classify: dict[str, HistogramCell] = {}

    def statement(self, verdict: str, klass: str) -> None:
        key = (verdict, klass)
        c = self._stmt.get(key)
        if c is None:
            c = self._stmt[key] = self.m.statements_total.cell(self.name, verdict, klass)
        c[0] += 1

    def block(self, rule: str) -> None:
        c = self._block.get(rule)
        if c is None:
            c = self._block[rule] = self.m.blocks_total.cell(self.name, rule or "unknown")
        c[0] += 1

    def connection(self, outcome: str) -> None:
        c = self._conn.get(outcome)
        if c is None:
            c = self._conn[outcome] = self.m.connections_total.labels(self.name, self.protocol, outcome)
        c.inc()

    def limit(self, limit: str) -> None:
        c = self._limit.get(limit)
        if c is None:
            c = self._limit[limit] = self.m.limit_breaches_total.labels(self.name, limit)
        c.inc()

    def classification(self, path: str, seconds: float) -> None:
        cell = self._classify.get(path)
        if cell is None:
            cell = self._classify[path] = self.m.classification_seconds.cell(path)
        cell.observe(seconds)

    def backend_error(self) -> None:
        self._backend_errors.inc()

    def merge_native(self, delta: tuple) -> None:
        """Fold a `_native.BackendStats.take()` delta in: the statements the native relay
        allowed, their latencies and its cache-hit classifications (per-bucket counts in the
        same bucket layout as these cells)."""
        by_class, qb, qsum, hits, cb, csum = delta
        for klass, n in by_class:
            key = ("allowed", klass)
            c = self._stmt.get(key)
            if c is None:
                c = self._stmt[key] = self.m.statements_total.cell(self.name, "allowed", klass)
            c[0] += n
        _add_counts(self.query_seconds, qb, qsum)
        if hits:
            cell = self._classify.get("cache")
            if cell is None:
                cell = self._classify["cache"] = self.m.classification_seconds.cell("cache")
            _add_counts(cell, cb, csum)

    def ip_denied(self) -> None:
        self._ip_denied.inc()
