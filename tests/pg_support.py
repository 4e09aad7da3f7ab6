"""PostgreSQL test cases: a fresh schema, a daemon config, clean-up (the fixture `pg_case`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from support import unique_name


@dataclass
class PgCase:
    name: str  # daemon name, topic prefix and schema
    schema: str
    conn: psycopg.Connection[Any]
    dsn: str
    bootstrap: str
    tmp_path: Path

    def config(self, tables: list[str] | None = None, **sink: Any) -> dict[str, Any]:
        source: dict[str, Any] = {"kind": "postgres", "dsn": self.dsn}
        source["tables"] = [f"{self.schema}.{t}" for t in (tables or [])] or None
        if source["tables"] is None:
            del source["tables"]
        return {
            "name": self.name,
            "source": source,
            "sink": {
                "kind": "kafka",
                "bootstrap_servers": self.bootstrap,
                "topic_prefix": self.name,
                **sink,
            },
            "log": {"level": "debug", "format": "json"},
        }

    def topic(self, table: str) -> str:
        return f"{self.name}.{self.schema}.{table}"

    def execute(self, *statements: str) -> None:
        """Run statements in one transaction."""
        with self.conn.transaction():
            for statement in statements:
                self.conn.execute(statement)

    def slot_confirmed_lsn(self) -> int:
        row = self.conn.execute(
            "SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots WHERE slot_name = %s",
            (f"cdcd_{self.name}",),
        ).fetchone()
        assert row is not None, "the slot does not exist"
        return int(row[0])


@pytest.fixture
def pg_case(pg_dsn: str, kafka_bootstrap: str, tmp_path: Path) -> Iterator[PgCase]:
    name = unique_name()
    conn = psycopg.connect(pg_dsn, autocommit=True)
    conn.execute(f"CREATE SCHEMA {name}")
    case = PgCase(name, name, conn, pg_dsn, kafka_bootstrap, tmp_path)
    try:
        yield case
    finally:
        slot = f"cdcd_{name}"
        conn.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            "WHERE slot_name = %s AND NOT active",
            (slot,),
        )
        conn.execute(f"DROP PUBLICATION IF EXISTS {slot}")
        conn.execute(f"DROP SCHEMA {name} CASCADE")
        conn.close()
