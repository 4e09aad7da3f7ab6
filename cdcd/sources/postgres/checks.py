"""What ``cdcd check`` verifies on PostgreSQL, each finding with the fix."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import psycopg
from psycopg import sql

from cdcd.sources.base import Problem, selection_problems
from cdcd.sources.postgres.privileges import (
    heartbeat_query_problems,
    publication_creation_problems,
    select_problems,
)

if TYPE_CHECKING:
    from cdcd.selection import TableSelection
    from cdcd.sources.postgres.config import PostgresSourceConfig

_USER_SCHEMAS = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp%%'"
)


class CatalogTable(NamedTuple):
    """A table that logical replication can publish (partitions aside: they are
    published as their partitioned table's)."""

    schema: str
    table: str
    replica_identity: str  # pg_class.relreplident: d(efault), n(othing), f(ull), i(ndex)
    has_primary_key: bool


async def list_tables(conn: psycopg.AsyncConnection[Any]) -> list[CatalogTable]:
    """Every user table of the database, ordered by name."""
    cur = await conn.execute(
        "SELECT n.nspname, c.relname, c.relreplident, "
        "EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND {_USER_SCHEMAS} "
        "ORDER BY 1, 2"
    )
    return [CatalogTable(*row) for row in await cur.fetchall()]


async def captured_tables(
    conn: psycopg.AsyncConnection[Any], config: TableSelection
) -> list[tuple[str, str]]:
    """The existing tables whose changes the configuration captures."""
    return [
        (t.schema, t.table) for t in await list_tables(conn) if config.includes(t.schema, t.table)
    ]


async def _list_schemas(conn: psycopg.AsyncConnection[Any]) -> list[str]:
    cur = await conn.execute(f"SELECT n.nspname FROM pg_namespace n WHERE {_USER_SCHEMAS}")
    return [row[0] for row in await cur.fetchall()]


def quoted(conn: psycopg.AsyncConnection[Any], schema: str, table: str) -> str:
    """``"schema"."table"`` as SQL writes it, for the fixes cdcd suggests."""
    return sql.Identifier(schema, table).as_string(conn)


async def _one(conn: psycopg.AsyncConnection[Any], query: str, params: tuple[Any, ...] = ()) -> Any:
    cur = await conn.execute(query, params)
    row = await cur.fetchone()
    return row


async def run_checks(
    conn: psycopg.AsyncConnection[Any],
    config: PostgresSourceConfig,
    slot: str,
    publication: str,
    *,
    setup: bool = False,
) -> list[Problem]:
    """Check the server for logical replication with this configuration.

    ``setup`` is True when the daemon is about to start: then a missing publication or
    slot is only a problem if the configuration forbids creating it.
    """
    problems = await _server_problems(conn)
    user, superuser, replication = await _one(
        conn,
        "SELECT current_user, rolsuper, rolreplication FROM pg_roles WHERE rolname = current_user",
    )
    if not (superuser or replication):
        problems.append(
            Problem(
                f"role {user!r} has no REPLICATION attribute",
                f"ALTER ROLE {user} REPLICATION  (as a superuser)",
            )
        )
    (database,) = await _one(conn, "SELECT current_database()")
    problems += await _slot_problems(conn, config, slot, database, setup)
    tables = await list_tables(conn)
    published, found = await _publication_problems(
        conn, config, tables, publication, user, superuser
    )
    problems += found
    problems += _table_problems(conn, config, tables, publication, published)
    problems += await select_problems(conn, config, tables, user)
    problems += await heartbeat_query_problems(conn, config, user)
    schemas = await _list_schemas(conn) if config.databases is not None else None
    problems += selection_problems(
        config.selection,
        [(t.schema, t.table) for t in tables],
        schemas,
        where=f"in database {database!r}",
        schema_word="schema",
    )
    return problems


async def _server_problems(conn: psycopg.AsyncConnection[Any]) -> list[Problem]:
    """The server's settings for logical decoding."""
    problems: list[Problem] = []
    (wal_level,) = await _one(conn, "SHOW wal_level")
    if wal_level != "logical":
        problems.append(
            Problem(
                f"wal_level is '{wal_level}', logical decoding needs 'logical'",
                "set wal_level = logical in postgresql.conf (or ALTER SYSTEM SET wal_level = logical) "
                "and restart PostgreSQL",
            )
        )
    (slots,) = await _one(conn, "SHOW max_replication_slots")
    (senders,) = await _one(conn, "SHOW max_wal_senders")
    for setting, value in (("max_replication_slots", slots), ("max_wal_senders", senders)):
        if int(value) < 1:
            problems.append(
                Problem(
                    f"{setting} is {value}", f"set {setting} to at least 4 and restart PostgreSQL"
                )
            )
    return problems


async def _slot_problems(
    conn: psycopg.AsyncConnection[Any],
    config: PostgresSourceConfig,
    slot: str,
    database: str,
    setup: bool,
) -> list[Problem]:
    """The replication slot: missing (and not to be created), or not one cdcd can use."""
    slot_row = await _one(
        conn,
        "SELECT plugin, database, active, active_pid FROM pg_replication_slots WHERE slot_name = %s",
        (slot,),
    )
    if slot_row is None:
        if config.create_slot:
            return []
        return [
            Problem(
                f"replication slot {slot!r} does not exist and source.create_slot is false",
                f"SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput'), "
                "or set source.create_slot = true",
            )
        ]
    problems: list[Problem] = []
    plugin, slot_db, active, pid = slot_row
    if plugin != "pgoutput":
        problems.append(
            Problem(
                f"replication slot {slot!r} uses the plugin {plugin!r}, cdcd needs 'pgoutput'",
                f"drop it (SELECT pg_drop_replication_slot('{slot}')) or set source.slot_name",
            )
        )
    if slot_db != database:
        problems.append(
            Problem(
                f"replication slot {slot!r} belongs to database {slot_db!r}, not {database!r}",
                "set source.slot_name to a slot of this database",
            )
        )
    if active and not setup:
        problems.append(
            Problem(
                f"replication slot {slot!r} is in use by backend pid {pid}",
                "stop the other consumer (another cdcd with the same name?) first",
                fatal=False,
            )
        )
    return problems


async def _publication_problems(
    conn: psycopg.AsyncConnection[Any],
    config: PostgresSourceConfig,
    tables: list[CatalogTable],
    publication: str,
    user: str,
    superuser: bool,
) -> tuple[set[tuple[str, str]] | None, list[Problem]]:
    """(the tables the publication lists, None when it has them all or does not exist;
    the problems of a missing publication that cdcd may not or cannot create)."""
    pub_row = await _one(
        conn, "SELECT puballtables FROM pg_publication WHERE pubname = %s", (publication,)
    )
    if pub_row is None:
        if not config.create_publication:
            return None, [
                Problem(
                    f"publication {publication!r} does not exist and source.create_publication is false",
                    f"CREATE PUBLICATION {publication} FOR ALL TABLES (or FOR TABLE ...)",
                )
            ]
        if config.tables is None and not superuser:
            return None, [
                Problem(
                    f"publication {publication!r} does not exist and creating it FOR ALL TABLES "
                    f"needs a superuser, which {user!r} is not",
                    f"as a superuser: CREATE PUBLICATION {publication} FOR ALL TABLES; "
                    "or list the tables in source.tables",
                )
            ]
        if config.tables is not None and not superuser:
            return None, await publication_creation_problems(
                conn, config, tables, publication, user
            )
        return None, []
    if pub_row[0]:
        return None, []
    cur = await conn.execute(
        "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s", (publication,)
    )
    return {(s, t) for s, t in await cur.fetchall()}, []


def _table_problems(
    conn: psycopg.AsyncConnection[Any],
    config: PostgresSourceConfig,
    tables: list[CatalogTable],
    publication: str,
    published: set[tuple[str, str]] | None,
) -> list[Problem]:
    """The captured tables the publication leaves out, or whose changes lack a key."""
    problems: list[Problem] = []
    for schema, table, identity, has_pk in tables:
        if not config.includes(schema, table):
            continue
        name = f"{schema}.{table}"
        if published is not None and (schema, table) not in published:
            problems.append(
                Problem(
                    f"table {name} is not in publication {publication!r}: its changes are not streamed",
                    f"ALTER PUBLICATION {publication} ADD TABLE {quoted(conn, schema, table)}",
                )
            )
        if identity == "n" or (identity == "d" and not has_pk):
            problems.append(
                Problem(
                    f"table {name} has no primary key and no replica identity: once published, "
                    "its UPDATEs and DELETEs fail on the server",
                    f"add a primary key, or ALTER TABLE {quoted(conn, schema, table)} "
                    "REPLICA IDENTITY FULL",
                    fatal=False,
                )
            )
        elif not has_pk:
            problems.append(
                Problem(
                    f"table {name} has no primary key: its events have no key "
                    "(every change of it may go to any partition)",
                    f"add a primary key to {name} if its events need ordering per row",
                    fatal=False,
                )
            )
    return problems
