"""Control API (sessions/api.py) through a real running ProxyApp's admin listener (urllib).

Authentication, the exact create/list/get/delete shapes, secrets never returned after the
201, caps (409/429), and bad input -> 4xx problem documents with nothing changed."""

from __future__ import annotations

import http.client
import json
import urllib.parse

import pytest

from test_sessions_helpers import MY, PG, TOKEN, dbs, proxy_fixture, start_proxy  # noqa: F401 (fixture)

PER_AGENT, FLEET = 2, 3

proxy = proxy_fixture(sessions={"max_sessions_per_user": PER_AGENT, "max_concurrent_agents": FLEET})


@pytest.fixture(autouse=True)
def clean(proxy):
    yield
    _, _, doc = proxy.api("GET", "/api/sessions")
    for s in doc["sessions"]:
        if s["state"] == "active":
            proxy.api("DELETE", f"/api/sessions/{s['id']}")


def is_problem(status, headers, doc, code):
    assert status == code, (status, doc)
    assert headers["Content-Type"].startswith("application/problem+json"), headers
    assert set(doc) >= {"type", "title", "status", "detail"} and doc["status"] == code, doc
    assert doc["detail"], doc
    return doc


def all_sessions(proxy) -> list[dict]:
    status, _, doc = proxy.api("GET", "/api/sessions")
    assert status == 200
    return doc["sessions"]


# -- authentication ---------------------------------------------------------------------------

@pytest.mark.parametrize("method,path,body", [
    ("POST", "/api/sessions", {"agent": "x", "backends": [PG]}),
    ("GET", "/api/sessions", None),
    ("GET", "/api/sessions/00000000-0000-0000-0000-000000000000", None),
    ("DELETE", "/api/sessions/00000000-0000-0000-0000-000000000000", None),
    ("PUT", "/api/sessions", {"agent": "x"}),
    ("GET", "/api/nothing-here", None),
])
@pytest.mark.parametrize("token", [None, "wrong-token", TOKEN + "x", ""])
def test_no_or_wrong_token_is_401(proxy, method, path, body, token):
    before = all_sessions(proxy)
    status, headers, doc = proxy.api(method, path, body, token=token or None)
    is_problem(status, headers, doc, 401)
    assert headers.get("WWW-Authenticate", "").startswith("Bearer")
    assert all_sessions(proxy) == before


def test_other_auth_schemes_are_401(proxy):
    for value in (f"Basic {TOKEN}", TOKEN, "Bearer  ", f"bearer{TOKEN}"):
        status, headers, doc = proxy.api("GET", "/api/sessions", token=None, headers={"Authorization": value})
        is_problem(status, headers, doc, 401)


def test_probes_metrics_and_openapi_stay_open(proxy):
    for path in ("/livez", "/metrics", "/openapi.json"):
        status, _, _ = proxy.api("GET", path, token=None)
        assert status == 200, path
    _, _, doc = proxy.api("GET", "/openapi.json", token=None)
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {"/api/sessions", "/api/sessions/{id}", "/openapi.json"}
    assert set(doc["paths"]["/api/sessions"]) == {"post", "get"}
    assert set(doc["paths"]["/api/sessions/{id}"]) - {"parameters"} == {"get", "delete"}


def test_api_disabled_without_configured_token(pg_server, mariadb_server, dbs):
    p = start_proxy(pg_server, dbs[0], mariadb_server, dbs[1], token=None)
    try:
        for t in (None, "anything"):
            status, headers, doc = p.api("POST", "/api/sessions", {"agent": "a", "backends": [PG]}, token=t)
            assert "disabled" in is_problem(status, headers, doc, 401)["detail"]
        assert p.call(lambda: p.app.sessions.list()) == []
    finally:
        p.stop()


# -- create / get / list / delete -------------------------------------------------------------

def test_create_returns_credentials_once(proxy, dbs):
    body = {"agent": "a1", "backends": [PG, MY], "ttl_seconds": 600, "idle_timeout_seconds": 60,
            "max_connections": 4, "allowed_ips": ["10.0.0.0/8", "127.0.0.1"]}
    status, headers, doc = proxy.api("POST", "/api/sessions", body)
    assert status == 201, doc
    assert set(doc) == {"id", "agent", "username", "password", "expires_at", "connections"}
    assert headers["Location"] == f"/api/sessions/{doc['id']}"
    assert "no-store" in headers["Cache-Control"]
    assert doc["agent"] == "a1" and len(doc["password"]) >= 24
    assert set(doc["connections"]) == {PG, MY}
    pg = urllib.parse.urlparse(doc["connections"][PG])
    my = urllib.parse.urlparse(doc["connections"][MY])
    assert (pg.scheme, pg.username, pg.password, pg.hostname, pg.port, pg.path) == (
        "postgresql", doc["username"], doc["password"], "127.0.0.1", proxy.port(PG), f"/{dbs[0]}")
    assert (my.scheme, my.username, my.password, my.hostname, my.port, my.path) == (
        "mysql", doc["username"], doc["password"], "127.0.0.1", proxy.port(MY), f"/{dbs[1]}")

    status, _, one = proxy.api("GET", f"/api/sessions/{doc['id']}")
    assert status == 200
    assert one["state"] == "active" and one["agent"] == "a1" and one["backends"] == [PG, MY]
    assert one["expires_at"] == doc["expires_at"] and one["max_connections"] == 4
    assert one["idle_timeout_seconds"] == 60 and one["allowed_ips"] == ["10.0.0.0/8", "127.0.0.1/32"]
    assert one["live_connections"] == 0 and one["statements_allowed"] == 0
    listed = all_sessions(proxy)
    assert [s["id"] for s in listed if s["id"] == doc["id"]] == [doc["id"]]
    for text in (json.dumps(one), json.dumps(listed)):
        assert doc["password"] not in text and "password" not in text and "SCRAM" not in text

    rec = proxy.events("session_created")
    assert rec and rec[-1]["session.id"] == doc["id"] and rec[-1]["agent"] == "a1"
    assert doc["password"] not in json.dumps(proxy.records)


def test_default_ttl_is_sessions_timeout(proxy):
    import datetime
    doc = proxy.create(agent="ttl", backends=[PG])
    exp = datetime.datetime.fromisoformat(doc["expires_at"].replace("Z", "+00:00")).timestamp()
    import time
    assert abs(exp - (time.time() + 3600)) < 30


def test_delete_revokes_and_is_idempotent(proxy):
    doc = proxy.create(agent="del", backends=[MY])
    status, _, gone = proxy.api("DELETE", f"/api/sessions/{doc['id']}")
    assert status == 200 and gone["state"] == "revoked" and gone["connections_closed"] == 0
    assert gone["end_reason"] == "session terminated by the operator"
    status, _, again = proxy.api("DELETE", f"/api/sessions/{doc['id']}")
    assert status == 200 and again["state"] == "revoked"
    assert len(proxy.events("session_revoked", **{"session.id": doc["id"]})) == 1
    rec = proxy.events("session_revoked")[-1]
    assert rec["agent"] == "del"


@pytest.mark.parametrize("sid", ["00000000-0000-0000-0000-000000000000", "nope", "%00", "..%2F..%2Fetc"])
def test_unknown_session_is_404(proxy, sid):
    for method in ("GET", "DELETE"):
        status, headers, doc = proxy.api(method, f"/api/sessions/{sid}")
        is_problem(status, headers, doc, 404)


def test_wrong_method_and_path_are_problems(proxy):
    status, headers, doc = proxy.api("PUT", "/api/sessions", {"agent": "x"})
    is_problem(status, headers, doc, 405)
    assert "GET" in headers.get("Allow", "") and "POST" in headers.get("Allow", "")
    is_problem(*proxy.api("GET", "/api/sessions/a/b"), 404)


# -- caps ---------------------------------------------------------------------------------------

def test_per_agent_cap_is_409_and_fleet_cap_is_429(proxy):
    a = [proxy.create(agent="capped", backends=[PG]) for _ in range(PER_AGENT)]
    before = all_sessions(proxy)
    status, headers, doc = proxy.api("POST", "/api/sessions", {"agent": "capped", "backends": [PG]})
    assert "max_sessions_per_user" in is_problem(status, headers, doc, 409)["detail"]
    assert all_sessions(proxy) == before
    proxy.create(agent="other", backends=[MY])             # fleet: PER_AGENT + 1 == FLEET
    status, headers, doc = proxy.api("POST", "/api/sessions", {"agent": "third", "backends": [PG]})
    assert "max_concurrent_agents" in is_problem(status, headers, doc, 429)["detail"]
    # a revoked session frees its slot at once
    proxy.api("DELETE", f"/api/sessions/{a[0]['id']}")
    proxy.create(agent="capped", backends=[PG])


# -- bad input -----------------------------------------------------------------------------------

BAD_BODIES = [
    (b"{not json", 400), (b"", 400), (b"[]", 400), (b'"agent"', 400), (b"null", 400),
    (b'{"agent": "a", "agent": "b", "backends": ["pg-prod"]}', 400),
    (b'{"agent": "a", "backends": ["pg-prod"], "ttl_seconds": NaN}', 400),
    (b'{"agent": "a", "backends": ["pg-prod"], "ttl_seconds": 1' + b"0" * 5000 + b"}", 400),
    (b"\xff\xfe{}", 400),
    (b"[" * 10_000, 400),                                           # nesting bomb
    (b"[" * 20_000, 413),
]
BAD_FIELDS = [
    {"backends": [PG]},                                              # agent missing
    {"agent": "a"},                                                  # backends missing
    {"agent": "a", "backends": []},
    {"agent": "a", "backends": ["nope"]},                            # unknown backend
    {"agent": "a", "backends": [PG, "nope"]},
    {"agent": "a", "backends": [PG], "ttl_seconds": -1},
    {"agent": "a", "backends": [PG], "ttl_seconds": 0},
    {"agent": "a", "backends": [PG], "ttl_seconds": 10 ** 12},
    {"agent": "a", "backends": [PG], "ttl_seconds": "600"},
    {"agent": "a", "backends": [PG], "ttl_seconds": 600.5},
    {"agent": "a", "backends": [PG], "ttl_seconds": True},
    {"agent": "a", "backends": [PG], "idle_timeout_seconds": -5},
    {"agent": "a", "backends": [PG], "max_connections": 0},
    {"agent": "a", "backends": [PG], "allowed_ips": ["10.0.0.1/8"]},
    {"agent": "a", "backends": [PG], "allowed_ips": ["not-an-ip"]},
    {"agent": "a", "backends": [PG], "allowed_ips": "10.0.0.0/8"},
    {"agent": "a", "backends": [PG], "password": "mine"},            # unknown field
    {"agent": "", "backends": [PG]},
    {"agent": "x" * 65, "backends": [PG]},
    {"agent": "a\nb", "backends": [PG]},
    {"agent": 5, "backends": [PG]},
    {"agent": "a", "backends": PG},
]


def _nothing_changed(proxy, before, audit_before):
    assert all_sessions(proxy) == before
    assert len(proxy.events("session_created")) == audit_before


@pytest.mark.parametrize("raw,code", BAD_BODIES)
def test_malformed_bodies(proxy, raw, code):
    before, created = all_sessions(proxy), len(proxy.events("session_created"))
    status, headers, doc = proxy.api("POST", "/api/sessions", raw=raw)
    is_problem(status, headers, doc, code)
    _nothing_changed(proxy, before, created)


@pytest.mark.parametrize("body", BAD_FIELDS)
def test_invalid_fields_are_422(proxy, body):
    before, created = all_sessions(proxy), len(proxy.events("session_created"))
    status, headers, doc = proxy.api("POST", "/api/sessions", body)
    doc = is_problem(status, headers, doc, 422)
    assert "mine" not in json.dumps(doc)          # input values are not echoed
    _nothing_changed(proxy, before, created)


def test_unknown_backend_names_the_known_ones(proxy):
    status, headers, doc = proxy.api("POST", "/api/sessions", {"agent": "a", "backends": ["pg-prd"]})
    doc = is_problem(status, headers, doc, 422)
    assert "pg-prd" in doc["detail"] and PG in doc["detail"] and MY in doc["detail"]


def test_wrong_content_type_is_415(proxy):
    before = all_sessions(proxy)
    status, headers, doc = proxy.api("POST", "/api/sessions", raw=b"agent=a&backends=pg-prod",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    is_problem(status, headers, doc, 415)
    assert all_sessions(proxy) == before


def test_oversized_body_without_content_length(proxy):
    """Chunked transfer (no Content-Length): the limit still holds while reading."""
    before = all_sessions(proxy)
    conn = http.client.HTTPConnection("127.0.0.1", proxy.admin_port, timeout=30)
    body = (b'{"agent": "a", "backends": ["pg-prod"], "x": "' + b"y" * 100_000 + b'"}')
    conn.request("POST", "/api/sessions", body=iter([body[i:i + 8192] for i in range(0, len(body), 8192)]),
                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json",
                          "Transfer-Encoding": "chunked"}, encode_chunked=True)
    r = conn.getresponse()
    doc = json.loads(r.read())
    is_problem(r.status, dict(r.headers), doc, 413)
    conn.close()
    assert all_sessions(proxy) == before


def test_connection_string_host_for_wildcard_listener(pg_server, mariadb_server, dbs, tmp_path):
    """A backend listening on 0.0.0.0: the connection string uses the admin request's Host."""
    import yaml
    from test_sessions_helpers import SessionProxy, make_config
    cfg = yaml.safe_load(make_config(pg_server, dbs[0], None, None, str(tmp_path / "s.db"),
                                     str(tmp_path / "a.json")))
    cfg["backends"][0]["listen"] = "0.0.0.0:0"
    p = SessionProxy(yaml.safe_dump(cfg)).start()
    try:
        status, _, doc = p.api("POST", "/api/sessions", {"agent": "w", "backends": [PG]},
                               headers={"Host": f"proxy.example.internal:{p.admin_port}"})
        assert status == 201
        u = urllib.parse.urlparse(doc["connections"][PG])
        assert (u.hostname, u.port) == ("proxy.example.internal", p.port(PG))
        status, _, doc = p.api("POST", "/api/sessions", {"agent": "w2", "backends": [PG]},
                               headers={"Host": "bad host!"})
        assert status in (201, 400)
        if status == 201:
            assert urllib.parse.urlparse(doc["connections"][PG]).hostname == "127.0.0.1"
    finally:
        p.stop()


def test_guide_env_variables_override_the_file(pg_server, dbs):
    """SESSION_TIMEOUT, MAX_SESSIONS_PER_USER, MAX_CONCURRENT_AGENTS (the guide's .env) win."""
    import datetime
    import time
    env = {"SESSION_TIMEOUT": "120", "MAX_SESSIONS_PER_USER": "1", "MAX_CONCURRENT_AGENTS": "2",
           "AUTO_DESTROY_SESSIONS": "false"}
    p = start_proxy(pg_server, dbs[0], None, None, env=env,
                    sessions={"timeout_seconds": 9999, "max_sessions_per_user": 9, "max_concurrent_agents": 9})
    try:
        assert p.app.config.sessions.auto_destroy is False
        doc = p.create(agent="e1", backends=[PG])
        exp = datetime.datetime.fromisoformat(doc["expires_at"].replace("Z", "+00:00")).timestamp()
        assert abs(exp - (time.time() + 120)) < 15
        is_problem(*p.api("POST", "/api/sessions", {"agent": "e1", "backends": [PG]}), 409)
        p.create(agent="e2", backends=[PG])
        is_problem(*p.api("POST", "/api/sessions", {"agent": "e3", "backends": [PG]}), 429)
    finally:
        p.stop()


def test_unopenable_store_disables_sessions_not_the_proxy(pg_server, dbs, tmp_path):
    """The store path is a directory: the API answers 503 (401 without a token), no session
    is created, and the backend's own login still works through the relay."""
    import psycopg
    p = start_proxy(pg_server, dbs[0], None, None, store=str(tmp_path))
    try:
        assert p.app.sessions is None
        is_problem(*p.api("POST", "/api/sessions", {"agent": "a", "backends": [PG]}), 503)
        is_problem(*p.api("GET", "/api/sessions"), 503)
        is_problem(*p.api("POST", "/api/sessions", {"agent": "a", "backends": [PG]}, token=None), 401)
        with psycopg.connect(f"host=127.0.0.1 port={p.port(PG)} user={pg_server.user} "
                             f"password={pg_server.password} dbname={dbs[0]} sslmode=disable") as c:
            assert c.execute("SELECT 1").fetchone()[0] == 1
    finally:
        p.stop()
