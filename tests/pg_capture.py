"""A fresh PostgreSQL table for a daemon to capture into Kafka, and the clean-up after it
(its schema, the daemon's slot and publication), for tests about the daemon as a whole."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from support import unique_name


@contextmanager
def captured_table(
    pg_dsn: str, kafka_bootstrap: str, prefix: str = "t"
) -> Iterator[tuple[dict[str, Any], psycopg.Connection[Any]]]:
    """A daemon's configuration capturing ``<name>.t (id int PRIMARY KEY)`` (streaming
    only) into topic ``<name>.<name>.t``, and an autocommit connection to write to it."""
    name = unique_name(prefix)
    conn = psycopg.connect(pg_dsn, autocommit=True)
    conn.execute(f"CREATE SCHEMA {name}")
    conn.execute(f"CREATE TABLE {name}.t (id int PRIMARY KEY)")
    config = {
        "name": name,
        "source": {"kind": "postgres", "dsn": pg_dsn, "tables": [f"{name}.t"]},
        "sink": {"kind": "kafka", "bootstrap_servers": kafka_bootstrap, "topic_prefix": name},
        "log": {"level": "info", "format": "json"},
        "snapshot": {"mode": "no_data"},
    }
    try:
        yield config, conn
    finally:
        drop_daemon_objects(conn, name)
        conn.execute(f"DROP SCHEMA {name} CASCADE")
        conn.close()


def drop_daemon_objects(conn: psycopg.Connection[Any], name: str) -> None:
    """What a stopped daemon named ``name`` left on the server: its slot and publication."""
    slot = f"cdcd_{name}"
    conn.execute(
        "SELECT pg_drop_replication_slot(%s) FROM pg_replication_slots WHERE slot_name = %s AND NOT active",
        (slot, slot),
    )
    conn.execute(f"DROP PUBLICATION IF EXISTS {slot}")


def topic_of(config: dict[str, Any]) -> str:
    return f"{config['name']}.{config['name']}.t"
