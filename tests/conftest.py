"""Shared fixtures: real PostgreSQL and MariaDB servers for the whole test session."""

from __future__ import annotations

import pytest

from servers import MariaDbServer, PgServer, tmp_root


@pytest.fixture(scope="session")
def pg_server():
    server = PgServer(root=tmp_root("sdp-pg-")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mariadb_server():
    server = MariaDbServer(root=tmp_root("sdp-mdb-")).start()
    try:
        yield server
    finally:
        server.stop()
