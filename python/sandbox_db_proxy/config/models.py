"""Configuration models: the immutable, validated snapshot (`Config`) and its sections.

Every model is frozen with `extra="forbid"`: an unknown key is an error (a typo such as
`enforce_read_onyl` must never silently leave the default in force), and a snapshot can be
shared by every connection without copying. Lists become tuples for the same reason.
Secrets are `SecretStr`: they print as `**********` and never reach logs or check-config.
Key names are interfaces (issue 3): operators' tooling relies on them.
"""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
from typing import Annotated, Any, Literal

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, SecretStr,
                      field_validator, model_validator)

from sandbox_db_proxy.server.net import IpAllowlist, parse_hostport, parse_network

# The protocols' registered ports (IANA service names postgresql, mysql, ms-sql-s, mongodb).
DEFAULT_PORTS = {"postgres": 5432, "mysql": 3306, "mssql": 1433, "mongodb": 27017}
# Backend type -> verdict-engine dialect (None: not SQL; no engine).
DIALECTS = {"postgres": "postgres", "mysql": "mysql", "mssql": "tsql", "mongodb": None}
# Backend type -> OpenTelemetry `db.system.name` (semantic conventions, database spans).
DB_SYSTEMS = {"postgres": "postgresql", "mysql": "mysql", "mssql": "microsoft.sql_server",
              "mongodb": "mongodb"}



class ConfigError(Exception):
    """All problems of one load, each `FILE: key.path: what is wrong`."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class ClientTls(_Model):
    """Client-facing TLS (the proxy's own certificate)."""
    cert_file: str
    key_file: str
    required: bool = False

    def server_context(self) -> ssl.SSLContext:
        """Server-side context; TLS 1.2 minimum (RFC 8996 deprecates 1.0/1.1)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


class BackendTls(_Model):
    """TLS from the proxy to the database; modes and meaning as libpq's `sslmode`
    (PostgreSQL docs, "SSL Support", table "SSL Mode Descriptions")."""
    mode: Literal["disable", "prefer", "require", "verify-ca", "verify-full"] = "prefer"
    ca_file: str | None = None

    @model_validator(mode="after")
    def _verify_needs_ca(self) -> "BackendTls":
        if self.mode in ("verify-ca", "verify-full") and not self.ca_file:
            raise ValueError(f"mode {self.mode} needs ca_file (the CA that signed the server certificate)")
        return self

    def client_context(self) -> ssl.SSLContext | None:
        """None for `disable`; otherwise a client context. `prefer`/`require` encrypt without
        verifying (libpq semantics); `verify-ca` checks the chain; `verify-full` also the
        host name."""
        if self.mode == "disable":
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.mode in ("prefer", "require"):
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            ctx.load_verify_locations(self.ca_file)
            ctx.check_hostname = self.mode == "verify-full"
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx


_WORD = re.compile(r"^[A-Za-z][A-Za-z_]*( [A-Za-z][A-Za-z_]*)*$")


class Backend(_Model):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    type: Literal["postgres", "mysql", "mssql", "mongodb"]
    address: str = Field(min_length=1)
    port: int = Field(default=0, ge=0, le=65535)   # 0 -> the type's usual port
    username: str = Field(min_length=1)
    password: SecretStr | None = Field(default=None, min_length=1)
    password_file: str | None = None
    database: str | None = None
    listen: str = ""                               # "" -> 0.0.0.0:<usual port>
    tls: ClientTls | None = None
    backend_tls: BackendTls = BackendTls()
    allow_unknown_functions: bool = False
    allowed_databases: tuple[str, ...] | None = None   # None -> (database,)
    statement_timeout_ms: int | None = Field(default=None, ge=0)
    block_sensitive_show: bool = True

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("type") in DEFAULT_PORTS:
            data = dict(data)
            usual = DEFAULT_PORTS[data["type"]]
            if not data.get("port"):
                data["port"] = usual
            if not data.get("listen"):
                data["listen"] = f"0.0.0.0:{usual}"
            if data.get("allowed_databases") is None:
                db = data.get("database")
                data["allowed_databases"] = [db] if db else []
        return data

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        if v.startswith("/"):
            return v  # unix socket: directory (postgres) or socket file (mysql)
        parse_hostport(f"[{v}]:1" if ":" in v else f"{v}:1")  # host name, IPv4 or IPv6 literal
        return v

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        parse_hostport(v)
        return v

    @property
    def listen_host(self) -> str:
        return parse_hostport(self.listen)[0]

    @property
    def listen_port(self) -> int:
        return parse_hostport(self.listen)[1]

    @property
    def is_unix_socket(self) -> bool:
        return self.address.startswith("/")

    @property
    def dialect(self) -> str | None:
        return DIALECTS[self.type]

    @property
    def db_system(self) -> str:
        return DB_SYSTEMS[self.type]

    def database_allowed(self, name: str | None) -> bool:
        """Default deny: only the configured database(s)."""
        return name is not None and name in (self.allowed_databases or ())


def _command_word(item: Any) -> str:
    words = " ".join(item.split()) if isinstance(item, str) else None
    if not words or not _WORD.match(words):
        raise ValueError(f"{item!r} is not an SQL command word (e.g. DELETE)")
    return words.upper()


def _network(item: Any) -> Any:
    if isinstance(item, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return item
    return parse_network(item)


class SecurityConfig(_Model):
    enforce_read_only: bool = True
    blocked_commands: tuple[Annotated[str, BeforeValidator(_command_word)], ...] = ()
    audit_enabled: bool = True
    # CIDRs or bare addresses (= /32, /128), parsed to ipaddress networks.
    allowed_ips: tuple[Annotated[Any, BeforeValidator(_network)], ...] = ()


class LimitsConfig(_Model):
    max_message_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, le=1024 ** 3)
    idle_timeout_seconds: float = Field(default=900, ge=0)      # 0 = no idle limit
    max_client_connections: int = Field(default=1000, ge=1)     # per backend listener
    statement_timeout_ms: int = Field(default=30000, ge=0)      # 0 = no timeout
    connect_timeout_seconds: float = Field(default=10, gt=0)
    drain_timeout_seconds: float = Field(default=15, ge=0)


class Agent(_Model):
    name: str = Field(min_length=1, max_length=128)
    username: str = ""                        # "" -> name
    password: SecretStr | None = Field(default=None, min_length=1)
    password_file: str | None = None
    backends: tuple[str, ...] | None = None   # None -> every backend

    @model_validator(mode="before")
    @classmethod
    def _username(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("username") and data.get("name"):
            data = {**data, "username": data["name"]}
        return data

    @model_validator(mode="after")
    def _has_password(self) -> "Agent":
        if self.password is None:
            raise ValueError("agent needs password or password_file")
        return self

    def may_use(self, backend_name: str) -> bool:
        return self.backends is None or backend_name in self.backends


class AdminConfig(_Model):
    listen: str = "127.0.0.1:8080"
    token: SecretStr | None = None
    token_file: str | None = None

    @field_validator("token", mode="before")
    @classmethod
    def _empty_token(cls, v: Any) -> Any:
        # `token: ${ADMIN_TOKEN:-}` with the variable unset means "no token" (mutations off).
        return None if v == "" else v

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        parse_hostport(v)
        return v


class AuditConfig(_Model):
    path: str = "volumes/audit-logs/audit.json"
    flush_interval_ms: int = Field(default=200, ge=1, le=60_000)
    flush_records: int = Field(default=512, ge=1)
    queue_size: int = Field(default=100_000, ge=1)
    fail_closed: bool = False
    syslog: bool = False


class PerformanceConfig(_Model):
    # Relay logged-in sessions in the Rust data plane (issue 6). Sessions with client or
    # backend TLS, and every session in monitor mode, stay in the Python relay regardless.
    native_relay: bool = True
    # Bytes queued towards one side before the proxy stops reading the other (flow control).
    write_buffer_high_water: int = Field(default=256 * 1024, ge=16 * 1024, le=64 * 1024 * 1024)
    # I/O threads of the data plane; 0 = one per CPU the process may use (like HAProxy's
    # nbthread): the CPUs it may run on, fewer when a container's CPU quota allows fewer, at
    # most 8. Read when the data plane starts: a reload does not change it.
    io_threads: int = Field(default=0, ge=0, le=64)

    def effective_io_threads(self) -> int:
        if self.io_threads:
            return self.io_threads
        try:
            cpus = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cpus = os.cpu_count() or 1
        quota = cgroup_cpu_limit()
        if quota is not None:
            cpus = min(cpus, quota)
        return max(1, min(cpus, 8))


def cgroup_cpu_limit(v2: str = "/sys/fs/cgroup/cpu.max",
                     v1: tuple[str, str] = ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
                                            "/sys/fs/cgroup/cpu/cpu.cfs_period_us")) -> int | None:
    """Whole CPUs a container's CFS quota allows (rounded up), or None without a quota.
    cgroup v2 `cpu.max` ("max 100000" or "150000 100000"), else v1 cfs_quota_us (-1 = none)
    and cfs_period_us. In a container the cgroup namespace puts its own cgroup at these
    paths. Anything unreadable or odd counts as no quota."""
    def read(path: str) -> str | None:
        try:
            with open(path, encoding="ascii") as f:
                return f.read().strip()
        except (OSError, UnicodeDecodeError):
            return None
    text = read(v2)
    if text is not None:
        parts = text.split()
        quota_s, period_s = (parts + ["", ""])[:2]
    else:
        quota_s, period_s = read(v1[0]) or "", read(v1[1]) or ""
    try:
        quota, period = int(quota_s), int(period_s)
    except ValueError:
        return None
    if quota <= 0 or period <= 0:
        return None
    return max(1, -(-quota // period))


class SessionsConfig(_Model):
    timeout_seconds: int = Field(default=3600, ge=1)
    max_sessions_per_user: int = Field(default=5, ge=1)
    max_concurrent_agents: int = Field(default=10, ge=1)
    auto_destroy: bool = True
    store: str = "volumes/sessions.db"


class Config(_Model):
    backends: tuple[Backend, ...] = Field(min_length=1)
    security: SecurityConfig = SecurityConfig()
    limits: LimitsConfig = LimitsConfig()
    agents: tuple[Agent, ...] = ()
    admin: AdminConfig = AdminConfig()
    audit: AuditConfig = AuditConfig()
    sessions: SessionsConfig = SessionsConfig()
    performance: PerformanceConfig = PerformanceConfig()

    _source: str = PrivateAttr(default="<config>")
    _env_overrides: dict = PrivateAttr(default_factory=dict)
    _by_name: dict = PrivateAttr(default_factory=dict)
    _allowlist: Any = PrivateAttr(default=None)

    def model_post_init(self, __context: Any) -> None:
        self._by_name = {b.name: b for b in self.backends}
        self._allowlist = IpAllowlist(self.security.allowed_ips)

    @property
    def source(self) -> str:
        return self._source

    @property
    def env_overrides(self) -> dict[str, str]:
        """Dotted key path -> environment variable it came from."""
        return dict(self._env_overrides)

    @property
    def monitor_mode(self) -> bool:
        return not self.security.enforce_read_only

    @property
    def allowlist(self) -> IpAllowlist:
        return self._allowlist

    def backend(self, name: str) -> Backend:
        return self._by_name[name]

    def has_backend(self, name: str) -> bool:
        return name in self._by_name

    def statement_timeout_ms(self, backend: Backend | str) -> int:
        b = self.backend(backend) if isinstance(backend, str) else backend
        return self.limits.statement_timeout_ms if b.statement_timeout_ms is None else b.statement_timeout_ms

    def agents_for(self, backend_name: str) -> tuple[Agent, ...]:
        return tuple(a for a in self.agents if a.may_use(backend_name))
