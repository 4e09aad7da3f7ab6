"""Snapshots: where a source's table reading plugs into the coordinator.

A source that can snapshot its tables offers ``snapshot()``, returning a
``SnapshotSource``; the coordinator (``cdcd.runtime.coordinator``) asks for it when a
snapshot is due and runs it before the stream (an initial snapshot) or between stream
transactions (incremental snapshots). Its chunks are ordinary source items: ``op = "r"``
change events, and commits whose checkpoints carry the snapshot's progress
(``Checkpoint.snapshot``, stored with the offset) so that a restart resumes it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from cdcd.events import SourceItem
from cdcd.offsets import StoredOffset


class SnapshotSource(Protocol):
    """One database's snapshot reader."""

    def due(self, resume: StoredOffset | None) -> bool:
        """Whether a snapshot must run before streaming from ``resume`` (the snapshot mode
        decides; ``resume.snapshot`` holds the progress of one that was cut short)."""
        ...

    def chunks(self, resume: StoredOffset | None) -> AsyncIterator[list[SourceItem]]:
        """The snapshot's rows as chunks of items, resuming after ``resume.snapshot``."""
        ...


def snapshot_of(source: Any) -> SnapshotSource | None:
    """The source's snapshot reader, if it has one."""
    make = getattr(source, "snapshot", None)
    return make() if callable(make) else None
