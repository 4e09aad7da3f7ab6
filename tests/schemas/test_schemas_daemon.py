"""A running daemon writes JSON with schema: real servers into real Kafka, every field's
schema of a row read back (PostgreSQL and MariaDB)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from support import consume, daemon

sys.path.insert(0, str(Path(__file__).parents[1] / "transforms"))
from transforms_support import mariadb_db, postgres_db  # noqa: E402

pytestmark = pytest.mark.integration

PG = {
    "items": "id int PRIMARY KEY, price numeric(10,2) NOT NULL, amount numeric, "
    "made timestamp(3), seen timestamptz, day date, doc jsonb, tags text[], flag bit(1)"
}
MARIADB = {
    "items": "id int PRIMARY KEY, price decimal(10,2) NOT NULL, size enum('S','M') NOT NULL, "
    "made datetime(6), seen timestamp(3) NULL, day date, doc json, small tinyint unsigned, "
    "raw varbinary(8)"
}


def _fields(schema: dict) -> dict[str, dict]:
    return {f["field"]: {k: v for k, v in f.items() if k != "field"} for f in schema["fields"]}


def _check(tmp_path: Path, db, bootstrap: str, insert: str) -> tuple[dict, dict]:
    config = db.config(bootstrap, sink={
        "kind": "kafka", "bootstrap_servers": bootstrap, "topic_prefix": db.name,
        "schemas_enable": True,
    })  # fmt: skip
    config["source"]["tables"] = [f"{db.name}\\.items"]
    with daemon(tmp_path, config) as d:
        db.run([(insert, ())])
        topic = f"{db.name}.{db.name}.items"
        (got,) = consume(bootstrap, [topic], expect=1, settle=1)
        assert d.terminate() == 0
    schema = got.value["schema"]
    assert schema["name"] == f"{topic}.Envelope" and schema["version"] == 2
    assert got.key["schema"]["name"] == f"{topic}.Key"
    assert got.key["payload"] == {"id": 1}
    after = schema["fields"][1]
    assert after["name"] == f"{topic}.Value" and after["optional"] is True
    assert set(got.value["payload"]["after"]) == set(_fields(after))
    return _fields(after), _fields(schema["fields"][2])


def test_postgres_rows_with_their_schema(pg_dsn: str, kafka_bootstrap: str, tmp_path: Path):
    with postgres_db(pg_dsn, PG) as db:
        columns, source = _check(tmp_path, db, kafka_bootstrap, (
            "INSERT INTO {db}.items VALUES (1, 12.50, 3.14159, now(), now(), current_date, "
            "'{\"a\": 1}', ARRAY['x'], B'1')"
        ))  # fmt: skip
    assert columns["id"] == {"type": "int32", "optional": False}
    assert columns["price"] == {
        "type": "bytes", "optional": False, "name": "org.apache.kafka.connect.data.Decimal",
        "version": 1, "parameters": {"scale": "2", "connect.decimal.precision": "10"},
    }  # fmt: skip
    assert columns["amount"]["name"] == "io.debezium.data.VariableScaleDecimal"
    assert columns["made"]["name"] == "io.debezium.time.Timestamp"
    assert columns["seen"]["name"] == "io.debezium.time.ZonedTimestamp"
    assert columns["day"] == {
        "type": "int32",
        "optional": True,
        "name": "io.debezium.time.Date",
        "version": 1,
    }
    assert columns["doc"]["name"] == "io.debezium.data.Json"
    assert columns["tags"] == {
        "type": "array",
        "items": {"type": "string", "optional": True},
        "optional": True,
    }
    assert columns["flag"] == {"type": "boolean", "optional": True}
    assert list(source)[-7:] == ["schema", "table", "txId", "lsn", "xmin", "origin", "origin_lsn"]


def test_mariadb_rows_with_their_schema(mysql_url: str, kafka_bootstrap: str, tmp_path: Path):
    with mariadb_db(mysql_url, MARIADB) as db:
        columns, source = _check(tmp_path, db, kafka_bootstrap, (
            "INSERT INTO {db}.items VALUES (1, 12.50, 'M', now(6), now(3), curdate(), "
            "'{\"a\": 1}', 200, x'00ff')"
        ))  # fmt: skip
    assert columns["id"] == {"type": "int32", "optional": False}
    assert columns["price"]["parameters"] == {"scale": "2", "connect.decimal.precision": "10"}
    assert columns["size"] == {
        "type": "string", "optional": False, "name": "io.debezium.data.Enum", "version": 1,
        "parameters": {"allowed": "S,M"},
    }  # fmt: skip
    assert columns["made"]["name"] == "io.debezium.time.MicroTimestamp"
    assert columns["seen"]["name"] == "io.debezium.time.ZonedTimestamp"
    assert columns["day"]["name"] == "io.debezium.time.Date"
    # MariaDB's JSON is a LONGTEXT: the binlog cannot tell it from one (Debezium, which
    # parses the DDL, names it io.debezium.data.Json; docs/schemas.md).
    assert columns["doc"] == {"type": "string", "optional": True}
    assert columns["small"] == {"type": "int16", "optional": True}
    assert columns["raw"] == {"type": "bytes", "optional": True}
    assert list(source)[-8:] == [
        "table",
        "server_id",
        "gtid",
        "file",
        "pos",
        "row",
        "thread",
        "query",
    ]
