"""Which psycopg errors are a lost or refused connection (the daemon starts over) and
which need a fix (it stops)."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors

from cdcd.sources.postgres.source import connection_lost


@pytest.mark.parametrize(
    "message",
    [
        'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
        "Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?",
        'connection failed: connection to server at "db", port 5432 failed: FATAL:  the database '
        "system is starting up",
        "consuming input failed: server closed the connection unexpectedly",
        "receiving copy data failed: SSL connection has been closed unexpectedly",
        "sending copy data failed: the connection is lost",
    ],
)
def test_lost_or_refused_for_now(message):
    assert connection_lost(psycopg.OperationalError(message))


@pytest.mark.parametrize(
    "message",
    [
        'connection failed: connection to server at "127.0.0.1", port 5432 failed: FATAL:  '
        'password authentication failed for user "cdc"',
        'connection failed: connection to server at "127.0.0.1", port 5432 failed: FATAL:  '
        'database "shop" does not exist',
        'connection failed: connection to server at "10.0.0.1", port 5432 failed: FATAL:  no '
        'pg_hba.conf entry for replication connection from host "10.0.0.2", user "cdc"',
        "connection failed: fe_sendauth: no password supplied",
    ],
)
def test_what_needs_a_fix(message):
    assert not connection_lost(psycopg.OperationalError(message))


def test_by_sqlstate():
    assert connection_lost(errors.AdminShutdown("terminating connection"))  # 57P01
    assert connection_lost(errors.CannotConnectNow("starting up"))  # 57P03
    assert connection_lost(errors.ConnectionFailure("lost"))  # 08006
    assert not connection_lost(errors.InsufficientPrivilege("permission denied"))  # 42501
    assert not connection_lost(errors.UndefinedObject("replication slot does not exist"))
