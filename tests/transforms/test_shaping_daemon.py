"""Routing and shaping in a running daemon, real servers into real Kafka: masked,
hashed, truncated and excluded columns, the key from chosen columns, a filter, the
flattening with added fields and headers, and the topic by regex."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from support import consume, daemon
from transforms_support import database

from cdcd.transforms.columns import java_serialized

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("source", ["postgres", "mariadb"])
def test_shaping_and_flattening_end_to_end(request, source, tmp_path: Path, kafka_bootstrap: str):
    with database(source, request) as db:
        table = f"{db.name}.orders"
        config = db.config(
            kafka_bootstrap,
            shaping={
                "column.mask.with.3.chars": f"{db.name}\\.orders\\.customer",
                "column.mask.hash.SHA-256.with.salt.pepper": f"{table}.email",
                "column.truncate.to.4.chars": f"{table}.note",
                "column.exclude.list": f"{table}.amount",
                "message.key.columns": f"{table}:id,customer",
                "filter.tables": f"{db.name}\\.orders",
                "filter.condition": "amount >= 10",
                "regex": f"{db.name}\\.{db.name}\\.(.*)",
                "replacement": f"{db.name}.shaped.$1",
            },
            flatten={
                "delete.tombstone.handling.mode": "rewrite",
                "add.fields": "op,table",
                "add.headers": "db",
            },
        )
        with daemon(tmp_path, config) as d:
            db.run(
                [
                    ("INSERT INTO {db}.orders VALUES (1, 'ann', 40, 'ann@x.org', 'abcdefgh')", ()),
                    ("INSERT INTO {db}.orders VALUES (2, 'bob', 5, 'bob@x.org', NULL)", ()),
                ]
            )
            db.run([("DELETE FROM {db}.orders WHERE id = 1", ())])
            topic = f"{db.name}.shaped.orders"
            got = consume(kafka_bootstrap, [topic], expect=2, settle=2)
            assert d.terminate() == 0
    # Bob's order (amount 5) filtered out; the delete rewritten, its tombstone dropped.
    assert [m.key for m in got] == [{"id": 1, "customer": "ann"}] * 2
    digest = hashlib.sha256(b"pepper" + java_serialized("ann@x.org")).hexdigest()
    row = {"id": 1, "customer": "***", "email": digest, "note": "abcd"}
    assert got[0].value == {**row, "__op": "c", "__table": "orders", "__deleted": "false"}
    assert got[1].value == {**row, "__op": "d", "__table": "orders", "__deleted": "true"}
    database_name = db.name if source == "mariadb" else "cdcd"
    headers = dict(got[0].headers)
    assert "__db" in headers and (source == "postgres" or headers["__db"] == database_name.encode())
