"""Which tables a source captures, and where its server is: plain functions of the
``source.*`` values, apart from the configuration's models (the MySQL reader process
uses them without importing pydantic).

The entries of ``tables``/``exclude_tables`` are regular expressions matched against the
whole qualified name ``schema.table`` (MySQL: ``database.table``), those of
``databases``/``exclude_databases`` against the schema (database) name, as Debezium's
``table.include.list`` and ``schema.include.list``/``database.include.list`` are: anchored
at both ends and case-insensitive for ASCII letters (Java's ``Pattern.CASE_INSENSITIVE``,
which Debezium compiles them with). An inline table (``{schema = "public", table =
"with.dot"}``, ``database`` for ``schema`` alike) names one table literally, exactly as
the server spells it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

# Java's CASE_INSENSITIVE folds ASCII letters only, and its \w, \d, \s are ASCII too.
_FLAGS = re.IGNORECASE | re.ASCII
_NAMESPACE_KEYS = ("schema", "database")
TABLE_KEYS = ("tables", "exclude_tables")
DATABASE_KEYS = ("databases", "exclude_databases")


class NameEntry:
    """One entry of an include or exclude list: a regular expression over the whole name,
    or a literal name (``literal``: the parts, compared exactly)."""

    __slots__ = ("literal", "regex", "text")

    def __init__(self, text: str, regex: re.Pattern[str] | None, literal: tuple[str, ...]) -> None:
        self.text = text  # as the configuration writes it, for messages
        self.regex = regex
        self.literal = literal

    def matches(self, *parts: str) -> bool:
        """Whether ``parts`` (``(schema, table)`` or ``(schema,)``) is a name it selects."""
        if self.regex is not None:
            return self.regex.fullmatch(".".join(parts)) is not None
        return parts == self.literal


def parse_entry(key: str, value: Any) -> NameEntry:
    """An entry of ``source.<key>``; ValueError saying what is wrong with it."""
    with_table = key in TABLE_KEYS
    if isinstance(value, str):
        if not value:
            raise ValueError("an entry is empty")
        try:
            return NameEntry(repr(value), re.compile(value, _FLAGS), ())
        except re.error as exc:
            raise ValueError(
                f"{value!r} is not a valid regular expression ({exc.msg} at position {exc.pos}); "
                "a name holding such characters can be written literally: "
                + _literal_example(with_table)
            ) from None
    if isinstance(value, Mapping):
        return _literal_entry(value, with_table)
    raise ValueError(
        f"{value!r} is neither a regular expression (a string) nor a literal name "
        + _literal_example(with_table)
    )


def _literal_example(with_table: bool) -> str:
    return '{schema = "...", table = "..."}' if with_table else '{schema = "..."}'


def _literal_entry(value: Mapping[str, Any], with_table: bool) -> NameEntry:
    allowed = (*_NAMESPACE_KEYS, "table") if with_table else _NAMESPACE_KEYS
    unknown = sorted(set(value) - set(allowed))
    namespaces = [k for k in _NAMESPACE_KEYS if k in value]
    if unknown or len(namespaces) != 1 or (with_table and "table" not in value):
        raise ValueError(
            f"{dict(value)!r} must be written {_literal_example(with_table)} "
            "(database is the same key as schema)"
        )
    parts = (value[namespaces[0]], value["table"]) if with_table else (value[namespaces[0]],)
    if not all(isinstance(part, str) and part for part in parts):
        raise ValueError(f"{dict(value)!r}: the names must be non-empty strings")
    text = ".".join(f'"{part}"' for part in parts)
    return NameEntry(text, None, tuple(parts))


def parse_entries(key: str, values: Iterable[Any] | None) -> tuple[NameEntry, ...] | None:
    """The entries of ``source.<key>`` (None: the key is not set)."""
    if values is None:
        return None
    return tuple(parse_entry(key, value) for value in values)


class TableFilter:
    """The include and exclude lists, compiled once. Include lists None mean all; the
    excluded ones win. Results are cached per table: a source asks once per relation
    (PostgreSQL) or table map (MySQL), never per row, and a name is matched only once."""

    def __init__(
        self,
        tables: Iterable[Any] | None,
        exclude_tables: Iterable[Any],
        databases: Iterable[Any] | None,
        exclude_databases: Iterable[Any],
    ) -> None:
        self.tables = parse_entries("tables", tables)
        self.exclude_tables = parse_entries("exclude_tables", exclude_tables) or ()
        self.databases = parse_entries("databases", databases)
        self.exclude_databases = parse_entries("exclude_databases", exclude_databases) or ()
        self._tables: dict[tuple[str, str], bool] = {}
        self._databases: dict[str, bool] = {}

    def includes_database(self, namespace: str) -> bool:
        """Whether the database (schema) filters let ``namespace`` through."""
        known = self._databases.get(namespace)
        if known is None:
            known = self._databases[namespace] = not any(
                e.matches(namespace) for e in self.exclude_databases
            ) and (self.databases is None or any(e.matches(namespace) for e in self.databases))
        return known

    def includes(self, namespace: str, table: str) -> bool:
        """Whether changes of ``namespace.table`` are captured."""
        known = self._tables.get((namespace, table))
        if known is None:
            known = self._tables[(namespace, table)] = (
                self.includes_database(namespace)
                and not any(e.matches(namespace, table) for e in self.exclude_tables)
                and (self.tables is None or any(e.matches(namespace, table) for e in self.tables))
            )
        return known

    def unmatched(
        self, existing: Sequence[tuple[str, str]], namespaces: Sequence[str] | None = None
    ) -> list[tuple[str, str, list[str]]]:
        """The include entries that select nothing that exists: ``(key, entry, names it
        matches that other entries leave out)``. ``existing``: every table there is;
        ``namespaces``: every schema (database), needed when ``databases`` is set."""
        found: list[tuple[str, str, list[str]]] = []
        for entry in self.tables or ():
            matched = [(s, t) for s, t in existing if entry.matches(s, t)]
            if not any(self.includes(s, t) for s, t in matched):
                found.append(("tables", entry.text, [f"{s}.{t}" for s, t in matched]))
        for entry in self.databases or ():
            if not any(entry.matches(name) for name in namespaces or ()):
                found.append(("databases", entry.text, []))
        return found


class TableSelection:
    """The ``tables``/``databases`` include and exclude lists of a source's
    configuration, as plain values (strings, inline tables); ``selection`` compiles them."""

    if TYPE_CHECKING:  # set by the subclass (a pydantic model, or plain attributes)
        tables: Sequence[Any] | None
        exclude_tables: Sequence[Any]
        databases: Sequence[Any] | None
        exclude_databases: Sequence[Any]

    @cached_property
    def selection(self) -> TableFilter:
        """The lists compiled (once per configuration object)."""
        return TableFilter(self.tables, self.exclude_tables, self.databases, self.exclude_databases)

    def includes(self, namespace: str, table: str) -> bool:
        """Whether changes of ``namespace.table`` are captured."""
        return self.selection.includes(namespace, table)


class _PlainSecret(str):
    def get_secret_value(self) -> str:
        return str(self)


class PlainConfig(TableSelection):
    """A source's ``source.*`` as plain attributes, for a reader process: pickled to it,
    it needs neither pydantic nor the configuration's models (~20 MB of its memory). The
    secrets (``password_env``/``password_file``, PostgreSQL's ``sslpassword_*``) are read
    once, by the daemon."""

    def __init__(self, values: dict[str, Any], secrets: dict[str, str]) -> None:
        self.__dict__.update(values)
        self._secrets = secrets

    @classmethod
    def of(cls, config: Any) -> PlainConfig:
        """``config``: a source's configuration model."""
        secrets = {k: v.get_secret_value() for k, v in config.secrets().items() if v is not None}
        return cls(config.model_dump(), secrets)

    def _secret(self, name: str) -> _PlainSecret | None:
        value = self._secrets.get(name)
        return None if value is None else _PlainSecret(value)

    def password(self) -> _PlainSecret | None:
        return self._secret("password")

    def sslpassword(self) -> _PlainSecret | None:
        return self._secret("sslpassword")


def hide_password(text: str, dsn: str) -> str:
    """``text`` (a driver's error about ``dsn``) with the DSN's password, as written and
    decoded, replaced by ``***``."""
    raw = urlsplit(dsn).password
    for secret in {raw, unquote(raw)} if raw else ():
        text = text.replace(secret, "***")
    return text


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
