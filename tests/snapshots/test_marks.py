"""Debezium's ``source.snapshot`` marks of an initial snapshot over chunks whose rows share
one source dict (as PostgreSQL's reader builds them), and the envelope of such rows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson

from cdcd.encoder import EnvelopeEncoder
from cdcd.envelope import EnvelopeBuilder
from cdcd.events import OP_READ, ChangeEvent
from cdcd.positions import PgPosition
from cdcd.snapshot import Chunk, SnapshotTable
from cdcd.snapshot.progress import Progress
from cdcd.snapshot.runner import consistent_chunks

TABLES = [SnapshotTable("s", "a", ("id",)), SnapshotTable("s", "b", ("id",))]


def shared_chunk(table: SnapshotTable, ids: range, done: bool) -> Chunk:
    source = {"db": "d", "schema": table.namespace, "table": table.name, "lsn": 7}
    rows = [
        ChangeEvent(OP_READ, table.namespace, table.name, {"id": i}, None, {"id": i}, source)
        for i in ids
    ]
    return Chunk(table, rows, [ids[-1]], done)


class View:
    position = PgPosition(7)

    async def scan(
        self, table: SnapshotTable, after: Any, chunk_size: int, where: Any
    ) -> AsyncIterator[Chunk]:
        yield shared_chunk(table, range(0, 3), False)
        yield shared_chunk(table, range(3, 6), True)

    async def close(self) -> None:
        pass


def marks_of_a_snapshot() -> list[ChangeEvent]:
    async def run() -> list[ChangeEvent]:
        progress = Progress.start("initial", [t.id for t in TABLES])
        rows = []
        async for items in consistent_chunks(View(), TABLES, progress, chunk_size=3, threads=1):
            rows += [i for i in items if isinstance(i, ChangeEvent)]
        return rows

    return asyncio.run(run())


def test_shared_source_dicts_get_debezium_marks_and_first_and_last_rows_their_own():
    rows = marks_of_a_snapshot()
    marks = [(r.table, r.key["id"], r.source["snapshot"]) for r in rows]
    assert marks == [
        ("a", 0, "first"), ("a", 1, "true"), ("a", 2, "true"),
        ("a", 3, "true"), ("a", 4, "true"), ("a", 5, "last_in_data_collection"),
        ("b", 0, "first_in_data_collection"), ("b", 1, "true"), ("b", 2, "true"),
        ("b", 3, "true"), ("b", 4, "true"), ("b", 5, "last"),
    ]  # fmt: skip
    assert rows[0].source is not rows[1].source and rows[1].source is rows[2].source
    assert rows[5].source is not rows[4].source
    assert {k: v for k, v in rows[0].source.items() if k != "snapshot"} == {
        k: v for k, v in rows[1].source.items() if k != "snapshot"
    }


def test_rows_sharing_a_source_dict_are_encoded_as_rows_with_their_own():
    rows = marks_of_a_snapshot()
    own = [
        ChangeEvent(r.op, r.namespace, r.table, r.key, r.before, r.after, dict(r.source))
        for r in rows
    ]
    encoder = EnvelopeEncoder(EnvelopeBuilder("p", "postgresql"), [])
    shared = encoder.encode(list(rows), 1_000)
    separate = encoder.encode(own, 1_000)
    assert [r.value for r in shared.records] == [r.value for r in separate.records]
    values = [orjson.loads(r.value) for r in shared.records]
    assert [v["source"]["snapshot"] for v in values][:3] == ["first", "true", "true"]
    assert values[1]["source"]["connector"] == "postgresql"
