"""Valid but risky settings: logged at `serve` startup and listed by `check-config`, never
fatal (monitor mode, backends without a relay, unencrypted backend links, an admin listener
on the network without a token, audit disabled or not writable)."""

from __future__ import annotations

import os

from sandbox_db_proxy.config.models import Config
from sandbox_db_proxy.server.net import parse_hostport


def config_warnings(config: Config) -> list[str]:
    """Valid but risky settings, said at startup and by check-config (never fatal)."""
    from sandbox_db_proxy.server.app import RELAYS  # the relay registry lives with the runtime

    out = []
    if config.monitor_mode:
        out.append("security.enforce_read_only is false: MONITOR MODE, writes are forwarded")
    for b in config.backends:
        if b.type not in RELAYS:
            out.append(f"backends: {b.name!r} has type {b.type!r}, which has no relay yet: it will not be served")
        elif b.backend_tls.mode in ("disable", "prefer") and not b.is_unix_socket and \
                b.address not in ("127.0.0.1", "::1", "localhost"):
            out.append(f"backends: {b.name!r}: backend_tls.mode is {b.backend_tls.mode!r}: queries and results "
                       "may cross the network unencrypted and the server is not authenticated "
                       "(use verify-full with ca_file)")
    host, _ = parse_hostport(config.admin.listen)
    if host not in ("127.0.0.1", "::1", "localhost") and config.admin.token is None:
        out.append(f"admin.listen is {config.admin.listen} (not loopback) and admin.token is not set: "
                   "the session API stays disabled; /metrics and the probes are reachable from the network")
    if not config.security.audit_enabled:
        out.append("security.audit_enabled is false: no audit records are written (BLOCKED-DB-WRITE lines "
                   "still go to stderr)")
    audit_dir = os.path.dirname(os.path.abspath(config.audit.path))
    probe = audit_dir
    while probe and not os.path.exists(probe):
        probe = os.path.dirname(probe) if os.path.dirname(probe) != probe else ""
    if config.security.audit_enabled and probe and not os.access(probe, os.W_OK):
        out.append(f"audit.path: {audit_dir} is not writable by this user"
                   + (" (audit.fail_closed: statements will be refused)" if config.audit.fail_closed else ""))
    return out
