"""MySQL/MariaDB and T-SQL SET policy data (used by deep_sqlglot): which server variables an
agent or driver may set, to which values, and the reasons shown when it may not."""

from __future__ import annotations

from sqlglot import exp

# --------------------------------------------------------------------------------------------
# SET
# --------------------------------------------------------------------------------------------

# MySQL/MariaDB session variables an agent or driver may set (lower-case). sql_mode is checked
# by value (_SAFE_SQL_MODES): NO_BACKSLASH_ESCAPES and ANSI_QUOTES (also implied by ANSI, ORACLE,
# MSSQL, DB2, POSTGRESQL, MAXDB) change how the server lexes strings, so the proxy's lexer and
# the server would disagree about where a literal ends; MariaDB's ORACLE mode swaps the parser.
MYSQL_SAFE_SETTINGS = frozenset("""
autocommit time_zone sql_select_limit max_execution_time max_statement_time net_read_timeout
net_write_timeout wait_timeout interactive_timeout lock_wait_timeout innodb_lock_wait_timeout
transaction_isolation tx_isolation group_concat_max_len sql_big_selects sql_quote_show_create
lc_time_names div_precision_increment optimizer_search_depth sql_auto_is_null sql_safe_updates
sql_notes sql_warnings profiling profiling_history_size session_track_schema
session_track_state_change session_track_system_variables session_track_transaction_info
default_week_format cte_max_recursion_depth max_recursive_iterations eq_range_index_dive_limit
character_set_results character_set_client character_set_connection collation_connection
transaction_read_only tx_read_only max_join_size sql_buffer_result sql_mode
""".split())
# sql_mode flags that only change data validation or DDL defaults, never the lexer or parser
# (MySQL manual, "Server SQL Modes"; MariaDB "SQL_MODE"). Connector/J sets some at connect.
_SAFE_SQL_MODES = frozenset("""
strict_trans_tables strict_all_tables no_zero_date no_zero_in_date error_for_division_by_zero
no_engine_substitution only_full_group_by no_auto_value_on_zero no_auto_create_user
no_unsigned_subtraction pad_char_to_full_length traditional real_as_float no_dir_in_create
no_field_options no_key_options no_table_options time_truncate_fractional
simultaneous_assignment allow_invalid_dates empty_string_is_null
""".split())
# Client-side character sets whose multi-byte characters never contain the bytes of `'`, `"`,
# `\` or `` ` `` (so the proxy and server agree on quoting). gbk/sjis/big5/cp932 do not qualify.
_SAFE_CHARSETS = ("utf8", "utf8mb3", "utf8mb4", "latin1", "ascii", "binary", "utf-8")

TSQL_SAFE_SETTINGS = frozenset("""
nocount textsize ansi_nulls ansi_padding ansi_warnings ansi_null_dflt_on ansi_null_dflt_off
ansi_defaults arithabort arithignore concat_null_yields_null numeric_roundabort
quoted_identifier lock_timeout dateformat datefirst language deadlock_priority rowcount
xact_abort implicit_transactions cursor_close_on_commit showplan_xml showplan_text showplan_all
noexec fmtonly forceplan query_governor_cost_limit
""".split())


_TRUE_WORDS = frozenset({"1", "on", "true"})


# transaction_isolation values that do not make reads lock (MySQL numbers them 0..3; 3 is
# SERIALIZABLE, which turns plain SELECTs into locking reads when autocommit is off).
_MYSQL_SAFE_ISOLATION = frozenset({"read-uncommitted", "read-committed", "repeatable-read",
                                   "0", "1", "2", "default"})


def _is_constant(node) -> bool:
    """A literal, keyword value (ON, DEFAULT, utf8mb4), boolean, NULL or a negative number."""
    if isinstance(node, exp.Neg):
        node = node.this
    return isinstance(node, (exp.Literal, exp.Var, exp.Boolean, exp.Null, exp.Identifier,
                             exp.Column)) and not (isinstance(node, exp.Column) and node.table)


def _value_text(node) -> str:
    if isinstance(node, exp.Literal):
        return str(node.this).lower()
    if isinstance(node, (exp.Var, exp.Identifier, exp.Column)):
        return node.name.lower()
    if isinstance(node, exp.Boolean):
        return "1" if node.this else "0"
    if isinstance(node, exp.Null):
        return "null"
    return ""


_USER_VAR_WHY = ("MySQL user variables are only needed to build SQL text for PREPARE ... FROM @var "
                 "(which is blocked) and can defeat column masking; put the value into the query "
                 "itself")
_CHARSET_WHY = ("only utf8/utf8mb4, latin1, ascii or binary are allowed: other character sets "
                "can hide a quote or backslash inside a multi-byte character, so the proxy and "
                "the server would see different SQL")
_SET_WHY = {
    "sql_mode": "it changes how the server reads quotes and backslashes, so the proxy and the "
                "server could see different SQL",
    "sql_log_bin": "it hides statements from replication and the binary log",
    "read_only": "it controls the server's read-only mode",
    "foreign_key_checks": "it disables integrity checks meant for writes",
    "unique_checks": "it disables integrity checks meant for writes",
    "identity_insert": "it allows writing identity columns",
    "context_info": "it changes session data other sessions can read",
}
