"""`sandbox-db-proxy check-config --config FILE`: run the same loader as `serve` without
opening sockets. Exit 0 and print the effective configuration (secrets masked, values that
came from the environment marked), or exit 2 and print every problem at once."""

from __future__ import annotations

import argparse
import os
import sys

HELP = "validate a configuration file and print the effective settings"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sandbox_db_proxy.commands.serve import DEFAULT_CONFIG
    parser.add_argument("--config", "-c", default=os.environ.get("SANDBOX_DB_PROXY_CONFIG", DEFAULT_CONFIG),
                        help="YAML configuration file")
    parser.add_argument("--json", action="store_true", help="print the effective config as JSON (secrets masked)")


def run(args: argparse.Namespace) -> int:
    from sandbox_db_proxy.config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"{args.config}: INVALID ({len(exc.problems)} problem{'s' * (len(exc.problems) != 1)})",
              file=sys.stderr)
        for p in exc.problems:
            print(f"  {p}", file=sys.stderr)
        return 2
    if args.json:
        import orjson
        sys.stdout.write(orjson.dumps(effective(config), option=orjson.OPT_INDENT_2, default=str).decode() + "\n")
    else:
        print(summary(config))
    return 0


def _mask(v) -> str:
    return "(not set)" if v is None else "********"


def effective(config) -> dict:
    """The effective config as plain data; SecretStr values are masked by pydantic's dump
    (`**********`), and `env_overrides` lists keys that came from the environment."""
    data = config.model_dump(mode="json")
    data["security"]["allowed_ips"] = [str(n) for n in config.security.allowed_ips]
    data["env_overrides"] = config.env_overrides
    return data


def summary(config) -> str:
    from sandbox_db_proxy.config.warnings import config_warnings
    from sandbox_db_proxy.server.app import RELAYS

    env = config.env_overrides

    def src(key: str) -> str:
        return f"   (from ${env[key]})" if key in env else ""

    out = [f"{config.source}: OK"]
    if config.monitor_mode:
        out.append("WARNING: MONITOR MODE (security.enforce_read_only: false): writes are FORWARDED and only "
                   "audited" + src("security.enforce_read_only"))
    out.append("backends:")
    for b in config.backends:
        served = "" if b.type in RELAYS else "   [no relay for this type yet: serve reports it NOT READY]"
        out.append(f"  - {b.name} ({b.type}) listen {b.listen} -> {b.address}"
                   + ("" if b.is_unix_socket else f":{b.port}") + served)
        out.append(f"      username {b.username}, password {_mask(b.password)}"
                   + (f" (from {b.password_file})" if b.password_file else "")
                   + f", database {b.database or '(none)'}, allowed_databases {list(b.allowed_databases or ())}")
        out.append(f"      client tls: {'required' if b.tls and b.tls.required else ('optional' if b.tls else 'off')}"
                   f", backend_tls: {b.backend_tls.mode}, statement_timeout_ms: {config.statement_timeout_ms(b)}"
                   f", allow_unknown_functions: {b.allow_unknown_functions}"
                   f", block_sensitive_show: {b.block_sensitive_show}")
        agents = [a.name for a in config.agents_for(b.name)]
        out.append("      logins: " + (", ".join(agents) if agents else
                                       f"backend credentials ({b.username}) -- no agents listed"))
    s = config.security
    out.append("security:")
    out.append(f"  enforce_read_only: {s.enforce_read_only}{src('security.enforce_read_only')}")
    out.append(f"  audit_enabled: {s.audit_enabled}{src('security.audit_enabled')}")
    out.append(f"  blocked_commands: {', '.join(s.blocked_commands) or '(none beyond the engine allowlist)'}")
    out.append(f"  allowed_ips: {', '.join(str(n) for n in s.allowed_ips) or '(any)'}")
    lim = config.limits
    out.append("limits: " + ", ".join(f"{k}={v}" for k, v in lim.model_dump().items()))
    out.append(f"agents: {', '.join(a.name + ('' if a.backends is None else ' ' + str(list(a.backends))) for a in config.agents) or '(none)'}")
    out.append(f"admin: listen {config.admin.listen}, token {_mask(config.admin.token)}{src('admin.token')}")
    a = config.audit
    out.append(f"audit: path {a.path}, flush every {a.flush_records} records / {a.flush_interval_ms} ms, "
               f"queue {a.queue_size}, fail_closed {a.fail_closed}, syslog {a.syslog}")
    ss = config.sessions
    out.append("sessions:")
    out.append(f"  timeout_seconds: {ss.timeout_seconds}{src('sessions.timeout_seconds')}")
    out.append(f"  max_sessions_per_user: {ss.max_sessions_per_user}{src('sessions.max_sessions_per_user')}")
    out.append(f"  max_concurrent_agents: {ss.max_concurrent_agents}{src('sessions.max_concurrent_agents')}")
    out.append(f"  auto_destroy: {ss.auto_destroy}{src('sessions.auto_destroy')}")
    out.append(f"  store: {ss.store}")
    if env:
        out.append("from the environment: " + ", ".join(f"{k} <- ${v}" for k, v in sorted(env.items())))
    warnings = config_warnings(config)
    if warnings:
        out.append("warnings:")
        out.extend(f"  - {w}" for w in warnings)
    return "\n".join(out)
