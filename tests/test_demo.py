"""`sandbox-db-proxy demo` (the README's first command): embedded PostgreSQL (pgserver), the
proxy in front of it, the guide's "Security Verification" checks through a real client, the
database unchanged; then it keeps serving a working connection string until Ctrl-C.
Needs the PostgreSQL relay (server/postgres.py)."""

from __future__ import annotations

import glob
import importlib.util
import os
import re
import signal
import subprocess
import sys
import time

import orjson
import pytest

from proxy_harness import reap

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("sandbox_db_proxy.server.postgres") is None,
                       reason="the PostgreSQL relay (server/postgres.py) is not built yet"),
    pytest.mark.skipif(importlib.util.find_spec("pgserver") is None, reason="pgserver not installed"),
]

CLI = [sys.executable, "-m", "sandbox_db_proxy.cli"]
GUIDE = ("SELECT * FROM users LIMIT 10;", "INSERT INTO users (name) VALUES ('test');",
         "UPDATE users SET name = 'test' WHERE id = 1;", "DELETE FROM users WHERE id = 1;")


def lines_until(proc, marker: str, timeout: float = 120) -> list[str]:
    """The demo's stdout lines up to and including the first containing `marker` (or up to
    EOF / `timeout`)."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            break
    return seen


def test_demo_check_only(tmp_path):
    audit = tmp_path / "audit" / "audit.json"
    r = subprocess.run(CLI + ["demo", "--check-only", "--port", "0", "--admin-port", "0", "--audit-path", str(audit)],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    lines = out.splitlines()
    select = next(l for l in lines if GUIDE[0] in l)
    assert select.strip().startswith("PASS") and "allowed" in select and "10 rows" in select
    for sql in GUIDE[1:]:
        line = next(l for l in lines if sql in l)
        assert line.strip().startswith("PASS") and "BLOCKED" in line and "25006" in line, line
    assert re.search(r"PASS\s+database unchanged: checksum (\w+) before, \1 after", out)
    assert "Result: all" in out and "checks passed" in out
    assert 'psql "postgresql://agent:' in out
    blocked = [orjson.loads(l) for l in audit.read_bytes().splitlines() if b'"BLOCKED"' in l]
    texts = {rec["db.query.text"].strip().rstrip(";") for rec in blocked}
    for sql in GUIDE[1:]:
        assert sql.rstrip(";") in texts
    assert "BLOCKED-DB-WRITE" in r.stderr


def test_demo_keeps_serving_until_ctrl_c(tmp_path):
    psycopg = pytest.importorskip("psycopg")
    proc = subprocess.Popen(CLI + ["demo", "--port", "0", "--admin-port", "0",
                                   "--audit-path", str(tmp_path / "audit.json")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        url = None
        seen = lines_until(proc, "press Ctrl-C")
        for line in seen:
            m = re.search(r'psql "(postgresql://[^"]+)"', line)
            if m:
                url = m.group(1)
        assert url, "".join(seen) + proc.stderr.read() if proc.poll() is not None else "".join(seen)
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 25
            with pytest.raises(psycopg.Error) as e:
                conn.execute("DELETE FROM users")
            assert e.value.diag.sqlstate == "25006"
            assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 25
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        reap(proc)


def test_serve_test_mode_is_the_demo_and_stops_on_sigterm(tmp_path):
    """The guide's `docker run ... sandbox-db-proxy --test-mode` (ENTRYPOINT adds `serve`):
    the demo on all interfaces; `docker stop` (SIGTERM) ends it cleanly."""
    proc = subprocess.Popen(CLI + ["serve", "--test-mode", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, cwd=tmp_path)
    try:
        out = "".join(lines_until(proc, "press Ctrl-C"))
        assert "proxy listening on 0.0.0.0:" in out and "Result: all" in out, out
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        reap(proc)
    assert (tmp_path / "volumes" / "audit-logs" / "audit.json").exists()  # the guide's path, relative to cwd


def test_demo_without_psycopg_uses_bundled_psql(tmp_path):
    """The Docker image has no psycopg (a test dependency): the checks then run with the
    psql that ships inside pgserver, and must reach the same verdicts."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "psycopg.py").write_text("raise ImportError('psycopg hidden for this test')\n")
    env = {**os.environ, "PYTHONPATH": f"{hide}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    r = subprocess.run(CLI + ["demo", "--check-only", "--port", "0", "--admin-port", "0",
                              "--audit-path", str(tmp_path / "audit.json")],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    for sql in GUIDE[1:]:
        line = next(l for l in r.stdout.splitlines() if sql in l)
        assert line.strip().startswith("PASS") and "BLOCKED" in line and "[25006]" in line, line
    assert "Result: all" in r.stdout


def test_sigterm_while_starting_leaves_no_postgres_behind(tmp_path):
    """`docker stop` right after start: the embedded PostgreSQL must not outlive the demo."""
    before = set(glob.glob("/tmp/sdp-demo-*"))
    proc = subprocess.Popen(CLI + ["demo", "--port", "0", "--admin-port", "0", "--audit-path",
                                   str(tmp_path / "a.json")],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=tmp_path)
    try:
        assert "starting an embedded PostgreSQL" in proc.stdout.readline()
        time.sleep(0.5)  # somewhere inside pgserver's initdb/start
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    finally:
        reap(proc)
    new = set(glob.glob("/tmp/sdp-demo-*")) - before
    assert not new, f"left behind: {new}"
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    leftovers = [l for l in ps.splitlines() if "postgres -D /tmp/sdp-demo-" in l and
                 not any(d in l for d in before)]
    assert not leftovers, leftovers
