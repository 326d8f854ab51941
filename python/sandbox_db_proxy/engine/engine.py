"""The verdict engine: cache -> Rust fast path -> deep check -> function policy
(docs/ARCHITECTURE.md, "Engine"; issue 2).

Flow of `Engine.classify(sql)`:
1. exact-text LRU: a dict hit returns the stored Verdict object (path "cache");
2. `_native.fast_check`: ALLOW / BLOCK when the Rust lexer is certain (blocked_commands still
   apply to its verbs), DEFER otherwise. A fast ALLOW goes to the deep check anyway when the
   text touches what the fast path does not know (block_sensitive_show lists, a catalogue's
   shadowing functions, PostgreSQL casts to non-built-in types: `_needs_deep`);
3. fingerprint LRU, consulted after a fast ALLOW or DEFER (never against a fast BLOCK): verdicts
   stored there provably do not depend on literal values (see `_fingerprint_cacheable`);
4. deep check on a real grammar (deep_postgres / deep_sqlglot) with the function policy.
Not thread-safe beyond the GIL's atomic dict operations: relays call it from one event loop.
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
from .functions import PG_BUILTIN_TYPES, FunctionCatalog, FunctionPolicy
from .verdict import ALLOW, BLOCK, READ, UNKNOWN, Statement, Verdict

log = logging.getLogger(__name__)

DIALECTS = ("postgres", "mysql", "tsql")

# Texts longer than this are not kept in the exact-text cache: 10 000 entries of megabyte
# statements would pin gigabytes. They are still classified (and may hit the fingerprint cache).
MAX_CACHED_TEXT = 16 * 1024

# A fast-path ALLOW is re-checked by the deep check when the text mentions something that
# block_sensitive_show covers: the Rust fast path does not know about that per-backend option.
# Plain substring tests on the lower-cased text (C speed); a regex alternation with \b and
# IGNORECASE cost ~1.4 ms on a 2 KB statement.
_SENSITIVE_SUBSTRINGS = {
    "postgres": ("pg_stat_activity", "pg_stat_statements", "pg_stat_get_", "pg_authid",
                 "pg_shadow", "pg_user_mapping"),
    "mysql": ("processlist", "performance_schema", "innodb_trx", "innodb_lock", "_privileges",
              "_statistics", "global_priv", "general_log", "slow_log", "_status"),
    "tsql": ("dm_exec_", "sql_logins", "syslogins", "sysprocesses", "server_principals",
             "fn_get_sql"),
}
_SENSITIVE_WORDS = {"postgres": ("show",), "mysql": ("show", "mysql", "sys"),
                    "tsql": ()}


def _has_word(low: str, word: str) -> bool:
    """`word` occurs in `low` as a whole identifier (not inside users, user_id, showcase)."""
    start = low.find(word)
    n = len(word)
    while start >= 0:
        before = low[start - 1] if start else " "
        after = low[start + n] if start + n < len(low) else " "
        if not (before.isalnum() or before in "_$") and not (after.isalnum() or after in "_$"):
            return True
        start = low.find(word, start + 1)
    return False


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
        self.native_cache = None        # _native.VerdictCache of the native relay, if any
        self._exact: LRUCache[str, Verdict] = LRUCache(cache_size)
        self._fp: LRUCache[str, Verdict] = LRUCache(cache_size)
        # classify() works on the OrderedDicts directly (LRUCache never rebinds them).
        self._exact_data = self._exact.data
        self._exact_max = self._exact.maxsize
        self._fp_data = self._fp.data
        self._fast_allows: dict[tuple, tuple[Verdict, bool]] = {}
        self._fast_blocks: dict[tuple, Verdict] = {}
        self._fast = _native.fast_check
        self._fast_allow, self._fast_block = _native.ALLOW, _native.BLOCK
        self._checker = self._make_checker()
        self._recheck = self._make_recheck()

    # -- configuration ----------------------------------------------------------------------

    def _make_recheck(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(substrings, whole words) that send a fast-path ALLOW to the deep check anyway: the
        fast path knows neither block_sensitive_show nor the backend's catalogue, in which a
        VOLATILE user function may shadow a built-in the fast path trusts (public.upper(int))."""
        subs: tuple[str, ...] = ()
        words: tuple[str, ...] = ()
        if self.block_sensitive_show:
            subs, words = _SENSITIVE_SUBSTRINGS[self.dialect], _SENSITIVE_WORDS[self.dialect]
        if self.catalog is not None:
            words = words + tuple(sorted(self.catalog.shadowing_names()))
        return subs, words

    def _needs_deep(self, sql: str) -> bool:
        """Should a fast-path ALLOW of `sql` be re-checked by the deep check?"""
        subs, words = self._recheck
        low = sql.lower()
        for s in subs:
            if s in low:
                return True
        for w in words:
            if w in low and _has_word(low, w):
                return True
        return self.dialect == "postgres" and _pg_user_cast(sql, low)

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
        self._recheck = self._make_recheck()
        self.clear_cache()

    def clear_cache(self) -> None:
        if self.native_cache is not None:
            self.native_cache.clear()    # the native relay's copy (server/native.py)
        self._exact.clear()
        self._fp.clear()
        self._fast_allows.clear()
        self._fast_blocks.clear()

    # -- classification ---------------------------------------------------------------------

    def classify(self, sql: str) -> Verdict:
        # Hot path (issue 6 budget: cache hit <= 1 us, fast path <= 5 us). The two cache hits
        # are inlined on the OrderedDicts themselves (no method calls), and fast ALLOW verdicts
        # are prebuilt per (verbs, reason) instead of constructed per call.
        exact = self._exact_data
        verdict = exact.get(sql)
        if verdict is not None:
            exact.move_to_end(sql)
            self.stats.cache_hits += 1
            if verdict.path != "cache":          # stored as decided; relabelled on first reuse
                verdict = exact[sql] = verdict.with_path("cache")
            return verdict

        try:
            decision, rule, reason, klass, verbs, fingerprint = self._fast(sql, self.dialect)
        except _native.NativeError as exc:      # LexError and friends: fail closed
            verdict = Verdict(BLOCK, "lex_error", reasons.lex_error(str(exc)), UNKNOWN, (), "fast")
            self._remember(sql, verdict)
            return verdict

        if decision == self._fast_allow and fingerprint is not None:
            # Same shape as a read already allowed, literals aside (see _fingerprint_cacheable).
            # Looked up only after the fast path said ALLOW: a fingerprint hit must never
            # overturn a fast BLOCK (e.g. ambiguous_quoting depends on the literals' content).
            fp = self._fp_data
            verdict = fp.get(fingerprint)
            if verdict is not None:
                fp.move_to_end(fingerprint)
                self.stats.cache_hits += 1
                if verdict.path != "cache":
                    verdict = fp[fingerprint] = verdict.with_path("cache")
                # _remember(), inlined: the text was not in the exact cache (checked above).
                if len(sql) <= MAX_CACHED_TEXT and self._exact_max:
                    exact[sql] = verdict
                    if len(exact) > self._exact_max:
                        exact.popitem(last=False)
                return verdict
        verbs = tuple(verbs)
        if decision == self._fast_allow and self._needs_deep(sql):
            decision = None      # something the fast path does not check: the deep check decides
        if decision == self._fast_allow:
            self.stats.fast_allow += 1
            verdict, fp_ok = self._fast_allow_verdict(verbs, reason)
            if fp_ok and fingerprint is not None and self._fingerprint_cacheable_text(sql):
                self._fp.put(fingerprint, verdict)
            self._remember(sql, verdict)
            return verdict
        elif decision == self._fast_block:
            self.stats.fast_block += 1
            key = (rule, reason, klass, verbs)
            verdict = self._fast_blocks.get(key)
            if verdict is None:
                klass = klass or UNKNOWN
                verdict = Verdict(BLOCK, _FAST_RULES.get((rule, klass), rule), reason, klass,
                                  _fast_statements(verbs), "fast")
                if len(self._fast_blocks) >= 1024:   # reasons can name user text: stay bounded
                    self._fast_blocks.clear()
                self._fast_blocks[key] = verdict
        else:
            if fingerprint is not None:
                verdict = self._fp_hit(fingerprint)
                if verdict is not None:
                    self._remember(sql, verdict)
                    return verdict
            verdict, fp_ok = self._deep(sql, verbs)
            if fp_ok and fingerprint is not None and self._fingerprint_cacheable(sql, verdict):
                self._fp.put(fingerprint, verdict)
        self._remember(sql, verdict)
        return verdict

    def _fast_allow_verdict(self, verbs: tuple[str, ...], reason: str) -> tuple[Verdict, bool]:
        """The Verdict of a fast-path ALLOW and whether it may go to the fingerprint cache
        as far as the verdict itself goes (`_fingerprint_cacheable` minus the text check).
        Both are functions of (verbs, reason) alone (and of blocked_commands, fixed per
        engine), so they are built once per combination and shared (bounded: verb
        combinations and fast-path reasons are few)."""
        key = (verbs, reason)
        entry = self._fast_allows.get(key)
        if entry is None:
            stmts = _fast_statements(verbs)
            verdict = self._blocked_command(stmts, "fast") or Verdict(
                ALLOW, "read_only", reason or "read-only statement", READ, stmts, "fast")
            entry = (verdict, self._fingerprint_cacheable_verdict(verdict))
            if len(self._fast_allows) < 1024:
                self._fast_allows[key] = entry
        return entry

    def _fp_hit(self, fingerprint: str) -> Verdict | None:
        fp = self._fp.data
        verdict = fp.get(fingerprint)
        if verdict is None:
            return None
        fp.move_to_end(fingerprint)
        self.stats.cache_hits += 1
        if verdict.path != "cache":
            verdict = fp[fingerprint] = verdict.with_path("cache")
        return verdict

    def _remember(self, sql: str, verdict: Verdict) -> None:
        """Exact-text cache. The verdict is stored as decided (path fast/deep) and relabelled
        "cache" on its first reuse, so text seen only once costs no second Verdict object."""
        if len(sql) <= MAX_CACHED_TEXT:
            self._exact.put(sql, verdict)

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
        return self._fingerprint_cacheable_verdict(verdict) and self._fingerprint_cacheable_text(sql)

    @staticmethod
    def _fingerprint_cacheable_verdict(verdict: Verdict) -> bool:
        if not verdict.allowed or verdict.klass != READ:
            return False
        for st in verdict.statements:
            if st.klass != READ:
                return False
        return True

    def _fingerprint_cacheable_text(self, sql: str) -> bool:
        return not (self.dialect == "mysql" and "/*" in sql and ("/*!" in sql or "/*M!" in sql or
                                                                 "/*m!" in sql))

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


# The fast path names its write block `write_verb` whatever the class; the deep check has one
# rule per class. Verdicts use the deep check's ids so a statement gets the same rule on every
# path (docs/ARCHITECTURE.md: rules are stable ids relays put into the audit record).
_FAST_RULES = {("write_verb", "write"): "write_statement", ("write_verb", "ddl"): "ddl_statement",
               ("write_verb", "dcl"): "dcl_statement"}

# First word of a statement -> class, for the per-statement records of fast-path verdicts (the
# fast path reports one verb per statement and one class for the whole text).
_VERB_CLASS = {
    **dict.fromkeys(("SELECT", "WITH", "VALUES", "TABLE", "SHOW", "EXPLAIN", "DESCRIBE", "DESC",
                     "USE", "FETCH"), READ),
    **dict.fromkeys(("INSERT", "UPDATE", "DELETE", "MERGE", "REPLACE", "TRUNCATE", "COPY", "LOAD"),
                    "write"),
    **dict.fromkeys(("CREATE", "ALTER", "DROP", "RENAME", "COMMENT"), "ddl"),
    **dict.fromkeys(("GRANT", "REVOKE", "DENY"), "dcl"),
    **dict.fromkeys(("BEGIN", "START", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "END",
                     "ABORT", "SAVE"), "transaction"),
    **dict.fromkeys(("SET", "RESET", "DISCARD", "DECLARE"), "session"),
}


# PostgreSQL casts: `x::ticket` / CAST(x AS ticket) to a user type can run user code (input
# function, cast function, domain CHECK). The Rust fast path accepts any type name after `::`,
# so a fast ALLOW of text with a cast to a name that is not a built-in type (or with CAST(...),
# whose target is harder to see lexically) goes to the deep check, which checks every TypeName.
_PG_CAST = re.compile(r'::\s*("?)([A-Za-z_][A-Za-z0-9_$]*)')
_PG_TYPE_WORDS = PG_BUILTIN_TYPES | frozenset((
    "integer", "int", "bigint", "smallint", "double", "real", "float", "decimal", "dec", "boolean",
    "character", "char", "varchar", "nchar", "national", "timestamp", "time", "interval", "date",
    "numeric", "text", "bit", "pg_catalog", "json", "jsonb", "setof"))


def _pg_user_cast(sql: str, low: str | None = None) -> bool:
    if "::" in sql:
        for m in _PG_CAST.finditer(sql):
            if m.group(1) or m.group(2).lower() not in _PG_TYPE_WORDS:
                return True
    low = sql.lower() if low is None else low
    return ("cast" in low and _has_word(low, "cast")) or ("treat" in low and _has_word(low, "treat"))


_FAST_STATEMENTS: dict[tuple[str, ...], tuple[Statement, ...]] = {}


def _fast_statements(verbs: tuple[str, ...]) -> tuple[Statement, ...]:
    stmts = _FAST_STATEMENTS.get(verbs)
    if stmts is None:
        stmts = tuple(Statement((v,) if v else (), _VERB_CLASS.get(v, UNKNOWN)) for v in verbs)
        if len(_FAST_STATEMENTS) < 1024:        # verb combinations are few; stay bounded anyway
            _FAST_STATEMENTS[verbs] = stmts
    return stmts


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
