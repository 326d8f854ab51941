"""The test servers themselves start and answer (guards every other live test)."""

import pytest


@pytest.mark.pg
def test_pg_server_answers(pg_server):
    assert pg_server.psql("SELECT 1").strip() == "1"
    assert pg_server.checksum() == pg_server.checksum()


@pytest.mark.mariadb
def test_mariadb_server_answers(mariadb_server):
    assert mariadb_server.sql("SELECT 1").strip() == "1"
    assert mariadb_server.checksum() == mariadb_server.checksum()
