"""The watermarked chunks (DBLog) against a simulated database: whatever the interleaving
of writes, chunk reads and the stream, the records replayed in order equal the table.

The database here is a dict and a log of transactions (a unit test of the algorithm in
``cdcd.snapshot.window``; the same properties are tested on real servers in
tests/snapshot/test_snapshot_e2e.py)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from cdcd.events import OP_CREATE, OP_DELETE, OP_UPDATE, ChangeEvent, Commit
from cdcd.positions import PgPosition
from cdcd.snapshot import Chunk, SnapshotTable
from cdcd.snapshot.progress import Progress
from cdcd.snapshot.window import Interleaver

TABLE = SnapshotTable("s", "t", ("id",), 0)


class FakeDb:
    def __init__(self, rng: random.Random, rows: int) -> None:
        self.rng = rng
        self.rows: dict[int, int] = {k: 0 for k in range(rows)}
        self.log: list[tuple[int, list[tuple[str, int, int | None]]]] = []
        self.lsn = 1
        self.appended = asyncio.Event()
        self.reads = 0

    def write(self) -> None:
        changes = []
        for _ in range(self.rng.randint(1, 3)):
            key = self.rng.randrange(len(self.rows) + 5)
            roll = self.rng.random()
            version = self.lsn + 10  # values are versions: they only grow
            if key in self.rows and roll < 0.3:
                del self.rows[key]
                changes.append((OP_DELETE, key, version))
            elif key in self.rows:
                self.rows[key] = version
                changes.append((OP_UPDATE, key, version))
            else:
                self.rows[key] = version
                changes.append((OP_CREATE, key, version))
        self.lsn += 10
        self.log.append((self.lsn, changes))
        self.appended.set()

    # -- SnapshotReader --
    async def tables(self) -> list[SnapshotTable]:
        return [TABLE]

    async def consistent(self, threads: int = 1) -> None:
        return None

    async def watermark(self) -> PgPosition:
        await asyncio.sleep(0)
        return PgPosition(self.lsn)

    def reached(self, position: Any, mark: Any) -> bool:
        return position.commit_lsn >= mark.commit_lsn

    async def read_chunk(self, table: SnapshotTable, after: Any, limit: int, where: Any) -> Chunk:
        await asyncio.sleep(0)
        self.reads += 1
        start = after[0] if after else -1
        keys = sorted(k for k in self.rows if k > start)
        rows = [_event("r", k, self.rows[k]) for k in keys[:limit]]
        for _ in range(self.rng.randint(0, 6)):
            await asyncio.sleep(0)  # the writer and the stream go on while the chunk travels
        last = [keys[: limit][-1]] if rows else None
        return Chunk(table, rows, last, done=len(keys) <= limit)

    async def close(self) -> None:
        pass

    async def stream(self, lag: int):
        seen = 0
        while True:
            while seen >= len(self.log):
                self.appended.clear()
                await self.appended.wait()
            for _ in range(lag):
                await asyncio.sleep(0)
            lsn, changes = self.log[seen]
            seen += 1
            items: list[Any] = [
                _event(op, k, v, before=op != OP_CREATE) for op, k, v in changes
            ]
            commit = Commit(PgPosition(lsn), txid=str(lsn))
            if self.rng.random() < 0.5:  # a transaction across two chunks of the stream
                yield items
                for _ in range(lag + 1):
                    await asyncio.sleep(0)
                yield [commit]
            else:
                yield [*items, commit]


def _event(op: str, key: int, value: int, before: bool = False) -> ChangeEvent:
    after = None if op == OP_DELETE else {"id": key, "v": value}
    source = {"version": value}
    return ChangeEvent(op, "s", "t", {"id": key}, {"id": key} if before else None, after, source)


async def _run(seed: int) -> tuple[dict[int, int], dict[int, int], int]:
    """The replayed table, the table, the chunks read; asserts on the way that no record
    of a row is older than one emitted before it (a deleted row never comes back)."""
    rng = random.Random(seed)
    db = FakeDb(rng, rows=rng.randint(0, 40))
    progress = Progress.start("incremental", [TABLE.id])
    inter = Interleaver(db, [TABLE], progress, chunk_size=rng.randint(1, 7), then_stream=True)
    replay: dict[int, int] = {}
    newest: dict[int, int] = {}
    stop = asyncio.Event()

    async def writer() -> None:
        for _ in range(rng.randint(0, 60)):
            db.write()
            for _ in range(rng.randint(0, 4)):
                await asyncio.sleep(0)
        stop.set()

    writing = asyncio.create_task(writer())
    stream = inter.items(db.stream(rng.randint(0, 3)), PgPosition(1))
    # A consumer that starts with an empty table sees only the snapshot and the changes:
    # rows read are "r", so the replay begins empty.
    open_transaction = False
    async for items in stream:
        for item in items:
            if isinstance(item, Commit):
                # Snapshot rows and their progress only between transactions: the offset
                # stored with them must not cut a transaction it counts as written.
                assert not (open_transaction and item.txid is None), "progress inside a transaction"
                open_transaction = False
            elif not isinstance(item, ChangeEvent):
                assert not open_transaction, "notification inside a transaction"
            elif item.op != "r":
                open_transaction = True
            else:
                assert not open_transaction, "snapshot row inside a transaction"
            if isinstance(item, ChangeEvent):
                key, version = item.key["id"], item.source["version"]
                assert version >= newest.get(key, -1), f"{item.op} of {key} older than emitted"
                newest[key] = version
                if item.op == OP_DELETE:
                    replay.pop(item.key["id"], None)
                else:
                    assert item.after is not None
                    replay[item.key["id"]] = item.after["v"]
        if stop.is_set() and not inter.running and db.log and items and isinstance(items[-1], Commit):
            last = items[-1].position.commit_lsn
            if last >= db.lsn:
                break
        if stop.is_set() and not inter.running and not db.log:
            break
    await writing
    await stream.aclose()
    return replay, db.rows, db.reads


@pytest.mark.parametrize("seed", range(60))
async def test_replayed_records_equal_the_table(seed: int) -> None:
    replay, table, reads = await asyncio.wait_for(_run(seed), 10)
    assert replay == table
    assert reads >= 1
