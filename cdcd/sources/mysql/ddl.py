"""DDL statements of the binlog: which database one is about, and which are published."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from cdcd.sources.mysql.checks import SYSTEM_SCHEMAS

if TYPE_CHECKING:
    from cdcd.sources.mysql.config import MysqlSourceConfig

_DDL_TABLE = re.compile(
    r"^\s*(?:CREATE|ALTER|DROP|RENAME|TRUNCATE)\s+(?:TEMPORARY\s+)?(?:TABLE|VIEW)\s+"
    r"(?:IF\s+(?:NOT\s+)?EXISTS\s+)?`?([^`.\s]+)`?\.",
    re.IGNORECASE,
)
_DDL_DATABASE = re.compile(
    r"^\s*(?:CREATE|ALTER|DROP)\s+(?:DATABASE|SCHEMA)\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?`?([^`\s;]+)`?",
    re.IGNORECASE,
)


def ddl_database(statement: str, default_schema: bytes | str | None) -> str:
    """The database a DDL statement is about: its qualifier, else the session's default."""
    match = _DDL_TABLE.match(statement) or _DDL_DATABASE.match(statement)
    if match:
        return match.group(1)
    if isinstance(default_schema, bytes):
        return default_schema.decode()
    return default_schema or ""


class DatabaseFilter:
    """Whether DDL of a database is published: the database filters let it through and,
    with a table include list, a table of it is captured. ``table_databases`` holds the
    databases of captured tables (from the catalog at stream start, and from the table
    maps since); it is shared, and grows while the stream is read."""

    def __init__(self, config: MysqlSourceConfig, table_databases: set[str]) -> None:
        self.config = config
        self.table_databases = table_databases

    def captures(self, database: str) -> bool:
        config = self.config
        if database in SYSTEM_SCHEMAS or not config.selection.includes_database(database):
            return False
        return config.tables is None or database in self.table_databases
