"""Server checks for MySQL/MariaDB binlog streaming, each finding with the fix."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cdcd.sources.base import Problem, selection_problems

if TYPE_CHECKING:
    from cdcd.selection import TableSelection
    from cdcd.sources.mysql.config import MysqlSourceConfig

SYSTEM_SCHEMAS = frozenset({"mysql", "information_schema", "performance_schema", "sys"})


@dataclass(frozen=True, slots=True)
class ServerInfo:
    flavor: str  # "mysql" or "mariadb"
    version: str
    variables: dict[str, str]

    @property
    def identity(self) -> str:
        """Names this server among others: MySQL's server_uuid, else the server_id (unique
        in a replication topology)."""
        uuid = self.variables.get("server_uuid")
        return f"uuid:{uuid}" if uuid else f"id:{self.variables.get('server_id', '')}"

    @property
    def stream_identity(self) -> str:
        """Names the stream, whichever server of the topology serves it (the key of an
        active/standby pair's dedup record): MariaDB's GTID domain; MySQL with GTIDs, its
        GTID set's own (one set across primary and replicas); else this server's."""
        if self.flavor == "mariadb":
            return f"mariadb:domain:{self.variables.get('gtid_domain_id', '0')}"
        return "mysql:gtid" if self.gtid_enabled else f"mysql:{self.identity}"

    @property
    def gtid_enabled(self) -> bool:
        if self.flavor == "mariadb":
            return True  # MariaDB always writes GTIDs
        return self.variables.get("gtid_mode", "OFF").upper() == "ON"


def server_info(cursor: Any) -> ServerInfo:
    cursor.execute("SELECT VERSION()")
    (version,) = cursor.fetchone()
    flavor = "mariadb" if "mariadb" in version.lower() else "mysql"
    cursor.execute(
        "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin', 'binlog_format', "
        "'binlog_row_image', 'binlog_row_metadata', 'gtid_mode', 'enforce_gtid_consistency', "
        "'binlog_transaction_compression', 'log_bin_compress', 'server_id', 'gtid_strict_mode', "
        "'binlog_checksum', 'gtid_domain_id', 'server_uuid')"
    )
    variables = {name.lower(): str(value) for name, value in cursor.fetchall()}
    return ServerInfo(flavor, version, variables)


def _setting(name: str, value: str) -> str:
    return f"SET GLOBAL {name} = '{value}' and put {name} = {value} in the server's my.cnf"


def run_checks(cursor: Any, config: MysqlSourceConfig, info: ServerInfo) -> list[Problem]:
    """What stops or spoils binlog streaming on this server."""
    problems: list[Problem] = []
    v = info.variables
    if v.get("log_bin", "OFF").upper() not in ("ON", "1"):
        problems.append(
            Problem(
                "the binary log is off (log_bin = OFF)",
                "start the server with log_bin (log-bin = mysql-bin in my.cnf) and a server_id",
            )
        )
    for name, wanted in (("binlog_format", "ROW"), ("binlog_row_image", "FULL")):
        actual = v.get(name, "")
        if actual.upper() != wanted:
            problems.append(
                Problem(f"{name} is '{actual}', cdcd needs '{wanted}'", _setting(name, wanted))
            )
    metadata = v.get("binlog_row_metadata")
    if metadata is None:
        problems.append(
            Problem(
                f"{info.flavor} {info.version} has no binlog_row_metadata: the binlog does not "
                "name columns",
                "upgrade to MySQL 8.0.14+ or MariaDB 10.5+ and set binlog_row_metadata = FULL",
            )
        )
    elif metadata.upper() != "FULL":
        problems.append(
            Problem(
                f"binlog_row_metadata is '{metadata}', cdcd needs 'FULL' (column names in the binlog)",
                _setting("binlog_row_metadata", "FULL"),
            )
        )
    if v.get("binlog_transaction_compression", "OFF").upper() in ("ON", "1"):
        problems.append(
            Problem(
                "binlog_transaction_compression is ON: cdcd cannot read compressed transactions yet",
                _setting("binlog_transaction_compression", "OFF"),
            )
        )
    if v.get("log_bin_compress", "OFF").upper() in ("ON", "1"):
        problems.append(
            Problem(
                "log_bin_compress is ON: cdcd cannot read compressed binlog events yet",
                _setting("log_bin_compress", "OFF"),
            )
        )
    if not info.gtid_enabled:
        problems.append(
            Problem(
                "gtid_mode is OFF: positions are binlog file/pos, which do not survive a failover "
                "to another server",
                "SET GLOBAL enforce_gtid_consistency = ON, then step gtid_mode to ON "
                "(OFF_PERMISSIVE, ON_PERMISSIVE, ON)",
                fatal=False,
            )
        )
    problems += _privilege_problems(cursor, info)
    problems += _table_problems(cursor, config)
    problems += _select_problems(cursor, config)
    return problems


def _current_user(cursor: Any) -> str:
    """The account as a GRANT names it: ``'name'@'host'``."""
    cursor.execute("SELECT CURRENT_USER()")
    name, _, host = str(cursor.fetchone()[0]).rpartition("@")
    return f"'{name}'@'{host}'"


def _privilege_problems(cursor: Any, info: ServerInfo) -> list[Problem]:
    """The global privileges (``docs/privileges.md``)."""
    cursor.execute("SHOW GRANTS FOR CURRENT_USER()")
    grants = " ".join(row[0] for row in cursor.fetchall()).upper()
    user = _current_user(cursor)
    problems = []
    has_all = bool(re.search(r"GRANT ALL PRIVILEGES ON \*\.\*", grants))
    if not (has_all or "REPLICATION SLAVE" in grants or "REPLICATION REPLICA" in grants):
        problems.append(
            Problem(
                "the user lacks the REPLICATION SLAVE privilege (needed to read the binlog)",
                f"GRANT REPLICATION SLAVE ON *.* TO {user}",
            )
        )
    monitor = ("REPLICATION CLIENT", "BINLOG MONITOR", "SUPER")
    if not (has_all or any(p in grants for p in monitor)):
        privilege = "BINLOG MONITOR" if info.flavor == "mariadb" else "REPLICATION CLIENT"
        problems.append(
            Problem(
                f"the user lacks {privilege} to read binlog positions (SHOW BINARY LOGS)",
                f"GRANT {privilege} ON *.* TO {user}",
            )
        )
    # MariaDB reads a consistent snapshot's position without a lock; MySQL needs a
    # moment of FLUSH TABLES WITH READ LOCK (snapshot_view).
    if info.flavor == "mysql" and not (has_all or re.search(r"\bRELOAD\b", grants)):
        problems.append(
            Problem(
                "the user lacks RELOAD: an initial snapshot cannot take the brief FLUSH TABLES "
                "WITH READ LOCK of its consistent view, and is read in watermarked chunks while "
                "streaming instead",
                f"GRANT RELOAD ON *.* TO {user}",
                fatal=False,
            )
        )
    return problems


def _select_problems(cursor: Any, config: MysqlSourceConfig) -> list[Problem]:
    """Captured tables the user sees but may not read (a table it has no privilege on
    at all it does not see: ``_table_problems``): their snapshots would fail."""
    unreadable = []
    for schema, table in captured_tables(cursor, config):
        try:
            cursor.execute(f"SELECT 1 FROM {_quoted(schema)}.{_quoted(table)} LIMIT 0")
            cursor.fetchall()
        except Exception as exc:  # noqa: BLE001 - pymysql is not imported here
            if not exc.args or exc.args[0] not in (1142, 1143):  # SELECT command denied
                raise
            unreadable.append(f"{_quoted(schema)}.{_quoted(table)}")
    if not unreadable:
        return []
    user = _current_user(cursor)
    return [
        Problem(
            f"the user may not SELECT from {len(unreadable)} captured table(s) "
            f"({', '.join(unreadable[:5])}): their snapshots fail; streaming needs no SELECT",
            "; ".join(f"GRANT SELECT ON {name} TO {user}" for name in unreadable),
            fatal=False,
        )
    ]


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def list_tables(cursor: Any) -> list[tuple[str, str, bool]]:
    """Every base table the user may see, but the system's: ``(database, table, has a
    primary key)``, ordered by name."""
    # STATISTICS, not TABLE_CONSTRAINTS: MariaDB shows a user with only SELECT on a table
    # none of its constraints, and every table would seem to lack a primary key. Two flat
    # queries: one correlated with the other took 200 ms for a hundred tables (MariaDB
    # opens each table's definition per row), at every start and check.
    cursor.execute(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_type = 'BASE TABLE' ORDER BY 1, 2"
    )
    tables = cursor.fetchall()
    cursor.execute(
        "SELECT DISTINCT table_schema, table_name FROM information_schema.statistics "
        "WHERE index_name = 'PRIMARY'"
    )
    keyed = {(schema, table) for schema, table in cursor.fetchall()}
    return [
        (schema, table, (schema, table) in keyed)
        for schema, table in tables
        if schema not in SYSTEM_SCHEMAS
    ]


def captured_tables(cursor: Any, config: TableSelection) -> list[tuple[str, str]]:
    """The existing tables whose changes the configuration captures."""
    return [(db, table) for db, table, _ in list_tables(cursor) if config.includes(db, table)]


def _table_problems(cursor: Any, config: MysqlSourceConfig) -> list[Problem]:
    tables = list_tables(cursor)
    problems = [
        Problem(
            f"table {schema}.{table} has no primary key: its events have no key",
            f"add a primary key to {schema}.{table} if its events need ordering per row",
            fatal=False,
        )
        for schema, table, has_pk in tables
        if config.includes(schema, table) and not has_pk
    ]
    databases = None
    if config.databases is not None:
        cursor.execute("SELECT schema_name FROM information_schema.schemata")
        databases = [name for (name,) in cursor.fetchall() if name not in SYSTEM_SCHEMAS]
    return problems + selection_problems(
        config.selection,
        [(schema, table) for schema, table, _ in tables],
        databases,
        where="on the server (that the user may see: it needs SELECT on the tables)",
        schema_word="database",
    )
