"""The coordinator decides order: the source is prepared with the stored offset, a first
start stores where it starts, a snapshot runs when one is due, then the stream; the
context's state follows. Fakes of one function each, no servers."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import orjson

from cdcd.config import parse_config
from cdcd.events import ChangeEvent, Commit
from cdcd.offsets import StoredOffset
from cdcd.positions import PgPosition
from cdcd.runtime.context import Context, Notifier, State
from cdcd.runtime.coordinator import Coordinator

CONFIG = parse_config(
    {
        "name": "shop",
        "source": {"kind": "postgres", "dsn": "postgresql://cdc@127.0.0.1/shop"},
        "sink": {"kind": "stdout"},
    }
)


def row(op: str, i: int) -> ChangeEvent:
    return ChangeEvent(op, "public", "t", {"id": i}, None, {"id": i}, {"lsn": i})


class Snapshot:
    def __init__(self, due: bool) -> None:
        self._due = due

    def due(self, resume):
        return self._due and (resume is None or resume.snapshot is None or not resume.snapshot.get("done"))

    async def chunks(self, resume):
        yield [row("r", 1), row("r", 2), Commit(PgPosition(10), extra={"snapshot": True})]


class Source:
    connector = "postgresql"

    def __init__(self, snapshot: Snapshot | None) -> None:
        self.calls: list[str] = []
        self._snapshot = snapshot
        self.acked: list[PgPosition] = []
        self.streamed_from = None

    async def prepare(self, resume=None):
        self.calls.append(f"prepare {resume}")

    async def start_position(self):
        self.calls.append("start_position")
        return PgPosition(5)

    def snapshot(self):
        return self._snapshot

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
        ids = [orjson.loads(r.key)["id"] for r in records if r.value is not None]
        self.writes.append((ids, offset))
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


class Log:
    def info(self, *args, **kwargs):
        pass

    warning = debug = info


async def _run(source: Source, sink: Sink, resume: StoredOffset | None):
    ctx = Context(CONFIG, Log())
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
    source, sink = Source(Snapshot(due=True)), Sink()
    states, ctx = await _run(source, sink, None)
    assert source.calls == ["prepare None", "start_position"]
    # The start position is stored first, then the snapshot's rows, then the stream's.
    assert [ids for ids, _ in sink.writes] == [[], [1, 2], [3]]
    assert source.streamed_from == PgPosition(10)  # where the snapshot handed over
    assert source.acked == [PgPosition(10), PgPosition(20)]
    assert states == [State.SNAPSHOTTING, State.STREAMING]
    assert ctx.stats.acked is not None and ctx.stats.acked.position == PgPosition(20)


async def test_no_snapshot_due_streams_from_the_stored_offset():
    source, sink = Source(Snapshot(due=False)), Sink()
    states, _ = await _run(source, sink, StoredOffset(PgPosition(15)))
    assert source.calls == [f"prepare {PgPosition(15)}"]  # nothing pinned: an offset exists
    assert source.streamed_from == PgPosition(15)
    assert [ids for ids, _ in sink.writes] == [[3]]
    assert states == [State.STREAMING]


def test_the_notifier_tells_systemd_ready_status_and_stopping(tmp_path: Path):
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(str(path))
        manager.settimeout(2)
        ctx = Context(CONFIG, Log(), notifier=Notifier(str(path)))
        ctx.enter(State.STARTING, "connecting")
        ctx.enter(State.STREAMING, "streaming from 0/10#0")
        ctx.enter(State.STARTING, "source unavailable")
        ctx.enter(State.STREAMING, "streaming from 0/20#0")
        ctx.enter(State.STOPPING)
        received = [manager.recv(4096).decode() for _ in range(5)]
    assert received == [
        "STATUS=connecting",
        "READY=1\nSTATUS=streaming from 0/10#0",
        "STATUS=source unavailable",
        "STATUS=streaming from 0/20#0",  # READY only once
        "STOPPING=1\nSTATUS=stopping",
    ]
