"""The MySQL/MariaDB snapshot reader (``cdcd.snapshot.SnapshotReader``).

Tables are read by primary key in keyset pages (``WHERE (k1, k2) > (%s, %s) ORDER BY k1,
k2 LIMIT n + 1``: a row-value comparison, never an OR chain), one row more than a chunk
so that the chunk with the table's last row says ``done``; a table without a primary key
is read only whole, in a consistent view's scan (one streamed SELECT). Rows are read off
the socket as text (``snapshot_wire``) and encoded as the stream's own converters encode
them (``snapshot_values``, ``snapshot_text``), so that a row's key and after image are
the same from the snapshot (``op = "r"``) as from the binlog (``op = "c"``).

A consistent view (``consistent``) is a ``START TRANSACTION WITH CONSISTENT SNAPSHOT``
on each of its connections whose binlog position is known exactly
(``snapshot_view``). Watermarks are the server's executed GTIDs and binlog end, read
without writing anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import TYPE_CHECKING, Any

import pymysql
from pymysql.connections import Connection

from cdcd.errors import SourceError
from cdcd.positions import MysqlPosition, Position
from cdcd.snapshot import Chunk, SnapshotTable
from cdcd.sources.common import keyless_chunks_error
from cdcd.sources.mysql.checks import captured_tables
from cdcd.sources.mysql.gtid import MariadbGtidPosition, MysqlGtidSet
from cdcd.sources.mysql.snapshot_chunks import RowSource, prepare_session, read_page
from cdcd.sources.mysql.snapshot_process import WorkerView
from cdcd.sources.mysql.snapshot_values import COLUMNS_QUERY, TableRows, column_of
from cdcd.sources.mysql.snapshot_view import open_view

if TYPE_CHECKING:
    from cdcd.sources.mysql.source import MysqlSource


_KEYS_QUERY = (
    "SELECT k.TABLE_SCHEMA, k.TABLE_NAME, k.COLUMN_NAME "
    "FROM information_schema.KEY_COLUMN_USAGE k WHERE k.CONSTRAINT_NAME = 'PRIMARY' "
    "AND k.TABLE_SCHEMA IN ({}) ORDER BY k.TABLE_SCHEMA, k.TABLE_NAME, k.ORDINAL_POSITION"
)
_ROWS_QUERY = (
    "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES "
    "WHERE TABLE_SCHEMA IN ({})"
)


class MysqlSnapshotReader:
    """Reads one server's captured tables for snapshots (see the module's doc)."""

    def __init__(self, source: MysqlSource) -> None:
        self.source = source
        self._rows: dict[str, TableRows] = {}
        self._conn: Connection | None = None  # for watermarks and chunks, one at a time
        self._lock = threading.Lock()
        self._last_mark: MysqlPosition | None = None
        self._parsed: dict[str, Any] = {}

    # -- connections ---------------------------------------------------------------

    def connect(self) -> Connection:
        conn = self.source._connect()
        prepare_session(conn)
        return conn

    def _info(self) -> Any:
        if self.source.info is None:
            self.source._check_sync()
        return self.source.info

    def _with_conn(self, work: Any) -> Any:
        with self._lock:
            if self._conn is None:
                self._conn = self.connect()
            try:
                return work(self._conn)
            except (pymysql.err.OperationalError, pymysql.err.InterfaceError):
                conn, self._conn = self._conn, None
                with contextlib.suppress(Exception):
                    conn.close()
                raise

    def table_rows(self, conn: Connection, table: SnapshotTable) -> TableRows:
        """How to read and encode ``table`` (its columns read once per view, and again
        for each chunk read while streaming)."""
        rows = self._rows.get(table.id)
        if rows is None:
            with conn.cursor() as cursor:
                cursor.execute(COLUMNS_QUERY, (table.namespace, table.name))
                columns = [column_of(row, table.id) for row in cursor.fetchall()]
            if not columns:
                raise SourceError(f"table {table.id} does not exist (or cannot be seen)")
            rows = self._rows[table.id] = TableRows(
                columns,
                table.key_columns,
                flavor=self._info().flavor,
                options=self.source.encoding,
            )
        return rows

    # -- tables --------------------------------------------------------------------

    def _tables_sync(self) -> list[SnapshotTable]:
        def work(conn: Connection) -> list[SnapshotTable]:
            with conn.cursor() as cursor:
                captured = sorted(captured_tables(cursor, self.source.config))
                if not captured:
                    return []
                databases = sorted({db for db, _ in captured})
                marks = ", ".join(["%s"] * len(databases))
                cursor.execute(_KEYS_QUERY.format(marks), databases)
                keys: dict[tuple[str, str], list[str]] = {}
                for db, name, column in cursor.fetchall():
                    keys.setdefault((db, name), []).append(column)
                cursor.execute(_ROWS_QUERY.format(marks), databases)
                estimates = {(db, name): int(n or 0) for db, name, n in cursor.fetchall()}
            return [
                SnapshotTable(
                    db, name, tuple(keys.get((db, name), ())), estimates.get((db, name), 0)
                )
                for db, name in captured
            ]

        return self._with_conn(work)  # type: ignore[no-any-return]

    async def tables(self) -> list[SnapshotTable]:
        """The captured tables (``source.tables``' selection), by name; the primary key's
        columns in key order, TABLE_ROWS as the estimate."""
        return await asyncio.to_thread(self._tables_sync)

    # -- a consistent view -----------------------------------------------------------

    async def consistent(self, threads: int = 1) -> Any:
        """A consistent view on ``threads`` connections (one scan at a time on each), or
        None when the server or the privileges allow none (``snapshot_view``); with
        ``source.snapshot_reader = "process"`` a single connection's view is a worker process's
        (``snapshot_process``)."""
        info = await asyncio.to_thread(self._info)
        if threads <= 1 and self.source.config.snapshot_reader == "process":
            return await WorkerView.open(self)  # read on the second core
        return await asyncio.to_thread(open_view, self, info, max(1, threads))

    # -- watermarks ----------------------------------------------------------------

    def _watermark_sync(self) -> MysqlPosition:
        starts = self.source._start_points()
        mark = starts.position(starts.resolve("latest"))
        self._last_mark = mark
        return mark

    async def watermark(self) -> Position:
        """After every transaction committed so far: the executed GTIDs (MySQL
        ``Executed_Gtid_Set``, MariaDB ``@@gtid_binlog_pos``) and the binlog's end (SHOW
        MASTER STATUS); nothing is written."""
        await asyncio.to_thread(self._info)
        return await asyncio.to_thread(self._watermark_sync)

    def _gtids(self, flavor: str, text: str) -> Any:
        parsed = self._parsed.get(text)
        if parsed is None:
            if len(self._parsed) > 64:
                self._parsed.clear()
            kind = MariadbGtidPosition if flavor == "mariadb" else MysqlGtidSet
            parsed = self._parsed[text] = kind.parse(text)
        return parsed

    def reached(self, position: Position, mark: Position) -> bool:
        """With GTIDs: every GTID of ``mark`` is in ``position`` (MariaDB: per domain).
        Without: ``position``'s (file, pos) is at or after ``mark``'s. A stream asked for a
        heartbeat (``MysqlSource.heartbeat_soon``) gives a position at the binlog's end,
        past what lies after the last transaction (a rotation's first events)."""
        assert isinstance(position, MysqlPosition) and isinstance(mark, MysqlPosition)
        if position.gtid_set is not None and mark.gtid_set is not None:
            mine = self._gtids(mark.flavor, position.gtid_set)
            theirs = self._gtids(mark.flavor, mark.gtid_set)
            if mark.flavor == "mariadb":
                return bool(mine.covers(theirs))
            return bool(theirs.issubset(mine))
        return file_pos(position) >= file_pos(mark)

    # -- chunks while streaming ----------------------------------------------------

    def _read_chunk_sync(
        self, table: SnapshotTable, after: Any, limit: int, where: str | None
    ) -> Chunk:
        mark = self._last_mark
        source = RowSource(
            self.source.connector,
            mark.file if mark else "",
            mark.pos if mark else 0,
            int(time.time() * 1000),
        )

        def work(conn: Connection) -> Chunk:
            # while streaming, the table may have been altered since the last chunk
            self._rows.pop(table.id, None)
            rows = self.table_rows(conn, table)
            # autocommit: a transaction of its own
            return read_page(conn, rows, table, after, limit, where, source)

        return self._with_conn(work)  # type: ignore[no-any-return]

    async def read_chunk(
        self, table: SnapshotTable, after: list[Any] | None, limit: int, where: str | None
    ) -> Chunk:
        """At most ``limit`` rows after key ``after``, as the table is now (one SELECT in
        its own transaction); the source block's file/pos are the last watermark's. A
        table without a primary key has no chunks (it is read whole in a consistent view)."""
        if not table.key_columns:
            raise keyless_chunks_error(table.id)
        await asyncio.to_thread(self._info)
        return await asyncio.to_thread(self._read_chunk_sync, table, after, limit, where)

    async def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(conn.close)


def file_pos(position: MysqlPosition) -> tuple[int, int]:
    """A binlog position in order: (the file's sequence number, pos)."""
    suffix = position.file.rsplit(".", 1)[-1]
    return (int(suffix) if suffix.isdigit() else -1, position.pos)
