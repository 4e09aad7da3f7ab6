"""The stdout sink: JSON lines named after the daemon, and a log that claims no delivery
guarantee nor any stored position (it stores none). Real PostgreSQL, no Kafka."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import psycopg
import pytest
from support import daemon, unique_name

pytestmark = pytest.mark.integration


@pytest.fixture
def schema(pg_dsn: str) -> Iterator[str]:
    name = unique_name("out")
    conn = psycopg.connect(pg_dsn, autocommit=True)
    conn.execute(f"CREATE SCHEMA {name}; CREATE TABLE {name}.t (id int PRIMARY KEY)")
    try:
        yield name
    finally:
        conn.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            "WHERE slot_name = %s AND NOT active",
            (f"cdcd_{name}",),
        )
        conn.execute(f"DROP PUBLICATION IF EXISTS cdcd_{name}; DROP SCHEMA {name} CASCADE")
        conn.close()


def test_records_carry_the_daemons_name_and_the_log_claims_nothing(schema, pg_dsn, tmp_path):
    config = {
        "name": schema,
        "source": {"kind": "postgres", "dsn": pg_dsn, "tables": [f"{schema}.t"]},
        "sink": {"kind": "stdout"},
        "log": {"level": "info", "format": "json"},
    }
    with daemon(tmp_path, config) as d, psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"INSERT INTO {schema}.t VALUES (1)")
        deadline = time.monotonic() + 30
        while not d.out_path.read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert d.terminate() == 0
    (line,) = d.out_path.read_text().splitlines()
    record = json.loads(line)
    assert record["topic"] == f"{schema}.{schema}.t"
    assert record["value"]["source"]["name"] == schema
    log = [json.loads(entry) for entry in d.log_text().splitlines()]
    (started,) = [entry for entry in log if entry["event"] == "started"]
    assert started["sink"] == "stdout" and started["delivery"] == "none"
    assert not [entry for entry in log if entry["event"] == "start position stored"]
