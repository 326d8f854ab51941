"""The labelled bypass corpus through the verdict engine (issue 2, "Tests and figures").

- Zero writes may be allowed: every entry labelled "write" (tests/corpus/*.jsonl) must get
  verdict "block" from `sandbox_db_proxy.classify(sql, dialect)`. Labels come from what the SQL
  does on the real server (tests/corpus/README.md), never from what the engine answers.
- Reads: the false-block rate per dialect is printed and must stay under FALSE_BLOCK_BOUND.
  The reads are proven valid SQL on real servers by tests/test_corpus_live.py.
- The CLI (`sandbox-db-proxy classify --jsonl`) agrees with the Python API on every entry.
- The corpus itself keeps its shape: size, balance, unique ids, every bypass row covered.
"""

from __future__ import annotations

import collections
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from corpus_util import DIALECTS, load_corpus

# Upper bounds on blocked reads / all reads, per dialect. Set from what the engine achieves
# (see the measured figures in tests/corpus/README.md) with a little headroom: a rise means a
# regression that makes the proxy less useful to analysts. Security never loosens these: a
# write that is allowed fails test_no_write_is_allowed whatever the read figures are.
FALSE_BLOCK_BOUND = {"postgres": 0.05, "mysql": 0.05, "tsql": 0.08}

MIN_ENTRIES = {"postgres": 200, "mysql": 150, "tsql": 100}
TECHNIQUES = {
    "stacked", "comment", "exec_comment", "cte_write", "side_effect_function", "dynamic_sql",
    "prepared", "transaction_mode", "select_into", "copy", "lock", "ddl", "dml", "dcl", "admin",
    "session", "file_io", "dos", "info_leak", "analytic", "quoting",
}
# Rows of ../shared/notes/read-only-bypasses.md that apply to each dialect: each must have at
# least one write in the corpus (rows 15 MongoDB, 17 pg_readonly, 19 prompt injection do not
# apply to SQL text classification).
BYPASS_ROWS = {
    "postgres": {1, 2, 3, 5, 6, 9, 10, 11, 14, 16},
    "mysql": {2, 4, 5, 6, 7, 8, 14, 16, 18, 20},
    "tsql": {5, 6, 12, 13, 16, 20},
}
ID_RE = re.compile(r"^(pg|my|ts)-(r|w)-\d{3}$")
ID_PREFIX = {"postgres": "pg", "mysql": "my", "tsql": "ts"}


# --- the corpus itself ------------------------------------------------------------------------

def test_corpus_size_and_balance():
    entries = load_corpus()
    assert len(entries) >= 400
    by_dialect = collections.Counter(e["dialect"] for e in entries)
    for dialect, minimum in MIN_ENTRIES.items():
        assert by_dialect[dialect] >= minimum, (dialect, by_dialect[dialect])
    reads = sum(e["label"] == "read" for e in entries)
    # "about half reads and half writes" (issue 2)
    assert 0.35 <= reads / len(entries) <= 0.65, reads / len(entries)
    for dialect in DIALECTS:
        labels = collections.Counter(e["label"] for e in entries if e["dialect"] == dialect)
        assert labels["read"] >= 50 and labels["write"] >= 50, (dialect, labels)


def test_corpus_entries_well_formed():
    entries = load_corpus()
    ids = [e["id"] for e in entries]
    assert len(ids) == len(set(ids)), [i for i, n in collections.Counter(ids).items() if n > 1]
    for e in entries:
        m = ID_RE.match(e["id"])
        assert m, e["id"]
        assert m.group(1) == ID_PREFIX[e["dialect"]], e["id"]
        assert m.group(2) == e["label"][0], e["id"]
        assert e["technique"] in TECHNIQUES, (e["id"], e["technique"])
        assert e["sql"].strip(), e["id"]
        assert isinstance(e.get("note", ""), str), e["id"]


def test_corpus_has_no_duplicate_sql():
    for dialect in DIALECTS:
        seen: dict[str, str] = {}
        for e in load_corpus(dialect):
            assert e["sql"] not in seen, f"{e['id']} repeats {seen[e['sql']]}"
            seen[e["sql"]] = e["id"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_corpus_covers_every_bypass_row(dialect):
    rows = set()
    for e in load_corpus(dialect, label="write"):
        rows.update(int(n) for n in re.findall(r"bypasses\.md #(\d+)", e["source"]))
    missing = BYPASS_ROWS[dialect] - rows
    assert not missing, f"{dialect}: no write covers bypasses.md rows {sorted(missing)}"


def test_corpus_has_long_statements_for_the_benchmark():
    long_reads = [e for e in load_corpus(label="read") if len(e["sql"]) >= 1500]
    assert len(long_reads) >= 6
    assert {e["dialect"] for e in long_reads} == set(DIALECTS)


# --- the engine on the corpus ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def verdicts() -> dict[str, object]:
    """id -> Verdict (or the exception classify raised) for every corpus entry, computed once."""
    from sandbox_db_proxy import classify

    out: dict[str, object] = {}
    for e in load_corpus():
        try:
            out[e["id"]] = classify(e["sql"], e["dialect"])
        except Exception as exc:  # reported per entry by the tests below, never hidden
            out[e["id"]] = exc
    return out


def _describe(e: dict, v) -> str:
    sql = e["sql"].replace("\n", "\\n")
    sql = sql if len(sql) <= 90 else sql[:87] + "..."
    if isinstance(v, Exception):
        return f"{e['id']} [{e['technique']}] {sql!r}: classify raised {type(v).__name__}: {v}"
    return f"{e['id']} [{e['technique']}] {sql!r}: {v.verdict} rule={v.rule} class={v.klass}"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_no_write_is_allowed(dialect, verdicts):
    """Zero writes may be allowed (issue 2). An exception is a failure too: the engine's contract
    is a verdict for any text."""
    bad = []
    for e in load_corpus(dialect, label="write"):
        v = verdicts[e["id"]]
        if isinstance(v, Exception) or v.allowed:
            bad.append(_describe(e, v))
    assert not bad, f"{len(bad)} {dialect} writes not blocked:\n" + "\n".join(bad)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_blocked_writes_explain_themselves(dialect, verdicts):
    """A block carries a rule and a reason an agent can act on (issue 2, "The verdict engine")."""
    from sandbox_db_proxy.engine.verdict import CLASSES

    bad = []
    for e in load_corpus(dialect, label="write"):
        v = verdicts[e["id"]]
        if isinstance(v, Exception) or v.allowed:
            continue  # reported by test_no_write_is_allowed
        if not v.rule or len(v.reason) < 15 or v.klass not in CLASSES or v.klass == "read":
            bad.append(f"{_describe(e, v)} reason={v.reason!r}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_false_block_rate(dialect, verdicts, capsys):
    reads = load_corpus(dialect, label="read")
    blocked = [e for e in reads if isinstance(verdicts[e["id"]], Exception) or not verdicts[e["id"]].allowed]
    rate = len(blocked) / len(reads)
    with capsys.disabled():
        print(f"\n[corpus] {dialect}: {len(blocked)}/{len(reads)} reads blocked "
              f"(false-block rate {rate:.1%}, bound {FALSE_BLOCK_BOUND[dialect]:.0%})")
        for e in blocked:
            v = verdicts[e["id"]]
            reason = "" if isinstance(v, Exception) else f" reason={v.reason[:100]!r}"
            print(f"[corpus]   {_describe(e, v)}{reason}")
    assert rate <= FALSE_BLOCK_BOUND[dialect], \
        f"{dialect}: false-block rate {rate:.1%} above {FALSE_BLOCK_BOUND[dialect]:.0%}"


def test_cli_jsonl_agrees_with_api(verdicts):
    """`sandbox-db-proxy classify --jsonl` over the whole corpus in one process: one line per
    input, same id, same verdict, rule and class as the API."""
    entries = load_corpus()
    stdin = "".join(json.dumps({"id": e["id"], "dialect": e["dialect"], "sql": e["sql"]}) + "\n"
                    for e in entries)
    cli = Path(sys.executable).with_name("sandbox-db-proxy")
    cmd = [str(cli)] if cli.exists() else [sys.executable, "-m", "sandbox_db_proxy.cli"]
    done = subprocess.run(cmd + ["classify", "--jsonl"], input=stdin, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert [line.get("id") for line in lines] == [e["id"] for e in entries]
    disagree = []
    for e, line in zip(entries, lines):
        v = verdicts[e["id"]]
        if isinstance(v, Exception):
            continue  # reported by the API tests
        got = (line.get("verdict"), line.get("rule"), line.get("class"))
        if got != (v.verdict, v.rule, v.klass):
            disagree.append(f"{e['id']}: cli={got} api={(v.verdict, v.rule, v.klass)}")
    assert not disagree, "\n".join(disagree)
