"""Fuzz the control API from its own OpenAPI document (schemathesis + hypothesis) against a
running ProxyApp: valid and invalid requests for every operation.

Checks per request: no 5xx; status code, content type, headers and body conform to the
document; invalid input is rejected (4xx); no secret in any response except the password
of a 201 (never the admin token, a SCRAM verifier, or a password-bearing connection string
after creation); and the same request without the token gets 401 -- for mutations with
nothing changed. Bounded by MAX_EXAMPLES to keep the module under about a minute."""

from __future__ import annotations

import json

import pytest
import requests

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import (content_type_conformance, negative_data_rejection,  # noqa: E402
                                 not_a_server_error, response_headers_conformance, response_schema_conformance,
                                 status_code_conformance)

from test_sessions_helpers import TOKEN, dbs, proxy_fixture  # noqa: E402, F401 (fixture)

MAX_EXAMPLES = 40
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection]


proxy = proxy_fixture(sessions={"max_sessions_per_user": 3, "max_concurrent_agents": 6})


@pytest.fixture(scope="module")
def schema(proxy):
    status, _, doc = proxy.api("GET", "/openapi.json", token=None)
    assert status == 200
    return schemathesis.openapi.from_dict(doc)


def _operations(schema):
    return [r.ok() for r in schema.get_all_operations()]


def _assert_no_secrets(case, response, created: list[str]):
    text = response.text
    assert TOKEN not in text
    assert "SCRAM-SHA-256$" not in text
    for pw in created:                             # a password is shown once, at creation
        assert pw not in text, (case.method, case.path)
    if response.status_code == 201:
        created.append(response.json()["password"])
    else:
        try:
            doc = json.loads(text)
        except ValueError:
            return
        if case.path.startswith("/api/"):     # (the OpenAPI document itself describes the field)
            assert "password" not in json.dumps(doc), (case.method, case.path, text[:300])


def _ctype(response) -> str:
    # schemathesis' Response keeps headers as {lower-case name: [values]}
    for k, v in response.headers.items():
        if k.lower() == "content-type":
            return v[0] if isinstance(v, list) else v
    return ""


def _sessions(proxy) -> list:
    return proxy.api("GET", "/api/sessions")[2]["sessions"]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_fuzz_api(proxy, schema, mode):
    base = f"http://127.0.0.1:{proxy.admin_port}"
    http = requests.Session()
    created: list[str] = []
    seen_statuses: set[int] = set()
    for op in _operations(schema):
        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(op.as_strategy(generation_mode=mode))
        def run(case):
            is_api = case.path.startswith("/api/")
            mutation = case.method.upper() in ("POST", "DELETE", "PUT", "PATCH")
            # Without a token, and with whatever token the generator made up: 401, and for a
            # mutation nothing changed.
            generated = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
            made_up = [v for k, v in (case.headers or {}).items() if k.lower() == "authorization"]
            if is_api:
                before = _sessions(proxy) if mutation else None
                for auth in [None] + [v for v in made_up if v != f"Bearer {TOKEN}"]:
                    h = dict(generated, **({"Authorization": auth} if auth is not None else {}))
                    anon = case.call(base_url=base, session=http, headers=h)
                    assert anon.status_code == 401, (case.method, case.path, anon.status_code, anon.text[:200])
                    assert _ctype(anon).startswith("application/problem+json")
                if mutation:
                    assert _sessions(proxy) == before
            headers = dict(generated)
            if is_api:
                headers["Authorization"] = f"Bearer {TOKEN}"
            response = case.call(base_url=base, session=http, headers=headers)
            seen_statuses.add(response.status_code)
            case.validate_response(response, checks=CHECKS, headers=headers)
            _assert_no_secrets(case, response, created)
            if is_api and response.status_code >= 400:
                assert _ctype(response).startswith("application/problem+json"), (response.status_code, response.headers)
        try:
            run()
        except Unsatisfiable:
            # Nothing to make invalid (no parameters, no body): e.g. GET /api/sessions in
            # negative mode. Positive mode covers it.
            assert mode is GenerationMode.NEGATIVE and not len(op.body), op.label
    # The fuzzer really reached the handlers (not only the auth wall).
    assert seen_statuses - {401}, seen_statuses
    if mode is GenerationMode.POSITIVE:
        assert 201 in seen_statuses and 200 in seen_statuses, seen_statuses
