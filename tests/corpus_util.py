"""The labelled bypass corpus (tests/corpus/*.jsonl) and the schema its reads run against.

Reused by the relay tests (PostgreSQL, MySQL) to push the whole corpus through live proxied
connections, so this module has no pytest dependency and no side effects on import.

Corpus format (tests/corpus/README.md): one JSON object per line with
`id`, `dialect` (postgres | mysql | tsql), `sql`, `label` (read | write), `technique`,
`source`, and an optional `note`.

    from corpus_util import load_corpus, apply_schema_pg
    writes = [e for e in load_corpus("postgres") if e["label"] == "write"]
    apply_schema_pg(pg_server, "relay_corpus_db")   # then connect through the proxy to it
"""

from __future__ import annotations

import json
import subprocess
from functools import lru_cache
from pathlib import Path

CORPUS_DIR = Path(__file__).parent / "corpus"
DIALECTS = ("postgres", "mysql", "tsql")
LABELS = ("read", "write")
REQUIRED_FIELDS = ("id", "dialect", "sql", "label", "technique", "source")


@lru_cache(maxsize=None)
def _load_file(dialect: str) -> tuple[dict, ...]:
    path = CORPUS_DIR / f"{dialect}.jsonl"
    entries = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path.name}:{lineno}: not JSON: {exc}") from exc
            missing = [k for k in REQUIRED_FIELDS if k not in entry]
            if missing:
                raise ValueError(f"{path.name}:{lineno}: missing {missing}")
            if entry["dialect"] != dialect:
                raise ValueError(f"{path.name}:{lineno}: dialect {entry['dialect']!r} in {dialect} file")
            if entry["label"] not in LABELS:
                raise ValueError(f"{path.name}:{lineno}: label {entry['label']!r}")
            entries.append(entry)
    return tuple(entries)


def load_corpus(dialect: str | None = None, label: str | None = None) -> list[dict]:
    """Corpus entries, in file order, as fresh dicts (callers may mutate them).

    dialect: one of DIALECTS, or None for all three files. label: "read", "write" or None.
    Raises ValueError on a malformed line, so a broken corpus fails loudly instead of
    silently shrinking the test."""
    dialects = DIALECTS if dialect is None else (dialect,)
    for d in dialects:
        if d not in DIALECTS:
            raise ValueError(f"unknown dialect {d!r}; expected one of {DIALECTS}")
    out = []
    for d in dialects:
        out.extend(dict(e) for e in _load_file(d) if label is None or e["label"] == label)
    return out


def schema_sql(dialect: str) -> str:
    """Text of tests/corpus/schema_<dialect>.sql (postgres or mysql; T-SQL has no server here)."""
    return (CORPUS_DIR / f"schema_{dialect}.sql").read_text(encoding="utf-8")


def apply_schema_pg(pg_server, dbname: str) -> None:
    """Create database `dbname` on the `pg_server` fixture and load schema_postgres.sql into it.

    Idempotent per session: an existing database of that name is dropped first, so choose a
    name unique to your test module (e.g. "corpus_relay_pg"). Runs as the superuser over the
    unix socket, outside any proxy."""
    if not dbname.replace("_", "").isalnum():
        raise ValueError(f"database name {dbname!r}: use letters, digits and _ only")
    try:
        pg_server.psql(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        pg_server.psql(f'CREATE DATABASE "{dbname}"')
        # One -c string = one simple Query = one implicit transaction: all or nothing.
        pg_server.psql(schema_sql("postgres"), dbname)
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"schema_postgres.sql failed: {exc.stderr}") from exc


def apply_schema_mysql(mariadb_server, dbname: str) -> None:
    """Create database `dbname` on the `mariadb_server` fixture and load schema_mysql.sql.

    Same contract as apply_schema_pg (drops an existing database of that name first). Uses the
    mariadb CLI as root over the socket: it handles the DELIMITER client command the schema
    needs for one compound function body."""
    if not dbname.replace("_", "").isalnum():
        raise ValueError(f"database name {dbname!r}: use letters, digits and _ only")
    mariadb_server.sql(f"DROP DATABASE IF EXISTS `{dbname}`; CREATE DATABASE `{dbname}` "
                       "CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
    cmd = ["mariadb", "--no-defaults", f"--socket={mariadb_server.socket}", "-uroot", "-N", "-B", dbname]
    done = subprocess.run(cmd, input=schema_sql("mysql"), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"schema_mysql.sql failed: {done.stderr}")
