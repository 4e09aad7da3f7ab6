"""The privileges the PostgreSQL source needs beyond REPLICATION, each missing one a
finding with the GRANT to run (``docs/privileges.md`` lists them all):

- SELECT on every captured table, for snapshots (the stream itself needs none);
- CREATE on the database and ownership of the captured tables, for a publication cdcd
  is to create FOR TABLE (FOR ALL TABLES needs a superuser: ``checks``);
- what ``heartbeat_action_query`` needs, found by running it in a transaction that is
  rolled back (so nothing is written: a sequence it calls moves on, as always).

CONNECT on the database is proved by the check's own session (a refusal says which
GRANT: ``errors.explain_connect_error``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import psycopg

from cdcd.sources.base import Problem

if TYPE_CHECKING:
    from cdcd.sources.postgres.checks import CatalogTable
    from cdcd.sources.postgres.config import PostgresSourceConfig

_PERMISSION_DENIED = re.compile(r"permission denied for (?:table|relation) (\S+)")
_PLAIN_NAME = re.compile(r"[a-z_][a-z0-9_$]*")
_SHOWN = 5  # tables named in a finding's text; its GRANT names them all


def identifier(name: str) -> str:
    """``name`` as SQL writes it in the statements cdcd suggests (quoted unless plain)."""
    if _PLAIN_NAME.fullmatch(name):
        return name
    return '"' + name.replace('"', '""') + '"'


def _names(tables: list[tuple[str, str]]) -> str:
    return ", ".join(f"{identifier(s)}.{identifier(t)}" for s, t in tables)


def _listed(tables: list[tuple[str, str]]) -> str:
    shown = ", ".join(f"{s}.{t}" for s, t in tables[:_SHOWN])
    return shown + (f" and {len(tables) - _SHOWN} more" if len(tables) > _SHOWN else "")


async def _captured_where(
    conn: psycopg.AsyncConnection[Any],
    config: PostgresSourceConfig,
    tables: list[CatalogTable],
    condition: str,
) -> list[tuple[str, str]]:
    """The captured tables for which ``condition`` (SQL over the table's ``c``) holds."""
    cur = await conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND {condition}"
    )
    flagged = {(s, t) for s, t in await cur.fetchall()}
    return [
        (t.schema, t.table)
        for t in tables
        if (t.schema, t.table) in flagged and config.includes(t.schema, t.table)
    ]


async def select_problems(
    conn: psycopg.AsyncConnection[Any],
    config: PostgresSourceConfig,
    tables: list[CatalogTable],
    user: str,
) -> list[Problem]:
    """Captured tables the role may not read (SELECT on each, USAGE on its schema): their
    snapshots would fail."""
    unreadable = await _captured_where(
        conn,
        config,
        tables,
        "NOT (has_table_privilege(c.oid, 'SELECT') AND has_schema_privilege(n.oid, 'USAGE'))",
    )
    if not unreadable:
        return []
    cur = await conn.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s) "
        "AND NOT has_schema_privilege(oid, 'USAGE') ORDER BY 1",
        (sorted({schema for schema, _ in unreadable}),),
    )
    grants = [
        f"GRANT USAGE ON SCHEMA {identifier(schema)} TO {identifier(user)}"
        for (schema,) in await cur.fetchall()
    ]
    grants.append(f"GRANT SELECT ON {_names(unreadable)} TO {identifier(user)}")
    return [
        Problem(
            f"role {user!r} may not SELECT from {len(unreadable)} captured table(s) "
            f"({_listed(unreadable)}): their snapshots fail (an initial snapshot, "
            "execute-snapshot signals); streaming needs no SELECT",
            "; ".join(grants),
            fatal=False,
        )
    ]


async def publication_creation_problems(
    conn: psycopg.AsyncConnection[Any],
    config: PostgresSourceConfig,
    tables: list[CatalogTable],
    publication: str,
    user: str,
) -> list[Problem]:
    """What a role that is no superuser lacks to create ``publication`` FOR TABLE the
    captured tables: CREATE on the database, and ownership of each table (being a member
    of the owner's role will do)."""
    captured = [(t.schema, t.table) for t in tables if config.includes(t.schema, t.table)]
    statement = f"CREATE PUBLICATION {identifier(publication)} FOR TABLE {_names(captured)}"
    problems = []
    cur = await conn.execute(
        "SELECT current_database(), has_database_privilege(current_database(), 'CREATE')"
    )
    row = await cur.fetchone()
    assert row is not None
    database, may_create = row
    if not may_create:
        name = identifier(database)
        problems.append(
            Problem(
                f"publication {publication!r} does not exist, and creating it needs CREATE on "
                f"database {database!r}, which role {user!r} lacks",
                f"GRANT CREATE ON DATABASE {name} TO {identifier(user)}; or create it as the "
                f"tables' owner: {statement}",
            )
        )
    not_owned = await _captured_where(conn, config, tables, "NOT pg_has_role(c.relowner, 'USAGE')")
    if not_owned:
        problems.append(
            Problem(
                f"publication {publication!r} does not exist, and only a table's owner may "
                f"publish it: role {user!r} does not own {_listed(not_owned)}",
                f"as their owner or a superuser: {statement}; or make {user!r} a member of "
                "their owner's role (GRANT <owner> TO ...)",
            )
        )
    return problems


async def heartbeat_query_problems(
    conn: psycopg.AsyncConnection[Any], config: PostgresSourceConfig, user: str
) -> list[Problem]:
    """``heartbeat_action_query`` run and rolled back: an error is a finding."""
    query = config.heartbeat_action_query
    if not query:
        return []
    try:
        async with conn.transaction(force_rollback=True):
            await conn.execute(query.encode())  # bytes: the configuration's text, as written
    except psycopg.Error as exc:
        message = exc.diag.message_primary or str(exc)
        denied = _PERMISSION_DENIED.search(message)
        fix = "fix source.heartbeat_action_query"
        if denied is not None:
            fix = (
                f"GRANT SELECT, INSERT, UPDATE ON {denied.group(1)} TO {identifier(user)} (what an "
                "upsert needs), or whatever else the query does"
            )
        return [Problem(f"source.heartbeat_action_query fails: {message}", fix)]
    return []
