"""What a psycopg error, or the end of a replication stream, means for cdcd.

A lost or refused connection may pass by itself (a server restarting, a terminated
backend, a network cut): it becomes ``SourceUnavailableError``, and a daemon that has
streamed already starts over from its last committed offset. Anything else (a refused
login, pg_hba.conf, a missing privilege or database) will not pass without a fix and
stops the daemon.
"""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import pq

from cdcd.errors import SourceError, SourceUnavailableError
from cdcd.sources.postgres.privileges import identifier
from cdcd.sources.postgres.tls import tls_hint

if TYPE_CHECKING:
    from cdcd.sources.postgres.config import PostgresSourceConfig

# SQLSTATEs of a connection that was cut, or refused for now: the same request on a new
# connection may succeed (admin_shutdown: pg_terminate_backend or a fast shutdown;
# crash_shutdown; cannot_connect_now: starting up; too_many_connections).
_LOST_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})


def lost_sqlstate(sqlstate: str | None) -> bool:
    """Whether ``sqlstate`` names a connection that was cut or refused for now."""
    if not sqlstate:
        return False
    return sqlstate in _LOST_SQLSTATES or sqlstate.startswith("08")  # 08: connection exception


# What libpq says of a connection that was cut or refused for now (it gives connection
# errors no SQLSTATE): the server going away, restarting, or full.
_LOST_SIGNS = (
    "Connection refused",
    "server closed the connection",
    "terminating connection",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "too many clients",
    "timeout expired",
    "Connection reset",
    "No route to host",
    "Network is unreachable",
    "SSL connection has been closed unexpectedly",
    "consuming input failed",
    "receiving copy data failed",
    "sending copy data failed",
    "the connection is lost",
    "the connection is closed",
)


def connection_lost(exc: psycopg.Error) -> bool:
    """Whether ``exc`` is a lost or refused connection (which may pass), not a refusal
    that needs a fix (authentication, pg_hba.conf, a missing database or privilege)."""
    if exc.sqlstate is not None:
        return lost_sqlstate(exc.sqlstate)
    text = str(exc)
    return any(sign in text for sign in _LOST_SIGNS)


def explain_connect_error(
    exc: Exception,
    where: str,
    replication: bool,
    config: PostgresSourceConfig | None = None,
    user: str | None = None,
) -> str:
    """A failed connection to ``where`` (host:port) as ``user``, as a message naming the
    fix; ``config`` tells which TLS keys are set."""
    # libpq: a line per address tried ("connection to server at ..."), each followed by
    # hint lines (indented, or not: "Either provide the file..."); the last attempt's line
    # holds the reason ("Connection refused"), its hints follow it.
    lines = [line for line in str(exc).splitlines() if line.strip()] or [repr(exc)]
    attempt = re.compile(r"^(connection failed: )?connection to server ")
    starts = [i for i, line in enumerate(lines) if attempt.match(line)] or [0]
    text = "; ".join(line.strip() for line in lines[starts[-1] :])
    text = re.sub(r"^connection failed: ", "", text)
    what = f"cannot connect to PostgreSQL at {where}"
    tls = tls_hint(text, config)
    if tls is not None:
        return f"{what}: {text}; {tls}"
    if "pg_hba.conf" in text and replication:
        return (
            f"{what} for replication: {text}; allow it in pg_hba.conf "
            "('host <database> <user> <address> scram-sha-256': a logical replication "
            "session matches its database, not 'replication') and reload"
        )
    if "password authentication failed" in text or "no password supplied" in text:
        return f"{what}: {text}; set the password with source.password_env or source.password_file"
    database = re.search(r'permission denied for database "([^"]+)"', text)
    if database is not None:
        grantee = identifier(user) if user else "<user>"
        fix = f"GRANT CONNECT ON DATABASE {identifier(database[1])} TO {grantee}"
        return f"{what}: {text}; grant it: {fix}"
    if (
        "must be superuser or replication role" in text
        or "permission denied to start WAL sender" in text
    ):
        return f"{what}: {text}; grant it with: ALTER ROLE <user> REPLICATION"
    return f"{what}: {text} (check source.dsn)"


def connect_error(
    exc: psycopg.OperationalError,
    where: str,
    replication: bool,
    config: PostgresSourceConfig | None = None,
    user: str | None = None,
) -> SourceError:
    """A failed connection as the error to raise: unavailable if it may pass."""
    message = explain_connect_error(exc, where, replication, config, user)
    if connection_lost(exc):
        return SourceUnavailableError(message)
    return SourceError(message)


def replication_lost(exc: psycopg.OperationalError, where: str) -> SourceUnavailableError:
    """Reading from or writing to the replication connection failed."""
    return SourceUnavailableError(f"lost the replication connection to {where}: {exc}")


def stream_ended(pgconn: Any, slot: str) -> SourceError:
    """The server ended the COPY: a terminated backend or a server shutting down may
    pass (the daemon starts over); any other reason stops it."""
    error = pgconn.error_message.decode(errors="replace").strip()
    sqlstate = None
    with contextlib.suppress(Exception):
        result = pgconn.get_result()  # the reason comes with the COPY's result
        if result is not None:
            sqlstate = (result.error_field(pq.DiagnosticField.SQLSTATE) or b"").decode()
            error = error or result.error_message.decode(errors="replace").strip()
    message = f"PostgreSQL ended the replication stream of slot {slot!r}" + (
        f": {error}" if error else ""
    )
    if not error and not sqlstate:
        # A walsender ends the COPY without an error only when the server shuts down
        # (smart or fast: it sends what it has, then CopyDone): wait for it to return.
        return SourceUnavailableError(f"{message} (the server is shutting down)")
    if pgconn.status == pq.ConnStatus.BAD or lost_sqlstate(sqlstate):
        return SourceUnavailableError(message)
    return SourceError(message)


def stream_error(exc: psycopg.OperationalError, where: str) -> SourceError:
    """A failure of the metadata connection (primary keys of a new relation) or of a
    status update while streaming."""
    if connection_lost(exc):
        return SourceUnavailableError(f"lost the connection to PostgreSQL at {where}: {exc}")
    return SourceError(f"PostgreSQL at {where}: {exc}")
