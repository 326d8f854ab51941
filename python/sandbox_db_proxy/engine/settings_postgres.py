"""PostgreSQL SET / RESET policy (used by deep_postgres): which settings an agent may change and
to which values (issue 2: block SET of read-only and security settings; allow harmless ones)."""

from __future__ import annotations

from . import reasons
from .results import StmtResult
from .verdict import SESSION, TRANSACTION


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
