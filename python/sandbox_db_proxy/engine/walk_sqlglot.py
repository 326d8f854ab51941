"""Walk of a MySQL/MariaDB or T-SQL read statement in sqlglot's tree (used by deep_sqlglot).

Default deny: every node's class must be on READ_NODES; exp.Func nodes go to the function policy
(known sqlglot classes only when listed in functions.SQLGLOT_SAFE_CLASSES); INTO, locking
clauses, lock hints, DML anywhere, user-defined types, and (block_sensitive_show) relations that
reveal other sessions' SQL or credentials block.
"""

from __future__ import annotations

from sqlglot import exp

from . import reasons
from .functions import LITERAL_SENSITIVE, SQLGLOT_SAFE_CLASSES, FunctionPolicy, unsafe_reason
from .results import _Block
from .settings_sqlglot import _USER_VAR_WHY
from .verdict import ADMIN, FUNCTION, SESSION, UNKNOWN, WRITE

_C = exp.__dict__

# Expression classes allowed inside a read (besides exp.Func, which goes to the policy).
READ_NODES: frozenset[type] = frozenset(_C[n] for n in """
Select Union Intersect Except SetOperation Values Subquery From Join Lateral Where Group Having
Order Ordered Limit Offset Fetch Distinct With CTE Table TableAlias Alias Aliases Column
Identifier Star Literal Null Boolean Var Parameter Placeholder SessionParameter DataType
DataTypeParam Interval IntervalSpan Introducer National HexString BitString ByteString RawString
UnicodeString Tuple Paren Neg Not BitwiseNot Bracket Dot Window WindowSpec Filter WithinGroup
IgnoreNulls RespectNulls GroupingSets Cube Rollup Partition IndexTableHint WithTableHint
ForClause QueryOption XMLKeyValueOption XMLNamespace OpenJSONColumnDef JSONColumnDef JSONSchema
JSONPath JSONPathFilter JSONPathKey JSONPathPart JSONPathRecursive JSONPathRoot JSONPathScript
JSONPathSelector JSONPathSlice JSONPathSubscript JSONPathUnion JSONPathWildcard JSONKeyValue
JSONValue FormatJson OnCondition AtTimeZone CharacterSet Pivot PivotAlias UnpivotColumns
TableSample Slice Kwarg PropertyEQ Pseudocolumn Version Hint Show LimitOptions
Add Sub Mul Div IntDiv Mod DPipe EQ NEQ GT GTE LT LTE NullSafeEQ NullSafeNEQ Is In Between
Like ILike Glob SimilarTo Escape Any All BitwiseAnd BitwiseOr BitwiseXor BitwiseLeftShift
BitwiseRightShift Overlaps Distance Match
""".split() if n in _C)

_DML = {exp.Insert: "INSERT", exp.Update: "UPDATE", exp.Delete: "DELETE", exp.Merge: "MERGE"}


# T-SQL table hints that only relax locking or steer the plan. UPDLOCK, XLOCK, HOLDLOCK,
# TABLOCK(X), PAGLOCK, ROWLOCK, SERIALIZABLE, REPEATABLEREAD take or keep locks: blocked.
_TSQL_SAFE_HINTS = frozenset({"NOLOCK", "READUNCOMMITTED", "READCOMMITTED", "READPAST",
                              "NOEXPAND", "INDEX", "FORCESEEK", "FORCESCAN", "NOWAIT",
                              "READCOMMITTEDLOCK", "SNAPSHOT"})


# Relations that reveal other sessions' SQL, credentials or grants (block_sensitive_show).
# MySQL: the `mysql`, `performance_schema` and `sys` schemas are server internals as a whole
# (users and password hashes, general/slow logs, statement history); in information_schema only
# some tables are sensitive. Unqualified names are checked against the database chosen by a USE
# earlier in the same text, and the information_schema names are blocked unqualified too
# (the session may have switched to information_schema in an earlier request).
_MYSQL_SENSITIVE_SCHEMAS = frozenset({"mysql", "performance_schema", "sys"})
_MYSQL_SENSITIVE_IS_TABLES = frozenset({
    "processlist", "innodb_trx", "innodb_locks", "innodb_lock_waits", "user_privileges",
    "schema_privileges", "table_privileges", "column_privileges", "user_statistics",
    "client_statistics", "global_status", "session_status"})
# T-SQL: dynamic management views with other sessions' SQL and logins.
_TSQL_SENSITIVE = frozenset({"sql_logins", "syslogins", "sysprocesses", "server_principals",
                             "dm_exec_sql_text", "dm_exec_query_plan", "fn_get_sql"})
_TSQL_SENSITIVE_PREFIX = "dm_exec_"


# T-SQL reserved words that begin statements. SQL Server never accepts them as bare
# identifiers, so an unquoted identifier with such a name means sqlglot read two statements
# of a batch as one (`SELECT 1 DELETE FROM t` -> alias "DELETE"): ambiguous, blocked.
TSQL_STATEMENT_WORDS = frozenset("""
SELECT INSERT UPDATE DELETE MERGE DROP CREATE ALTER TRUNCATE EXEC EXECUTE WAITFOR BULK USE DBCC
BACKUP RESTORE RECONFIGURE DENY GRANT REVOKE KILL SHUTDOWN DECLARE SET BEGIN COMMIT ROLLBACK
SAVE IF WHILE RETURN PRINT RAISERROR GOTO OPEN CLOSE FETCH DEALLOCATE READTEXT WRITETEXT
UPDATETEXT CHECKPOINT SETUSER REVERT WITH INTO LOAD DUMP
""".split())


def _name_of(node: exp.Expression) -> str:
    if isinstance(node, exp.Column) or isinstance(node, exp.Identifier):
        return node.name
    if isinstance(node, exp.SessionParameter) or isinstance(node, exp.Parameter):
        inner = node.this
        return inner.name if isinstance(inner, exp.Expression) else str(inner or "")
    return node.sql() if isinstance(node, exp.Expression) else str(node)


def _sensitive_relation(dialect: str, schema: str | None, name: str, qualified: bool) -> bool:
    if dialect == "mysql":
        if schema in _MYSQL_SENSITIVE_SCHEMAS:
            return True
        if name in _MYSQL_SENSITIVE_IS_TABLES:
            return schema == "information_schema" or not qualified
        return False
    return name in _TSQL_SENSITIVE or name.startswith(_TSQL_SENSITIVE_PREFIX)


class _Walker:
    __slots__ = ("dialect", "policy", "sensitive", "literal_free", "nested_verbs", "sensitive_reason",
                 "default_db")

    def __init__(self, dialect: str, policy: FunctionPolicy, sensitive: bool,
                 default_db: str | None = None) -> None:
        self.default_db = default_db
        self.dialect = dialect
        self.policy = policy
        self.sensitive = sensitive
        self.literal_free = True
        self.nested_verbs: list[str] = []
        self.sensitive_reason: str | None = None

    def walk(self, root: exp.Expression) -> None:
        read_nodes = READ_NODES
        qualified: dict[int, str] = {}
        stack: list[exp.Expression] = [root]
        while stack:
            node = stack.pop()
            cls = type(node)
            if isinstance(node, exp.Func):
                self._func(node, qualified.get(id(node)))
            elif cls not in read_nodes:
                self._not_read(node)
            elif cls is exp.Hint:
                continue                  # optimizer hints name no functions; not code
            elif cls is exp.Dot:
                inner = node.expression
                if isinstance(inner, exp.Func):
                    qualified[id(inner)] = node.this.sql(dialect=self.dialect) \
                        if isinstance(node.this, exp.Expression) else str(node.this)
            elif cls is exp.Table:
                self._table(node, qualified)
            elif cls is exp.Select:
                self._select(node)
            elif cls is exp.WithTableHint:
                self._hints(node)
            elif cls is exp.DataType:
                if node.this == exp.DataType.Type.USERDEFINED and not self.policy.allow_unknown:
                    # T-SQL user-defined (possibly CLR) types run user code on conversion
                    raise _Block("unknown_type", FUNCTION, reasons.unknown_type(
                        str(node.args.get("kind") or "?")))
            elif cls is exp.PropertyEQ:
                if isinstance(node.this, exp.Parameter) and self.dialect == "mysql":
                    raise _Block("session_setting", SESSION, reasons.session_setting(
                        f"Assigning @{_name_of(node.this)} := ...", _USER_VAR_WHY))
                if not isinstance(node.this, (exp.Parameter, exp.Identifier, exp.Column, exp.Var)):
                    self._not_read(node)
            elif cls is exp.Identifier:
                if self.dialect == "tsql" and not node.args.get("quoted") and \
                        node.name.upper() in TSQL_STATEMENT_WORDS:
                    raise _Block("parse_error", UNKNOWN, reasons.parse_error(
                        f"{node.name.upper()} is a reserved word that starts a statement; in a "
                        f"T-SQL batch it begins a new statement, so the text is ambiguous"))
            for value in node.args.values():
                if isinstance(value, exp.Expression):
                    stack.append(value)
                elif isinstance(value, list):
                    stack.extend(v for v in value if isinstance(v, exp.Expression))
        if self.sensitive_reason is not None:
            raise _Block("sensitive_show", ADMIN, self.sensitive_reason)

    def _sensitive_hit(self, reason: str) -> None:
        """Remember an information leak (block_sensitive_show) but keep walking: a write or an
        unsafe function in the same statement is the more important reason to report."""
        if self.sensitive_reason is None:
            self.sensitive_reason = reason

    def _not_read(self, node: exp.Expression) -> None:
        for cls, verb in _DML.items():
            if isinstance(node, cls):
                self.nested_verbs.append(verb)
                raise _Block("write_statement", WRITE, reasons.write_statement(
                    verb, "inside a WITH clause or subquery"), verb)
        if isinstance(node, exp.Into):
            raise _Block("select_into", WRITE, reasons.select_into(_into_target(node)), "INTO")
        if isinstance(node, exp.Lock):
            clause = "FOR UPDATE" if node.args.get("update") else "LOCK IN SHARE MODE / FOR SHARE"
            raise _Block("row_lock", WRITE, reasons.row_lock(f"SELECT ... {clause}"), "FOR")
        raise _Block("unknown_syntax", UNKNOWN, reasons.unsafe_syntax(
            f"The construct {type(node).__name__}",
            "it is not on the proxy's list of read-only SQL constructs"))

    def _select(self, node: exp.Select) -> None:
        if node.args.get("into") is not None:
            raise _Block("select_into", WRITE, reasons.select_into(_into_target(node.args["into"])),
                         "INTO")
        if node.args.get("locks"):
            lock = node.args["locks"][0]
            clause = "FOR UPDATE" if lock.args.get("update") else "LOCK IN SHARE MODE / FOR SHARE"
            raise _Block("row_lock", WRITE, reasons.row_lock(f"SELECT ... {clause}"), "FOR")

    def _hints(self, node: exp.Expression) -> None:
        for h in node.expressions:
            name = (h.name if isinstance(h, (exp.Var, exp.Identifier, exp.Column)) else
                    (h.sql_name() if isinstance(h, exp.Func) else h.sql())).upper()
            if isinstance(h, exp.Anonymous):
                name = str(h.this).upper()
            if name not in _TSQL_SAFE_HINTS:
                raise _Block("row_lock", WRITE, reasons.row_lock(f"The table hint WITH ({name})"))

    def _table(self, node: exp.Table, qualified: dict[int, str]) -> None:
        inner = node.this
        db = node.args.get("db")
        if isinstance(inner, exp.Func) and isinstance(db, exp.Expression):
            qualified[id(inner)] = db.name
        if self.sensitive and isinstance(inner, exp.Identifier):
            schema = db.name.lower() if isinstance(db, exp.Identifier) else None
            if _sensitive_relation(self.dialect, schema or self.default_db, inner.name.lower(),
                                   qualified=schema is not None):
                shown = f"{db.name}.{inner.name}" if schema else inner.name
                self._sensitive_hit(reasons.sensitive_show(f"Reading {shown}"))
        catalog = node.args.get("catalog")
        if isinstance(catalog, exp.Func):   # OPENDATASOURCE(...).db.schema.table
            qualified.pop(id(catalog), None)

    def _func(self, node: exp.Func, schema: str | None) -> None:
        if isinstance(node, exp.Anonymous):
            name = str(node.this)
        else:
            name = node.sql_name()
        lname = name.lower()
        if lname in LITERAL_SENSITIVE:
            self.literal_free = False
        why = unsafe_reason(self.dialect, lname)
        if why is not None:
            shown = f"{schema}.{name}" if schema else name
            raise _Block("unsafe_function", FUNCTION, reasons.unsafe_function(shown, why))
        if self.sensitive and self.dialect == "tsql" and (
                lname in _TSQL_SENSITIVE or lname.startswith(_TSQL_SENSITIVE_PREFIX)):
            self._sensitive_hit(reasons.sensitive_show(f"{name}()"))
            return
        if isinstance(node, exp.NextValueFor):
            raise _Block("unsafe_function", FUNCTION, reasons.unsafe_function(
                "NEXT VALUE FOR", "advances a sequence, which is a write"))
        if schema is None and not isinstance(node, exp.Anonymous) and \
                type(node).__name__ in SQLGLOT_SAFE_CLASSES:
            return
        judged = self.policy.judge(name, schema)
        if judged is not None:
            raise _Block(judged.rule, FUNCTION, judged.reason)


def _into_target(into: exp.Expression) -> str:
    text = into.sql()
    upper = text.upper()
    if "OUTFILE" in upper or "DUMPFILE" in upper:
        return "OUTFILE/DUMPFILE (writes a file on the database server)"
    if "@" in text:
        return "a variable"
    return "a table (creates a table)"
