"""Deep check for PostgreSQL: PostgreSQL's own grammar (pglast = libpg_query), default-deny walk.

Why pglast's JSON output and not `pglast.parse_sql`: both come from the same libpg_query parse,
but building pglast's Python AST objects costs ~150 µs for a short SELECT, while the JSON
(parsed with orjson) costs ~15 µs. In that JSON every field typed `Node *` in PostgreSQL's
parsenodes.h is wrapped as `{"NodeType": {...fields}}`; fields of a fixed struct type
(IntoClause, WithClause, Alias, RangeVar in some places...) are bare dicts (walk_postgres).

Default deny: a statement is allowed only when its top-level node is a known read-only kind
(or a harmless session/transaction statement, checked field by field), and every node inside
it is on READ_NODES, every function call passes the function policy, and no SELECT in it has
INTO or a locking clause. Anything else blocks with a rule, a class and a reason for the agent.

Note: libpg_query in pglast 8 is PostgreSQL 18's grammar; the test backends run 15. Syntax that
only newer servers accept gets an error from the server itself, never a write.
"""

from __future__ import annotations

import orjson
from pglast import parser as pg_parser

from . import reasons
from .functions import FunctionPolicy
from .results import DeepResult, StmtResult, _Block  # noqa: F401  (re-exported for callers)
from .settings_postgres import _const_text, _set_stmt, _TRUE
from .verdict import ADMIN, DCL, DDL, FUNCTION, READ, SESSION, TRANSACTION, UNKNOWN, WRITE, Statement
from .walk_postgres import _DML, _Walker, _name


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
