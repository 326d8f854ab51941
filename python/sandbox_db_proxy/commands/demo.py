"""`sandbox-db-proxy demo`: the proxy's main job with nothing installed by hand.

Starts an embedded PostgreSQL (the `pgserver` package ships one; it listens on a unix socket
in its data directory and runs as an unprivileged user even when started as root), loads a
sample schema, puts the proxy in front of it on 127.0.0.1:<port>, runs the guide's "Security
Verification" checks through the proxy with a real client, proves the database unchanged
(checksum taken on the server before and after), prints the results and a `psql` connection
string, and keeps serving until Ctrl-C (`--check-only`: exit after the checks, 0 = all
passed, 1 = a check failed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import warnings

HELP = "run the proxy in front of an embedded PostgreSQL with a sample schema and show it blocking writes"

log = logging.getLogger("sandbox_db_proxy.demo")

DEFAULT_PORT = 6543
AGENT_USER = "agent"
AGENT_PASSWORD = "agent-demo-password"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=None,
                        help=f"proxy port (default {DEFAULT_PORT}, or a free one if that is taken; 0 = any)")
    parser.add_argument("--host", default="127.0.0.1", help="proxy listen address (default 127.0.0.1)")
    parser.add_argument("--admin-port", type=int, default=None, help="admin HTTP port (default 8080 or a free one)")
    parser.add_argument("--data-dir", default=None,
                        help="keep the embedded database here (default: a temporary directory, deleted on exit)")
    parser.add_argument("--audit-path", default="volumes/audit-logs/audit.json",
                        help="audit log (default volumes/audit-logs/audit.json, as in the guide)")
    parser.add_argument("--check-only", action="store_true", help="exit after the checks (status 0/1)")
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def run(args: argparse.Namespace) -> int:
    from sandbox_db_proxy.commands.serve import setup_logging
    setup_logging(args.log_level)
    return run_demo(host=args.host, port=args.port, admin_port=args.admin_port, data_dir=args.data_dir,
                    audit_path=args.audit_path, check_only=args.check_only)


def _port_free(host: str, port: int) -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def _pick_port(host: str, wanted: int | None, default: int) -> int:
    if wanted is not None:
        return wanted  # explicit: use it (0 = OS-assigned) and fail loudly if taken
    return default if _port_free(host, default) else 0


def _make_data_dir(data_dir: str | None) -> tuple[str, bool]:
    """(directory, is_temporary)."""
    if data_dir is None:
        # Short path: the unix socket path must fit in sockaddr_un (107 bytes).
        return tempfile.mkdtemp(prefix="sdp-demo-", dir="/tmp"), True
    os.makedirs(data_dir, exist_ok=True)
    return data_dir, False


def _processes_using(data_dir: str) -> list[int]:
    """PIDs (other than ours) whose command line names the data directory: pg_ctl, the
    postmaster and its children started by pgserver."""
    me, found = os.getpid(), []
    needle = data_dir.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if needle in f.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def _stop_postmaster(data_dir: str) -> None:
    """Stop a PostgreSQL we started but whose handle we never got (SIGTERM arrived while
    pgserver was starting it). pg_ctl may still be about to launch the postmaster, so keep
    looking until nothing has used the directory for a moment: SIGINT = fast shutdown
    (PostgreSQL docs, "Shutting Down the Server"), SIGKILL for whatever is left after 5 s."""
    deadline = time.monotonic() + 10
    quiet_since = None
    while time.monotonic() < deadline:
        pids = _processes_using(data_dir)
        if not pids:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 0.5:
                return
        else:
            quiet_since = None
            sig = signal.SIGKILL if deadline - time.monotonic() < 5 else signal.SIGINT
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, sig)
        time.sleep(0.05)


def _start_pg(data_dir: str, temporary: bool):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset in containers
            import pgserver
    except ImportError:
        raise SystemExit("the demo needs the embedded PostgreSQL: pip install 'sandbox-db-proxy[demo]' "
                         "(package pgserver)") from None
    cleanup = "delete" if temporary else "stop"
    if os.geteuid() == 0:
        # pgserver runs postgres as its own `pgserver` user when started as root; it must be
        # able to enter the (root-owned, 0700) temporary directory.
        os.chmod(data_dir, 0o755)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset in containers
        return pgserver.get_server(data_dir, cleanup_mode=cleanup)


def _load_schema(srv) -> None:
    from sandbox_db_proxy.demo.schema import DATABASE, SCHEMA_SQL

    exists = srv.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}';")
    if "(1 row)" not in exists:
        srv.psql(f"CREATE DATABASE {DATABASE};")
        _psql_db(srv, DATABASE, SCHEMA_SQL)


def _psql_db(srv, dbname: str, sql: str) -> str:
    """pgserver's psql() only targets its default database; run ours with the bundled psql."""
    import subprocess

    from pgserver._commands import POSTGRES_BIN_PATH

    info = srv.get_postmaster_info()
    r = subprocess.run([str(POSTGRES_BIN_PATH / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                        "-h", str(info.socket_dir), "-p", str(info.port), "-U", srv.postgres_user, "-d", dbname,
                        "-c", sql], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"psql failed: {r.stderr.strip()}")
    return r.stdout.strip()


def _config_yaml(socket_dir: str, pg_port: int, host: str, port: int, admin_port: int, audit_path: str) -> str:
    from sandbox_db_proxy.demo.schema import DATABASE
    from sandbox_db_proxy.server.net import format_hostport

    return f"""
backends:
  - name: demo-pg
    type: postgres
    address: "{socket_dir}"
    port: {pg_port}
    username: postgres
    password: embedded-trust-auth
    database: {DATABASE}
    listen: "{format_hostport(host, port)}"
    backend_tls: {{mode: disable}}
agents:
  - name: demo-agent
    username: {AGENT_USER}
    password: {AGENT_PASSWORD}
admin:
  listen: "127.0.0.1:{admin_port}"
audit:
  path: "{audit_path}"
  flush_interval_ms: 100
"""


def run_demo(host: str = "127.0.0.1", port: int | None = None, admin_port: int | None = None,
             data_dir: str | None = None, audit_path: str = "volumes/audit-logs/audit.json",
             check_only: bool = False) -> int:
    import uvloop

    from sandbox_db_proxy.config import load_config_text
    from sandbox_db_proxy.demo.schema import CHECKSUM_SQL, DATABASE

    out = sys.stdout
    # Until the proxy's own handlers are installed, SIGTERM (docker stop) must still unwind
    # through the `finally` below, or the embedded PostgreSQL would outlive us.
    signal.signal(signal.SIGTERM, _interrupt)
    print("sandbox-db-proxy demo: starting an embedded PostgreSQL ...", file=out, flush=True)
    srv = None
    data_dir, temporary = _make_data_dir(data_dir)
    try:
        srv = _start_pg(data_dir, temporary)
        _load_schema(srv)
        info = srv.get_postmaster_info()
        version = _psql_db(srv, DATABASE, "SHOW server_version;")
        port = _pick_port(host, port, DEFAULT_PORT)
        admin_port = _pick_port("127.0.0.1", admin_port, 8080)
        config = load_config_text(_config_yaml(str(info.socket_dir), int(info.port), host, port, admin_port,
                                               audit_path), source="<demo>", env={})
        before = _psql_db(srv, DATABASE, CHECKSUM_SQL)

        async def main() -> int:
            from sandbox_db_proxy.server.app import ProxyApp

            app = ProxyApp(config)
            app.install_signal_handlers()
            await app.start()
            ok = app.backend_status.get("demo-pg", (False, ""))[0]
            if not ok:
                print(f"\nFAILED: the proxy could not serve the demo backend: "
                      f"{app.backend_status['demo-pg'][1]}", file=out, flush=True)
                await app.drain(0)
                return 1
            bound = app.bound_port("demo-pg")
            connect_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
            print(f"  embedded PostgreSQL {version} on unix socket {info.socket_dir}", file=out)
            print(f"  proxy listening on {host}:{bound}  (admin: http://{app.admin_address[0]}:"
                  f"{app.admin_address[1]}/metrics)", file=out, flush=True)
            results = await asyncio.get_running_loop().run_in_executor(
                None, _run_checks, connect_host, bound, srv)
            after = _psql_db(srv, DATABASE, CHECKSUM_SQL)
            passed = _report(results, before, after)
            url = f"postgresql://{AGENT_USER}:{AGENT_PASSWORD}@{connect_host}:{bound}/{DATABASE}?sslmode=disable"
            print(f"\nConnect through the proxy:\n  psql \"{url}\"", file=out)
            print(f"Audit log: {audit_path}   (grep BLOCKED {audit_path} | jq .)", file=out, flush=True)
            if check_only:
                await app.drain(1)
                return 0 if passed else 1
            print("Serving; press Ctrl-C to stop.", file=out, flush=True)
            await app.run_forever()
            return 0 if passed else 1

        try:
            return uvloop.run(main())
        except KeyboardInterrupt:
            return 0
    except KeyboardInterrupt:
        return 130  # interrupted while starting
    finally:
        if srv is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with contextlib.suppress(Exception):
                    srv.cleanup()
        if temporary:
            _stop_postmaster(data_dir)
            for _ in range(3):  # a postmaster exiting just now may still remove/write files
                shutil.rmtree(data_dir, ignore_errors=True)
                if not os.path.exists(data_dir):
                    break
                time.sleep(0.2)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _run_checks(host: str, port: int, srv):
    from sandbox_db_proxy.demo.checks import run_checks
    from sandbox_db_proxy.demo.schema import DATABASE

    try:
        from pgserver._commands import POSTGRES_BIN_PATH
        psql = str(POSTGRES_BIN_PATH / "psql")
    except ImportError:
        psql = "psql"
    try:
        return run_checks(host, port, AGENT_USER, AGENT_PASSWORD, DATABASE, psql_path=psql)
    except Exception as exc:  # noqa: BLE001 -- report any client failure as a failed demo
        return exc


def _report(results, before: str, after: str) -> bool:
    out = sys.stdout
    print("\nSecurity Verification (the guide's \"Test Read-Only Enforcement\", through the proxy):", file=out)
    if isinstance(results, Exception):
        print(f"  FAIL  could not run the checks: {type(results).__name__}: {results}", file=out)
        return False
    width = max(len(r.sql) for r in results)
    all_ok = True
    for r in results:
        verdict = "allowed" if r.allowed else "BLOCKED"
        mark = "PASS" if r.passed else "FAIL"
        want = "should work" if r.expect_allowed else "should be blocked"
        print(f"  {mark}  {r.sql:<{width}}  {verdict} ({want}): {r.detail}", file=out)
        all_ok = all_ok and r.passed
    same = before == after
    print(f"  {'PASS' if same else 'FAIL'}  database unchanged: checksum {before[:12]} before, {after[:12]} after",
          file=out)
    all_ok = all_ok and same
    n = len(results) + 1
    print(f"\nResult: {'all ' + str(n) + ' checks passed' if all_ok else 'SOME CHECKS FAILED'}.", file=out, flush=True)
    return all_ok
