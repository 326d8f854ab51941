"""`sandbox-db-proxy classify` (issue 2, "Interfaces"): one JSON verdict per SQL text,
--exit-code, and --jsonl for whole corpora (one output line per input line, same `id`, bad lines
reported and skipped over)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import orjson
import pytest

CLI = [sys.executable, "-m", "sandbox_db_proxy.cli", "classify"]


def run(*args, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), input=stdin, capture_output=True, text=True, timeout=120,
                          env={**os.environ})


def test_allow_prints_one_json_object():
    p = run("--dialect", "postgres", "SELECT 1")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 1
    d = orjson.loads(lines[0])
    assert d["verdict"] == "allow" and d["class"] == "read"
    assert d["statements"] == [{"verbs": ["SELECT"], "class": "read"}]
    assert {"verdict", "rule", "reason", "class", "statements"} <= set(d)


def test_block_and_exit_code():
    p = run("--dialect", "mysql", "DELETE FROM t")
    assert p.returncode == 0
    d = orjson.loads(p.stdout)
    assert d["verdict"] == "block" and d["rule"] == "write_statement" and "DELETE" in d["reason"]
    p = run("--exit-code", "--dialect", "mysql", "DELETE FROM t")
    assert p.returncode == 1 and orjson.loads(p.stdout)["verdict"] == "block"
    assert run("--exit-code", "SELECT 1").returncode == 0


def test_sql_from_stdin_and_blocked_command_flag():
    p = run("--dialect", "tsql", "-", stdin="EXEC('DROP TABLE t')")
    assert orjson.loads(p.stdout)["rule"] == "dynamic_sql"
    p = run("--blocked-command", "SELECT", "SELECT 1")
    assert orjson.loads(p.stdout)["rule"] == "blocked_command"


def test_jsonl_keeps_ids_and_survives_bad_lines():
    lines = [
        orjson.dumps({"id": "a", "dialect": "postgres", "sql": "SELECT 1"}).decode(),
        "this is not json",
        orjson.dumps({"id": 7, "dialect": "mysql", "sql": "SELECT SLEEP(1)"}).decode(),
        orjson.dumps({"id": "c", "dialect": "oracle", "sql": "SELECT 1"}).decode(),
        orjson.dumps({"id": "d", "dialect": "tsql"}).decode(),
        "",
        orjson.dumps({"id": "e", "sql": "DELETE FROM t"}).decode(),          # default dialect
        orjson.dumps(["not", "an", "object"]).decode(),
    ]
    p = run("--jsonl", stdin="\n".join(lines) + "\n")
    assert p.returncode == 0, p.stderr
    out = [orjson.loads(l) for l in p.stdout.splitlines()]
    assert len(out) == 7                                   # one per non-empty input line
    assert out[0]["id"] == "a" and out[0]["verdict"] == "allow"
    assert out[1]["id"] is None and "not JSON" in out[1]["error"]
    assert out[2]["id"] == 7 and out[2]["rule"] == "unsafe_function"
    assert out[3]["id"] == "c" and "dialect" in out[3]["error"]
    assert out[4]["id"] == "d" and "sql" in out[4]["error"]
    assert out[5]["id"] == "e" and out[5]["verdict"] == "block"
    assert out[6]["id"] is None and "error" in out[6]
    p = run("--jsonl", "--exit-code", stdin=lines[0] + "\n" + lines[2] + "\n")
    assert p.returncode == 1


@pytest.mark.skipif(shutil.which("sandbox-db-proxy") is None and
                    not os.path.exists(os.path.join(os.path.dirname(sys.executable), "sandbox-db-proxy")),
                    reason="console script not installed")
def test_console_script():
    exe = shutil.which("sandbox-db-proxy") or os.path.join(os.path.dirname(sys.executable), "sandbox-db-proxy")
    p = subprocess.run([exe, "classify", "--dialect", "postgres", "SELECT 1"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0 and orjson.loads(p.stdout)["verdict"] == "allow"
