"""PostgreSQL: a database of its own (its extensions, types and one table per case), a
slot for each reader made before the changes, the changes, then cdcd and Debezium."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from support import unique_name

from compat.capture import Captured, run_cdcd, run_debezium
from compat.cases import PG_SETUP, Case


@contextmanager
def _database(admin_dsn: str) -> Iterator[str]:
    """A fresh database, dropped afterwards with the slots in it."""
    name = unique_name("compat")
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE database = %s AND NOT active",
                (name,),
            )
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def capture(admin_dsn: str, cases: list[Case], workdir: Path) -> Captured:
    with _database(admin_dsn) as name:
        url = urlsplit(admin_dsn)
        dsn = urlunsplit(url._replace(path=f"/{name}", query="sslmode=disable"))
        with psycopg.connect(dsn, autocommit=True) as conn:
            for statement in PG_SETUP:
                conn.execute(statement)
            for case in cases:
                conn.execute(case.create())
                if not case.statements:  # the TOAST case keeps the default identity
                    conn.execute(f"ALTER TABLE {case.table} REPLICA IDENTITY FULL")
            tables = ", ".join(case.table for case in cases)
            conn.execute(f"CREATE PUBLICATION {name} FOR TABLE {tables}")
            for reader in ("cdcd", "dbz"):
                conn.execute(
                    "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')",
                    (f"{name}_{reader}",),
                )
            for case in cases:
                for statement in case.changes():
                    conn.execute(statement)
        count = sum(case.expected_records() for case in cases)
        cdcd, error = run_cdcd(
            workdir,
            {
                "name": name,
                "source": {
                    "kind": "postgres",
                    "dsn": dsn,
                    "tables": [f"public.{case.table}" for case in cases],
                    "slot_name": f"{name}_cdcd",
                    "publication_name": name,
                    "create_slot": False,
                    "create_publication": False,
                },
            },
            count,
            may_stop=any(case.cdcd_stops for case in cases),
        )
        debezium = run_debezium(
            workdir,
            "postgres",
            {
                "name": name,
                "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
                "database.hostname": url.hostname or "127.0.0.1",
                "database.port": str(url.port or 5432),
                "database.user": url.username or "postgres",
                "database.password": url.password or "",
                "database.dbname": name,
                "database.sslmode": "disable",
                "topic.prefix": name,
                "plugin.name": "pgoutput",
                "slot.name": f"{name}_dbz",
                "publication.name": name,
                "publication.autocreate.mode": "disabled",
                "snapshot.mode": "no_data",
                "table.include.list": r"public\.c_.*",
            },
            count,
        )
    return Captured(debezium, cdcd, error)
