"""Engine flow and caches (docs/ARCHITECTURE.md, "Engine"): exact-text LRU, fingerprint LRU only
for verdicts that cannot depend on literal values, bounded sizes, counters, set_catalog."""

from __future__ import annotations

import pytest

from sandbox_db_proxy import _native
from sandbox_db_proxy.engine import Engine, FunctionCatalog
from sandbox_db_proxy.engine.cache import LRUCache
from sandbox_db_proxy.engine.engine import MAX_CACHED_TEXT


def test_lru_is_bounded_and_evicts_least_recently_used():
    c = LRUCache(3)
    for k in "abc":
        c.put(k, k.upper())
    assert c.get("a") == "A"          # a is now most recent
    c.put("d", "D")                   # evicts b
    assert "b" not in c and len(c) == 3
    assert c.get("c") == "C" and c.get("d") == "D" and c.get("a") == "A"
    c.clear()
    assert len(c) == 0
    zero = LRUCache(0)
    zero.put("x", 1)
    assert zero.get("x") is None
    with pytest.raises(ValueError):
        LRUCache(-1)


def test_repeated_text_is_a_cache_hit_with_the_same_decision():
    eng = Engine("postgres")
    first = eng.classify("SELECT id FROM users WHERE id = 1")
    assert first.path in ("fast", "deep")
    again = eng.classify("SELECT id FROM users WHERE id = 1")
    assert again.path == "cache" and again.verdict == first.verdict and again.rule == first.rule
    assert eng.stats.cache_hits == 1
    blocked = eng.classify("DELETE FROM users")
    assert eng.classify("DELETE FROM users").path == "cache"
    assert not blocked.allowed


def test_exact_cache_is_bounded():
    eng = Engine("postgres", cache_size=5)
    for i in range(20):
        eng.classify(f"SELECT {i} AS c{i}")
    assert len(eng._exact) <= 5 and len(eng._fp) <= 5


def test_huge_text_is_not_kept_in_the_exact_cache():
    eng = Engine("postgres")
    sql = "SELECT '" + "x" * (MAX_CACHED_TEXT + 10) + "'"
    assert eng.classify(sql).allowed
    assert sql not in eng._exact


def _deferred_read(eng, sql):
    """Skip when the fast path decides this text (then no fingerprint caching is involved)."""
    decision = _native.fast_check(sql, eng.dialect)[0]
    if decision != _native.DEFER:
        pytest.skip("fast path decides this statement; the fingerprint cache is not used")


def test_reads_are_cached_by_fingerprint_across_literal_values():
    eng = Engine("postgres")
    sql1 = "SELECT date_bin('15 minutes', created_at, '2000-01-01'), count(*) FROM orders WHERE total > 10 GROUP BY 1"
    sql2 = "SELECT date_bin('1 hour', created_at, '2001-01-01'), count(*) FROM orders WHERE total > 99 GROUP BY 1"
    _deferred_read(eng, sql1)
    assert eng.classify(sql1).path == "deep"
    v = eng.classify(sql2)
    assert v.allowed and v.path == "cache" and eng.stats.deep == 1


def test_literal_sensitive_statements_are_not_fingerprint_cached():
    eng = Engine("postgres", allow_unknown_functions=True)
    # allowed only because unknown functions are allowed; still never reused for other literals
    sql1 = "SELECT my_report('a') FROM orders"
    _deferred_read(eng, sql1)
    assert eng.classify(sql1).allowed
    assert eng.classify("SELECT set_config('x.y', 'a', false) FROM orders").rule == "unsafe_function"
    assert eng.classify("SELECT set_config('x.y', 'b', false) FROM orders").path == "deep"


def test_settings_are_never_fingerprint_cached():
    eng = Engine("postgres")
    assert eng.classify("SET default_transaction_read_only = on").allowed
    v = eng.classify("SET default_transaction_read_only = off")
    assert not v.allowed and v.path != "cache"
    assert eng.classify("SET search_path = public, x").allowed
    assert not eng.classify("SET search_path = x, pg_catalog").allowed
    assert eng.classify("COPY (SELECT 1) TO STDOUT").allowed
    assert not eng.classify("COPY (SELECT 2) TO '/tmp/x'").allowed


def test_stats_count_paths():
    eng = Engine("postgres")
    eng.classify("SELECT 1")
    eng.classify("SELECT 1")
    eng.classify("WITH x AS (DELETE FROM t RETURNING 1) SELECT * FROM x")
    s = eng.stats.to_dict()
    assert set(s) == {"cache_hits", "fast_allow", "fast_block", "deep"}
    assert s["cache_hits"] == 1
    assert s["fast_allow"] + s["fast_block"] + s["deep"] == 2


def test_set_catalog_clears_the_caches_and_changes_decisions():
    eng = Engine("postgres")
    assert eng.classify("SELECT user_order_total(1)").rule == "unknown_function"
    eng.set_catalog(FunctionCatalog.from_pg_proc([("user_order_total", "public", "integer", "s")]))
    assert len(eng._exact) == 0
    v = eng.classify("SELECT user_order_total(1)")
    assert v.allowed and v.path != "cache"
    eng.set_catalog(None)
    assert not eng.classify("SELECT user_order_total(1)").allowed


def test_lex_errors_and_garbage_block():
    for dialect in ("postgres", "mysql", "tsql"):
        eng = Engine(dialect)
        for sql in ("SELECT 'x", "SELECT \"x", "/* unterminated", "\x00\x01", ";;;", "   "):
            v = eng.classify(sql)
            assert not v.allowed, (dialect, sql)
            assert v.rule in ("lex_error", "parse_error", "empty_statement"), (dialect, sql, v.rule)


_AMBIGUOUS = {
    # benign text, another benign text with the same fingerprint, and a text of the same shape
    # which other backslash-escape settings would read as SELECT + DELETE
    "postgres": ("SELECT 'x' AS s, 'y' AS t FROM orders", "SELECT 'a' AS s, 'b' AS t FROM orders",
                 "SELECT 'x\\' AS s, '; DELETE FROM orders; --' AS t FROM orders"),
    "mysql": ("SELECT 'x' AS s FROM orders", "SELECT 'y' AS s FROM orders",
              "SELECT 'x\\'; DELETE FROM orders; -- ' AS s FROM orders"),
}


@pytest.mark.parametrize("dialect", sorted(_AMBIGUOUS))
def test_fast_allowed_shapes_are_reused_but_never_overturn_a_fast_block(dialect):
    benign, benign2, tricky = _AMBIGUOUS[dialect]
    eng = Engine(dialect)
    assert _native.fast_check(benign, dialect)[0] == _native.ALLOW
    # (the native fingerprint keeps such ambiguous literals verbatim as well: two defences)
    assert eng.classify(benign).path == "fast"
    assert eng.classify(benign2).path == "cache"
    v = eng.classify(tricky)
    assert not v.allowed and v.rule == "ambiguous_quoting"
