"""What ``cdcd check`` verifies on PostgreSQL, each finding with the fix."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg

from cdcd.sources.base import Problem

if TYPE_CHECKING:
    from cdcd.config import PostgresSourceConfig


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
                Problem(f"{setting} is {value}", f"set {setting} to at least 4 and restart PostgreSQL")
            )

    user, superuser, replication = await _one(
        conn, "SELECT current_user, rolsuper, rolreplication FROM pg_roles WHERE rolname = current_user"
    )
    if not (superuser or replication):
        problems.append(
            Problem(
                f"role {user!r} has no REPLICATION attribute",
                f"ALTER ROLE {user} REPLICATION  (as a superuser)",
            )
        )

    slot_row = await _one(
        conn,
        "SELECT plugin, database, active, active_pid FROM pg_replication_slots WHERE slot_name = %s",
        (slot,),
    )
    (database,) = await _one(conn, "SELECT current_database()")
    if slot_row is None:
        if not config.create_slot:
            problems.append(
                Problem(
                    f"replication slot {slot!r} does not exist and source.create_slot is false",
                    f"SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput'), "
                    "or set source.create_slot = true",
                )
            )
    else:
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

    pub_row = await _one(conn, "SELECT puballtables FROM pg_publication WHERE pubname = %s", (publication,))
    published: set[tuple[str, str]] | None = None
    if pub_row is None:
        if not config.create_publication:
            problems.append(
                Problem(
                    f"publication {publication!r} does not exist and source.create_publication is false",
                    f"CREATE PUBLICATION {publication} FOR ALL TABLES (or FOR TABLE ...)",
                )
            )
        elif config.tables is None and not superuser:
            problems.append(
                Problem(
                    f"publication {publication!r} does not exist and creating it FOR ALL TABLES "
                    f"needs a superuser, which {user!r} is not",
                    f"as a superuser: CREATE PUBLICATION {publication} FOR ALL TABLES; "
                    "or list the tables in source.tables",
                )
            )
    elif not pub_row[0]:
        cur = await conn.execute(
            "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s", (publication,)
        )
        published = {(s, t) for s, t in await cur.fetchall()}

    cur = await conn.execute(
        "SELECT n.nspname, c.relname, c.relreplident, "
        "EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition "
        "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%' "
        "ORDER BY 1, 2"
    )
    existing = set()
    for schema, table, identity, has_pk in await cur.fetchall():
        existing.add(f"{schema}.{table}")
        if not config.includes(schema, table):
            continue
        name = f"{schema}.{table}"
        if published is not None and (schema, table) not in published:
            problems.append(
                Problem(
                    f"table {name} is not in publication {publication!r}: its changes are not streamed",
                    f"ALTER PUBLICATION {publication} ADD TABLE {name}",
                )
            )
        if identity == "n" or (identity == "d" and not has_pk):
            problems.append(
                Problem(
                    f"table {name} has no primary key and no replica identity: once published, "
                    "its UPDATEs and DELETEs fail on the server",
                    f"add a primary key, or ALTER TABLE {name} REPLICA IDENTITY FULL",
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
    for name in config.tables or ():
        if name not in existing:
            problems.append(
                Problem(
                    f"table {name} (source.tables) does not exist in database {database!r}",
                    "create it, or fix the name in source.tables (schema.table)",
                )
            )
    return problems
