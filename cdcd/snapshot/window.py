"""Watermarked snapshot chunks interleaved with the stream (DBLog, as Debezium's
incremental snapshots), read-only, and the signals that start and steer them.

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
always says where it stands. Signals (``cdcd.snapshot.signals``) start, add to, pause,
resume and stop snapshots; notifications travel with the progress they report.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from cdcd.errors import SourceError
from cdcd.events import ChangeEvent, Commit, SourceItem
from cdcd.offsets import inside_transaction
from cdcd.positions import Position
from cdcd.snapshot import Chunk, SnapshotReader, SnapshotTable
from cdcd.snapshot.progress import Kind, Progress
from cdcd.snapshot.runner import progress_commit, record_chunk, select_tables
from cdcd.snapshot.signals import INCREMENTAL, INITIAL, Notices, Signal, SignalError, parse_signal

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
    """Runs snapshots' chunks into one stream; ``items()`` is the merged stream, which
    ends once a snapshot is done when ``then_stream`` is False (``initial_only``).
    ``progress``: a snapshot under way (None: none, until a signal starts one)."""

    def __init__(
        self,
        reader: SnapshotReader,
        tables: list[SnapshotTable],
        progress: Progress | None,
        *,
        chunk_size: int,
        connector_name: str = "",
        source: Any = None,
        log: Any = None,
        then_stream: bool = True,
        on_finished: Any = None,
        signals: asyncio.Queue[Signal] | None = None,
        signal_table: tuple[str, str] | None = None,
    ) -> None:
        self.reader = reader
        self.tables = {t.id: t for t in tables}
        self.progress = progress
        self.chunk_size = chunk_size
        self.nudge = getattr(source, "heartbeat_soon", None)
        self.log = log
        self.then_stream = then_stream
        self.on_finished = on_finished  # called once a snapshot's last chunk is emitted
        self.signals = signals
        self.signal_table = signal_table  # (schema, table) of the source signal channel
        self.connector_name = connector_name
        self._window: _Window | None = None
        self._reading: asyncio.Task[tuple[Chunk, Position]] | None = None
        self._position: Position | None = None
        self._boundary = True
        self._outbox: list[SourceItem] = []  # notifications waiting for a boundary
        self._notices = self._notices_for(progress)

    @property
    def running(self) -> bool:
        return self.progress is not None and not self.progress.finished

    def _notices_for(self, progress: Progress | None) -> Notices:
        aggregate = INITIAL if progress is not None and progress.kind == "initial" else INCREMENTAL
        return Notices(self.connector_name, aggregate)

    async def items(
        self, stream: AsyncIterator[list[SourceItem]], start: Position | None
    ) -> AsyncIterator[list[SourceItem]]:
        self._position = start
        self._boundary = start is None or not inside_transaction(start)
        it = stream.__aiter__()
        following: asyncio.Future[list[SourceItem]] = asyncio.ensure_future(it.__anext__())
        signal: asyncio.Future[Signal] | None = None
        waited_since = time.monotonic()
        try:
            self._begin_chunk()
            while self.running or self.then_stream:
                waits: set[asyncio.Future[Any]] = {following}
                if self._reading is not None:
                    waits.add(self._reading)
                if self.signals is not None:
                    if signal is None:
                        signal = asyncio.ensure_future(self.signals.get())
                    waits.add(signal)
                timeout = _NUDGE_AFTER_S if self._waiting_for_stream() else None
                done, _ = await asyncio.wait(
                    waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if signal is not None and signal in done:
                    await self.apply(signal.result())
                    signal = None
                    if flushed := self._flush():
                        yield flushed
                if self._reading is not None and self._reading in done:
                    reading, self._reading = self._reading, None
                    if self._window is not None:
                        self._window.filled(*reading.result())
                    if emitted := self._emit_if_reached():
                        yield emitted
                    elif self._waiting_for_stream() and self.nudge is not None:
                        self.nudge()  # an idle stream: ask for the position now
                        waited_since = time.monotonic()
                if following in done:
                    try:
                        chunk = following.result()
                    except StopAsyncIteration:
                        return
                    following = asyncio.ensure_future(it.__anext__())
                    waited_since = time.monotonic()
                    yield self._through(chunk)
                elif (
                    self._waiting_for_stream() and time.monotonic() - waited_since >= _NUDGE_AFTER_S
                ):
                    if self.nudge is not None:
                        self.nudge()
                    waited_since = time.monotonic()
        finally:
            for task in (following, self._reading, signal):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
            with contextlib.suppress(Exception):
                await it.aclose()  # type: ignore[attr-defined]

    def _waiting_for_stream(self) -> bool:
        window = self._window
        return window is not None and window.rows is not None

    # -- chunks ----------------------------------------------------------------------

    def _begin_chunk(self) -> None:
        """Start reading the next chunk (none while paused or when all tables are read)."""
        progress = self.progress
        if self._window is not None:
            return
        if progress is None or progress.paused or progress.finished:
            return
        table_id = progress.pending[0]
        table = self.tables.get(table_id)
        if table is None:  # dropped since the snapshot began
            progress.advance(table_id, None, 0, True)
            self._begin_chunk()
            return
        self._window = _Window(table)
        self._reading = asyncio.create_task(self._read(table, progress), name="cdcd-snapshot-chunk")

    async def _read(self, table: SnapshotTable, progress: Progress) -> tuple[Chunk, Position]:
        chunk = await self.reader.read_chunk(
            table, progress.keys.get(table.id), self.chunk_size, progress.where.get(table.id)
        )
        return chunk, await self.reader.watermark()

    def _drop_window(self) -> None:
        if self._reading is not None:
            self._reading.cancel()
            self._reading = None
        self._window = None

    def _through(self, items: list[SourceItem]) -> list[SourceItem]:
        """The stream's chunk with the snapshot's progress on its commits, and the chunk
        read emitted where the stream reaches its high watermark."""
        if self.progress is None and self.signal_table is None and not self._outbox:
            if items:
                last = items[-1]
                if type(last) is Commit:
                    self._position = last.position  # type: ignore[union-attr]
                    self._boundary = not inside_transaction(last.position)  # type: ignore[union-attr]
                else:
                    self._boundary = False
            return items  # nothing to do: the stream as it is
        out: list[SourceItem] = []
        append = out.append
        for item in items:
            kind = type(item)
            if kind is ChangeEvent:
                event: ChangeEvent = item  # type: ignore[assignment]
                if (
                    self.signal_table is not None
                    and (event.namespace, event.table) == self.signal_table
                ):
                    self._source_signal(event)
                    continue
                self._boundary = False
                if self._window is not None:
                    self._window.saw(event)
            elif kind is Commit:
                commit: Commit = item  # type: ignore[assignment]
                if self.progress is not None:
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
                out.extend(self._emit_if_reached() or self._flush())
                continue
            append(item)
        return out

    def _emit_if_reached(self) -> list[SourceItem]:
        """The chunk's rows and a progress commit, when the stream is at a transaction
        boundary past the chunk's high watermark; then the next chunk's read begins."""
        window, progress = self._window, self.progress
        if window is None or window.rows is None or not self._boundary or progress is None:
            return []
        assert window.high is not None and window.chunk is not None
        if self._position is None or not self.reader.reached(self._position, window.high):
            return []
        chunk = window.chunk
        rows = list(window.rows.values())
        marker = "incremental" if progress.kind == "incremental" else "true"
        for row in rows:  # one value for every row: a source dict they share may take it
            row.source["snapshot"] = marker
        self._outbox.extend(record_chunk(progress, chunk, len(rows), self._notices, self.log))
        self._window = None
        out: list[SourceItem] = [*rows] if chunk.schema is None else [chunk.schema, *rows]
        if progress.finished:
            self._finish("COMPLETED")
        out.extend(self._flush(force=True))
        self._begin_chunk()
        return out

    def _finish(self, kind: str, **data: Any) -> None:
        progress = self.progress
        assert progress is not None
        self._outbox.append(self._notices.of(progress.id, kind, **data))
        self.progress = None
        self._drop_window()
        if self.log is not None:
            self.log.info(f"snapshot {kind.lower()}", id=progress.id, rows=progress.rows)
        if self.on_finished is not None:
            self.on_finished()

    def _flush(self, force: bool = False) -> list[SourceItem]:
        """Waiting notifications and a commit storing the progress, at a boundary."""
        if not (self._outbox or force) or not self._boundary or self._position is None:
            return []
        out, self._outbox = self._outbox, []
        out.append(progress_commit(self._position, self.progress))
        return out

    # -- signals ---------------------------------------------------------------------

    def _source_signal(self, event: ChangeEvent) -> None:
        """A row inserted in the signal table: a signal, in stream order."""
        if event.op not in ("c", "r") or event.after is None:
            return
        row = event.after
        try:
            signal = parse_signal(
                {"type": row.get("type"), "data": row.get("data")},
                signal_id=str(row.get("id")),
                channel="source",
            )
        except SignalError as exc:
            signal = Signal(str(row.get("id")), "invalid", message=str(exc), channel="source")
        if self.signals is not None:
            self.signals.put_nowait(signal)

    def _refuse(self, signal_id: str, reason: str) -> None:
        if self.log is not None:
            self.log.warning("signal refused", id=signal_id, reason=reason)
        self._outbox.append(self._notices.of(signal_id, "ABORTED", reason=reason))

    async def apply(self, signal: Signal) -> None:
        """Act on one signal; a refusal is an ABORTED notification with the reason."""
        if self.log is not None:
            self.log.info("signal", id=signal.id, type=signal.type, channel=signal.channel)
        if signal.type == "invalid":
            self._refuse(signal.id, signal.message)
            return
        if signal.type == "log":
            if self.log is not None:
                self.log.info("signal log", message=signal.message)
            return
        if signal.type == "execute-snapshot":
            await self._execute(signal)
            return
        progress = self.progress
        if progress is None:
            self._refuse(signal.id, f"{signal.type}: no snapshot is running")
            return
        if signal.type == "pause-snapshot":
            progress.paused = True
            self._outbox.append(self._notices.of(progress.id, "PAUSED"))
        elif signal.type == "resume-snapshot":
            progress.paused = False
            self._outbox.append(self._notices.of(progress.id, "RESUMED"))
            self._begin_chunk()
        elif signal.collections:  # stop-snapshot of some tables
            tables = [
                t.id for t in select_tables(list(self.tables.values()), signal.collections, "stop")
            ]
            if self._window is not None and self._window.table.id in tables:
                self._drop_window()
            progress.drop(tables)
            if progress.finished:
                self._finish("ABORTED", data_collections=tables)
            else:
                self._outbox.append(
                    self._notices.of(progress.id, "ABORTED", data_collections=tables)
                )
                self._begin_chunk()
        else:
            self._finish("ABORTED", data_collections=list(progress.pending))

    async def _execute(self, signal: Signal) -> None:
        try:
            tables = select_tables(
                await self.reader.tables(), signal.collections, "execute-snapshot"
            )
        except SourceError as exc:
            self._refuse(signal.id, str(exc))
            return
        if not tables:
            self._refuse(
                signal.id,
                f"data-collections {list(signal.collections)} match no captured table "
                "(regular expressions over schema.table)",
            )
            return
        where = _conditions_for(tables, signal.conditions)
        self.tables.update({t.id: t for t in tables})
        ids = [t.id for t in tables]
        if self.progress is not None:
            added = self.progress.add(ids, where)
            self._outbox.append(
                self._notices.of(self.progress.id, "STARTED", data_collections=added)
            )
        else:
            kind: Kind = "blocking" if signal.snapshot_type == "blocking" else "incremental"
            self.progress = Progress.start(kind, ids, where, id=signal.id)
            self._notices = self._notices_for(self.progress)
            self._outbox.append(self._notices.of(signal.id, "STARTED", data_collections=ids))
        self._begin_chunk()


def _conditions_for(tables: list[SnapshotTable], conditions: dict[str, str]) -> dict[str, str]:
    """Each table's additional condition (its data-collection matched as Debezium's, a
    regular expression over schema.table)."""
    out = {}
    for pattern, condition in conditions.items():
        compiled = re.compile(pattern, re.IGNORECASE)
        for table in tables:
            if compiled.fullmatch(table.id):
                out[table.id] = condition
    return out
