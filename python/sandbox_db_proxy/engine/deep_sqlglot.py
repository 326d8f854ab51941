"""Deep check for MySQL/MariaDB and T-SQL on sqlglot's grammar, default-deny.

Text preparation (docs/ARCHITECTURE.md, native SQL API):
- MySQL: `_native.expand_sql(sql, "mysql")` first, because the server executes the contents of
  `/*! ... */`, `/*!50000 ... */` and `/*M! ... */` comments (MySQL manual, "Comments"); the
  parser must see them as code (read-only-bypasses.md item 7).
- both: `_native.split_statements` splits on `;` outside quotes/comments and, for T-SQL, also
  between statements of a batch that have no `;` at all (`SELECT 1⏎WAITFOR DELAY ...`, item 13),
  which sqlglot's T-SQL parser does not split.

Each statement is parsed with sqlglot. sqlglot degrades syntax it does not know into
`exp.Command` and parses a bare word as a column (`SHUTDOWN`, `FLUSH TABLES` become column
expressions), so the root node must be one of the statement kinds handled below; anything else
is unknown and blocked. Inside a read, every node's class must be on READ_NODES, every function
passes the function policy, and INTO / locking clauses / lock hints block.
"""

from __future__ import annotations

import logging
import re
from typing import Callable

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from . import reasons
from .functions import FunctionPolicy, unsafe_reason
from .results import DeepResult, StmtResult, _Block
from .settings_sqlglot import (_CHARSET_WHY, _MYSQL_SAFE_ISOLATION, _SAFE_CHARSETS, _SAFE_SQL_MODES,
                               _SET_WHY, _TRUE_WORDS, _USER_VAR_WHY, MYSQL_SAFE_SETTINGS,
                               TSQL_SAFE_SETTINGS, _is_constant, _value_text)
from .verdict import (ADMIN, DCL, DDL, FUNCTION, READ, SESSION, TRANSACTION, UNKNOWN, WRITE,
                      Statement)
from .walk_sqlglot import _DML, _MYSQL_SENSITIVE_SCHEMAS, _Walker, _name_of

# sqlglot logs a warning for every statement it degrades to exp.Command; those statements are
# blocked or explicitly handled here, so the warnings are noise in the proxy's log.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

_C = exp.__dict__
_DDL_TYPES = tuple(_C[n] for n in ("Create", "Drop", "Alter", "AlterRename",
                                     "Comment", "Refresh", "Cache", "Uncache", "Undrop",
                                     "SwapTable", "Attach", "Detach", "Install")
                   if n in _C)

# MySQL SHOW variants that reveal other sessions' SQL, credentials or internals
# (read-only-bypasses.md item 16; MariaDB/mcp#55). Matched against Show.this.
_SENSITIVE_SHOW = ("PROCESSLIST", "GRANTS", "ENGINE", "BINLOG EVENTS", "RELAYLOG EVENTS",
                   "REPLICA STATUS", "SLAVE STATUS", "CREATE USER", "EXPLAIN", "ANALYZE",
                   "MASTER STATUS", "BINARY LOGS", "MASTER LOGS", "PROFILE", "ALL SLAVES STATUS",
                   "ALL REPLICAS STATUS", "USER_STATISTICS", "CLIENT_STATISTICS")
# Simple statements sqlglot does not parse (or parses as bare columns) that are harmless.
_MYSQL_SIMPLE = re.compile(
    r"""\s*(?:
        (?P<sp>SAVEPOINT|RELEASE\s+SAVEPOINT)\s+`?[A-Za-z_][A-Za-z0-9_$]*`? |
        (?P<desc>(?:DESCRIBE|DESC|EXPLAIN)\s+`?[A-Za-z_][A-Za-z0-9_$]*`?(?:\.`?[A-Za-z_][A-Za-z0-9_$]*`?)?
               (?:\s+`?[A-Za-z_][A-Za-z0-9_$]*`?)?) |
        (?P<st>START\s+TRANSACTION(?:\s+WITH\s+CONSISTENT\s+SNAPSHOT)?
               (?:\s*,\s*READ\s+ONLY|\s+READ\s+ONLY)?(?:\s*,\s*WITH\s+CONSISTENT\s+SNAPSHOT)?)
    )\s*;?\s*\Z""", re.IGNORECASE | re.VERBOSE)
_TSQL_SIMPLE = re.compile(
    r"""\s*(?:
        (?P<sp>SAVE\s+TRAN(?:SACTION)?)\s+@?[A-Za-z_][A-Za-z0-9_]*  |
        (?P<iso>SET\s+TRANSACTION\s+ISOLATION\s+LEVEL\s+(?:READ\s+UNCOMMITTED|READ\s+COMMITTED|SNAPSHOT)) |
        (?P<isolock>SET\s+TRANSACTION\s+ISOLATION\s+LEVEL\s+(?:REPEATABLE\s+READ|SERIALIZABLE)) |
        (?P<stat>SET\s+STATISTICS\s+(?:IO|TIME|XML|PROFILE)\s+(?:ON|OFF))
    )\s*;?\s*\Z""", re.IGNORECASE | re.VERBOSE)

_SET_STATEMENT = re.compile(r"\s*SET\s+STATEMENT\s+(?P<assigns>.+?)\s+FOR\s+(?P<stmt>.+)\Z",
                            re.IGNORECASE | re.DOTALL)

_INTO_FILE = re.compile(r"\bINTO\s+(?:OUTFILE|DUMPFILE)\b", re.IGNORECASE)

_LEADING_NOISE = re.compile(r"(?:\s+|--[^\n]*(?:\n|\Z)|#[^\n]*(?:\n|\Z)|/\*.*?\*/)*", re.DOTALL)
_WORD = re.compile(r"[A-Za-z_]+")


def first_word(text: str) -> str:
    """Upper-case first keyword of a statement (for verbs of statements that do not parse)."""
    m = _LEADING_NOISE.match(text)
    w = _WORD.match(text, m.end() if m else 0)
    return w.group(0).upper() if w else ""


class SqlglotChecker:
    def __init__(self, dialect: str, policy: FunctionPolicy, block_sensitive_show: bool = True,
                 expand: Callable[[str, str], str] | None = None,
                 split: Callable[[str, str], list[str]] | None = None) -> None:
        if dialect not in ("mysql", "tsql"):
            raise ValueError(f"sqlglot deep check does not handle {dialect!r}")
        self.dialect = dialect
        self.policy = policy
        self.sensitive = block_sensitive_show
        if expand is None or split is None:
            from sandbox_db_proxy import _native
            expand = expand or _native.expand_sql
            split = split or _native.split_statements
        self._expand = expand
        self._split = split
        self._simple = _MYSQL_SIMPLE if dialect == "mysql" else _TSQL_SIMPLE
        self._db: str | None = None

    # -- text -> statements -----------------------------------------------------------------

    def check(self, sql: str) -> DeepResult:
        self._db = None          # database chosen by a USE earlier in this text, if any
        text = self._expand(sql, "mysql") if self.dialect == "mysql" else sql
        pieces = [p for p in self._split(text, self.dialect) if p.strip()]
        results: list[StmtResult] = []
        for piece in pieces:
            results.extend(self._piece(piece))
        results = [r for r in results if r is not None]
        if not results:
            empty = StmtResult((), UNKNOWN, "empty_statement", reasons.empty(), True)
            return DeepResult((), empty, UNKNOWN, True)
        statements = tuple(Statement(r.verbs, r.klass) for r in results)
        blocking = next((r for r in results if r.rule is not None), None)
        klass = blocking.klass if blocking is not None else results[0].klass
        return DeepResult(statements, blocking, klass, all(r.literal_free for r in results))

    def _piece(self, piece: str) -> list[StmtResult]:
        m = self._simple.match(piece)
        if m is not None and m.lastgroup == "isolock":
            return [StmtResult(("SET",), TRANSACTION, "row_lock", reasons.locking_isolation(
                " ".join(piece.split()[4:]).rstrip(";").upper(), "SQL Server"), True)]
        if m is not None:
            verb = first_word(piece)
            klass = {"stat": SESSION, "desc": READ}.get(m.lastgroup or "", TRANSACTION)
            return [StmtResult((verb,), klass, None, "", True)]
        if self.dialect == "mysql":
            m = _SET_STATEMENT.match(piece)
            if m is not None:
                return [self._set_statement(m.group("assigns"), m.group("stmt"))]
        try:
            trees = sqlglot.parse(piece, read=self.dialect)
        except SqlglotError as exc:
            verb = first_word(piece)
            if verb == "VALUES" and self.dialect == "mysql":
                # MariaDB's VALUES statement (table value constructor) is not in sqlglot's MySQL
                # grammar; the same tokens parse as a derived table, and that tree is checked.
                wrapped = self._values_statement(piece)
                if wrapped is not None:
                    return [wrapped]
            known = _known_verb(verb)
            if known is not None:
                return [known]
            if _INTO_FILE.search(piece):     # sqlglot has no INTO OUTFILE/DUMPFILE: name it
                return [StmtResult((verb, "INTO"), WRITE, "select_into", reasons.select_into(
                    "OUTFILE/DUMPFILE (writes a file on the database server)"), True)]
            return [StmtResult((verb,) if verb else (), UNKNOWN, "parse_error",
                               reasons.parse_error(str(exc).splitlines()[0] if str(exc) else ""),
                               True)]
        out = [self._statement(t, piece) for t in trees if t is not None]
        if not out:   # e.g. a piece that was only a comment
            return []
        return out

    def _values_statement(self, piece: str) -> StmtResult | None:
        body = piece.strip().rstrip(";").strip()
        try:
            tree = sqlglot.parse_one(f"SELECT * FROM ({body}) AS _values", read="mysql")
        except SqlglotError:
            return None
        r = self._read(("VALUES",), tree)
        return r

    def _set_statement(self, assigns: str, stmt: str) -> StmtResult:
        """MariaDB `SET STATEMENT var = value [, ...] FOR statement`: the settings must be ones
        a plain SET may change, and the statement must pass on its own."""
        try:
            set_tree = sqlglot.parse_one("SET " + assigns, read="mysql")
        except SqlglotError as exc:
            return StmtResult(("SET",), UNKNOWN, "parse_error", reasons.parse_error(str(exc)[:80]),
                              True)
        setting = self._statement(set_tree, "SET") if isinstance(set_tree, exp.Set) else \
            StmtResult(("SET",), SESSION, "session_setting",
                       reasons.session_setting("SET STATEMENT"), True)
        if setting.rule is not None:
            return setting._replace(verbs=("SET",) + setting.verbs[1:])
        inner = self._piece(stmt)
        blocking = next((r for r in inner if r.rule is not None), None)
        if len(inner) != 1 or blocking is not None:
            b = blocking or StmtResult(("SET",), UNKNOWN, "unknown_statement",
                                       reasons.unknown_statement("SET STATEMENT ... FOR"), True)
            return b._replace(verbs=("SET",) + b.verbs)
        return inner[0]._replace(verbs=("SET",) + inner[0].verbs)

    # -- one statement ----------------------------------------------------------------------

    def _read(self, verbs: tuple[str, ...], root: exp.Expression, klass: str = READ) -> StmtResult:
        walker = _Walker(self.dialect, self.policy, self.sensitive, self._db)
        try:
            walker.walk(root)
        except _Block as b:
            extra = tuple(v for v in walker.nested_verbs if v not in verbs)
            return StmtResult(verbs + extra, b.klass, b.rule, b.reason, walker.literal_free)
        return StmtResult(verbs, klass, None, "", walker.literal_free)

    def _statement(self, node: exp.Expression, piece: str) -> StmtResult:
        word = first_word(piece)
        if isinstance(node, (exp.Select, exp.SetOperation, exp.Values, exp.Subquery)):
            verbs = ("WITH", "SELECT") if word == "WITH" else ((word,) if word in (
                "SELECT", "VALUES", "TABLE") else ("SELECT",))
            return self._read(verbs, node)
        for cls, verb in _DML.items():
            if isinstance(node, cls):
                verbs = ("WITH", verb) if word == "WITH" else (verb,)
                return StmtResult(verbs, WRITE, "write_statement", reasons.write_statement(verb),
                                  True)
        if isinstance(node, exp.TruncateTable):   # removes every row: a write
            return StmtResult(("TRUNCATE",), WRITE, "write_statement",
                              reasons.write_statement("TRUNCATE"), True)
        if isinstance(node, exp.Describe):
            return self._describe(node, word)
        if isinstance(node, exp.Show):
            return self._show(node)
        if isinstance(node, exp.Use):
            # USE only selects the default database; the relay checks it is an allowed one.
            # Later statements of this text resolve unqualified names against it.
            target = node.this
            name = (target.name if isinstance(target, exp.Expression) else str(target or "")).lower()
            self._db = name or None
            if self.sensitive and self.dialect == "mysql" and name in _MYSQL_SENSITIVE_SCHEMAS:
                return StmtResult(("USE",), ADMIN, "sensitive_show", reasons.sensitive_show(
                    f"The {name} schema"), True)
            return StmtResult(("USE",), READ, None, "", True)
        if isinstance(node, exp.Set):
            return self._set(node)
        if isinstance(node, exp.Transaction):
            modes = " ".join(str(m) for m in (node.args.get("modes") or [])).upper()
            if "WRITE" in modes:
                return StmtResult((word or "START",), TRANSACTION, "transaction_mode",
                                  reasons.transaction_mode(f"{word} TRANSACTION READ WRITE"), True)
            if modes and "READ ONLY" not in modes and "SNAPSHOT" not in modes:
                return StmtResult((word or "START",), TRANSACTION, "unknown_statement",
                                  reasons.unknown_statement(f"{word} TRANSACTION {modes}"), True)
            return StmtResult((word or "BEGIN",), TRANSACTION, None, "", True)
        if isinstance(node, (exp.Commit, exp.Rollback)):
            return StmtResult((word or "COMMIT",), TRANSACTION, None, "", True)
        if isinstance(node, exp.Declare):
            return self._declare(node)
        if isinstance(node, (exp.Execute, exp.ExecuteSql)):
            return self._execute(node)
        if isinstance(node, exp.Command):
            return self._command(node, word)
        if isinstance(node, exp.Kill):
            return StmtResult(("KILL",), ADMIN, "admin_command", reasons.admin_command(
                "KILL", "it ends another session or query"), True)
        if isinstance(node, exp.Analyze):
            return StmtResult(("ANALYZE",), ADMIN, "admin_command", reasons.admin_command(
                "ANALYZE TABLE", "it rewrites table statistics"), True)
        if isinstance(node, (exp.Grant, exp.Revoke)):
            verb = "GRANT" if isinstance(node, exp.Grant) else "REVOKE"
            return StmtResult((verb,), DCL, "dcl_statement", reasons.dcl_statement(verb), True)
        if isinstance(node, _DDL_TYPES):
            verb = word or type(node).__name__.upper()
            return StmtResult((verb,), DDL, "ddl_statement", reasons.ddl_statement(verb), True)
        if isinstance(node, exp.LoadData):
            return StmtResult(("LOAD",), WRITE, "write_statement",
                              reasons.write_statement("LOAD DATA"), True)
        if isinstance(node, exp.Lock) or word in ("LOCK", "UNLOCK"):
            return StmtResult((word,), ADMIN, "table_lock", reasons.table_lock(word), True)
        known = _known_verb(word)
        if known is not None:
            return known
        return StmtResult((word,) if word else (), UNKNOWN, "unknown_statement",
                          reasons.unknown_statement(word), True)

    def _describe(self, node: exp.Describe, word: str) -> StmtResult:
        verb = word if word in ("EXPLAIN", "DESCRIBE", "DESC") else "EXPLAIN"
        inner = node.this
        if isinstance(inner, exp.Table):
            return self._read((verb,), inner)      # DESCRIBE t / EXPLAIN t: table metadata
        if isinstance(inner, (exp.Select, exp.SetOperation, exp.Values, exp.Subquery)):
            # EXPLAIN ANALYZE executes the query, so it must pass as a read either way.
            return self._read((verb, "SELECT"), inner)
        if isinstance(inner, exp.Expression):
            sub = self._statement(inner, "")
            if sub.rule is not None:
                return StmtResult((verb,) + sub.verbs, sub.klass, sub.rule,
                                  reasons.explain_of(sub.reason), sub.literal_free)
        return StmtResult((verb,), UNKNOWN, "unknown_statement",
                          reasons.explain_of(reasons.unknown_statement(verb)), True)

    def _show(self, node: exp.Show) -> StmtResult:
        what = str(node.this or "").upper()
        verbs = ("SHOW",)
        if self.sensitive:
            if what.startswith(_SENSITIVE_SHOW):
                if what == "ENGINE":
                    target = node.args.get("target")
                    what = f"ENGINE {target.name.upper() if target else ''} STATUS"
                return StmtResult(verbs, ADMIN, "sensitive_show",
                                  reasons.sensitive_show(f"SHOW {what}"), True)
        # SHOW ... LIKE / WHERE carry expressions: walk them like any read
        return self._read(verbs, node, READ) if _has_children(node) else \
            StmtResult(verbs, READ, None, "", True)

    def _set(self, node: exp.Set) -> StmtResult:
        verbs = ("SET",)
        klass = SESSION
        for item in node.expressions:
            if not isinstance(item, exp.SetItem):
                return StmtResult(verbs, SESSION, "session_setting",
                                  reasons.session_setting("This SET form"), False)
            kind = str(item.args.get("kind") or "").upper()
            if kind == "TRANSACTION":
                klass = TRANSACTION
                modes = " ".join(_value_text(e) for e in item.expressions).lower()
                if "write" in modes:
                    return StmtResult(verbs, TRANSACTION, "transaction_mode",
                                      reasons.transaction_mode("SET TRANSACTION READ WRITE"), True)
                if "serializable" in modes:
                    return StmtResult(verbs, TRANSACTION, "row_lock", reasons.locking_isolation(
                        "SERIALIZABLE", "InnoDB"), True)
                if item.args.get("global_") or "global" in modes:
                    return StmtResult(verbs, SESSION, "session_setting", reasons.session_setting(
                        "SET GLOBAL TRANSACTION", "it changes every session on the server"), True)
                continue
            if kind in ("GLOBAL", "PERSIST", "PERSIST_ONLY"):
                return StmtResult(verbs, SESSION, "session_setting", reasons.session_setting(
                    f"SET {kind}", "it changes the server for every session"), True)
            if kind in ("NAMES", "CHARACTER SET", "CHARSET"):
                cs = _value_text(item.this)
                collate = item.args.get("collate")
                if not cs.startswith(_SAFE_CHARSETS) or (
                        collate is not None and not _value_text(collate).startswith(_SAFE_CHARSETS)):
                    return StmtResult(verbs, SESSION, "session_setting", reasons.session_setting(
                        f"SET {kind} {cs}", _CHARSET_WHY), False)
                continue
            blocked = self._set_assignment(item.this, kind)
            if blocked is not None:
                return blocked
        return StmtResult(verbs, klass, None, "", False)

    def _set_assignment(self, assign, kind: str) -> StmtResult | None:
        verbs = ("SET",)
        if not isinstance(assign, exp.EQ):
            return StmtResult(verbs, SESSION, "session_setting",
                              reasons.session_setting("This SET form"), False)
        target, value = assign.this, assign.expression
        if isinstance(target, exp.Parameter) and not isinstance(target.this, exp.Parameter):
            if self.dialect == "mysql":
                return StmtResult(verbs, SESSION, "session_setting", reasons.session_setting(
                    f"SET @{_name_of(target)}", _USER_VAR_WHY), True)
            # T-SQL local variable (DECLAREd): session-only data, handy for query parameters.
            # EXEC(@var) is blocked, so a string in it cannot become code. The value
            # expression is checked like a read (functions, subqueries).
            r = self._read(verbs, value, SESSION)
            return r if r.rule is not None else None
        if isinstance(target, exp.SessionParameter):
            scope = str(target.args.get("kind") or "").lower()
            if scope in ("global", "persist", "persist_only"):
                return StmtResult(verbs, SESSION, "session_setting", reasons.session_setting(
                    f"SET @@{scope}.{_name_of(target)}", "it changes the server for every session"),
                    True)
        name = _name_of(target).lower()
        allowed = MYSQL_SAFE_SETTINGS if self.dialect == "mysql" else TSQL_SAFE_SETTINGS
        if name not in allowed:
            return StmtResult(verbs, SESSION, "session_setting", reasons.session_setting(
                f"SET {name}", _SET_WHY.get(name, "")), True)
        if not _is_constant(value):
            # SET x = CONCAT('SERIAL', 'IZABLE'), = @var, = 2 + 1: a computed value defeats every
            # value check below, and drivers only ever send constants.
            return StmtResult(verbs, SESSION, "session_setting", reasons.session_setting(
                f"SET {name} = <expression>", "only constant values may be assigned to server "
                "variables"), False)
        val = _value_text(value)
        if name in ("transaction_isolation", "tx_isolation") and \
                val.replace(" ", "-") not in _MYSQL_SAFE_ISOLATION:
            return StmtResult(verbs, TRANSACTION, "row_lock",
                              reasons.locking_isolation(val.upper() or "SERIALIZABLE", "InnoDB"), False)
        if name in ("transaction_read_only", "tx_read_only") and val not in _TRUE_WORDS:
            return StmtResult(verbs, TRANSACTION, "transaction_mode",
                              reasons.transaction_mode(f"SET {name} = {val or '?'}"), False)
        if name in ("character_set_client", "character_set_connection", "collation_connection") \
                and not val.startswith(_SAFE_CHARSETS):
            return StmtResult(verbs, SESSION, "session_setting",
                              reasons.session_setting(f"SET {name}", _CHARSET_WHY), False)
        if name == "sql_mode":
            modes = {m.strip() for m in val.split(",") if m.strip()}
            if not isinstance(value, exp.Literal) or not modes <= _SAFE_SQL_MODES:
                return StmtResult(verbs, SESSION, "session_setting", reasons.session_setting(
                    f"SET sql_mode = {val!r}", _SET_WHY["sql_mode"] + "; only validation modes "
                    "such as STRICT_TRANS_TABLES or ONLY_FULL_GROUP_BY may be set"), False)
        if name == "quoted_identifier" and val != "on":
            return StmtResult(verbs, SESSION, "session_setting", reasons.session_setting(
                "SET QUOTED_IDENTIFIER OFF", "it changes how the server reads double-quoted text, "
                "so the proxy and the server could see different SQL"), False)
        r = self._read(verbs, value, SESSION) if isinstance(value, exp.Expression) else None
        return r if r is not None and r.rule is not None else None

    def _declare(self, node: exp.Declare) -> StmtResult:
        verbs = ("DECLARE",)
        for item in node.expressions:
            kind = item.args.get("kind") if isinstance(item, exp.DeclareItem) else None
            if not isinstance(kind, exp.DataType):
                # table variables and cursors: not needed for reading; refuse rather than model
                return StmtResult(verbs, SESSION, "unknown_statement",
                                  reasons.unknown_statement("DECLARE of a table or cursor"), True)
            default = item.args.get("default")
            if isinstance(default, exp.Expression):
                r = self._read(verbs, default, SESSION)
                if r.rule is not None:
                    return r
        return StmtResult(verbs, SESSION, None, "", True)

    def _execute(self, node: exp.Expression) -> StmtResult:
        if isinstance(node, exp.ExecuteSql):
            return StmtResult(("EXEC",), FUNCTION, "dynamic_sql",
                              reasons.dynamic_sql("sp_executesql"), False)
        target = node.this
        if isinstance(target, exp.Table) and isinstance(target.this, exp.Identifier):
            name = target.name
            why = unsafe_reason("tsql", name)
            if why is not None:
                return StmtResult(("EXEC",), FUNCTION, "unsafe_function",
                                  reasons.unsafe_function(name, why), True)
            return StmtResult(("EXEC",), FUNCTION, "procedure_call",
                              reasons.procedure_call("EXEC", target.sql(dialect="tsql")), True)
        return StmtResult(("EXEC",), FUNCTION, "dynamic_sql",
                          reasons.dynamic_sql("EXEC('...') of an SQL string"), False)

    def _command(self, node: exp.Command, word: str) -> StmtResult:
        cmd = str(node.this or "").upper()
        rest = node.expression
        rest_text = (rest.this if isinstance(rest, exp.Literal) else str(rest or "")).strip()
        verb = cmd.split()[0] if cmd else word
        verbs = (verb,)
        if cmd == "SHOW":
            upper = " ".join(rest_text.upper().split())
            if self.sensitive and upper.startswith(_SENSITIVE_SHOW):
                return StmtResult(verbs, ADMIN, "sensitive_show",
                                  reasons.sensitive_show(f"SHOW {upper.split(' FOR ')[0]}"), True)
            if "(" not in rest_text and "@" not in rest_text and ";" not in rest_text:
                return StmtResult(verbs, READ, None, "", True)
            return StmtResult(verbs, UNKNOWN, "unknown_statement",
                              reasons.unknown_statement(f"SHOW {upper[:40]}"), True)
        if cmd in ("PREPARE", "EXECUTE", "EXEC"):
            what = "EXECUTE IMMEDIATE" if rest_text.upper().startswith("IMMEDIATE") else cmd
            return StmtResult(verbs, FUNCTION, "dynamic_sql", reasons.dynamic_sql(what), False)
        if cmd == "DEALLOCATE":
            return StmtResult(verbs, SESSION, None, "", True)
        if cmd == "CALL":
            return StmtResult(verbs, FUNCTION, "procedure_call",
                              reasons.procedure_call("CALL", rest_text.split("(")[0]), True)
        if cmd.startswith(("LOCK", "UNLOCK")):
            return StmtResult(verbs, ADMIN, "table_lock", reasons.table_lock(cmd), True)
        if cmd == "REPLACE":
            return StmtResult(verbs, WRITE, "write_statement", reasons.write_statement("REPLACE"),
                              True)
        if cmd in ("GRANT", "REVOKE", "DENY"):
            return StmtResult(verbs, DCL, "dcl_statement", reasons.dcl_statement(cmd), True)
        if cmd == "LOAD" and rest_text.upper().startswith(("DATA", "XML")):
            return StmtResult(verbs, WRITE, "write_statement", reasons.write_statement(
                f"LOAD {rest_text.split()[0].upper()} (it loads rows from a file)"), True)
        if cmd == "TRUNCATE":
            return StmtResult(verbs, WRITE, "write_statement", reasons.write_statement(cmd), True)
        if cmd in ("CREATE", "ALTER", "DROP", "RENAME"):
            return StmtResult(verbs, DDL, "ddl_statement", reasons.ddl_statement(cmd), True)
        if cmd in _ADMIN_COMMANDS:
            return StmtResult(verbs, ADMIN, "admin_command",
                              reasons.admin_command(cmd, _ADMIN_COMMANDS[cmd]), True)
        if cmd == "SET":
            return StmtResult(verbs, SESSION, "session_setting",
                              reasons.session_setting(f"SET {rest_text.split(' ')[0]}"), True)
        return StmtResult(verbs, UNKNOWN, "unknown_statement", reasons.unknown_statement(cmd), True)


_ADMIN_COMMANDS = {
    "OPTIMIZE": "it rebuilds tables", "REPAIR": "it rewrites tables",
    "CHECK": "it runs table maintenance", "CHECKSUM": "it runs table maintenance",
    "FLUSH": "it flushes server caches, logs or takes a global read lock",
    "RESET": "it resets server state", "PURGE": "it deletes server logs",
    "INSTALL": "it loads a plugin into the server", "UNINSTALL": "it unloads a server plugin",
    "SHUTDOWN": "it stops the server", "KILL": "it ends another session or query",
    "CHANGE": "it reconfigures replication", "START": "it controls replication",
    "STOP": "it controls replication", "BINLOG": "it replays binary-log events",
    "HANDLER": "it opens a low-level table handler that bypasses SQL checks",
    "XA": "it starts a distributed transaction that can outlive this session",
    "DO": "DO evaluates expressions only for their side effects",
    "LOAD": "it loads data or an index into the server",
    "CACHE": "it changes the key cache", "BACKUP": "it writes a backup on the server",
    "RESTORE": "it restores a database", "RECONFIGURE": "it applies server configuration",
    "DBCC": "it runs database console commands", "WAITFOR": "it waits (denial of service)",
    "BULK": "it loads data from a file", "PRINT": "it is procedural code",
    "RAISERROR": "it is procedural code", "THROW": "it is procedural code",
    "REVERT": "it changes the execution identity", "SETUSER": "it changes the identity",
    "OPEN": "it opens a cursor or key", "CLOSE": "it closes a cursor or key",
    "FETCH": "it fetches from a cursor", "DEALLOCATE": "it frees a cursor",
    "USE": "it changes the database",
}


def _known_verb(word: str) -> StmtResult | None:
    """A specific rule for statements sqlglot cannot parse (or parses as a bare word) whose
    first keyword is a known administrative or privilege command: the agent gets a reason
    naming what the command does instead of "could not be parsed". They block either way."""
    if word in _ADMIN_COMMANDS and word not in ("OPEN", "CLOSE", "FETCH", "DEALLOCATE", "USE",
                                                 "PRINT", "RAISERROR", "THROW"):
        if word in ("LOAD", "BULK"):
            return StmtResult((word,), WRITE, "write_statement", reasons.write_statement(
                f"{word} ({_ADMIN_COMMANDS[word]})"), True)
        return StmtResult((word,), ADMIN, "admin_command",
                          reasons.admin_command(word, _ADMIN_COMMANDS[word]), True)
    if word == "DENY":
        return StmtResult((word,), DCL, "dcl_statement", reasons.dcl_statement(word), True)
    return None


def _has_children(node: exp.Expression) -> bool:
    return any(isinstance(v, (exp.Expression, list)) and v for v in node.args.values())


