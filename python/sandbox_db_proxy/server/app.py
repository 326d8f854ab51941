"""`ProxyApp`: the runtime every relay is handed (contract: docs/ARCHITECTURE.md "Runtime").

It owns the current config snapshot, one verdict engine per backend, the audit log, the
metrics, the admin HTTP listener, one listener per backend (started through the relay
registry `RELAYS`) and the set of live connections. Lifecycle:

- `await start()`: audit writer, admin listener, then each backend's relay
  (`await module.start(app, backend) -> asyncio.AbstractServer`). A backend whose type has no
  relay (mssql, mongodb for now) or whose listener fails is logged loudly and reported not
  ready on /readyz; the others keep serving.
- `reload()` (SIGHUP): load the file again; on any error keep the old snapshot and say why;
  on success swap `self.config` (one reference -- relays read it per statement/connection),
  rebuild only the engines whose settings changed (caches and catalogues survive otherwise),
  start listeners of new backends, stop removed ones, and restart moved ones.
- `await drain(timeout)` (SIGTERM/SIGINT): stop accepting, wait for live connections up to
  `limits.drain_timeout_seconds`, close the rest with a reason, flush the audit log.

Relays' accept path: `app.admit(backend_name, peer_ip, peer_port, ctx)` checks
`security.allowed_ips` and `limits.max_client_connections` and does the audit + metrics for a
refusal; on success the relay must call `app.release(backend_name)` when the connection ends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import inspect
import logging
import os
import signal
from typing import Any, Callable, Iterable, Protocol

from sandbox_db_proxy.audit import AuditLog
from sandbox_db_proxy.config import Backend, Config, ConfigError, load_config
from sandbox_db_proxy.config.warnings import config_warnings
from sandbox_db_proxy.metrics import Metrics

log = logging.getLogger("sandbox_db_proxy.app")

# backend type -> module with `async def start(app, backend) -> asyncio.AbstractServer`
RELAYS: dict[str, str] = {
    "postgres": "sandbox_db_proxy.server.postgres",
    "mysql": "sandbox_db_proxy.server.mysql",
}
# backend type -> protocol label for metrics
PROTOCOLS = {"postgres": "postgresql", "mysql": "mysql", "mssql": "tds", "mongodb": "mongodb"}

MONITOR_WARNING = ("MONITOR MODE: security.enforce_read_only is false -- write statements are "
                   "FORWARDED to the databases and only audited. This proxy is NOT enforcing read-only.")


@dataclasses.dataclass(frozen=True, slots=True)
class Login:
    """Credentials a relay verifies a client against.

    Static agents and backend fallbacks carry the plaintext `password` (needed to run
    SCRAM-SHA-256 / mysql_native_password as the server side). Session logins (issue 5)
    carry stored verifiers instead: `scram_verifier` in PostgreSQL's
    `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>` format (RFC 5803), `mysql_native_hash`
    = SHA1(SHA1(password)) (MySQL "Native Authentication"), `mysql_sha2_hash` =
    SHA256(SHA256(password)) (the "hash entry" caching_sha2_password fast authentication
    checks). A relay uses whichever it needs and refuses the login when it is missing."""
    agent: str
    username: str
    password: str | None = dataclasses.field(default=None, repr=False)
    scram_verifier: str | None = dataclasses.field(default=None, repr=False)
    mysql_native_hash: bytes | None = dataclasses.field(default=None, repr=False)
    mysql_sha2_hash: bytes | None = dataclasses.field(default=None, repr=False)
    session_id: str | None = None
    source: str = "agent"          # agent | backend | session
    backends: tuple[str, ...] | None = None


class TrackedConnection(Protocol):
    agent: str | None
    session_id: str | None
    backend_name: str
    # optional: `idle: bool` (no statement in flight) lets drain close it at once

    def close(self, reason: str) -> Any: ...


@dataclasses.dataclass
class Admission:
    ok: bool
    kind: str | None = None       # ip_denied | limit
    reason: str | None = None


class ConnectionLimiter:
    """`limits.max_client_connections` per backend listener. Reads the limit from the
    current config on every acquire, so a reload applies to the next connection."""

    __slots__ = ("app", "backend_name", "active")

    def __init__(self, app: "ProxyApp", backend_name: str):
        self.app = app
        self.backend_name = backend_name
        self.active = 0

    @property
    def limit(self) -> int:
        return self.app.config.limits.max_client_connections

    def try_acquire(self) -> bool:
        if self.active >= self.limit:
            return False
        self.active += 1
        return True

    def release(self) -> None:
        if self.active > 0:
            self.active -= 1


def _engine_settings(config: Config, b: Backend) -> tuple:
    return (b.dialect, tuple(config.security.blocked_commands), b.allow_unknown_functions,
            b.block_sensitive_show)


class ProxyApp:
    def __init__(self, config: Config, config_path: str | None = None,
                 env: dict[str, str] | None = None, relays: dict[str, str] | None = None):
        self.config = config
        self.config_path = config_path if config_path is not None else (
            config.source if os.path.exists(config.source) else None)
        self.env = env
        self.relays = dict(RELAYS if relays is None else relays)
        self.metrics = Metrics()
        self.audit = AuditLog(config, self.metrics)
        self.metrics.monitor_mode.set(1 if config.monitor_mode else 0)
        self._engines: dict[str, Any] = {}
        self._engine_keys: dict[str, tuple] = {}
        self._limiters: dict[str, ConnectionLimiter] = {}
        self._logins: dict[tuple[str, str], Login] = {}
        self._build_logins(config)
        self.login_providers: list[Callable[[str, str], Login | None]] = []
        self.admin_setup_hooks: list[Callable[[Any, "ProxyApp"], None]] = []
        self.connections: set = set()
        self.servers: dict[str, asyncio.AbstractServer] = {}
        self.backend_status: dict[str, tuple[bool, str]] = {
            b.name: (False, "not started") for b in config.backends}
        self.sessions = None          # sessions.manager.SessionManager once started (issue 5)
        from sandbox_db_proxy.server.native import NativeRelay
        self.native = NativeRelay(self)   # Rust data plane for logged-in sessions (issue 6)
        self.admin_runner = None
        self.admin_address: tuple[str, int] | None = None
        self.accepting = False
        self.draining = False
        self._stopped: asyncio.Event | None = None
        self._reload_lock = asyncio.Lock()
        self._signals: list[int] = []

    # -- per-backend helpers used by relays ----------------------------------------------
    def engine(self, backend_name: str):
        """The verdict engine for a backend (created lazily; one per backend)."""
        eng = self._engines.get(backend_name)
        if eng is not None:
            return eng
        b = self.config.backend(backend_name)
        if b.dialect is None:
            raise ValueError(f"backend {backend_name!r} ({b.type}) has no SQL engine")
        eng = self._engines[backend_name] = self._make_engine(self.config, b, None)
        self._engine_keys[backend_name] = _engine_settings(self.config, b)
        return eng

    def _make_engine(self, config: Config, b: Backend, old: Any):
        from sandbox_db_proxy.engine import Engine  # imported on first use (grammar imports are slow)
        kwargs: dict[str, Any] = {
            "dialect": b.dialect,
            "blocked_commands": tuple(config.security.blocked_commands),
            "allow_unknown_functions": b.allow_unknown_functions,
            "block_sensitive_show": b.block_sensitive_show,
        }
        catalog = getattr(old, "catalog", None) if old is not None else None
        if catalog is not None:
            kwargs["catalog"] = catalog
        return Engine(**kwargs)

    def limiter(self, backend_name: str) -> ConnectionLimiter:
        lim = self._limiters.get(backend_name)
        if lim is None:
            lim = self._limiters[backend_name] = ConnectionLimiter(self, backend_name)
        return lim

    def ip_allowed(self, ip: str) -> bool:
        return self.config.allowlist.allowed(ip)

    def admit(self, backend_name: str, peer_ip: str | None, peer_port: int | None = None,
              ctx: Any = None, protocol: str | None = None) -> Admission:
        """Accept-time checks, before a byte is read: IP allowlist, then the connection
        limit. On refusal the audit record and metrics are done here; the relay closes the
        socket (ip_denied: silently; limit: after the protocol's "too many connections"
        error). On success the relay must call `release(backend_name)` at the end."""
        b = self.config.backend(backend_name)
        bm = self.metrics.backend(backend_name, protocol or PROTOCOLS.get(b.type, b.type))
        base = ctx if ctx is not None else {"backend": backend_name, "db.system.name": b.db_system,
                                            "client.address": peer_ip, "client.port": peer_port}
        if peer_ip is None or not self.ip_allowed(peer_ip):
            bm.connection("ip_denied")
            bm.ip_denied()
            self.audit.event(base, "ip_denied", reason=f"client address {peer_ip} is not in "
                             "security.allowed_ips")
            return Admission(False, "ip_denied", "client address not allowed")
        if not self.limiter(backend_name).try_acquire():
            limit = self.config.limits.max_client_connections
            bm.connection("limit")
            bm.limit("max_client_connections")
            reason = (f"too many connections to backend {backend_name!r}: the proxy allows "
                      f"{limit} (limits.max_client_connections); close idle connections and retry")
            self.audit.event(base, "limit", limit="max_client_connections", reason=reason)
            return Admission(False, "limit", reason)
        bm.connection("accepted")
        return Admission(True)

    def release(self, backend_name: str) -> None:
        self.limiter(backend_name).release()

    # -- logins --------------------------------------------------------------------------
    def _build_logins(self, config: Config) -> None:
        table: dict[tuple[str, str], Login] = {}
        for b in config.backends:
            agents = config.agents_for(b.name)
            if agents:
                for a in agents:
                    table[(b.name, a.username)] = Login(
                        agent=a.name, username=a.username,
                        password=a.password.get_secret_value() if a.password else None,
                        source="agent", backends=a.backends)
            elif b.password is not None:
                # No agent lists this backend: clients log in with the backend's own
                # configured credentials, so the guide's config works unchanged.
                table[(b.name, b.username)] = Login(
                    agent=b.username, username=b.username, password=b.password.get_secret_value(),
                    source="backend", backends=(b.name,))
        self._logins = table

    def lookup_login(self, backend_name: str, username: str) -> Login | None:
        """Session logins (registered providers, issue 5) first, then static agents, then the
        backend's own credentials when no agent lists the backend."""
        for provider in self.login_providers:
            login = provider(backend_name, username)
            if login is not None:
                return login
        return self._logins.get((backend_name, username))

    # -- live connections ----------------------------------------------------------------
    def track(self, conn: TrackedConnection) -> None:
        self.connections.add(conn)

    def untrack(self, conn: TrackedConnection) -> None:
        self.connections.discard(conn)

    def connections_of(self, *, session_id: str | None = None, backend_name: str | None = None,
                       agent: str | None = None) -> list:
        out = []
        for c in list(self.connections):
            if session_id is not None and getattr(c, "session_id", None) != session_id:
                continue
            if backend_name is not None and getattr(c, "backend_name", None) != backend_name:
                continue
            if agent is not None and getattr(c, "agent", None) != agent:
                continue
            out.append(c)
        return out

    async def close_connections(self, conns: Iterable, reason: str) -> int:
        n = 0
        for c in list(conns):
            try:
                r = c.close(reason)
                if inspect.isawaitable(r):
                    await r
            except Exception:  # noqa: BLE001 -- one bad connection must not stop the rest
                log.exception("closing connection %r failed", c)
            n += 1
        return n

    # -- readiness -----------------------------------------------------------------------
    def readiness(self) -> tuple[bool, dict]:
        cfg = self.config
        backends = {}
        all_ready = True
        for b in cfg.backends:
            ok, detail = self.backend_status.get(b.name, (False, "not started"))
            entry: dict[str, Any] = {"ready": ok, "type": b.type, "listen": b.listen, "detail": detail}
            srv = self.servers.get(b.name)
            if srv is not None and srv.sockets:
                entry["bound"] = [_sockname(s) for s in srv.sockets]
            backends[b.name] = entry
            all_ready = all_ready and ok
        audit_ok = not self.audit.refuse
        ready = all_ready and audit_ok and self.accepting and not self.draining
        body: dict[str, Any] = {
            "status": "ready" if ready else "not ready",
            "backends": backends,
            "audit": {"enabled": self.audit.enabled, "healthy": self.audit.healthy,
                      "fail_closed": self.audit.fail_closed, "dropped": self.audit.dropped,
                      "queue_depth": self.audit.queue_depth},
            "monitor_mode": cfg.monitor_mode,
            "draining": self.draining,
        }
        if cfg.monitor_mode:
            body["warning"] = MONITOR_WARNING
        if not audit_ok:
            body["audit"]["error"] = self.audit.last_error
        return ready, body

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        self._stopped = asyncio.Event()
        cfg = self.config
        if cfg.monitor_mode:
            log.warning(MONITOR_WARNING)
        for w in config_warnings(cfg):
            log.warning("%s", w)
        self.audit.check_writable()
        self.audit.start()
        self._attach_sessions()
        from sandbox_db_proxy.server import admin
        self.admin_runner, self.admin_address = await admin.start_admin(self)
        self.accepting = True
        for b in cfg.backends:
            if self.draining:  # SIGTERM arrived while starting
                return
            await self._start_backend(b)
        ready, _ = self.readiness()
        log.info("sandbox-db-proxy started: %s", ", ".join(
            f"{n} {'ready' if s[0] else 'NOT READY (' + s[1] + ')'}" for n, s in self.backend_status.items()))

    def _attach_sessions(self) -> None:
        """Agent sessions (issue 5): the manager registers its login provider and audit hook.
        Missing module = no sessions; any failure leaves static logins working (the manager
        itself answers 503 on the API when its store cannot be opened)."""
        try:
            from sandbox_db_proxy.sessions import manager
        except ModuleNotFoundError as exc:
            if not (exc.name or "").startswith("sandbox_db_proxy.sessions"):
                raise
            return
        try:
            manager.attach(self)
        except Exception:  # noqa: BLE001 -- sessions must not take the relays down
            log.exception("ERROR: agent sessions could not be started; session logins are refused")
            self.sessions = None

    async def _detach_sessions(self) -> None:
        if self.sessions is None:
            return
        try:
            from sandbox_db_proxy.sessions import manager
            await manager.detach(self)
        except Exception:  # noqa: BLE001
            log.exception("stopping agent sessions failed")

    async def _start_backend(self, b: Backend) -> None:
        module_name = self.relays.get(b.type)
        self.metrics.backend_ready.labels(b.name).set(0)
        if module_name is None:
            msg = f"no relay for backend type {b.type!r} yet; backend {b.name!r} is NOT served"
            log.error("ERROR: %s", msg)
            self.backend_status[b.name] = (False, msg)
            return
        try:
            if b.dialect is not None:
                # Build the engine now: its grammar imports take a moment (better here than
                # on the first agent's connection), and a backend without a working engine
                # must not serve at all (default deny).
                self.engine(b.name)
            module = importlib.import_module(module_name)
            server = await module.start(self, b)
        except Exception as exc:  # noqa: BLE001 -- one backend failing must not stop the others
            msg = f"listener for backend {b.name!r} on {b.listen} failed: {type(exc).__name__}: {exc}"
            log.error("ERROR: %s", msg, exc_info=not isinstance(exc, OSError))
            self.backend_status[b.name] = (False, msg)
            return
        self.servers[b.name] = server
        self.backend_status[b.name] = (True, "serving")
        self.metrics.backend_ready.labels(b.name).set(1)
        log.info("backend %s (%s) listening on %s", b.name, b.type,
                 ", ".join(_sockname(s) for s in (server.sockets or ())))

    async def _stop_backend(self, name: str, reason: str) -> None:
        server = self.servers.pop(name, None)
        if server is not None:
            server.close()
        await self.close_connections(self.connections_of(backend_name=name), reason)
        self.backend_status.pop(name, None)
        self._engines.pop(name, None)
        self._engine_keys.pop(name, None)
        self.metrics.backend_ready.labels(name).set(0)

    def bound_port(self, backend_name: str) -> int | None:
        """The port a backend's listener actually bound (useful with `listen: host:0`)."""
        srv = self.servers.get(backend_name)
        if srv is None or not srv.sockets:
            return None
        return srv.sockets[0].getsockname()[1]

    def reload(self) -> bool:
        """SIGHUP: synchronous part (load + swap); listener changes are scheduled on the
        running loop. Returns True when the new config is in effect."""
        path = self.config_path
        if path is None:
            log.error("reload requested but the config was not loaded from a file; ignored")
            return False
        if self.draining:
            log.warning("reload requested while shutting down; ignored")
            return False
        try:
            new = load_config(path, env=self.env)
        except ConfigError as exc:
            log.error("config reload FAILED; keeping the previous configuration:\n%s", exc)
            self.metrics.config_reloads_total.labels("error").inc()
            self.audit.event(None, "config_reload", outcome="error", reason=str(exc), **{"config.path": path})
            return False
        try:
            rebuilt = self._rebuild_engines(new)
        except Exception as exc:  # noqa: BLE001 -- any engine failure fails the whole reload
            log.error("config reload FAILED (verdict engine: %s: %s); keeping the previous configuration",
                      type(exc).__name__, exc)
            self.metrics.config_reloads_total.labels("error").inc()
            self.audit.event(None, "config_reload", outcome="error", reason=f"verdict engine: {exc}",
                             **{"config.path": path})
            return False
        self.apply_config(new, rebuilt)
        self.metrics.config_reloads_total.labels("success").inc()
        self.audit.event(None, "config_reload", outcome="success", **{"config.path": path})
        log.info("config reloaded from %s", path)
        return True

    def _rebuild_engines(self, new: Config) -> dict[str, Any]:
        """Engines whose settings change under `new`, built before anything is swapped so a
        failure leaves the running configuration untouched."""
        rebuilt: dict[str, Any] = {}
        for name, eng in self._engines.items():
            if new.has_backend(name):
                b = new.backend(name)
                if b.dialect is not None and _engine_settings(new, b) != self._engine_keys.get(name):
                    rebuilt[name] = self._make_engine(new, b, eng)
        return rebuilt

    def apply_config(self, new: Config, rebuilt: dict[str, Any] | None = None) -> None:
        if rebuilt is None:
            rebuilt = self._rebuild_engines(new)
        old = self.config
        self.config = new
        self.audit.reconfigure(new)
        self.native.config_changed()
        self._build_logins(new)
        self.metrics.monitor_mode.set(1 if new.monitor_mode else 0)
        if new.monitor_mode:
            log.warning(MONITOR_WARNING)
        for name in list(self._engines):
            if not new.has_backend(name) or new.backend(name).dialect is None:
                self._engines.pop(name, None)
                self._engine_keys.pop(name, None)
                continue
            b = new.backend(name)
            key = _engine_settings(new, b)
            if key != self._engine_keys.get(name):
                self._engines[name] = (rebuilt[name] if name in rebuilt
                                       else self._make_engine(new, b, self._engines[name]))
                self._engine_keys[name] = key
        if old.admin.listen != new.admin.listen:
            log.warning("admin.listen changed (%s -> %s): takes effect after a restart",
                        old.admin.listen, new.admin.listen)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self.accepting:
            loop.create_task(self._reconcile_listeners(old, new))
        # A static login removed by the new file is revoked now, not at its next reconnect.
        valid = {(bn, login.agent) for (bn, _), login in self._logins.items()}
        stale = [c for c in list(self.connections)
                 if getattr(c, "session_id", None) is None and getattr(c, "agent", None) is not None
                 and (getattr(c, "backend_name", None), c.agent) not in valid]
        if stale:
            log.warning("closing %d connection(s) whose login the new configuration removed", len(stale))
            loop.create_task(self.close_connections(
                stale, "your login was removed from the proxy configuration; connection closed"))

    async def _reconcile_listeners(self, old: Config, new: Config) -> None:
        async with self._reload_lock:
            old_by = {b.name: b for b in old.backends}
            new_by = {b.name: b for b in new.backends}
            for name in old_by.keys() - new_by.keys():
                log.warning("backend %s removed from the configuration: closing its listener", name)
                await self._stop_backend(name, "backend removed from the proxy configuration")
            for name, b in new_by.items():
                ob = old_by.get(name)
                if ob is None:
                    await self._start_backend(b)
                elif (ob.listen, ob.type, ob.tls) != (b.listen, b.type, b.tls) or \
                        not self.backend_status.get(name, (False,))[0]:
                    server = self.servers.pop(name, None)
                    if server is not None:
                        server.close()
                        await server.wait_closed()
                    await self._start_backend(b)

    async def drain(self, timeout: float | None = None) -> None:
        """Stop accepting, wait for live connections, close the rest, flush the audit log."""
        if self.draining:
            return
        if self._stopped is None:
            self._stopped = asyncio.Event()
        self.draining = True
        self.accepting = False
        timeout = self.config.limits.drain_timeout_seconds if timeout is None else timeout
        for server in self.servers.values():
            server.close()
        n = len(self.connections)
        log.info("draining: %d connection(s) open, waiting up to %.1fs", n, timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # Connections that say they are idle (no statement in flight: relays may expose a
        # boolean `idle`) are closed at once, so pooled idle clients do not hold the drain
        # for the whole timeout; busy ones get until the deadline to finish.
        while self.connections and loop.time() < deadline:
            idle = [c for c in list(self.connections) if getattr(c, "idle", False) is True]
            if idle:
                await self.close_connections(idle, "the proxy is shutting down")
                for c in idle:
                    self.connections.discard(c)
            if not self.connections:
                break
            await asyncio.sleep(0.05)
        if self.connections:
            left = len(self.connections)
            log.warning("drain timeout: closing %d connection(s)", left)
            await self.close_connections(self.connections, "the proxy is shutting down")
            # give the relays a moment to send their goodbye messages
            end = loop.time() + 1.0
            while self.connections and loop.time() < end:
                await asyncio.sleep(0.02)
        for server in self.servers.values():
            try:
                await asyncio.wait_for(server.wait_closed(), 1.0)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001
                pass
        self.servers.clear()
        if self.admin_runner is not None:
            await self.admin_runner.cleanup()
            self.admin_runner = None
        self.native.stop()
        await self._detach_sessions()
        await loop.run_in_executor(None, self.audit.close)
        if self._stopped is not None:
            self._stopped.set()

    def request_stop(self) -> None:
        asyncio.get_running_loop().create_task(self.drain())

    def stopped(self) -> bool:
        return self._stopped is not None and self._stopped.is_set()

    def install_signal_handlers(self) -> None:
        """SIGHUP -> reload, SIGTERM/SIGINT -> drain (idempotent; needs the running loop)."""
        if self._signals:
            return
        loop = asyncio.get_running_loop()
        for sig, handler in ((signal.SIGHUP, self.reload), (signal.SIGTERM, self.request_stop),
                             (signal.SIGINT, self.request_stop)):
            try:
                loop.add_signal_handler(sig, handler)
                self._signals.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass

    def remove_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            loop.remove_signal_handler(sig)
        self._signals = []

    async def run_forever(self) -> None:
        """Install the signal handlers (if not yet), start if needed, and wait until a
        SIGTERM/SIGINT drain has finished."""
        self.install_signal_handlers()
        if self._stopped is None:
            await self.start()
        try:
            await self._stopped.wait()
        finally:
            self.remove_signal_handlers()


def _sockname(sock) -> str:
    name = sock.getsockname()
    if isinstance(name, tuple):
        host, port = name[0], name[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return str(name)
