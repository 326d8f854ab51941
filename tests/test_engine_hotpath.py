"""The engine's hot path (issue 6) decides exactly as the uncached engine does: inlined cache
hits, prebuilt fast-path verdicts shared between texts, and the fingerprint cache must never
change a decision, whatever order texts arrive in and whatever the cache already holds."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from sandbox_db_proxy import _native
from sandbox_db_proxy.engine import Engine

CORPUS = Path(__file__).resolve().parent / "corpus"


def corpus(dialect: str) -> list[str]:
    path = CORPUS / f"{dialect}.jsonl"
    return [json.loads(line)["sql"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def decision(v):
    return (v.verdict, v.rule, v.reason, v.klass, v.statements)


@pytest.mark.parametrize("dialect", ["postgres", "mysql", "tsql"])
def test_cached_engine_decides_like_an_uncached_one_in_any_order(dialect):
    texts = corpus(dialect)
    assert len(texts) > 100
    # literal variants: same fingerprint, other values (exercise the fingerprint cache)
    variants = [t.replace("1", "7").replace("'a", "'zz") for t in texts]
    plain = Engine(dialect, cache_size=0)
    expected = {t: decision(plain.classify(t)) for t in texts + variants}
    rnd = random.Random(6)
    for size in (10_000, 7):                  # roomy, and constantly evicting
        warm = Engine(dialect, cache_size=size)
        stream = (texts + variants) * 2
        rnd.shuffle(stream)
        for t in stream:
            got = warm.classify(t)
            assert decision(got) == expected[t], t
            assert got.path in ("cache", "fast", "deep")


def test_pgbench_and_sysbench_statements_take_the_cheap_paths():
    """After one statement of each shape, literal variants are cache hits (fingerprint) and
    never reach the deep check."""
    for dialect, template in (("postgres", "SELECT abalance FROM pgbench_accounts WHERE aid = {};"),
                              ("mysql", "SELECT c FROM sbtest1 WHERE id={}"),
                              ("mysql", "SELECT c FROM sbtest3 WHERE id BETWEEN {} AND {}")):
        eng = Engine(dialect)
        first = eng.classify(template.format(1, 2))
        assert first.allowed and first.path == "fast"
        for i in range(2, 500):
            v = eng.classify(template.format(i, i + 99))
            assert v.allowed and v.path == "cache"
        assert eng.stats.deep == 0 and eng.stats.fast_allow == 1
    # prepared-statement texts are constant: exact-text hits
    eng = Engine("postgres")
    for _ in range(3):
        eng.classify("SELECT abalance FROM pgbench_accounts WHERE aid = $1;")
    assert eng.stats.cache_hits == 2 and eng.stats.deep == 0


def test_shared_fast_verdicts_keep_blocked_commands_and_fresh_blocks():
    eng = Engine("postgres", blocked_commands=["select"])
    v1, v2 = eng.classify("SELECT 1"), eng.classify("SELECT 2")
    assert not v1.allowed and v1.rule == "blocked_command" and v2.rule == "blocked_command"
    eng = Engine("postgres", cache_size=0)
    a, b = eng.classify("DELETE FROM a"), eng.classify("DELETE FROM b")
    assert a.rule == b.rule == "write_statement" and not a.allowed and not b.allowed
    assert eng.stats.fast_block == 2
    # a fast ALLOW verdict object may be shared, but is immutable
    s1, s2 = eng.classify("SELECT 1 AS x"), eng.classify("SELECT 2 AS y")
    with pytest.raises(AttributeError):
        s1.verdict = "block"  # type: ignore[misc]
    assert s1.allowed and s2.allowed


def test_fingerprint_hit_never_overturns_a_fast_block():
    """ambiguous_quoting depends on a literal's content: a read of the same shape allowed
    before must not let it through."""
    eng = Engine("mysql")
    assert eng.classify("SELECT 'a' FROM t").allowed
    tricky = "SELECT 'a\\'; DELETE FROM t; -- ' FROM t"
    assert _native.fast_check(tricky, "mysql")[:2] == (_native.BLOCK, "ambiguous_quoting")
    v = eng.classify(tricky)
    assert not v.allowed and v.rule == "ambiguous_quoting"
    assert not eng.classify(tricky).allowed          # and again, from the exact cache


def test_set_catalog_clears_prebuilt_verdicts():
    eng = Engine("postgres")
    eng.classify("SELECT upper('x')")
    assert eng._fast_allows
    eng.set_catalog(None)
    assert not eng._fast_allows and not eng._fast_blocks and len(eng._exact) == 0
