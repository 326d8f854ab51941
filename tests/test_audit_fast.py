"""The audit hot path (issue 6): `AuditLog.allowed()` builds the JSON line of an allowed
statement from pre-serialised pieces. It must write exactly what `AuditLog.statement()`
writes for the same arguments, whatever the text contains, and fall back to it for anything
unusual."""

from __future__ import annotations

import collections

import orjson
import pytest

from sandbox_db_proxy.audit import MAX_QUERY_CHARS, AuditLog, ConnContext
from sandbox_db_proxy.config import load_config_text
from sandbox_db_proxy.engine import Engine


def cfg(tmp_path, security: str = ""):
    return load_config_text(
        "backends: [{name: pg, type: postgres, address: h, username: u, password: p}]\n"
        f"audit: {{path: {tmp_path / 'audit.json'}, flush_records: 100000, flush_interval_ms: 60000}}\n"
        + (f"security: {{{security}}}\n" if security else ""), env={})


def ctx(**kw):
    c = ConnContext(backend="pg", db_system="postgresql", client_address="10.0.0.7", client_port=51234,
                    server_address="127.0.0.1", server_port=5432)
    if kw:
        c.update(**kw)
    return c


def written(log: AuditLog, tmp_path) -> list[dict]:
    log.close()
    with open(tmp_path / "audit.json", "rb") as f:
        return [orjson.loads(line) for line in f.read().splitlines()]


TEXTS = [
    "SELECT abalance FROM pgbench_accounts WHERE aid = 12345;",
    'SELECT \'a "quoted" \\\\ back\\slash\', E\'\\n\' AS "weird ""col"""',
    "SELECT 'line\nbreak\ttab\r\x01\x1f' -- BLOCKED-DB-WRITE forged\n",
    "SELECT '日本語', 'emoji 😀', '\u2028\u2029'",
    "SELECT '}' || '{' AS \"},{\"",
]


@pytest.mark.parametrize("rows,duration", [(1, 0.1234567), (0, 12.0), (None, 1.5), (3, None), (None, None)])
def test_allowed_line_equals_statement_record(tmp_path, rows, duration):
    eng = Engine("postgres")
    fast_dir, slow_dir = tmp_path / "fast", tmp_path / "slow"
    fast_dir.mkdir()
    slow_dir.mkdir()
    fast, slow = AuditLog(cfg(fast_dir)), AuditLog(cfg(slow_dir))
    c = ctx(agent="a1", database="bench")
    for sql in TEXTS:
        v = eng.classify(sql)
        assert v.allowed, sql
        for message in ("Query", "Execute", "COM_QUERY"):
            fast.allowed(c, sql, v, message, rows, duration)
            slow.statement(c, sql=sql, verdict=v, message=message, rows=rows, duration_ms=duration)
    a, b = written(fast, fast_dir), written(slow, slow_dir)
    assert len(a) == len(b) == len(TEXTS) * 3
    for x, y in zip(a, b):
        x.pop("ts"), y.pop("ts")
        assert x == y
        assert list(x) == list(y)       # same key order, too
    # the queue held finished lines, not dicts: one JSON object per line
    raw = (fast_dir / "audit.json").read_bytes()
    assert raw.count(b"\n") == len(a)


def test_fallbacks_match_statement(tmp_path):
    """Dict contexts, string verdicts, overlong texts and a replaced emit take statement()."""
    log = AuditLog(cfg(tmp_path))
    eng = Engine("postgres")
    v = eng.classify("SELECT 1")
    long_sql = "SELECT '" + "x" * (MAX_QUERY_CHARS + 10) + "'"
    log.allowed({"backend": "pg"}, "SELECT 1", v, "Query", 1, 1.0)
    log.allowed(ctx(), "SELECT 2", "ALLOWED", "Query", 1, 1.0)
    log.allowed(ctx(), long_sql, eng.classify(long_sql), "Query", 1, 1.0)
    captured = []
    log.emit = captured.append          # what the relay tests do to capture records
    log.allowed(ctx(), "SELECT 3", v, "Query", 2, 0.5)
    del log.emit
    recs = written(log, tmp_path)
    assert recs[0]["backend"] == "pg" and recs[0]["db.query.text"] == "SELECT 1" and recs[0]["class"] == "read"
    assert recs[1]["verdict"] == "ALLOWED" and "rule" not in recs[1] and recs[1]["db.query.text"] == "SELECT 2"
    assert recs[2]["db.query.text.truncated"] is True and recs[2]["db.query.length"] == len(long_sql)
    assert len(recs[2]["db.query.text"]) == MAX_QUERY_CHARS
    assert [r["db.query.text"] for r in captured] == ["SELECT 3"] and captured[0]["rows"] == 2


def test_blocked_verdict_is_never_written_as_allowed(tmp_path, caplog):
    log = AuditLog(cfg(tmp_path))
    v = Engine("postgres").classify("DELETE FROM t")
    assert not v.allowed
    log.allowed(ctx(), "DELETE FROM t", v, "Query", 0, 1.0)
    (rec,) = written(log, tmp_path)
    assert rec["verdict"] == "BLOCKED" and rec["rule"] == "write_statement"
    assert any("BLOCKED-DB-WRITE" in r.getMessage() for r in caplog.records)


def test_context_update_refreshes_the_cached_fields(tmp_path):
    log = AuditLog(cfg(tmp_path))
    v = Engine("postgres").classify("SELECT 1")
    c = ctx()
    log.allowed(c, "SELECT 1", v, "Query", 1, 1.0)
    c.update(agent="a2", database="other")
    log.allowed(c, "SELECT 1", v, "Query", 1, 1.0)
    a, b = written(log, tmp_path)
    assert "agent" not in a and b["agent"] == "a2" and b["db.namespace"] == "other"


def test_session_observer_and_disabled_file(tmp_path):
    log = AuditLog(cfg(tmp_path, security="audit_enabled: false"))
    seen = []
    log.session_observer = seen.append
    v = Engine("postgres").classify("SELECT 1")
    log.allowed(ctx(), "SELECT 1", v, "Query", 1, 1.0)             # no session: not observed
    log.allowed(ctx(session_id="s-9"), "SELECT 1", v, "Query", 1, 1.0)
    log.close()
    assert seen == [{"session.id": "s-9", "verdict": "ALLOWED"}]
    assert not (tmp_path / "audit.json").exists()


def test_queue_bound_counts_drops(tmp_path):
    log = AuditLog(cfg(tmp_path))
    log.queue_size = 3
    v = Engine("postgres").classify("SELECT 1")
    for i in range(5):
        log.allowed(ctx(), f"SELECT {i}", v, "Query", 1, 1.0)
    assert log.queue_depth == 3 and log.dropped == 2
    assert [r["db.query.text"] for r in written(log, tmp_path)] == ["SELECT 0", "SELECT 1", "SELECT 2"]


def test_unserialisable_record_does_not_poison_the_batch(tmp_path):
    """A dict record orjson refuses (lone surrogate, non-str key) is scrubbed, and the
    records around it are still written; the log stays healthy."""
    log = AuditLog(cfg(tmp_path))
    log.emit({"event": "alert", "n": 1})
    log.emit({"event": "alert", "n": 2, "reason": "bad \udc80 surrogate", 7: "int key"})
    log.allowed(ctx(), "SELECT '\udc81'", Engine("postgres").classify("SELECT 1"), "Query", 1, 1.0)
    log.emit({"event": "alert", "n": 3})
    assert log.flush()
    recs = written(log, tmp_path)
    assert [r.get("n") for r in recs] == [1, 2, None, 3]
    assert recs[1]["reason"] == "bad \\udc80 surrogate" and recs[1]["7"] == "int key"
    assert recs[2]["db.query.text"] == "SELECT '\\udc81'"
    assert log.healthy


def test_fragment_cache_is_bounded_and_identity_checked(tmp_path):
    log = AuditLog(cfg(tmp_path))
    eng = Engine("postgres", cache_size=0)     # a new Verdict object per call
    for i in range(5000):
        sql = f"SELECT {i} AS c{i}"
        log.allowed(ctx(), sql, eng.classify(sql), "Query", 1, 1.0)
    assert len(log._frag) <= 4096
    recs = written(log, tmp_path)
    assert len(recs) == 5000 and collections.Counter(r["class"] for r in recs) == {"read": 5000}


def test_duration_and_timestamp_match_the_generic_record():
    """`%.3f` and the per-millisecond timestamp cache give the values round(x, 3) and
    rfc3339_now() give, for awkward values too."""
    import random
    import time as _time

    from sandbox_db_proxy import audit as audit_mod
    rnd = random.Random(3)
    values = [0.0, 0.0005, 0.0015, 2.675, 1.0005, 999.9995, 1e-9, 123456.7894999] + \
             [rnd.uniform(0, 5) for _ in range(2000)] + [rnd.uniform(0, 1e5) for _ in range(500)]
    frag = (None, b'"verdict":"ALLOWED",', b"")
    for x in values:
        line = audit_mod._allowed_line((1.0, b"", frag, "q", 1, x))
        assert orjson.loads(line)["duration_ms"] == round(x, 3), x
    now = _time.time()
    for t in [now + i / 3000 for i in range(3000)] + [1700000000.9995, 1700000000.0, 1700000001.0004]:
        got = audit_mod._ts_bytes(t).decode()
        sec = int(t)
        expect = _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(sec)) + f".{int((t - sec) * 1000):03d}Z"
        assert got == expect or abs(t * 1000 - round(t * 1000)) < 1e-3, (t, got, expect)
