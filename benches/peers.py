"""The things a benchmark compares: the database itself, sandbox-db-proxy, and the forwarders
users already run (PgBouncer in session mode, HAProxy in TCP mode). Each peer is a real
process started here and stopped at the end; `pid` lets the harness read its CPU time."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from servers import free_port, wait_port  # noqa: E402


@dataclass
class Peer:
    name: str
    host: str
    port: int
    proc: subprocess.Popen | None = None
    workdir: Path | None = None
    extra: dict = field(default_factory=dict)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def cpu_seconds(self) -> float:
        """utime + stime of the peer process (and its threads) from /proc, in seconds."""
        return sum(self.cpu_split())

    def cpu_split(self) -> tuple[float, float]:
        """(utime, stime) of the peer process (and its threads) from /proc, in seconds: the
        user-space part is what the peer's own code costs, the rest is mostly socket work."""
        if not self.proc:
            return (0.0, 0.0)
        pid = self.extra.get("real_pid", self.proc.pid)  # runuser forks the real server
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) / ticks, int(fields[12]) / ticks)

    def rss_bytes(self) -> int:
        if not self.proc:
            return 0
        pid = self.extra.get("real_pid", self.proc.pid)
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _workdir(prefix: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    d.chmod(0o755)
    return d


def start_haproxy(target_host: str, target_port: int, name: str = "haproxy") -> Peer:
    """HAProxy in plain TCP mode: the cheapest forwarder there is, parses nothing."""
    d = _workdir("sdp-haproxy-")
    port = free_port()
    cfg = d / "haproxy.cfg"
    cfg.write_text(f"""global
    maxconn 4096
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend fe
    bind 127.0.0.1:{port}
    default_backend be
backend be
    server db {target_host}:{target_port}
""")
    proc = subprocess.Popen(["haproxy", "-f", str(cfg), "-db"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_port("127.0.0.1", port)
    return Peer(name, "127.0.0.1", port, proc, d)


def start_pgbouncer(pg_host: str, pg_port: int, user: str, password: str, dbname: str) -> Peer:
    """PgBouncer in session mode (one server connection per client, like the proxy)."""
    d = _workdir("sdp-pgbouncer-")
    port = free_port()
    (d / "userlist.txt").write_text(f'"{user}" "{password}"\n')
    (d / "pgbouncer.ini").write_text(f"""[databases]
{dbname} = host={pg_host} port={pg_port} dbname={dbname}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {d}/userlist.txt
pool_mode = session
max_client_conn = 2000
default_pool_size = 1100
max_db_connections = 1100
ignore_startup_parameters = extra_float_digits,options
logfile = {d}/pgbouncer.log
pidfile = {d}/pgbouncer.pid
""")
    shutil.chown(d, "postgres", "postgres")
    for f in d.iterdir():
        shutil.chown(f, "postgres", "postgres")
    # PgBouncer refuses to run as root.
    # runuser applies PAM limits (soft nofile 1,024): raise it to the hard limit inside, or
    # 1,000 clients plus their server connections do not fit.
    proc = subprocess.Popen(["runuser", "-u", "postgres", "--", "sh", "-c",
                             'ulimit -n "$(ulimit -H -n)"; exec pgbouncer "$0"', str(d / "pgbouncer.ini")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port("127.0.0.1", port)
    peer = Peer("pgbouncer", "127.0.0.1", port, proc, d)
    # runuser forks: measure the pgbouncer process itself.
    time.sleep(0.2)
    out = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    if out:
        peer.extra["real_pid"] = int(out[0])
    return peer


def start_proxy(backends: list[dict], extra_yaml: str = "", name: str = "sandbox-db-proxy",
                python_path: str | None = None) -> Peer:
    """sandbox-db-proxy with classification and audit switched on (the real configuration).
    `python_path`: run the package from another source tree (benches/ab_proxy.py: before/after)."""
    d = _workdir("sdp-proxy-")
    admin_port = free_port()
    lines = ["backends:"]
    for b in backends:
        lines.append(f"  - name: {b['name']}")
        for key in ("type", "address", "port", "username", "password", "database", "listen"):
            if key in b:
                lines.append(f"    {key}: {b[key]!r}" if isinstance(b[key], str) else f"    {key}: {b[key]}")
    lines += ["security:", "  enforce_read_only: true", "  audit_enabled: true",
              "admin:", f"  listen: \"127.0.0.1:{admin_port}\"",
              "audit:", f"  path: {d}/audit.json"]
    cfg = d / "config.yaml"
    cfg.write_text("\n".join(lines) + "\n" + extra_yaml)
    exe = Path(sys.executable).parent / "sandbox-db-proxy"
    env = dict(os.environ, PYTHONPATH=python_path) if python_path else None
    proc = subprocess.Popen([str(exe), "serve", "--config", str(cfg)], env=env, cwd=str(d),
                            stdout=open(d / "stdout.log", "w"), stderr=open(d / "stderr.log", "w"))
    for b in backends:
        host, port = b["listen"].rsplit(":", 1)
        wait_port(host, int(port))
    peer = Peer(name, "127.0.0.1", int(backends[0]["listen"].rsplit(":", 1)[1]), proc, d)
    peer.extra["admin_port"] = admin_port
    return peer


def start_bare_forwarder(target_host: str, target_port: int, name: str = "uvloop-forwarder") -> Peer:
    """The floor for any Python proxy: uvloop Protocols forwarding bytes, parsing nothing
    (benches/bare_forwarder.py). Same interpreter and event loop as sandbox-db-proxy."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve().parent / "bare_forwarder.py"),
                             str(port), target_host, str(target_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port("127.0.0.1", port)
    return Peer(name, "127.0.0.1", port, proc)
