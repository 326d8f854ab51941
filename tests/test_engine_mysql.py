"""Verdict engine, MySQL/MariaDB dialect: executable comments, dynamic SQL, file I/O, locks,
transaction-mode switches and the other bypass classes of ../shared/notes/read-only-bypasses.md
block; realistic reads and what drivers send at connect are allowed. Checked against the real
MariaDB 10.11 server: reads run there, and gated writes would change its checksum."""

from __future__ import annotations

import uuid

import pymysql
import pytest

from corpus_util import apply_schema_mysql
from sandbox_db_proxy import Engine
from proxy_harness import unchanged
from test_engine_helpers import gate, verdict_table_tests

ALLOWED = [
    ("SELECT 1", "read"),
    ("SELECT id, email FROM users WHERE country = 'DE' ORDER BY id LIMIT 5", "read"),
    ("SELECT u.country, COUNT(*) n, SUM(o.total) FROM users u JOIN orders o ON o.user_id = u.id "
     "GROUP BY u.country HAVING COUNT(*) > 1 ORDER BY n DESC LIMIT 10", "read"),
    ("SELECT id, total, RANK() OVER (PARTITION BY user_id ORDER BY total DESC) r FROM orders", "read"),
    ("WITH big AS (SELECT * FROM orders WHERE total > 100) SELECT COUNT(*) FROM big", "read"),
    ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) SELECT SUM(n) FROM r",
     "read"),
    ("SELECT id FROM users UNION ALL SELECT user_id FROM orders", "read"),
    ("SELECT DATE_FORMAT(created_at, '%Y-%m') m, COUNT(*) FROM orders GROUP BY m", "read"),
    ("SELECT IFNULL(note, '-'), COALESCE(shipped_at, created_at), IF(total > 100, 'big', 'small'), "
     "CASE status WHEN 'paid' THEN 1 ELSE 0 END FROM orders", "read"),
    ("SELECT GROUP_CONCAT(name ORDER BY name SEPARATOR ', '), COUNT(DISTINCT country) FROM users", "read"),
    ("SELECT JSON_EXTRACT(profile, '$.lang'), JSON_UNQUOTE(JSON_EXTRACT(profile, '$.lang')) FROM users",
     "read"),
    ("SELECT CONCAT(name, ' <', email, '>'), SUBSTRING(email, 1, 3), UPPER(country), "
     "LENGTH(name), ROUND(1.234, 2), NOW(), CURDATE(), DATABASE(), VERSION() FROM users", "read"),
    ("SELECT DATE_ADD(created_at, INTERVAL 1 DAY), DATEDIFF(NOW(), created_at), "
     "TIMESTAMPDIFF(HOUR, created_at, NOW()), YEAR(created_at) FROM orders", "read"),
    ("SELECT 'DELETE FROM users; DROP TABLE orders' AS `drop`, \"UPDATE x\" AS s", "read"),
    ("SELECT body FROM notes WHERE body LIKE '%drop table%'", "read"),
    ("/* DELETE FROM users */ SELECT COUNT(*) FROM users -- ; DROP TABLE users", "read"),
    ("SELECT COUNT(*) FROM users # DELETE FROM users", "read"),
    ("SELECT 1 /*!50000 + 1 */", "read"),
    ("SELECT /*+ MAX_EXECUTION_TIME(1000) */ id FROM users", "read"),
    ("SELECT SQL_NO_CACHE id FROM users USE INDEX (PRIMARY)", "read"),
    ("SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()", "read"),
    ("SELECT @@version, @@session.sql_mode, @@autocommit", "read"),
    ("SHOW TABLES", "read"),
    ("SHOW DATABASES", "read"),
    ("SHOW COLUMNS FROM users", "read"),
    ("SHOW CREATE TABLE users", "read"),
    ("SHOW VARIABLES LIKE 'version%'", "read"),
    ("SHOW INDEX FROM orders", "read"),
    ("SHOW WARNINGS", "read"),
    ("DESCRIBE users", "read"),
    ("DESC orders", "read"),
    ("EXPLAIN SELECT * FROM orders WHERE id = 1", "read"),
    ("EXPLAIN FORMAT=JSON SELECT * FROM orders", "read"),
    ("USE information_schema", "read"),
    ("SELECT 1; SELECT 2", "read"),
    # what drivers send at connect, and harmless session settings
    ("SET autocommit=0", "session"),
    ("SET autocommit = 1", "session"),
    ("SET NAMES utf8mb4", "session"),
    ("SET NAMES 'utf8mb4' COLLATE 'utf8mb4_general_ci'", "session"),
    ("SET character_set_results = NULL", "session"),
    ("SET @@session.autocommit = OFF", "session"),
    ("SET SESSION time_zone = '+00:00'", "session"),
    ("SET sql_select_limit = 1000", "session"),
    ("SET SESSION max_statement_time = 5", "session"),
    ("SET sql_mode = 'STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION'", "session"),
    ("SET SESSION tx_isolation = 'READ-COMMITTED'", "session"),
    ("SET SESSION wait_timeout = 600, net_read_timeout = 30", "session"),
    ("SET SESSION TRANSACTION READ ONLY", "transaction"),
    ("SET TRANSACTION ISOLATION LEVEL READ COMMITTED", "transaction"),
    ("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ", "transaction"),
    ("START TRANSACTION", "transaction"),
    ("START TRANSACTION READ ONLY", "transaction"),
    ("START TRANSACTION WITH CONSISTENT SNAPSHOT", "transaction"),
    ("BEGIN", "transaction"),
    ("COMMIT", "transaction"),
    ("ROLLBACK", "transaction"),
    ("SAVEPOINT s1", "transaction"),
    ("RELEASE SAVEPOINT s1", "transaction"),
]

BLOCKED = [
    ("INSERT INTO users (id) VALUES (1)", "write_statement"),
    ("REPLACE INTO users (id) VALUES (1)", "write_statement"),
    ("UPDATE users SET name = 'x'", "write_statement"),
    ("DELETE FROM users", "write_statement"),
    ("DROP TABLE users", "ddl_statement"),
    ("CREATE TABLE t2 (a INT)", "ddl_statement"),
    ("TRUNCATE TABLE orders", "write_statement"),
    ("ALTER TABLE users ADD COLUMN x INT", "ddl_statement"),
    ("RENAME TABLE users TO u2", "ddl_statement"),
    ("GRANT ALL ON *.* TO 'x'@'%'", "dcl_statement"),
    # 4, 1: stacked statements and access-mode switches
    ("SELECT 1; DELETE FROM users", "write_statement"),
    ("COMMIT; DELETE FROM users", "write_statement"),
    ("START TRANSACTION READ WRITE", "transaction_mode"),
    ("SET SESSION TRANSACTION READ WRITE", "transaction_mode"),
    ("SET TRANSACTION READ WRITE", "transaction_mode"),
    ("SET @@session.tx_read_only = 0", "transaction_mode"),
    ("SET SESSION transaction_read_only = OFF", "transaction_mode"),
    ("SET GLOBAL read_only = 0", "session_setting"),
    ("SET @@global.read_only = OFF", "session_setting"),
    ("SET PERSIST max_connections = 1", "session_setting"),
    ("SET sql_log_bin = 0", "session_setting"),
    ("SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'", "session_setting"),
    ("SET sql_mode = 'TRADITIONAL,ANSI_QUOTES'", "session_setting"),
    ("SET @@SESSION.sql_mode = 'ORACLE'", "session_setting"),
    ("SET sql_mode = CONCAT(@@sql_mode, ',ANSI')", "session_setting"),
    ("SET NAMES gbk", "session_setting"),
    ("SET character_set_client = sjis", "session_setting"),
    ("SET @q = 'DELETE FROM orders'", "session_setting"),
    # 6: comment tricks
    ("/* x */ UPDATE users SET name = 'x'", "write_statement"),
    ("-- x\nUPDATE users SET name = 'x'", "write_statement"),
    ("# x\nDELETE FROM users", "write_statement"),
    ("DELETE/**/FROM users", "write_statement"),
    # 7: executable comments are code
    ("SELECT 1 /*!50000 INTO OUTFILE '/tmp/x.txt' */", "select_into"),
    ("/*! DELETE FROM users */", "write_statement"),
    ("SELECT 1; /*!50000 DROP TABLE users */", "ddl_statement"),
    ("/*M! DROP TABLE users */", "ddl_statement"),
    ("SELECT 1 /*!32302 ; DELETE FROM users */", "write_statement"),
    # 8: file I/O, dynamic SQL, DoS functions
    ("SELECT * FROM users INTO OUTFILE '/tmp/u.txt'", "select_into"),
    ("SELECT * FROM users INTO DUMPFILE '/tmp/u.bin'", "select_into"),
    ("SELECT id INTO @v FROM users LIMIT 1", "select_into"),
    ("LOAD DATA INFILE '/etc/passwd' INTO TABLE notes", "write_statement|parse_error"),
    ("LOAD XML INFILE '/tmp/x.xml' INTO TABLE notes", "write_statement|parse_error"),
    ("SELECT LOAD_FILE('/etc/passwd')", "unsafe_function"),
    ("PREPARE s FROM 'DELETE FROM users'", "dynamic_sql"),
    ("SET @q = 'DELETE FROM orders'; PREPARE s FROM @q; EXECUTE s", "session_setting"),
    ("EXECUTE s", "dynamic_sql"),
    ("EXECUTE IMMEDIATE CONCAT('TRUNC', 'ATE orders')", "dynamic_sql"),
    ("CALL archive_orders(NOW())", "procedure_call"),
    ("SELECT SLEEP(10)", "unsafe_function"),
    ("SELECT BENCHMARK(100000000, MD5('x'))", "unsafe_function"),
    ("SELECT GET_LOCK('x', 10)", "unsafe_function"),
    ("SELECT RELEASE_ALL_LOCKS()", "unsafe_function"),
    ("SELECT MASTER_POS_WAIT('log', 4)", "unsafe_function"),
    ("SELECT NEXTVAL(invoice_seq)", "unsafe_function"),
    ("SELECT NEXT VALUE FOR invoice_seq", "unsafe_function|parse_error"),
    ("SELECT log_event('x')", "unknown_function"),
    ("SELECT corpus.fmt_money(1)", "unknown_function"),
    ("SELECT sys_exec('id')", "unsafe_function"),
    # row locks, table locks, handlers
    ("SELECT * FROM users FOR UPDATE", "row_lock"),
    ("SELECT * FROM users LOCK IN SHARE MODE", "row_lock"),
    ("SELECT * FROM (SELECT * FROM users FOR UPDATE) s", "row_lock"),
    ("LOCK TABLES users READ", "table_lock"),
    ("UNLOCK TABLES", "table_lock"),
    ("FLUSH TABLES WITH READ LOCK", "unknown_statement|admin_command|parse_error"),
    ("HANDLER users OPEN", "parse_error|admin_command"),
    # admin
    ("KILL 1", "admin_command"),
    ("SHUTDOWN", "unknown_statement|admin_command"),
    ("INSTALL SONAME 'auth_ed25519'", "parse_error|admin_command"),
    ("INSTALL PLUGIN x SONAME 'x.so'", "parse_error|admin_command|ddl_statement"),
    ("CHANGE MASTER TO MASTER_HOST = 'evil'", "parse_error|admin_command"),
    ("OPTIMIZE TABLE users", "admin_command"),
    ("ANALYZE TABLE users", "admin_command"),
    ("XA START 'x'", "parse_error|admin_command"),
    ("DO SLEEP(5)", "parse_error|admin_command"),
    # 16: sensitive SHOW
    ("SHOW PROCESSLIST", "sensitive_show"),
    ("SHOW FULL PROCESSLIST", "sensitive_show"),
    ("SHOW GRANTS FOR root", "sensitive_show"),
    ("SHOW ENGINE INNODB STATUS", "sensitive_show"),
    ("SHOW BINLOG EVENTS", "sensitive_show"),
    ("SHOW CREATE USER root", "sensitive_show"),
    ("SELECT * FROM information_schema.PROCESSLIST", "sensitive_show"),
    ("SELECT * FROM mysql.user", "sensitive_show"),
    ("SELECT sql_text FROM mysql.slow_log", "sensitive_show"),
    ("SELECT trx_query FROM information_schema.INNODB_TRX", "sensitive_show"),
    ("SELECT * FROM performance_schema.events_statements_history", "sensitive_show"),
    ("USE information_schema; SELECT * FROM processlist", "sensitive_show"),
    ("SELECT * FROM processlist", "sensitive_show"),
    ("USE mysql", "sensitive_show"),
    ("SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE", "row_lock"),
    ("SET SESSION tx_isolation = 'SERIALIZABLE'", "row_lock"),
    ("SET tx_isolation = 3", "row_lock"),
    ("SET SESSION tx_isolation = CONCAT('SERIAL', 'IZABLE')", "session_setting"),
    ("SET SESSION time_zone = @x", "session_setting"),
    # EXPLAIN of writes; DESCRIBE stays a read
    ("EXPLAIN DELETE FROM users", "write_statement"),
    ("EXPLAIN ANALYZE SELECT SLEEP(1)", "unsafe_function"),
    # unparseable or empty
    ("SELEC 1", "parse_error"),
    ("", "empty_statement"),
]


engine, test_allowed, test_blocked = verdict_table_tests("mysql", ALLOWED, BLOCKED)


def test_executable_comment_is_never_fingerprint_cached(engine):
    """`SELECT 1 /*!50000 ... */` and `SELECT 1` normalise to similar fingerprints; the verdict
    of one must never be reused for the other."""
    eng = Engine("mysql")
    assert eng.classify("SELECT 1 FROM users WHERE id = 1").allowed
    assert not eng.classify("SELECT 1 FROM users WHERE id = 2 /*!50000 INTO OUTFILE '/tmp/a' */").allowed
    assert not eng.classify("SELECT 1 FROM users WHERE id = 3 /*!50000 FOR UPDATE */").allowed


def test_sensitive_show_is_an_option():
    eng = Engine("mysql", block_sensitive_show=False)
    assert eng.classify("SHOW PROCESSLIST").allowed
    assert eng.classify("SELECT * FROM information_schema.PROCESSLIST").allowed
    assert eng.classify("USE mysql; SELECT user FROM user").allowed
    # a table called `user` in the application's own database is not the mysql.user table
    assert Engine("mysql").classify("USE shop; SELECT * FROM user").allowed


def test_unknown_functions_switch_keeps_the_denylist():
    eng = Engine("mysql", allow_unknown_functions=True)
    assert eng.classify("SELECT user_order_total(1)").allowed
    assert eng.classify("SELECT SLEEP(1)").rule == "unsafe_function"


# ---------------------------------------------------------------------------------------------
# against the real server
# ---------------------------------------------------------------------------------------------

_NOT_RUN = ("SAVEPOINT", "RELEASE", "START", "BEGIN", "COMMIT", "ROLLBACK", "SET SESSION TRANSACTION",
            "SET TRANSACTION", "USE ")


@pytest.fixture(scope="module")
def my_db(mariadb_server):
    name = "engine_my_" + uuid.uuid4().hex[:8]
    apply_schema_mysql(mariadb_server, name)
    yield name
    mariadb_server.sql(f"DROP DATABASE IF EXISTS `{name}`")


def _connect(server, db):
    return pymysql.connect(host=server.host, port=server.port, user=server.user,
                           password=server.password, database=db, autocommit=True,
                           client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)


@pytest.mark.mariadb
def test_allowed_statements_are_valid_on_the_server(mariadb_server, my_db):
    before = mariadb_server.checksum(my_db)
    conn = _connect(mariadb_server, my_db)
    try:
        for sql, _ in ALLOWED:
            if sql.startswith(_NOT_RUN):
                continue
            with conn.cursor() as cur:
                cur.execute(sql)
                while cur.nextset():
                    pass
    finally:
        conn.close()
    assert mariadb_server.checksum(my_db) == before


_GATED = [
    "INSERT INTO notes (id, author_id, body, created_at) VALUES (999, NULL, 'x', NOW())",
    "UPDATE users SET name = 'x'",
    "DELETE FROM order_items",
    "REPLACE INTO products SELECT * FROM products",
    "SELECT 1; DROP TABLE notes",
    "COMMIT; DELETE FROM events",
    "/*!50000 DELETE FROM order_items */",
    "SELECT 1 /*!32302 ; DELETE FROM events */",
    "SELECT NEXTVAL(invoice_seq)",
    "SELECT log_event('pwned')",
    "CALL archive_orders(NOW())",
    "EXECUTE IMMEDIATE CONCAT('TRUNC', 'ATE notes')",
    "CREATE TABLE pwned (a INT)",
    "ALTER TABLE users ADD COLUMN pwned INT",
    "RENAME TABLE notes TO notes2",
    "TRUNCATE TABLE events",
    "DELETE/**/FROM events",
]


@pytest.mark.mariadb
def test_engine_alone_keeps_the_database_unchanged(mariadb_server, my_db):
    with unchanged(mariadb_server, my_db):
        conn = _connect(mariadb_server, my_db)

        def execute(sql):            # a bug: the write reaches the server and the checksum shows it
            with conn.cursor() as cur:
                cur.execute(sql)
        try:
            allowed = gate(Engine("mysql"), _GATED, execute)
        finally:
            conn.close()
        assert allowed == []
