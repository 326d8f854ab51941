"""Verdict engine, T-SQL dialect. T-SQL has no read-only transaction mode at all
(read-only-bypasses.md item 12), so the engine is the only SQL-level guard: dynamic SQL in
strings, extended procedures, ad hoc remote queries, WAITFOR and batches without `;` must block.
There is no SQL Server on this machine; these tests check the verdicts only."""

from __future__ import annotations

import pytest

from sandbox_db_proxy import _native
from test_engine_helpers import verdict_table_tests

_BATCH = "SELECT COUNT(*) FROM dbo.users\nSELECT COUNT(*) FROM dbo.orders"


ALLOWED = [
    ("SELECT 1", "read"),
    ("SELECT TOP 10 id, email FROM dbo.users WHERE country = N'DE' ORDER BY id", "read"),
    ("SELECT TOP (10) PERCENT * FROM dbo.products ORDER BY price DESC", "read"),
    ("SELECT u.country, COUNT(*) AS n FROM dbo.users u JOIN dbo.orders o ON o.user_id = u.id "
     "GROUP BY u.country HAVING COUNT(*) > 1", "read"),
    ("SELECT id, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY total DESC) AS rn FROM dbo.orders",
     "read"),
    ("WITH big AS (SELECT * FROM dbo.orders WHERE total > 100) SELECT COUNT(*) FROM big", "read"),
    ("SELECT GETDATE(), ISNULL(note, '-'), DATEADD(day, 1, created_at), CONVERT(varchar(10), created_at, 120), "
     "LEN(name), IIF(total > 100, 'big', 'small') FROM dbo.orders", "read"),
    ("SELECT a FROM dbo.t WITH (NOLOCK)", "read"),
    ("SELECT * FROM dbo.orders ORDER BY id OFFSET 10 ROWS FETCH NEXT 5 ROWS ONLY", "read"),
    ("SELECT * FROM dbo.users FOR JSON AUTO", "read"),
    ("SELECT [select], [a'] FROM dbo.notes WHERE body LIKE '%DROP TABLE%'", "read"),
    ("SELECT name FROM sys.tables", "read"),
    ("SELECT * FROM INFORMATION_SCHEMA.COLUMNS", "read"),
    ("USE analytics", "read"),
    ("SET NOCOUNT ON", "session"),
    ("SET TEXTSIZE 2147483647", "session"),
    ("SET ANSI_NULLS ON", "session"),
    ("SET LOCK_TIMEOUT 1000", "session"),
    ("SET TRANSACTION ISOLATION LEVEL SNAPSHOT", "transaction"),
    ("BEGIN TRANSACTION", "transaction"),
    ("COMMIT TRANSACTION", "transaction"),
    ("DECLARE @d date = '2024-01-01'", "session"),
]

BLOCKED = [
    ("DELETE FROM dbo.users", "write_statement"),
    ("UPDATE dbo.users SET name = 'x'", "write_statement"),
    ("INSERT INTO dbo.users (id) VALUES (1)", "write_statement"),
    ("MERGE dbo.t USING dbo.s ON 1 = 1 WHEN MATCHED THEN DELETE;", "write_statement"),
    ("DROP TABLE dbo.users", "ddl_statement"),
    ("TRUNCATE TABLE dbo.orders", "write_statement"),
    # 12: dynamic SQL and OS access
    ("EXEC('DELETE FROM dbo.users WHERE 1=1')", "dynamic_sql"),
    ("EXECUTE ('DROP TABLE dbo.users')", "dynamic_sql"),
    ("EXEC sp_executesql N'DELETE FROM dbo.users'", "dynamic_sql"),
    ("EXEC xp_cmdshell 'dir'", "unsafe_function"),
    ("EXEC master..xp_cmdshell 'whoami'", "unsafe_function|procedure_call|parse_error"),
    ("EXEC dbo.archive_orders", "procedure_call"),
    ("SELECT * FROM OPENROWSET('SQLNCLI', 'Server=x;', 'SELECT 1')", "unsafe_function"),
    ("SELECT * FROM OPENQUERY(remote, 'DELETE FROM t')", "unsafe_function"),
    ("SELECT * FROM OPENDATASOURCE('SQLNCLI', 'Data Source=x').db.dbo.t", "unsafe_function"),
    ("SELECT NEXT VALUE FOR dbo.seq", "unsafe_function"),
    # 13: batches without `;`, bracket quoting
    ("SELECT 1\nWAITFOR DELAY '99:0:0'", "parse_error|unknown_statement|admin_command"),
    ("SELECT 1\nDELETE FROM dbo.orders", "write_statement|parse_error"),
    ("SELECT 1 DELETE FROM dbo.orders", "write_statement|parse_error"),
    ("SELECT [a'];DELETE FROM t WHERE c='x'", "write_statement"),
    ("WAITFOR DELAY '00:00:10'", "parse_error|unknown_statement|admin_command"),
    ("BULK INSERT dbo.t FROM 'c:\\x.csv'", "parse_error|unknown_statement|admin_command|write_statement"),
    ("DBCC CHECKDB", "unknown_statement|admin_command|parse_error"),
    ("BACKUP DATABASE x TO DISK = 'c:\\x.bak'", "parse_error|admin_command|unknown_statement"),
    ("RECONFIGURE", "unknown_statement|admin_command"),
    ("DENY SELECT ON dbo.t TO u", "parse_error|dcl_statement"),
    ("GRANT SELECT ON dbo.t TO u", "dcl_statement"),
    ("KILL 55", "admin_command"),
    ("SHUTDOWN", "unknown_statement|admin_command"),
    ("SELECT a INTO #tmp FROM dbo.t", "select_into"),
    ("SELECT a INTO dbo.t2 FROM dbo.t", "select_into"),
    ("SELECT * FROM dbo.t WITH (UPDLOCK, HOLDLOCK)", "row_lock"),
    ("SELECT * FROM dbo.t WITH (TABLOCKX)", "row_lock"),
    ("SET IDENTITY_INSERT dbo.t ON", "session_setting"),
    ("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "row_lock"),
    ("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", "row_lock"),
    ("SELECT r.session_id, t.text FROM sys.dm_exec_requests r CROSS APPLY sys.dm_exec_sql_text(r.sql_handle) t",
     "sensitive_show"),
    ("SELECT * FROM sys.sql_logins", "sensitive_show"),
    ("SET QUOTED_IDENTIFIER OFF", "session_setting"),
    ("DECLARE @q nvarchar(100) = 'DELETE FROM t'; EXEC(@q)", "dynamic_sql"),
    ("SELECT dbo.my_udf(1)", "unknown_function"),
    ("SELECT * FROM sys.fn_get_audit_file('c:\\*.sqlaudit', default, default)", "unsafe_function"),
    ("", "empty_statement"),
]


engine, test_allowed, test_blocked = verdict_table_tests("tsql", ALLOWED, BLOCKED)


def test_batch_lists_every_statement(engine):
    # docs/ARCHITECTURE.md: split_statements also splits T-SQL batches without `;`
    assert _native.split_statements(_BATCH, "tsql") == _BATCH.split("\n")
    v = engine.classify(_BATCH)
    assert v.allowed, (v.rule, v.reason)
    assert [s.verbs for s in v.statements] == [("SELECT",), ("SELECT",)]


# Batches without `;` (read-only-bypasses.md item 13): each statement is classified on its own,
# so a write anywhere in the batch blocks it with that write's rule, and reads stay reads.
BATCH_ALLOWED = [
    ("SELECT 1 SELECT 2", [("SELECT",), ("SELECT",)]),
    ("DECLARE @d date = '2024-01-01'\nSELECT COUNT(*) FROM dbo.orders WHERE created_at >= @d",
     [("DECLARE",), ("SELECT",)]),
    ("SET NOCOUNT ON SELECT TOP 5 id FROM dbo.users", [("SET",), ("SELECT",)]),
    ("SELECT 1 UNION ALL SELECT 2 SELECT 3", [("SELECT",), ("SELECT",)]),
    ("WITH c AS (SELECT 1 AS a) SELECT a FROM c SELECT 2", [("WITH", "SELECT"), ("SELECT",)]),
    ("SELECT * FROM dbo.orders ORDER BY id OFFSET 10 ROWS FETCH NEXT 5 ROWS ONLY SELECT 1",
     [("SELECT",), ("SELECT",)]),
    ("SELECT 1 AS throw", [("SELECT",)]),
]

BATCH_BLOCKED = [
    ("SELECT 1 DELETE FROM dbo.orders", "write_statement", "DELETE"),
    ("SELECT id FROM dbo.users\nUPDATE dbo.users SET name = 'x'", "write_statement", "UPDATE"),
    ("SELECT 1 INSERT INTO dbo.t SELECT 2", "write_statement", "INSERT"),
    # the server needs `;` before a CTE: the first piece does not parse
    ("SELECT 1 WITH c AS (SELECT 1 AS a) DELETE FROM dbo.t", "parse_error", "DELETE"),
    ("SELECT 1\nWAITFOR DELAY '1:0:0'", "admin_command", "WAITFOR"),
    ("SELECT a FROM dbo.t SHUTDOWN", "admin_command|unknown_statement", "SHUTDOWN"),
    ("SELECT a FROM dbo.t CHECKPOINT", "admin_command|unknown_statement", "CHECKPOINT"),
    ("SELECT 1 EXEC xp_cmdshell 'dir'", "unsafe_function", "EXEC"),
    ("SELECT 1 EXEC('DELETE FROM dbo.users')", "dynamic_sql", "EXEC"),
    ("SELECT 1 TRUNCATE TABLE dbo.orders", "write_statement", "TRUNCATE"),
    ("SELECT 1 DROP TABLE dbo.orders", "ddl_statement", "DROP"),
    ("SELECT 1 GRANT SELECT ON dbo.t TO u", "dcl_statement", "GRANT"),
    ("SELECT 1 SET IDENTITY_INSERT dbo.t ON", "session_setting", "SET"),
    ("SELECT 1 IF 1 = 1 BEGIN DELETE FROM dbo.t END", "unknown_statement", "IF"),
    ("SELECT 1 BEGIN DELETE FROM dbo.t END", "unknown_statement", "BEGIN"),
    ("SELECT a FROM dbo.t END", "unknown_statement", "END"),
    ("SELECT 1 THROW", "unknown_statement|admin_command", "THROW"),
    ("SELECT 1 MERGE dbo.t USING dbo.s ON 1 = 1 WHEN MATCHED THEN DELETE", "write_statement",
     "MERGE"),
]


@pytest.mark.parametrize("sql,verbs", BATCH_ALLOWED, ids=[s[:50] for s, _ in BATCH_ALLOWED])
def test_batch_allowed(engine, sql, verbs):
    v = engine.classify(sql)
    assert v.allowed, (v.rule, v.reason)
    assert [s.verbs for s in v.statements] == verbs


@pytest.mark.parametrize("sql,rule,verb", BATCH_BLOCKED, ids=[s[:50] for s, _, _ in BATCH_BLOCKED])
def test_batch_blocked(engine, sql, rule, verb):
    v = engine.classify(sql)
    assert not v.allowed
    assert v.rule in rule.split("|"), (v.rule, v.reason)
    # the blocking statement is listed as its own statement, after the read
    assert len(v.statements) >= 2, v.statements
    assert any(s.verbs[:1] == (verb,) for s in v.statements[1:]), v.statements
    assert len(v.reason) > 30
