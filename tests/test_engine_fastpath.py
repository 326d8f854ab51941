"""The Rust fast path and the deep check must agree where the fast path decides
(docs/ARCHITECTURE.md: "ALLOW only when certain; BLOCK only when certain it is a write").
A fast ALLOW that the deep check would block is a bypass of layers 2 and 3, so every corpus
statement and every case of the engine tests is run through both."""

from __future__ import annotations

import pytest

import test_engine_mysql
import test_engine_postgres
import test_engine_tsql
from corpus_util import load_corpus
from sandbox_db_proxy import _native
from sandbox_db_proxy.engine import Engine

_CASES = {
    "postgres": test_engine_postgres.ALLOWED + test_engine_postgres.BLOCKED,
    "mysql": test_engine_mysql.ALLOWED + test_engine_mysql.BLOCKED,
    "tsql": test_engine_tsql.ALLOWED + test_engine_tsql.BLOCKED,
}


def _texts(dialect: str) -> list[str]:
    texts = [sql for sql, _ in _CASES[dialect]]
    try:
        texts += [e["sql"] for e in load_corpus(dialect)]
    except (OSError, ValueError):
        pass
    return texts


@pytest.mark.parametrize("dialect", ["postgres", "mysql", "tsql"])
def test_fast_path_never_allows_what_the_deep_check_blocks(dialect):
    eng = Engine(dialect)
    checker = eng._checker
    bad_allow, bad_block, decided = [], [], 0
    for sql in _texts(dialect):
        try:
            fast = _native.fast_check(sql, dialect)
            decision = fast[0]
        except _native.NativeError:
            continue
        if decision == _native.DEFER:
            continue
        decided += 1
        deep = checker.check(sql)
        if decision == _native.ALLOW and deep.block is not None:
            if eng._needs_deep(sql):
                continue          # the engine re-checks these itself (sensitive lists, casts)
            bad_allow.append((sql, deep.block.rule))
        if decision == _native.BLOCK and deep.block is None:
            if fast[1] == "ambiguous_quoting":
                continue          # stricter by design: the deep parser sees only one reading
            bad_block.append(sql)
    assert bad_allow == [], f"fast ALLOW but deep blocks: {bad_allow}"
    # a fast BLOCK of something the deep check allows is a false block, not a bypass: report it
    assert bad_block == [], f"fast BLOCK but deep allows: {bad_block}"
    assert decided > 0


@pytest.mark.parametrize("dialect", ["postgres", "mysql", "tsql"])
def test_engine_verdicts_never_allow_what_the_deep_check_blocks(dialect):
    """Whatever path decides inside the engine (including its re-check of fast ALLOWs), the
    final verdict never allows a text the deep check blocks."""
    eng = Engine(dialect, cache_size=0)
    bad = []
    for sql in _texts(dialect):
        if eng.classify(sql).allowed and eng._checker.check(sql).block is not None:
            bad.append(sql)
    assert bad == []
