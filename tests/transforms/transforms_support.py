"""A database (PostgreSQL schema or MariaDB database) of the transforms' tests, with an
``orders`` and an ``outbox`` table, and a daemon configuration that reads both."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from support import unique_name

PG_TABLES = {
    "orders": "id int PRIMARY KEY, customer text NOT NULL, amount int NOT NULL, "
    "email text, note text",
    "outbox": "id uuid PRIMARY KEY, aggregatetype varchar(255) NOT NULL, "
    "aggregateid varchar(255) NOT NULL, type varchar(255) NOT NULL, payload jsonb",
}
MARIADB_TABLES = {
    "orders": "id int PRIMARY KEY, customer varchar(64) NOT NULL, amount int NOT NULL, "
    "email varchar(128), note varchar(255)",
    "outbox": "id char(36) PRIMARY KEY, aggregatetype varchar(255) NOT NULL, "
    "aggregateid varchar(255) NOT NULL, type varchar(255) NOT NULL, payload json",
}


@dataclass
class Db:
    """``run(statements)``: the statements in one transaction (``%s`` parameters)."""

    kind: str
    name: str
    source: dict[str, Any]
    run: Callable[[list[tuple[str, tuple[Any, ...]]]], None]

    def config(self, bootstrap: str, **sections: Any) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "sink": {"kind": "kafka", "bootstrap_servers": bootstrap, "topic_prefix": self.name},
            "log": {"level": "info", "format": "json"},
            **sections,
        }


@contextmanager
def postgres_db(dsn: str, tables: dict[str, str] = PG_TABLES) -> Iterator[Db]:
    import psycopg

    name = unique_name("tf")
    admin = psycopg.connect(dsn, autocommit=True)
    admin.execute(f"CREATE SCHEMA {name}")
    for table, columns in tables.items():
        admin.execute(f"CREATE TABLE {name}.{table} ({columns})")
        # Whole rows in a delete's before, as MariaDB's binlog has them.
        admin.execute(f"ALTER TABLE {name}.{table} REPLICA IDENTITY FULL")
    writer = psycopg.connect(dsn, autocommit=True)

    def run(statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        with writer.transaction():
            for sql, params in statements:
                writer.execute(sql.replace("{db}", name), params)  # type: ignore[arg-type]

    source = {"kind": "postgres", "dsn": dsn, "tables": [f"{name}\\.(orders|outbox)"]}
    try:
        yield Db("postgres", name, source, run)
    finally:
        writer.close()
        for _ in range(50):  # the last daemon may hold the slot for a moment
            row = admin.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name = %s AND NOT active",
                (f"cdcd_{name}",),
            ).fetchone()
            gone = admin.execute(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (f"cdcd_{name}",)
            ).fetchone()
            if row is not None or gone is None:
                break
            time.sleep(0.2)
        admin.execute(f"DROP PUBLICATION IF EXISTS cdcd_{name}")
        admin.execute(f"DROP SCHEMA {name} CASCADE")
        admin.close()


@contextmanager
def mariadb_db(url: str, tables: dict[str, str] = MARIADB_TABLES) -> Iterator[Db]:
    import pymysql

    name = unique_name("tf")
    parts = urlsplit(url)

    def connect() -> Any:
        return pymysql.connect(
            host=parts.hostname,
            port=parts.port,
            user=parts.username,
            password=parts.password or "",
            autocommit=True,
        )

    admin = connect()
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
        for table, columns in tables.items():
            cursor.execute(f"CREATE TABLE {name}.{table} ({columns})")
    writer = connect()

    def run(statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        with writer.cursor() as cursor:
            cursor.execute("BEGIN")
            for sql, params in statements:
                cursor.execute(sql.replace("{db}", name), params)
            cursor.execute("COMMIT")

    source = {"kind": "mysql", "dsn": url, "tables": [f"{name}\\.(orders|outbox)"]}
    try:
        yield Db("mariadb", name, source, run)
    finally:
        writer.close()
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE {name}")
        admin.close()


@contextmanager
def database(kind: str, request: Any) -> Iterator[Db]:
    """The ``kind`` ("postgres" or "mariadb") test database (``request``: pytest's, to
    start only the server that is asked for)."""
    if kind == "postgres":
        with postgres_db(request.getfixturevalue("pg_dsn")) as db:
            yield db
    else:
        with mariadb_db(request.getfixturevalue("mysql_url")) as db:
            yield db
