"""Config loader: the guide's example loads unchanged; every problem is reported at once as
`FILE: key.path: what is wrong`; secrets never print; env interpolation and overrides."""

from __future__ import annotations

import ipaddress
import os
import textwrap

import pytest
from pydantic import ValidationError

from sandbox_db_proxy.config import ConfigError, load_config, load_config_text
from sandbox_db_proxy.server.net import IpAllowlist, parse_hostport, parse_network

# Verbatim from ../shared/spec/ai-sandbox-security-guide.md, "Configuration Example"
# (including the trailing spaces on the blank lines inside the backends list).
GUIDE_EXAMPLE = """\
backends:
  - name: mysql-prod
    type: mysql
    address: prod-mysql.example.com
    port: 3306
    username: readonly_user
    password: ${MYSQL_PASSWORD}
    database: production_db
    
  - name: mssql-prod
    type: mssql
    address: prod-mssql.example.com
    port: 1433
    username: readonly_user
    password: ${MSSQL_PASSWORD}
    
  - name: mongodb-prod
    type: mongodb
    address: mongodb-cluster.example.com
    port: 27017
    username: readonly_user
    password: ${MONGO_PASSWORD}
    database: production_db
    
security:
  enforce_read_only: true
  blocked_commands:
    - INSERT
    - UPDATE
    - DELETE
    - DROP
    - CREATE
    - ALTER
    - TRUNCATE
    - MERGE
    - REPLACE
  audit_enabled: true
  allowed_ips:
    - 172.22.0.0/24  # Agent network only
"""

GUIDE_ENV = {"MYSQL_PASSWORD": "my-secret-1", "MSSQL_PASSWORD": "ms-secret-2", "MONGO_PASSWORD": "mg-secret-3"}

PG = "{name: pg, type: postgres, address: 127.0.0.1, username: u, password: pw}"


def write(tmp_path, text: str, name: str = "config.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def problems(exc: pytest.ExceptionInfo) -> list[str]:
    return exc.value.problems


def test_guide_example_loads_unchanged(tmp_path):
    path = write(tmp_path, GUIDE_EXAMPLE)
    c = load_config(path, env=GUIDE_ENV)
    assert [b.name for b in c.backends] == ["mysql-prod", "mssql-prod", "mongodb-prod"]
    my, ms, mg = c.backends
    assert (my.type, my.address, my.port, my.username, my.database) == (
        "mysql", "prod-mysql.example.com", 3306, "readonly_user", "production_db")
    assert my.password.get_secret_value() == "my-secret-1"
    assert ms.password.get_secret_value() == "ms-secret-2"
    assert mg.password.get_secret_value() == "mg-secret-3"
    # defaults the guide leaves out
    assert (my.listen, ms.listen, mg.listen) == ("0.0.0.0:3306", "0.0.0.0:1433", "0.0.0.0:27017")
    assert my.allowed_databases == ("production_db",) and ms.allowed_databases == ()
    assert ms.database is None and ms.dialect == "tsql" and mg.dialect is None
    assert c.security.enforce_read_only is True and c.security.audit_enabled is True
    assert c.security.blocked_commands == ("INSERT", "UPDATE", "DELETE", "DROP", "CREATE", "ALTER",
                                           "TRUNCATE", "MERGE", "REPLACE")
    assert c.security.allowed_ips == (ipaddress.ip_network("172.22.0.0/24"),)
    assert c.admin.listen == "127.0.0.1:8080"
    assert c.audit.path == "volumes/audit-logs/audit.json"
    assert c.limits.max_message_bytes == 16777216 and c.limits.drain_timeout_seconds == 15
    assert c.sessions.timeout_seconds == 3600 and c.sessions.max_sessions_per_user == 5
    assert c.monitor_mode is False and c.env_overrides == {}
    assert c.source == str(path)


def test_guide_example_secrets_never_print(tmp_path):
    c = load_config(write(tmp_path, GUIDE_EXAMPLE), env=GUIDE_ENV)
    for text in (repr(c), str(c), c.model_dump_json(), repr(c.backends[0])):
        for secret in GUIDE_ENV.values():
            assert secret not in text


def test_guide_example_without_env_names_each_variable_and_key(tmp_path):
    path = write(tmp_path, GUIDE_EXAMPLE)
    with pytest.raises(ConfigError) as e:
        load_config(path, env={})
    assert problems(e) == [
        f"{path}: backends[0].password: environment variable MYSQL_PASSWORD is not set",
        f"{path}: backends[1].password: environment variable MSSQL_PASSWORD is not set",
        f"{path}: backends[2].password: environment variable MONGO_PASSWORD is not set",
    ]


def test_full_postgres_backend_and_all_sections(tmp_path):
    pwfile = tmp_path / "agent.pw"
    pwfile.write_text("agent-pass\n")
    c = load_config_text(textwrap.dedent(f"""\
        backends:
          - name: pg-prod
            type: postgres
            address: /var/run/postgresql
            port: 5433
            username: proxy
            password: "${{PGPW:-fallback}}"
            database: shop
            listen: "[::1]:6432"
            backend_tls: {{mode: require}}
            allow_unknown_functions: true
            allowed_databases: [shop, reporting]
            statement_timeout_ms: 5000
            block_sensitive_show: false
          - name: my
            type: mysql
            address: "::1"
            username: u
            password: p
        security: {{enforce_read_only: true, blocked_commands: [copy, "grant  all"], allowed_ips: ["10.1.2.3", "fd00::/8"]}}
        limits: {{max_message_bytes: 1048576, idle_timeout_seconds: 30, max_client_connections: 5,
                 statement_timeout_ms: 1000, connect_timeout_seconds: 2.5, drain_timeout_seconds: 0}}
        agents:
          - {{name: bot1, password_file: {pwfile}, backends: [pg-prod]}}
          - {{name: bot2, username: robot, password: x}}
        admin: {{listen: "127.0.0.1:0", token: tok}}
        audit: {{path: /tmp/x/audit.json, flush_interval_ms: 50, flush_records: 10, queue_size: 100,
                fail_closed: true, syslog: false}}
        sessions: {{timeout_seconds: 60, max_sessions_per_user: 2, max_concurrent_agents: 3,
                   auto_destroy: false, store: /tmp/x/s.db}}
        """), env={})
    pg, my = c.backends
    assert pg.is_unix_socket and pg.port == 5433 and pg.password.get_secret_value() == "fallback"
    assert (pg.listen_host, pg.listen_port) == ("::1", 6432)
    assert pg.allowed_databases == ("shop", "reporting") and pg.database_allowed("reporting")
    assert not pg.database_allowed("postgres") and not pg.database_allowed(None)
    assert c.statement_timeout_ms(pg) == 5000 and c.statement_timeout_ms("my") == 1000
    assert my.port == 3306 and my.listen == "0.0.0.0:3306" and my.backend_tls.mode == "prefer"
    assert c.security.blocked_commands == ("COPY", "GRANT ALL")
    assert c.security.allowed_ips == (ipaddress.ip_network("10.1.2.3/32"), ipaddress.ip_network("fd00::/8"))
    assert c.agents[0].password.get_secret_value() == "agent-pass"  # trailing newline stripped
    assert c.agents[0].username == "bot1" and c.agents[1].username == "robot"
    assert [a.name for a in c.agents_for("pg-prod")] == ["bot1", "bot2"]
    assert [a.name for a in c.agents_for("my")] == ["bot2"]
    assert c.admin.token.get_secret_value() == "tok"
    assert c.audit.fail_closed and c.sessions.auto_destroy is False


def test_all_problems_reported_at_once(tmp_path):
    path = write(tmp_path, """\
        backends:
          - name: a
            type: postgress
            address: db.example.com
            username: u
            password: ${NOPE}
            listen: "1.2.3.4:99999"
            passwrd: x
          - name: a
            type: postgres
            address: db.example.com
            username: u
            password_file: /nonexistent/pw
            port: abc
        security:
          allowed_ips: [10.0.0.1/8, bogus]
          enforce_read_only: maybe
        agents:
          - {name: bot, password: p, backends: [pg, a]}
        limits:
          max_client_connections: 0
        bogus_section: {}
        """)
    with pytest.raises(ConfigError) as e:
        load_config(path, env={})
    got = problems(e)
    expected = [
        "backends[0].password: environment variable NOPE is not set",
        "backends[1].password_file: cannot read '/nonexistent/pw'",
        "backends[1].name: duplicate backend name 'a'",
        "agents[0].backends[0]: unknown backend 'pg'",
        "backends[0].type: Input should be 'postgres', 'mysql', 'mssql' or 'mongodb'",
        "backends[0].listen: '1.2.3.4:99999': port 99999 is out of range",
        "backends[0].passwrd: unknown key (did you mean 'password'?)",
        "backends[1].port: Input should be a valid integer",
        "security.enforce_read_only: Input should be a valid boolean",
        "security.allowed_ips[0]: '10.0.0.1/8' has host bits set; did you mean 10.0.0.0/8?",
        "security.allowed_ips[1]: 'bogus' is not an IP address or CIDR network",
        "limits.max_client_connections: Input should be greater than or equal to 1",
        "bogus_section: unknown key",
    ]
    for want in expected:
        assert any(p.startswith(f"{path}: {want}") for p in got), (want, got)
    assert len(got) == len(expected), got
    assert str(e.value) == "\n".join(got)


def test_yaml_syntax_error_has_line_and_column(tmp_path):
    path = write(tmp_path, "backends:\n  - name: a\n    type: [postgres\nsecurity: {}\n")
    with pytest.raises(ConfigError) as e:
        load_config(path, env={})
    (msg,) = problems(e)
    assert msg.startswith(f"{path}: line ") and ", column " in msg and "YAML syntax error" in msg


def test_duplicate_yaml_key_is_an_error(tmp_path):
    path = write(tmp_path, f"backends: [{PG}]\nsecurity:\n  enforce_read_only: true\n  enforce_read_only: false\n")
    with pytest.raises(ConfigError) as e:
        load_config(path, env={})
    assert problems(e) == [f"{path}: line 4, column 3: duplicate key 'enforce_read_only'"]


def test_missing_file_and_empty_file(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "nope.yaml")
    assert "cannot read the file" in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, ""), env={})
    assert "backends: required key is missing" in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, "- a\n- b\n"), env={})
    assert "expected a mapping" in str(e.value)


def test_interpolation_forms():
    text = textwrap.dedent("""\
        backends:
          - name: "${NAME:-pg}"
            type: postgres
            address: "${HOST-default.example.com}"
            username: "${USER_EMPTY:-fallback}"
            password: "pre-$${LITERAL}-${PW}-post"
            port: "${PORT}"
        """)
    c = load_config_text(text, env={"PW": "s3cret", "PORT": "6000", "USER_EMPTY": ""})
    b = c.backends[0]
    assert b.name == "pg" and b.port == 6000
    assert b.address == "default.example.com"
    assert b.username == "fallback"  # ":-" also replaces an empty value
    assert b.password.get_secret_value() == "pre-${LITERAL}-s3cret-post"


def test_interpolation_dash_keeps_set_but_empty_value():
    text = f"backends: [{PG}]\naudit: {{path: \"/tmp/a${{EMPTY-x}}.json\"}}\n"
    assert load_config_text(text, env={"EMPTY": ""}).audit.path == "/tmp/a.json"
    assert load_config_text(text, env={}).audit.path == "/tmp/ax.json"


def test_bad_interpolation_reports_key():
    with pytest.raises(ConfigError) as e:
        load_config_text(f"backends: [{PG}]\naudit: {{path: \"${{1BAD}}\"}}\nadmin: {{listen: \"${{UNSET_ADMIN}}\"}}\n",
                         source="f.yaml", env={})
    assert problems(e)[:2] == ["f.yaml: audit.path: ${1BAD} is not a valid variable reference",
                               "f.yaml: admin.listen: environment variable UNSET_ADMIN is not set"]


def test_password_file(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("from-file\r\n")
    c = load_config_text(f"backends: [{{name: pg, type: postgres, address: h, username: u, password_file: {pw}}}]",
                         env={})
    assert c.backends[0].password.get_secret_value() == "from-file"
    assert c.backends[0].password_file == str(pw)
    with pytest.raises(ConfigError) as e:
        load_config_text(f"backends: [{{name: pg, type: postgres, address: h, username: u, password: x, "
                         f"password_file: {pw}}}]", source="c.yaml", env={})
    assert problems(e) == ["c.yaml: backends[0]: set either password or password_file, not both"]
    with pytest.raises(ConfigError) as e:
        load_config_text("backends: [{name: pg, type: postgres, address: h, username: u}]", source="c.yaml", env={})
    assert "c.yaml: backends[0]: needs password or password_file" in problems(e)[0]
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError) as e:
        load_config_text(f"backends: [{{name: pg, type: postgres, address: h, username: u, password_file: {empty}}}]",
                         source="c.yaml", env={})
    assert problems(e)[0] == f"c.yaml: backends[0].password_file: '{empty}' is empty"


def test_listen_addresses_and_clashes():
    with pytest.raises(ConfigError) as e:
        load_config_text(textwrap.dedent("""\
            backends:
              - {name: a, type: postgres, address: h, username: u, password: p, listen: "127.0.0.1:7000"}
              - {name: b, type: postgres, address: h, username: u, password: p, listen: "0.0.0.0:7000"}
              - {name: c, type: mysql, address: h, username: u, password: p, listen: "::1:7001"}
              - {name: d, type: mysql, address: h, username: u, password: p, listen: "127.0.0.1:8080"}
              - {name: e, type: mysql, address: h, username: u, password: p, listen: "localhost"}
            """), source="c.yaml", env={})
    got = problems(e)
    assert "c.yaml: backends[1].listen: listen address 0.0.0.0:7000 clashes with backends[0].listen (127.0.0.1:7000)" in got
    assert "c.yaml: admin.listen: listen address 127.0.0.1:8080 clashes with backends[3].listen (127.0.0.1:8080)" in got
    assert any(p.startswith("c.yaml: backends[2].listen:") and "brackets" in p for p in got)
    assert any(p.startswith("c.yaml: backends[4].listen:") and "missing ':port'" in p for p in got)
    assert len(got) == 4, got
    # the default listen addresses of two backends of the same type clash too
    with pytest.raises(ConfigError) as e:
        load_config_text(f"backends: [{PG}, {{name: pg2, type: postgres, address: h, username: u, password: p}}]",
                         source="c.yaml", env={})
    assert "clashes" in str(e.value)
    # port 0 (OS-assigned) never clashes
    load_config_text("backends:\n"
                     "  - {name: a, type: postgres, address: h, username: u, password: p, listen: '127.0.0.1:0'}\n"
                     "  - {name: b, type: postgres, address: h, username: u, password: p, listen: '127.0.0.1:0'}\n",
                     env={})


def test_parse_hostport():
    assert parse_hostport("[::1]:5432") == ("::1", 5432)
    assert parse_hostport("0.0.0.0:5432") == ("0.0.0.0", 5432)
    assert parse_hostport("db.example.com:3306") == ("db.example.com", 3306)
    assert parse_hostport(":6543") == ("0.0.0.0", 6543)
    assert parse_hostport("[fe80::1%eth0]:1") == ("fe80::1%eth0", 1)
    assert parse_hostport("localhost", default_port=5432) == ("localhost", 5432)
    for bad in ("::1:5432", "[::1]5432", "[nothost]:1", "host:", "host:-1", "host:70000", "bad host:1", "[::1", ""):
        with pytest.raises(ValueError):
            parse_hostport(bad)


def test_ip_allowlist():
    allow = IpAllowlist([parse_network("172.22.0.0/24"), parse_network("2001:db8::/32"), parse_network("10.9.9.9")])
    assert allow.allowed("172.22.0.17")
    assert allow.allowed("::ffff:172.22.0.17")          # IPv4-mapped IPv6 (dual-stack listener)
    assert allow.allowed("2001:db8::5") and allow.allowed("10.9.9.9")
    assert not allow.allowed("172.22.1.1")
    assert not allow.allowed("10.9.9.8")
    assert not allow.allowed("::ffff:10.0.0.1")
    assert not allow.allowed("2001:db9::1")
    assert not allow.allowed("not-an-ip") and not allow.allowed("")  # default deny
    assert IpAllowlist([]).allowed("8.8.8.8")
    with pytest.raises(ValueError, match="host bits"):
        parse_network("172.22.0.1/24")


def test_env_overrides(tmp_path):
    path = write(tmp_path, f"""\
        backends: [{PG}]
        security: {{enforce_read_only: true, audit_enabled: true}}
        admin: {{token: file-token}}
        """)
    env = {"ENFORCE_READ_ONLY": "false", "AUDIT_ENABLED": "false", "SESSION_TIMEOUT": "120",
           "MAX_SESSIONS_PER_USER": "2", "AUTO_DESTROY_SESSIONS": "false", "MAX_CONCURRENT_AGENTS": "7",
           "ADMIN_TOKEN": "env-token"}
    c = load_config(path, env=env)
    assert c.security.enforce_read_only is False and c.monitor_mode
    assert c.security.audit_enabled is False
    assert (c.sessions.timeout_seconds, c.sessions.max_sessions_per_user, c.sessions.auto_destroy,
            c.sessions.max_concurrent_agents) == (120, 2, False, 7)
    assert c.admin.token.get_secret_value() == "env-token"
    assert c.env_overrides == {
        "security.enforce_read_only": "ENFORCE_READ_ONLY", "security.audit_enabled": "AUDIT_ENABLED",
        "sessions.timeout_seconds": "SESSION_TIMEOUT", "sessions.max_sessions_per_user": "MAX_SESSIONS_PER_USER",
        "sessions.auto_destroy": "AUTO_DESTROY_SESSIONS", "sessions.max_concurrent_agents": "MAX_CONCURRENT_AGENTS",
        "admin.token": "ADMIN_TOKEN"}
    # empty means "not set"; invalid values name the variable
    assert load_config(path, env={"ENFORCE_READ_ONLY": ""}).security.enforce_read_only is True
    with pytest.raises(ConfigError) as e:
        load_config(path, env={"SESSION_TIMEOUT": "soon", "ENFORCE_READ_ONLY": "perhaps"})
    text = str(e.value)
    assert "sessions.timeout_seconds" in text and "environment variable SESSION_TIMEOUT" in text
    assert "security.enforce_read_only" in text and "environment variable ENFORCE_READ_ONLY" in text


def test_agents_and_tls_checks(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config_text(textwrap.dedent("""\
            backends:
              - {name: pg-prod, type: postgres, address: h, username: u, password: p,
                 tls: {cert_file: /nonexistent.crt, key_file: /nonexistent.key},
                 backend_tls: {mode: verify-full}}
            agents:
              - {name: a, password: x, backends: [pg-prd]}
              - {name: b}
              - {name: c, password: x}
              - {name: d, username: c, password: y}
            """), source="c.yaml", env={})
    got = problems(e)
    assert "c.yaml: agents[0].backends[0]: unknown backend 'pg-prd' (did you mean 'pg-prod'?)" in got
    assert "c.yaml: backends[0].tls.cert_file: cannot read '/nonexistent.crt' (no such file)" in got
    assert "c.yaml: backends[0].tls.key_file: cannot read '/nonexistent.key' (no such file)" in got
    assert any(p.startswith("c.yaml: backends[0].backend_tls: mode verify-full needs ca_file") for p in got)
    assert "c.yaml: agents[1]: agent needs password or password_file" in got
    assert any(p.startswith("c.yaml: agents[3].username: 'c' is already an agent login") for p in got)
    assert len(got) == 6, got


def test_client_tls_with_real_certificate(tmp_path):
    crt, key = make_cert(tmp_path)
    c = load_config_text(f"backends: [{{name: pg, type: postgres, address: h, username: u, password: p, "
                         f"tls: {{cert_file: {crt}, key_file: {key}, required: true}}}}]", env={})
    assert c.backends[0].tls.required
    assert c.backends[0].tls.server_context() is not None
    # a key that does not match the certificate is caught at load time
    crt2, key2 = make_cert(tmp_path / "other")
    with pytest.raises(ConfigError, match="certificate/key do not load"):
        load_config_text(f"backends: [{{name: pg, type: postgres, address: h, username: u, password: p, "
                         f"tls: {{cert_file: {crt}, key_file: {key2}}}}}]", env={})


def make_cert(d):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    d.mkdir(parents=True, exist_ok=True)
    k = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(k.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(k, hashes.SHA256()))
    (d / "c.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "c.key").write_bytes(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    return d / "c.crt", d / "c.key"


def test_config_is_immutable():
    c = load_config_text(f"backends: [{PG}]", env={})
    with pytest.raises(ValidationError):
        c.security = None
    with pytest.raises(ValidationError):
        c.backends[0].password = "x"
    assert isinstance(c.backends, tuple) and isinstance(c.security.blocked_commands, tuple)


def test_blocked_commands_must_be_words():
    with pytest.raises(ConfigError) as e:
        load_config_text(f"backends: [{PG}]\nsecurity: {{blocked_commands: [DELETE, 'DROP;--', 5]}}", source="c", env={})
    got = problems(e)
    assert got[0].startswith("c: security.blocked_commands[1]: 'DROP;--' is not an SQL command word")
    assert got[1].startswith("c: security.blocked_commands[2]:")


def test_config_warnings(tmp_path):
    from sandbox_db_proxy.config.warnings import config_warnings

    quiet = load_config_text(f"backends: [{{name: pg, type: postgres, address: 127.0.0.1, username: u, password: p}}]\n"
                             f"audit: {{path: {tmp_path}/a/audit.json}}", env={})
    assert config_warnings(quiet) == []
    (tmp_path / "ro").mkdir(mode=0o500)
    loud = load_config_text(textwrap.dedent(f"""\
        backends:
          - {{name: pg, type: postgres, address: db.example.com, username: u, password: p, backend_tls: {{mode: disable}}}}
          - {{name: mg, type: mongodb, address: db.example.com, username: u, password: p}}
        security: {{enforce_read_only: false}}
        admin: {{listen: "0.0.0.0:8080"}}
        audit: {{path: {tmp_path}/ro/sub/audit.json, fail_closed: true}}
        """), env={})
    got = config_warnings(loud)
    assert got[0].startswith("security.enforce_read_only is false: MONITOR MODE")
    assert any("'pg': backend_tls.mode is 'disable'" in w for w in got)
    assert any("'mg' has type 'mongodb', which has no relay yet" in w for w in got)
    assert any(w.startswith("admin.listen is 0.0.0.0:8080 (not loopback) and admin.token is not set") for w in got)
    if os.geteuid() != 0:  # root can write anywhere
        assert any("is not writable" in w and "fail_closed" in w for w in got)
