"""The ack rule, in isolation: a position is acknowledged only after its records are stored."""

from __future__ import annotations

import asyncio

import orjson

from cdcd.envelope import EnvelopeEncoder, Record
from cdcd.events import ChangeEvent, Commit
from cdcd.pipeline import Pipeline
from cdcd.positions import PgPosition


class ListSource:
    connector = "postgresql"

    def __init__(self, chunks):
        self.chunks = chunks
        self.acked: list[PgPosition] = []
        self.exhausted = asyncio.Event()

    async def check(self):
        return []

    async def prepare(self):
        pass

    async def stream(self, resume):
        for chunk in self.chunks:
            yield chunk
        self.exhausted.set()
        await asyncio.Event().wait()  # a live stream never ends by itself

    async def ack(self, position):
        self.acked.append(position)

    async def close(self):
        pass


class GatedSink:
    """Stores records when ``release`` is set; records what was stored when."""

    def __init__(self):
        self.stored: list[Record] = []
        self.offsets = []
        self.release = asyncio.Event()

    async def start(self):
        pass

    async def read_offset(self):
        return None

    async def write(self, records, offset):
        async def deliver():
            await self.release.wait()
            self.stored.extend(records)
            if offset is not None:
                self.offsets.append(offset)

        return asyncio.ensure_future(deliver())

    async def close(self):
        pass


def insert(i: int) -> ChangeEvent:
    return ChangeEvent("c", "public", "t", {"id": i}, None, {"id": i}, {"lsn": i})


async def test_positions_are_acked_only_after_delivery_and_in_order():
    chunks = [
        [insert(1), insert(2), Commit(PgPosition(100))],
        [insert(3)],
        [insert(4), Commit(PgPosition(200)), insert(5)],  # 5 belongs to an open transaction
    ]
    source, sink = ListSource(chunks), GatedSink()
    encoder = EnvelopeEncoder("shop", "postgresql")
    pipeline = Pipeline(source, sink, encoder, log=None, max_batch_events=1000)
    run = asyncio.create_task(pipeline.run())
    await asyncio.wait_for(source.exhausted.wait(), 5)
    await asyncio.sleep(0.05)
    assert source.acked == []  # nothing stored yet, so nothing acknowledged
    sink.release.set()
    await asyncio.sleep(0.05)
    # In order, ending at the last commit (writes waiting together are joined into one).
    assert source.acked in ([PgPosition(100), PgPosition(200)], [PgPosition(200)])
    pipeline.stop()
    stats = await asyncio.wait_for(run, 5)
    assert stats.acked_position == PgPosition(200)
    assert [orjson.loads(r.key)["id"] for r in sink.stored] == [1, 2, 3, 4]


async def test_a_failed_delivery_acks_nothing_and_fails_the_run():
    source = ListSource([[insert(1), Commit(PgPosition(100))]])

    class FailingSink(GatedSink):
        async def write(self, records, offset):
            async def deliver():
                raise RuntimeError("broker said no")

            return asyncio.ensure_future(deliver())

    pipeline = Pipeline(source, FailingSink(), EnvelopeEncoder("shop", "postgresql"), log=None)
    try:
        await asyncio.wait_for(pipeline.run(), 5)
    except RuntimeError as exc:
        assert "broker said no" in str(exc)
    else:
        raise AssertionError("the run did not fail")
    assert source.acked == []
