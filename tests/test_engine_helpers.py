"""Shared helpers for the verdict-engine tests (tests/test_engine_*.py; no tests here).

The same checks, one place: what an allowed verdict and a blocked one must look like
(ARCHITECTURE.md "Engine": `allowed`, `klass`, `rule`, and a `reason` written for an AI agent,
not a code), the engine-alone gate against a real server, and a module-scoped database with
the corpus schema (tests/corpus/schema_*.sql) on the session's PostgreSQL.
"""

from __future__ import annotations

import uuid

import pytest

from corpus_util import apply_schema_pg


def case_ids(cases) -> list[str]:
    """pytest ids for (sql, ...) tables: the first 50 characters of the SQL."""
    return [c[0][:50] for c in cases]


def assert_allowed(v, klass: str) -> None:
    assert v.allowed, (v.rule, v.reason)
    assert v.klass == klass


def assert_blocked(v, rule: str) -> None:
    """`rule` may list alternatives separated by `|`."""
    assert not v.allowed
    assert v.rule in rule.split("|"), (v.rule, v.reason)
    assert len(v.reason) > 30          # an explanation for the agent, not a code


def verdict_table_tests(dialect: str, allowed, blocked):
    """The table-driven tests every dialect module has, for its ALLOWED [(sql, class)] and
    BLOCKED [(sql, "rule|rule")] tables: returns (`engine` -- a module-scoped fixture,
    `test_allowed`, `test_blocked`); assign them to those names in the test module."""
    from sandbox_db_proxy import Engine

    @pytest.fixture(scope="module")
    def engine():
        return Engine(dialect)

    @pytest.mark.parametrize("sql,klass", allowed, ids=case_ids(allowed))
    def test_allowed(engine, sql, klass):
        assert_allowed(engine.classify(sql), klass)

    @pytest.mark.parametrize("sql,rule", blocked, ids=case_ids(blocked))
    def test_blocked(engine, sql, rule):
        assert_blocked(engine.classify(sql), rule)

    return engine, test_allowed, test_blocked


def gate(engine, statements, execute) -> list[str]:
    """Send each statement to the server with `execute(sql)` only if `engine` allows it (no
    read-only transaction underneath: the engine alone must keep the checksum unchanged).
    Returns the statements that were allowed -- each one a bug the checksum then shows."""
    allowed = []
    for sql in statements:
        v = engine.classify(sql)
        if v.allowed:
            allowed.append(sql)
            execute(sql)
        else:
            assert v.reason
    return allowed


def pg_schema_db(prefix: str):
    """A module-scoped fixture: a new database `<prefix><hex>` with the corpus schema on
    `pg_server`, dropped afterwards."""
    @pytest.fixture(scope="module")
    def pg_db(pg_server):
        name = prefix + uuid.uuid4().hex[:8]
        apply_schema_pg(pg_server, name)
        yield name
        pg_server.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return pg_db
