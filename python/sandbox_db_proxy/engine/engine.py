"""The verdict engine: cache -> Rust fast path -> deep check -> function policy
(docs/ARCHITECTURE.md, "Engine"; issue 2).

Flow of `Engine.classify(sql)`:
1. exact-text LRU: a dict hit returns the stored Verdict object (path "cache");
2. `_native.fast_check`: ALLOW / BLOCK when the Rust lexer is certain (blocked_commands still
   apply to its verbs), DEFER otherwise;
3. fingerprint LRU (only for DEFERred text): verdicts stored there provably do not depend on
   literal values (see `_fingerprint_cacheable`);
4. deep check on a real grammar (deep_postgres / deep_sqlglot) with the function policy.
Any failure inside the checks blocks (fail closed); nothing here relies on the backend's own
read-only transaction.
"""

from __future__ import annotations

import logging
import re

from sandbox_db_proxy import _native

from . import reasons
from .cache import LRUCache
from .deep_postgres import DeepResult, PostgresChecker
from .functions import FunctionCatalog, FunctionPolicy
from .verdict import ALLOW, BLOCK, READ, UNKNOWN, Statement, Verdict

log = logging.getLogger(__name__)

DIALECTS = ("postgres", "mysql", "tsql")

# Texts longer than this are not kept in the exact-text cache: 10 000 entries of megabyte
# statements would pin gigabytes. They are still classified (and may hit the fingerprint cache).
MAX_CACHED_TEXT = 16 * 1024

# A fast-path ALLOW is re-checked by the deep check when the text mentions something that
# block_sensitive_show covers: the Rust fast path does not know about that per-backend option.
_SENSITIVE_HINT = re.compile(
    r"processlist|pg_stat_activity|pg_stat_statements|pg_stat_get_activity|pg_authid|pg_shadow|"
    r"pg_user_mapping|\bshow\b|events_statements|global_priv|threads|\bsession\b|"
    r"\buser\b|dm_exec|sql_logins", re.IGNORECASE)


class EngineStats:
    """Cheap counters (plain attribute increments on the hot path)."""

    __slots__ = ("cache_hits", "fast_allow", "fast_block", "deep")

    def __init__(self) -> None:
        self.cache_hits = 0
        self.fast_allow = 0
        self.fast_block = 0
        self.deep = 0

    def to_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}

    def __repr__(self) -> str:
        return f"EngineStats({self.to_dict()})"


class Engine:
    def __init__(self, dialect: str = "postgres", blocked_commands=(),
                 allow_unknown_functions: bool = False, catalog: FunctionCatalog | None = None,
                 cache_size: int = 10_000, block_sensitive_show: bool = True) -> None:
        if dialect not in DIALECTS:
            raise ValueError(f"unknown dialect {dialect!r}; expected one of {DIALECTS}")
        self.dialect = dialect
        self.blocked_commands = frozenset(str(c).strip().upper() for c in blocked_commands)
        self.allow_unknown_functions = bool(allow_unknown_functions)
        self.block_sensitive_show = bool(block_sensitive_show)
        self.catalog = catalog
        self.stats = EngineStats()
        self._exact: LRUCache[str, Verdict] = LRUCache(cache_size)
        self._fp: LRUCache[str, Verdict] = LRUCache(cache_size)
        self._fast = _native.fast_check
        self._fast_allow, self._fast_block = _native.ALLOW, _native.BLOCK
        self._checker = self._make_checker()

    # -- configuration ----------------------------------------------------------------------

    def _make_checker(self):
        policy = FunctionPolicy(self.dialect, self.allow_unknown_functions, self.catalog)
        if self.dialect == "postgres":
            return PostgresChecker(policy, self.block_sensitive_show)
        from .deep_sqlglot import SqlglotChecker   # sqlglot import is slow; only when needed
        return SqlglotChecker(self.dialect, policy, self.block_sensitive_show)

    def set_catalog(self, catalog: FunctionCatalog | None) -> None:
        """Use a backend's function catalogue (e.g. from pg_proc); cached verdicts were made
        without it, so both caches are cleared."""
        self.catalog = catalog
        self._checker = self._make_checker()
        self.clear_cache()

    def clear_cache(self) -> None:
        self._exact.clear()
        self._fp.clear()

    # -- classification ---------------------------------------------------------------------

    def classify(self, sql: str) -> Verdict:
        exact = self._exact.data
        verdict = exact.get(sql)
        if verdict is not None:
            exact.move_to_end(sql)
            self.stats.cache_hits += 1
            return verdict

        try:
            decision, rule, reason, klass, verbs, fingerprint = self._fast(sql, self.dialect)
        except _native.NativeError as exc:      # LexError and friends: fail closed
            verdict = Verdict(BLOCK, "lex_error", reasons.lex_error(str(exc)), UNKNOWN, (), "fast")
            self._remember(sql, verdict)
            return verdict

        verbs = tuple(verbs)
        if decision == self._fast_allow and self.block_sensitive_show and \
                _SENSITIVE_HINT.search(sql) is not None:
            decision = None                     # let the deep check apply the sensitive lists
        if decision == self._fast_allow:
            self.stats.fast_allow += 1
            stmts = (Statement(verbs, klass or READ),)
            verdict = self._blocked_command(stmts, "fast") or Verdict(
                ALLOW, rule or "read_only", reason or "read-only statement", klass or READ, stmts,
                "fast")
        elif decision == self._fast_block:
            self.stats.fast_block += 1
            verdict = Verdict(BLOCK, rule, reason, klass or UNKNOWN,
                              (Statement(verbs, klass or UNKNOWN),), "fast")
        else:
            if fingerprint is not None:
                verdict = self._fp.get(fingerprint)
                if verdict is not None:
                    self.stats.cache_hits += 1
                    self._remember(sql, verdict)
                    return verdict
            verdict, fp_ok = self._deep(sql, verbs)
            if fp_ok and fingerprint is not None and self._fingerprint_cacheable(sql, verdict):
                self._fp.put(fingerprint, verdict.with_path("cache"))
        self._remember(sql, verdict)
        return verdict

    def _remember(self, sql: str, verdict: Verdict) -> None:
        if len(sql) <= MAX_CACHED_TEXT:
            self._exact.put(sql, verdict.with_path("cache"))

    def _fingerprint_cacheable(self, sql: str, verdict: Verdict) -> bool:
        """May this verdict be reused for every text with the same fingerprint?

        The fingerprint replaces each literal by `?` (and normalises case, whitespace and
        comments), so texts sharing it differ only in literal values and layout. Reuse is sound
        when the decision never read a literal value:
        - only allowed reads qualify: for SET, COPY ... TO 'file', transaction modes and the
          like the value decides, and those are never class "read";
        - the deep check reports `fingerprint_ok=False` when it inspected a literal or saw a
          function whose literal argument is SQL text, code or a name (functions.LITERAL_SENSITIVE:
          set_config, query_to_xml, dblink, EXEC, sp_executesql, OPENROWSET, LOAD_FILE...),
          so such statements are cached by exact text only, even when allowed;
        - MySQL executable comments (`/*! ... */`) are code to the server but comments to a
          fingerprint, so text containing them is never fingerprint-cached;
        - the remaining dependence is on the Rust lexer finding literals where the server does,
          which the fast path relies on as well.
        """
        if not verdict.allowed or verdict.klass != READ:
            return False
        if any(s.klass != READ for s in verdict.statements):
            return False
        if self.dialect == "mysql" and "/*" in sql and ("/*!" in sql or "/*M!" in sql or
                                                        "/*m!" in sql):
            return False
        return True

    def _deep(self, sql: str, fast_verbs: tuple[str, ...]) -> tuple[Verdict, bool]:
        self.stats.deep += 1
        if "\x00" in sql:   # no server accepts NUL in query text; the C parsers stop at it
            return Verdict(BLOCK, "parse_error", reasons.parse_error("NUL character in the text"),
                           UNKNOWN, (), "deep"), False
        try:
            result: DeepResult = self._checker.check(sql)
        except _native.NativeError as exc:
            return Verdict(BLOCK, "lex_error", reasons.lex_error(str(exc)), UNKNOWN,
                           (Statement(fast_verbs, UNKNOWN),) if fast_verbs else (), "deep"), False
        except RecursionError:
            return Verdict(BLOCK, "parse_error", reasons.parse_error("statement nested too deeply"),
                           UNKNOWN, (), "deep"), False
        except Exception as exc:       # a bug or an input the parser chokes on: fail closed
            log.exception("deep check failed; blocking")
            return Verdict(BLOCK, "internal_error", reasons.internal_error(type(exc).__name__),
                           UNKNOWN, (), "deep"), False
        statements = result.statements
        if not statements and fast_verbs:
            statements = (Statement(fast_verbs, result.klass),)
        if result.block is not None:
            b = result.block
            return Verdict(BLOCK, b.rule, b.reason, b.klass, statements, "deep"), result.fingerprint_ok
        blocked = self._blocked_command(statements, "deep")
        if blocked is not None:
            return blocked, result.fingerprint_ok
        return Verdict(ALLOW, "read_only", _allow_reason(result.klass), result.klass, statements,
                       "deep"), result.fingerprint_ok

    def _blocked_command(self, statements: tuple[Statement, ...], path: str) -> Verdict | None:
        """security.blocked_commands: extra verbs to block; they can never allow anything."""
        blocked = self.blocked_commands
        if not blocked:
            return None
        for stmt in statements:
            for verb in stmt.verbs:
                if verb in blocked:
                    return Verdict(BLOCK, "blocked_command", reasons.blocked_command(verb),
                                   stmt.klass, statements, path)
        return None


def _allow_reason(klass: str) -> str:
    return {
        "read": "read-only statement",
        "session": "harmless session setting",
        "transaction": "transaction control that cannot make the session read-write",
    }.get(klass, "allowed")


# --------------------------------------------------------------------------------------------
# module-level convenience
# --------------------------------------------------------------------------------------------

_default_engines: dict[str, Engine] = {}


def default_engine(dialect: str = "postgres") -> Engine:
    eng = _default_engines.get(dialect)
    if eng is None:
        eng = _default_engines[dialect] = Engine(dialect)
    return eng


def classify(sql: str, dialect: str = "postgres") -> Verdict:
    """Classify SQL text with the default engine of the dialect (no catalogue, default policy)."""
    return default_engine(dialect).classify(sql)
