"""Audit log: batched JSON lines, OTel field names, BLOCKED-DB-WRITE on stderr/syslog,
bounded queue with counted drops, fail-closed health, monitor mode, flush on close."""

from __future__ import annotations

import collections
import logging
import logging.handlers
import os
import re
import socket
import time

import orjson

from sandbox_db_proxy import audit as audit_mod
from sandbox_db_proxy.audit import AuditLog, ConnContext, new_connection_id, rfc3339_now
from sandbox_db_proxy.config import load_config_text
from sandbox_db_proxy.metrics import Metrics

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def cfg(tmp_path, **audit):
    security = audit.pop("security", "")
    opts = ", ".join(f"{k}: {v}" for k, v in {"path": str(tmp_path / "logs" / "audit.json"), **audit}.items())
    return load_config_text(
        "backends: [{name: pg, type: postgres, address: h, username: u, password: p}]\n"
        f"audit: {{{opts}}}\n" + (f"security: {{{security}}}\n" if security else ""), env={})


def read(path) -> list[dict]:
    with open(path, "rb") as f:
        return [orjson.loads(line) for line in f.read().splitlines()]


Stmt = collections.namedtuple("Stmt", "verbs klass")


class FakeVerdict:
    """Shaped like sandbox_db_proxy.engine.Verdict (docs/ARCHITECTURE.md "Engine")."""

    def __init__(self, allowed, rule, reason, klass, verbs):
        self.allowed = allowed
        self.verdict = "allow" if allowed else "block"
        self.rule, self.reason, self.klass = rule, reason, klass
        self.statements = (Stmt(tuple(verbs), klass),)


def ctx():
    return ConnContext(backend="pg", db_system="postgresql", client_address="10.0.0.7", client_port=51234,
                       server_address="127.0.0.1", server_port=5432)


def test_records_fields_and_batching(tmp_path):
    c = cfg(tmp_path)
    log = AuditLog(c)
    log.start()
    try:
        x = ctx()
        log.event(x, "connect")
        x.update(agent="a1", database="shop", session_id="s-1")
        log.event(x, "auth_ok")
        log.statement(x, sql="SELECT * FROM users LIMIT 10", message="Q", rows=10, duration_ms=1.23456,
                      verdict=FakeVerdict(True, "read", "plain read", "read", ("SELECT",)))
        log.statement(x, sql="INSERT INTO users (name) VALUES ('test')", message="Q",
                      verdict=FakeVerdict(False, "dml-insert", "INSERT writes data; use SELECT", "write", ("INSERT",)))
        assert log.flush()
    finally:
        log.close()
    path = tmp_path / "logs" / "audit.json"  # directory created by the writer
    recs = read(path)
    assert [r["event"] for r in recs] == ["connect", "auth_ok", "statement", "statement"]
    for r in recs:
        assert TS.match(r["ts"]), r["ts"]
        assert r["backend"] == "pg" and r["db.system.name"] == "postgresql"
        assert r["client.address"] == "10.0.0.7" and r["client.port"] == 51234
        assert r["server.address"] == "127.0.0.1" and r["server.port"] == 5432
        assert r["connection.id"] == x.connection_id
    assert "agent" not in recs[0] and recs[1]["agent"] == "a1" and recs[1]["session.id"] == "s-1"
    allowed, blocked = recs[2], recs[3]
    assert allowed["verdict"] == "ALLOWED" and allowed["class"] == "read" and allowed["rows"] == 10
    assert allowed["duration_ms"] == 1.235 and allowed["db.operation.name"] == "SELECT"
    assert allowed["db.query.text"] == "SELECT * FROM users LIMIT 10" and allowed["db.namespace"] == "shop"
    assert allowed["protocol.message"] == "Q" and "reason" not in allowed
    assert blocked["verdict"] == "BLOCKED" and blocked["rule"] == "dml-insert" and blocked["class"] == "write"
    assert blocked["reason"] == "INSERT writes data; use SELECT" and blocked["db.operation.name"] == "INSERT"
    # the guide's `grep "BLOCKED" volumes/audit-logs/audit.json` finds exactly the blocked line
    lines = path.read_bytes().splitlines()
    assert [orjson.loads(line)["db.query.text"] for line in lines if b"BLOCKED" in line] == [
        "INSERT INTO users (name) VALUES ('test')"]
    assert oct(os.stat(path).st_mode & 0o777) == "0o640"


def test_flush_by_record_count_without_explicit_flush(tmp_path):
    log = AuditLog(cfg(tmp_path, flush_records=5, flush_interval_ms=60000))
    log.start()
    try:
        for i in range(5):
            log.event(None, "alert", n=i)
        path = tmp_path / "logs" / "audit.json"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (path.exists() and len(read(path)) == 5):
            time.sleep(0.01)
        assert [r["n"] for r in read(path)] == [0, 1, 2, 3, 4]
    finally:
        log.close()


def test_flush_by_interval(tmp_path):
    log = AuditLog(cfg(tmp_path, flush_records=1000, flush_interval_ms=20))
    log.start()
    try:
        log.event(None, "alert", n=1)
        path = tmp_path / "logs" / "audit.json"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (path.exists() and read(path)):
            time.sleep(0.01)
        assert [r["n"] for r in read(path)] == [1]
    finally:
        log.close()


def test_close_flushes_everything(tmp_path):
    log = AuditLog(cfg(tmp_path, flush_records=100000, flush_interval_ms=60000))
    log.start()
    for i in range(1000):
        log.event(None, "alert", n=i)
    log.close()
    assert [r["n"] for r in read(tmp_path / "logs" / "audit.json")] == list(range(1000))


def test_blocked_line_on_stderr_logger(tmp_path, caplog):
    log = AuditLog(cfg(tmp_path))
    x = ctx()
    x.update(agent="a1")
    with caplog.at_level(logging.WARNING, logger="sandbox_db_proxy.blocked"):
        log.statement(x, sql="DELETE FROM users WHERE id = 1\nBLOCKED-DB-WRITE forged", message="Q",
                      verdict="BLOCKED", rule="dml-delete", reason="DELETE modifies data", klass="write")
        log.statement(x, sql="SELECT 1", verdict="ALLOWED", klass="read")
    lines = [r.getMessage() for r in caplog.records if r.name == "sandbox_db_proxy.blocked"]
    assert len(lines) == 1
    (line,) = lines
    assert line.startswith("BLOCKED-DB-WRITE ") and "\n" not in line
    assert line.count("BLOCKED-DB-WRITE") == 2  # the forged text stays inside the quoted excerpt
    assert 'sql="DELETE FROM users WHERE id = 1\\nBLOCKED-DB-WRITE forged"' in line
    assert "backend=pg agent=a1" in line and "rule=dml-delete" in line and "client=10.0.0.7:51234" in line
    log.close()


def test_audit_disabled_writes_no_file_but_still_logs(tmp_path, caplog):
    log = AuditLog(cfg(tmp_path, security="audit_enabled: false"))
    log.start()
    with caplog.at_level(logging.WARNING, logger="sandbox_db_proxy.blocked"):
        log.statement(ctx(), sql="DROP TABLE users", verdict="BLOCKED", rule="ddl", klass="ddl")
        log.event(ctx(), "connect")
    log.close()
    assert not (tmp_path / "logs" / "audit.json").exists()
    assert any("BLOCKED-DB-WRITE" in r.getMessage() for r in caplog.records)


def test_monitor_mode_records_would_block(tmp_path, caplog):
    log = AuditLog(cfg(tmp_path, security="enforce_read_only: false"))
    with caplog.at_level(logging.WARNING, logger="sandbox_db_proxy.blocked"):
        rec = log.statement(ctx(), sql="UPDATE users SET name = 'x'", message="Q",
                            verdict=FakeVerdict(False, "dml-update", "UPDATE modifies data", "write", ("UPDATE",)))
        held = log.statement(ctx(), sql=None, message="F", verdict="BLOCKED", rule="function-call",
                             monitor=False)  # a protocol-level refusal that holds in monitor mode
    assert rec["verdict"] == "ALLOWED" and rec["monitor"] is True and rec["would_verdict"] == "BLOCKED"
    assert rec["reason"] == "UPDATE modifies data"
    assert held["verdict"] == "BLOCKED" and "monitor" not in held
    msgs = [r.getMessage() for r in caplog.records]
    assert msgs[0].startswith("MONITOR-MODE-WOULD-BLOCK-DB-WRITE") and "BLOCKED-DB-WRITE" not in msgs[0]
    assert msgs[1].startswith("BLOCKED-DB-WRITE")
    log.close()


def test_queue_overflow_drops_and_counts(tmp_path):
    m = Metrics()
    log = AuditLog(cfg(tmp_path, queue_size=10, flush_records=1000), m)  # writer not started
    for i in range(25):
        log.emit({"event": "alert", "n": i})
    assert log.queue_depth == 10 and log.dropped == 15
    text = m.render().decode()
    assert "sandbox_db_proxy_audit_dropped_total 15.0" in text
    assert "sandbox_db_proxy_audit_queue_depth 10.0" in text
    log.close()
    assert [r["n"] for r in read(tmp_path / "logs" / "audit.json")] == list(range(10))  # oldest kept


def test_write_failure_marks_unhealthy_and_fail_closed_refuses(tmp_path):
    blocker = tmp_path / "logs"
    blocker.write_text("a file where the audit directory should be")
    m = Metrics()
    log = AuditLog(cfg(tmp_path, fail_closed="true"), m)
    assert log.check_writable() is False
    assert not log.healthy and log.refuse
    log.start()
    log.event(None, "alert", n=1)
    assert log.flush() is False
    assert not log.healthy and log.refuse and log.queue_depth == 1  # kept for the next attempt
    assert "sandbox_db_proxy_audit_write_errors_total 1.0" in m.render().decode()
    blocker.unlink()  # the disk comes back
    log.event(None, "alert", n=2)
    assert log.flush() is True
    assert log.healthy and not log.refuse
    log.close()
    assert [r["n"] for r in read(tmp_path / "logs" / "audit.json")] == [1, 2]


def test_fail_open_never_refuses(tmp_path):
    (tmp_path / "logs").write_text("x")
    log = AuditLog(cfg(tmp_path))
    assert log.check_writable() is False
    assert not log.healthy and not log.refuse
    log.close()


def test_reopens_after_logrotate(tmp_path):
    log = AuditLog(cfg(tmp_path))
    log.start()
    path = tmp_path / "logs" / "audit.json"
    log.event(None, "alert", n=1)
    log.flush()
    os.rename(path, tmp_path / "logs" / "audit.json.1")
    log.event(None, "alert", n=2)
    log.flush()
    log.close()
    assert [r["n"] for r in read(tmp_path / "logs" / "audit.json.1")] == [1]
    assert [r["n"] for r in read(path)] == [2]


def test_long_statement_truncated(tmp_path):
    log = AuditLog(cfg(tmp_path))
    rec = log.statement(ctx(), sql="SELECT '" + "x" * 100000 + "'", verdict="ALLOWED")
    assert len(rec["db.query.text"]) == audit_mod.MAX_QUERY_CHARS
    assert rec["db.query.text.truncated"] is True and rec["db.query.length"] == 100009
    log.close()


def test_syslog(tmp_path, monkeypatch):
    sock_path = str(tmp_path / "syslog.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(sock_path)
    srv.settimeout(5)
    monkeypatch.setattr(audit_mod, "_syslog_address", lambda: sock_path)
    log = AuditLog(cfg(tmp_path, syslog="true"))
    try:
        log.statement(ctx(), sql="TRUNCATE users", verdict="BLOCKED", rule="ddl-truncate", klass="ddl")
        data = srv.recv(65536).decode()
        assert "sandbox-db-proxy: BLOCKED-DB-WRITE" in data and "TRUNCATE users" in data
        # facility daemon (3) * 8 + severity warning (4), RFC 5424 section 6.2.1 PRI; Debian's
        # rsyslog routes daemon (not auth) to /var/log/syslog, where the guide greps for it
        assert data.startswith("<28>")
    finally:
        log.close()
        srv.close()
    assert not [h for h in logging.getLogger("sandbox_db_proxy.blocked").handlers
                if isinstance(h, logging.handlers.SysLogHandler)]


def test_ids_and_timestamps_are_cheap_and_unique():
    ids = {new_connection_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert TS.match(rfc3339_now())
    now = time.strftime("%Y-%m-%dT%H", time.gmtime())
    assert rfc3339_now().startswith(now[:10])




def test_session_observer_sees_session_statements(tmp_path):
    log = AuditLog(cfg(tmp_path, security="audit_enabled: false"))  # counted even without the file
    seen = []
    log.session_observer = seen.append
    x = ctx()
    log.statement(x, sql="SELECT 1", verdict="ALLOWED")            # static login: no session id
    x.update(session_id="s-42")
    log.statement(x, sql="DELETE FROM t", verdict="BLOCKED", rule="w", klass="write")

    def boom(rec):
        raise RuntimeError("observer bug")

    log.session_observer = boom
    rec = log.statement(x, sql="SELECT 2", verdict="ALLOWED")        # must not raise
    assert [(r["session.id"], r["verdict"]) for r in seen] == [("s-42", "BLOCKED")]
    assert rec["verdict"] == "ALLOWED"
    log.close()
