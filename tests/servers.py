"""Real database servers for the test suite (see ../shared/notes/test-servers.md).

PostgreSQL 15 and MariaDB 10.11 from Debian, started once per test session in throwaway
directories under /tmp on free loopback ports, and stopped at the end. Tests never mock
a server that can be had for real here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PG_PASSWORD = "secret"
MARIADB_USER = "app"
MARIADB_PASSWORD = "secret"


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(host: str, port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{host}:{port} did not open within {timeout}s")


@dataclass
class PgServer:
    """A PostgreSQL 15 cluster: superuser `postgres` / `secret`, SCRAM over TCP."""

    root: Path
    host: str = "127.0.0.1"
    port: int = 0
    user: str = "postgres"
    password: str = PG_PASSWORD
    dbname: str = "postgres"
    extra_conf: str = ""  # appended to postgresql.conf (later lines win)
    bindir: Path = field(default_factory=lambda: Path(
        subprocess.check_output(["pg_config", "--bindir"], text=True).strip()))

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> str:
        return str(self.root)

    def dsn(self, dbname: str | None = None, user: str | None = None, password: str | None = None) -> str:
        return (f"host={self.host} port={self.port} dbname={dbname or self.dbname} "
                f"user={user or self.user} password={password or self.password}")

    def url(self, dbname: str | None = None) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{dbname or self.dbname}"

    def _as_postgres(self, *cmd: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(["runuser", "-u", "postgres", "--", *cmd], check=True, **kw)

    def start(self) -> "PgServer":
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        (self.root / "pw").write_text(self.password + "\n")
        shutil.chown(self.root, "postgres", "postgres")
        shutil.chown(self.root / "pw", "postgres", "postgres")
        self.port = self.port or free_port()
        self._as_postgres(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                          f"--pwfile={self.root / 'pw'}", "--auth-local=trust",
                          "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8",
                          stdout=subprocess.DEVNULL)
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(f"listen_addresses='127.0.0.1'\nport={self.port}\n"
                    f"unix_socket_directories='{self.root}'\nfsync=off\n"
                    "max_connections=300\nshared_buffers=128MB\n" + self.extra_conf)
        self.pg_ctl("start")
        return self

    def pg_ctl(self, action: str) -> None:
        self._as_postgres(str(self.bindir / "pg_ctl"), "-D", str(self.data),
                          "-l", str(self.root / "server.log"), "-w", action,
                          stdout=subprocess.DEVNULL)

    def add_hba(self, line: str) -> None:
        """Prepend a pg_hba.conf line (first match wins) and reload."""
        hba = self.data / "pg_hba.conf"
        hba.write_text(line.rstrip() + "\n" + hba.read_text())
        self.pg_ctl("reload")

    def psql(self, sql: str, dbname: str | None = None, *extra: str) -> str:
        """Run SQL as the superuser over the unix socket; returns unaligned output."""
        out = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                              "-h", self.socket_dir, "-p", str(self.port), "-U", "postgres",
                              "-d", dbname or self.dbname, *extra, "-c", sql],
                             check=True, capture_output=True, text=True)
        return out.stdout

    def checksum(self, dbname: str | None = None) -> str:
        """A digest of everything an agent could change: schema and data (pg_dump) plus
        roles and settings. Compare before/after to prove a blocked write changed nothing."""
        dump = subprocess.run(["pg_dump", "-h", self.socket_dir, "-p", str(self.port), "-U", "postgres",
                               "--no-owner", dbname or self.dbname],
                              check=True, capture_output=True).stdout
        # pg_dump >= 15.14 writes a random \restrict key per run: not part of the database.
        dump = b"\n".join(l for l in dump.splitlines() if not l.startswith((b"\\restrict", b"\\unrestrict")))
        roles = self.psql("SELECT rolname, rolsuper, rolcanlogin FROM pg_roles ORDER BY 1")
        dbs = self.psql("SELECT datname FROM pg_database ORDER BY 1")
        import hashlib
        return hashlib.sha256(dump + roles.encode() + dbs.encode()).hexdigest()

    def stop(self) -> None:
        pid_file = self.data / "postmaster.pid"
        if pid_file.exists():
            with contextlib.suppress(Exception):
                self.pg_ctl("stop")
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class MariaDbServer:
    """A MariaDB 10.11 server: root over the socket (no password), `app`/`secret` over TCP
    with ALL PRIVILEGES (so that the proxy, not the grants, is what stops writes)."""

    root: Path
    host: str = "127.0.0.1"
    port: int = 0
    user: str = MARIADB_USER
    password: str = MARIADB_PASSWORD
    proc: subprocess.Popen | None = None

    @property
    def socket(self) -> str:
        return str(self.root / "sock")

    def start(self) -> "MariaDbServer":
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        self.port = self.port or free_port()
        subprocess.run(["mariadb-install-db", "--no-defaults", "--user=root", f"--datadir={self.root / 'data'}",
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.proc = subprocess.Popen(
            ["mariadbd", "--no-defaults", "--user=root", f"--datadir={self.root / 'data'}",
             f"--socket={self.socket}", f"--port={self.port}", "--bind-address=127.0.0.1",
             f"--pid-file={self.root / 'pid'}", f"--log-error={self.root / 'err.log'}",
             "--skip-name-resolve", "--max-connections=500", "--innodb-flush-log-at-trx-commit=0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while subprocess.run(["mariadb-admin", "--no-defaults", f"--socket={self.socket}", "-uroot", "ping"],
                             capture_output=True).returncode != 0:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("mariadbd did not start: " + (self.root / "err.log").read_text()[-2000:])
            time.sleep(0.1)
        self.sql(f"CREATE USER '{self.user}'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('{self.password}');"
                 f"GRANT ALL PRIVILEGES ON *.* TO '{self.user}'@'%' WITH GRANT OPTION; FLUSH PRIVILEGES;")
        return self

    def sql(self, sql: str, database: str | None = None) -> str:
        """Run SQL as root over the socket; tab-separated output without headers."""
        cmd = ["mariadb", "--no-defaults", f"--socket={self.socket}", "-uroot", "-N", "-B"]
        if database:
            cmd.append(database)
        out = subprocess.run(cmd + ["-e", sql], check=True, capture_output=True, text=True)
        return out.stdout

    def checksum(self, database: str | None = None) -> str:
        """Digest of schema + data (mariadb-dump) plus users, grants and global read-only state."""
        cmd = ["mariadb-dump", "--no-defaults", f"--socket={self.socket}", "-uroot", "--skip-dump-date",
               "--routines", "--events", "--triggers"]
        cmd += [database] if database else ["--all-databases"]
        dump = subprocess.run(cmd, check=True, capture_output=True).stdout
        users = self.sql("SELECT user, host FROM mysql.user ORDER BY 1, 2")
        dbs = self.sql("SHOW DATABASES")
        import hashlib
        return hashlib.sha256(dump + users.encode() + dbs.encode()).hexdigest()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # mariadbd ignores SIGINT
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.root, ignore_errors=True)


def tmp_root(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def have(cmd: str) -> bool:
    return shutil.which(cmd) is not None or os.path.exists(cmd)
