"""Reasons written for the AI agent that sent the SQL (issue 2: "what was blocked, why, what to
do instead"). One place, so the wording stays consistent across dialects and paths.

Every reason names the offending construct, says why a read-only connection refuses it, and
suggests the read-only alternative. Rules are short snake_case ids; the reason is prose.
"""

from __future__ import annotations

READ_ONLY = "this connection is read-only"
ALLOWED_LIST = "SELECT, WITH ... SELECT, VALUES, TABLE, EXPLAIN, SHOW and DESCRIBE"

PARSE_ERROR = "could not be parsed; rewrite as a single plain SELECT"


def parse_error(detail: str = "") -> str:
    detail = " ".join(detail.split())[:160]
    suffix = f" (parser said: {detail})" if detail else ""
    return f"The SQL {PARSE_ERROR}{suffix}. Text the proxy cannot parse is never forwarded."


def lex_error(detail: str = "") -> str:
    detail = " ".join(detail.split())[:160]
    suffix = f" ({detail})" if detail else ""
    return (f"The SQL text could not be tokenized{suffix}: look for an unterminated quote, "
            f"identifier or comment; the SQL {PARSE_ERROR}.")


def empty() -> str:
    return ("No SQL statement was found (only comments, whitespace or semicolons); "
            "send a single plain SELECT.")


def internal_error(detail: str) -> str:
    return (f"The proxy could not check this SQL ({detail[:120]}), so it was blocked to be safe; "
            f"rewrite as a single plain SELECT.")


def write_statement(verb: str, where: str = "") -> str:
    place = f" {where}" if where else ""
    return f"{verb}{place} changes data; {READ_ONLY}; use SELECT to read the data instead."


def ddl_statement(verb: str) -> str:
    return (f"{verb} changes the database schema or its objects; {READ_ONLY}; "
            f"only {ALLOWED_LIST} are allowed.")


def dcl_statement(verb: str) -> str:
    return (f"{verb} changes users, roles or permissions; {READ_ONLY}; "
            f"to inspect permissions, SELECT from the catalog instead.")


def select_into(target: str) -> str:
    return (f"SELECT ... INTO {target} writes the result somewhere instead of returning it; "
            f"{READ_ONLY}; run the same SELECT without INTO and read the returned rows.")


def row_lock(clause: str) -> str:
    return (f"{clause} locks the rows it reads, which a read-only connection may not do; "
            f"remove the locking clause and run the plain SELECT.")


def copy(what: str) -> str:
    return (f"{what}; {READ_ONLY}; only COPY (SELECT ...) TO STDOUT or COPY table TO STDOUT "
            f"is allowed, or run the SELECT directly.")


def dynamic_sql(verb: str) -> str:
    return (f"{verb} runs SQL (or code) that the proxy cannot inspect before it executes; "
            f"send the statement itself as plain SQL (a SELECT) instead.")


def procedure_call(verb: str, name: str = "") -> str:
    what = f" {name}" if name else ""
    return (f"{verb}{what} runs a stored procedure, which can change data; {READ_ONLY}; "
            f"query the tables or views it reads with SELECT instead.")


def session_setting(what: str, why: str = "") -> str:
    """what: the statement as the agent would recognise it, e.g. "SET role", "RESET ALL"."""
    why = why or ("it is not on the proxy's list of harmless settings (it may control read-only "
                  "mode, identity, or how the server parses SQL)")
    return (f"{what} is not allowed: {why}. Harmless settings such as statement_timeout, "
            f"application_name, search_path, time zone or date style may be set.")


def transaction_mode(what: str) -> str:
    return (f"{what} would make the transaction read-write; {READ_ONLY}; "
            f"use BEGIN, START TRANSACTION or BEGIN READ ONLY instead.")


def transaction_control(verb: str) -> str:
    return (f"{verb} is two-phase commit: it keeps locks and a transaction alive beyond this "
            f"session; {READ_ONLY}; use plain BEGIN / COMMIT / ROLLBACK.")


def locking_isolation(level: str, engine: str) -> str:
    return (f"Isolation level {level} makes plain reads take shared locks that are held until the "
            f"transaction ends ({engine}), blocking other sessions' writes; use READ COMMITTED "
            f"(or SNAPSHOT) instead.")


def table_lock(verb: str) -> str:
    return (f"{verb} takes explicit locks that block other sessions; {READ_ONLY}; "
            f"run the SELECT without locking.")


def admin_command(verb: str, why: str = "") -> str:
    why = why or "it is a server administration command"
    return f"{verb} is blocked: {why}; {READ_ONLY}; only {ALLOWED_LIST} are allowed."


def unknown_statement(verb: str) -> str:
    return (f"{verb or 'This statement'} is not a statement this proxy knows to be read-only, "
            f"so it is blocked; only {ALLOWED_LIST} are allowed.")


def unsafe_function(name: str, why: str) -> str:
    return f"{name}() {why}; {READ_ONLY}; remove {name}() from the query."


def unknown_function(name: str, detail: str = "") -> str:
    detail = f" ({detail})" if detail else ""
    call = name if name.endswith(")") else f"{name}()"
    return (f"{call} is not a function this proxy knows to be read-only{detail}: it may be "
            f"user-defined and change data. Use built-in functions, or ask the operator to allow "
            f"it for this backend.")


def unknown_type(name: str) -> str:
    return (f"The type {name} is not a built-in type: converting a value to it can run a "
            f"user-defined cast, domain check or input function, which may change data. Cast to a "
            f"built-in type (text, integer, numeric, date, ...) instead, or ask the operator to allow "
            f"user-defined functions for this backend.")


def unsafe_syntax(what: str, why: str) -> str:
    return f"{what} is blocked: {why}; rewrite the query as a plain SELECT without it."


def sensitive_show(what: str) -> str:
    return (f"{what} reveals other sessions' SQL, credentials or server internals, so it is blocked "
            f"on this connection; ask the operator if you need it.")


def blocked_command(verb: str) -> str:
    return (f"{verb} statements are blocked by this proxy's configuration "
            f"(security.blocked_commands); use a different read-only statement.")


def explain_of(inner_reason: str) -> str:
    return f"EXPLAIN of a statement that is not read-only: {inner_reason}"
