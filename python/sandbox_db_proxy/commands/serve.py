"""`sandbox-db-proxy serve --config FILE`: run the proxy until SIGTERM/SIGINT.

SIGHUP reloads the file (an invalid file keeps the running configuration); SIGTERM drains
(stop accepting, wait up to `limits.drain_timeout_seconds`, flush the audit log) and exits 0.
`--test-mode` is the guide's name for the self-contained demo (`docker run ... --test-mode`,
section "Database Proxy"): same as `sandbox-db-proxy demo`, listening on all interfaces.
Exit codes: 0 clean shutdown, 2 configuration error, 1 startup failure.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

HELP = "run the proxy (SIGHUP reloads the config, SIGTERM drains and exits)"
DEFAULT_CONFIG = "/etc/sandbox-db-proxy/config.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", default=os.environ.get("SANDBOX_DB_PROXY_CONFIG", DEFAULT_CONFIG),
                        help=f"YAML configuration file (default: $SANDBOX_DB_PROXY_CONFIG or {DEFAULT_CONFIG})")
    parser.add_argument("--test-mode", action="store_true",
                        help="run the self-contained demo (embedded PostgreSQL + proxy + the guide's checks)")
    parser.add_argument("--port", type=int, default=None, help="--test-mode only: proxy port (default 5432)")
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"),
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log level (default INFO)")


def setup_logging(level: str = "INFO") -> None:
    """Plain lines on stderr (container logs); BLOCKED-DB-WRITE lines go through here too."""
    root = logging.getLogger()
    if not any(getattr(h, "_sdp", False) for h in root.handlers):
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        h._sdp = True  # type: ignore[attr-defined]
        root.addHandler(h)
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    if args.test_mode:
        from sandbox_db_proxy.commands import demo
        return demo.run_demo(host="0.0.0.0", port=args.port if args.port is not None else 5432,
                             check_only=False)
    from sandbox_db_proxy.config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"configuration error(s):\n{exc}", file=sys.stderr)
        return 2
    return serve(config, args.config)


def tune_process() -> None:
    """Process-wide settings for a long-running proxy with many sockets.

    - glibc trims the top of the heap after each large free, and the next audit batch
      (orjson.dumps) page-faults it back in: measured ~2 µs per record. A high
      M_TRIM_THRESHOLD keeps that memory mapped.
    - Raise the open-file soft limit to the hard limit: every client costs two sockets.
    """
    import ctypes
    import ctypes.util
    import resource

    try:
        ctypes.CDLL(ctypes.util.find_library("c")).mallopt(-1, 256 * 1024 * 1024)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError, TypeError):
        pass
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 1 << 20, hard))
        except (ValueError, OSError):
            pass


def serve(config, config_path: str | None) -> int:
    import uvloop

    from sandbox_db_proxy.server.app import ProxyApp

    tune_process()

    async def main() -> int:
        app = ProxyApp(config, config_path=config_path)
        app.install_signal_handlers()  # before start: a SIGTERM during startup still drains
        try:
            await app.start()
        except OSError as exc:
            logging.getLogger("sandbox_db_proxy").error("startup failed: %s", exc)
            await app.drain(0)
            return 1
        await app.run_forever()
        return 0

    try:
        return uvloop.run(main())
    except KeyboardInterrupt:
        return 0
