"""Function policy (issue 2, layer 3) and the per-backend catalogue built from a real server's
pg_proc: the allowlist's claims are checked against PostgreSQL 15's own volatility markings,
the denylist wins over the catalogue, and sqlglot's function mapping cannot launder a denied
MySQL/T-SQL function into an allowed one."""

from __future__ import annotations

import pytest

from sandbox_db_proxy.engine import PG_PROC_QUERY, Engine, FunctionCatalog, FunctionPolicy
from sandbox_db_proxy.engine import functions as F
from test_engine_helpers import pg_schema_db


def test_policy_unit():
    p = FunctionPolicy("postgres")
    assert p.judge("lower") is None
    assert p.judge("lower", "pg_catalog") is None
    assert p.judge("NEXTVAL").rule == "unsafe_function"
    assert p.judge("dblink_exec").rule == "unsafe_function"          # prefix family
    assert p.judge("pg_advisory_unlock_all").rule == "unsafe_function"
    assert p.judge("lower", "public").rule == "unknown_function"    # not the built-in
    assert p.judge("my_func").rule == "unknown_function"
    assert FunctionPolicy("postgres", allow_unknown=True).judge("my_func") is None
    assert FunctionPolicy("postgres", allow_unknown=True).judge("pg_sleep").rule == "unsafe_function"
    with pytest.raises(ValueError):
        FunctionPolicy("oracle")


def test_catalog_unit():
    cat = FunctionCatalog.from_pg_proc([
        ("user_order_total", "public", "integer", "s"),
        ("fmt_money", "public", "numeric", "i"),
        ("log_event", "public", "text", "v"),
        ("twice", "public", "integer", "i"), ("twice", "other", "text", "v"),   # worst overload wins
        ("lower", "public", "mytype", "v"),                                      # shadows a built-in
        ("txid_current", "pg_catalog", "", "s"),
    ])
    p = FunctionPolicy("postgres", catalog=cat)
    assert p.judge("user_order_total") is None
    assert p.judge("fmt_money", "public") is None
    assert p.judge("log_event").rule == "unknown_function"
    assert "VOLATILE" in p.judge("log_event").reason
    assert p.judge("twice").rule == "unknown_function"
    assert p.judge("twice", "public") is None
    assert p.judge("lower").rule == "unknown_function"          # could resolve to public.lower
    assert p.judge("lower", "pg_catalog") is None
    assert p.judge("txid_current").rule == "unsafe_function"    # STABLE, but the denylist wins
    assert len(cat) == 7


@pytest.mark.parametrize("dialect", ["mysql", "tsql"])
def test_denied_names_stay_denied_through_sqlglot(dialect):
    """sqlglot maps function names to its own classes; every denied name must still block."""
    unsafe = F.MYSQL_UNSAFE if dialect == "mysql" else F.TSQL_UNSAFE
    eng = Engine(dialect)
    for name in sorted(unsafe):
        for args in ("(1)", "('a', 1)", "()"):
            v = eng.classify(f"SELECT {name}{args}")
            assert not v.allowed, (name, args)
            if v.rule != "parse_error":
                assert v.rule == "unsafe_function", (name, args, v.rule, v.reason)
                break


def test_postgres_denylist_blocks_every_name():
    eng = Engine("postgres")
    for name in sorted(F.PG_UNSAFE):
        v = eng.classify(f"SELECT {name}(1)")
        assert v.rule == "unsafe_function", (name, v.rule)
        assert name in v.reason


# ---------------------------------------------------------------------------------------------
# against the real server
# ---------------------------------------------------------------------------------------------

pg_db = pg_schema_db("engine_fn_")


def _pg_proc_rows(pg_server, db):
    out = pg_server.psql(PG_PROC_QUERY, db, "-F", "\t")
    return [tuple(line.split("\t")) for line in out.splitlines() if line]


@pytest.mark.pg
def test_pg_safe_list_matches_the_servers_volatility(pg_server, pg_db):
    """Every allowlisted built-in is IMMUTABLE or STABLE on the real server, unless it is one of
    the deliberately listed harmless VOLATILE ones (random, clock_timestamp ...)."""
    worst: dict[str, str] = {}
    rank = {"i": 0, "s": 1, "v": 2}
    for proname, nspname, _args, vol in _pg_proc_rows(pg_server, pg_db):
        if nspname == "pg_catalog":
            worst[proname] = max(worst.get(proname, vol), vol, key=rank.__getitem__)
    assert len(worst) > 1000
    volatile_unlisted = sorted(n for n in F.PG_SAFE if worst.get(n) == "v" and n not in F.PG_SAFE_VOLATILE)
    assert volatile_unlisted == []
    # and nothing on the denylist is on the allowlist
    assert not [n for n in F.PG_SAFE if F.unsafe_reason("postgres", n)]


@pytest.mark.pg
def test_catalog_from_the_real_pg_proc(pg_server, pg_db):
    cat = FunctionCatalog.from_pg_proc(_pg_proc_rows(pg_server, pg_db))
    eng = Engine("postgres")
    eng.set_catalog(cat)
    assert eng.classify("SELECT id, user_order_total(id) FROM users").allowed     # STABLE
    assert eng.classify("SELECT fmt_money(total) FROM orders").allowed           # IMMUTABLE
    assert eng.classify("SELECT log_event('x')").rule == "unknown_function"       # VOLATILE
    assert eng.classify("SELECT next_invoice_no()").rule == "unknown_function"
    assert eng.classify("SELECT txid_current()").rule == "unsafe_function"        # STABLE, denied
    assert eng.classify("SELECT pg_current_xact_id()").rule == "unsafe_function"
    # an obscure STABLE built-in the engine's own list does not name is allowed via the catalogue
    assert eng.classify("SELECT pg_get_function_identity_arguments('lower(text)'::regprocedure)").allowed
    assert Engine("postgres").classify("SELECT user_order_total(1)").rule == "unknown_function"


@pytest.mark.pg
def test_catalog_catches_a_volatile_function_shadowing_a_builtin(pg_server, pg_db):
    pg_server.psql("CREATE FUNCTION public.upper(x integer) RETURNS text LANGUAGE sql VOLATILE "
                   "AS $$ SELECT 'shadow' $$", pg_db)
    try:
        # the server really calls the user function for an unqualified upper(int)
        assert pg_server.psql("SELECT upper(1)", pg_db).strip() == "shadow"
        eng = Engine("postgres")
        assert eng.classify("SELECT upper(1)").allowed            # without catalogue: the built-in list
        eng.set_catalog(FunctionCatalog.from_pg_proc(_pg_proc_rows(pg_server, pg_db)))
        assert eng.classify("SELECT upper(1)").rule == "unknown_function"
        assert eng.classify("SELECT pg_catalog.upper('a')").allowed
    finally:
        pg_server.psql("DROP FUNCTION public.upper(integer)", pg_db)
