"""Watermarked snapshot chunks interleaved with the stream (DBLog, as Debezium's
incremental snapshots), read-only.

For each chunk of a table (by primary key, ``chunk_size`` rows):

1. from the moment its read begins, every stream event on the table marks its key;
2. the chunk is read (``read_chunk``, the table as it is now), then the high watermark
   (``watermark()``: a position after every transaction committed so far);
3. rows whose key the stream changed since step 1 are dropped (the stream gives them,
   as new as or newer than the chunk), and the others are emitted at the first
   transaction boundary where the stream has reached the high watermark (``reached``),
   followed by a commit that stores the progress.

An event handled before the read began was committed before it, so its row in the chunk
is at least as new; an event after the high watermark comes after the chunk. So no row is
ever emitted older than its latest change, and a deleted row never comes back. On an idle
database the stream is asked for a heartbeat (``heartbeat_soon``) to reach the watermark.

While a snapshot runs, every stream commit carries its progress, so the stored offset
always says where it stands.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from cdcd.events import ChangeEvent, Commit, SourceItem
from cdcd.offsets import inside_transaction
from cdcd.positions import Position
from cdcd.snapshot import Chunk, SnapshotReader, SnapshotTable
from cdcd.snapshot.progress import Progress
from cdcd.snapshot.runner import progress_commit

_NUDGE_AFTER_S = 0.2  # a window waits this long for the stream before asking for a heartbeat


def key_of(event: ChangeEvent) -> Any:
    """A hashable form of an event's key (equal for equal keys, whatever their types)."""
    key = event.key
    if key is None:
        return None
    try:
        value = tuple(key.values())
        hash(value)
        return value
    except TypeError:
        return orjson.dumps(key, option=orjson.OPT_SORT_KEYS)


@dataclass(slots=True)
class _Window:
    table: SnapshotTable
    touched: set[Any] = field(default_factory=set)
    rows: dict[Any, ChangeEvent] | None = None  # the chunk's rows still to emit, by key
    chunk: Chunk | None = None
    high: Position | None = None

    def saw(self, event: ChangeEvent) -> None:
        if event.table == self.table.name and event.namespace == self.table.namespace:
            key = key_of(event)
            if self.rows is None:
                self.touched.add(key)
            else:
                self.rows.pop(key, None)

    def filled(self, chunk: Chunk, high: Position) -> None:
        self.chunk, self.high = chunk, high
        rows = {}
        for row in chunk.rows:
            key = key_of(row)
            if key not in self.touched:
                rows[key] = row
        self.rows, self.touched = rows, set()


class Interleaver:
    """Runs one snapshot's chunks into one stream; ``items()`` is the merged stream, which
    ends after the snapshot when ``then_stream`` is False (``initial_only``)."""

    def __init__(
        self,
        reader: SnapshotReader,
        tables: list[SnapshotTable],
        progress: Progress,
        *,
        chunk_size: int,
        source: Any = None,
        log: Any = None,
        then_stream: bool = True,
        on_finished: Any = None,
    ) -> None:
        self.reader = reader
        self.tables = {t.id: t for t in tables}
        self.progress = progress
        self.chunk_size = chunk_size
        self.nudge = getattr(source, "heartbeat_soon", None)
        self.log = log
        self.then_stream = then_stream
        self.on_finished = on_finished  # called once the last chunk is emitted
        self.marker = "incremental" if progress.kind == "incremental" else "true"
        self._window: _Window | None = None
        self._reading: asyncio.Task[tuple[Chunk, Position]] | None = None
        self._position: Position | None = None
        self._boundary = True

    @property
    def running(self) -> bool:
        return not self.progress.finished

    async def items(
        self, stream: AsyncIterator[list[SourceItem]], start: Position | None
    ) -> AsyncIterator[list[SourceItem]]:
        self._position = start
        self._boundary = start is None or not inside_transaction(start)
        it = stream.__aiter__()
        following: asyncio.Future[list[SourceItem]] = asyncio.ensure_future(it.__anext__())
        waited_since = time.monotonic()
        try:
            self._begin_chunk()
            while self.running or self.then_stream:
                waits: set[asyncio.Future[Any]] = {following}
                if self._reading is not None:
                    waits.add(self._reading)
                timeout = _NUDGE_AFTER_S if self._waiting_for_stream() else None
                done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if self._reading is not None and self._reading in done:
                    reading, self._reading = self._reading, None
                    assert self._window is not None
                    self._window.filled(*reading.result())
                    emitted = self._emit_if_reached()
                    if emitted:
                        yield emitted
                if following in done:
                    try:
                        chunk = following.result()
                    except StopAsyncIteration:
                        return
                    following = asyncio.ensure_future(it.__anext__())
                    waited_since = time.monotonic()
                    yield self._through(chunk)
                elif self._waiting_for_stream() and time.monotonic() - waited_since >= _NUDGE_AFTER_S:
                    if self.nudge is not None:
                        self.nudge()
                    waited_since = time.monotonic()
        finally:
            for task in (following, self._reading):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
            with contextlib.suppress(Exception):
                await it.aclose()  # type: ignore[attr-defined]

    def _waiting_for_stream(self) -> bool:
        window = self._window
        return window is not None and window.rows is not None

    def _begin_chunk(self) -> None:
        """Start reading the next chunk (none while paused or when all tables are read)."""
        progress = self.progress
        self._window = None
        if progress.paused or progress.finished:
            return
        table_id = progress.pending[0]
        table = self.tables.get(table_id)
        if table is None:  # dropped since the snapshot began
            progress.advance(table_id, None, 0, True)
            self._begin_chunk()
            return
        self._window = _Window(table)
        self._reading = asyncio.create_task(self._read(table), name="cdcd-snapshot-chunk")

    async def _read(self, table: SnapshotTable) -> tuple[Chunk, Position]:
        progress = self.progress
        chunk = await self.reader.read_chunk(
            table, progress.keys.get(table.id), self.chunk_size, progress.where.get(table.id)
        )
        return chunk, await self.reader.watermark()

    def _through(self, items: list[SourceItem]) -> list[SourceItem]:
        """The stream's chunk with the snapshot's progress on its commits, and the chunk
        read emitted where the stream reaches its high watermark."""
        out: list[SourceItem] = []
        append = out.append
        for item in items:
            kind = type(item)
            if kind is ChangeEvent:
                self._boundary = False
                if self._window is not None:
                    self._window.saw(item)  # type: ignore[arg-type]
            elif kind is Commit:
                commit: Commit = item  # type: ignore[assignment]
                if self.running:
                    commit = Commit(
                        commit.position,
                        commit.txid,
                        commit.ts_ms,
                        commit.event_count,
                        {**commit.extra, "snapshot": self.progress.to_dict()},
                    )
                self._position = commit.position
                self._boundary = not inside_transaction(commit.position)
                append(commit)
                out.extend(self._emit_if_reached())
                continue
            append(item)
        return out

    def _emit_if_reached(self) -> list[SourceItem]:
        """The chunk's rows and a progress commit, when the stream is at a transaction
        boundary past the chunk's high watermark; then the next chunk's read begins."""
        window = self._window
        if window is None or window.rows is None or not self._boundary:
            return []
        assert window.high is not None and window.chunk is not None
        if self._position is None or not self.reader.reached(self._position, window.high):
            return []
        chunk = window.chunk
        rows = list(window.rows.values())
        for row in rows:
            row.source["snapshot"] = self.marker
        self.progress.advance(chunk.table.id, chunk.last_key, len(rows), chunk.done)
        finished = self.progress.finished
        if chunk.done and self.log is not None:
            self.log.info(
                "snapshot: table read",
                table=chunk.table.id,
                tables_left=len(self.progress.pending),
                rows=self.progress.rows,
                kind=self.progress.kind,
            )
        if finished and self.on_finished is not None:
            self.on_finished()
        out: list[SourceItem] = [*rows, progress_commit(self._position, None if finished else self.progress)]
        self._begin_chunk()
        return out
