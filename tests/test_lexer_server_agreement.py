"""The fast path never lets through a write a real server would run (lexer vs. server).

~42 lexical traps (tests/lexer_agreement.py) each hide `INSERT INTO probe VALUES (1)`; each
is sent as one multi-statement query to MariaDB 10.11 (sql_mode default, NO_BACKSLASH_ESCAPES,
ANSI_QUOTES) and PostgreSQL 15 (standard_conforming_strings on, off). Wherever the server
really ran the hidden INSERT (a row appeared in `probe`), `_native.fast_check` must have said
BLOCK, and the engine the relays use must block it too. A text the server did not run may
get any verdict (blocking more is allowed; ARCHITECTURE.md "when in doubt, block").

Why the test can fail: a control text the server must run proves per session mode that the
probe is observable and the mode really was in effect; and the checker itself is shown to
flag a flipped verdict (test_checker_flags_a_flipped_verdict).
"""

from __future__ import annotations

import pytest

import lexer_agreement as LA
from proxy_harness import unique
from sandbox_db_proxy import _native as n

CASES = [(d, m) for d in ("mysql", "postgres") for m in LA.DIALECT_MODES[d]]
IDS = [f"{d}-{m}" for d, m in CASES]


@pytest.fixture(scope="module")
def my_probe_db(mariadb_server):
    db = unique("sdp_lexagree")
    mariadb_server.sql(f"CREATE DATABASE `{db}`; CREATE TABLE `{db}`.probe (id int)")
    yield db
    mariadb_server.sql(f"DROP DATABASE IF EXISTS `{db}`")


@pytest.fixture(scope="module")
def pg_probe_db(pg_server):
    db = unique("sdp_lexagree")
    pg_server.psql(f"CREATE DATABASE {db}")
    pg_server.psql("CREATE TABLE probe (id int)", db)
    yield db
    pg_server.psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


@pytest.fixture(scope="module")
def outcomes(request):
    """Every (dialect, mode) run once per module; the control text first in each run."""
    cache: dict[tuple[str, str], list[LA.Outcome]] = {}

    def get(dialect: str, mode: str) -> list[LA.Outcome]:
        if (dialect, mode) not in cache:
            if dialect == "mysql":
                server, db = request.getfixturevalue("mariadb_server"), request.getfixturevalue("my_probe_db")
            else:
                server, db = request.getfixturevalue("pg_server"), request.getfixturevalue("pg_probe_db")
            texts = [LA.CONTROL, *LA.DIALECT_TRAPS[dialect]]
            cache[(dialect, mode)] = LA.RUNNERS[dialect](server, db, mode, texts)
        return cache[(dialect, mode)]
    return get


@pytest.mark.parametrize("dialect,mode", CASES, ids=IDS)
def test_probe_is_observable_and_mode_in_effect(outcomes, dialect, mode):
    control, *traps = outcomes(dialect, mode)
    assert control.sql == LA.CONTROL and control.executed, control
    setting = LA.DIALECT_MODES[dialect][mode]
    for o in (control, *traps):
        if setting is None:
            assert o.mode_seen is None
        else:
            assert setting[2] in o.mode_seen.split(","), o     # e.g. sql_mode really is ANSI_QUOTES
    # The traps still exercise something: some hidden writes do run on this server in this mode.
    assert any(o.executed for o in traps), [LA.describe(o) for o in traps]


@pytest.mark.parametrize("dialect,mode", CASES, ids=IDS)
def test_fast_path_blocks_every_write_the_server_ran(outcomes, dialect, mode):
    got = outcomes(dialect, mode)
    assert len(got) == 1 + len(LA.DIALECT_TRAPS[dialect])
    bad = LA.missed(got)
    assert not bad, "server ran a hidden write the fast path did not block:\n" + "\n".join(
        LA.describe(o) for o in bad)


@pytest.mark.parametrize("dialect,mode", CASES, ids=IDS)
def test_engine_blocks_every_write_the_server_ran(outcomes, dialect, mode):
    """The verdict the relays act on (fast path + deep check), not only the fast path."""
    from sandbox_db_proxy.engine import Engine
    engine = Engine(dialect)
    ran = [o for o in outcomes(dialect, mode) if o.executed]
    let_through = [(o.sql, v.rule) for o in ran if (v := engine.classify(o.sql)).allowed]
    assert not let_through, let_through


def test_checker_flags_a_flipped_verdict(outcomes):
    """The check above can fail: with the fast path's BLOCK flipped to ALLOW for the texts the
    server ran, `missed` reports exactly those texts (and only those)."""
    for dialect, mode in CASES:
        got = outcomes(dialect, mode)
        ran = [o for o in got if o.executed]
        assert ran

        def flipped(sql, d, _ran={o.sql for o in ran}):
            return n.ALLOW if sql in _ran else LA.fast_decision(sql, d)
        assert LA.missed(got, flipped) == ran
        assert all(LA.describe(o, flipped).startswith("DANGER") for o in ran)
