"""The ack rule, in isolation: a position is acknowledged only after its records are stored."""

from __future__ import annotations

import asyncio

import orjson

from cdcd.encoder import EnvelopeEncoder
from cdcd.envelope import EnvelopeBuilder
from cdcd.events import ChangeEvent, Commit
from cdcd.positions import PgPosition
from cdcd.runtime.pipeline import Pipeline
from cdcd.serialization import Record
from cdcd.topics import TopicNaming
from cdcd.transforms.builtin import DeleteTombstones, TableTopics


def encoder() -> EnvelopeEncoder:
    """Today's defaults: the table's topic, a tombstone after a delete."""
    builder = EnvelopeBuilder("shop", "postgresql")
    return EnvelopeEncoder(builder, [TableTopics(TopicNaming("shop")), DeleteTombstones()])


def pipeline_of(source, sink, **options) -> Pipeline:
    async def ack(checkpoint):
        await source.ack(checkpoint.position)

    return Pipeline(sink, encoder(), ack, **options)


def run(pipeline: Pipeline, source, cut_transaction=None):
    return pipeline.run(source.stream(None), cut_transaction)


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
    pipeline = pipeline_of(source, sink, max_batch_events=1000)
    running = asyncio.create_task(run(pipeline, source))
    await asyncio.wait_for(source.exhausted.wait(), 5)
    await asyncio.sleep(0.05)
    assert source.acked == []  # nothing stored yet, so nothing acknowledged
    sink.release.set()
    await asyncio.sleep(0.05)
    # In order, ending at the last commit (writes waiting together are joined into one).
    assert source.acked in ([PgPosition(100), PgPosition(200)], [PgPosition(200)])
    pipeline.stop()
    await asyncio.wait_for(running, 5)
    stats = pipeline.stats
    assert stats.acked.position == PgPosition(200)
    assert [orjson.loads(r.key)["id"] for r in sink.stored] == [1, 2, 3, 4]


async def test_a_failed_delivery_acks_nothing_and_fails_the_run():
    source = ListSource([[insert(1), Commit(PgPosition(100))]])

    class FailingSink(GatedSink):
        async def write(self, records, offset):
            async def deliver():
                raise RuntimeError("broker said no")

            return asyncio.ensure_future(deliver())

    pipeline = pipeline_of(source, FailingSink())
    try:
        await asyncio.wait_for(run(pipeline, source), 5)
    except RuntimeError as exc:
        assert "broker said no" in str(exc)
    else:
        raise AssertionError("the run did not fail")
    assert source.acked == []


def change(i: int, txid: str) -> ChangeEvent:
    return ChangeEvent("c", "public", "t", {"id": i}, None, {"id": i}, {"lsn": i}, txid)


async def test_every_write_ends_at_a_commit_or_inside_a_transaction_with_no_offset():
    from cdcd.offsets import StoredOffset

    chunks = [
        [change(1, "7:100"), change(2, "7:100"), Commit(PgPosition(50, 2), txid="7:100")],
        [change(3, "7:100"), Commit(PgPosition(120), txid="7:100"), change(4, "8:200")],
        [change(5, "8:200")] * 3,  # a long transaction: written without an offset
        [Commit(PgPosition(220), txid="8:200")],
    ]
    source, sink = ListSource(chunks), GatedSink()
    sink.release.set()
    written: list[tuple[int, StoredOffset | None]] = []
    write = sink.write

    async def spy(records, offset):
        written.append((len(records), offset))
        return await write(records, offset)

    sink.write = spy
    pipeline = pipeline_of(source, sink, max_batch_events=2
    )
    running = asyncio.create_task(run(pipeline, source))
    await asyncio.wait_for(source.exhausted.wait(), 5)
    await asyncio.sleep(0.05)
    pipeline.stop()
    await asyncio.wait_for(running, 5)
    stats = pipeline.stats
    assert sum(n for n, _ in written) == 7
    offsets = [o for _, o in written if o is not None]
    assert [o.position for o in offsets] == [PgPosition(50, 2), PgPosition(120), PgPosition(220)]
    assert offsets[0].transaction == {"id": "7:100"}  # a cut: which transaction it cuts
    assert offsets[1].transaction is None and offsets[2].transaction is None
    assert None in [o for _, o in written]  # the long transaction went out before its end
    assert source.acked == [PgPosition(50, 2), PgPosition(120), PgPosition(220)]
    assert stats.transactions == 2 and stats.acked.position == PgPosition(220)


async def test_resuming_a_cut_in_another_transaction_fails_before_writing():
    from cdcd.errors import SourceError
    from cdcd.offsets import StoredOffset
    from cdcd.runtime.coordinator import _cut_transaction

    source = ListSource([[change(3, "8:200"), Commit(PgPosition(220), txid="8:200")]])
    sink = GatedSink()
    sink.release.set()
    pipeline = pipeline_of(source, sink)
    resume = StoredOffset(PgPosition(50, 2), {"id": "7:100"})
    try:
        await asyncio.wait_for(run(pipeline, source, _cut_transaction(resume)), 5)
    except SourceError as exc:
        assert "cuts transaction 7:100" in str(exc) and "8:200" in str(exc)
    else:
        raise AssertionError("the run did not fail")
    assert sink.stored == [] and source.acked == []


async def test_stop_writes_what_was_read_whole_and_no_more():
    chunks = [[insert(1), Commit(PgPosition(100)), insert(2)]]  # 2: an open transaction
    source, sink = ListSource(chunks), GatedSink()
    sink.release.set()
    pipeline = pipeline_of(source, sink)
    running = asyncio.create_task(run(pipeline, source))
    await asyncio.wait_for(source.exhausted.wait(), 5)
    pipeline.stop()
    await asyncio.wait_for(running, 5)
    assert [orjson.loads(r.key)["id"] for r in sink.stored] == [1]
    assert source.acked == [PgPosition(100)]


async def test_stop_gives_up_on_a_sink_that_never_commits():
    source, sink = ListSource([[insert(1), Commit(PgPosition(100))]]), GatedSink()  # never released
    pipeline = pipeline_of(source, sink, drain_timeout_s=0.2
    )
    running = asyncio.create_task(run(pipeline, source))
    await asyncio.wait_for(source.exhausted.wait(), 5)
    pipeline.stop()
    await asyncio.wait_for(running, 5)
    stats = pipeline.stats  # returns: the batch is read again next time
    assert stats.acked is None and source.acked == []


async def test_a_writer_that_is_behind_takes_many_small_transactions_in_one_write():
    # 200 one-row transactions arrive while the sink is not ready (an exactly-once sink
    # waiting for its last Kafka transaction): they are joined while they wait, in order,
    # so the next write carries them all instead of two or three.
    chunks = [[insert(i), Commit(PgPosition(100 + i))] for i in range(200)]
    source, sink = ListSource(chunks), GatedSink()
    sink.release.set()
    gate = asyncio.Event()
    written: list[tuple[list[int], PgPosition | None]] = []
    write = sink.write

    async def ready():
        await gate.wait()

    async def spy(records, offset):
        written.append(
            ([orjson.loads(r.key)["id"] for r in records], offset.position if offset else None)
        )
        return await write(records, offset)

    sink.ready, sink.write = ready, spy
    pipeline = pipeline_of(source, sink, max_batch_events=150
    )
    running = asyncio.create_task(run(pipeline, source))
    await asyncio.wait_for(source.exhausted.wait(), 5)
    assert written == []  # the writer still waits for the sink, the reader did not
    gate.set()
    await asyncio.sleep(0.05)
    pipeline.stop()
    await asyncio.wait_for(running, 5)
    ids = [i for batch, _ in written for i in batch]
    assert ids == list(range(200))  # each once, in order
    assert all(len(batch) <= 150 for batch, _ in written)  # within max_batch_events
    assert len(written) <= 3
    # Each write's offset is the commit of its last record.
    assert all(pos == PgPosition(100 + batch[-1]) for batch, pos in written)
    assert source.acked[-1] == PgPosition(299)
