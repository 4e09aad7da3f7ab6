"""Snapshot chunks of MySQL/MariaDB tables: the keyset query of a page, the events of its
rows (``op = "r"``, with Debezium's source block of snapshot records), and a table's scan
page by page on one connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from pymysql.connections import Connection

from cdcd.errors import SourceError
from cdcd.events import ChangeEvent
from cdcd.snapshot import Chunk, SnapshotTable
from cdcd.sources.mysql.snapshot_text import Form
from cdcd.sources.mysql.snapshot_values import TableRows, quote
from cdcd.sources.mysql.snapshot_wire import select_rows


def prepare_session(conn: Connection) -> None:
    """A reading session: TIMESTAMPs in UTC (as the binlog has them)."""
    with conn.cursor() as cursor:
        cursor.execute("SET time_zone = '+00:00'")


def page_query(rows: TableRows, table: SnapshotTable, after: Any, limit: int, where: Any) -> Any:
    """The SELECT of at most ``limit`` rows after key ``after`` (JSON values), and its
    parameters."""
    if not rows.key_columns:
        raise SourceError(f"table {table.id} has no primary key: it cannot be read in chunks")
    keys = ", ".join(quote(k) for k in rows.key_columns)
    conditions, args = [], ()
    if after is not None:
        args = rows.key_values(after)
        marks = ", ".join(["%s"] * len(args))
        conditions.append(f"({', '.join(rows.key_compared)}) > ({marks})")
    if where:
        conditions.append(f"({where.replace('%', '%%')})")
    sql = f"SELECT {rows.select} FROM {quote(table.namespace)}.{quote(table.name)}"
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    return f"{sql} ORDER BY {keys} LIMIT {int(limit)}", args


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
    raw: Sequence[Sequence[Any]],
    limit: int,
    source: RowSource,
    forms: Sequence[Form] | None = None,
) -> Chunk:
    """A chunk of the first ``limit`` of ``raw`` (read with one row more: done unless it
    came): rows of raw values (``snapshot_wire``) read with pymysql's ``forms``, or, without
    ``forms``, rows as pymysql gives them."""
    done = len(raw) <= limit
    raw = raw[:limit]
    encode = rows.encode if forms is None else rows.decoder(forms)
    block = source(table).copy
    namespace, name = table.namespace, table.name
    events: list[ChangeEvent] = []
    append = events.append
    key_of = rows.key_columns
    only = key_of[0] if len(key_of) == 1 else None
    for row in raw:
        after = encode(row)
        key = {only: after[only]} if only is not None else {k: after[k] for k in key_of}
        append(ChangeEvent("r", namespace, name, key, None, after, block(), None))
    last_key = None
    if raw:
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
) -> AsyncIterator[Chunk]:
    """``table``'s rows after ``after`` on ``conn`` (in its transaction), chunk by chunk."""

    def page(key: Any) -> Chunk:
        return read_page(conn, table_rows(conn, table), table, key, chunk_size, where, source)

    key = after
    while True:
        chunk = await asyncio.to_thread(page, key)
        yield chunk
        if chunk.done:
            return
        key = chunk.last_key
