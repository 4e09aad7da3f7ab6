"""Which psycopg errors are a lost or refused connection (the daemon starts over) and
which need a fix (it stops)."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors

from cdcd.sources.postgres.errors import connection_lost


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


def test_the_reason_of_a_failed_connection_is_kept():
    from cdcd.config import parse_config
    from cdcd.sources.postgres import build

    config = parse_config(
        {
            "name": "shop",
            "source": {"kind": "postgres", "dsn": "postgresql://cdc@localhost:5432/shop"},
            "sink": {"kind": "stdout"},
        }
    )
    source = build(config)
    # libpq tried both addresses of localhost; each failure has its hint on a tab line.
    attempt = (
        'connection to server at "localhost" ({}), port 5432 failed: Connection refused\n'
        "\tIs the server running on that host and accepting TCP/IP connections?"
    )
    exc = psycopg.OperationalError(
        "connection failed: " + attempt.format("::1") + "\n" + attempt.format("127.0.0.1")
    )
    message = source._explain_connect_error(exc, replication=False)
    assert message == (
        'cannot connect to PostgreSQL at localhost:5432: connection to server at "localhost" '
        "(127.0.0.1), port 5432 failed: Connection refused; Is the server running on that "
        "host and accepting TCP/IP connections? (check source.dsn)"
    )
