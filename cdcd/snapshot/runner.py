"""The initial snapshot in a consistent view: every table scanned, then the stream.

``consistent_chunks`` reads the tables of a ``ConsistentSnapshot`` (``max_threads`` at
once, each scan on its own connection) and yields, per chunk, its ``op = "r"`` rows and a
commit at the view's position whose checkpoint carries the progress: once Kafka holds a
chunk, a restart resumes after it (in watermarked chunks, ``cdcd.snapshot.window``: the
view is gone with the process). The last commit carries no progress: the snapshot is done
and the stream starts from the view's position, so that nothing is lost or doubled at
the seam.

``source.snapshot`` is set as Debezium 3.x sets it: ``first`` on the snapshot's first
record, ``first_in_data_collection`` on each other table's first, ``last_in_data_collection``
on each table's last, ``last`` on the snapshot's last, ``true`` on the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

from cdcd.errors import SourceError
from cdcd.events import HEARTBEAT, ChangeEvent, Commit, SourceItem
from cdcd.positions import Position
from cdcd.snapshot import Chunk, ConsistentSnapshot, SnapshotTable
from cdcd.snapshot.progress import Progress
from cdcd.snapshot.signals import Notices

_AHEAD = 2  # chunks read ahead per table being scanned


def progress_commit(position: Position, progress: Progress | None) -> Commit:
    """A commit without events at ``position`` that stores ``progress`` with the offset
    (None: the snapshot is done)."""
    return Commit(
        position, extra={**HEARTBEAT, "snapshot": progress.to_dict() if progress else None}
    )


def select_tables(
    tables: Sequence[SnapshotTable],
    patterns: Sequence[str] | None,
    what: str,
    *,
    keyless_ok: bool = False,
) -> list[SnapshotTable]:
    """The tables a snapshot reads: ``patterns`` (regular expressions over
    ``schema.table``, case-insensitive, as Debezium's data-collections) select among the
    captured ones. A table without a primary key is refused, naming it and the fix, unless
    ``keyless_ok`` (an initial snapshot in a consistent view reads it whole)."""
    chosen = list(tables)
    if patterns:
        compiled = [re.compile(p, re.IGNORECASE) for p in patterns]
        chosen = [t for t in tables if any(c.fullmatch(t.id) for c in compiled)]
    keyless = [t.id for t in chosen if not t.key_columns]
    if keyless and not keyless_ok:
        raise SourceError(
            f"{what}: table {', '.join(keyless[:5])} has no primary key, so it cannot be read in "
            "chunks that a restart resumes: add a primary key, or leave the table out of the "
            "snapshot ([snapshot] tables = [...], regular expressions over schema.table), or "
            'stream it without a snapshot ([snapshot] mode = "no_data")'
        )
    return chosen


class _Marks:
    """Debezium's ``source.snapshot`` values over a snapshot's records."""

    def __init__(self) -> None:
        self._any = False
        self._begun: set[str] = set()

    def mark(self, chunk: Chunk, last_of_all: bool) -> None:
        """``true`` on every row (the rows may share one source dict), then a source of
        its own for a table's first row and its last."""
        rows = chunk.rows
        if not rows:
            return
        shared = None
        for row in rows:
            if row.source is not shared:
                shared = row.source
                shared["snapshot"] = "true"
        table = chunk.table.id
        if table not in self._begun:
            self._begun.add(table)
            _own(rows[0], "first" if not self._any else "first_in_data_collection")
        self._any = True
        if chunk.done:
            _own(rows[-1], "last" if last_of_all else "last_in_data_collection")


def _own(row: ChangeEvent, snapshot: str) -> None:
    """Give ``row`` a source dict of its own, whose ``snapshot`` is ``snapshot``."""
    row.source = {**row.source, "snapshot": snapshot}


def record_chunk(
    progress: Progress, chunk: Chunk, rows: int, notices: Notices | None, log: Any
) -> list[SourceItem]:
    """``rows`` rows of ``chunk`` written: the progress moves past it; its notifications
    (IN_PROGRESS, and TABLE_SCAN_COMPLETED with the table's last chunk)."""
    table = chunk.table
    progress.advance(table.id, chunk.last_key, rows, chunk.done)
    if chunk.done and log is not None:
        log.info(
            "snapshot: table read",
            table=table.id,
            tables_left=len(progress.pending),
            rows=progress.rows,
            kind=progress.kind,
        )
    if notices is None:
        return []
    done_rows = progress.table_rows.get(table.id, 0)
    return list(notices.chunk(progress, table, chunk.last_key, done_rows, chunk.done))


async def consistent_chunks(
    view: ConsistentSnapshot,
    tables: Sequence[SnapshotTable],
    progress: Progress,
    *,
    chunk_size: int,
    threads: int,
    notices: Notices | None = None,
    log: Any = None,
) -> AsyncIterator[list[SourceItem]]:
    """The rows of every pending table in ``view``, chunk by chunk, each followed by a
    progress commit; the last commit says the snapshot is done."""
    by_id = {t.id: t for t in tables}
    todo = [by_id[t] for t in progress.pending if t in by_id]
    queue: asyncio.Queue[Chunk | BaseException | None] = asyncio.Queue(maxsize=_AHEAD * threads)
    waiting = list(todo)

    async def scan_tables() -> None:
        while waiting:
            table = waiting.pop(0)
            after = progress.keys.get(table.id)
            async for chunk in view.scan(table, after, chunk_size, progress.where.get(table.id)):
                await queue.put(chunk)
                if chunk.done:
                    break
        await queue.put(None)

    async def guarded() -> None:
        try:
            await scan_tables()
        except BaseException as exc:  # handed to the consumer, which raises it
            await queue.put(exc)
            raise

    scanners = [
        asyncio.create_task(guarded(), name=f"cdcd-snapshot-{i}")
        for i in range(max(1, min(threads, len(todo))))
    ]
    marks = _Marks()
    running = len(scanners)
    if notices is not None and not progress.rows:
        yield [notices.of(progress.id, "STARTED", data_collections=[t.id for t in todo])]
    try:
        while running:
            chunk = await queue.get()
            if chunk is None:
                running -= 1
                continue
            if isinstance(chunk, BaseException):
                raise chunk
            notes = record_chunk(progress, chunk, len(chunk.rows), notices, log)
            marks.mark(chunk, progress.finished)
            items: list[SourceItem] = [*chunk.items(), *notes]
            if notices is not None and progress.finished:
                items.append(notices.of(progress.id, "COMPLETED", total_rows_scanned=progress.rows))
            items.append(progress_commit(view.position, None if progress.finished else progress))
            yield items
        if not progress.finished:  # a table vanished before it could be read
            progress.pending.clear()
            yield [progress_commit(view.position, None)]
    finally:
        for task in scanners:
            task.cancel()
        for task in scanners:
            with contextlib.suppress(BaseException):
                await task
