"""Deep check for PostgreSQL: PostgreSQL's own grammar (pglast = libpg_query), default-deny walk.

Why pglast's JSON output and not `pglast.parse_sql`: both come from the same libpg_query parse,
but building pglast's Python AST objects costs ~150 µs for a short SELECT, while the JSON
(parsed with orjson) costs ~15 µs. In that JSON every field typed `Node *` in PostgreSQL's
parsenodes.h is wrapped as `{"NodeType": {...fields}}`; fields of a fixed struct type
(IntoClause, WithClause, Alias, RangeVar in some places...) are bare dicts. The walker treats
a one-key dict whose key starts with an upper-case letter as a node and checks its type
against an allowlist; bare dicts are walked field by field.

Default deny: a statement is allowed only when its top-level node is a known read-only kind
(or a harmless session/transaction statement, checked field by field), and every node inside
it is on READ_NODES, every function call passes the function policy, and no SELECT in it has
INTO or a locking clause. Anything else blocks with a rule, a class and a reason for the agent.

Note: libpg_query in pglast 8 is PostgreSQL 18's grammar; the test backends run 15. Syntax that
only newer servers accept gets an error from the server itself, never a write.
"""

from __future__ import annotations

from typing import NamedTuple

import orjson
from pglast import parser as pg_parser

from . import reasons
from .functions import (LITERAL_SENSITIVE, PG_BUILTIN_OPERATORS, PG_BUILTIN_TYPES,
                        PG_TABLESAMPLE_METHODS, FunctionPolicy)
from .verdict import (ADMIN, DCL, DDL, FUNCTION, READ, SESSION, TRANSACTION, UNKNOWN, WRITE,
                      Statement)


class StmtResult(NamedTuple):
    verbs: tuple[str, ...]
    klass: str
    rule: str | None        # None: allowed
    reason: str
    literal_free: bool      # the decision did not look at any literal value


class DeepResult(NamedTuple):
    statements: tuple[Statement, ...]
    block: StmtResult | None          # first blocking statement, None when all are allowed
    klass: str                        # class of the text (first blocking, else first statement)
    fingerprint_ok: bool              # the verdict provably does not depend on literal values


class _Block(Exception):
    """Raised inside the walk at the first construct that blocks."""

    def __init__(self, rule: str, klass: str, reason: str, verb: str | None = None):
        super().__init__(reason)
        self.rule, self.klass, self.reason, self.verb = rule, klass, reason, verb


# Node types that may appear inside a read-only statement (expression and FROM-clause nodes of
# parsenodes.h / primnodes.h). FuncCall, A_Expr, RangeVar, RangeTableSample and SelectStmt are
# also here but get extra checks in _walk.
READ_NODES = frozenset("""
SelectStmt ResTarget ColumnRef A_Star A_Const String Integer Float Boolean BitString List
A_Expr BoolExpr SubLink TypeCast TypeName FuncCall RangeVar JoinExpr RangeSubselect
RangeFunction RangeTableSample RangeTableFunc RangeTableFuncCol SortBy WindowDef
CommonTableExpr CTESearchClause CTECycleClause CaseExpr CaseWhen CoalesceExpr MinMaxExpr
NullTest BooleanTest A_ArrayExpr A_Indirection A_Indices RowExpr SQLValueFunction XmlExpr
XmlSerialize CollateClause GroupingSet GroupingFunc ParamRef NamedArgExpr Alias WithClause
JsonObjectConstructor JsonArrayConstructor JsonArrayQueryConstructor JsonObjectAgg
JsonArrayAgg JsonAggConstructor JsonValueExpr JsonKeyValue JsonOutput JsonReturning JsonFormat
JsonIsPredicate JsonParseExpr JsonScalarExpr JsonSerializeExpr JsonFuncExpr JsonTable
JsonTableColumn JsonTablePathSpec JsonArgument JsonBehavior ColumnDef
""".split())

_DML = {"InsertStmt": "INSERT", "UpdateStmt": "UPDATE", "DeleteStmt": "DELETE", "MergeStmt": "MERGE"}

# Sensitive relations and functions (block_sensitive_show): other sessions' SQL text and
# password hashes (read-only-bypasses.md item 16, the PostgreSQL side of SHOW PROCESSLIST).
SENSITIVE_RELATIONS = frozenset({"pg_stat_activity", "pg_stat_statements", "pg_authid",
                                 "pg_shadow", "pg_user_mapping", "pg_user_mappings",
                                 "pg_stat_statements_info"})
SENSITIVE_FUNCTIONS = frozenset({"pg_stat_get_activity", "pg_stat_get_backend_activity",
                                 "pg_stat_statements"})

_LOCK_NAMES = {"LCS_FORKEYSHARE": "FOR KEY SHARE", "LCS_FORSHARE": "FOR SHARE",
               "LCS_FORNOKEYUPDATE": "FOR NO KEY UPDATE", "LCS_FORUPDATE": "FOR UPDATE"}


def _name(items: list) -> list[str]:
    """Names from a list of String nodes (funcname, operator names, type names)."""
    out = []
    for it in items or ():
        s = it.get("String") if isinstance(it, dict) else None
        out.append(s.get("sval", "") if isinstance(s, dict) else "")
    return out


class _Walker:
    __slots__ = ("policy", "sensitive", "literal_free", "nested_verbs", "sensitive_reason")

    def __init__(self, policy: FunctionPolicy, sensitive: bool) -> None:
        self.policy = policy
        self.sensitive = sensitive
        self.literal_free = True
        self.nested_verbs: list[str] = []
        self.sensitive_reason: str | None = None

    def walk(self, root) -> None:
        """Iterative walk of a read statement; raises _Block at the first blocking construct."""
        stack = [root]
        pop, extend = stack.pop, stack.extend
        read_nodes, leaves, special = READ_NODES, _LEAVES, _SPECIAL
        while stack:
            item = pop()
            kind = type(item)
            if kind is list:
                extend(item)
                continue
            if kind is not dict:
                continue
            if len(item) == 1:
                for key, fields in item.items():
                    pass
                if type(fields) is dict and "A" <= key[0] <= "Z":
                    if key in leaves:            # literals, column names: nothing inside
                        continue
                    if key not in read_nodes:
                        self._not_read(key, fields)
                    check = special.get(key)
                    if check is not None:
                        check(self, fields)
                    if "typeName" in fields:
                        self._type(fields["typeName"])
                    extend(fields.values())
                    continue
            if "typeName" in item:
                self._type(item["typeName"])
            extend(item.values())
        if self.sensitive_reason is not None:
            raise _Block("sensitive_show", ADMIN, self.sensitive_reason)

    # -- checks -----------------------------------------------------------------------------

    def _sensitive_hit(self, reason: str) -> None:
        """Remember an information leak (block_sensitive_show) but keep walking: a write or an
        unsafe function in the same statement is the more important reason to report."""
        if self.sensitive_reason is None:
            self.sensitive_reason = reason

    def _not_read(self, key: str, fields: dict) -> None:
        verb = _DML.get(key)
        if verb is not None:
            self.nested_verbs.append(verb)
            raise _Block("write_statement", WRITE,
                         reasons.write_statement(verb, "inside a WITH clause or subquery"), verb)
        if key == "LockingClause":  # reached only through a SelectStmt; kept for safety
            raise _Block("row_lock", WRITE, reasons.row_lock("A locking clause"))
        raise _Block("unknown_syntax", UNKNOWN, reasons.unsafe_syntax(
            f"The construct {key}", "it is not on the proxy's list of read-only SQL constructs"))

    def _select(self, fields: dict) -> None:
        if "intoClause" in fields:
            into = fields["intoClause"]
            rel = into.get("rel", {}) if isinstance(into, dict) else {}
            target = rel.get("relname", "a table") if isinstance(rel, dict) else "a table"
            raise _Block("select_into", WRITE, reasons.select_into(f"{target} (creates a table)"),
                         "INTO")
        locks = fields.get("lockingClause")
        if locks:
            first = locks[0].get("LockingClause", {}) if isinstance(locks[0], dict) else {}
            clause = _LOCK_NAMES.get(first.get("strength", ""), "FOR UPDATE/SHARE")
            raise _Block("row_lock", WRITE, reasons.row_lock(f"SELECT ... {clause}"), "FOR")

    def _func(self, fields: dict) -> None:
        parts = _name(fields.get("funcname"))
        if len(parts) == 1:
            schema, name = None, parts[0]
        elif len(parts) == 2:
            schema, name = parts
        else:
            dotted = ".".join(parts)
            raise _Block("unknown_function", FUNCTION, reasons.unknown_function(dotted, ""))
        lname = name.lower()
        if lname in LITERAL_SENSITIVE:
            self.literal_free = False
        if self.sensitive and lname in SENSITIVE_FUNCTIONS:
            self._sensitive_hit(reasons.sensitive_show(f"{name}()"))
        judged = self.policy.judge(name, schema)
        if judged is not None:
            raise _Block(judged.rule, FUNCTION, judged.reason)

    def _operator(self, fields: dict) -> None:
        parts = _name(fields.get("name"))
        if not parts or parts[-1][:1].isalpha():      # BETWEEN / NOT BETWEEN ... (keywords)
            return
        # An operator runs its implementing function. OPERATOR(schema.op) outside pg_catalog,
        # or a symbol PostgreSQL itself does not define (`===`), is a user-defined operator,
        # i.e. user code the function policy cannot see. (A user operator can also overload a
        # built-in symbol for a user type; casts to user types are blocked in _type.)
        user = (len(parts) > 1 and parts[0] != "pg_catalog") or parts[-1] not in PG_BUILTIN_OPERATORS
        if user and not self.policy.allow_unknown:
            op = "OPERATOR(" + ".".join(parts) + ")" if len(parts) > 1 else f"operator {parts[-1]}"
            raise _Block("unknown_function", FUNCTION, reasons.unknown_function(
                op, "a user-defined operator runs a user-defined function"))

    def _type(self, fields) -> None:
        if not isinstance(fields, dict):
            return
        parts = [p.lower() for p in _name(fields.get("names"))]
        if not parts:
            return
        if len(parts) == 2 and parts[0] in ("pg_catalog", "information_schema"):
            return            # users cannot create types in the system schemas
        if len(parts) == 1 and parts[0] in PG_BUILTIN_TYPES:
            return
        if self.policy.allow_unknown:
            return
        shown = ".".join(parts)
        raise _Block("unknown_type", FUNCTION, reasons.unknown_type(shown))

    def _relation(self, fields: dict) -> None:
        if self.sensitive and fields.get("relname", "").lower() in SENSITIVE_RELATIONS:
            self._sensitive_hit(reasons.sensitive_show(
                f"Reading {fields.get('relname')}"))

    def _tablesample(self, fields: dict) -> None:
        parts = _name(fields.get("method"))
        if not parts or parts[-1].lower() not in PG_TABLESAMPLE_METHODS or \
                (len(parts) > 1 and parts[0] != "pg_catalog"):
            shown = ".".join(parts) or "?"
            raise _Block("unknown_function", FUNCTION, reasons.unknown_function(
                f"TABLESAMPLE {shown}", "not a built-in sampling method"))


# Nodes with nothing below them that matters (literal values, column names): not descended.
_LEAVES = frozenset({"A_Const", "ColumnRef", "String", "Integer", "Float", "Boolean", "BitString",
                     "A_Star", "ParamRef", "SQLValueFunction"})
# Node types with their own check (besides being on READ_NODES).
_SPECIAL = {"FuncCall": _Walker._func, "SelectStmt": _Walker._select, "A_Expr": _Walker._operator,
            "RangeVar": _Walker._relation, "RangeTableSample": _Walker._tablesample,
            "TypeName": _Walker._type}

# --------------------------------------------------------------------------------------------
# Session settings (SET / RESET / SHOW)
# --------------------------------------------------------------------------------------------

# Settings an agent (or its driver) may change: they shape output, timeouts and planning, not
# access mode, identity, or how the server lexes SQL. Lower-case GUC names.
SAFE_SETTINGS = frozenset("""
application_name client_min_messages datestyle intervalstyle extra_float_digits timezone
statement_timeout lock_timeout idle_in_transaction_session_timeout idle_session_timeout
transaction_timeout bytea_output xmloption xmlbinary lc_monetary lc_numeric lc_time
default_transaction_isolation transaction_isolation default_transaction_deferrable
transaction_deferrable search_path jit plan_cache_mode geqo from_collapse_limit
join_collapse_limit max_parallel_workers_per_gather parallel_leader_participation
cursor_tuple_fraction constraint_exclusion default_statistics_target random_page_cost
seq_page_cost cpu_tuple_cost cpu_index_tuple_cost cpu_operator_cost effective_cache_size
enable_bitmapscan enable_hashagg enable_hashjoin enable_indexscan enable_indexonlyscan
enable_material enable_memoize enable_mergejoin enable_nestloop enable_seqscan enable_sort
enable_incremental_sort enable_tidscan enable_partitionwise_join
enable_partitionwise_aggregate enable_partition_pruning enable_parallel_append
enable_parallel_hash enable_gathermerge enable_presorted_aggregate enable_group_by_reordering
enable_distinct_reordering enable_self_join_elimination
gin_fuzzy_search_limit work_mem hash_mem_multiplier
client_encoding standard_conforming_strings default_transaction_read_only
transaction_read_only
""".split())

# Settings in SAFE_SETTINGS whose *value* matters; checked in _set_value.
_UTF8_NAMES = frozenset({"utf8", "utf-8", "unicode"})
_TRUE = frozenset({"on", "true", "yes", "1", "t", "y"})

_SETTING_WHY = {
    "default_transaction_read_only": "it controls whether transactions are read-only",
    "transaction_read_only": "it controls whether the transaction is read-only",
    "role": "it changes the identity and privileges of the session",
    "session_authorization": "it changes the identity and privileges of the session",
    "session_replication_role": "it disables triggers and foreign-key checks",
    "standard_conforming_strings": "it changes how the server reads backslashes in strings, "
                                   "so the proxy and the server would see different SQL",
    "client_encoding": "only UTF8 is allowed: some client encodings hide quote characters "
                       "inside multi-byte characters, so the proxy and the server would see "
                       "different SQL",
    "work_mem": "only values up to 1GB are allowed: every sort or hash of every query may use "
                "this much memory on the server",
    "hash_mem_multiplier": "only values up to 4 are allowed (server memory)",
    "row_security": "it changes how row-level security policies apply",
    "search_path": "listing pg_catalog after another schema lets user functions shadow "
                   "built-ins",
}


def _const_text(node) -> str | None:
    """String form of an A_Const / TypeCast-of-A_Const argument, or None."""
    if not isinstance(node, dict):
        return None
    if "TypeCast" in node:
        node = node["TypeCast"].get("arg", {})
    c = node.get("A_Const") if isinstance(node, dict) else None
    if not isinstance(c, dict):
        return None
    for key in ("sval", "ival", "fval", "boolval"):
        if key in c:
            v = c[key]
            if isinstance(v, dict):
                v = next(iter(v.values()), 0 if key == "ival" else "")
            return str(v).lower()
    return None


_WORK_MEM_MAX_KB = 1024 * 1024
_MEM_UNITS = {"kb": 1, "mb": 1024, "gb": 1024 * 1024, "tb": 1024 * 1024 * 1024, "b": 1 / 1024}


def _memory_kb(value: str) -> float | None:
    """PostgreSQL memory setting text ('64MB', '65536', '1 GB') in kB; None if not understood
    (PostgreSQL docs, "Parameter Names and Values": a bare number is in the unit of the
    setting, kB for work_mem)."""
    v = value.strip().lower().replace(" ", "")
    num = v.rstrip("kmgtb")
    unit = v[len(num):] or "kb"
    if unit not in _MEM_UNITS:
        return None
    try:
        return float(num) * _MEM_UNITS[unit]
    except ValueError:
        return None


def _check_set_value(name: str, args: list) -> str | None:
    """None when SET name = args is allowed; else why not."""
    values = [_const_text(a) for a in args or ()]
    if any(v is None for v in values):
        return _SETTING_WHY.get(name, "its value is not a plain constant")
    if name in ("default_transaction_read_only", "transaction_read_only"):
        if len(values) == 1 and values[0] in _TRUE:
            return None           # turning read-only ON is fine
        return _SETTING_WHY[name]
    if name == "standard_conforming_strings":
        return None if values == ["on"] or values == ["true"] else _SETTING_WHY[name]
    if name == "client_encoding":
        return None if len(values) == 1 and values[0] in _UTF8_NAMES else _SETTING_WHY[name]
    if name == "work_mem":
        kb = _memory_kb(values[0]) if len(values) == 1 else None
        if kb is None or kb > _WORK_MEM_MAX_KB:
            return _SETTING_WHY[name]
        return None
    if name == "hash_mem_multiplier":
        try:
            return None if len(values) == 1 and float(values[0]) <= 4.0 else _SETTING_WHY[name]
        except ValueError:
            return _SETTING_WHY[name]
    if name == "search_path":
        # pg_catalog is searched first unless the path names it later (PostgreSQL docs,
        # "The Schema Search Path"); allow it only in first position.
        cleaned = [v.strip().strip('"') for v in values]
        if "pg_catalog" in cleaned and cleaned[0] != "pg_catalog":
            return _SETTING_WHY[name]
        return None
    return None


def _set_stmt(fields: dict) -> StmtResult:
    kind = fields.get("kind", "")
    name = (fields.get("name") or "").lower()
    verbs = ("RESET",) if kind in ("VAR_RESET", "VAR_RESET_ALL") else ("SET",)
    if kind == "VAR_SET_MULTI":
        # SET TRANSACTION ... / SET SESSION CHARACTERISTICS AS TRANSACTION ... (DefElem args)
        if name in ("transaction", "session characteristics"):
            for arg in fields.get("args") or ():
                de = arg.get("DefElem", {}) if isinstance(arg, dict) else {}
                if de.get("defname") == "transaction_read_only" and \
                        _const_text(de.get("arg")) not in _TRUE:
                    return StmtResult(verbs, TRANSACTION, "transaction_mode",
                                      reasons.transaction_mode(
                                          "SET " + name.upper() + " ... READ WRITE"), False)
            return StmtResult(verbs, TRANSACTION, None, "", False)
        if name == "transaction snapshot":
            return StmtResult(verbs, TRANSACTION, None, "", False)
        return StmtResult(verbs, SESSION, "session_setting",
                          reasons.session_setting(f"SET {name.upper()}"), False)
    if kind == "VAR_RESET_ALL":
        return StmtResult(verbs, SESSION, "session_setting", reasons.session_setting(
            "RESET ALL", "it resets every setting, including the read-only defaults"), True)
    if name not in SAFE_SETTINGS:
        return StmtResult(verbs, SESSION, "session_setting",
                          reasons.session_setting(f"{verbs[0]} {name}", _SETTING_WHY.get(name, "")), True)
    if kind == "VAR_SET_VALUE":
        why = _check_set_value(name, fields.get("args"))
        if why is not None:
            return StmtResult(verbs, SESSION, "session_setting",
                              reasons.session_setting(f"SET {name}", why), False)
        return StmtResult(verbs, SESSION, None, "", False)
    # SET x TO DEFAULT / RESET x / SET x FROM CURRENT: going back to a default is harmless
    # except for the settings whose value the proxy relies on.
    if name in ("default_transaction_read_only", "transaction_read_only",
                "standard_conforming_strings", "client_encoding"):
        return StmtResult(verbs, SESSION, "session_setting",
                          reasons.session_setting(f"{verbs[0]} {name}", _SETTING_WHY[name]), True)
    return StmtResult(verbs, SESSION, None, "", True)


# --------------------------------------------------------------------------------------------
# Statements
# --------------------------------------------------------------------------------------------

_TXN_VERBS = {
    "TRANS_STMT_BEGIN": "BEGIN", "TRANS_STMT_START": "START", "TRANS_STMT_COMMIT": "COMMIT",
    "TRANS_STMT_ROLLBACK": "ROLLBACK", "TRANS_STMT_SAVEPOINT": "SAVEPOINT",
    "TRANS_STMT_RELEASE": "RELEASE", "TRANS_STMT_ROLLBACK_TO": "ROLLBACK",
    "TRANS_STMT_PREPARE": "PREPARE", "TRANS_STMT_COMMIT_PREPARED": "COMMIT",
    "TRANS_STMT_ROLLBACK_PREPARED": "ROLLBACK",
}
_TWO_PHASE = {"TRANS_STMT_PREPARE": "PREPARE TRANSACTION",
              "TRANS_STMT_COMMIT_PREPARED": "COMMIT PREPARED",
              "TRANS_STMT_ROLLBACK_PREPARED": "ROLLBACK PREPARED"}

_ADMIN = {
    "VacuumStmt": None, "ClusterStmt": "CLUSTER", "ReindexStmt": "REINDEX",
    "CheckPointStmt": "CHECKPOINT", "RefreshMatViewStmt": "REFRESH", "LoadStmt": "LOAD",
    "ListenStmt": "LISTEN", "UnlistenStmt": "UNLISTEN", "NotifyStmt": "NOTIFY",
    "AlterSystemStmt": "ALTER", "ReassignOwnedStmt": "REASSIGN", "DropOwnedStmt": "DROP",
}
_ADMIN_WHY = {
    "LISTEN": "it subscribes this session to notifications from other sessions",
    "UNLISTEN": "it is part of LISTEN/NOTIFY messaging between sessions",
    "NOTIFY": "it sends a message to other sessions",
    "LOAD": "it loads a shared library into the server process",
    "CHECKPOINT": "it forces a server checkpoint",
    "ALTER": "ALTER SYSTEM rewrites the server configuration",
}
_DCL = {"GrantStmt": None, "GrantRoleStmt": None, "AlterDefaultPrivilegesStmt": "ALTER",
        "CreateRoleStmt": "CREATE", "AlterRoleStmt": "ALTER", "AlterRoleSetStmt": "ALTER",
        "DropRoleStmt": "DROP", "CreateUserMappingStmt": "CREATE",
        "AlterUserMappingStmt": "ALTER", "DropUserMappingStmt": "DROP",
        "CreatePolicyStmt": "CREATE", "AlterPolicyStmt": "ALTER"}
# DDL node types whose verb is not the first CamelCase word of the node name.
_DDL_VERB_OVERRIDES = {
    "IndexStmt": "CREATE", "ViewStmt": "CREATE", "RuleStmt": "CREATE", "DefineStmt": "CREATE",
    "CompositeTypeStmt": "CREATE", "RenameStmt": "ALTER", "TruncateStmt": "TRUNCATE",
    "CommentStmt": "COMMENT", "SecLabelStmt": "SECURITY", "ImportForeignSchemaStmt": "IMPORT",
    "AlterObjectSchemaStmt": "ALTER", "AlterOwnerStmt": "ALTER", "ReplicaIdentityStmt": "ALTER",
    "CreateTableAsStmt": "CREATE", "DropStmt": "DROP", "DropdbStmt": "DROP",
    "CreatedbStmt": "CREATE", "AlterDatabaseStmt": "ALTER", "CreateStmt": "CREATE",
}


def _first_word(node_type: str) -> str:
    if node_type in _DDL_VERB_OVERRIDES:
        return _DDL_VERB_OVERRIDES[node_type]
    word = node_type[:1]
    for ch in node_type[1:]:
        if ch.isupper():
            break
        word += ch
    return word.upper()


class PostgresChecker:
    """Deep check of PostgreSQL text. One per Engine (it holds the function policy)."""

    def __init__(self, policy: FunctionPolicy, block_sensitive_show: bool = True) -> None:
        self.policy = policy
        self.sensitive = block_sensitive_show

    def check(self, sql: str) -> DeepResult:
        try:
            tree = orjson.loads(pg_parser.parse_sql_json(sql))
        except pg_parser.ParseError as exc:
            return _parse_error(str(exc))
        stmts = tree.get("stmts") or []
        if not stmts:
            return DeepResult((), StmtResult((), UNKNOWN, "empty_statement", reasons.empty(), True),
                              UNKNOWN, True)
        results = []
        for raw in stmts:
            node = raw.get("stmt") if isinstance(raw, dict) else None
            if not isinstance(node, dict) or len(node) != 1:
                # an empty statement between semicolons (";;") has no "stmt"
                results.append(StmtResult((), UNKNOWN, "empty_statement", reasons.empty(), True))
                continue
            (key, fields), = node.items()
            results.append(self._statement(key, fields if isinstance(fields, dict) else {}))
        statements = tuple(Statement(r.verbs, r.klass) for r in results)
        blocking = next((r for r in results if r.rule is not None), None)
        klass = blocking.klass if blocking is not None else results[0].klass
        fp_ok = all(r.literal_free for r in results)
        return DeepResult(statements, blocking, klass, fp_ok)

    # -- one statement ----------------------------------------------------------------------

    def _read(self, verbs: tuple[str, ...], root, klass: str = READ) -> StmtResult:
        walker = _Walker(self.policy, self.sensitive)
        try:
            walker.walk(root)
        except _Block as b:
            extra = tuple(v for v in walker.nested_verbs if v not in verbs)
            return StmtResult(verbs + extra, b.klass, b.rule, b.reason, walker.literal_free)
        return StmtResult(verbs, klass, None, "", walker.literal_free)

    def _statement(self, key: str, f: dict) -> StmtResult:
        if key == "SelectStmt":
            verb = "VALUES" if "valuesLists" in f and "targetList" not in f else "SELECT"
            verbs = ("WITH", verb) if "withClause" in f else (verb,)
            return self._read(verbs, {key: f})
        if key == "TruncateStmt":   # removes every row: a write (the fast path agrees)
            return StmtResult(("TRUNCATE",), WRITE, "write_statement",
                              reasons.write_statement("TRUNCATE"), True)
        if key in _DML:
            verb = _DML[key]
            verbs = ("WITH", verb) if "withClause" in f else (verb,)
            return StmtResult(verbs, WRITE, "write_statement", reasons.write_statement(verb), True)
        if key == "ExplainStmt":
            return self._explain(f)
        if key == "CopyStmt":
            return self._copy(f)
        if key == "VariableSetStmt":
            return _set_stmt(f)
        if key == "VariableShowStmt":
            return StmtResult(("SHOW",), READ, None, "", True)
        if key == "TransactionStmt":
            return self._transaction(f)
        if key == "DeclareCursorStmt":
            # The cursor's query is checked like any read. WITH HOLD only keeps the result set
            # in this session's memory past COMMIT: no database change, so it is allowed.
            r = self._read(("DECLARE",), f.get("query"))
            return r if r.rule is not None else r._replace(klass=READ)
        if key in ("FetchStmt", "ClosePortalStmt"):
            verb = "CLOSE" if key == "ClosePortalStmt" else (
                "MOVE" if f.get("ismove") else "FETCH")
            return StmtResult((verb,), READ, None, "", True)
        if key == "DeallocateStmt":
            return StmtResult(("DEALLOCATE",), SESSION, None, "", True)
        if key == "DiscardStmt":
            target = f.get("target", "")
            if target == "DISCARD_ALL":
                return StmtResult(("DISCARD",), SESSION, "session_setting", reasons.session_setting(
                    "DISCARD ALL", "it includes RESET ALL, which resets the read-only defaults"),
                    True)
            return StmtResult(("DISCARD",), SESSION, None, "", True)
        if key == "PrepareStmt":
            return StmtResult(("PREPARE",), FUNCTION, "dynamic_sql",
                              reasons.dynamic_sql("PREPARE (an SQL-level prepared statement)"), True)
        if key == "ExecuteStmt":
            return StmtResult(("EXECUTE",), FUNCTION, "dynamic_sql",
                              reasons.dynamic_sql("EXECUTE of a prepared statement"), True)
        if key == "DoStmt":
            return StmtResult(("DO",), FUNCTION, "dynamic_sql",
                              reasons.dynamic_sql("DO (an anonymous code block)"), True)
        if key == "CallStmt":
            call = f.get("funccall", {})
            name = ".".join(_name(call.get("funcname"))) if isinstance(call, dict) else ""
            return StmtResult(("CALL",), FUNCTION, "procedure_call",
                              reasons.procedure_call("CALL", name), True)
        if key == "LockStmt":
            return StmtResult(("LOCK",), ADMIN, "table_lock", reasons.table_lock("LOCK TABLE"), True)
        if key in _ADMIN:
            verb = _ADMIN[key]
            if verb is None:   # VacuumStmt covers VACUUM and ANALYZE
                verb = "VACUUM" if f.get("is_vacuumcmd") else "ANALYZE"
            why = _ADMIN_WHY.get(verb, "it is server maintenance that changes catalogs, "
                                       "statistics or storage")
            return StmtResult((verb,), ADMIN, "admin_command", reasons.admin_command(verb, why), True)
        if key in _DCL:
            verb = _DCL[key] or ("GRANT" if f.get("is_grant") else "REVOKE")
            return StmtResult((verb,), DCL, "dcl_statement", reasons.dcl_statement(verb), True)
        if key.endswith("Stmt") and (key.startswith(("Create", "Alter", "Drop")) or
                                     key in _DDL_VERB_OVERRIDES):
            verb = _first_word(key)
            return StmtResult((verb,), DDL, "ddl_statement", reasons.ddl_statement(verb), True)
        verb = _first_word(key.removesuffix("Stmt"))
        return StmtResult((verb,), UNKNOWN, "unknown_statement", reasons.unknown_statement(verb),
                          True)

    def _explain(self, f: dict) -> StmtResult:
        # EXPLAIN ANALYZE executes its statement, and even a plain EXPLAIN of a write is of no
        # use to a read-only agent, so the inner statement must pass as a read either way.
        query = f.get("query")
        if not isinstance(query, dict) or len(query) != 1:
            return StmtResult(("EXPLAIN",), UNKNOWN, "unknown_statement",
                              reasons.unknown_statement("EXPLAIN"), True)
        (key, fields), = query.items()
        inner = self._statement(key, fields if isinstance(fields, dict) else {})
        verbs = ("EXPLAIN",) + inner.verbs
        if inner.rule is not None:
            return StmtResult(verbs, inner.klass, inner.rule, reasons.explain_of(inner.reason),
                              inner.literal_free)
        if inner.klass != READ:
            return StmtResult(verbs, inner.klass, "unknown_statement",
                              reasons.explain_of(reasons.unknown_statement(" ".join(inner.verbs))),
                              inner.literal_free)
        return StmtResult(verbs, READ, None, "", inner.literal_free)

    def _copy(self, f: dict) -> StmtResult:
        verbs = ("COPY",)
        if f.get("is_from"):
            return StmtResult(verbs, WRITE, "copy", reasons.copy("COPY ... FROM loads data into a table"),
                              True)
        if f.get("is_program"):
            return StmtResult(verbs, ADMIN, "copy", reasons.copy(
                "COPY ... TO PROGRAM runs a shell command on the database server"), False)
        if "filename" in f:
            return StmtResult(verbs, ADMIN, "copy", reasons.copy(
                "COPY ... TO a file writes a file on the database server"), False)
        if "whereClause" in f:   # only valid for FROM; refuse rather than guess
            return StmtResult(verbs, UNKNOWN, "copy", reasons.copy("COPY with WHERE"), True)
        if "query" in f:
            r = self._read(verbs, f["query"])
            return r
        rel = f.get("relation")
        if isinstance(rel, dict):
            return self._read(verbs, {"RangeVar": rel})
        return StmtResult(verbs, UNKNOWN, "copy", reasons.copy("This COPY form"), True)

    def _transaction(self, f: dict) -> StmtResult:
        kind = f.get("kind", "")
        verb = _TXN_VERBS.get(kind, "TRANSACTION")
        verbs = (verb,)
        if kind in _TWO_PHASE:
            return StmtResult(verbs, TRANSACTION, "transaction_control",
                              reasons.transaction_control(_TWO_PHASE[kind]), True)
        if kind not in _TXN_VERBS:
            return StmtResult(verbs, TRANSACTION, "unknown_statement",
                              reasons.unknown_statement(verb), True)
        for opt in f.get("options") or ():
            de = opt.get("DefElem", {}) if isinstance(opt, dict) else {}
            if de.get("defname") == "transaction_read_only" and _const_text(de.get("arg")) not in _TRUE:
                return StmtResult(verbs, TRANSACTION, "transaction_mode",
                                  reasons.transaction_mode(f"{verb} READ WRITE"), True)
        return StmtResult(verbs, TRANSACTION, None, "", True)


def _parse_error(detail: str) -> DeepResult:
    r = StmtResult((), UNKNOWN, "parse_error", reasons.parse_error(detail), True)
    return DeepResult((), r, UNKNOWN, True)
