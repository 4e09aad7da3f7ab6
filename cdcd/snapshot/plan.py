"""Whether a start reads the tables, and how: the snapshot mode's one decision.

- no stored offset, mode ``initial``/``initial_only``/``when_needed``/``always``: an
  initial snapshot, in a consistent view when the source can open one (then the stream
  from the view's position), else in watermarked chunks while streaming;
- a stored offset with a snapshot's progress (a daemon stopped or killed during it):
  the snapshot goes on, in watermarked chunks, after the last chunk Kafka holds, whatever
  the mode (its rows so far are in Kafka; stopping half-way would leave them alone);
- a stored offset, mode ``always``: the tables again, in watermarked chunks;
- otherwise no snapshot.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cdcd.errors import ConfigError, SourceError
from cdcd.offsets import StoredOffset
from cdcd.snapshot import ConsistentSnapshot, SnapshotReader, SnapshotTable, reader_of
from cdcd.snapshot.progress import Progress
from cdcd.snapshot.runner import select_tables

if TYPE_CHECKING:
    from cdcd.config import Config
    from cdcd.snapshot.config import SnapshotConfig


@dataclass(slots=True)
class Plan:
    """A snapshot to run: in ``view`` (consistent) or, when None, in watermarked chunks
    while streaming; ``then_stream``: False for ``initial_only``."""

    reader: SnapshotReader
    tables: list[SnapshotTable]
    progress: Progress
    view: ConsistentSnapshot | None = None
    then_stream: bool = True
    _closed: bool = False

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            if self.view is not None:
                await self.view.close()
        with contextlib.suppress(Exception):
            await self.reader.close()


async def plan_snapshot(
    config: Config, source: Any, resume: StoredOffset | None, log: Any = None
) -> Plan | None:
    """The snapshot this start runs, if any (see the module's rules)."""
    settings = config.snapshot
    mode = settings.mode
    then_stream = mode != "initial_only"
    if resume is not None and resume.snapshot:
        progress = Progress.from_dict(resume.snapshot)
        kind = "resumed"
    elif resume is None and mode != "no_data":
        progress, kind = None, "initial"
    elif resume is not None and mode == "always":
        progress, kind = None, "always"
    else:
        return None
    reader = reader_of(source)
    if reader is None:
        if progress is not None or mode in ("always", "when_needed", "initial_only"):
            raise ConfigError(f"snapshot.mode = {mode!r}: the {config.source.kind} source cannot read tables")
        return None
    try:
        plan = await _plan(reader, settings, progress, kind, then_stream, log)
    except BaseException:
        await reader.close()
        raise
    if log is not None:
        log.info(
            "snapshot",
            how="consistent view" if plan.view is not None else "watermarked chunks",
            why=kind,
            tables=len(plan.progress.pending),
            rows_so_far=plan.progress.rows,
            mode=mode,
        )
    return plan


async def _plan(
    reader: SnapshotReader,
    settings: SnapshotConfig,
    progress: Progress | None,
    kind: str,
    then_stream: bool,
    log: Any,
) -> Plan:
    """The tables and the view: an initial snapshot opens a consistent view, which also
    reads tables without a primary key (whole); watermarked chunks need a key."""
    captured = await reader.tables()
    view = await reader.consistent(threads=settings.max_threads) if kind == "initial" else None
    try:
        tables = select_tables(captured, settings.tables, "snapshot", keyless_ok=view is not None)
        if progress is None:
            progress = Progress.start("initial", [t.id for t in tables])
        else:
            _forget_tables_left_out(progress, tables, log)
    except BaseException:
        if view is not None:
            await view.close()
        raise
    if kind == "initial" and view is None and log is not None:
        log.info("snapshot: no consistent view; reading watermarked chunks while streaming")
    return Plan(reader, tables, progress, view=view, then_stream=then_stream)


def _forget_tables_left_out(progress: Progress, tables: list[SnapshotTable], log: Any) -> None:
    """A snapshot resumed after the configuration changed: tables no longer selected (or
    no longer there) are not read; a table without a key cannot be read in chunks."""
    chosen = {t.id: t for t in tables}
    gone = [t for t in progress.pending if t not in chosen]
    if gone:
        progress.drop(gone)
        if log is not None:
            log.warning("snapshot: tables no longer selected are not read", tables=gone)
    keyless = [t for t in progress.pending if not chosen[t].key_columns]
    if keyless:
        raise SourceError(
            f"the initial snapshot was cut short before {', '.join(keyless[:5])} (no primary "
            "key) was read whole; without a key it can only be read in the consistent view "
            "that died with the daemon. Add a primary key (the table is then read in "
            "chunks), or leave it out ([snapshot] tables), then start again"
        )
