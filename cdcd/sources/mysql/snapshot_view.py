"""A consistent view of a MySQL/MariaDB server whose binlog position is known exactly.

Each of the view's connections runs ``START TRANSACTION WITH CONSISTENT SNAPSHOT``
(REPEATABLE READ, read only); the binlog position is that of the view: streaming from it
gives exactly the transactions the view does not see.

- MariaDB tells the position of a consistent snapshot without any lock: ``SHOW STATUS
  LIKE 'binlog_snapshot_%'`` in the transaction, and ``BINLOG_GTID_POS(file, pos)`` the
  GTID position there. Every connection must see the same position: one that started
  before or after a commit of another's is started again (a few rounds); when they never
  agree (a server committing all the time), the lock below is taken instead.
- MySQL knows no such status: ``FLUSH TABLES WITH READ LOCK`` (RELOAD privilege) stops
  commits for a moment, every connection starts its snapshot, ``SHOW MASTER STATUS``
  tells the position, ``UNLOCK TABLES`` at once (how long it was held is logged).
  ``LOCK INSTANCE FOR BACKUP`` would not do: it blocks DDL, not commits, so the position
  read under it could be after commits the snapshots do not see (or before ones they do).
  Without the privilege there is no view (None), and the log says which GRANT gives one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pymysql
from pymysql.connections import Connection

from cdcd.errors import SourceError
from cdcd.positions import MysqlPosition
from cdcd.snapshot import Chunk, SnapshotTable
from cdcd.sources.mysql.gtid import MariadbGtidPosition
from cdcd.sources.mysql.snapshot_chunks import RowSource, scan_pages
from cdcd.sources.mysql.start import Start, StartPoints

if TYPE_CHECKING:
    from cdcd.sources.mysql.checks import ServerInfo
    from cdcd.sources.mysql.snapshot import MysqlSnapshotReader


_ROUNDS = 20  # MariaDB: rounds of restarting the snapshots that saw another position
_ACCESS_DENIED = {1044, 1045, 1142, 1227}
_LOCK_WAIT_S = 10  # FLUSH TABLES WITH READ LOCK waits at most this for running statements


class MysqlConsistentView:
    """A ``cdcd.snapshot.ConsistentSnapshot``: connections in one view, ``position`` the
    binlog position that streams what the view does not hold."""

    def __init__(
        self,
        reader: MysqlSnapshotReader,
        connections: list[Connection],
        position: MysqlPosition,
        ts_ms: int,
    ) -> None:
        self.reader = reader
        self.position = position
        self.connections = connections
        self.ts_ms = ts_ms
        self._source = RowSource(reader.source.connector, position.file, position.pos, ts_ms)
        self._free: asyncio.Queue[Connection] | None = None

    async def scan(
        self, table: SnapshotTable, after: list[Any] | None, chunk_size: int, where: str | None
    ) -> AsyncIterator[Chunk]:
        """The table in this view, in key order, on a connection of its own (a scan waits
        for one while as many scans as connections run); a table without a primary key
        whole, in no order, its events' key and every ``last_key`` None
        (``snapshot_chunks.scan_whole``)."""
        if self._free is None:
            self._free = asyncio.Queue()
            for conn in self.connections:
                self._free.put_nowait(conn)
        conn = await self._free.get()
        pages = scan_pages(
            self.reader.table_rows, conn, table, after, chunk_size, where, self._source
        )
        try:
            async with contextlib.aclosing(pages):  # done with conn before it is given back
                async for chunk in pages:
                    yield chunk
        finally:
            self._free.put_nowait(conn)

    async def close(self) -> None:
        def end() -> None:
            for conn in self.connections:
                with contextlib.suppress(Exception):
                    conn.rollback()
                    conn.close()

        await asyncio.to_thread(end)


def _start(conn: Connection) -> None:
    with conn.cursor() as cursor:
        cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")


def _snapshot_status(conn: Connection) -> tuple[str, int]:
    with conn.cursor() as cursor:
        cursor.execute("SHOW STATUS LIKE 'binlog_snapshot_%'")
        status = {name.lower(): value for name, value in cursor.fetchall()}
    return status["binlog_snapshot_file"], int(status["binlog_snapshot_position"])


def _order(position: tuple[str, int]) -> tuple[int, int]:
    suffix = position[0].rsplit(".", 1)[-1]
    return (int(suffix) if suffix.isdigit() else -1, position[1])


def mariadb_view(conns: list[Connection], where: str, log: Any) -> Start | None:
    """MariaDB: every connection's snapshot at one binlog position, without a lock; None
    when they kept seeing different positions."""
    seen: list[tuple[str, int] | None] = [None] * len(conns)
    for attempt in range(_ROUNDS):
        for index, conn in enumerate(conns):
            if seen[index] is None:
                _start(conn)
                seen[index] = _snapshot_status(conn)
        target = max(seen, key=lambda p: _order(p))  # type: ignore[arg-type, return-value]
        if all(p == target for p in seen):
            break
        if log is not None:
            log.info("snapshot connections saw different binlog positions", attempt=attempt)
        for index, conn in enumerate(conns):
            if seen[index] != target:
                conn.rollback()
                seen[index] = None  # started again, at the latest position or later
    else:
        return None
    file, pos = seen[0]  # type: ignore[misc]
    with conns[0].cursor() as cursor:
        cursor.execute("SELECT BINLOG_GTID_POS(%s, %s)", (file, pos))
        (gtids,) = cursor.fetchone()
    if gtids is None:
        raise SourceError(
            f"{where}: BINLOG_GTID_POS({file!r}, {pos}) is NULL for the snapshot's own position"
        )
    return Start(str(MariadbGtidPosition.parse(gtids)), file, pos)


def locked_view(conns: list[Connection], starts: StartPoints, log: Any) -> Start | None:
    """Every connection's snapshot started while FLUSH TABLES WITH READ LOCK holds
    commits, the position read under it; None without the RELOAD privilege (logged)."""
    lock = conns[0]
    with lock.cursor() as cursor:
        cursor.execute("SET SESSION lock_wait_timeout = %s", (_LOCK_WAIT_S,))
        began = time.monotonic()
        try:
            cursor.execute("FLUSH TABLES WITH READ LOCK")
        except pymysql.err.MySQLError as exc:
            code = exc.args[0] if exc.args else None
            if code not in _ACCESS_DENIED and code != 1205:  # 1205: lock wait timeout
                raise
            _log_no_lock(cursor, log, exc)
            return None
        locked = time.monotonic()
        try:
            for conn in conns:
                _start(conn)
            start = starts._latest(cursor)
        finally:
            cursor.execute("UNLOCK TABLES")
            held_ms = (time.monotonic() - locked) * 1000
    if log is not None:
        log.info(
            "consistent snapshot taken under FLUSH TABLES WITH READ LOCK",
            lock_held_ms=round(held_ms, 2),
            lock_wait_ms=round((locked - began) * 1000, 2),
            connections=len(conns),
        )
    return start


def _log_no_lock(cursor: Any, log: Any, exc: Exception) -> None:
    if log is None:
        return
    user = "<user>@<host>"
    with contextlib.suppress(Exception):
        cursor.execute("SELECT CURRENT_USER()")
        user = cursor.fetchone()[0]
    name, _, host = str(user).partition("@")
    log.warning(
        "no consistent snapshot: FLUSH TABLES WITH READ LOCK failed; the tables are read "
        "in watermarked chunks while streaming instead",
        reason=str(exc),
        fix=f"GRANT RELOAD ON *.* TO '{name}'@'{host}'",
    )


def open_view(reader: MysqlSnapshotReader, info: ServerInfo, threads: int) -> Any:
    """A ``MysqlConsistentView`` on ``threads`` connections, or None (see the module)."""
    source = reader.source
    starts = source._start_points()
    conns: list[Connection] = []
    try:
        conns = [reader.connect() for _ in range(threads)]
        ts_ms = int(time.time() * 1000)
        start = None
        if info.flavor == "mariadb":
            start = mariadb_view(conns, source._where, source.log)
            if start is None:
                if source.log is not None:
                    source.log.warning(
                        "the snapshot connections never saw the same binlog position (the "
                        "server commits all the time): taking FLUSH TABLES WITH READ LOCK",
                        rounds=_ROUNDS,
                    )
                for conn in conns:
                    conn.rollback()
        if start is None:
            start = locked_view(conns, starts, source.log)
        if start is None:
            raise _NoView
    except BaseException as exc:
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()
        if isinstance(exc, _NoView):
            return None
        raise
    return MysqlConsistentView(reader, conns, starts.position(start), ts_ms)


class _NoView(Exception):
    pass
