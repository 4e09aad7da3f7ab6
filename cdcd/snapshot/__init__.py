"""Snapshots: what a source offers to read its tables, and how the core runs it.

A source that can snapshot its tables offers ``snapshot_reader()``, a ``SnapshotReader``
(``cdcd/sources/<db>/snapshot.py``). The core (``cdcd.snapshot.runner``, driven by the
coordinator) uses it in one of two ways:

- **consistent** (the initial snapshot of a daemon with no stored offset): the reader
  opens a ``ConsistentSnapshot`` — PostgreSQL: the snapshot a new replication slot
  exports; MySQL/MariaDB: a consistent-snapshot transaction whose binlog position is
  known — and the core scans every table in it (``max_threads`` at once), then streams
  from its ``position``: nothing lost or doubled at the seam.
- **watermarked** (DBLog, as Debezium's incremental snapshots): chunks of a table read
  by primary key while the stream runs, each between a low and a high watermark
  (``watermark()``: a position after everything committed so far); the core drops from
  a chunk every row the stream changed between the two and emits the rest where the
  stream reaches the high watermark (``cdcd.snapshot.window``). This resumes an initial
  snapshot cut short (its consistent snapshot is gone), and runs the snapshots that
  signals ask for.

Chunks are ordinary source items: ``op = "r"`` change events, and a commit whose
checkpoint carries the snapshot's progress (``Checkpoint.snapshot``, stored with the
offset), so that a restart resumes after the last chunk Kafka holds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from cdcd.events import ChangeEvent, TableSchema
from cdcd.positions import Position


@dataclass(frozen=True, slots=True)
class SnapshotTable:
    """A table to read: ``key_columns`` its primary key in the key's order (empty: none,
    which the core refuses, naming the table); ``estimated_rows`` from the server's
    statistics (0: unknown), for progress."""

    namespace: str
    name: str
    key_columns: tuple[str, ...]
    estimated_rows: int = 0

    @property
    def id(self) -> str:
        """``schema.table`` / ``database.table``, as data collections are named."""
        return f"{self.namespace}.{self.name}"


@dataclass(slots=True)
class Chunk:
    """Rows of one table in primary-key order: ``rows`` are ``op = "r"`` events whose key,
    after image and source block are encoded exactly as the stream encodes them. The rows
    of a chunk may share one ``source`` dict (a reader builds it once a chunk); the core
    sets ``source["snapshot"]``, the same value on every row of a chunk, and gives a row
    whose value differs (a table's first or last) a copy of its own. ``last_key``: the last row's key values in key
    order, as JSON values the reader takes back as ``after`` (opaque to the core; None
    when the chunk is empty). ``done``: the table has no rows after this chunk.
    ``schema``: the table's columns' schema, as the stream gives it, on a table's first
    chunk (the core puts it before the rows)."""

    table: SnapshotTable
    rows: list[ChangeEvent]
    last_key: list[Any] | None
    done: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    schema: TableSchema | None = None

    def items(self) -> list[Any]:
        """The chunk's source items: its schema (if any), then its rows."""
        return self.rows if self.schema is None else [self.schema, *self.rows]


class ConsistentSnapshot(Protocol):
    """One consistent view of the database, whose changes after it the stream gives from
    ``position`` (PostgreSQL: the exported snapshot and the slot's consistent point)."""

    position: Position

    def scan(
        self, table: SnapshotTable, after: list[Any] | None, chunk_size: int, where: str | None
    ) -> AsyncIterator[Chunk]:
        """The table's rows in this view, in primary-key order, after key ``after``,
        ``chunk_size`` at a time, never the whole table in memory; ``where``: an SQL
        condition on the table's columns (``additional-conditions``). Several scans may run
        at once (each on its own connection joined to the same view)."""
        ...

    async def close(self) -> None:
        """Release the view (PostgreSQL: the connection that holds the exported snapshot)."""
        ...


class SnapshotReader(Protocol):
    """One database's table reader, opened by ``source.snapshot_reader()``."""

    async def tables(self) -> list[SnapshotTable]:
        """The captured tables (the source's include/exclude lists), in a stable order."""
        ...

    async def consistent(self, threads: int = 1) -> ConsistentSnapshot | None:
        """Open a consistent view to scan before streaming from its position, or None
        when the server or the privileges allow none (the core then reads watermarked
        chunks while streaming). Called only when no offset is stored. ``threads``: how
        many scans the core runs at once (``max_threads``); a reader whose view lives in
        one session per scan (MySQL/MariaDB) opens that many joined to the same view."""
        ...

    async def watermark(self) -> Position:
        """A position after every transaction committed so far (read-only: no write)."""
        ...

    def reached(self, position: Position, mark: Position) -> bool:
        """Whether the stream, having given everything up to ``position`` (a commit's),
        has given every transaction committed before ``mark`` was read."""
        ...

    async def read_chunk(
        self, table: SnapshotTable, after: list[Any] | None, limit: int, where: str | None
    ) -> Chunk:
        """At most ``limit`` rows after key ``after``, in key order, as the table is now
        (its own short transaction)."""
        ...

    async def close(self) -> None: ...


class HeartbeatSource(Protocol):
    """A source whose stream can be asked for a position when the database is idle."""

    def heartbeat_soon(self) -> None:
        """Within about a second, even with nothing to stream, yield a heartbeat
        ``Commit`` (``extra=HEARTBEAT``) at or after every transaction committed before
        this call (PostgreSQL: the server's WAL end from a keepalive asked for)."""
        ...


def reader_of(source: Any) -> SnapshotReader | None:
    """The source's snapshot reader, if it has one."""
    make = getattr(source, "snapshot_reader", None)
    return make() if callable(make) else None
