"""How one table's rows are read for a snapshot: its shape (the stream's row converter,
the query by primary key, the key's casts), its rows as text, and the scan of an exported
snapshot (``scan_view``, run by the daemon or by the scan process,
``cdcd.sources.postgres.snapshot_process``). ``cdcd.sources.postgres.snapshot`` says why
rows are read in text format and how chunks follow the key.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import abc, sql
from psycopg.adapt import AdaptersMap
from psycopg.pq import Format
from psycopg.types.string import TextLoader

from cdcd.errors import SourceError
from cdcd.events import OP_READ, ChangeEvent, TableSchema
from cdcd.snapshot import Chunk, SnapshotTable
from cdcd.sources.postgres.rows import Table, column_facts, source_block, table_schema

if TYPE_CHECKING:
    from cdcd.encoding import Encoding
    from cdcd.sources.postgres.connection import Connector

# The table's columns as pgoutput's Relation message lists them (not dropped, not
# generated, in attnum order), each with the name its Type message gives (a domain's
# base type's name, schema left out: ``rows.type_name``) and its type for the key's casts.
_COLUMNS = """
SELECT a.attname, a.atttypid::int8, a.atttypmod, format_type(a.atttypid, NULL),
  (WITH RECURSIVE t(oid, typtype, typbasetype, typname) AS (
     SELECT oid, typtype, typbasetype, typname FROM pg_type WHERE oid = a.atttypid
     UNION ALL
     SELECT b.oid, b.typtype, b.typbasetype, b.typname FROM pg_type b JOIN t
       ON b.oid = t.typbasetype WHERE t.typtype = 'd')
   SELECT typname FROM t WHERE typtype <> 'd')
FROM pg_attribute a
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
ORDER BY a.attnum
"""

_FETCH = "FETCH FORWARD {} FROM cdcd_scan"


def _text_loader() -> type[abc.Loader]:
    """psycopg's TextLoader as adapters register it (its C version where there is one)."""
    adapters = AdaptersMap()
    adapters.register_loader(0, TextLoader)  # any OID will do
    loader = adapters.get_loader(0, Format.TEXT)
    assert loader is not None
    return loader


_TEXT_LOADER = _text_loader()


@dataclass(slots=True)
class Shape:
    """How one table's rows are read: the stream's row converter, the query, the key's
    positions among the columns and the casts that give a ``last_key`` back; ``schema``:
    the columns' schema from the same catalog facts as the stream's (a Relation message's
    type OIDs and typmods, nullability, enum labels)."""

    table: Table
    select: sql.Composed
    key_at: tuple[int, ...]
    key_types: tuple[str, ...]
    schema: TableSchema

    def chunk(
        self,
        table: SnapshotTable,
        events: list[ChangeEvent],
        rows: list[Any],
        done: bool,
        first: bool,
    ) -> Chunk:
        """A chunk of ``rows`` (``first``: the table's first, which carries the schema)."""
        return Chunk(table, events, self.last_key(rows), done,
                     schema=self.schema if first else None)  # fmt: skip

    def query(
        self, after: list[Any] | None, where: str | None, limit: int | None
    ) -> tuple[sql.Composed, list[Any]]:
        """The chunk's query and its parameters: rows after key ``after``, in key order
        (a table without a primary key: every row, in no order)."""
        conditions: list[sql.Composable] = []
        params: list[Any] = []
        keyless = not self.table.key_columns
        if after is not None and keyless:
            raise SourceError(
                f"a snapshot key {after!r} for {self.table.namespace}.{self.table.name}, "
                "which has no primary key (it is read whole, never resumed)"
            )
        if after is not None:
            if len(after) != len(self.key_types):
                raise SourceError(
                    f"a snapshot key of {len(after)} values for {self.table.namespace}."
                    f"{self.table.name}, whose primary key has {len(self.key_types)} columns"
                )
            keys = sql.SQL(", ").join(map(sql.Identifier, self.table.key_columns))
            casts = sql.SQL(", ").join(sql.SQL("%s::" + t) for t in self.key_types)
            conditions.append(sql.SQL("({}) > ({})").format(keys, casts))
            params.extend(None if v is None else str(v) for v in after)
        if where:
            # Parameters are bound: a '%' of the condition's own is doubled.
            condition = sql.SQL(where.replace("%", "%%"))  # type: ignore[arg-type]
            conditions.append(sql.SQL("({})").format(condition))
        parts: list[sql.Composable] = [self.select]
        if conditions:
            parts += [sql.SQL(" WHERE "), sql.SQL(" AND ").join(conditions)]
        if not keyless:
            keys = sql.SQL(", ").join(map(sql.Identifier, self.table.key_columns))
            parts += [sql.SQL(" ORDER BY "), keys]
        if limit is not None:
            parts.append(sql.SQL(" LIMIT {}").format(sql.Literal(limit)))
        return sql.Composed(parts), params

    def events(
        self, rows: list[tuple[str | None, ...]], database: str, lsn: int, ts_us: int
    ) -> list[ChangeEvent]:
        """``op = "r"`` events of rows of text values, sharing one source block (the
        chunk's: the rows were read at once, at one position)."""
        table = self.table
        ns, name, row, key = table.namespace, table.name, table.row, table.key
        sequence = f'[null,"{lsn}"]'  # Debezium's: no commit before a snapshot's records
        source = source_block(database, ns, name, ts_us, sequence, None, lsn)
        out: list[ChangeEvent] = []
        append = out.append
        for values in rows:
            after = row(values, lsn)
            append(ChangeEvent(OP_READ, ns, name, key(after), None, after, source))
        return out

    def last_key(self, rows: list[tuple[str | None, ...]]) -> list[Any] | None:
        return [rows[-1][i] for i in self.key_at] if rows and self.key_at else None


async def text_rows(cur: psycopg.AsyncCursor[Any]) -> list[tuple[str | None, ...]]:
    """The last result's rows as the server wrote them (text format, nothing parsed):
    each column's type is loaded by psycopg's ``TextLoader`` on this cursor alone, so its
    C code decodes the cells (UTF-8: the sessions' ``client_encoding``) into tuples of
    str, as ``bytes.decode()`` of each cell would."""
    result = cur.pgresult
    if result is None or not result.ntuples:
        return []
    adapters = cur.adapters
    for column in range(result.nfields):
        oid = result.ftype(column)
        if adapters.get_loader(oid, Format.TEXT) is not _TEXT_LOADER:
            adapters.register_loader(oid, TextLoader)
    return await cur.fetchall()


async def table_shape(
    conn: psycopg.AsyncConnection[Any], table: SnapshotTable, encoding: Encoding
) -> Shape:
    """The table's columns as the transaction on ``conn`` sees them."""
    ident = sql.Identifier(table.namespace, table.name)
    try:
        cur = await conn.execute(_COLUMNS, (ident.as_string(conn),))
    except psycopg.errors.UndefinedTable:
        raise SourceError(f"table {table.id} does not exist (any more)") from None
    columns = await cur.fetchall()
    names = [c[0] for c in columns]
    missing = [k for k in table.key_columns if k not in names]
    if missing:
        raise SourceError(
            f"cannot read {table.id} by its primary key {list(table.key_columns)}: "
            f"its columns are {names}"
        )
    type_names = {int(c[1]): c[4] for c in columns if c[4] is not None}
    rows = Table.of_columns(
        table.namespace, table.name, True, [(c[0], int(c[1]), c[2]) for c in columns],
        table.key_columns, type_names, encoding,
    )  # fmt: skip
    select = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(map(sql.Identifier, names)), ident
    )
    key_at = tuple(names.index(k) for k in table.key_columns)
    key_types = tuple(columns[i][3] for i in key_at)
    oid = await (
        await conn.execute("SELECT %s::regclass::oid::int8", (ident.as_string(conn),))
    ).fetchone()
    assert oid is not None
    facts = await column_facts(conn, oid[0])
    described = [(c[0], int(c[1]), c[2]) for c in columns]
    schema = table_schema(rows, described, type_names, facts, encoding.decimal_mode)
    return Shape(rows, select, key_at, key_types, schema)


async def scan_view(
    connector: Connector,
    snapshot: str,
    lsn: int,
    table: SnapshotTable,
    after: list[Any] | None,
    chunk_size: int,
    where: str | None,
    encoding: Encoding,
) -> AsyncIterator[Chunk]:
    """The table's rows in the exported snapshot named ``snapshot`` (whose consistent
    point is ``lsn``), ``chunk_size`` at a time, through a server-side cursor on a
    session of its own that joins it (one row read ahead: the chunk with the table's last
    row is ``done``; an empty table gives one empty, done chunk). A table without a
    primary key: ``after`` is None, every row in no order (no ORDER BY), each event's key
    None and every ``last_key`` None."""
    conn = await connector.connect()
    try:
        await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        await conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
        shape = await table_shape(conn, table, encoding)
        query, params = shape.query(after, where, None)
        cur = conn.cursor()
        declare = sql.SQL("DECLARE cdcd_scan NO SCROLL CURSOR FOR {}").format(query)
        await cur.execute(declare, params)
        exhausted = False
        first = after is None
        pending: list[tuple[str | None, ...]] = []
        read_us = time.time_ns() // 1000
        while True:
            want = chunk_size + 1 - len(pending)
            if want > 0 and not exhausted:
                await cur.execute(_FETCH.format(want))
                rows = await text_rows(cur)
                exhausted = len(rows) < want
                pending += rows
                read_us = time.time_ns() // 1000
            rows, pending = pending[:chunk_size], pending[chunk_size:]
            done = exhausted and not pending
            events = shape.events(rows, connector.database, lsn, read_us)
            yield shape.chunk(table, events, rows, done, first)
            first = False
            if done:
                return
    finally:
        with contextlib.suppress(Exception):
            await conn.close()
