"""Sessions with PostgreSQL: the metadata connection and the replication one, over TLS
as the ``source.ssl*`` keys say (``tls``).

Every session is opened with the settings the type converters assume (``types``): UTC,
ISO dates, ``IntervalStyle=postgres``, hex bytea, C money, round-tripping floats, and
UTF-8 text (a snapshot's rows are decoded as UTF-8, as pgoutput's are).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from cdcd.errors import ConfigError, SourceUnavailableError
from cdcd.selection import dsn_parts, hide_password
from cdcd.sources.postgres.errors import connect_error
from cdcd.sources.postgres.tls import tls_parameters

if TYPE_CHECKING:
    from cdcd.sources.postgres.config import PostgresSourceConfig

SESSION_OPTIONS = (
    "-c TimeZone=UTC -c DateStyle=ISO -c IntervalStyle=postgres -c extra_float_digits=3 "
    "-c bytea_output=hex -c lc_monetary=C"
)


class Connector:
    """Opens the sessions of one source (``source.dsn``, its password)."""

    def __init__(self, config: PostgresSourceConfig, application_name: str) -> None:
        self.config = config
        self.application_name = application_name
        try:  # libpq's reading of the URL: an error is a traceback at connect, else
            conninfo_to_dict(config.dsn)
        except psycopg.ProgrammingError as exc:
            raise ConfigError(
                f"source.dsn: {hide_password(str(exc).strip(), config.dsn)}"
            ) from None
        parts = dsn_parts(config.dsn)
        self.database: str = parts["database"]
        self.user: str | None = parts["user"]  # as the GRANTs cdcd suggests name it
        self.where = f"{parts['host']}:{parts['port'] or 5432}"  # as messages name the server
        self.tls = tls_parameters(config)  # (a file that cannot be read: a ConfigError now)

    async def connect(self, replication: bool = False) -> psycopg.AsyncConnection[Any]:
        """A session in autocommit; ``replication``: a walsender's (START_REPLICATION)."""
        password = self.config.password()
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": 10,
            "application_name": self.application_name,
            "options": SESSION_OPTIONS,
            "client_encoding": "UTF8",  # the database's (cdcd requires UTF8), whatever PGCLIENTENCODING says
            **self.tls,
        }
        if password is not None:
            kwargs["password"] = password.get_secret_value()
        sslpassword = self.config.sslpassword()
        if sslpassword is not None:
            kwargs["sslpassword"] = sslpassword.get_secret_value()
        if replication:
            kwargs["replication"] = "database"
        try:
            return await psycopg.AsyncConnection.connect(self.config.dsn, **kwargs)
        except psycopg.OperationalError as exc:
            raise connect_error(exc, self.where, replication, self.config, self.user) from None


def watch_socket(loop: Any, fd: int, callback: Any) -> None:
    """``loop.add_reader(fd, callback)``; uvloop refuses it while the poll handle of an
    earlier socket with the same number is still being closed (a connection lost a
    moment ago): a failure that passes, so the stream starts over."""
    try:
        loop.add_reader(fd, callback)
    except RuntimeError as exc:
        raise SourceUnavailableError(f"cannot watch the replication connection: {exc}") from None
