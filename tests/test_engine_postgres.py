"""Verdict engine, PostgreSQL dialect: every bypass class of ../shared/notes/read-only-bypasses.md
blocks with the right rule, realistic analytic reads are allowed, and both claims are checked
against the real PostgreSQL 15 server (reads run there; writes would change its checksum)."""

from __future__ import annotations

import dataclasses

import psycopg
import pytest

from proxy_harness import unchanged
from sandbox_db_proxy import Engine, Verdict, classify
from test_engine_helpers import assert_allowed, assert_blocked, case_ids, gate, pg_schema_db

ALLOWED = [
    # plain and analytic reads
    ("SELECT 1", "read"),
    ("select id, email FROM users WHERE country = 'DE' ORDER BY id LIMIT 5", "read"),
    ("SELECT u.country, count(*) AS n, sum(o.total) FROM users u JOIN orders o ON o.user_id = u.id "
     "GROUP BY u.country HAVING count(*) > 1 ORDER BY 2 DESC", "read"),
    ("SELECT id, total, rank() OVER (PARTITION BY user_id ORDER BY total DESC), "
     "sum(total) OVER (ORDER BY created_at ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) FROM orders", "read"),
    ("WITH big AS (SELECT * FROM orders WHERE total > 100) SELECT count(*) FROM big", "read"),
    ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) SELECT sum(n) FROM r",
     "read"),
    ("SELECT id FROM users UNION SELECT user_id FROM orders INTERSECT SELECT user_id FROM events "
     "EXCEPT SELECT 0", "read"),
    ("VALUES (1, 'a'), (2, 'b')", "read"),
    ("TABLE products", "read"),
    ("SELECT * FROM users u WHERE EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id) "
     "AND u.id IN (SELECT user_id FROM events)", "read"),
    ("SELECT p.*, x.n FROM products p, LATERAL (SELECT count(*) n FROM order_items i "
     "WHERE i.product_id = p.id) x", "read"),
    ("SELECT date_trunc('month', created_at), count(*) FILTER (WHERE status = 'paid'), "
     "percentile_cont(0.5) WITHIN GROUP (ORDER BY total) FROM orders GROUP BY 1", "read"),
    ("SELECT extract(year FROM created_at), created_at AT TIME ZONE 'UTC', "
     "substring(email FROM 1 FOR 3), trim(both ' ' FROM name), position('@' IN email) FROM users", "read"),
    ("SELECT profile->>'lang', jsonb_array_length(coalesce(profile->'tags', '[]')), "
     "jsonb_path_exists(profile, '$.a') FROM users", "read"),
    ("SELECT string_agg(name, ', ' ORDER BY name), array_agg(DISTINCT country) FROM users", "read"),
    ("SELECT CASE WHEN total > 100 THEN 'big' ELSE 'small' END, nullif(status, ''), "
     "greatest(total, 0), coalesce(note, '-') FROM orders", "read"),
    ("SELECT * FROM generate_series(1, 3) g(n)", "read"),
    ("SELECT id FROM orders TABLESAMPLE BERNOULLI (50) REPEATABLE (1)", "read"),
    ("SELECT 'DELETE FROM users; DROP TABLE orders' AS \"drop\", $$UPDATE t SET x = 1$$", "read"),
    ("SELECT body FROM notes WHERE body ILIKE '%drop table%' AND \"select\" IS NOT NULL", "read"),
    ("/* DELETE FROM users */ SELECT count(*) FROM users -- ; DROP TABLE users", "read"),
    ("SELECT current_user, current_database(), version(), now(), pg_backend_pid()", "read"),
    ("SELECT c.relname, n.nspname FROM pg_catalog.pg_class c JOIN pg_namespace n "
     "ON n.oid = c.relnamespace WHERE c.relkind = 'r'", "read"),
    ("SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'",
     "read"),
    ("SELECT pg_size_pretty(pg_total_relation_size('orders')), 'orders'::regclass::oid", "read"),
    ("SELECT pg_catalog.lower(name) FROM users", "read"),
    ("EXPLAIN SELECT * FROM orders WHERE id = 1", "read"),
    ("EXPLAIN (ANALYZE, COSTS OFF, FORMAT JSON) SELECT count(*) FROM orders", "read"),
    ("COPY (SELECT id, email FROM users) TO STDOUT WITH (FORMAT csv)", "read"),
    ("COPY users TO STDOUT", "read"),
    ("SHOW search_path", "read"),
    ("SHOW ALL", "read"),
    ("SELECT 1; SELECT 2", "read"),
    # harmless session settings (drivers and agents send these)
    ("SET statement_timeout = '5s'", "session"),
    ("SET LOCAL lock_timeout TO 1000", "session"),
    ("SET application_name = 'agent'", "session"),
    ("SET TIME ZONE 'UTC'", "session"),
    ("SET datestyle TO ISO, DMY", "session"),
    ("SET extra_float_digits = 3", "session"),
    ("SET client_encoding TO 'UTF8'", "session"),
    ("SET NAMES 'utf8'", "session"),
    ("SET search_path TO analytics, public", "session"),
    ("SET work_mem = '64MB'", "session"),
    ("SET default_transaction_read_only = on", "session"),
    ("RESET statement_timeout", "session"),
    ("DISCARD PLANS", "session"),
    ("DEALLOCATE ALL", "session"),
    # transaction control that cannot switch to read-write
    ("BEGIN", "transaction"),
    ("BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", "transaction"),
    ("START TRANSACTION READ ONLY", "transaction"),
    ("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "transaction"),
    ("COMMIT", "transaction"),
    ("ROLLBACK", "transaction"),
    ("SAVEPOINT s1", "transaction"),
    ("RELEASE SAVEPOINT s1", "transaction"),
    # cursors over reads
    ("DECLARE c CURSOR WITH HOLD FOR SELECT * FROM users", "read"),
    ("FETCH 10 FROM c", "read"),
    ("CLOSE c", "read"),
]

# (sql, rule): one or more cases per bypass class (numbers refer to read-only-bypasses.md)
BLOCKED = [
    # plain writes, DDL, DCL
    ("INSERT INTO users (id) VALUES (1)", "write_statement"),
    ("UPDATE users SET name = 'x' WHERE id = 1", "write_statement"),
    ("DELETE FROM users", "write_statement"),
    ("MERGE INTO orders o USING users u ON o.user_id = u.id WHEN MATCHED THEN DELETE", "write_statement"),
    ("TRUNCATE orders", "write_statement"),
    ("DROP TABLE users", "ddl_statement"),
    ("CREATE TABLE t2 (a int)", "ddl_statement"),
    ("CREATE TABLE t3 AS SELECT * FROM users", "ddl_statement"),
    ("ALTER TABLE users ADD COLUMN x int", "ddl_statement"),
    ("CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", "ddl_statement"),
    ("COMMENT ON TABLE users IS 'x'", "ddl_statement"),
    ("GRANT ALL ON users TO PUBLIC", "dcl_statement"),
    ("REVOKE SELECT ON users FROM PUBLIC", "dcl_statement"),
    ("CREATE ROLE agent_admin SUPERUSER", "ddl_statement|dcl_statement"),
    # 1, 2: stacked statements
    ("SELECT 1; COMMIT; DROP SCHEMA public CASCADE;", "ddl_statement"),
    ("SELECT 1; DELETE FROM users", "write_statement"),
    ("SELECT 1; END; UPDATE users SET name = 'x'", "write_statement"),
    # 3: access-mode switches
    ("BEGIN READ WRITE", "transaction_mode"),
    ("START TRANSACTION READ WRITE", "transaction_mode"),
    ("BEGIN ISOLATION LEVEL SERIALIZABLE, READ WRITE", "transaction_mode"),
    ("SET TRANSACTION READ WRITE", "transaction_mode"),
    ("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", "transaction_mode"),
    ("SET default_transaction_read_only = off", "session_setting"),
    ("SET default_transaction_read_only TO DEFAULT", "session_setting"),
    ("SET transaction_read_only = false", "session_setting"),
    ("RESET default_transaction_read_only", "session_setting"),
    ("RESET ALL", "session_setting"),
    ("DISCARD ALL", "session_setting"),
    ("SET ROLE postgres", "session_setting"),
    ("SET SESSION AUTHORIZATION postgres", "session_setting"),
    ("RESET ROLE", "session_setting"),
    ("SET session_replication_role = replica", "session_setting"),
    ("SET standard_conforming_strings = off", "session_setting"),
    ("SET client_encoding = 'SJIS'", "session_setting"),
    ("SET search_path = evil, pg_catalog", "session_setting"),
    ("SET work_mem = '100GB'", "session_setting"),
    ("ALTER SYSTEM SET default_transaction_read_only = off", "admin_command|ddl_statement"),
    ("PREPARE TRANSACTION 'x'", "transaction_control"),
    ("COMMIT PREPARED 'x'", "transaction_control"),
    ("ROLLBACK PREPARED 'x'", "transaction_control"),
    # 5: data-modifying CTEs, SELECT INTO
    ("WITH x AS (DELETE FROM orders RETURNING *) SELECT * FROM x", "write_statement"),
    ("WITH x AS (SELECT 1) UPDATE users SET name = 'x'", "write_statement"),
    ("WITH a AS (SELECT 1), b AS (INSERT INTO users (id) VALUES (9) RETURNING id) SELECT * FROM b",
     "write_statement"),
    ("SELECT * INTO users_copy FROM users", "select_into"),
    ("SELECT * INTO TEMP t FROM users", "select_into"),
    # 6: comment tricks
    ("/* x */ UPDATE users SET name = 'x'", "write_statement"),
    ("-- x\nUPDATE users SET name = 'x'", "write_statement"),
    ("DELETE/**/FROM users", "write_statement"),
    ("/* nested /* comment */ still comment */ DELETE FROM users", "write_statement"),
    # 9, 10: side-effecting and privileged functions
    ("SELECT nextval('invoice_seq')", "unsafe_function"),
    ("SELECT setval('invoice_seq', 1)", "unsafe_function"),
    ("SELECT pg_catalog.nextval('invoice_seq')", "unsafe_function"),
    ("SELECT * FROM users WHERE id = (SELECT nextval('invoice_seq'))", "unsafe_function"),
    ("SELECT dblink_exec('dbname=postgres', 'DELETE FROM users')", "unsafe_function"),
    ("SELECT * FROM dblink('dbname=postgres', 'SELECT 1') AS t(a int)", "unsafe_function"),
    ("SELECT pg_import_system_collations('pg_catalog')", "unsafe_function"),
    ("SELECT pg_read_file('/etc/passwd')", "unsafe_function"),
    ("SELECT pg_read_binary_file('/etc/passwd')", "unsafe_function"),
    ("SELECT * FROM pg_ls_dir('.')", "unsafe_function"),
    ("SELECT set_config('default_transaction_read_only', 'off', false)", "unsafe_function"),
    ("SELECT pg_terminate_backend(1)", "unsafe_function"),
    ("SELECT pg_cancel_backend(1)", "unsafe_function"),
    ("SELECT pg_reload_conf()", "unsafe_function"),
    ("SELECT lo_export(1234, '/tmp/x')", "unsafe_function"),
    ("SELECT lo_import('/etc/passwd')", "unsafe_function"),
    ("SELECT query_to_xml('DELETE FROM users RETURNING 1', true, true, '')", "unsafe_function"),
    ("SELECT pg_notify('ch', 'x')", "unsafe_function"),
    ("SELECT pg_advisory_lock(1)", "unsafe_function"),
    ("SELECT pg_try_advisory_xact_lock(1)", "unsafe_function"),
    ("SELECT pg_sleep(10)", "unsafe_function"),
    ("SELECT txid_current()", "unsafe_function"),
    ("SELECT pg_current_xact_id()", "unsafe_function"),
    ("SELECT pg_switch_wal()", "unsafe_function"),
    ("SELECT pg_create_logical_replication_slot('s', 'test_decoding')", "unsafe_function"),
    ("SELECT pg_stat_reset()", "unsafe_function"),
    ("SELECT brin_summarize_new_values('orders_created_at_idx')", "unsafe_function"),
    ("SELECT gin_clean_pending_list('x')", "unsafe_function"),
    ("SELECT lower(name) FROM users ORDER BY pg_sleep(1)", "unsafe_function"),
    ("SELECT log_event('x')", "unknown_function"),
    ("SELECT public.lower('x')", "unknown_function"),
    ("SELECT 1 OPERATOR(public.+) 2", "unknown_function"),
    ("SELECT * FROM users TABLESAMPLE my_sampler (1)", "unknown_function"),
    # 11: COPY
    ("COPY users FROM STDIN", "copy"),
    ("COPY users TO '/tmp/users.csv'", "copy"),
    ("COPY (SELECT 1) TO PROGRAM 'id'", "copy"),
    # row locks
    ("SELECT * FROM users FOR UPDATE", "row_lock"),
    ("SELECT * FROM users FOR SHARE", "row_lock"),
    ("SELECT * FROM users FOR NO KEY UPDATE SKIP LOCKED", "row_lock"),
    ("SELECT * FROM users FOR KEY SHARE", "row_lock"),
    ("SELECT * FROM (SELECT * FROM users FOR UPDATE) s", "row_lock"),
    ("DECLARE c CURSOR FOR SELECT * FROM users FOR UPDATE", "row_lock"),
    # dynamic SQL, procedures, code blocks
    ("PREPARE s AS SELECT 1", "dynamic_sql"),
    ("EXECUTE s", "dynamic_sql"),
    ("DO $$BEGIN DELETE FROM users; END$$", "dynamic_sql"),
    ("CALL archive_orders(now())", "procedure_call"),
    # EXPLAIN of writes (EXPLAIN ANALYZE executes them)
    ("EXPLAIN ANALYZE DELETE FROM users", "write_statement"),
    ("EXPLAIN UPDATE users SET name = 'x'", "write_statement"),
    # admin and messaging
    ("LOCK TABLE users IN ACCESS EXCLUSIVE MODE", "table_lock"),
    ("VACUUM users", "admin_command"),
    ("ANALYZE users", "admin_command"),
    ("CLUSTER users", "admin_command"),
    ("REINDEX TABLE users", "admin_command"),
    ("CHECKPOINT", "admin_command"),
    ("REFRESH MATERIALIZED VIEW daily_revenue", "admin_command"),
    ("LOAD 'auto_explain'", "admin_command"),
    ("LISTEN ch", "admin_command"),
    ("NOTIFY ch", "admin_command"),
    # info leaks (block_sensitive_show)
    ("SELECT query FROM pg_stat_activity", "sensitive_show"),
    ("SELECT rolpassword FROM pg_authid", "sensitive_show"),
    # unparseable or empty text
    ("SELEC 1", "parse_error"),
    ("SELECT 'unterminated", "parse_error|lex_error"),
    ("", "empty_statement"),
    ("/* only a comment */", "empty_statement"),
]


@pytest.fixture(scope="module")
def engine():
    return Engine("postgres")


@pytest.mark.parametrize("sql,klass", ALLOWED, ids=case_ids(ALLOWED))
def test_allowed(engine, sql, klass):
    v = engine.classify(sql)
    assert_allowed(v, klass)
    assert v.path in ("fast", "deep")


@pytest.mark.parametrize("sql,rule", BLOCKED, ids=case_ids(BLOCKED))
def test_blocked(engine, sql, rule):
    v = engine.classify(sql)
    assert_blocked(v, rule)
    # the same text again comes from the cache with the same decision
    again = engine.classify(sql)
    assert again.path == "cache" and again.rule == v.rule and not again.allowed


def test_reasons_say_what_and_what_instead(engine):
    v = engine.classify("UPDATE users SET name = 'x'")
    assert "UPDATE" in v.reason and "read-only" in v.reason and "SELECT" in v.reason
    v = engine.classify("SELECT nextval('invoice_seq')")
    assert "nextval()" in v.reason and "sequence" in v.reason
    v = engine.classify("SELEC 1")
    assert "could not be parsed; rewrite as a single plain SELECT" in v.reason


def test_multi_statement_lists_every_statement(engine):
    v = engine.classify("SELECT 1; COMMIT; DROP SCHEMA public CASCADE;")
    assert v.rule == "ddl_statement" and v.klass == "ddl"
    assert [(s.verbs, s.klass) for s in v.statements] == [
        (("SELECT",), "read"), (("COMMIT",), "transaction"), (("DROP",), "ddl")]
    v = engine.classify("WITH x AS (DELETE FROM orders RETURNING *) SELECT * FROM x")
    assert "DELETE" in v.statements[0].verbs


def test_verdict_is_immutable_and_serialises(engine):
    v = engine.classify("SELECT 1; SELECT 2")
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.verdict = "block"  # type: ignore[misc]
    d = v.to_dict()
    assert d["verdict"] == "allow" and d["class"] == "read"
    assert set(d) == {"verdict", "rule", "reason", "class", "statements", "path"}
    assert isinstance(d["statements"], list) and all(set(s) == {"verbs", "class"} for s in d["statements"])
    assert isinstance(v, Verdict) and v.allowed is True


def test_module_level_classify():
    assert classify("SELECT 1").allowed
    assert not classify("DELETE FROM t").allowed
    assert classify("SELECT 1", dialect="postgres").verdict == "allow"


def test_unknown_dialect_is_refused():
    with pytest.raises(ValueError):
        Engine("oracle")


def test_blocked_commands_add_to_the_allowlist_but_never_allow():
    eng = Engine("postgres", blocked_commands=("SELECT", "insert"))
    v = eng.classify("SELECT 1")
    assert not v.allowed and v.rule == "blocked_command" and "SELECT" in v.reason
    assert eng.classify("WITH x AS (SELECT 1) SELECT * FROM x").rule == "blocked_command"
    # a verb already blocked by the engine keeps its own, more specific rule
    assert eng.classify("INSERT INTO t VALUES (1)").rule == "write_statement"
    assert Engine("postgres", blocked_commands=("DELETE",)).classify("SHOW ALL").allowed


def test_sensitive_show_is_an_option():
    assert Engine("postgres", block_sensitive_show=False).classify(
        "SELECT query FROM pg_stat_activity").allowed


def test_allow_unknown_functions_switch():
    eng = Engine("postgres", allow_unknown_functions=True)
    assert eng.classify("SELECT user_order_total(1)").allowed
    # the denylist still wins
    assert eng.classify("SELECT nextval('invoice_seq')").rule == "unsafe_function"


# ---------------------------------------------------------------------------------------------
# against the real server
# ---------------------------------------------------------------------------------------------

# Statements that need state this test does not create (cursors, savepoints) or that end the
# transaction the reads run in are classified above but not executed here.
_NOT_RUN = ("FETCH", "CLOSE", "RELEASE", "SAVEPOINT", "COMMIT", "ROLLBACK", "BEGIN", "START",
            "DECLARE", "SET TRANSACTION", "COPY", "DEALLOCATE", "TABLE products")


pg_db = pg_schema_db("engine_pg_")


@pytest.mark.pg
def test_allowed_statements_are_valid_on_the_server(pg_server, pg_db):
    """Every allowed statement is real PostgreSQL 15 SQL (the engine's grammar is PG 18's)."""
    before = pg_server.checksum(pg_db)
    with psycopg.connect(pg_server.dsn(pg_db), autocommit=True) as conn:
        for sql, _ in ALLOWED:
            if sql.startswith(_NOT_RUN) or not sql:
                continue
            with conn.cursor() as cur:
                cur.execute(sql)
    assert pg_server.checksum(pg_db) == before


# Writes whose effects stay inside the test database. Each is sent to the server only if the
# engine allows it, with no read-only transaction underneath: the engine alone must keep the
# checksum unchanged.
_GATED = [
    "INSERT INTO users (id, email, name, country, created_at) VALUES (999, 'x@y', 'x', 'DE', now())",
    "UPDATE users SET name = 'x'",
    "DELETE FROM order_items",
    "WITH x AS (DELETE FROM order_items RETURNING *) SELECT count(*) FROM x",
    "WITH x AS (SELECT 1) UPDATE orders SET status = 'x'",
    "SELECT * INTO users_copy FROM users",
    "CREATE TABLE t2 AS SELECT * FROM users",
    "SELECT 1; DROP TABLE notes",
    "SELECT 1; COMMIT; DELETE FROM events",
    "/* x */ TRUNCATE events CASCADE",
    "SELECT nextval('invoice_seq')",
    "SELECT setval('invoice_seq', 5000)",
    "SELECT log_event('pwned')",
    "SELECT next_invoice_no()",
    "CALL archive_orders(now())",
    "DO $$BEGIN DELETE FROM notes; END$$",
    "EXPLAIN ANALYZE DELETE FROM notes",
    "ALTER TABLE users ADD COLUMN pwned int",
    "COMMENT ON TABLE users IS 'pwned'",
    "CREATE INDEX pwned_idx ON users (name)",
    "MERGE INTO orders o USING users u ON o.user_id = u.id WHEN MATCHED THEN UPDATE SET status = 'm'",
    "SELECT 1 /* ; */ ; UPDATE products SET price = 0",
]


@pytest.mark.pg
def test_engine_alone_keeps_the_database_unchanged(pg_server, pg_db):
    with unchanged(pg_server, pg_db):
        with psycopg.connect(pg_server.dsn(pg_db), autocommit=True) as conn:
            def execute(sql):          # a bug: the write reaches the server and the checksum shows it
                with conn.cursor() as cur:
                    cur.execute(sql)
            allowed = gate(Engine("postgres"), _GATED, execute)
        assert allowed == []


@pytest.mark.pg
def test_discard_all_really_resets_read_only_set_by_set(pg_server, pg_db):
    """Why DISCARD ALL / RESET ALL are blocked: a read-only mode applied with SET (as a relay
    might do after connecting) does not survive them."""
    with psycopg.connect(pg_server.dsn(pg_db), autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = on")
        assert conn.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
        conn.execute("DISCARD ALL")
        assert conn.execute("SHOW default_transaction_read_only").fetchone()[0] == "off"
    assert not Engine("postgres").classify("DISCARD ALL").allowed
