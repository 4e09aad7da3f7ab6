"""Avro with a real Confluent-compatible schema registry (the test environment's Karapace):
a daemon writes PostgreSQL and MariaDB rows, read back through the registry (the schema
fetched by the id in each record's 5-byte header, decoded with fastavro); a nullable
column added makes a new version that BACKWARD accepts; a changed type is refused, the
daemon stops with one line naming the subject, and the refused change was not
acknowledged (a restart once the subject allows it writes it)."""

from __future__ import annotations

import io
import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

import fastavro
import pytest
from support import consume, daemon

sys.path.insert(0, str(Path(__file__).parents[1] / "transforms"))
from transforms_support import Db, mariadb_db, postgres_db  # noqa: E402

pytestmark = pytest.mark.integration

TABLES = {"items": "id int PRIMARY KEY, qty int"}
CHANGED_TYPE = {
    "postgres": "ALTER TABLE {db}.items ALTER COLUMN qty TYPE text",
    "mariadb": "ALTER TABLE {db}.items MODIFY qty text",
}


class Registry:
    def __init__(self, url: str) -> None:
        self.url = url

    def call(self, method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(
            self.url + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def decode(self, data: bytes) -> Any:
        assert data[0] == 0, data[:5]
        schema_id = int.from_bytes(data[1:5], "big")
        schema = json.loads(self.call("GET", f"/schemas/ids/{schema_id}")["schema"])
        return fastavro.schemaless_reader(io.BytesIO(data[5:]), fastavro.parse_schema(schema))


def _rows(bootstrap: str, topic: str, registry: Registry, expect: int) -> list[tuple[Any, Any]]:
    got = consume(bootstrap, [topic], expect=expect, settle=1, json=False)
    assert len(got) == expect, got
    return [(registry.decode(m.key), registry.decode(m.value)) for m in got]


def _evolve(db: Db, tmp_path: Path, bootstrap: str, registry: Registry) -> None:
    config = db.config(bootstrap)
    config["sink"].update(format="avro", schema_registry_url=registry.url)
    config["source"]["tables"] = [f"{db.name}\\.items"]
    topic = f"{db.name}.{db.name}.items"
    with daemon(tmp_path, config) as d:
        db.run([("INSERT INTO {db}.items VALUES (1, 10)", ())])
        db.run([("ALTER TABLE {db}.items ADD COLUMN note varchar(20)", ())])
        db.run([("INSERT INTO {db}.items VALUES (2, 20, 'two')", ())])
        rows = _rows(bootstrap, topic, registry, 2)
        assert d.terminate() == 0
    assert [key for key, _ in rows] == [{"id": 1}, {"id": 2}]
    assert rows[0][1]["after"] == {"id": 1, "qty": 10}
    assert rows[1][1]["after"] == {"id": 2, "qty": 20, "note": "two"}
    assert rows[1][1]["op"] == "c" and rows[1][1]["source"]["table"] == "items"
    assert registry.call("GET", f"/subjects/{topic}-value/versions") == [1, 2]
    assert registry.call("GET", f"/subjects/{topic}-key/versions") == [1]
    assert registry.call("GET", "/config")["compatibilityLevel"] == "BACKWARD"

    # qty int -> text: no Avro reader of the new schema reads the old records' int.
    db.run([(CHANGED_TYPE[db.kind], ())])
    db.run([("INSERT INTO {db}.items VALUES (3, 'three', 'x')", ())])
    with daemon(tmp_path, config, start=False) as d:
        d.start()
        assert d.process is not None and d.process.wait(60) == 1
        line = d.log_text().strip().splitlines()[-1]
        assert f"{topic}-value" in line and "ncompatible" in line, line
    assert len(consume(bootstrap, [topic], expect=3, timeout=3, settle=0, json=False)) == 2

    # The refused change was not acknowledged: once the subject accepts it, it is written.
    registry.call("PUT", f"/config/{topic}-value", {"compatibility": "NONE"})
    with daemon(tmp_path, config) as d:
        rows = _rows(bootstrap, topic, registry, 3)
        assert d.terminate() == 0
    assert rows[2][1]["after"] == {"id": 3, "qty": "three", "note": "x"}
    assert registry.call("GET", f"/subjects/{topic}-value/versions") == [1, 2, 3]


def test_postgres_avro_through_the_registry(
    pg_dsn: str, kafka_bootstrap: str, schema_registry_url: str, tmp_path: Path
) -> None:
    with postgres_db(pg_dsn, TABLES) as db:
        _evolve(db, tmp_path, kafka_bootstrap, Registry(schema_registry_url))


def test_mariadb_avro_through_the_registry(
    mysql_url: str, kafka_bootstrap: str, schema_registry_url: str, tmp_path: Path
) -> None:
    with mariadb_db(mysql_url, TABLES) as db:
        _evolve(db, tmp_path, kafka_bootstrap, Registry(schema_registry_url))
