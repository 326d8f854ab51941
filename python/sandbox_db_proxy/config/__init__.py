"""Configuration: YAML file -> one immutable, validated `Config` snapshot.

`load_config(path, env=os.environ)` returns a frozen pydantic model or raises one
`ConfigError` listing *every* problem as `FILE: key.path: what is wrong`. Relays never read
files: they get `app.config`, which SIGHUP swaps as a single reference (server/app.py).

- `models.py`: the snapshot and its sections (key names are interfaces, issue 3).
- `loader.py`: YAML, `${VAR}` interpolation, the guide's .env overrides, secret files,
  error collection.
- `checks.py`: cross-key checks on the raw data.
- `warnings.py`: valid but risky settings (said at startup and by check-config).
"""

from sandbox_db_proxy.config.loader import ENV_OVERRIDES, load_config, load_config_text
from sandbox_db_proxy.config.models import (DB_SYSTEMS, DEFAULT_PORTS, DIALECTS, AdminConfig, Agent,
                                            AuditConfig, Backend, BackendTls, ClientTls, Config,
                                            ConfigError, LimitsConfig, SecurityConfig, SessionsConfig)

__all__ = ["Config", "ConfigError", "Backend", "Agent", "AdminConfig", "AuditConfig", "BackendTls",
           "ClientTls", "LimitsConfig", "SecurityConfig", "SessionsConfig", "load_config",
           "load_config_text", "DEFAULT_PORTS", "DIALECTS", "DB_SYSTEMS", "ENV_OVERRIDES"]
