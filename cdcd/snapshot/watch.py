"""Following a snapshot from its notifications: progress bars on a terminal, lines
otherwise, and the outcome (``cdcd snapshot``).

Notifications (``cdcd.snapshot.signals``) carry, after each chunk, the table in progress,
its rows so far and the server's estimate of its rows; rows/s and the time left follow.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from cdcd.errors import CdcdError


class SnapshotFailed(CdcdError):
    """The daemon refused or aborted the snapshot; the message says why."""


@dataclass(slots=True)
class _Table:
    rows: int = 0
    estimated: int = 0
    done: bool = False
    started: float = field(default_factory=time.monotonic)


class Watch:
    """The outcome of one request: ``until`` names the notification types that end it
    (COMPLETED for a snapshot; PAUSED, RESUMED or ABORTED for the others)."""

    def __init__(self, signal_id: str, until: tuple[str, ...], out: Any = None) -> None:
        self.signal_id = signal_id
        self.until = until
        self.snapshot_id: str | None = None
        self.tables: dict[str, _Table] = {}
        self.out = out or sys.stdout
        self.tty = bool(getattr(self.out, "isatty", lambda: False)())
        self._bars: Any = None
        self._tasks: dict[str, Any] = {}
        self._last_line = 0.0

    async def follow(self, notices: AsyncIterator[dict[str, Any]]) -> dict[str, Any]:
        """The notification that ended it; ``SnapshotFailed`` on a refusal or an abort
        (when an abort is not what was asked), ``TimeoutError`` when notices stop."""
        self._start_bars()
        try:
            async for notice in notices:
                if not self._ours(notice):
                    continue
                kind = notice.get("type")
                data = notice.get("additional_data") or {}
                if kind == "ABORTED" and "ABORTED" not in self.until:
                    raise SnapshotFailed(data.get("reason") or "the daemon aborted the snapshot")
                if kind == "ABORTED" and data.get("reason"):
                    raise SnapshotFailed(data["reason"])
                self._show(kind, data)
                if kind in self.until:
                    return notice
        finally:
            if self._bars is not None:
                self._bars.stop()
        raise TimeoutError("the daemon did not answer")

    def _ours(self, notice: dict[str, Any]) -> bool:
        ident = notice.get("id")
        if ident == self.signal_id:
            self.snapshot_id = self.snapshot_id or ident
            return True
        if self.snapshot_id is None and notice.get("type") in self.until:
            return True  # pause/resume/stop answer with the running snapshot's id
        return ident is not None and ident == self.snapshot_id

    def _start_bars(self) -> None:
        if not self.tty:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[speed]}"),
            TimeRemainingColumn(),
            transient=False,
        )
        self._bars.start()

    def _show(self, kind: str | None, data: dict[str, Any]) -> None:
        table_id = data.get("current_collection_in_progress") or data.get("data_collection")
        if kind == "IN_PROGRESS" and table_id:
            table = self.tables.setdefault(table_id, _Table())
            table.rows = int(data.get("rows_scanned") or 0)
            table.estimated = max(int(data.get("rows_estimated") or 0), table.rows)
        elif kind == "TABLE_SCAN_COMPLETED" and table_id:
            table = self.tables.setdefault(table_id, _Table())
            table.rows = int(data.get("total_rows_scanned") or table.rows)
            table.estimated, table.done = table.rows, True
        if self._bars is not None:
            self._update_bars()
        else:
            self._line(kind, table_id, data)

    def _update_bars(self) -> None:
        for table_id, table in self.tables.items():
            elapsed = max(time.monotonic() - table.started, 1e-3)
            speed = f"{table.rows / elapsed:,.0f} rows/s"
            task = self._tasks.get(table_id)
            if task is None:
                task = self._tasks[table_id] = self._bars.add_task(
                    table_id, total=table.estimated or None, speed=speed
                )
            self._bars.update(
                task, completed=table.rows, total=table.estimated or None, speed=speed
            )

    def _line(self, kind: str | None, table_id: str | None, data: dict[str, Any]) -> None:
        now = time.monotonic()
        if kind == "IN_PROGRESS" and now - self._last_line < 1.0:
            return  # at most a line a second while a table is read
        self._last_line = now
        text = f"snapshot {self.snapshot_id or self.signal_id}: {kind}"
        table = self.tables.get(table_id or "")
        if table is not None:
            elapsed = max(now - table.started, 1e-3)
            rate = table.rows / elapsed
            text += f" {table_id} {table.rows:,}"
            if table.estimated:
                text += f"/{table.estimated:,} rows ({100 * table.rows / table.estimated:.0f}%)"
            text += f", {rate:,.0f} rows/s"
            if table.estimated and rate > 0 and not table.done:
                text += f", ETA {max(table.estimated - table.rows, 0) / rate:,.0f} s"
        elif data.get("data_collections"):
            text += f" {data['data_collections']}"
        print(text, file=self.out, flush=True)


def describe_progress(progress: dict[str, Any] | None) -> str:
    """A stored snapshot progress in words (``cdcd snapshot --status``)."""
    if not progress:
        return "no snapshot is running"
    pending = progress.get("pending") or []
    state = "paused" if progress.get("paused") else "running"
    lines = [
        f"{progress.get('kind', '?')} snapshot {progress.get('id')}: {state}, "
        f"{progress.get('rows', 0):,} rows written, {len(pending)} of "
        f"{progress.get('total', len(pending))} tables to go"
    ]
    rows = progress.get("table_rows") or {}
    for table in pending:
        after = (progress.get("keys") or {}).get(table)
        where = f" after key {after}" if after else " (not begun)"
        lines.append(f"  {table}: {rows.get(table, 0):,} rows{where}")
    return "\n".join(lines)
