"""The coordinator decides order: the source is prepared with the stored offset, a first
start stores where it starts, a snapshot runs when one is due, then the stream; the
context's state follows. Fakes of one function each, no servers."""

from __future__ import annotations

import asyncio

import orjson

from cdcd.config import parse_config
from cdcd.errors import SourceError
from cdcd.events import ChangeEvent, Commit
from cdcd.offsets import StoredOffset
from cdcd.positions import PgPosition
from cdcd.runtime.context import Context, State
from cdcd.runtime.coordinator import Coordinator
from cdcd.snapshot import Chunk, SnapshotTable

CONFIG = parse_config(
    {
        "name": "shop",
        "source": {"kind": "postgres", "dsn": "postgresql://cdc@127.0.0.1/shop"},
        "sink": {"kind": "stdout"},
    }
)


def row(op: str, i: int) -> ChangeEvent:
    return ChangeEvent(op, "public", "t", {"id": i}, None, {"id": i}, {"lsn": i})


TABLE = SnapshotTable("public", "t", ("id",), 2)


class View:
    position = PgPosition(10)

    async def scan(self, table, after, chunk_size, where):
        yield Chunk(table, [row("r", 1), row("r", 2)], [2], done=True)

    async def close(self):
        pass


class Reader:
    """A snapshot reader with a consistent view of a two-row table (None: no view)."""

    def __init__(self) -> None:
        self.view = View()
        self.chunks_read: list = []

    async def tables(self):
        return [TABLE]

    async def consistent(self, threads=1):
        return self.view

    async def watermark(self):
        return PgPosition(20)

    def reached(self, position, mark):
        return position.commit_lsn >= mark.commit_lsn

    async def read_chunk(self, table, after, limit, where):
        self.chunks_read.append(after)
        return Chunk(table, [row("r", 2)], [2], done=True)

    async def close(self):
        pass


class Source:
    connector = "postgresql"

    def __init__(self, reader: Reader | None) -> None:
        self.calls: list[str] = []
        self._reader = reader
        self.acked: list[PgPosition] = []
        self.streamed_from = None

    async def prepare(self, resume=None):
        self.calls.append(f"prepare {resume}")

    async def start_position(self):
        self.calls.append("start_position")
        return PgPosition(5)

    def snapshot_reader(self):
        return self._reader

    async def stream(self, resume):
        self.streamed_from = resume
        yield [row("c", 3), Commit(PgPosition(20))]
        await asyncio.Event().wait()

    async def ack(self, position):
        self.acked.append(position)


class Sink:
    keeps_offsets = True

    def __init__(self) -> None:
        self.writes: list[tuple[list[int], StoredOffset | None]] = []

    async def read_offset(self):
        offsets = [o for _, o in self.writes if o is not None]
        return offsets[-1] if offsets else None

    async def write(self, records, offset):
        keys = [orjson.loads(r.key) for r in records if r.value is not None and r.key]
        ids = [key["id"] for key in keys if isinstance(key, dict)]  # not notifications
        self.writes.append((ids, offset))
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


class Log:
    def info(self, *args, **kwargs):
        pass

    warning = debug = info


async def _run(source: Source, sink: Sink, resume: StoredOffset | None, config=CONFIG):
    ctx = Context(config, Log())
    states: list[State] = []
    enter = ctx.enter
    ctx.enter = lambda state, reason="": (states.append(state), enter(state, reason))  # type: ignore[method-assign]
    coordinator = Coordinator(ctx, source, sink)  # type: ignore[arg-type]
    resume = await coordinator.start(resume)
    task = asyncio.create_task(coordinator.run(resume))
    for _ in range(100):
        if source.acked and source.acked[-1] == PgPosition(20):
            break
        await asyncio.sleep(0.01)
    coordinator.stop()
    await asyncio.wait_for(task, 5)
    return states, ctx


async def test_first_start_stores_the_start_then_a_due_snapshot_runs_before_the_stream():
    source, sink = Source(Reader()), Sink()
    states, ctx = await _run(source, sink, None)
    assert source.calls == ["prepare None"]  # the view's position is the start
    # The start position (with the snapshot's progress) is stored first, then the
    # snapshot's rows, then the stream's.
    assert [ids for ids, _ in sink.writes] == [[], [1, 2], [3]]
    pinned, after_rows = sink.writes[0][1], sink.writes[1][1]
    assert pinned is not None and pinned.position == PgPosition(10)
    assert pinned.snapshot is not None and pinned.snapshot["pending"] == ["public.t"]
    assert after_rows is not None and after_rows.snapshot is None  # done
    assert source.streamed_from == PgPosition(10)  # where the snapshot handed over
    assert source.acked == [PgPosition(10), PgPosition(20)]
    assert states == [State.SNAPSHOTTING, State.STREAMING]
    assert ctx.stats.acked is not None and ctx.stats.acked.position == PgPosition(20)


async def test_no_snapshot_due_streams_from_the_stored_offset():
    source, sink = Source(Reader()), Sink()
    states, _ = await _run(source, sink, StoredOffset(PgPosition(15)))
    assert source.calls == [f"prepare {PgPosition(15)}"]  # nothing pinned: an offset exists
    assert source.streamed_from == PgPosition(15)
    assert [ids for ids, _ in sink.writes] == [[3]]
    assert states == [State.STREAMING]


def _config(**snapshot):
    return parse_config({**CONFIG.model_dump(mode="json"), "snapshot": snapshot})


async def test_no_data_streams_without_reading_the_tables():
    source, sink = Source(Reader()), Sink()
    states, _ = await _run(source, sink, None, _config(mode="no_data"))
    assert source.calls == ["prepare None", "start_position"]
    assert [ids for ids, _ in sink.writes] == [[], [3]]
    assert states == [State.STREAMING]


async def test_a_snapshot_cut_short_goes_on_in_watermarked_chunks_while_streaming():
    source, sink = Source(Reader()), Sink()
    progress = {"kind": "initial", "pending": ["public.t"], "keys": {"public.t": [1]}, "rows": 1}
    states, _ = await _run(source, sink, StoredOffset(PgPosition(10), snapshot=progress))
    assert source._reader is not None and source._reader.chunks_read == [[1]]  # after key 1
    assert source.streamed_from == PgPosition(10)
    # The stream's transaction first (its commit reaches the chunk's high watermark 20),
    # then the chunk's row, with the progress done.
    assert [ids for ids, _ in sink.writes if ids] == [[3, 2]] or [
        ids for ids, _ in sink.writes if ids
    ] == [[3], [2]]
    last = sink.writes[-1][1]
    assert last is not None and last.snapshot is None
    assert states == [State.SNAPSHOTTING, State.STREAMING]


async def test_initial_only_reads_the_tables_and_stops():
    source, sink = Source(Reader()), Sink()
    ctx = Context(_config(mode="initial_only"), Log())
    coordinator = Coordinator(ctx, source, sink)  # type: ignore[arg-type]
    await asyncio.wait_for(coordinator.run(await coordinator.start(None)), 5)
    assert [ids for ids, _ in sink.writes] == [[], [1, 2]]
    assert source.streamed_from is None


async def test_a_table_without_a_key_is_refused_by_name_without_a_consistent_view():
    reader = Reader()
    reader.view = None  # watermarked chunks need a key (a consistent view reads it whole)
    reader.tables = lambda: _tables([TABLE, SnapshotTable("public", "logs", ())])  # type: ignore[method-assign]
    source = Source(reader)
    coordinator = Coordinator(Context(CONFIG, Log()), source, Sink())  # type: ignore[arg-type]
    try:
        await coordinator.start(None)
    except SourceError as exc:
        assert "public.logs has no primary key" in str(exc) and "[snapshot] tables" in str(exc)
    else:
        raise AssertionError("a keyless table was accepted")


async def _tables(tables):
    return tables


async def test_when_needed_reads_the_tables_again_when_the_stored_position_is_gone():
    from cdcd.errors import PositionLostError

    class Lost(Source):
        async def prepare(self, resume=None):
            self.calls.append(f"prepare {resume}")
            if resume is not None:
                raise PositionLostError("replication slot 'x' does not exist")

    source, sink = Lost(Reader()), Sink()
    config = _config(mode="when_needed")
    states, _ = await _run(source, sink, StoredOffset(PgPosition(15)), config)
    assert source.calls == [f"prepare {PgPosition(15)}", "prepare None"]
    assert [ids for ids, _ in sink.writes] == [[], [1, 2], [3]]  # pinned anew, read, streamed
    assert sink.writes[0][1] is not None and sink.writes[0][1].position == PgPosition(10)


async def test_a_lost_position_still_stops_the_daemon_under_initial():
    from cdcd.errors import PositionLostError

    class Lost(Source):
        async def prepare(self, resume=None):
            raise PositionLostError("gone")

    coordinator = Coordinator(Context(CONFIG, Log()), Lost(Reader()), Sink())  # type: ignore[arg-type]
    try:
        await coordinator.start(StoredOffset(PgPosition(15)))
    except PositionLostError:
        pass
    else:
        raise AssertionError("a lost position was streamed over")


async def test_always_reads_the_tables_in_watermarked_chunks_with_an_offset():
    source, sink = Source(Reader()), Sink()
    states, _ = await _run(source, sink, StoredOffset(PgPosition(15)), _config(mode="always"))
    assert source._reader is not None and source._reader.chunks_read == [None]  # from the start
    assert source.streamed_from == PgPosition(15)
    assert states == [State.SNAPSHOTTING, State.STREAMING]
