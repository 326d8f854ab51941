"""Admin HTTP listener (aiohttp), default 127.0.0.1:8080 (`admin.listen`).

Routes here: `GET /metrics` (Prometheus text format), `GET /livez` (the process runs its
event loop), `GET /readyz` (200 only when every configured backend is serving, the audit
log is not failing closed, and the proxy is not draining; 503 otherwise, with a JSON body that
says which backend is not ready and why -- and, in monitor mode, a loud warning).
Probes and metrics carry no secrets and need no token (issue 5).

Extension point for the control API (issue 5): before the runner starts, `build_admin_app`
calls `setup_admin(web_app, proxy_app)` of each importable module in `ADMIN_EXTENSIONS` and
every callable in `proxy_app.admin_setup_hooks`; `check_bearer(request, proxy_app)` is the
constant-time `Authorization: Bearer <admin.token>` check those routes should use.
"""

from __future__ import annotations

import hmac
import importlib
import logging

import orjson
from aiohttp import web

from sandbox_db_proxy.metrics import CONTENT_TYPE_LATEST
from sandbox_db_proxy.server.net import parse_hostport

log = logging.getLogger("sandbox_db_proxy.admin")

APP_KEY = web.AppKey("proxy_app", object)
# Modules that add routes (each with `setup_admin(web_app, proxy_app)`); missing ones are skipped.
ADMIN_EXTENSIONS: tuple[str, ...] = ("sandbox_db_proxy.sessions.api",)   # issue 5: /api/sessions, /openapi.json


def _json(body, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body, option=orjson.OPT_INDENT_2), status=status,
                        content_type="application/json")


async def metrics(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    # CONTENT_TYPE_LATEST = "text/plain; version=0.0.4; charset=utf-8" (exposition format)
    return web.Response(body=app.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def livez(request: web.Request) -> web.Response:
    return _json({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    ready, body = request.app[APP_KEY].readiness()
    return _json(body, 200 if ready else 503)


def check_bearer(request: web.Request, proxy_app) -> bool:
    """True when the request carries `Authorization: Bearer <admin.token>`. No token
    configured -> False (default deny: mutations need an explicit token)."""
    token = proxy_app.config.admin.token
    if token is None:
        return False
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        return False
    return hmac.compare_digest(given.strip().encode(), token.get_secret_value().encode())


def build_admin_app(proxy_app) -> web.Application:
    web_app = web.Application(client_max_size=1024 * 1024)
    web_app[APP_KEY] = proxy_app
    web_app.router.add_get("/metrics", metrics)
    web_app.router.add_get("/livez", livez)
    web_app.router.add_get("/readyz", readyz)
    for name in ADMIN_EXTENSIONS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.setup_admin(web_app, proxy_app)
    for hook in proxy_app.admin_setup_hooks:
        hook(web_app, proxy_app)
    return web_app


async def start_admin(proxy_app) -> tuple[web.AppRunner, tuple[str, int]]:
    """Start the listener on `admin.listen`; returns (runner, bound (host, port))."""
    host, port = parse_hostport(proxy_app.config.admin.listen)
    runner = web.AppRunner(build_admin_app(proxy_app), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    bound = (host, port)
    server = getattr(site, "_server", None)
    if server is not None and server.sockets:
        bound = server.sockets[0].getsockname()[:2]
    log.info("admin listener on http://%s:%d (/metrics /livez /readyz)", bound[0], bound[1])
    return runner, bound
