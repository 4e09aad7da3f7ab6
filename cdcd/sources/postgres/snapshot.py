"""PostgreSQL's snapshot reader (``cdcd.snapshot.SnapshotReader``): the captured tables,
the consistent view a new replication slot exports, and chunks read by primary key.

Rows are read in PostgreSQL's text format, each value exactly as its type's output
function writes it, which is what pgoutput sends the stream (``col::text`` is not: a
cast to text writes bool as ``true``, trims ``char(n)``, adds ``/32`` to an inet); they go
through the stream's own converters (``rows.Table`` built from the catalog as pgoutput's
Relation and Type messages describe the table), so a row's key and after image are the
same whether it is read here (op ``r``) or streamed (op ``c``).

A table without a primary key is read only whole, in a consistent view's scan (no key
condition, no order): its rows have key None, as the stream's have.

Chunks follow the primary key with a row-value comparison, ``(k1, k2) > (v1::t1,
v2::t2)``, which the key's index serves (never OR-chains). A chunk's ``last_key`` holds
the text of the last row's key columns, given back to the server with a cast to each
column's type: every key type round-trips through its text (int, text, uuid, bytea, ...),
and text that looks like NULL (``"NULL"``, ``""``, ``"\\N"``) is a bound parameter, never
SQL. Sessions: one per scan (each joins the exported snapshot), and a few pooled
sessions for watermarks and chunks read as the table is now.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import psycopg

from cdcd.errors import SourceError
from cdcd.positions import PgPosition, Position, lsn_to_str
from cdcd.snapshot import Chunk, SnapshotTable
from cdcd.sources.common import keyless_chunks_error
from cdcd.sources.postgres.checks import captured_tables
from cdcd.sources.postgres.slot import insert_lsn
from cdcd.sources.postgres.snapshot_process import process_scan
from cdcd.sources.postgres.snapshot_rows import scan_view, table_shape, text_rows

if TYPE_CHECKING:
    from cdcd.encoding import Encoding
    from cdcd.sources.postgres.config import PostgresSourceConfig
    from cdcd.sources.postgres.connection import Connector
    from cdcd.sources.postgres.slot import ReplicationSlot

# Primary keys (in key order) and row estimates of the tables named by two arrays.
_TABLES = """
SELECT n.nspname, c.relname, greatest(c.reltuples, 0)::int8,
  ARRAY(SELECT a.attname FROM pg_index i
        CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indrelid = c.oid AND i.indisprimary ORDER BY k.ord)
FROM unnest(%s::text[], %s::text[]) AS s(nspname, relname)
JOIN pg_namespace n ON n.nspname = s.nspname
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.relname
"""


class PostgresSnapshotReader:
    """The snapshot reader of one ``PostgresSource``: its sessions, its selection of
    tables, its slot and the ``encoding`` of its stream."""

    def __init__(
        self,
        config: PostgresSourceConfig,
        connector: Connector,
        slot: ReplicationSlot,
        encoding: Encoding,
        log: Any = None,
    ) -> None:
        self.config = config
        self.connector = connector
        self.slot = slot
        self.encoding: Encoding = encoding
        self.database = connector.database
        self.log = log
        self._idle: list[psycopg.AsyncConnection[Any]] = []  # watermarks and chunks
        self._views: list[PgConsistentSnapshot] = []

    async def tables(self) -> list[SnapshotTable]:
        """The captured tables, ordered by schema and name, each with its primary key in
        the key's order (none: ``()``) and ``pg_class.reltuples`` (never analysed: 0)."""
        async with self._session() as conn:
            names = await captured_tables(conn, self.config)
            cur = await conn.execute(_TABLES, ([s for s, _ in names], [t for _, t in names]))
            found = {(r[0], r[1]): r for r in await cur.fetchall()}
        out = []
        for schema, table in names:
            row = found.get((schema, table))
            if row is not None:  # not dropped since it was listed
                out.append(SnapshotTable(schema, table, tuple(row[3]), int(row[2])))
        return out

    async def consistent(self, threads: int = 1) -> PgConsistentSnapshot | None:
        """The slot created anew with an exported snapshot (a slot left over is dropped:
        no offset is stored, so nothing is lost), or None when ``source.create_slot`` is
        false (the core then reads watermarked chunks). ``threads`` is not needed: each
        scan opens its own session when it starts and joins the snapshot then, which it
        can as long as the view is open (until its ``close()``)."""
        if not self.config.create_slot:
            return None
        started_us = time.time_ns() // 1000
        holder, lsn, name = await self.slot.create_exporting()
        view = PgConsistentSnapshot(self, holder, PgPosition(lsn), name, started_us)
        self._views.append(view)
        if self.log is not None:
            self.log.info("snapshot exported", slot=self.slot.name, snapshot=name,
                          consistent_point=lsn_to_str(lsn))  # fmt: skip
        return view

    async def watermark(self) -> PgPosition:
        """The WAL's insert position (``slot.insert_lsn``): at or past the commit record of
        every transaction committed so far, even with ``synchronous_commit = off``
        (``pg_current_wal_lsn()``, the WAL written, may not have the latest commits yet);
        read-only. The stream reaches it once the server has written that WAL: at once
        for a synchronous commit, within ``wal_writer_delay`` for an asynchronous one."""
        async with self._session() as conn:
            return PgPosition(await insert_lsn(conn))

    def reached(self, position: Position, mark: Position) -> bool:
        """Whether ``position`` is at or past ``mark``.

        The stream gives transactions in the order of their commit records, and a
        ``Commit``'s position is its commit record's end: every transaction whose record
        ends at or before it has been given. A heartbeat's position is the WAL end the
        walsender reported, everything before which it has decoded and sent: again every
        commit ending at or before it has been given. A mark read after a transaction
        committed lies at or past that commit's end, so a position at or past the mark
        has given it. (A position cut inside a huge transaction carries the previous
        commit's end: compared by that, it errs on the safe side.)"""
        assert isinstance(position, PgPosition) and isinstance(mark, PgPosition)
        return position.commit_lsn >= mark.commit_lsn

    async def read_chunk(
        self, table: SnapshotTable, after: list[Any] | None, limit: int, where: str | None
    ) -> Chunk:
        """At most ``limit`` rows after ``after`` as the table is now, in one short
        read-only transaction (one more row read tells whether it is the last chunk). A
        table without a primary key has no chunks: it is read whole in a consistent view
        (``PgConsistentSnapshot.scan``)."""
        if not table.key_columns:
            raise keyless_chunks_error(table.id)
        async with self._session() as conn:
            await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                shape = await table_shape(conn, table, self.encoding)
                query, params = shape.query(after, where, limit + 1)
                cur = conn.cursor()
                await cur.execute(query, params)
                rows = await text_rows(cur)
                lsn = await insert_lsn(conn)
            finally:
                await conn.execute("ROLLBACK")
        done = len(rows) <= limit
        rows = rows[:limit]
        events = shape.events(rows, self.database, lsn, time.time_ns() // 1000)
        return shape.chunk(table, events, rows, done, after is None)

    async def close(self) -> None:
        for view in list(self._views):
            await view.close()
        idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                await conn.close()

    # -- sessions and tables ---------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled session; one that failed is closed, not given back."""
        conn = self._idle.pop() if self._idle else await self.connector.connect()
        try:
            yield conn
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.close()
            raise
        self._idle.append(conn)


class PgConsistentSnapshot:
    """The snapshot a new slot exported, alive while ``holder`` (the replication session
    that created the slot) stays open and idle; ``position``: the slot's consistent
    point, where the stream continues."""

    def __init__(
        self,
        reader: PostgresSnapshotReader,
        holder: psycopg.AsyncConnection[Any],
        position: PgPosition,
        name: str,
        started_us: int,
    ) -> None:
        self.reader = reader
        self.position = position
        self.name = name
        self.started_us = started_us
        self._holder: psycopg.AsyncConnection[Any] | None = holder

    async def scan(
        self, table: SnapshotTable, after: list[Any] | None, chunk_size: int, where: str | None
    ) -> AsyncIterator[Chunk]:
        """The table's rows in the exported snapshot, ``chunk_size`` at a time
        (``snapshot_rows.scan_view``), read by the daemon or by a scan process of its own
        (``source.snapshot_reader``)."""
        if self._holder is None:
            raise SourceError("the snapshot's view is closed")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, not {chunk_size}")
        reader = self.reader
        args = (self.name, self.position.commit_lsn, table, after, chunk_size, where)
        scan = process_scan if reader.config.snapshot_reader == "process" else scan_view
        chunks = scan(reader.connector, *args, reader.encoding)
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]  # an async generator's

    async def close(self) -> None:
        """End the exported snapshot (its session); the slot stays."""
        holder, self._holder = self._holder, None
        if holder is not None:
            with contextlib.suppress(Exception):
                await holder.close()
        with contextlib.suppress(ValueError):
            self.reader._views.remove(self)
