"""Control API on the admin listener (issue 5): agent sessions and their OpenAPI document.

    POST   /api/sessions        create -> 201 {id, agent, username, password, expires_at, connections}
    GET    /api/sessions        list (never secrets)
    GET    /api/sessions/{id}   one session: state, expiry, live connections, counters
    DELETE /api/sessions/{id}   revoke + close every live connection at once
    GET    /openapi.json        OpenAPI 3.0.3 document of exactly these routes (no token needed)

Rules:
- Authentication: `Authorization: Bearer <admin.token>` (RFC 6750 section 2.1), compared in
  constant time (`server.admin.check_bearer`, hmac.compare_digest). Every `/api/` request
  without it gets 401 before anything else is looked at -- even the method or the path --
  so an unauthenticated caller learns nothing. No token configured = the API is disabled
  (default deny). Probes and /metrics stay open (server/admin.py).
- Every error under /api/ is an RFC 9457 problem document (`application/problem+json`:
  type, title, status, detail), including aiohttp's own 404/405 and unexpected exceptions
  (500 without internals).
- Input: JSON only (RFC 8259; duplicate keys, NaN/Infinity and non-objects refused), at most
  `MAX_BODY_BYTES`, validated strictly (pydantic, extra=forbid, no type coercion). Bad input
  -> 400/413/415/422 and nothing is created.
- Responses carry `Cache-Control: no-store` (RFC 9111 section 5.2.2.5): the 201 holds a
  password shown exactly once.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from sandbox_db_proxy.sessions.manager import MAX_TTL_SECONDS, SESSION_BACKEND_TYPES, SessionError

log = logging.getLogger("sandbox_db_proxy.sessions.api")

__all__ = ["register", "setup_admin", "openapi_document", "CreateSession", "MAX_BODY_BYTES"]

MAX_BODY_BYTES = 16 * 1024
PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "urn:sandbox-db-proxy:problem:"     # RFC 9457 section 3.1.1: a URI reference

AGENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$"
BACKEND_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"    # config.Backend.name
MAX_IDLE_SECONDS = 7 * 24 * 3600
MAX_CONNECTIONS = 10_000
PROXY_KEY = web.AppKey("sessions_proxy_app", object)

AgentName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=AGENT_PATTERN)]
BackendName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=BACKEND_PATTERN)]
Cidr = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class CreateSession(BaseModel):
    """POST /api/sessions body (issue 5). strict: "600" is not 600, true is not 1."""
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    agent: AgentName
    backends: Annotated[list[BackendName], Field(min_length=1, max_length=32)]
    ttl_seconds: Annotated[int, Field(ge=1)] | None = None
    idle_timeout_seconds: Annotated[int, Field(ge=1, le=MAX_IDLE_SECONDS)] | None = None
    max_connections: Annotated[int, Field(ge=1, le=MAX_CONNECTIONS)] | None = None
    allowed_ips: Annotated[list[Cidr], Field(max_length=64)] = []


# -- problem documents (RFC 9457) ---------------------------------------------------------

_TITLES = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
           409: "Conflict", 413: "Content Too Large", 415: "Unsupported Media Type",
           422: "Unprocessable Content", 429: "Too Many Requests", 500: "Internal Server Error",
           503: "Service Unavailable"}


def problem(status: int, kind: str, detail: str, title: str | None = None,
            headers: dict | None = None, **extra: Any) -> web.Response:
    body = {"type": PROBLEM_BASE + kind, "title": title or _TITLES.get(status, "Error"),
            "status": status, "detail": detail}
    body.update({k: v for k, v in extra.items() if v is not None})
    h = {"Cache-Control": "no-store"}
    h.update(headers or {})
    return web.Response(status=status, body=json.dumps(body).encode(), content_type=PROBLEM_JSON,
                        headers=h)


def _json(body: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    h = {"Cache-Control": "no-store"}
    h.update(headers or {})
    return web.Response(status=status, body=json.dumps(body).encode(), content_type="application/json",
                        headers=h)


class _BadRequest(Exception):
    def __init__(self, status: int, kind: str, detail: str, **extra: Any):
        super().__init__(detail)
        self.status, self.kind, self.detail, self.extra = status, kind, detail, extra


# -- request handling ---------------------------------------------------------------------

def _manager(request: web.Request):
    app = request.app[PROXY_KEY]
    mgr = getattr(app, "sessions", None)
    if mgr is None:
        raise _BadRequest(503, "sessions-unavailable", "the session store is not open on this proxy "
                          "(see the proxy log for why); no session can be created or changed")
    return mgr


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _bad_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (RFC 8259 section 6)")


async def _read_json(request: web.Request) -> dict:
    ctype = request.content_type
    if ctype != "application/json" and not (ctype.startswith("application/") and ctype.endswith("+json")):
        raise _BadRequest(415, "unsupported-media-type",
                          f"send the body as JSON with 'Content-Type: application/json' (got {ctype!r})")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise _BadRequest(413, "body-too-large", f"the body may be at most {MAX_BODY_BYTES} bytes "
                          f"(Content-Length says {request.content_length})")
    buf = bytearray()
    while True:
        chunk = await request.content.read(MAX_BODY_BYTES + 1 - len(buf))
        if not chunk:
            break
        buf += chunk
        if len(buf) > MAX_BODY_BYTES:
            raise _BadRequest(413, "body-too-large", f"the body may be at most {MAX_BODY_BYTES} bytes")
    try:
        data = json.loads(bytes(buf).decode("utf-8"), object_pairs_hook=_reject_duplicates,
                          parse_constant=_bad_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _BadRequest(400, "malformed-json", f"the body is not valid UTF-8 JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _BadRequest(400, "malformed-json", f"the body must be a JSON object, not {type(data).__name__}")
    return data


def _validation_errors(exc: ValidationError) -> list[dict]:
    # Never echo input values back (they could be anything, including secrets pasted by mistake).
    out = []
    for e in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = ".".join(str(p) for p in e["loc"]) or "(body)"
        msg = "unknown field" if e["type"] == "extra_forbidden" else e["msg"]
        out.append({"field": loc, "message": msg})
    return out


def _request_host(request: web.Request) -> str | None:
    """The host part of the admin request's Host header, if it is a plain name or address."""
    try:
        host = request.url.host
    except Exception:  # noqa: BLE001 -- a malformed Host header is simply not used
        return None
    if not host:
        return None
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    return host if re.fullmatch(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
                                r"(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?", host) else None


async def create_session(request: web.Request) -> web.Response:
    mgr = _manager(request)
    data = await _read_json(request)
    try:
        req = CreateSession.model_validate(data)
    except ValidationError as exc:
        errors = _validation_errors(exc)
        return problem(422, "validation", "the request does not match the CreateSessionRequest schema: "
                       + "; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors)
    try:
        rec, password, conns = mgr.create(agent=req.agent, backends=req.backends, ttl_seconds=req.ttl_seconds,
                                          idle_timeout_seconds=req.idle_timeout_seconds,
                                          max_connections=req.max_connections, allowed_ips=req.allowed_ips,
                                          host=_request_host(request))
    except SessionError as exc:
        return problem(exc.status, exc.kind, exc.detail, title=exc.title, **exc.extra)
    from sandbox_db_proxy.sessions.manager import rfc3339
    body = {"id": rec.id, "agent": rec.agent, "username": rec.username, "password": password,
            "expires_at": rfc3339(rec.expires_at), "connections": conns}
    return _json(body, 201, headers={"Location": f"/api/sessions/{rec.id}"})


async def list_sessions(request: web.Request) -> web.Response:
    mgr = _manager(request)
    return _json({"sessions": mgr.views()})


def _lookup(request: web.Request):
    mgr = _manager(request)
    sid = request.match_info["id"]
    rec = mgr.get(sid)
    if rec is None:
        raise _BadRequest(404, "session-not-found", "no session with this id (it never existed or ended "
                          "more than a day ago)")
    return mgr, rec


async def get_session(request: web.Request) -> web.Response:
    mgr, rec = _lookup(request)
    return _json(mgr.view(rec))


async def delete_session(request: web.Request) -> web.Response:
    mgr, rec = _lookup(request)
    try:
        result = await mgr.revoke(rec.id)
    except SessionError as exc:
        return problem(exc.status, exc.kind, exc.detail, title=exc.title)
    if result is None:
        raise _BadRequest(404, "session-not-found", "no session with this id")
    rec, closed = result
    body = mgr.view(rec)
    body["connections_closed"] = closed
    return _json(body)


async def openapi(request: web.Request) -> web.Response:
    return _json(openapi_document(request.app[PROXY_KEY]))


# -- middleware: authentication and problem documents for everything under /api/ ---------

def _is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


@web.middleware
async def api_middleware(request: web.Request, handler):
    if not _is_api(request.path):
        return await handler(request)
    from sandbox_db_proxy.server.admin import check_bearer
    proxy_app = request.app[PROXY_KEY]
    if not check_bearer(request, proxy_app):
        if proxy_app.config.admin.token is None:
            detail = ("the session API is disabled: no admin token is configured (set admin.token, "
                      "admin.token_file or ADMIN_TOKEN)")
        else:
            detail = "send 'Authorization: Bearer <admin token>' (admin.token / ADMIN_TOKEN)"
        return problem(401, "unauthorized", detail,
                       headers={"WWW-Authenticate": 'Bearer realm="sandbox-db-proxy"'})
    try:
        return await handler(request)
    except _BadRequest as exc:
        return problem(exc.status, exc.kind, exc.detail, **exc.extra)
    except web.HTTPException as exc:
        if exc.content_type == PROBLEM_JSON:
            raise
        headers = {}
        if exc.status == 405:
            allowed = getattr(exc, "allowed_methods", None)
            if allowed:
                headers["Allow"] = ", ".join(sorted(allowed))
        if exc.status < 400:
            raise
        kind = {404: "not-found", 405: "method-not-allowed", 413: "body-too-large"}.get(exc.status, "http-error")
        detail = {404: f"no such API path: {request.path}",
                  405: f"{request.method} is not allowed on {request.path}"}.get(exc.status, exc.reason)
        return problem(exc.status, kind, detail, headers=headers)
    except Exception:  # noqa: BLE001 -- never leak internals; the log has the traceback
        log.exception("session API %s %s failed", request.method, request.path)
        return problem(500, "internal-error", "the proxy failed to handle this request; see its log")


def register(web_app: web.Application, proxy_app: Any) -> None:
    """Mount the control API on the admin aiohttp app (before it starts). Idempotent: the
    admin listener's extension list and a setup hook may both call it."""
    if PROXY_KEY in web_app:
        return
    web_app[PROXY_KEY] = proxy_app
    web_app.middlewares.append(api_middleware)
    web_app.router.add_post("/api/sessions", create_session)
    web_app.router.add_get("/api/sessions", list_sessions, allow_head=False)
    web_app.router.add_get("/api/sessions/{id}", get_session, allow_head=False)
    web_app.router.add_delete("/api/sessions/{id}", delete_session)
    web_app.router.add_get("/openapi.json", openapi, allow_head=False)


setup_admin = register     # server/admin.py extension-module entry point name


# -- OpenAPI 3.0.3 document ---------------------------------------------------------------

def _problem_response(desc: str) -> dict:
    return {"description": desc, "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def openapi_document(proxy_app: Any = None) -> dict:
    """The OpenAPI description of exactly the routes above. The TTL maximum and the backend
    names follow the running config (sessions.timeout_seconds may exceed the built-in 7-day
    ceiling)."""
    max_ttl = MAX_TTL_SECONDS
    backend_item: dict = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": BACKEND_PATTERN}
    try:
        cfg = proxy_app.config
        max_ttl = max(MAX_TTL_SECONDS, cfg.sessions.timeout_seconds)
        # The backends this proxy can lease (manager.SESSION_BACKEND_TYPES), as an enum.
        names = [b.name for b in cfg.backends if b.type in SESSION_BACKEND_TYPES]
        if names:
            backend_item = {"type": "string", "enum": names}
    except AttributeError:
        pass
    nullable_int = {"type": "integer", "nullable": True}
    session_props = {
        "id": {"type": "string", "format": "uuid"},
        "agent": {"type": "string"},
        "username": {"type": "string", "description": "generated login name (not a secret)"},
        "backends": {"type": "array", "items": {"type": "string"}},
        "state": {"type": "string", "enum": ["active", "revoked", "expired"]},
        "created_at": {"type": "string", "format": "date-time"},
        "expires_at": {"type": "string", "format": "date-time"},
        "ended_at": {"type": "string", "format": "date-time", "nullable": True},
        "end_reason": {"type": "string", "nullable": True},
        "idle_timeout_seconds": nullable_int,
        "max_connections": nullable_int,
        "allowed_ips": {"type": "array", "items": {"type": "string"}},
        "live_connections": {"type": "integer", "minimum": 0},
        "connections_total": {"type": "integer", "minimum": 0},
        "statements_allowed": {"type": "integer", "minimum": 0},
        "statements_blocked": {"type": "integer", "minimum": 0},
        "bytes_in": {"type": "integer", "minimum": 0},
        "bytes_out": {"type": "integer", "minimum": 0},
        "last_activity": {"type": "string", "format": "date-time", "nullable": True},
    }
    unauthorized = _problem_response("missing or wrong bearer token (or no admin token configured)")
    id_param = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"},
                "description": "session id (a UUID)"}
    return {
        "openapi": "3.0.3",
        "info": {"title": "sandbox-db-proxy control API", "version": "1",
                 "description": "Agent sessions: per-agent short-lived database credentials "
                                "with their own limits, and a kill switch."},
        "paths": {
            "/api/sessions": {
                "post": {
                    "operationId": "createSession",
                    "summary": "Create a session; the password is shown once",
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/CreateSessionRequest"}}}},
                    "responses": {
                        "201": {"description": "created",
                                "headers": {"Location": {"schema": {"type": "string"}}},
                                "content": {"application/json": {
                                    "schema": {"$ref": "#/components/schemas/CreatedSession"}}}},
                        "400": _problem_response("malformed JSON"),
                        "401": unauthorized,
                        "409": _problem_response("the agent holds max_sessions_per_user active sessions"),
                        "413": _problem_response("body too large"),
                        "415": _problem_response("not JSON"),
                        "422": _problem_response("invalid field values or unknown backend"),
                        "429": _problem_response("max_concurrent_agents sessions are active fleet-wide"),
                        "503": _problem_response("session store unavailable"),
                    },
                },
                "get": {
                    "operationId": "listSessions",
                    "summary": "List sessions (no secrets)",
                    "responses": {
                        "200": {"description": "sessions", "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/SessionList"}}}},
                        "401": unauthorized,
                        "503": _problem_response("session store unavailable"),
                    },
                },
            },
            "/api/sessions/{id}": {
                "parameters": [id_param],
                "get": {
                    "operationId": "getSession",
                    "summary": "One session: state, expiry, live connections, counters (no secrets)",
                    "responses": {
                        "200": {"description": "the session", "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/Session"}}}},
                        "401": unauthorized,
                        "404": _problem_response("no such session"),
                        "503": _problem_response("session store unavailable"),
                    },
                },
                "delete": {
                    "operationId": "revokeSession",
                    "summary": "Revoke the credentials and close every live connection at once",
                    "responses": {
                        "200": {"description": "revoked", "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/RevokedSession"}}}},
                        "401": unauthorized,
                        "404": _problem_response("no such session"),
                        "503": _problem_response("session store unavailable"),
                    },
                },
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": {"description": "OpenAPI document",
                                          "content": {"application/json": {"schema": {"type": "object"}}}}},
                },
            },
        },
        "security": [{"bearerAuth": []}],
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "CreateSessionRequest": {
                    "type": "object", "additionalProperties": False, "required": ["agent", "backends"],
                    "properties": {
                        "agent": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": AGENT_PATTERN},
                        "backends": {"type": "array", "minItems": 1, "maxItems": 32, "items": backend_item},
                        "ttl_seconds": {"type": "integer", "minimum": 1, "maximum": max_ttl, "nullable": True},
                        "idle_timeout_seconds": {"type": "integer", "minimum": 1, "maximum": MAX_IDLE_SECONDS,
                                                 "nullable": True},
                        "max_connections": {"type": "integer", "minimum": 1, "maximum": MAX_CONNECTIONS,
                                            "nullable": True},
                        "allowed_ips": {"type": "array", "maxItems": 64,
                                        "items": {"type": "string", "minLength": 1, "maxLength": 64},
                                        "description": "CIDRs or addresses; empty = any"},
                    },
                },
                "CreatedSession": {
                    "type": "object", "required": ["id", "agent", "username", "password", "expires_at",
                                                   "connections"],
                    "properties": {
                        "id": {"type": "string", "format": "uuid"},
                        "agent": {"type": "string"},
                        "username": {"type": "string"},
                        "password": {"type": "string", "description": "shown only in this response"},
                        "expires_at": {"type": "string", "format": "date-time"},
                        "connections": {"type": "object", "additionalProperties": {"type": "string"},
                                        "description": "backend name -> postgresql:// or mysql:// URI"},
                    },
                },
                "Session": {"type": "object", "required": list(session_props), "properties": session_props,
                            "additionalProperties": False},
                "RevokedSession": {"type": "object",
                                   "required": list(session_props) + ["connections_closed"],
                                   "properties": {**session_props,
                                                  "connections_closed": {"type": "integer", "minimum": 0}},
                                   "additionalProperties": False},
                "SessionList": {"type": "object", "required": ["sessions"], "properties": {
                    "sessions": {"type": "array", "items": {"$ref": "#/components/schemas/Session"}}}},
                "Problem": {
                    "type": "object", "required": ["type", "title", "status", "detail"],
                    "description": "RFC 9457 problem details",
                    "properties": {
                        "type": {"type": "string"}, "title": {"type": "string"},
                        "status": {"type": "integer"}, "detail": {"type": "string"},
                        "errors": {"type": "array", "items": {"type": "object"}},
                        "limit": {"type": "integer"}, "active": {"type": "integer"},
                    },
                },
            },
        },
    }
