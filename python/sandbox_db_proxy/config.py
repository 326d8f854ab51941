"""Configuration: YAML file -> one immutable, validated `Config` snapshot.

`load_config(path, env=os.environ)` returns a frozen pydantic model or raises one
`ConfigError` listing *every* problem as `FILE: key.path: what is wrong` (an operator fixing a
file should not have to run the checker once per typo). Relays never read files: they get
`app.config`, which SIGHUP swaps as a single reference (see server/app.py).

Loading runs in passes over the raw YAML so that independent problems are all reported:
 1. YAML parse (syntax errors with line/column; duplicate keys are errors too, because YAML
    1.1 loaders silently keep the last one, which could e.g. hide a second
    `enforce_read_only`).
 2. `${VAR}` / `${VAR:-default}` / `${VAR-default}` interpolation in every string value,
    POSIX shell parameter-expansion semantics (`:-` also replaces an empty value); `$${` is a
    literal `${`. An unset variable without default names the variable and the key.
 3. The guide's `.env` overrides (section "Environment Variables": ENFORCE_READ_ONLY,
    AUDIT_ENABLED, SESSION_TIMEOUT, MAX_SESSIONS_PER_USER, AUTO_DESTROY_SESSIONS,
    MAX_CONCURRENT_AGENTS, plus ADMIN_TOKEN) win over the file; `Config.env_overrides`
    records which keys came from the environment (shown by `check-config`).
 4. `password_file` / `token_file` are read (trailing newline stripped, as Docker and
    Kubernetes secret files usually end in one). Relative paths are relative to the working
    directory, like `audit.path`.
 5. Cross-key checks (duplicate backend names and listen addresses, agents naming unknown
    backends, TLS files) on the raw data, and the pydantic models (types, unknown keys,
    CIDRs, listen syntax); problems of all passes are merged.

Secrets are `SecretStr`: they print as `**********` and never reach logs or check-config.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import ssl
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import yaml
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError,
                      field_validator, model_validator)

from sandbox_db_proxy.server.net import IpAllowlist, parse_hostport, parse_network

__all__ = ["Config", "ConfigError", "Backend", "Agent", "load_config", "load_config_text",
           "DEFAULT_PORTS", "DIALECTS", "ENV_OVERRIDES"]

# The protocols' registered ports (IANA service names postgresql, mysql, ms-sql-s, mongodb).
DEFAULT_PORTS = {"postgres": 5432, "mysql": 3306, "mssql": 1433, "mongodb": 27017}
# Backend type -> verdict-engine dialect (None: not SQL; no engine).
DIALECTS = {"postgres": "postgres", "mysql": "mysql", "mssql": "tsql", "mongodb": None}
# Backend type -> OpenTelemetry `db.system.name` (semantic conventions, database spans).
DB_SYSTEMS = {"postgres": "postgresql", "mysql": "mysql", "mssql": "microsoft.sql_server",
              "mongodb": "mongodb"}

# Guide "Environment Variables" names -> key path they override.
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "ENFORCE_READ_ONLY": ("security", "enforce_read_only"),
    "AUDIT_ENABLED": ("security", "audit_enabled"),
    "SESSION_TIMEOUT": ("sessions", "timeout_seconds"),
    "MAX_SESSIONS_PER_USER": ("sessions", "max_sessions_per_user"),
    "AUTO_DESTROY_SESSIONS": ("sessions", "auto_destroy"),
    "MAX_CONCURRENT_AGENTS": ("sessions", "max_concurrent_agents"),
    "ADMIN_TOKEN": ("admin", "token"),
}


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


# ---------------------------------------------------------------------------------------
# loading


class _Loader(yaml.SafeLoader):
    """SafeLoader (no arbitrary Python objects) that records duplicate mapping keys."""

    def __init__(self, stream):
        super().__init__(stream)
        self.duplicates: list[tuple[str, int, int]] = []

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is not None and key in seen:
                m = key_node.start_mark
                self.duplicates.append((key, m.line + 1, m.column + 1))
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _path(parts) -> str:
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out or "(top level)"


_VAR = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_NAME = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)(.*))?$", re.S)


def _interpolate(value: Any, env: Mapping[str, str], path: list, problems: list[str]) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, env, path + [k], problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, path + [i], problems) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    def sub(m: re.Match) -> str:
        text = m.group(0)
        if text == "$${":
            return "${"
        if m.group(1) is None:
            problems.append(f"{_path(path)}: unterminated '${{' (write $${{ for a literal)")
            return ""
        nm = _NAME.match(m.group(1))
        if not nm:
            problems.append(f"{_path(path)}: ${{{m.group(1)}}} is not a valid variable reference")
            return ""
        name, op, default = nm.groups()
        current = env.get(name)
        if op == ":-" and not current:
            return default
        if op == "-" and current is None:
            return default
        if current is None:
            problems.append(f"{_path(path)}: environment variable {name} is not set")
            return ""
        return current

    return _VAR.sub(sub, value)


def _read_secret_file(section: dict, field: str, target: str, path: list, problems: list[str]) -> None:
    if not isinstance(section, dict) or section.get(field) is None:
        return
    where = _path(path + [field])
    if section.get(target) is not None:
        problems.append(f"{_path(path)}: set either {target} or {field}, not both")
        return
    fname = section[field]
    if not isinstance(fname, str):
        return  # the model reports the type error
    try:
        with open(fname, encoding="utf-8") as f:
            content = f.read()
    except OSError as exc:
        problems.append(f"{where}: cannot read {fname!r}: {exc.strerror or exc}")
        return
    if content.endswith("\n"):
        content = content[:-1]
    if content.endswith("\r"):
        content = content[:-1]
    if not content:
        problems.append(f"{where}: {fname!r} is empty")
        return
    section[target] = content


def _cross_checks(raw: dict, problems: list[str]) -> None:
    backends = raw.get("backends")
    names: dict[str, int] = {}
    listens: list[tuple[str, int, str]] = []
    if isinstance(backends, list):
        for i, b in enumerate(backends):
            if not isinstance(b, dict):
                continue
            name = b.get("name")
            if isinstance(name, str):
                if name in names:
                    problems.append(f"backends[{i}].name: duplicate backend name {name!r} "
                                    f"(also backends[{names[name]}])")
                else:
                    names[name] = i
            listen = b.get("listen") or (f"0.0.0.0:{DEFAULT_PORTS[b['type']]}"
                                         if b.get("type") in DEFAULT_PORTS else None)
            if isinstance(listen, str):
                try:
                    host, port = parse_hostport(listen)
                    listens.append((host, port, f"backends[{i}].listen"))
                except ValueError:
                    pass  # reported by the model
            for key in ("tls",):
                tls = b.get(key)
                if isinstance(tls, dict):
                    for fk in ("cert_file", "key_file"):
                        _check_file(tls.get(fk), f"backends[{i}].{key}.{fk}", problems)
                    if isinstance(tls.get("cert_file"), str) and isinstance(tls.get("key_file"), str):
                        try:
                            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(tls["cert_file"], tls["key_file"])
                        except (OSError, ssl.SSLError) as exc:
                            if os.path.exists(tls["cert_file"]) and os.path.exists(tls["key_file"]):
                                problems.append(f"backends[{i}].{key}: certificate/key do not load: {exc}")
            btls = b.get("backend_tls")
            if isinstance(btls, dict):
                _check_file(btls.get("ca_file"), f"backends[{i}].backend_tls.ca_file", problems)
    admin = raw.get("admin")
    admin_listen = admin.get("listen", "127.0.0.1:8080") if isinstance(admin, dict) else "127.0.0.1:8080"
    if isinstance(admin_listen, str):
        try:
            host, port = parse_hostport(admin_listen)
            listens.append((host, port, "admin.listen"))
        except ValueError:
            pass
    # Two sockets clash when the ports match and the hosts are equal or either is a wildcard.
    wild = {"0.0.0.0", "::", ""}
    for a in range(len(listens)):
        for b in range(a + 1, len(listens)):
            ha, pa, ka = listens[a]
            hb, pb, kb = listens[b]
            if pa and pa == pb and (ha == hb or ha in wild or hb in wild):
                problems.append(f"{kb}: listen address {hb}:{pb} clashes with {ka} ({ha}:{pa})")
    agents = raw.get("agents")
    if isinstance(agents, list):
        seen_user: dict[tuple[str, str], int] = {}
        for i, a in enumerate(agents):
            if not isinstance(a, dict):
                continue
            bl = a.get("backends")
            if isinstance(bl, list):
                for j, bn in enumerate(bl):
                    if isinstance(bn, str) and bn not in names:
                        hint = difflib.get_close_matches(bn, list(names), n=1)
                        problems.append(f"agents[{i}].backends[{j}]: unknown backend {bn!r}"
                                        + (f" (did you mean {hint[0]!r}?)" if hint else
                                           f" (known: {', '.join(names) or 'none'})"))
            user = a.get("username") or a.get("name")
            if isinstance(user, str):
                targets = bl if isinstance(bl, list) else list(names)
                for bn in targets:
                    if not isinstance(bn, str):
                        continue
                    key = (bn, user)
                    if key in seen_user:
                        problems.append(f"agents[{i}].username: {user!r} is already an agent login for "
                                        f"backend {bn!r} (agents[{seen_user[key]}]); logins must be unambiguous")
                    else:
                        seen_user[key] = i


def _check_file(value: Any, where: str, problems: list[str]) -> None:
    if isinstance(value, str) and not os.access(value, os.R_OK):
        problems.append(f"{where}: cannot read {value!r}"
                        + ("" if os.path.exists(value) else " (no such file)"))


def _apply_env_overrides(raw: dict, env: Mapping[str, str]) -> dict[str, str]:
    applied: dict[str, str] = {}
    for var, path in ENV_OVERRIDES.items():
        value = env.get(var)
        if value is None or value == "":
            continue
        section = raw.get(path[0])
        if section is None:
            section = raw[path[0]] = {}
        if not isinstance(section, dict):
            continue  # the model reports the wrong type
        section[path[1]] = value.strip()
        if var == "ADMIN_TOKEN":
            section.pop("token_file", None)
        applied[".".join(path)] = var
    return applied


def _pydantic_problems(exc: ValidationError, overrides: dict[str, str]) -> list[str]:
    out = []
    errors = exc.errors(include_url=False)
    for err in errors:
        # "too short" after its items failed validation is noise, not a separate problem.
        if err["type"] == "too_short" and any(len(e["loc"]) > len(err["loc"]) and
                                              e["loc"][:len(err["loc"])] == err["loc"] for e in errors):
            continue
        loc = [p for p in err["loc"] if not (isinstance(p, str) and (p.startswith("function-") or "[" in p))]
        key = _path(loc)
        typ = err["type"]
        msg = err["msg"]
        if typ == "extra_forbidden":
            parent = loc[:-1]
            known = _known_keys(parent)
            hint = difflib.get_close_matches(str(loc[-1]), known, n=1)
            msg = "unknown key" + (f" (did you mean {hint[0]!r}?)" if hint else
                                   (f" (allowed: {', '.join(known)})" if known else ""))
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        elif typ == "missing":
            msg = "required key is missing"
        elif typ in ("too_short", "string_too_short") and (err.get("ctx") or {}).get("min_length") == 1:
            msg = "must not be empty"
        if key in overrides:
            msg += f" (value from environment variable {overrides[key]})"
        out.append(f"{key}: {msg}")
    return out


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as `Backend`, `tuple[Agent, ...]`,
    `ClientTls | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _known_keys(parent: list) -> list[str]:
    """Allowed keys at a key path (for "did you mean" hints on unknown keys)."""
    model: type[BaseModel] | None = Config
    for p in parent:
        if isinstance(p, int):
            continue
        field = model.model_fields.get(p) if model is not None else None
        model = _model_in(field.annotation) if field is not None else None
        if model is None:
            return []
    return list(model.model_fields)


def load_config_text(text: str, source: str = "<config>", env: Mapping[str, str] | None = None) -> Config:
    """Parse and validate YAML text; `source` names the file in error messages."""
    env = os.environ if env is None else env
    problems: list[str] = []
    loader = _Loader(text)
    try:
        raw = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{source}: {where}YAML syntax error: {what}"]) from None
    finally:
        loader.dispose()
    for key, line, col in loader.duplicates:
        problems.append(f"line {line}, column {col}: duplicate key {key!r}")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"{source}: (top level): expected a mapping of sections, got {type(raw).__name__}"])
    raw = _interpolate(raw, env, [], problems)
    overrides = _apply_env_overrides(raw, env)
    for i, b in enumerate(raw.get("backends") or [] if isinstance(raw.get("backends"), list) else []):
        _read_secret_file(b, "password_file", "password", ["backends", i], problems)
    for i, a in enumerate(raw.get("agents") or [] if isinstance(raw.get("agents"), list) else []):
        _read_secret_file(a, "password_file", "password", ["agents", i], problems)
    if isinstance(raw.get("admin"), dict):
        _read_secret_file(raw["admin"], "token_file", "token", ["admin"], problems)
    for i, b in enumerate(raw.get("backends") or [] if isinstance(raw.get("backends"), list) else []):
        if isinstance(b, dict) and b.get("password") is None and b.get("password_file") is None \
                and b.get("type") in ("postgres", "mysql", "mssql", "mongodb"):
            problems.append(f"backends[{i}]: needs password or password_file "
                            "(the proxy logs in to the database with it; agents never see it)")
    _cross_checks(raw, problems)
    config = None
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        # A key already reported (e.g. its ${VAR} is unset) is not reported again as "empty".
        seen = {p.split(": ", 1)[0] for p in problems}
        problems.extend(p for p in _pydantic_problems(exc, overrides) if p.split(": ", 1)[0] not in seen)
    if problems or config is None:
        raise ConfigError([f"{source}: {p}" for p in _dedupe(problems)])
    config._source = source
    config._env_overrides = overrides
    return config


def _dedupe(items: list[str]) -> list[str]:
    seen, out = set(), []
    for i in items:
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


def load_config(path: str | os.PathLike, env: Mapping[str, str] | None = None) -> Config:
    """Load and validate a YAML config file (see module docstring)."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError([f"{source}: cannot read the file: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{source}: not UTF-8 text: {exc}"]) from None
    return load_config_text(text, source=source, env=env)
