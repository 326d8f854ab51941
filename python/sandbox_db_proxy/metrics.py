"""Prometheus metrics (prometheus-client), named per prometheus.io "Metric and label naming":
`sandbox_db_proxy_` prefix, `_total` for counters, seconds for durations, and only bounded
labels (backend names, protocol, verdict, statement class, rule names) -- never agent ids,
session ids or SQL text, which would make the series count unbounded.

Each `ProxyApp` owns one `Metrics` with its own `CollectorRegistry`, so several apps (tests)
never collide in the process-global default registry.

Hot path (issue 6 budget: a few microseconds per statement): relays bind label children once
per connection with `metrics.backend(name, protocol)` -> `BackendMetrics`, whose methods are a
dict lookup plus the child's `inc()`/`observe()`; nothing builds label dicts per statement.

    bm = app.metrics.backend("pg-prod", "postgresql")
    bm.connection("accepted"); bm.active.inc()          # ... bm.active.dec() on close
    bm.statement("allowed", "read")                     # verdict in (allowed, blocked, monitored)
    bm.block("dml-insert")                              # rule that blocked
    bm.classification(verdict.path, seconds)            # path: cache | fast | deep
    bm.query_seconds.observe(seconds)
    bm.backend_error(); bm.limit("max_message_bytes"); bm.ip_denied()
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

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


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        r = self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.connections_total = Counter(P + "connections", "Client connections by outcome "
                                         "(accepted, ip_denied, limit, auth_failed, error).",
                                         ("backend", "protocol", "outcome"), registry=r)
        self.connections_active = Gauge(P + "connections_active", "Open client connections.",
                                        ("backend",), registry=r)
        self.statements_total = Counter(P + "statements", "Statements by verdict and class.",
                                        ("backend", "verdict", "class"), registry=r)
        self.blocks_total = Counter(P + "blocks", "Blocked statements/messages by rule.",
                                    ("backend", "rule"), registry=r)
        self.classification_seconds = Histogram(P + "classification_seconds",
                                                "Time to classify one statement, by engine path.",
                                                ("path",), buckets=CLASSIFY_BUCKETS, registry=r)
        self.query_seconds = Histogram(P + "query_seconds", "End-to-end statement latency through the proxy.",
                                       ("backend",), buckets=QUERY_BUCKETS, registry=r)
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
        self._classify_children: dict[str, object] = {}
        self._backends: dict[tuple[str, str], BackendMetrics] = {}

    def backend(self, name: str, protocol: str) -> "BackendMetrics":
        """Label children for one backend, created once and shared by its connections."""
        key = (name, protocol)
        bm = self._backends.get(key)
        if bm is None:
            bm = self._backends[key] = BackendMetrics(self, name, protocol)
        return bm

    def classification(self, path: str, seconds: float) -> None:
        child = self._classify_children.get(path)
        if child is None:
            child = self._classify_children[path] = self.classification_seconds.labels(path)
        child.observe(seconds)

    def render(self) -> bytes:
        """Text exposition format 0.0.4 for /metrics."""
        return generate_latest(self.registry)


class BackendMetrics:
    """Pre-bound children for one (backend, protocol)."""

    __slots__ = ("m", "name", "protocol", "active", "query_seconds", "_stmt", "_block", "_conn",
                 "_limit", "_backend_errors", "_ip_denied")

    def __init__(self, m: Metrics, name: str, protocol: str):
        self.m = m
        self.name = name
        self.protocol = protocol
        self.active = m.connections_active.labels(name)
        self.query_seconds = m.query_seconds.labels(name)
        self._backend_errors = m.backend_errors_total.labels(name)
        self._ip_denied = m.ip_denied_total.labels(name)
        self._stmt: dict[tuple[str, str], object] = {}
        self._block: dict[str, object] = {}
        self._conn: dict[str, object] = {}
        self._limit: dict[str, object] = {}

    def statement(self, verdict: str, klass: str) -> None:
        key = (verdict, klass)
        c = self._stmt.get(key)
        if c is None:
            c = self._stmt[key] = self.m.statements_total.labels(self.name, verdict, klass)
        c.inc()

    def block(self, rule: str) -> None:
        c = self._block.get(rule)
        if c is None:
            c = self._block[rule] = self.m.blocks_total.labels(self.name, rule or "unknown")
        c.inc()

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
        self.m.classification(path, seconds)

    def backend_error(self) -> None:
        self._backend_errors.inc()

    def ip_denied(self) -> None:
        self._ip_denied.inc()
