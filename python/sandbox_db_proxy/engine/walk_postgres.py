"""Walk of a PostgreSQL read statement in pglast's JSON tree (used by deep_postgres).

In libpg_query's JSON every field typed `Node *` in PostgreSQL's parsenodes.h is wrapped as
`{"NodeType": {...fields}}`; fields of a fixed struct type (IntoClause, WithClause, Alias,
RangeVar in some places...) are bare dicts. The walker treats a one-key dict whose key starts
with an upper-case letter as a node and checks its type against READ_NODES (default deny);
bare dicts are walked field by field. Function calls go to the function policy, operators and
type names to the built-in lists, and relations to the sensitive list.
"""

from __future__ import annotations

from . import reasons
from .functions import (LITERAL_SENSITIVE, PG_BUILTIN_OPERATORS, PG_BUILTIN_TYPES,
                        PG_TABLESAMPLE_METHODS, FunctionPolicy)
from .results import _Block
from .verdict import ADMIN, FUNCTION, UNKNOWN, WRITE


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
