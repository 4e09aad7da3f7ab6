"""Snapshot chunks of MySQL/MariaDB tables: the keyset query of a page, the events of its
rows (``op = "r"``, with Debezium's source block of snapshot records), and a table's scan
page by page on one connection; a table without a primary key is scanned whole instead,
in one streamed SELECT (no order, its rows' key None as the stream's)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any

from pymysql.connections import Connection
from pymysql.cursors import SSCursor

from cdcd.errors import SourceError
from cdcd.events import ChangeEvent
from cdcd.snapshot import Chunk, SnapshotTable
from cdcd.sources.common import keyless_chunks_error
from cdcd.sources.mysql.snapshot_text import Form
from cdcd.sources.mysql.snapshot_values import TableRows, quote
from cdcd.sources.mysql.snapshot_wire import select_rows

_WRITE_TIMEOUT_S = 3600  # a streamed scan: how long the server waits for the client to read


def prepare_session(conn: Connection) -> None:
    """A reading session: TIMESTAMPs in UTC (as the binlog has them)."""
    with conn.cursor() as cursor:
        cursor.execute("SET time_zone = '+00:00'")


def page_query(rows: TableRows, table: SnapshotTable, after: Any, limit: int, where: Any) -> Any:
    """The SELECT of at most ``limit`` rows after key ``after`` (JSON values), and its
    parameters."""
    if not rows.key_columns:
        raise keyless_chunks_error(table.id)
    keys = ", ".join(quote(k) for k in rows.key_columns)
    conditions, args = [], ()
    if after is not None:
        args = rows.key_values(after)
        marks = ", ".join(["%s"] * len(args))
        conditions.append(f"({', '.join(rows.key_compared)}) > ({marks})")
    sql = select_query(rows, table, where, conditions)
    return f"{sql} ORDER BY {keys} LIMIT {int(limit)}", args


def select_query(
    rows: TableRows, table: SnapshotTable, where: str | None, conditions: list[str] | None = None
) -> str:
    """``SELECT`` the table's columns, ``WHERE`` the ``conditions`` and ``where``."""
    conditions = list(conditions or [])
    if where:
        conditions.append(f"({where.replace('%', '%%')})")  # parameters are bound
    sql = f"SELECT {rows.select} FROM {quote(table.namespace)}.{quote(table.name)}"
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    return sql


class RowSource:
    """The source block of ``op = "r"`` events (as Debezium's MySQL connector writes it
    for snapshot records: server_id 0, no GTID, thread nor query, row 0, the binlog
    file/pos of the snapshot, the snapshot's time): a table's block, which each of its
    rows gets a copy of (a fresh dict per row)."""

    def __init__(self, connector: str, file: str, pos: int, ts_ms: int) -> None:
        self.connector, self.file, self.pos, self.ts_ms = connector, file, pos, ts_ms

    def __call__(self, table: SnapshotTable) -> dict[str, Any]:
        return {
            "connector": self.connector,
            "ts_ms": self.ts_ms,
            "ts_us": self.ts_ms * 1000,
            "ts_ns": self.ts_ms * 1_000_000,
            "db": table.namespace,
            "sequence": None,
            "table": table.name,
            "server_id": 0,
            "gtid": None,
            "file": self.file,
            "pos": self.pos,
            "row": 0,
            "thread": None,
            "query": None,
        }


def make_chunk(
    table: SnapshotTable,
    rows: TableRows,
    raw: Sequence[Any],
    limit: int,
    source: RowSource,
    forms: Sequence[Form] | None = None,
) -> Chunk:
    """A chunk of the first ``limit`` of ``raw`` (read with one row more: done unless it
    came): row packets (``snapshot_wire``) of columns pymysql would read with ``forms``,
    or, without ``forms``, rows as pymysql gives them."""
    done = len(raw) <= limit
    raw = raw[:limit]
    encode = rows.encode if forms is None else rows.decoder(forms)
    # One source block for the chunk's rows (the protocol allows it: the envelope then
    # builds and serialises it once a chunk).
    block = source(table).copy()
    namespace, name = table.namespace, table.name
    events: list[ChangeEvent] = []
    append = events.append
    key_of = rows.key_columns
    only = key_of[0] if len(key_of) == 1 else None
    for row in raw:
        after = encode(row)
        key: dict[str, Any] | None = None  # keyless: None, as the stream's
        if only is not None:
            key = {only: after[only]}
        elif key_of:
            key = {k: after[k] for k in key_of}
        append(ChangeEvent("r", namespace, name, key, None, after, block, None))
    last_key = None
    if raw and key_of:
        last_key = rows.key_json(raw[-1]) if forms is None else rows.raw_key_json(raw[-1], forms)
    return Chunk(table, events, last_key, done)


def read_page(
    conn: Connection,
    rows: TableRows,
    table: SnapshotTable,
    after: Any,
    limit: int,
    where: str | None,
    source: RowSource,
) -> Chunk:
    """At most ``limit`` rows after key ``after`` on ``conn`` (one SELECT)."""
    sql, args = page_query(rows, table, after, limit + 1, where)
    forms, raw = select_rows(conn, sql, args)
    return make_chunk(table, rows, raw, limit, source, forms)


async def scan_pages(
    table_rows: Callable[[Connection, SnapshotTable], TableRows],
    conn: Connection,
    table: SnapshotTable,
    after: list[Any] | None,
    chunk_size: int,
    where: str | None,
    source: RowSource,
) -> AsyncGenerator[Chunk, None]:
    """``table``'s rows after ``after`` on ``conn`` (in its transaction), chunk by chunk
    (a table without a primary key: ``scan_whole``)."""
    if not table.key_columns:
        if after is not None:
            raise SourceError(
                f"a snapshot key {after!r} for {table.id}, which has no primary key (it is "
                "read whole, never resumed)"
            )
        whole = scan_whole(table_rows, conn, table, chunk_size, where, source)
        async with contextlib.aclosing(whole):  # its result read to the end at once
            async for chunk in whole:
                yield chunk
        return

    def page(key: Any) -> Chunk:
        return read_page(conn, table_rows(conn, table), table, key, chunk_size, where, source)

    key = after
    while True:
        chunk = await asyncio.to_thread(page, key)
        yield chunk
        if chunk.done:
            return
        key = chunk.last_key


async def scan_whole(
    table_rows: Callable[[Connection, SnapshotTable], TableRows],
    conn: Connection,
    table: SnapshotTable,
    chunk_size: int,
    where: str | None,
    source: RowSource,
) -> AsyncGenerator[Chunk, None]:
    """Every row of ``table`` (one without a primary key) on ``conn``, in its transaction:
    one unbuffered SELECT whose rows are fetched ``chunk_size`` at a time with one row
    read ahead (the chunk with the last row is ``done``; an empty table gives one empty,
    done chunk). The server waits up to ``net_write_timeout`` for the client to read on
    between chunks: an hour, for a core that waits for Kafka. A scan left before its end
    reads the rest of the result (the connection serves the view's next scan)."""

    def start() -> tuple[TableRows, SSCursor]:
        rows = table_rows(conn, table)
        with conn.cursor() as setting:
            setting.execute("SELECT @@SESSION.net_write_timeout")
            if int(setting.fetchone()[0]) < _WRITE_TIMEOUT_S:
                setting.execute("SET SESSION net_write_timeout = %s", (_WRITE_TIMEOUT_S,))
        cursor = conn.cursor(SSCursor)
        try:
            cursor.execute(select_query(rows, table, where), ())
        except BaseException:
            cursor.close()
            raise
        return rows, cursor

    rows, cursor = await asyncio.to_thread(start)
    try:
        pending: list[Any] = []
        while True:
            pending += await asyncio.to_thread(cursor.fetchmany, chunk_size + 1 - len(pending))
            chunk = make_chunk(table, rows, pending, chunk_size, source)
            yield chunk
            if chunk.done:
                return
            pending = pending[chunk_size:]
    finally:
        await asyncio.to_thread(cursor.close)
