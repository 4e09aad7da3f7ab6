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
    from cdcd.sources.postgres.errors import explain_connect_error

    # libpq tried both addresses of localhost; each failure has its hint on a tab line.
    attempt = (
        'connection to server at "localhost" ({}), port 5432 failed: Connection refused\n'
        "\tIs the server running on that host and accepting TCP/IP connections?"
    )
    exc = psycopg.OperationalError(
        "connection failed: " + attempt.format("::1") + "\n" + attempt.format("127.0.0.1")
    )
    message = explain_connect_error(exc, "localhost:5432", replication=False)
    assert message == (
        'cannot connect to PostgreSQL at localhost:5432: connection to server at "localhost" '
        "(127.0.0.1), port 5432 failed: Connection refused; Is the server running on that "
        "host and accepting TCP/IP connections? (check source.dsn)"
    )


# libpq's own words (libpq 18 against PostgreSQL 15), each with the key its fix names.
_AT = 'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
TLS_FAILURES = [
    ("SSL error: certificate verify failed", "set source.sslrootcert to the CA certificate"),
    (
        'server certificate for "localhost" (and 1 other name) does not match host name "db"',
        "does not name the host of source.dsn",
    ),
    (
        'root certificate file "/root/.postgresql/root.crt" does not exist\nEither provide the '
        "file, use the system's trusted roots with sslrootcert=system, or change sslmode to "
        "disable server certificate verification.",
        "set source.sslrootcert",
    ),
    (
        'private key file "/etc/cdcd/pg-key.pem" has group or world access; file must have '
        "permissions u=rw (0600) or less if owned by the current user, or permissions u=rw,g=r "
        "(0640) or less if owned by root",
        "check source.sslkey",
    ),
    ('could not load private key file "/etc/cdcd/pg-key.pem": bad decrypt', "sslpassword_env"),
    ("FATAL:  connection requires a valid client certificate", "set source.sslcert and"),
    ('FATAL:  certificate authentication failed for user "cdc"', "check source.sslcert"),
    ("server does not support SSL, but SSL was required", 'source.sslmode = "prefer"'),
    (
        'FATAL:  pg_hba.conf rejects connection for host "127.0.0.1", user "cdc", database '
        '"shop", no encryption',
        'set source.sslmode = "verify-full"',
    ),
]


@pytest.mark.parametrize(("reason", "fix"), TLS_FAILURES)
def test_a_tls_failure_names_the_key_to_fix(reason, fix):
    from cdcd.sources.postgres.errors import connect_error

    error = connect_error(psycopg.OperationalError(_AT + reason), "db:5432", replication=False)
    assert type(error).__name__ == "SourceError"  # needs a fix: the daemon stops
    message = str(error)
    assert message.startswith("cannot connect to PostgreSQL at db:5432: "), message
    assert fix in message, message
    assert "\n" not in message


def _pg_source(**keys):
    from cdcd.config import parse_config

    return parse_config(
        {
            "name": "shop",
            "source": {"kind": "postgres", "dsn": "postgresql://cdc@db/shop", **keys},
            "sink": {"kind": "stdout"},
        }
    ).source


def test_tls_keys_become_libpq_parameters(tmp_path):
    from cdcd.errors import ConfigError
    from cdcd.sources.postgres.tls import tls_parameters

    ca = tmp_path / "ca.pem"
    ca.write_text("(a CA)\n")
    assert tls_parameters(_pg_source()) == {}
    assert tls_parameters(_pg_source(sslmode="verify-full", sslrootcert=str(ca))) == {
        "sslmode": "verify-full",
        "sslrootcert": str(ca),
    }
    assert tls_parameters(_pg_source(sslrootcert="system")) == {"sslrootcert": "system"}
    for keys, needle in (
        ({"sslrootcert": str(tmp_path / "no.pem")}, "source.sslrootcert: cannot read"),
        ({"sslcert": str(tmp_path / "no.pem")}, "source.sslcert: cannot read"),
        ({"sslcert": str(ca), "sslkey": str(tmp_path / "k.pem")}, "source.sslkey: cannot read"),
        ({"sslkey": str(ca)}, "source.sslkey: set source.sslcert too"),
    ):
        with pytest.raises(ConfigError, match=needle):
            tls_parameters(_pg_source(**keys))
    with pytest.raises(Exception, match="sslmode"):
        _pg_source(sslmode="verify")


@pytest.mark.parametrize(
    ("dsn", "said"),
    [
        ("postgresql://cdc:pa%zz-secret@db/shop", 'invalid percent-encoded token: "***"'),
        ("postgresql://cdc:pa-secret@db/shop?foo=bar", 'invalid URI query parameter: "foo"'),
    ],
)
def test_a_dsn_libpq_cannot_read_is_a_config_error_without_its_password(dsn, said):
    from cdcd.config import parse_config
    from cdcd.errors import ConfigError
    from cdcd.sources.postgres import build

    config = parse_config(
        {"name": "shop", "source": {"kind": "postgres", "dsn": dsn}, "sink": {"kind": "stdout"}}
    )
    with pytest.raises(ConfigError) as info:
        build(config)
    assert str(info.value) == f"source.dsn: {said}"
    assert "secret" not in str(info.value)
