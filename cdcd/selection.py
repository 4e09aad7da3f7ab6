"""Which tables a source captures, and where its server is: plain functions of the
``source.*`` values, apart from the configuration's models (the MySQL reader process
uses them without importing pydantic)."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit


class TableSelection:
    """The include and exclude lists: ``tables`` (``schema.table``) and ``databases``
    (PostgreSQL: schemas), None meaning all; the excluded ones win."""

    if TYPE_CHECKING:  # set by the subclass (a pydantic model, or plain attributes)
        tables: Collection[str] | None
        exclude_tables: Collection[str]
        databases: Collection[str] | None
        exclude_databases: Collection[str]

    def includes(self, namespace: str, table: str) -> bool:
        """Whether changes of ``namespace.table`` are captured."""
        if namespace in self.exclude_databases:
            return False
        if self.databases is not None and namespace not in self.databases:
            return False
        name = f"{namespace}.{table}"
        if name in self.exclude_tables:
            return False
        return self.tables is None or name in self.tables

    def captured_databases(self) -> set[str] | None:
        """The databases (schemas) whose tables may be captured; None: any."""
        if self.tables is not None:
            names = {name.split(".", 1)[0] for name in self.tables}
            if self.databases is not None:
                names &= set(self.databases)
            return names - set(self.exclude_databases)
        if self.databases is not None:
            return set(self.databases) - set(self.exclude_databases)
        return None


class _PlainSecret(str):
    def get_secret_value(self) -> str:
        return str(self)


class PlainConfig(TableSelection):
    """A source's ``source.*`` as plain attributes, for a reader process: pickled to it,
    it needs neither pydantic nor the configuration's models (~20 MB of its memory). The
    password (``password_env``/``password_file``) is read once, by the daemon."""

    def __init__(self, values: dict[str, Any], secret: str | None) -> None:
        self.__dict__.update(values)
        self._secret = secret

    @classmethod
    def of(cls, config: Any) -> PlainConfig:
        """``config``: a source's configuration model."""
        secret = config.password()
        return cls(config.model_dump(), None if secret is None else secret.get_secret_value())

    def password(self) -> _PlainSecret | None:
        return None if self._secret is None else _PlainSecret(self._secret)


def dsn_parts(dsn: str) -> dict[str, Any]:
    """Host, port, user, password and database of a source URL (password never logged)."""
    url = urlsplit(dsn)
    return {
        "host": url.hostname or "127.0.0.1",
        "port": url.port,
        "user": unquote(url.username) if url.username else None,
        "password": unquote(url.password) if url.password else None,
        "database": unquote(url.path.strip("/")) or None,
    }
