"""`sandbox-db-proxy healthcheck [--config FILE | --url URL]`: GET /readyz on the admin
listener; exit 0 when ready (HTTP 200), 1 otherwise. Used by the Dockerfile's HEALTHCHECK,
so it must be quick and need nothing but the standard library."""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request

HELP = "probe the admin listener's /readyz (exit 0 ready, 1 not ready)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--url", help="readiness URL, e.g. http://127.0.0.1:8080/readyz")
    g.add_argument("--config", "-c", help="take admin.listen from this config file")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    parser.add_argument("--quiet", "-q", action="store_true", help="print nothing")


def url_from_config(path: str) -> str:
    from sandbox_db_proxy.config import load_config
    from sandbox_db_proxy.server.net import format_hostport, parse_hostport

    host, port = parse_hostport(load_config(path).admin.listen)
    # A wildcard listener is reachable on loopback from inside the same host/container.
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://{format_hostport(host, port)}/readyz"


def run(args: argparse.Namespace) -> int:
    url = args.url
    if url is None:
        cfg = args.config or os.environ.get("SANDBOX_DB_PROXY_CONFIG")
        if cfg:
            from sandbox_db_proxy.config import ConfigError
            try:
                url = url_from_config(cfg)
            except ConfigError as exc:
                print(f"healthcheck: {exc}", file=sys.stderr)
                return 1
        else:
            url = "http://127.0.0.1:8080/readyz"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        if not args.quiet:
            print(f"healthcheck: {url}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"{url}: HTTP {status}")
        text = body.decode("utf-8", "replace").strip()
        if text:
            print(text)
    return 0 if status == 200 else 1
