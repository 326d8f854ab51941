"""`sandbox-db-proxy classify`: run the verdict engine on SQL text (issue 2, "Interfaces").

    sandbox-db-proxy classify --dialect postgres "SELECT 1"        # one JSON object
    sandbox-db-proxy classify --exit-code "DELETE FROM t"          # exit 1 on block
    sandbox-db-proxy classify --jsonl < corpus.jsonl               # {"id","dialect","sql"} lines

In --jsonl mode every input line yields exactly one output line carrying the input's `id`; a bad
line (not JSON, missing/invalid fields) yields `{"id": ..., "error": ...}` and processing goes on,
so one malformed entry cannot hide the verdicts of a large corpus.
"""

from __future__ import annotations

import argparse
import sys

HELP = "classify SQL text as allowed (read-only) or blocked, printing a JSON verdict"

_DIALECTS = ("postgres", "mysql", "tsql")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sql", nargs="?", help="SQL text (omit with --jsonl; '-' reads stdin)")
    parser.add_argument("--dialect", default="postgres", choices=_DIALECTS,
                        help="SQL dialect (default: postgres); also the default for --jsonl lines")
    parser.add_argument("--jsonl", action="store_true",
                        help='read JSON lines {"id", "dialect", "sql"} from stdin, '
                             "write one verdict line per input")
    parser.add_argument("--exit-code", action="store_true",
                        help="exit with status 1 when (any) statement is blocked")
    parser.add_argument("--blocked-command", action="append", default=[], metavar="VERB",
                        help="extra verb to block (like security.blocked_commands); repeatable")
    parser.add_argument("--allow-unknown-functions", action="store_true",
                        help="do not block functions the engine does not know")


def _engines(args: argparse.Namespace):
    from sandbox_db_proxy.engine import Engine

    cache: dict[str, Engine] = {}

    def get(dialect: str) -> Engine:
        eng = cache.get(dialect)
        if eng is None:
            eng = cache[dialect] = Engine(dialect, blocked_commands=tuple(args.blocked_command),
                                          allow_unknown_functions=args.allow_unknown_functions)
        return eng
    return get


def run(args: argparse.Namespace) -> int:
    import orjson

    engine_for = _engines(args)
    out = sys.stdout
    if args.jsonl:
        if args.sql not in (None, "-"):
            print("classify: --jsonl reads stdin; do not pass SQL text", file=sys.stderr)
            return 2
        any_block = False
        for line in sys.stdin:
            if not line.strip():
                continue
            record = _one_line(line, args.dialect, engine_for, orjson)
            any_block = any_block or record.get("verdict") != "allow"
            out.write(orjson.dumps(record).decode() + "\n")
        out.flush()
        return 1 if (args.exit_code and any_block) else 0

    sql = args.sql
    if sql is None or sql == "-":
        sql = sys.stdin.read()
    verdict = engine_for(args.dialect).classify(sql)
    out.write(orjson.dumps(verdict.to_dict()).decode() + "\n")
    out.flush()
    return 1 if (args.exit_code and not verdict.allowed) else 0


def _one_line(line: str, default_dialect: str, engine_for, orjson) -> dict:
    try:
        item = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return {"id": None, "error": f"line is not JSON: {exc}"}
    if not isinstance(item, dict):
        return {"id": None, "error": "line is not a JSON object"}
    ident = item.get("id")
    sql = item.get("sql")
    dialect = item.get("dialect") or default_dialect
    if not isinstance(sql, str):
        return {"id": ident, "error": "missing or non-string 'sql'"}
    if dialect not in _DIALECTS:
        return {"id": ident, "error": f"unknown dialect {dialect!r}; expected one of {_DIALECTS}"}
    try:
        verdict = engine_for(dialect).classify(sql)
    except Exception as exc:   # one bad entry must not stop a corpus run; report it
        return {"id": ident, "error": f"{type(exc).__name__}: {exc}"}
    return {"id": ident, **verdict.to_dict()}
