"""Loading: YAML file -> `Config`, or one `ConfigError` listing every problem.

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
import os
import re
import typing
from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from sandbox_db_proxy.config.checks import cross_checks
from sandbox_db_proxy.config.models import Config, ConfigError

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
    cross_checks(raw, problems)
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
