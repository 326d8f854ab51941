"""Cross-key checks on the raw (interpolated) YAML data, before and independent of the
models, so that their problems are reported together with type errors: duplicate backend
names, clashing listen addresses, agents naming unknown backends or sharing a login, TLS
files that are missing or do not load."""

from __future__ import annotations

import difflib
import os
import ssl
from typing import Any

from sandbox_db_proxy.config.models import DEFAULT_PORTS
from sandbox_db_proxy.server.net import parse_hostport


def cross_checks(raw: dict, problems: list[str]) -> None:
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
